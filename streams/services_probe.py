"""Measure broker behaviour that matters to ENF Stream, on Tansu and Apache Kafka.

Why: the findings in ``streams.services``' docstring (and the README) must be
reproducible, not folklore. ``python -m streams.services_probe [--broker tansu|kafka]``
starts each broker, runs every check with aiokafka (the client Faust uses) and
prints one JSON object per broker. Each check has a timeout, so a broker that
hangs on a feature reports it instead of blocking.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

from streams.services import (
    BROKER_KINDS,
    KafkaConfig,
    Service,
    create_topics,
    start_kafka,
    start_tansu,
)

__all__ = ["probe_broker"]

T = TypeVar("T")
_CHECK_TIMEOUT_S = 20.0


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _bounded(coro: Awaitable[T], timeout_s: float = _CHECK_TIMEOUT_S) -> T:
    return await asyncio.wait_for(coro, timeout_s)


async def _idempotent(bootstrap: str, topic: str) -> str:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True,
                                request_timeout_ms=5000)
    try:
        await _bounded(producer.start())
        await _bounded(producer.send_and_wait(topic, b"x", key=b"k"))
        return "ok"
    except Exception as exc:
        return f"fails: {type(exc).__name__}: {exc}"[:300]
    finally:
        await _bounded(producer.stop(), 10)


async def _transactional(bootstrap: str, topic: str) -> str:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id="enf-probe-tx",
                                request_timeout_ms=5000)
    try:
        await _bounded(producer.start())
        async with producer.transaction():
            await _bounded(producer.send_and_wait(topic, b"x", key=b"k"))
        return "ok"
    except Exception as exc:
        return f"fails: {type(exc).__name__}: {exc}"[:300]
    finally:
        await _bounded(producer.stop(), 10)


async def _end_offsets_per_batch(
    bootstrap: str, topic: str, n: int, batches: int = 2
) -> dict[str, Any]:
    """Produce ``batches`` batches of ``n`` records to partition 0; end offset after each."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=200,
                                max_batch_size=1 << 20)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await _bounded(producer.start())
    await _bounded(consumer.start())
    tp = TopicPartition(topic, 0)
    ends: list[int] = []
    try:
        for _ in range(batches):
            futures = [await producer.send(topic, b"v" * 20, partition=0) for _ in range(n)]
            await producer.flush()
            await asyncio.gather(*futures)
            ends.append(int((await _bounded(consumer.end_offsets([tp])))[tp]))
    finally:
        await producer.stop()
        await consumer.stop()
    return {"batch_records": n, "expected": [n * (i + 1) for i in range(batches)],
            "end_offsets": ends}


async def _fetch_latency(
    bootstrap: str, topic: str, partitions: int, rounds: int = 8, max_wait_ms: int = 1500
) -> dict[str, float]:
    """Median and max ms from send to receipt with Faust's fetch_max_wait_ms=1500.

    Sends at varied points of the consumer's fetch wait, so a broker that holds
    fetches for the full wait shows a median near 750 ms and a max near 1500 ms."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=max_wait_ms,
                                auto_offset_reset="latest", enable_auto_commit=False)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await _bounded(consumer.start())
    await _bounded(producer.start())
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        samples: list[float] = []
        for i in range(rounds):
            await asyncio.sleep(0.2 + 0.17 * i)  # land at different points of a fetch
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, b"x", partition=i % partitions)
            await _bounded(consumer.getone(), 10)
            samples.append((time.perf_counter() - t0) * 1000)
        return {"median": round(statistics.median(samples), 1), "max": round(max(samples), 1)}
    finally:
        await producer.stop()
        await consumer.stop()


async def _compaction(bootstrap: str, topic: str, *, wait_s: float = 20.0) -> dict[str, Any]:
    """Write 200 values of one key, roll the segment, and count what survives."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await _bounded(producer.start())
    try:
        for i in range(200):
            await producer.send(topic, str(i).encode(), key=b"same-key", partition=0)
        await producer.flush()
        await asyncio.sleep(0.5)
        await producer.send_and_wait(topic, b"roll", key=b"other-key", partition=0)
    finally:
        await producer.stop()
    tp = TopicPartition(topic, 0)
    deadline = time.monotonic() + wait_s
    count = 0
    while True:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await _bounded(consumer.start())
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            count = 0
            while True:
                batch = await consumer.getmany(tp, timeout_ms=300)
                if not batch:
                    break
                count += sum(len(v) for v in batch.values())
        finally:
            await consumer.stop()
        if count < 100 or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    waited = wait_s - max(0.0, deadline - time.monotonic())
    return {"written": 201, "readable_after_s": round(waited, 1), "readable": count}


async def _memory_growth(service: Service, bootstrap: str, topic: str, n: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    before = _rss_bytes(service.pid)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await _bounded(producer.start())
    try:
        value = b"v" * 200
        batch: list[asyncio.Future[Any]] = []
        for i in range(n):
            batch.append(await producer.send(topic, value, key=str(i % 1000).encode()))
        await producer.flush()
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    await asyncio.sleep(0.5)
    after = _rss_bytes(service.pid)
    return {"records": n, "record_bytes": 200, "rss_before_mb": round(before / 2**20, 1),
            "rss_after_mb": round(after / 2**20, 1),
            "rss_bytes_per_record": round((after - before) / n)}


async def _checks(service: Service, kind: str) -> dict[str, Any]:
    from streams.services import bootstrap_servers

    bootstrap = bootstrap_servers(service.url)
    create_topics(service.url, ["probe.one", "probe.four", "probe.mem", "probe.tx"],
                  partitions=4)
    create_topics(service.url, ["probe.single"], partitions=1)
    result: dict[str, Any] = {"broker": kind}
    try:
        create_topics(service.url, ["probe.compact"], partitions=1, configs={
            "cleanup.policy": "compact", "segment.ms": "100",
            "min.cleanable.dirty.ratio": "0.001", "delete.retention.ms": "0"})
        result["compaction"] = await _compaction(bootstrap, "probe.compact")
    except Exception as exc:
        result["compaction"] = f"fails: {exc!r}"[:200]
    result["idempotent_producer"] = await _idempotent(bootstrap, "probe.tx")
    result["transactional_producer"] = await _transactional(bootstrap, "probe.tx")
    result["end_offsets"] = await _end_offsets_per_batch(bootstrap, "probe.one", 500)
    result["fetch_latency_ms_1_partition"] = await _fetch_latency(bootstrap, "probe.single", 1)
    result["fetch_latency_ms_4_partitions"] = await _fetch_latency(bootstrap, "probe.four", 4)
    result["memory"] = await _memory_growth(service, bootstrap, "probe.mem", 100_000)
    return result


def probe_broker(kind: str) -> dict[str, Any]:
    """Start a fresh broker of ``kind``, run every check, stop it; returns the findings."""
    t0 = time.monotonic()
    # The log cleaner normally waits 15 s between passes; the probe cannot wait that long.
    kafka = KafkaConfig(extra_properties=(("log.cleaner.backoff.ms", "200"),))
    service = start_kafka(kafka) if kind == "kafka" else start_tansu()
    start_s = round(time.monotonic() - t0, 2)
    try:
        result = asyncio.run(_checks(service, kind))
    finally:
        t1 = time.monotonic()
        service.stop()
        stop_s = round(time.monotonic() - t1, 2)
    return {**result, "start_s": start_s, "stop_s": stop_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=BROKER_KINDS, action="append")
    args = parser.parse_args()
    for kind in args.broker or list(BROKER_KINDS):
        print(json.dumps(probe_broker(kind)), flush=True)


if __name__ == "__main__":
    main()
