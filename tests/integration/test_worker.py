"""A real worker process on a real broker (Apache Kafka and Tansu) and Redis.

Covers the issue's promises end to end: portraits appear in Redis; candidates
become suppression and explanation records; K malformed messages become K dead
letters with their original bytes; the same events delivered twice, or replayed
after the worker is killed mid-stream, leave every portrait exactly as after one
delivery.
"""

from __future__ import annotations

import contextlib
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from enf_core.analysis import VideoAnalysis
from enf_core.events import decode_events
from enf_core.portrait import Portrait, apply_event
from streams.config import TopicNames
from tests.integration.workers import WorkerProcess, consume, event, produce, wait_until

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000  # epoch ms: events must be after 2000 and not in the future
TITLES = ["Spider close-up in the garden shed", "Cooking a quick pasta dinner",
          "Highway pile-up caught on camera", "Slow documentary about moss",
          "Cute puppies playing in the snow"]


def _videos(n: int) -> list[tuple[str, bytes]]:
    return [(f"v{i}", event("video", event_id=f"video-{i}", video_id=f"v{i}",
                            title=TITLES[i % len(TITLES)], duration_ms=20_000,
                            tags=["demo"], ts=T0 + i)) for i in range(n)]


def _user_events(n_users: int, per_user: int, n_videos: int, seed: int = 7
                 ) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    out = []
    for u in range(n_users):
        uid = f"u{u}"
        for k in range(per_user):
            vid = f"v{rng.randrange(n_videos)}"
            ts = T0 + 10_000 + k
            roll = rng.random()
            if roll < 0.2:
                value = event("impression", event_id=f"{uid}-imp-{k}", user_id=uid,
                              request_id=f"r-{uid}-{k}", ts=ts,
                              items=[{"video_id": vid, "position": 0},
                                     {"video_id": f"v{(int(vid[1:]) + 1) % n_videos}",
                                      "position": 1}])
            elif roll < 0.9:
                value = event("watch", event_id=f"{uid}-w-{k}", user_id=uid, video_id=vid,
                              play_ms=rng.randrange(0, 20_000), duration_ms=20_000, ts=ts)
            else:
                value = event("feedback", event_id=f"{uid}-f-{k}", user_id=uid, video_id=vid,
                              kind="dislike", reason_category="visual_discomfort",
                              reason_text="the spider made my skin crawl", ts=ts)
            out.append((uid, value))
    return out


BAD_USER_EVENTS: list[bytes] = [
    b"not json at all",
    b'{"v": 1, "type": "watch", "event_id": "x", "user_id": "u1"}',  # missing fields
    b'{"v": 1, "type": "watch", "event_id": "x", "user_id": "u1", "video_id": "v1",'
    b' "play_ms": "ten", "duration_ms": 1000, "ts": 1}',
    b'{"v": 9, "type": "watch"}',
    b'{"v": 1, "type": "feedback", "event_id": "x", "user_id": "u1", "video_id": "v1",'
    b' "kind": "dislike", "reason_category": "meh", "ts": 1}',
    b"[" * 5000 + b"]" * 5000,  # hostile nesting
    orjson.dumps({"v": 1, "type": "watch", "event_id": "x", "user_id": "u" * 10_000,
                  "video_id": "v1", "play_ms": 1, "duration_ms": 1, "ts": 1}),
    b'{"v": 1, "type": "video", "event_id": "vx", "video_id": "v1", "title": "t",'
    b' "duration_ms": 1000, "ts": 1}',  # right shape, wrong topic
]
BAD_CANDIDATES: list[bytes] = [b"\xff\xfe\x00", b'{"v": 1, "type": "candidates", "video_ids": []}']


def _reference(events: list[tuple[str, bytes]], analyses: dict[str, VideoAnalysis]
               ) -> dict[str, dict[str, Any]]:
    """What one delivery of ``events`` must produce, computed without services."""
    portraits: dict[str, Portrait] = {}
    for _key, raw in events:
        for e in decode_events(raw):
            p = portraits.setdefault(e.user_id, Portrait.new(e.user_id))  # type: ignore[union-attr]
            apply_event(p, e, analyses.get(e.video_id))  # type: ignore[union-attr]
    return {uid: p.to_dict() for uid, p in portraits.items()}


