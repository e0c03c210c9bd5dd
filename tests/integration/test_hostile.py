"""A hostile producer against a real worker on Apache Kafka and Tansu: no single
message or stored value stops a partition (issue 10). One worker per broker runs
every case, so the whole file takes seconds per broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.config import TopicNames
from tests.integration.workers import WorkerProcess, consume, event, produce, wait_until

pytestmark = pytest.mark.integration

NOW = int(time.time() * 1000)


def _watch(uid: str, eid: str, **kw: Any) -> bytes:
    return event("watch", **{"event_id": eid, "user_id": uid, "video_id": "v0", "play_ms": 100,
                             "duration_ms": 1000, "ts": NOW, **kw})


def _applied(r: redis.Redis, prefix: str, uid: str) -> int:
    raw = r.hget(f"{prefix}:p:{{{uid}}}", "data")
    try:
        return int(orjson.loads(raw)["n_events"]) if raw else 0
    except orjson.JSONDecodeError:
        return 0


def test_no_message_or_stored_value_stops_the_worker(broker: Any, redis_url: str,
                                                     topic_prefix: str, tmp_path: Path) -> None:
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(redis_url)
    # A portrait half-written by another tool, before the worker ever reads it.
    r.hset(f"{topic_prefix}:p:{{ucorrupt}}", mapping={"v": 2, "data": b'{"user_id": "uc'})
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                           broker_kind=broker.kind, prefix=topic_prefix,
                           log_path=tmp_path / "worker.log")
    try:
        huge = b"[" + b" " * 999_000  # invalid JSON just under 1 MB
        bad_video = event("video", event_id="bv", video_id="vhuge", title="t",
                          duration_ms=1000, ts=NOW, frame_features=[[1e39] * 4] * 16)
        produce(broker.bootstrap, [
            (topics.user_events, b"u1", huge),
            (topics.videos, b"vhuge", bad_video),
            (topics.user_events, b"ucorrupt", _watch("ucorrupt", "c1")),
            *[(topics.user_events, b"u1", _watch("u1", f"w{i}")) for i in range(5)],
        ])
        wait_until(lambda: _applied(r, topic_prefix, "u1") == 5
                   and _applied(r, topic_prefix, "ucorrupt") == 1, timeout_s=90,
                   what="valid events after the hostile ones", worker=worker)
        dead = consume(broker.bootstrap, topics.dead_letters, 3, timeout_s=30)
        by_source = {dict(d.headers).get("enf.source.topic", b"").decode(): d for d in dead}
        big = by_source[topics.user_events]
        h = dict(big.headers)
        assert h["enf.truncated"] == str(len(huge)).encode()
        assert big.value == huge[:len(big.value)] and len(big.value) < len(huge)
        assert int(h["enf.source.offset"]) == 0 and h["enf.source.partition"]
        assert b"frame_features" in dict(by_source[topics.videos].headers)["enf.error"]
        quarantined = [d for d in dead if "enf.quarantine.key" in dict(d.headers)]
        assert [d.value for d in quarantined] == [b'{"user_id": "uc']
        assert worker.alive()
    finally:
        assert worker.stop() in (0, -15), worker.log_tail()
