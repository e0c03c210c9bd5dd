"""Read-your-writes through a real worker on Apache Kafka and Tansu: candidates
sent on the user-events topic are scored on the portrait at their place in the
user's stream, so a feed sent flat out gives exactly the suppressions of the
same feed sent slowly (with the separate candidates topic it does not: the
scorer races the portrait path)."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from streams.config import TopicNames
from tests.integration.workers import WorkerProcess, consume, event, produce, wait_until

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future

N_VIDEOS = 12
TITLES = ["Spider close-up in the garden shed", "Cooking a quick pasta dinner",
          "Highway pile-up caught on camera", "Slow documentary about moss",
          "Cute puppies playing in the snow", "Knife fight in a movie scene"]


def _feed(tag: str, n_users: int = 12, per_user: int = 30, seed: int = 5
          ) -> list[tuple[str, bytes]]:
    """Per user: watches, a few dislikes and a candidates request every few events,
    interleaved across users; ids carry ``tag`` so two copies can share a topic."""
    rng = random.Random(seed)
    per: list[list[tuple[str, bytes]]] = []
    for u in range(n_users):
        uid = f"{tag}-u{u}"
        evs = []
        for k in range(per_user):
            ts = T0 + 10_000 + k
            roll = rng.random()
            if k % 4 == 3:
                vids = rng.sample(range(N_VIDEOS), 8)
                evs.append((uid, event("candidates", event_id=f"{uid}-c{k}",
                                       request_id=f"{uid}-r{k}", user_id=uid,
                                       video_ids=[f"v{i}" for i in vids], ts=ts)))
            elif roll < 0.1:
                evs.append((uid, event("feedback", event_id=f"{uid}-f{k}", user_id=uid,
                                       video_id=f"v{rng.randrange(N_VIDEOS)}", kind="dislike",
                                       reason_category="visual_discomfort", ts=ts)))
            else:
                evs.append((uid, event("watch", event_id=f"{uid}-w{k}", user_id=uid,
                                       video_id=f"v{rng.randrange(N_VIDEOS)}",
                                       play_ms=rng.randrange(0, 20_000), duration_ms=20_000,
                                       ts=ts)))
        per.append(evs)
    out: list[tuple[str, bytes]] = []
    while any(per):  # round-robin: every user's events in order, users interleaved
        for evs in per:
            if evs:
                out.append(evs.pop(0))
    return out


async def _send_slowly(bootstrap: str, topic: str, feed: list[tuple[str, bytes]],
                       gap_s: float) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in feed:
            await producer.send_and_wait(topic, value=value, key=key.encode())
            await asyncio.sleep(gap_s)
    finally:
        await producer.stop()


def _answers(pages: list[Any], tag: str) -> dict[str, list[tuple[str, bool]]]:
    out = {}
    for m in pages:
        p = orjson.loads(m.value)
        if p["user_id"].startswith(f"{tag}-"):
            rid = p["request_id"][len(tag) + 1:]
            out[rid] = [(i["video_id"], i["suppressed"]) for i in p["items"]]
            assert p["stale"] is False and p["portrait_lag_events"] == 0
    return out


def test_flat_out_and_slow_feeds_give_the_same_suppressions(
        broker: Any, redis_url: str, topic_prefix: str, tmp_path: Path) -> None:
    topics = TopicNames(topic_prefix)
    r = redis.Redis.from_url(redis_url)
    # demote: one page per request (so every answer is counted); threshold 0 with
    # the default budget: each warm request loses its 2 likeliest candidates, so
    # which ones depends on the portrait the request was scored on.
    env = {"ENF_SUPPRESS_MODE": "demote", "ENF_SUPPRESS_THRESHOLD": "0.0"}
    worker = WorkerProcess(kafka_url=broker.kafka_url, redis_url=redis_url,
                           broker_kind=broker.kind, prefix=topic_prefix, env=env,
                           log_path=tmp_path / "worker.log")
    try:
        produce(broker.bootstrap, [
            (topics.videos, f"v{i}".encode(),
             event("video", event_id=f"video-{i}", video_id=f"v{i}",
                   title=TITLES[i % len(TITLES)], duration_ms=20_000, tags=["t"], ts=T0))
            for i in range(N_VIDEOS)])
        wait_until(lambda: sum(1 for _ in r.scan_iter(match=f"{topic_prefix}:v:*"))
                   >= N_VIDEOS, timeout_s=120, what="video analyses", worker=worker)
        fast, slow = _feed("fast"), _feed("slow")
        n_requests = sum(b'"candidates"' in v for _, v in fast)
        t0 = time.monotonic()
        produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in fast])
        asyncio.run(_send_slowly(broker.bootstrap, topics.user_events, slow, 0.003))
        slow_s = time.monotonic() - t0
        wait_until(lambda: worker.metrics().get("enf_candidate_requests_total", 0)
                   >= 2 * n_requests, timeout_s=90, what="every request answered",
                   worker=worker)
        pages = consume(broker.bootstrap, topics.suppressions, 2 * n_requests, timeout_s=60)
        a, b = _answers(pages, "fast"), _answers(pages, "slow")
        assert len(a) == len(b) == n_requests, (len(a), len(b), n_requests)
        assert a == b
        suppressed = sum(s for items in a.values() for _, s in items)
        assert suppressed > 0 and slow_s > 1.0
    finally:
        worker.stop()
