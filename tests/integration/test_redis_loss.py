"""Redis restarted without persistence mid-stream: detected, rebuilt, exact.

Before the epoch, a worker carried on over the emptied Redis as if nothing had
happened: the events applied before the restart were gone from every portrait,
every video analysis was gone, and suppressions stopped for good. Now the
worker's next batch finds the epoch key missing and the worker exits with code
71 without committing; ``enf portraits rebuild`` replays the videos (re-analysed)
and user-events topics; restarted, the worker carries on, and every portrait
equals one delivery of all events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from enf_core.analysis import VideoAnalysis
from enf_core.events import decode_events
from enf_core.portrait import Portrait, apply_event
from streams.app import EXIT_REDIS_LOST
from streams.config import TopicNames
from streams.process import ROOT
from streams.services import RedisConfig, start_redis
from tests.integration.workers import WorkerProcess, event, produce, wait_until

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future


def _videos(n: int) -> list[tuple[str, bytes]]:
    titles = ["Spider close-up in the shed", "Quick pasta dinner", "Highway pile-up",
              "Slow moss documentary", "Puppies in the snow"]
    return [(f"v{i}", event("video", event_id=f"video-{i}", video_id=f"v{i}",
                            title=titles[i % 5], duration_ms=20_000, tags=["demo"], ts=T0 + i))
            for i in range(n)]


def _events(tag: str, n_users: int, per_user: int) -> list[tuple[str, bytes]]:
    return [(f"u{u}", event("watch", event_id=f"{tag}-{u}-{k}", user_id=f"u{u}",
                            video_id=f"v{(u + k) % 5}", play_ms=(u * 7919 + k * 104729) % 20_000,
                            duration_ms=20_000, ts=T0 + 10_000 + k))
            for u in range(n_users) for k in range(per_user)]


def _analyses(r: redis.Redis, prefix: str) -> dict[str, VideoAnalysis]:
    out = {}
    for key in r.scan_iter(match=f"{prefix}:v:*"):
        data = r.hget(key, "data")
        if data:
            a = VideoAnalysis.from_dict(orjson.loads(data))  # type: ignore[arg-type]
            out[a.video_id] = a
    return out


def _stored(r: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    out = {}
    for key in r.scan_iter(match=f"{prefix}:p:*"):
        p = orjson.loads(r.hget(key, "data"))  # type: ignore[arg-type]
        out[p["user_id"]] = p
    return out


def _reference(events: list[tuple[str, bytes]], analyses: dict[str, VideoAnalysis]
               ) -> dict[str, dict[str, Any]]:
    portraits: dict[str, Portrait] = {}
    for _k, raw in events:
        for e in decode_events(raw):
            p = portraits.setdefault(e.user_id, Portrait.new(e.user_id))  # type: ignore[union-attr]
            apply_event(p, e, analyses.get(e.video_id))  # type: ignore[union-attr]
    return {uid: p.to_dict() for uid, p in portraits.items()}


def test_redis_restarted_without_persistence_is_detected_and_rebuilt(
        broker: Any, topic_prefix: str, tmp_path: Path) -> None:
    topics = TopicNames(topic_prefix)
    service = start_redis()
    port = int(service.url.rsplit(":", 1)[1].split("/")[0])
    env = {"ENF_PORTRAIT_ENGINE": "direct", "ENF_REDIS_RETRY_MAX_S": "0.3",
           "ENF_REDIS_TIMEOUT_S": "2"}

    def start() -> WorkerProcess:
        return WorkerProcess(kafka_url=broker.kafka_url, redis_url=service.url,
                             broker_kind=broker.kind, prefix=topic_prefix, env=env,
                             log_path=tmp_path / "worker.log")

    first, second, third = _events("a", 20, 10), _events("b", 20, 10), _events("c", 20, 10)
    worker = start()
    try:
        r = redis.Redis.from_url(service.url)
        produce(broker.bootstrap, [(topics.videos, k.encode(), v) for k, v in _videos(5)])
        wait_until(lambda: len(_analyses(r, topic_prefix)) == 5, timeout_s=120,
                   what="video analyses", worker=worker)
        analyses = _analyses(r, topic_prefix)
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in first])
        wait_until(lambda: _stored(r, topic_prefix) == _reference(first, analyses),
                   timeout_s=60, what="first events applied", worker=worker)

        # Redis restarts on the same port without persistence: everything is gone.
        service.stop()
        # (the restarted server keeps its password, as a configured Redis would)
        password = service.url.split("@")[0].rsplit(":", 1)[1]
        service = start_redis(RedisConfig(port=port, password=password))
        r = redis.Redis.from_url(service.url)
        assert r.dbsize() == 0
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in second])
        worker.proc.wait(timeout=60)
        assert worker.proc.returncode == EXIT_REDIS_LOST, worker.log_tail()
        assert "lost its data" in worker.log_tail()
        assert _stored(r, topic_prefix) == {}  # nothing written over the empty Redis
        worker.stop()

        rebuild = subprocess.run(
            [sys.executable, "-m", "streams.cli", "portraits", "rebuild", "--json"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
            env={**os.environ, "ENF_KAFKA_URL": broker.kafka_url, "ENF_REDIS_URL": service.url,
                 "ENF_BROKER_KIND": broker.kind, "ENF_TOPIC_PREFIX": topic_prefix})
        assert rebuild.returncode == 0, rebuild.stdout + rebuild.stderr
        summary = json.loads(rebuild.stdout.strip().splitlines()[-1])
        assert summary["user_events"]["applied"] == len(first) + len(second)
        assert summary["videos"]["analyzed"] == 5 and not summary["truncated"]
        assert _analyses(r, topic_prefix) == analyses  # re-analysed, identically
        assert _stored(r, topic_prefix) == _reference(first + second, analyses)

        if broker.kind == "tansu":
            return  # the resume below is broker-independent; a Tansu worker start is slow
        worker = start()  # resumes at its committed offsets; re-reads are skipped
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in third])
        everything = _reference(first + second + third, analyses)
        wait_until(lambda: _stored(r, topic_prefix) == everything, timeout_s=90,
                   what="portraits equal to one delivery", worker=worker)
        assert worker.alive()
    finally:
        worker.stop()
        service.stop()


def test_rebuild_applies_the_workers_input_limits(broker: Any, redis_url: str,
                                                  topic_prefix: str) -> None:
    """``enf portraits rebuild`` reads the same ``ENF_`` limits as the worker. It
    used the defaults: with the key check turned off (``ENF_CHECK_KEYS=false``)
    every event keyed otherwise was dead-lettered by the rebuild and lost, and a
    page over ``ENF_MAX_PAGE_EVENTS`` that the workers refused was applied."""
    import asyncio

    from streams.config import WorkerConfig
    from streams.handlers.videos import NeutralAnalyzer
    from streams.rebuild import rebuild_portraits

    topics = TopicNames(topic_prefix)
    rekeyed = [(topics.user_events, b"session-1", v) for _k, v in _events("k", 1, 3)]
    page = b"[" + b",".join(v for _k, v in _events("p", 3, 5)[10:]) + b"]"  # u2: 5 events
    produce(broker.bootstrap, [*rekeyed, (topics.user_events, b"u2", page)])
    env = {"ENF_KAFKA_URL": broker.kafka_url, "ENF_REDIS_URL": redis_url,
           "ENF_BROKER_KIND": broker.kind, "ENF_TOPIC_PREFIX": topic_prefix,
           "ENF_CHECK_KEYS": "false", "ENF_MAX_PAGE_EVENTS": "4"}
    summary = asyncio.run(rebuild_portraits(WorkerConfig.from_env(env),
                                            analyzer=NeutralAnalyzer()))
    assert summary["user_events"]["messages"] == 4
    stored = _stored(redis.Redis.from_url(redis_url), topic_prefix)
    assert set(stored) == {"u0"} and stored["u0"]["n_events"] == 3
