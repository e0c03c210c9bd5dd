"""``ENF_EXPLAINER=policy``: the S-GRPO policy writes explanation records on a side path.

Suppression never waits for a language model. The scorer emits its suppression
records and the explanation student's record (``explainer: "student"``) as
always; for each of those explanations it also *offers* a job here. Offering
never blocks: a bounded queue takes the job or, when full, the job is dropped
and counted (``enf_policy_explanations_total{status="dropped"}``). One daemon
thread takes up to ``batch_size`` jobs at a time, asks the policy for its
sentences (``explain_many``: torch, ``models.policy.explain``) and produces one
more record per job on the explanations topic, on the worker's event loop:
the student's record with ``explainer: "policy"``, the policy's ``text`` and
``record_id`` ``"{request_id}:{video_id}:xp"`` (its own id, so consumers that
dedup on ``record_id`` keep both). An answer that does not parse writes
nothing (``status="empty"``): the student's record stands.

Best effort by design: jobs still queued when a worker stops are lost (the
student's records, produced with the batch, are not). Torch-free: the policy
arrives as a callable.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import Portrait
from streams.handlers.base import Sink

__all__ = ["ExplainMany", "PolicyExplanations", "PolicyJob"]

log = logging.getLogger(__name__)
ExplainMany = Callable[[Sequence[tuple[Portrait, VideoAnalysis]]], list[str]]
STATUSES = ("queued", "written", "dropped", "empty", "failed")


@dataclass(frozen=True, slots=True)
class PolicyJob:
    """One explanation the policy is asked to write (the student's record as the base)."""

    record: dict[str, Any]
    key: bytes
    portrait: Portrait
    analysis: VideoAnalysis


class PolicyExplanations:
    """A bounded queue and one thread in front of ``explain_many`` (module docstring)."""

    def __init__(self, explain_many: ExplainMany, sink: Sink, topic: str, *,
                 queue_size: int = 64, batch_size: int = 8,
                 count: Callable[[str], None] | None = None) -> None:
        if queue_size < 1 or batch_size < 1:
            raise ValueError("queue_size and batch_size must be at least 1")
        self.explain_many = explain_many
        self.sink = sink
        self.topic = topic
        self.batch_size = batch_size
        self.counts = dict.fromkeys(STATUSES, 0)
        self._count = count
        self._queue: queue.Queue[PolicyJob | None] = queue.Queue(maxsize=queue_size)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._outstanding = 0  # jobs queued whose record is not yet delivered or counted

    def _counted(self, status: str, n: int = 1) -> None:
        with self._lock:
            self.counts[status] += n
        if self._count is not None:
            for _ in range(n):
                self._count(status)

    def offer(self, job: PolicyJob) -> bool:
        """Queue ``job`` if there is room (never blocks); call from the event loop."""
        if self._thread is None:
            self._loop = asyncio.get_running_loop()
            self._thread = threading.Thread(target=self._run, name="enf-policy-explainer",
                                            daemon=True)
            self._thread.start()
        with self._lock:
            self._outstanding += 1
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            self._done(1)
            self._counted("dropped")
            return False
        self._counted("queued")
        return True

    def _take(self) -> list[PolicyJob] | None:
        first = self._queue.get()
        if first is None:
            return None
        jobs = [first]
        while len(jobs) < self.batch_size:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # keep the stop signal for the next round
                break
            jobs.append(nxt)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            try:
                texts = self.explain_many([(j.portrait, j.analysis) for j in jobs])
                if len(texts) != len(jobs):
                    raise ValueError(f"{len(texts)} sentences for {len(jobs)} jobs")
            except Exception:  # the side path must never stop: count it and go on
                log.exception("the policy explainer failed on %d jobs", len(jobs))
                self._counted("failed", len(jobs))
                self._done(len(jobs))
                continue
            for job, text in zip(jobs, texts, strict=True):
                text = text.strip()
                if not text:
                    self._counted("empty")
                    self._done(1)
                    continue
                rid = f"{job.record['record_id']}p"
                evidence = {k: v for k, v in (job.record.get("evidence") or {}).items()
                            if k != "cited"}  # the student's choice of words, not the policy's
                value = orjson.dumps({**job.record, "record_id": rid, "explainer": "policy",
                                      "text": text, "evidence": evidence})
                assert self._loop is not None
                fut = asyncio.run_coroutine_threadsafe(self._send(job.key, value), self._loop)
                fut.add_done_callback(self._delivered)

    async def _send(self, key: bytes, value: bytes) -> None:
        delivery = await self.sink.send(self.topic, key, value)
        await delivery

    def _delivered(self, fut: Any) -> None:
        if fut.exception() is not None:
            log.warning("a policy explanation was not delivered: %s", fut.exception())
            self._counted("failed")
        else:
            self._counted("written")
        self._done(1)

    def _done(self, n: int) -> None:
        with self._lock:
            self._outstanding -= n

    @property
    def pending(self) -> int:
        """Jobs queued or being written."""
        with self._lock:
            return self._outstanding

    async def drain(self, timeout_s: float = 30.0) -> bool:
        """Wait (on the event loop) until every offered job is written or counted."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        while self.pending:
            if loop.time() > end:
                return False
            await asyncio.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop the thread after the jobs already queued (they are not waited for)."""
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:  # a full queue: drop one job to make room for the stop
                if self._queue.get_nowait() is not None:
                    self._done(1)
                    self._counted("dropped")
                self._queue.put_nowait(None)