def _stored(r: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    out = {}
    for key in r.scan_iter(match=f"{prefix}:p:*", count=1000):
        p = orjson.loads(r.hget(key, "data"))
        out[p["user_id"]] = p
    return out


def _analyses(r: redis.Redis, prefix: str) -> dict[str, VideoAnalysis]:
    out = {}
    for key in r.scan_iter(match=f"{prefix}:v:*", count=1000):
        data = r.hget(key, "data")
        if data:
            a = VideoAnalysis.from_dict(orjson.loads(data))
            out[a.video_id] = a
    return out


def _events_counted(r: redis.Redis, prefix: str) -> int:
    total = 0
    for key in r.scan_iter(match=f"{prefix}:m:*", count=1000):
        total += int(r.hget(key, "events") or 0)
    return total


def _n_valid(events: list[tuple[str, bytes]]) -> int:
    return sum(len(decode_events(v)) for _, v in events)


def test_worker_end_to_end(broker: Any, redis_url: str, topic_prefix: str,
                           tmp_path: Path) -> None:
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(redis_url)
    # Threshold 0 with no budget and no cold rule: every judged candidate is suppressed.
    env = {"ENF_SUPPRESS_THRESHOLD": "0.0", "ENF_SUPPRESS_MAX_PER_REQUEST": "-1",
           "ENF_SUPPRESS_MAX_FRACTION": "1", "ENF_SUPPRESS_COLD_WATCHES": "0",
           "ENF_EXPLANATIONS_PER_REQUEST": "2"}
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                           broker_kind=broker.kind, prefix=topic_prefix, env=env,
                           log_path=tmp_path / "worker.log")
    try:
        videos = _videos(5)
        produce(broker.bootstrap, [(topics.videos, k.encode(), v) for k, v in videos]
                + [(topics.videos, b"bad", b'{"v": 1, "type": "video"}')])
        wait_until(lambda: len(_analyses(r, topic_prefix)) == 5, timeout_s=120,
                   what="5 video analyses in Redis", worker=worker)
        analyses = _analyses(r, topic_prefix)

        user_events = _user_events(30, 12, 5)
        produce(broker.bootstrap,
                [(topics.user_events, k.encode(), v) for k, v in user_events]
                + [(topics.user_events, b"u1", v) for v in BAD_USER_EVENTS])
        n_valid = _n_valid(user_events)
        wait_until(lambda: _events_counted(r, topic_prefix) >= n_valid, timeout_s=60,
                   what="all user events applied", worker=worker)
        reference = _reference(user_events, analyses)
        assert _stored(r, topic_prefix) == reference
        assert _events_counted(r, topic_prefix) == n_valid

        # Candidates: every candidate suppressed at threshold 0; 2 explanations each.
        requests = [(f"u{i}", event("candidates", event_id=f"c{i}", request_id=f"req{i}",
                                    user_id=f"u{i}", video_ids=[f"v{j}" for j in range(5)],
                                    ts=T0 + 20_000)) for i in range(10)]
        produce(broker.bootstrap, [(topics.candidates, k.encode(), v) for k, v in requests]
                + [(topics.candidates, b"u1", v) for v in BAD_CANDIDATES])
        sup = consume(broker.bootstrap, topics.suppressions, 50, timeout_s=60)
        exp = consume(broker.bootstrap, topics.explanations, 20, timeout_s=30)
        assert len(sup) == 50 and len(exp) == 20
        s0 = orjson.loads(sup[0].value)
        assert {"request_id", "user_id", "video_id", "p_negative", "reason", "model_version",
                "ts"} <= s0.keys()
        e0 = orjson.loads(exp[0].value)
        assert e0["text"] and "traits" in e0["evidence"] and "elements" in e0["evidence"]
        assert all(orjson.loads(m.value)["user_id"] == m.key.decode() for m in sup)

        # Dead letters: exactly the bad messages, original bytes, reason, source.
        n_bad = len(BAD_USER_EVENTS) + len(BAD_CANDIDATES) + 1
        dead = consume(broker.bootstrap, topics.dead_letters, n_bad + 1, timeout_s=15)
        assert len(dead) == n_bad
        originals = {d.value for d in dead}
        assert set(BAD_USER_EVENTS) | set(BAD_CANDIDATES) <= originals
        for d in dead:
            headers = dict(d.headers)
            assert headers["enf.error"]
            assert headers["enf.source.topic"].decode() in topics.inputs()
            assert int(headers["enf.source.offset"]) >= 0

        # The same events delivered twice: nothing changes.
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in user_events])
        wait_until(lambda: worker.metrics().get("enf_portrait_events_duplicate_total", 0)
                   >= n_valid, timeout_s=60, what="duplicates skipped", worker=worker)
        assert _stored(r, topic_prefix) == reference
        assert _events_counted(r, topic_prefix) == n_valid
    finally:
        worker.stop()


