"""``enf logs dump``: a deployment's topics, read back into the ENF log schema.

Reads user events, videos, candidates, suppressions and explanations from the
beginning to the end offsets seen at start (dead letters are skipped: they are
the inputs that never counted), joins them (``enf_core.data.log_join``) and
writes a dataset directory that ``enf data check``, ``enf train agents`` and
``enf train policy`` read, plus ``decisions.parquet`` (every candidate, what
was decided, what the user then did).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from enf_core.data.log_join import LogJoin
from enf_core.events import EventError, decode_events
from streams.config import TopicNames

__all__ = ["DumpOptions", "dump_logs", "read_topic"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DumpOptions:
    """Where to read and how long to wait (documented defaults)."""

    kafka_url: str = "kafka://127.0.0.1:9092"
    topic_prefix: str = "enf"
    stall_s: float = 30.0  # give up on a topic after this long without progress to its end
    timeout_s: float = 600.0  # hard bound on reading one topic


async def read_topic(bootstrap: str, topic: str, *, stall_s: float = 30.0,
                     timeout_s: float = 600.0) -> list[bytes | None]:
    """Every message value of ``topic`` from the beginning to the end offsets seen now.

    Tansu reports the last batch's base offset + 1 as the end; a fetch returns
    whole batches, so the tail of the last one still arrives. A topic that does
    not exist reads as empty.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    parts = {p["partition"] for t in described if t.get("topic") == topic
             and not t.get("error_code") for p in t.get("partitions", ())}
    values: list[bytes | None] = []
    if not parts:
        return values
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        t0 = last = time.monotonic()
        while time.monotonic() - t0 < timeout_s:
            batch = await consumer.getmany(timeout_ms=200, max_records=10_000)
            for records in batch.values():
                values.extend(r.value for r in records)
            if any(batch.values()):
                last = time.monotonic()
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            if time.monotonic() - last > stall_s:
                log.warning("%s: no progress for %.0fs before the end offsets %s (at %s)",
                            topic, stall_s, end, positions)
                break
    finally:
        await consumer.stop()
    return values


async def _collect(options: DumpOptions) -> tuple[LogJoin, dict[str, int]]:
    from streams.services import bootstrap_servers

    bootstrap = bootstrap_servers(options.kafka_url)
    topics = TopicNames(options.topic_prefix)
    join = LogJoin()
    read: dict[str, int] = {}
    for topic in (topics.videos, topics.user_events, topics.candidates):
        values = await read_topic(bootstrap, topic, stall_s=options.stall_s,
                                  timeout_s=options.timeout_s)
        read[topic] = len(values)
        for raw in values:
            try:
                events = decode_events(raw)
            except EventError:  # the worker dead-lettered it too: it never counted
                join.counts["invalid_inputs"] += 1
                continue
            for e in events:
                join.add_event(e)
    for topic in (topics.suppressions, topics.explanations):
        values = await read_topic(bootstrap, topic, stall_s=options.stall_s,
                                  timeout_s=options.timeout_s)
        read[topic] = len(values)
        for raw in values:
            try:
                obj = orjson.loads(raw or b"null")
            except orjson.JSONDecodeError:
                join.counts["unreadable_outputs"] += 1
                continue
            for record in obj if isinstance(obj, list) else [obj]:
                join.add_output(record)
    return join, read


def dump_logs(out: str | Path, options: DumpOptions) -> dict[str, Any]:
    """Read, join and write; returns the summary ``enf logs dump`` prints."""
    import pyarrow.parquet as pq

    from enf_core.data.schema import write_dataset
    from enf_core.data.summary import summarize

    t0 = time.perf_counter()
    join, read = asyncio.run(_collect(options))
    tables = join.tables()
    if not tables.interactions.num_rows:
        raise ValueError(f"no interactions under topic prefix {options.topic_prefix!r} at "
                         f"{options.kafka_url} (read: {read})")
    summary = summarize(tables.users, tables.videos, tables.interactions)
    frames = tables.meta.get("frames")
    out = Path(out)
    write_dataset(out, tables.users, tables.videos, tables.interactions,
                  meta={"name": out.name, "source": {"kind": "enf logs dump",
                                                     "kafka_url": options.kafka_url,
                                                     "topic_prefix": options.topic_prefix,
                                                     "messages": read},
                        **tables.meta, "summary": summary},
                  frames_rows=frames["shape"][0] if frames else None)
    pq.write_table(tables.decisions, out / "decisions.parquet", compression="zstd")
    decisions = tables.decisions
    suppressed = decisions.filter(decisions.column("suppressed"))
    return {**summary, "decisions": decisions.num_rows, "suppressed": suppressed.num_rows,
            "suppressed_watched": sum(suppressed.column("watched").to_pylist()),
            "suppressed_disliked": sum(suppressed.column("disliked").to_pylist()),
            "explained": decisions.num_rows - decisions.column("explanation").null_count,
            "counts": tables.counts, "messages": read,
            "wall_s": round(time.perf_counter() - t0, 2), "out": str(out.resolve())}
