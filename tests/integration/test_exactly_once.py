"""Exactly-once portraits without a window, on a real broker and Redis.

The recent-id set keeps ``ENF_APPLIED_IDS_PER_USER`` (2,000) ids per user; a
redelivery older than that used to be applied again. The watermark (the last
applied partition:offset:index beside the portrait) makes a redelivery of any
age a no-op: here a second consumer group re-reads 2,500 events per user from
the start of the topic (an offset reset), and every portrait stays as after one
delivery.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest
import redis

from enf_core.events import decode_events
from enf_core.portrait import Portrait, apply_event
from streams.config import TopicNames
from streams.handlers.base import Message
from streams.handlers.portraits import PortraitHandler
from streams.store import RedisStore, StoreConfig
from tests.integration.workers import consume, event, produce

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000  # epoch ms: the worker refuses events before 2000 or in the future

PER_USER = 2500  # more than the 2,000 ids the recent-id set keeps


class NullSink:
    async def send(self, topic: str, key: bytes | None, value: bytes,
                   headers: Any = None) -> Any:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def user_events(n_users: int, seed: int = 5) -> list[tuple[str, bytes]]:
    """Per user 100 single watches and 48 impression pages of 50 items (2,500
    events), interleaved: positions carry both offsets and in-message indices."""
    rng = random.Random(seed)
    out = []
    for u in range(n_users):
        uid = f"u{u}"
        kinds = ["w"] * 100 + ["p"] * 48
        rng.shuffle(kinds)
        for k, kind in enumerate(kinds):
            if kind == "p":
                value = event("impression", event_id=f"{uid}-p{k}", user_id=uid,
                              request_id=f"r{k}", ts=T0 + 10_000 + k,
                              items=[{"video_id": f"v{rng.randrange(50)}", "position": i}
                                     for i in range(50)])
            else:
                value = event("watch", event_id=f"{uid}-w{k}", user_id=uid,
                              video_id=f"v{rng.randrange(50)}", play_ms=rng.randrange(20_000),
                              duration_ms=20_000, ts=T0 + 10_000 + k)
            out.append((uid, value))
    return out


def reference(events: list[tuple[str, bytes]]) -> dict[str, dict[str, Any]]:
    portraits: dict[str, Portrait] = {}
    for _key, raw in events:
        for e in decode_events(raw):
            p = portraits.setdefault(e.user_id, Portrait.new(e.user_id))  # type: ignore[union-attr]
            apply_event(p, e, None)  # type: ignore[arg-type]
    return {uid: p.to_dict() for uid, p in portraits.items()}


def stored(r: redis.Redis, prefix: str) -> dict[str, dict[str, Any]]:
    out = {}
    for key in r.scan_iter(match=f"{prefix}:p:*", count=1000):
        p = orjson.loads(r.hget(key, "data"))  # type: ignore[arg-type]
        out[p["user_id"]] = p
    return out


def counted(r: redis.Redis, prefix: str) -> int:
    return sum(int(r.hget(key, "events") or 0)  # type: ignore[arg-type]
               for key in r.scan_iter(match=f"{prefix}:m:*", count=1000))


def test_a_redelivery_older_than_the_id_window_is_a_no_op(
        broker: Any, redis_url: str, topic_prefix: str) -> None:
    """The records come from the broker (their real partitions and offsets) and
    go through the portrait handler both engines share, twice: the second read
    is what an offset reset or a new consumer group delivers."""
    topics = TopicNames(topic_prefix)
    events = user_events(4)
    n = sum(len(decode_events(v)) for _, v in events)
    assert n == 4 * PER_USER
    produce(broker.bootstrap, [(topics.user_events, k.encode(), v) for k, v in events])
    records = consume(broker.bootstrap, topics.user_events, len(events), timeout_s=60)
    assert len(records) == len(events)
    msgs = [Message(m.value, m.key, m.topic, m.partition, m.offset, m.timestamp)
            for m in records]
    store = RedisStore(redis_url, StoreConfig(prefix=topic_prefix))

    async def deliver() -> tuple[int, int]:
        # A fresh handler each time: a new worker, nothing cached.
        handler = PortraitHandler(store, NullSink(), dead_letter_topic="dlq", window_s=3600)
        applied = duplicates = 0
        for i in range(0, len(msgs), 50):
            res = await handler.handle(msgs[i:i + 50])
            applied, duplicates = applied + res.applied, duplicates + res.duplicates
        return applied, duplicates

    async def run() -> None:
        try:
            assert await deliver() == (n, 0)
            assert await deliver() == (0, n)
        finally:
            await store.close()

    asyncio.run(run())
    r = redis.Redis.from_url(redis_url)
    assert stored(r, topic_prefix) == reference(events)
    assert counted(r, topic_prefix) == n
    wms = [r.hget(key, "wm") for key in r.scan_iter(match=f"{topic_prefix}:p:*")]
    assert len(wms) == 4 and all(wm and wm.count(b":") == 2 for wm in wms)
