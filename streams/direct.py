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
import logging
from collections.abc import Awaitable, Callable

from streams.config import WorkerConfig
from streams.handlers.base import Message

__all__ = ["run_direct_consumer"]

log = logging.getLogger(__name__)


async def run_direct_consumer(cfg: WorkerConfig, topic: str,
                              handle: Callable[[list[Message]], Awaitable[None]]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import CommitFailedError, KafkaError

    from streams.services import bootstrap_servers

    fetch_wait = cfg.fetch_max_wait_ms or (20 if cfg.broker_kind == "tansu" else 500)
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
            try:
                await consumer.commit(offsets)
            except (CommitFailedError, KafkaError) as exc:
                # The partitions moved on: their new owner re-reads from the last
                # commit and skips what this worker already applied.
                log.warning("offset commit after a rebalance failed (%s); the batch will be "
                            "redelivered and de-duplicated", exc)
    except asyncio.CancelledError:
        raise
    finally:
        await consumer.stop()
