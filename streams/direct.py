"""The direct engine: an aiokafka consumer loop for the portrait path.

Faust spends a few hundred microseconds of Python per message before an agent
sees it (events, processors, acks; see the README's profile), which caps a
Faust agent at a few thousand single-event messages per second per process.
This loop hands ``getmany`` batches straight to the same handler and commits
each batch's offsets only after the handler returned (state written, outputs
delivered). A commit lost to a rebalance only means a redelivery, which the
store's event-id check makes harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from streams.config import WorkerConfig
from streams.handlers.base import Message

__all__ = ["run_direct_consumer"]

log = logging.getLogger(__name__)


async def run_direct_consumer(cfg: WorkerConfig, topic: str,
                              handle: Callable[[list[Message]], Awaitable[None]]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import CommitFailedError, KafkaError

    from streams.services import bootstrap_servers

    # One fetch per broker at a time, without the partitions still buffered: a
    # long wait would hold drained partitions behind quiet ones (streams.app).
    fetch_wait = cfg.fetch_max_wait_ms or 20
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers(cfg.kafka_url),
        **cfg.kafka_security().aiokafka(),
        group_id=f"{cfg.app_id}.portraits-direct", client_id=f"{cfg.app_id}-portraits",
        enable_auto_commit=False, auto_offset_reset="earliest",
        max_poll_records=cfg.batch_max, fetch_max_wait_ms=fetch_wait,
        max_partition_fetch_bytes=cfg.consumer_max_fetch_size,
        session_timeout_ms=int(cfg.session_timeout_s * 1000),
        heartbeat_interval_ms=int(min(3.0, cfg.session_timeout_s / 3) * 1000))
    await consumer.start()
    log.warning("portrait path: direct aiokafka consumer on %s", topic)

    async def commit(offsets: dict[Any, int]) -> None:
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The partitions moved on: their new owner re-reads from the last
            # commit and skips what this worker already applied.
            log.warning("offset commit after a rebalance failed (%s); the batch will be "
                        "redelivered and de-duplicated", exc)

    # A batch's commit runs while the next batch is handled (one broker round
    # trip off the path per batch); commits stay in order, each awaited before
    # the next starts, and only after their batch's handler returned.
    committing: asyncio.Future[None] | None = None
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int(cfg.batch_within_s * 1000),
                                           max_records=cfg.batch_max)
            if not batch:
                continue
            msgs = [Message(r.value, r.key, r.topic, r.partition, r.offset, r.timestamp)
                    for records in batch.values() for r in records]
            await handle(msgs)
            offsets = {TopicPartition(tp.topic, tp.partition): records[-1].offset + 1
                       for tp, records in batch.items() if records}
            if committing is not None:
                await committing
            committing = asyncio.ensure_future(commit(offsets))
    except asyncio.CancelledError:
        raise
    finally:
        if committing is not None:  # the last handled batch's offsets
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.shield(committing)
        await consumer.stop()
