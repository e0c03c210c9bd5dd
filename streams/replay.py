"""Replay a dataset into the Kafka topics, in time order (aiokafka).

The demo and the benchmarks feed the pipeline with this. What is sent, and the
event ids, are decided by ``enf_core.data.replay_plan`` (pure, tested without a
broker); this module only sends: keyed as ``streams.config.TopicNames`` says
(user events and candidates by user_id, videos by video_id), at ``rate`` events
per second or as fast as the producer goes, optionally as JSON arrays of up to
``page_events`` events per message (``enf_core.events.decode_events`` reads
both), which cuts the broker's and Faust's per-message cost.

With pages, events are grouped per (topic, key) within windows of
``page_events * 64`` consecutive events, so each user's events stay in order
while events of different users may move by up to one window.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from enf_core.data.replay_plan import PlannedMessage, ReplayConfig, ids_digest, plan_replay
from enf_core.data.schema import read_dataset
from streams.config import TopicNames

__all__ = ["ReplayOptions", "ReplaySummary", "replay", "replay_dataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayOptions:
    """Where and how fast to send."""

    kafka_url: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = "enf"
    rate: float | None = None  # events per second; None: as fast as possible
    page_events: int = 1  # >1: JSON arrays of up to this many events per message
    linger_ms: int = 20
    max_batch_bytes: int = 512 * 1024
    acks: int | str = 1
    create_topics: bool = True
    partitions: int = 4
    in_flight: int = 20_000  # sends awaited in groups of this size
    client_id: str = "enf-replay"
    # "candidates": the candidates topic; "user-events": in the user's own ordered
    # stream, so each request is scored after exactly the user's earlier events
    # (read-your-writes, see streams/handlers/portraits.py).
    candidates_topic: str = "candidates"


@dataclass
class ReplaySummary:
    """What was sent: counts by event type, message counts, id digest, speed."""

    events: int = 0
    messages: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    ids_sha256: str = ""
    wall_s: float = 0.0
    first_ts: int | None = None
    last_ts: int | None = None

    def to_dict(self) -> dict[str, Any]:
        rate = self.events / self.wall_s if self.wall_s > 0 else None
        return {"events": self.events, "messages": self.messages, "by_type": self.by_type,
                "by_topic": self.by_topic, "ids_sha256": self.ids_sha256,
                "wall_s": round(self.wall_s, 3),
                "events_per_s": round(rate, 1) if rate else None,
                "first_ts": self.first_ts, "last_ts": self.last_ts}


def _bootstrap(url: str) -> str:
    from streams.services import bootstrap_servers

    return bootstrap_servers(url)


def _topic(topics: TopicNames, stream: str) -> str:
    return {"videos": topics.videos, "user-events": topics.user_events,
            "candidates": topics.candidates}[stream]


def _pages(messages: Sequence[PlannedMessage], page_events: int
           ) -> list[tuple[str, str, list[PlannedMessage]]]:
    """Group messages into arrays per (stream, key), window by window, order kept per key."""
    if page_events <= 1:
        return [(m.stream, m.key, [m]) for m in messages]
    window = page_events * 64
    out: list[tuple[str, str, list[PlannedMessage]]] = []
    for start in range(0, len(messages), window):
        groups: dict[tuple[str, str], list[PlannedMessage]] = {}
        for m in messages[start:start + window]:
            groups.setdefault((m.stream, m.key), []).append(m)
        for (stream, key), items in groups.items():
            chunk: list[PlannedMessage] = []
            size = 0
            for m in items:
                n = len(m.event_ids)
                if chunk and size + n > page_events:
                    out.append((stream, key, chunk))
                    chunk, size = [], 0
                chunk.append(m)
                size += n
            if chunk:
                out.append((stream, key, chunk))
    return out


async def replay(messages: Sequence[PlannedMessage], options: ReplayOptions) -> ReplaySummary:
    """Send planned messages to Kafka; returns what was sent."""
    from aiokafka import AIOKafkaProducer

    topics = TopicNames(options.topic_prefix)
    if options.candidates_topic not in ("candidates", "user-events"):
        raise ValueError(f"candidates_topic must be 'candidates' or 'user-events', "
                         f"not {options.candidates_topic!r}")
    if options.candidates_topic == "user-events":  # before paging: one order per key
        messages = [replace(m, stream="user-events") if m.stream == "candidates" else m
                    for m in messages]
    if options.create_topics:
        from streams.services import create_topics

        await asyncio.to_thread(create_topics, options.kafka_url,
                                [topics.videos, topics.user_events, topics.candidates],
                                partitions=options.partitions)
    producer = AIOKafkaProducer(
        bootstrap_servers=_bootstrap(options.kafka_url), client_id=options.client_id,
        linger_ms=options.linger_ms, max_batch_size=options.max_batch_bytes,
        acks=options.acks, enable_idempotence=False,  # Tansu serves no InitProducerId
        max_request_size=4 * 1024 * 1024)
    summary = ReplaySummary()
    all_ids: list[str] = []
    await producer.start()
    start = time.perf_counter()
    try:
        pending: list[asyncio.Future[Any]] = []
        for stream, key, group in _pages(messages, options.page_events):
            if len(group) == 1 and options.page_events <= 1:
                value = orjson.dumps(group[0].payload)
            else:
                value = orjson.dumps([m.payload for m in group])
            topic = _topic(topics, stream)
            pending.append(await producer.send(topic, value=value, key=key.encode()))
            n = sum(len(m.event_ids) for m in group)
            summary.events += n
            summary.messages += 1
            summary.by_topic[topic] = summary.by_topic.get(topic, 0) + n
            for m in group:
                kind = m.type
                summary.by_type[kind] = summary.by_type.get(kind, 0) + len(m.event_ids)
                all_ids.extend(m.event_ids)
                if m.type != "video":
                    summary.first_ts = m.ts if summary.first_ts is None else summary.first_ts
                    summary.last_ts = m.ts
            if len(pending) >= options.in_flight:
                await asyncio.gather(*pending)
                pending.clear()
            if options.rate:
                ahead = summary.events / options.rate - (time.perf_counter() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        if pending:
            await asyncio.gather(*pending)
    finally:
        await producer.stop()
    summary.wall_s = time.perf_counter() - start
    summary.ids_sha256 = ids_digest(all_ids)
    return summary


async def replay_dataset(directory: str | Path, options: ReplayOptions,
                         config: ReplayConfig | None = None) -> ReplaySummary:
    """Read (and validate) a dataset directory, plan its messages, send them."""
    ds = await asyncio.to_thread(read_dataset, directory)
    plan = await asyncio.to_thread(plan_replay, ds, config or ReplayConfig())
    log.info("replaying %d messages (%d events) from %s", len(plan.messages), plan.n_events,
             directory)
    return await replay(plan.messages, options)
