"""The Video Agent in the stream: video records → analyses in Redis.

Analysis is CPU-bound (decoding, encoders), so it runs in a thread pool while
the event loop keeps consuming. A video that cannot be analysed (missing or
corrupt file) is recorded as failed with its error and a neutral analysis, so
the scorer still answers for it and the worker never stops. What a record's
``uri`` may open is decided first by the media policy (``streams.media``), and
each analysis runs under a timeout. A stalled analysis process is killed; a
stalled analysis thread (thread mode: an analyzer given in-process, the rebuild)
cannot be, so at most ``max_stuck_threads`` of them may linger at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from enf_core.limits import InputLimits
from streams.handlers.base import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetters,
    Message,
    Sink,
    decode_batch,
    now_ms,
)
from streams.media import CANNOT_DECODE, NOT_ALLOWED, MediaNotAllowed, MediaPolicy
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
    # Thread mode: timed-out analyses whose threads still run (a thread cannot be
    # stopped), and videos recorded as failed unanalysed because that many were.
    stuck: int = 0
    refused: int = 0


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
        # The detail (it may say whether a file exists) goes to the log only.
        log.warning("video %s: analysis failed: %s: %s", event.video_id, type(exc).__name__, exc)
        return _failed(event, CANNOT_DECODE)


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
                 dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES,
                 limits: InputLimits | None = None, media: MediaPolicy | None = None,
                 analysis_timeout_s: float = 60.0, start_grace_s: float = 300.0,
                 max_stuck_threads: int = 4,
                 latents: Callable[[], Any] | None = None) -> None:
        if analyzer is None and analyzer_factory is None:
            raise ValueError("give an analyzer or an analyzer_factory")
        self.store = store
        self.sink = sink
        self.dead_letter_topic = dead_letter_topic
        self.dead = DeadLetters(sink, dead_letter_topic, dead_letter_max_bytes)
        self.limits = limits or InputLimits()
        self.analyzer = analyzer
        self._factory = analyzer_factory
        self._processes = processes if analyzer_factory is not None else 0
        self._threads = threads
        self.media = media or MediaPolicy()
        self.analysis_timeout_s = analysis_timeout_s
        # A fresh pool first loads the encoders (tens of seconds on a loaded
        # machine): its first videos get this much more time.
        self.start_grace_s = start_grace_s
        self._warm = False
        # the current model's video latents (models.latent.LatentModel or None), read
        # per batch so a model reload brings its latents along
        self._latents = latents
        self._pool: Executor = self._new_pool()
        # Thread mode (an analyzer instance, no factory): a timed-out analysis
        # cannot be stopped; its thread runs on, outside the pool that is replaced.
        # At most this many such threads at a time: past it, videos are stored as
        # failed without being analysed until some return (a process pool kills
        # its stalled processes instead, so it never needs this bound).
        self.max_stuck_threads = max(max_stuck_threads, 0)
        self._stuck: list[Future[Any]] = []
        self._refused = 0

    def _new_pool(self) -> Executor:
        if self._processes > 0:
            # typeshed types initializer as taking no arguments; it takes initargs.
            init: Callable[[], object] = _child_init  # type: ignore[assignment]
            args: tuple[()] = (self._factory,)  # type: ignore[assignment]
            return ProcessPoolExecutor(self._processes, mp_context=mp.get_context("spawn"),
                                       initializer=init, initargs=args)
        return ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="enf-video")

    def _call(self, event: VideoEvent) -> Future[Any]:
        if self._processes > 0:
            return self._pool.submit(_child_analyze, event)
        analyzer = self.analyzer or self._local()
        return self._pool.submit(safe_analyze, analyzer, event)

    @property
    def stuck(self) -> int:
        """Timed-out analyses (thread mode) whose threads are still running."""
        self._stuck = [f for f in self._stuck if not f.done()]
        return len(self._stuck)

    def _local(self) -> Analyzer:
        assert self._factory is not None
        self.analyzer = self._factory()
        return self.analyzer

    async def _timed(self, event: VideoEvent) -> VideoAnalysis:
        """One analysis within the per-video timeout: a video that stalls the
        decoder is recorded as failed and its process replaced, so one video
        cannot stall the path."""
        timeout = self.analysis_timeout_s + (0.0 if self._warm else self.start_grace_s)
        threads = self._processes == 0
        if threads and self.stuck >= self.max_stuck_threads:
            self._refused += 1
            log.warning("video %s: not analysed: %d timed-out analyses still hold their "
                        "threads (ENF_VIDEO_MAX_STUCK_THREADS); stored as failed",
                        event.video_id, self.stuck)
            return _failed(event, CANNOT_DECODE)
        fut = self._call(event)
        try:
            analysis: VideoAnalysis = await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except TimeoutError:
            log.warning("video %s: analysis timed out after %.1fs; restarting the analysis "
                        "pool", event.video_id, timeout)
            if threads and not fut.cancel():  # running: its thread cannot be stopped
                self._stuck.append(fut)
            self._rebuild(kill=True)
            return _failed(event, CANNOT_DECODE)
        self._warm = True
        return analysis

    async def _analyze_all(self, videos: list[VideoEvent]) -> list[VideoAnalysis]:
        # As many at once as the pool runs, so the timeout measures run time, not queueing.
        width = max(self._processes or self._threads, 1)
        out: list[VideoAnalysis] = []
        for start in range(0, len(videos), width):
            chunk = videos[start:start + width]
            try:
                out += await asyncio.gather(*(self._timed(e) for e in chunk))
                continue
            except BrokenProcessPool:
                log.error("video analysis process died; rebuilding it and retrying one by one")
            self._rebuild()
            for e in chunk:
                try:
                    out.append(await self._timed(e))
                except BrokenProcessPool:
                    log.warning("video %s: the analysis process crashed on it", e.video_id)
                    out.append(_failed(e, CANNOT_DECODE))
                    self._rebuild()
        return out

    def _rebuild(self, *, kill: bool = False) -> None:
        old = self._pool
        old.shutdown(wait=False, cancel_futures=True)
        if kill and isinstance(old, ProcessPoolExecutor):
            # A stalled analysis never returns by itself; ProcessPoolExecutor has no
            # public way to stop a running task before Python 3.14's terminate_workers.
            for proc in list(getattr(old, "_processes", {}).values()):
                with contextlib.suppress(Exception):
                    proc.terminate()
        self._pool = self._new_pool()
        self._warm = False

    async def _vet(self, event: VideoEvent, temp: list[str]) -> VideoEvent | VideoAnalysis:
        """The event with its uri replaced by the vetted one (a fetched URL by its
        local copy), or the failed analysis the policy decided (streams.media)."""
        if not event.uri or event.frame_features is not None:
            return event
        try:
            media = self.media.resolve(event.uri)
            if media.kind != "http":
                return replace(event, uri=media.uri)
            loop = asyncio.get_running_loop()
            path = await loop.run_in_executor(None, self.media.fetch, media.uri)
            temp.append(path)
            return replace(event, uri=path)
        except MediaNotAllowed as exc:
            log.warning("video %s: uri not allowed: %s", event.video_id, exc.detail)
            return _failed(event, NOT_ALLOWED)
        except (OSError, TimeoutError, http.client.HTTPException) as exc:
            log.warning("video %s: fetching the uri failed: %s", event.video_id, exc)
            return _failed(event, CANNOT_DECODE)

    async def handle(self, messages: Sequence[Message]) -> VideoResult:
        batch = decode_batch(messages, allowed=(VideoEvent,), limits=self.limits)
        pending = await self.dead.send(batch.dead)
        videos = [e for e in batch.events if isinstance(e, VideoEvent)]
        temp: list[str] = []
        try:
            vetted = [await self._vet(e, temp) for e in videos]
            todo = [v for v in vetted if isinstance(v, VideoEvent)]
            done = iter(await self._analyze_all(todo) if todo else [])
            analyses = [v if isinstance(v, VideoAnalysis) else next(done) for v in vetted]
        finally:
            for path in temp:
                with contextlib.suppress(OSError):
                    os.unlink(path)
        latents = self._latents() if self._latents is not None else None
        if latents is not None:
            # learned from the logs when the model knew the video, else from its content
            analyses = [latents.attach(a) for a in analyses]
        await self.store.put_videos(analyses, ts=now_ms())
        for fut in pending:
            await fut
        failed = sum(1 for a in analyses if a.extra.get("error"))
        refused, self._refused = self._refused, 0
        return VideoResult(len(videos), len(analyses) - failed, failed, len(batch.dead),
                           self.stuck, refused)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
