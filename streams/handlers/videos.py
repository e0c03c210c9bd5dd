"""The Video Agent in the stream: video records → analyses in Redis.

Analysis is CPU-bound (decoding, encoders), so it runs in a thread pool while
the event loop keeps consuming. A video that cannot be analysed (missing or
corrupt file) is recorded as failed with its error and a neutral analysis, so
the scorer still answers for it and the worker never stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from streams.handlers.base import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetters,
    Message,
    Sink,
    decode_batch,
    now_ms,
)
from streams.store import RedisStore

__all__ = ["Analyzer", "NeutralAnalyzer", "VideoHandler", "VideoResult"]

log = logging.getLogger(__name__)


class Analyzer(Protocol):
    name: str

    def analyze(self, event: VideoEvent) -> VideoAnalysis: ...


class NeutralAnalyzer:
    """Knows nothing; used only when no Video Agent can be loaded."""

    name = "neutral"

    def analyze(self, event: VideoEvent) -> VideoAnalysis:
        return VideoAnalysis.neutral(event.video_id, duration_ms=event.duration_ms,
                                     title=event.title)


@dataclass(frozen=True, slots=True)
class VideoResult:
    videos: int
    analyzed: int
    failed: int
    dead_letters: int


def safe_analyze(analyzer: Analyzer, event: VideoEvent) -> VideoAnalysis:
    """Analyse, or record the failure with a neutral analysis: a bad video must
    never stop the worker. An analysis whose scorer vector is not finite (extreme
    inputs overflowing in the encoders) is a failure too: NaN stored in Redis
    would make every candidates batch touching the video NaN."""
    from enf_core.features import video_vector

    try:
        analysis = analyzer.analyze(event)
        if not np.isfinite(video_vector(analysis)).all():
            raise ValueError("the analysis is not finite")
        return analysis
    except Exception as exc:
        log.warning("video %s: analysis failed: %s", event.video_id, exc)
        return _failed(event, f"{type(exc).__name__}: {exc}")


def _failed(event: VideoEvent, error: str) -> VideoAnalysis:
    neutral = VideoAnalysis.neutral(event.video_id, duration_ms=event.duration_ms,
                                    title=event.title)
    return replace(neutral, extra={"error": error})


_CHILD_ANALYZER: Analyzer | None = None


def _child_init(factory: Callable[[], Analyzer]) -> None:
    """In the analysis process: die with the worker, then build the analyzer once."""
    global _CHILD_ANALYZER
    with contextlib.suppress(Exception):  # Linux only; elsewhere the pool's own
        import ctypes  # shutdown still ends the process

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    _CHILD_ANALYZER = factory()


def _child_analyze(event: VideoEvent) -> VideoAnalysis:
    assert _CHILD_ANALYZER is not None
    return safe_analyze(_CHILD_ANALYZER, event)


class VideoHandler:
    """Analyses in a separate process by default: decoding and encoders are
    CPU-bound and partly hold the GIL, which starved the event loop (and so the
    portrait and scoring agents) when they ran in threads. A process also
    contains a decoder crash on a hostile file: the pool is rebuilt and that
    video is recorded as failed."""

    def __init__(self, store: RedisStore, sink: Sink, analyzer: Analyzer | None = None, *,
                 dead_letter_topic: str, analyzer_factory: Callable[[], Analyzer] | None = None,
                 processes: int = 1, threads: int = 1,
                 dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES) -> None:
        if analyzer is None and analyzer_factory is None:
            raise ValueError("give an analyzer or an analyzer_factory")
        self.store = store
        self.sink = sink
        self.dead_letter_topic = dead_letter_topic
        self.dead = DeadLetters(sink, dead_letter_topic, dead_letter_max_bytes)
        self.analyzer = analyzer
        self._factory = analyzer_factory
        self._processes = processes if analyzer_factory is not None else 0
        self._threads = threads
        self._pool: Executor = self._new_pool()

    def _new_pool(self) -> Executor:
        if self._processes > 0:
            # typeshed types initializer as taking no arguments; it takes initargs.
            init: Callable[[], object] = _child_init  # type: ignore[assignment]
            args: tuple[()] = (self._factory,)  # type: ignore[assignment]
            return ProcessPoolExecutor(self._processes, mp_context=mp.get_context("spawn"),
                                       initializer=init, initargs=args)
        return ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="enf-video")

    def _call(self, event: VideoEvent) -> Any:
        loop = asyncio.get_running_loop()
        if self._processes > 0:
            return loop.run_in_executor(self._pool, _child_analyze, event)
        analyzer = self.analyzer or self._local()
        return loop.run_in_executor(self._pool, safe_analyze, analyzer, event)

    def _local(self) -> Analyzer:
        assert self._factory is not None
        self.analyzer = self._factory()
        return self.analyzer

    async def _analyze_all(self, videos: list[VideoEvent]) -> list[VideoAnalysis]:
        try:
            return list(await asyncio.gather(*(self._call(e) for e in videos)))
        except BrokenProcessPool:
            log.error("video analysis process died; rebuilding it and retrying one by one")
        self._rebuild()
        out = []
        for e in videos:
            try:
                out.append(await self._call(e))
            except BrokenProcessPool:
                out.append(_failed(e, "the analysis process crashed on this video"))
                self._rebuild()
        return out

    def _rebuild(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    async def handle(self, messages: Sequence[Message]) -> VideoResult:
        batch = decode_batch(messages, allowed=(VideoEvent,))
        pending = await self.dead.send(batch.dead)
        videos = [e for e in batch.events if isinstance(e, VideoEvent)]
        analyses = await self._analyze_all(videos) if videos else []
        await self.store.put_videos(analyses, ts=now_ms())
        for fut in pending:
            await fut
        failed = sum(1 for a in analyses if a.extra.get("error"))
        return VideoResult(len(videos), len(analyses) - failed, failed, len(batch.dead))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
