"""The Video Agent in the stream: video records → analyses in Redis.

Analysis is CPU-bound (decoding, encoders), so it runs in a thread pool while
the event loop keeps consuming. A video that cannot be analysed (missing or
corrupt file) is recorded as failed with its error and a neutral analysis, so
the scorer still answers for it and the worker never stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from streams.handlers.base import Message, Sink, decode_batch, now_ms, send_dead_letters
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


class VideoHandler:
    def __init__(self, store: RedisStore, sink: Sink, analyzer: Analyzer, *,
                 dead_letter_topic: str, threads: int = 2) -> None:
        self.store = store
        self.sink = sink
        self.analyzer = analyzer
        self.dead_letter_topic = dead_letter_topic
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="enf-video")

    def _analyze(self, event: VideoEvent) -> VideoAnalysis:
        try:
            return self.analyzer.analyze(event)
        except Exception as exc:  # a bad video must never stop the worker
            log.warning("video %s: analysis failed: %s", event.video_id, exc)
            neutral = VideoAnalysis.neutral(event.video_id, duration_ms=event.duration_ms,
                                            title=event.title)
            return replace(neutral, extra={"error": f"{type(exc).__name__}: {exc}"})

    async def handle(self, messages: Sequence[Message]) -> VideoResult:
        batch = decode_batch(messages, allowed=(VideoEvent,))
        pending = await send_dead_letters(self.sink, self.dead_letter_topic, batch.dead)
        loop = asyncio.get_running_loop()
        videos = [e for e in batch.events if isinstance(e, VideoEvent)]
        analyses = await asyncio.gather(
            *(loop.run_in_executor(self._pool, self._analyze, e) for e in videos))
        await self.store.put_videos(analyses, ts=now_ms())
        for fut in pending:
            await fut
        failed = sum(1 for a in analyses if a.extra.get("error"))
        return VideoResult(len(videos), len(analyses) - failed, failed, len(batch.dead))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
