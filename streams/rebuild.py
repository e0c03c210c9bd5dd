"""Rebuilding Redis state from the retained input topics (``enf portraits rebuild``).

When Redis lost its data (restarted without persistence, flushed, failed over
to an empty replica) workers stop with exit code 71 (see ``RedisStore``'s
epoch). This rebuild replays the two topics Redis state is made of, from their
first retained offset to the end offsets seen when it starts:

1. ``videos``: every video is analysed again by the Video Agent, so analyses
   lost with Redis exist again before the events that use them are applied;
2. ``user-events``: through the same portrait handler the workers use, so the
   portraits, recent ids and watermarks are exactly what one delivery makes.

Metric windows are not re-counted (they are per wall-clock window: the replay
would count old events in the current one); dead letters are not produced again.
A new epoch is written first: a worker still running on the old one stops.
Restarted workers resume at their committed offsets; events they re-read that
the rebuild applied are at or below the watermarks, so they are skipped.

The rebuild is exact only if the topics' retention still covers every event
the portraits reflect (``retention.ms=-1`` on both topics, or at least the
portraits' lifetime, ``ENF_PORTRAIT_TTL_S``): a partition whose first retained
offset is above 0 is reported in ``truncated``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from streams.config import WorkerConfig
from streams.handlers.base import Message

__all__ = ["NullSink", "read_topic_to_end", "rebuild_portraits"]

log = logging.getLogger(__name__)


class NullSink:
    """Drops what handlers produce: the first delivery already produced it."""

    async def send(self, topic: str, key: bytes | None, value: bytes | None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> Awaitable[Any]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def read_topic_to_end(cfg: WorkerConfig, topic: str,
                            handle: Callable[[list[Message]], Awaitable[Any]],
                            progress: Callable[[int, int], None] | None = None
                            ) -> dict[str, Any]:
    """Hand every retained record of ``topic`` up to the end offsets seen at
    the start to ``handle`` in batches; no consumer group, nothing committed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.services import bootstrap_servers

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(cfg.kafka_url), group_id=None,
        **cfg.kafka_security().aiokafka(),
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_partition_fetch_bytes=cfg.consumer_max_fetch_size,
        fetch_max_wait_ms=cfg.fetch_max_wait_ms or (20 if cfg.broker_kind == "tansu" else 500))
    await consumer.start()
    try:
        partitions = await _partitions(cfg, topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return {"topic": topic, "partitions": 0, "messages": 0, "truncated": []}
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        begin = await consumer.beginning_offsets(tps)
        truncated = [tp.partition for tp in tps if begin[tp] > 0]
        if truncated:
            log.warning("%s: partitions %s no longer start at offset 0 (retention): the "
                        "rebuild misses their oldest events", topic, truncated)
        await consumer.seek_to_beginning(*tps)
        total = sum(end[tp] - begin[tp] for tp in tps)  # a lower bound on Tansu
        remaining = {tp for tp in tps if end[tp] > begin[tp]}
        # Tansu answers ListOffsets(latest) with the last batch's base offset + 1,
        # not the end; a fetch's high watermark is right on both brokers. So the
        # end of a partition is the larger of the two, fixed at its first fetch.
        fixed: set[Any] = set()
        seen = 0
        while remaining:
            batch = await consumer.getmany(*remaining, timeout_ms=1000,
                                           max_records=cfg.batch_max)
            for tp in batch:
                if tp not in fixed:
                    end[tp] = max(end[tp], consumer.highwater(tp) or 0)
                    fixed.add(tp)
            msgs = [Message(r.value, r.key, r.topic, r.partition, r.offset, r.timestamp)
                    for tp, records in batch.items() for r in records if r.offset < end[tp]]
            if msgs:
                await handle(msgs)
                seen += len(msgs)
                if progress is not None:
                    progress(seen, total)
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return {"topic": topic, "partitions": len(tps), "messages": seen,
                "truncated": truncated}
    finally:
        await consumer.stop()


async def _partitions(cfg: WorkerConfig, topic: str) -> list[int]:
    """The topic's partition ids ([] when it does not exist)."""
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.services import bootstrap_servers

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(cfg.kafka_url),
                                **cfg.kafka_security().aiokafka())
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(int(p["partition"]) for t in described if t["topic"] == topic
                  and not t.get("error_code") for p in t.get("partitions", ()))


async def rebuild_portraits(cfg: WorkerConfig, *, analyzer: Any = None,
                            progress: Callable[[str, int, int], None] | None = None
                            ) -> dict[str, Any]:
    """Replay videos then user events into Redis; returns a JSON-able summary.

    The handlers get the worker's settings (``cfg``: the same ``ENF_`` variables):
    its input limits (so the rebuild accepts exactly what the workers accepted; the
    defaults used to dead-letter, e.g., every event of a deployment that turned the
    key check off), its media policy and analysis timeout, and its Kafka and Redis
    credentials."""
    from enf_core.portrait import PortraitConfig
    from streams.app import load_analyzer, load_runtime
    from streams.handlers.portraits import PortraitHandler
    from streams.handlers.videos import VideoHandler
    from streams.store import RedisStore, StoreConfig

    start = time.monotonic()
    topics = cfg.topics
    store = RedisStore(cfg.redis_connection_url(), StoreConfig(
        prefix=cfg.topic_prefix, applied_ids_per_user=cfg.applied_ids_per_user,
        portrait_ttl_s=cfg.portrait_ttl_s, retry_max_s=cfg.redis_retry_max_s,
        socket_timeout_s=cfg.redis_timeout_s, max_users_per_call=cfg.max_users_per_call,
        max_ids_per_call=cfg.max_ids_per_call))
    sink = NullSink()
    try:
        epoch = await store.reset_epoch()
        limits = cfg.input_limits()
        # The worker's model: its video latents are attached to each analysis as
        # the worker's video handler does, so rebuilt analyses (and the portraits'
        # latent taste updated against them) equal what the workers stored.
        runtime = load_runtime(cfg)
        videos = VideoHandler(store, sink, analyzer or load_analyzer(cfg),
                              latents=lambda: getattr(runtime, "latents", None),
                              dead_letter_topic=topics.dead_letters, limits=limits,
                              media=cfg.media_policy(), analysis_timeout_s=cfg.video_timeout_s,
                              max_stuck_threads=cfg.video_max_stuck_threads)
        counts = {"analyzed": 0, "failed": 0}

        async def video_batch(msgs: list[Message]) -> None:
            r = await videos.handle(msgs)
            counts["analyzed"] += r.analyzed
            counts["failed"] += r.failed

        v = await read_topic_to_end(cfg, topics.videos, video_batch,
                                    progress and (lambda d, t: progress("videos", d, t)))
        portraits = PortraitHandler(store, sink, dead_letter_topic=topics.dead_letters,
                                    config=PortraitConfig(quick_swipe_ratio=cfg.quick_swipe_ratio),
                                    count_metrics=False, limits=limits)
        ev = {"events": 0, "applied": 0, "duplicates": 0}

        async def event_batch(msgs: list[Message]) -> None:
            r = await portraits.handle(msgs)
            ev["events"] += r.events
            ev["applied"] += r.applied
            ev["duplicates"] += r.duplicates

        u = await read_topic_to_end(cfg, topics.user_events, event_batch,
                                    progress and (lambda d, t: progress("user-events", d, t)))
        return {"epoch": epoch.decode(), "videos": {**v, **counts},
                "user_events": {**u, **ev}, "portraits": await store.portrait_count(),
                "truncated": bool(v["truncated"] or u["truncated"]),
                "seconds": round(time.monotonic() - start, 2)}
    finally:
        await store.close()
