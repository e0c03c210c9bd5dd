"""Bad values stored in a real Redis never fail a batch: they are quarantined
(one dead-letter record with the key), the rest of the batch proceeds."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import numpy as np
import orjson
import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from enf_core.policy import SuppressionPolicy
from streams.handlers.base import Message
from streams.handlers.portraits import PortraitHandler
from streams.handlers.scoring import ScoringHandler
from streams.handlers.videos import safe_analyze
from streams.store import RedisStore, StoreConfig
from tests.integration.workers import event

pytestmark = pytest.mark.integration


class ListSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Any]] = []

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Any = None) -> Any:
        self.sent.append((topic, key, value, headers))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def on(self, topic: str) -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        return [(k, v, dict(h or [])) for t, k, v, h in self.sent if t == topic]


def _store(redis_url: str) -> RedisStore:
    return RedisStore(redis_url, StoreConfig(prefix=f"t{uuid.uuid4().hex[:8]}"))


def _watch(uid: str, eid: str, vid: str = "v0") -> Message:
    return Message(event("watch", event_id=eid, user_id=uid, video_id=vid, play_ms=100,
                         duration_ms=1000, ts=1_700_000_000_000), uid.encode())


async def test_portrait_path_quarantines_bad_portraits_and_videos(redis_url: str) -> None:
    store, sink = _store(redis_url), ListSink()
    await store.put_videos([VideoAnalysis.neutral("v0")], ts=1)
    # Written by another tool: not JSON, JSON of the wrong shape, a broken analysis.
    await store.redis.hset(store.portrait_key("bad"), mapping={"v": 3, "data": b"{half"})
    await store.redis.hset(store.portrait_key("shape"), mapping={"v": 1, "data": b"[1, 2]"})
    await store.redis.hset(store.video_key("vbad"), mapping={"data": b"\xff not json"})
    handler = PortraitHandler(store, sink, dead_letter_topic="dlq")
    result = await handler.handle([_watch("bad", "e1"), _watch("shape", "e2"),
                                   _watch("good", "e3"), _watch("good", "e4", "vbad")])
    assert result.applied == 4 and result.dead_letters == 0
    # The rule: the user starts fresh at the stored version; the bad bytes are in the
    # dead letter, the new portrait replaces them.
    fresh = await store.get_portrait("bad")
    assert fresh is not None and fresh.n_events == 1 and fresh.version == 4
    assert (await store.get_portrait("good")).n_events == 2  # type: ignore[union-attr]
    dead = sink.on("dlq")
    keys = {h["enf.quarantine.key"].decode() for _, _, h in dead}
    assert keys == {store.portrait_key("bad"), store.portrait_key("shape"),
                    store.video_key("vbad")}
    assert {v for _, v, _ in dead} == {b"{half", b"[1, 2]", b"\xff not json"}
    await store.close()


class _NanRows:
    """The shipped scorer, except that the given rows come back NaN."""

    def __init__(self, nan_rows: set[int]) -> None:
        from models.runtime import ScorerRuntime

        self.inner = ScorerRuntime(prefer_gpu=False)
        self.version, self.providers = self.inner.version, self.inner.providers
        self.nan_rows = nan_rows

    def score(self, portraits: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, r = self.inner.score(portraits, videos)
        p, r = p.copy(), r.copy()
        for i in self.nan_rows:
            p[i] = np.nan
        return p, r


async def test_scorer_quarantines_bad_vectors_and_never_suppresses_nan(redis_url: str) -> None:
    store, sink = _store(redis_url), ListSink()
    await store.put_videos([VideoAnalysis.neutral(f"v{i}") for i in range(4)], ts=1)
    nan_vec = np.full(len(np.frombuffer(await store.redis.hget(store.video_key("v0"), "vec"),
                                        np.float32)), np.nan, np.float32)
    await store.redis.hset(store.video_key("vnan"), mapping={"vec": nan_vec.tobytes(),
                                                             "data": b"{}"})
    await store.redis.hset(store.video_key("vshort"), mapping={"vec": b"\x00" * 12})
    good = await store.redis.hget(store.video_key("v1"), "vec")
    await store.redis.hset(store.video_key("vjson"), mapping={"vec": good, "data": b"{oops"})
    await store.redis.hset(store.portrait_key("u"), mapping={"v": 1, "vec": b"\x00\x01",
                                                             "data": b"not json"})
    handler = ScoringHandler(store, sink, _NanRows({1}), suppressions_topic="sup",
                             explanations_topic="exp", dead_letter_topic="dlq",
                             policy=SuppressionPolicy.unlimited(0.0),
                             explanations_per_request=5)
    msg = Message(event("candidates", event_id="c", request_id="r", user_id="u",
                        video_ids=["v0", "v1", "v2", "vnan", "vshort", "vjson"],
                        ts=1_700_000_000_000), b"u")
    result = await handler.handle([msg])
    suppressed = {orjson.loads(v)["video_id"] for _, v, _ in sink.on("sup")}  # type: ignore[arg-type]
    # v1's row is NaN (never suppressed); the three bad videos are unknown.
    assert suppressed == {"v0", "v2"} and result.unknown_videos == 3
    assert all(orjson.loads(v)["text"] for _, v, _ in sink.on("exp"))  # type: ignore[arg-type]
    keys = {h["enf.quarantine.key"].decode() for _, _, h in sink.on("dlq")}
    assert keys == {store.video_key("vnan"), store.video_key("vshort"), store.video_key("vjson"),
                    store.portrait_key("u")}
    await store.close()


def test_an_analysis_that_overflows_is_recorded_as_failed() -> None:
    class Overflowing:
        name = "overflowing"

        def analyze(self, e: VideoEvent) -> VideoAnalysis:
            a = VideoAnalysis.neutral(e.video_id)
            return VideoAnalysis(e.video_id, (float("inf"),) * len(a.topics), a.elements,
                                 a.reasons)

    a = safe_analyze(Overflowing(), VideoEvent("e", "v", "t", 1000, 0))
    assert a.extra["error"] and np.isfinite(a.topics).all()


async def test_stored_fields_that_are_not_integers_never_fail_a_batch(redis_url: str) -> None:
    """A portrait whose CAS version ``v`` is not an integer (another tool, a
    half-written hash) used to fail every batch that touched it, and the Lua CAS
    never matched it (exit 70 on every restart); likewise a watermark, an id set,
    a metric counter or a partition position of the wrong shape or type."""
    from streams.positions import PartitionPositions

    store, sink = _store(redis_url), ListSink()
    await store.put_videos([VideoAnalysis.neutral("v0")], ts=1)
    good = PortraitHandler(store, sink, dead_letter_topic="dlq")
    await good.handle([_watch("keep", "k1"), _watch("keep", "k2")])  # a sound portrait...
    await store.redis.hset(store.portrait_key("keep"), "v", b"2.0x")  # ...with a broken v
    await store.redis.hset(store.portrait_key("text"), mapping={"v": b"abc", "data": b"{"})
    await store.redis.hset(store.portrait_key("float"), mapping={"v": b"1.5"})
    await store.redis.hset(store.portrait_key("huge"), mapping={"v": b"9" * 30})
    await store.redis.hset(store.portrait_key("neg"), mapping={"v": b"-3"})
    await store.redis.set(store.portrait_key("str"), b"not a hash")  # the wrong type
    await store.redis.hset(store.portrait_key("wm"), mapping={"v": 0, "wm": b"x:y:z"})
    await store.redis.set(store.applied_key("ids"), b"not a sorted set")
    window = good.window_start()
    await store.redis.hset(store.metric_key(window), mapping={"events": b"lots", "x": b"?"})
    await store.redis.rpush(store.video_key("vlist"), b"not a hash")
    positions = PartitionPositions(store, "ue")
    await store.redis.hset(positions.key(0), mapping={"o": b"ten", "t": b"later"})
    handler = PortraitHandler(store, sink, dead_letter_topic="dlq", positions=positions)
    users = ["keep", "text", "float", "huge", "neg", "str", "wm", "ids", "fine"]
    msgs = [Message(m.value, m.key, "ue", 0, 100 + i, 1)
            for i, m in enumerate(_watch(u, f"{u}-e", "vlist" if u == "fine" else "v0")
                                  for u in users)]
    result = await handler.handle(msgs)
    assert result.applied == len(users) and result.conflicts == 0
    kept = await store.get_portrait("keep")
    # A portrait whose data is sound keeps its events and continues from its own version.
    assert kept is not None and kept.n_events == 3 and kept.version == 3
    for uid in users[1:]:
        p = await store.get_portrait(uid)
        assert p is not None and p.n_events == 1, uid
        assert int(await store.redis.hget(store.portrait_key(uid), "v")) == p.version
    assert (await store.read_for_update({"ids": ["ids-e"]}))["ids"][2] == {"ids-e"}
    # A redelivery is still recognised (the watermark was rewritten).
    again = await handler.handle(msgs)
    assert again.applied == 0 and again.duplicates == len(users)
    totals = await store.read_window(window)
    assert totals["events"] >= len(users) and "x" not in totals
    assert (await positions.read([0]))[0][0] == 100 + len(users)
    # The scorer reads the same keys: a portrait or video key of the wrong type is unknown.
    await store.redis.set(store.portrait_key("str2"), b"not a hash")
    scorer = ScoringHandler(store, sink, _NanRows(set()), suppressions_topic="sup",
                            explanations_topic="exp", dead_letter_topic="dlq",
                            policy=SuppressionPolicy.unlimited(0.0))
    scored = await scorer.handle([Message(event(
        "candidates", event_id="c", request_id="r", user_id=u, video_ids=["v0", "vlist"],
        ts=1_700_000_000_000), u.encode()) for u in ("fine", "str2")])
    assert scored.unknown_videos == 2
    quarantined = {h["enf.quarantine.key"].decode(): v for _, v, h in sink.on("dlq")}
    assert {store.video_key("vlist"), store.portrait_key("str2")} <= set(quarantined)
    for uid in ("keep", "text", "float", "huge", "neg", "str", "wm"):
        assert store.portrait_key(uid) in quarantined, uid
    assert quarantined[store.portrait_key("keep")] == b"2.0x"
    assert quarantined[store.portrait_key("wm")] == b"x:y:z"
    await store.close()
