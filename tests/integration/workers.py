"""Helpers for integration tests: a producer and a consumer (the worker process
itself is ``streams.process.WorkerProcess``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.process import WorkerProcess, wait_until

__all__ = ["WorkerProcess", "consume", "event", "produce", "secured_round_trip", "wait_until"]


async def _produce(bootstrap: str,
                   records: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futs = [await producer.send(topic, value=value, key=key) for topic, key, value in records]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


def produce(bootstrap: str, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> None:
    asyncio.run(_produce(bootstrap, records))


async def _consume(bootstrap: str, topic: str, n: int, timeout_s: float) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


def consume(bootstrap: str, topic: str, n: int, *, timeout_s: float = 30.0) -> list[Any]:
    """Read at least ``n`` records (or all there are by the timeout)."""
    return asyncio.run(_consume(bootstrap, topic, n, timeout_s))


def event(event_type: str, /, **fields: Any) -> bytes:
    return orjson.dumps({"v": 1, "type": event_type, **fields})


async def secured_round_trip(bootstrap: str, security: Any, topic: str,
                             payload: bytes) -> list[bytes]:
    """Send ``payload`` and read the topic back with the client options the worker
    builds (``streams.credentials.KafkaSecurity.aiokafka()``): a SASL or TLS
    listener accepts exactly what the worker would send it."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10_000,
                                **security.aiokafka())
    await asyncio.wait_for(producer.start(), 20)
    try:
        await producer.send_and_wait(topic, payload, key=b"k")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", **security.aiokafka())
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=10_000)
        return [r.value for records in batch.values() for r in records]
    finally:
        await consumer.stop()
