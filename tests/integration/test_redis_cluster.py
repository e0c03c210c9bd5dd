"""The store on a 3-node Redis Cluster (loopback), a slot migrating mid-stream.

Before: the first pipelined read hit ``MovedError`` and the worker exited 70 on
every restart; the CAS script mixed a user's keys with the window's metric key
(another slot). Now a batch's users are grouped by hash slot, one Lua call per
slot (the metric hash has a copy per slot), pipelined per node; while a hot
slot migrates (ASK, TRYAGAIN, then MOVED) the stream goes on, and the result
equals one delivery: portraits, counters, and a second delivery applies nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis.crc import key_slot

from enf_core.analysis import VideoAnalysis
from enf_core.events import WatchEvent
from enf_core.portrait import Portrait, apply_event
from streams.handlers.base import Message
from streams.handlers.portraits import PortraitHandler
from streams.store import RedisDataLostError, RedisStore, StoreConfig
from tests.integration.redis_cluster import RedisClusterHandle, migrate_slot, start_redis_cluster
from tests.integration.workers import event

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future

N_USERS, PER_USER = 60, 40


class NullSink:
    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


@pytest.fixture()
def cluster() -> Iterator[RedisClusterHandle]:
    handle = start_redis_cluster(3)
    try:
        yield handle
    finally:
        handle.stop()


def _watch(u: int, k: int) -> WatchEvent:
    return WatchEvent(f"e{u}-{k}", f"u{u}", f"v{k % 7}", (u * 7919 + k * 104729) % 20_000,
                      20_000, T0 + k)


def _messages() -> list[Message]:
    """Round-robin over users, as a feed interleaves them; 4 partitions keyed by user."""
    out = []
    offsets = [0] * 4
    for k in range(PER_USER):
        for u in range(N_USERS):
            e = _watch(u, k)
            part = u % 4
            out.append(Message(event("watch", event_id=e.event_id, user_id=e.user_id,
                                     video_id=e.video_id, play_ms=e.play_ms,
                                     duration_ms=e.duration_ms, ts=e.ts),
                               e.user_id.encode(), "ue", part, offsets[part]))
            offsets[part] += 1
    return out


def test_portraits_on_a_cluster_with_a_slot_migrating_mid_stream(
        cluster: RedisClusterHandle) -> None:
    prefix = "c"
    analyses = {f"v{i}": VideoAnalysis.neutral(f"v{i}", duration_ms=20_000) for i in range(7)}
    msgs = _messages()
    # The slots of the first users: they migrate while their events keep coming.
    hot = sorted({key_slot(f"{prefix}:p:{{u{u}}}".encode()) for u in range(3)})
    moved: list[int] = []

    def migrate() -> None:
        for slot in hot:
            moved.append(migrate_slot(cluster, slot, (cluster.owner(slot) + 1) % 3,
                                      batch=1, pause_s=0.05))

    async def run() -> None:
        store = RedisStore(cluster.url, StoreConfig(prefix=prefix, max_users_per_call=16,
                                                    retry_max_s=0.2))
        assert store.cluster
        try:
            await store.put_videos(list(analyses.values()), ts=1)
            assert await store.get_analyses(list(analyses)) == analyses
            handler = PortraitHandler(store, NullSink(), dead_letter_topic="dlq",
                                      window_s=3600)
            handled = overlapped = 0
            mover: threading.Thread | None = None
            for i in range(0, len(msgs), 120):
                if i == 600:  # mid-stream: start moving the hot slots
                    mover = threading.Thread(target=migrate)
                    mover.start()
                busy = mover is not None and mover.is_alive()
                res = await handler.handle(msgs[i:i + 120])
                overlapped += busy
                # A write retried after a redirect may find itself applied: a duplicate.
                handled += res.applied + res.duplicates
                await asyncio.sleep(0.01)
            assert mover is not None
            mover.join(timeout=60)
            assert handled == N_USERS * PER_USER
            assert len(moved) == len(hot) and sum(moved) > 0  # keys really moved
            assert overlapped >= 1  # batches ran while slots were half-moved

            # Every portrait equals one delivery; counters counted once.
            for u in range(N_USERS):
                ref = Portrait.new(f"u{u}")
                for k in range(PER_USER):
                    apply_event(ref, _watch(u, k), analyses[f"v{k % 7}"])
                got = await store.get_portrait(f"u{u}")
                assert got is not None and got.to_dict() == ref.to_dict(), u
            assert (await store.totals())["events"] == N_USERS * PER_USER
            window = handler.window_start()
            assert (await store.read_window(window)).get("events", 0) in (
                N_USERS * PER_USER, *range(N_USERS * PER_USER))  # a window may split at :00

            # A second delivery, after the migration: nothing applied again.
            again = PortraitHandler(store, NullSink(), dead_letter_topic="dlq", window_s=3600)
            dup = 0
            for i in range(0, len(msgs), 600):
                r = await again.handle(msgs[i:i + 600])
                assert r.applied == 0
                dup += r.duplicates
            assert dup == N_USERS * PER_USER

            # The scorer's one pipelined read works across nodes.
            users = [f"u{u}" for u in range(N_USERS)]
            user_raw, video_raw = await store.read_for_scoring(users, list(analyses))
            assert all(vec is not None for vec, _ in user_raw)
            assert all(vec is not None for vec, _ in video_raw)

            # A node that loses its data is caught by the calls routed to it.
            victim = cluster.owner(hot[0])
            cluster.clients[victim].flushall()
            with pytest.raises(RedisDataLostError):
                await handler.handle(msgs[:120])
        finally:
            await store.close()

    asyncio.run(asyncio.wait_for(run(), timeout=120))


@pytest.mark.parametrize("broker", ["kafka"], indirect=True)  # the cluster is the subject
def test_a_worker_on_a_cluster(broker: Any, cluster: RedisClusterHandle, topic_prefix: str,
                               tmp_path: Any) -> None:
    """A real worker with ENF_REDIS_URL=redis+cluster://: before, its first
    pipelined read hit MovedError and it exited 70 on every restart."""
    import orjson
    from redis.cluster import RedisCluster

    from enf_core.events import decode_events
    from streams.config import TopicNames
    from tests.integration.workers import WorkerProcess, produce, wait_until

    topics = TopicNames(topic_prefix)
    rc = RedisCluster(host="127.0.0.1", port=cluster.ports[0])
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=cluster.url,
                           broker_kind=broker.kind, prefix=topic_prefix,
                           env={"ENF_PORTRAIT_ENGINE": "direct"}, log_path=tmp_path / "w.log")
    try:
        produce(broker.bootstrap, [(topics.videos, f"v{i}".encode(), event(
            "video", event_id=f"vid{i}", video_id=f"v{i}", title="Spider close-up",
            duration_ms=20_000, ts=T0)) for i in range(3)])
        wait_until(lambda: sum(1 for _ in rc.scan_iter(match=f"{topic_prefix}:v:*")) == 3,
                   timeout_s=120, what="video analyses on the cluster", worker=worker)
        analyses = {}
        for key in rc.scan_iter(match=f"{topic_prefix}:v:*"):
            a = VideoAnalysis.from_dict(orjson.loads(rc.hget(key, "data")))  # type: ignore[arg-type]
            analyses[a.video_id] = a
        raws = [(f"u{u}", event("watch", event_id=f"e{u}-{k}", user_id=f"u{u}",
                                video_id=f"v{k % 3}", play_ms=(u * 331 + k * 977) % 20_000,
                                duration_ms=20_000, ts=T0 + 10 + k))
                for u in range(30) for k in range(10)]
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in raws])
        produce(broker.bootstrap, [(topics.candidates, b"u1", event(
            "candidates", event_id="c1", request_id="r1", user_id="u1",
            video_ids=["v0", "v1", "v2"], ts=T0 + 100))])
        ref: dict[str, Portrait] = {}
        for _k, raw in raws:
            for e in decode_events(raw):
                apply_event(ref.setdefault(e.user_id, Portrait.new(e.user_id)),  # type: ignore[union-attr]
                            e, analyses.get(e.video_id))  # type: ignore[union-attr,arg-type]

        def stored() -> dict[str, Any]:
            out = {}
            for key in rc.scan_iter(match=f"{topic_prefix}:p:*"):
                p = orjson.loads(rc.hget(key, "data"))  # type: ignore[arg-type]
                out[p["user_id"]] = p
            return out

        want = {uid: p.to_dict() for uid, p in ref.items()}
        wait_until(lambda: stored() == want, timeout_s=60, what="portraits on the cluster",
                   worker=worker)
        wait_until(lambda: worker.metrics().get("enf_candidates_scored_total", 0) >= 3,
                   timeout_s=60, what="candidates scored", worker=worker)
        assert worker.metrics().get("enf_candidates_unknown_video_total", 0) == 0
        assert worker.alive()
    finally:
        worker.stop()
        rc.close()