@pytest.mark.parametrize("engine", ["faust", "direct"])
def test_worker_killed_mid_stream_then_replayed(broker: Any, redis_url: str, topic_prefix: str,
                                                tmp_path: Path, engine: str) -> None:
    """SIGKILL while batches are in flight, restart, replay everything again:
    every portrait equals one clean delivery, and nothing was counted twice."""
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(redis_url)
    # Small batches and a fast poll, so the kill lands while batches are in flight.
    env = {"ENF_BATCH_MAX": "20", "ENF_SESSION_TIMEOUT_S": "6",
           "ENF_PORTRAIT_ENGINE": engine}

    def start() -> WorkerProcess:
        return WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                             broker_kind=broker.kind, prefix=topic_prefix, env=env,
                             log_path=tmp_path / "worker.log")

    worker = start()
    try:
        produce(broker.bootstrap, [(topics.videos, k.encode(), v) for k, v in _videos(5)])
        wait_until(lambda: len(_analyses(r, topic_prefix)) == 5, timeout_s=120,
                   what="video analyses", worker=worker)
        analyses = _analyses(r, topic_prefix)
        user_events = _user_events(60, 60, 5, seed=11)
        n_valid = _n_valid(user_events)
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in user_events])
        wait_until(lambda: _events_counted(r, topic_prefix) > 0, timeout_s=60,
                   what="first batches applied", worker=worker, interval_s=0.02)
        worker.kill()
        partial = _events_counted(r, topic_prefix)
        assert 0 < partial < n_valid, "the kill should land mid-stream"

        worker = start()
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in user_events])
        wait_until(lambda: worker.metrics().get("enf_portrait_events_applied_total", 0)
                   + worker.metrics().get("enf_portrait_events_duplicate_total", 0)
                   >= 2 * n_valid - partial and _events_counted(r, topic_prefix) >= n_valid,
                   timeout_s=120, what="replay processed", worker=worker)
        assert _stored(r, topic_prefix) == _reference(user_events, analyses)
        assert _events_counted(r, topic_prefix) == n_valid
    finally:
        worker.stop()


def test_worker_waits_out_a_frozen_redis(broker: Any, topic_prefix: str, tmp_path: Path) -> None:
    """Redis stops answering (SIGSTOP) while events flow: the worker retries,
    commits nothing it has not written, and applies everything once Redis is back."""
    import os
    import signal

    from streams.services import start_redis

    service = start_redis()
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(service.url)
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=service.url,
                           broker_kind=broker.kind, prefix=topic_prefix,
                           env={"ENF_REDIS_RETRY_MAX_S": "0.5", "ENF_REDIS_TIMEOUT_S": "1"},
                           log_path=tmp_path / "w.log")
    try:
        worker.wait_ready()
        first = _user_events(10, 5, 5, seed=3)
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in first])
        wait_until(lambda: _events_counted(r, topic_prefix) >= _n_valid(first), timeout_s=60,
                   what="first events", worker=worker)
        os.kill(service.pid, signal.SIGSTOP)
        second = _user_events(10, 5, 5, seed=4)
        second = [(k, v.replace(b'"event_id":"', b'"event_id":"b-')) for k, v in second]
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in second])
        import time

        time.sleep(4)
        assert worker.alive()
        os.kill(service.pid, signal.SIGCONT)
        total = _n_valid(first) + _n_valid(second)
        wait_until(lambda: _events_counted(r, topic_prefix) >= total, timeout_s=90,
                   what="events after Redis came back", worker=worker)
        assert _events_counted(r, topic_prefix) == total
        assert "retrying" in worker.log_path.read_text(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(service.pid, signal.SIGCONT)
        worker.stop()
        service.stop()
