"""Arm B of ``enf ab`` through the real thing: a broker, Redis and an ``enf worker``.

``WorkerFilter`` is the ``EnfFilter`` the experiment (``enf_core.ab.experiment``)
talks to. It produces ``candidates`` requests (with the ranker's scores) and
the users' events on the worker's input topics, exactly as a feed would, and
reads the worker's answers from the suppressions topic: ``suppression``
records (drop mode; ``suppression_page`` too) or one ``rerank_page`` per
request (demote mode). A round's answers are complete when the worker's
``/metrics`` count every request of the round and, in drop mode, the
consumer has seen as many suppressed videos as the worker counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import orjson

from enf_core.ab.experiment import Decision, Request
from enf_core.events import SCHEMA_VERSION
from streams.config import TopicNames
from streams.process import WorkerProcess

__all__ = ["WorkerFilter", "count_events"]

_MAX_EVENTS_PER_MESSAGE = 500


def count_events(record: dict[str, Any]) -> int:
    """Events the worker decodes from a record (an impression page is one per item)."""
    items = record.get("items")
    return len(items) if record.get("type") == "impression" and isinstance(items, list) else 1


@dataclass
class _Answers:
    suppressed: dict[str, set[str]] = field(default_factory=dict)
    penalties: dict[str, dict[str, float]] = field(default_factory=dict)
    pages: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    suppressed_items: int = 0  # every suppressed video read, probes included
    probe_suppressed: int = 0  # of which in probe requests (request ids with "@")
    seen_ids: set[str] = field(default_factory=set)
    records: int = 0


class WorkerFilter:
    """Sends requests and events to a running worker and collects its decisions."""

    def __init__(self, *, bootstrap: str, topics: TopicNames, worker: WorkerProcess,
                 mode: str, settle: bool = True, timeout_s: float = 300.0,
                 candidates_topic: str | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.worker = worker
        self.mode = mode
        self.settle = settle
        # The candidates topic, or the user-events topic for read-your-writes ordering.
        self.candidates_topic = candidates_topic or topics.candidates
        self.timeout_s = timeout_s
        self.events_sent = 0
        self.requests_sent = 0
        self.probe_requests_sent = 0
        self.sent_records: list[dict[str, Any]] | None = None  # tests: keep what was sent
        self.answers = _Answers()
        self._producer: Any = None
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.wait_s = {"answers": 0.0, "events": 0.0}

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=2,
                                          max_batch_size=1 << 20, max_request_size=2 << 20)
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(self.topics.suppressions,
                                          bootstrap_servers=self.bootstrap,
                                          auto_offset_reset="earliest", enable_auto_commit=False,
                                          group_id=None, fetch_max_wait_ms=20)
        await self._consumer.start()
        self._task = asyncio.create_task(self._consume())

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.stop()

    async def _consume(self) -> None:
        while not self._stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=50, max_records=5000)
            for records in batch.values():
                for rec in records:
                    self._on(orjson.loads(rec.value))

    def _on(self, record: dict[str, Any]) -> None:
        a = self.answers
        before = a.suppressed_items
        a.records += 1
        kind = record.get("type")
        rid = str(record.get("request_id", ""))
        if record.get("stale"):
            a.stale.add(rid)
        if kind == "suppression":
            key = str(record.get("record_id") or f"{rid}:{record.get('video_id')}")
            if key in a.seen_ids:
                return  # a redelivered output record
            a.seen_ids.add(key)
            a.suppressed.setdefault(rid, set()).add(str(record["video_id"]))
            a.suppressed_items += 1
        elif kind == "suppression_page":
            if rid in a.pages:
                return
            a.pages.add(rid)
            for item in record.get("items", []):
                a.suppressed.setdefault(rid, set()).add(str(item["video_id"]))
                a.suppressed_items += 1
        elif kind == "rerank_page":
            if rid in a.pages:
                return
            a.pages.add(rid)
            pen = a.penalties.setdefault(rid, {})
            for item in record.get("items", []):
                vid = str(item["video_id"])
                pen[vid] = float(item.get("penalty", 0.0))
                if item.get("suppressed"):
                    a.suppressed.setdefault(rid, set()).add(vid)
                    a.suppressed_items += 1
        if "@" in rid:
            a.probe_suppressed += a.suppressed_items - before

    async def _send(self, topic: str, key: str, value: dict[str, Any] | list[dict[str, Any]]
                    ) -> Any:
        if self.sent_records is not None:
            self.sent_records.extend(value if isinstance(value, list) else [value])
        return await self._producer.send(topic, key=key.encode(), value=orjson.dumps(value))

    async def _wait(self, what: str, done: Callable[[], bool]) -> None:
        """Poll ``done``; fail only when the worker stops making progress for
        ``timeout_s`` (a loaded machine is slow, a stuck worker is not moving)."""
        t0 = last_move = time.monotonic()
        mark = self._progress()
        while not done():
            if not self.worker.alive():
                raise RuntimeError(f"worker died while waiting for {what}:\n"
                                   f"{self.worker.log_tail()}")
            now = time.monotonic()
            moved = self._progress()
            if moved != mark:
                mark, last_move = moved, now
            elif now - last_move > self.timeout_s:
                raise TimeoutError(f"the worker made no progress for {self.timeout_s}s while "
                                   f"waiting for {what}\n{self.worker.log_tail()}")
            await asyncio.sleep(0.01)
        self.wait_s[what] = self.wait_s.get(what, 0.0) + time.monotonic() - t0

    def _progress(self) -> tuple[float, ...]:
        m = self.worker.metrics()
        return (m.get("enf_videos_analyzed_total", 0), m.get("enf_candidate_requests_total", 0),
                m.get("enf_portrait_events_applied_total", 0), float(self.answers.records))

    async def send_videos(self, records: list[dict[str, Any]]) -> None:
        """The catalogue, then wait until the Video Agent has analysed all of it."""
        futures = [await self._send(self.topics.videos, r["video_id"], r) for r in records]
        for f in futures:
            await f
        want = len(records)
        await self._wait("videos",
                         lambda: self.worker.metrics().get("enf_videos_analyzed_total", 0)
                         >= want)

    async def send_events(self, events: dict[str, list[dict[str, Any]]], *,
                          probes: Sequence[Request] = (),
                          delays_ms: Sequence[int] = ()) -> dict[str, Decision]:
        """The users' events; probes just before them and at each delay after them."""
        def at(delay: int) -> list[Request]:
            return [replace(p, request_id=f"{p.request_id}@{delay}") for p in probes]

        sent: list[Request] = []
        if probes and -1 in delays_ms:
            sent += await self._send_requests(at(-1))
        futures = []
        for user, records in events.items():
            for start in range(0, len(records), _MAX_EVENTS_PER_MESSAGE):
                chunk = records[start:start + _MAX_EVENTS_PER_MESSAGE]
                futures.append(await self._send(self.topics.user_events, user, chunk))
                self.events_sent += sum(count_events(r) for r in chunk)
        for f in futures:
            await f
        t0 = time.monotonic()
        for delay in sorted(d for d in delays_ms if d >= 0) if probes else ():
            await asyncio.sleep(max(0.0, t0 + delay / 1000 - time.monotonic()))
            sent += await self._send_requests(at(delay))
        answers = await self._answers(sent) if sent else {}
        if self.settle:
            want = self.events_sent
            await self._wait("events", lambda: self._applied() >= want)
        return answers

    async def drain(self) -> None:
        """Wait until the worker has applied every event sent (the end of a run)."""
        want = self.events_sent
        await self._wait("drain", lambda: self._applied() >= want)

    def _applied(self) -> float:
        m = self.worker.metrics()
        return (m.get("enf_portrait_events_applied_total", 0)
                + m.get("enf_portrait_events_duplicate_total", 0)
                + m.get("enf_dead_letters_total", 0))

    async def _send_requests(self, requests: Sequence[Request]) -> list[Request]:
        now = int(time.time() * 1000)
        futures = []
        for r in requests:
            record = {"v": SCHEMA_VERSION, "type": "candidates", "event_id": f"c:{r.request_id}",
                      "request_id": r.request_id, "user_id": r.user_id,
                      "video_ids": r.video_ids, "ranker_scores": r.ranker_scores, "ts": now}
            futures.append(await self._send(self.candidates_topic, r.user_id, record))
        for f in futures:
            await f
        self.requests_sent += len(requests)
        self.probe_requests_sent += sum(1 for r in requests if "@" in r.request_id)
        return list(requests)

    async def _answers(self, requests: Sequence[Request]) -> dict[str, Decision]:
        want = self.requests_sent
        ids = [r.request_id for r in requests]

        def complete() -> bool:
            m = self.worker.metrics()
            if m.get("enf_candidate_requests_total", 0) < want:
                return False
            if self.mode == "demote":
                return all(i in self.answers.pages for i in ids)
            return self.answers.suppressed_items >= m.get("enf_suppressions_total", 0)

        await self._wait("answers", complete)
        out = {}
        for r in requests:
            sup = self.answers.suppressed.get(r.request_id, set())
            mask = np.fromiter((v in sup for v in r.video_ids), dtype=bool, count=len(r.video_ids))
            penalty = None
            if r.request_id in self.answers.penalties:
                pen = self.answers.penalties[r.request_id]
                penalty = np.array([pen.get(v, 0.0) for v in r.video_ids])
            out[r.request_id] = Decision(mask, penalty, r.request_id in self.answers.stale)
        return out

    async def answer(self, requests: list[Request]) -> dict[str, Decision]:
        return await self._answers(await self._send_requests(requests))
