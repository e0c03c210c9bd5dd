"""The monitor: closed metric windows → one metrics record each, from one worker."""

from __future__ import annotations

from typing import Any

import orjson

from enf_core.monitoring import window_record
from streams.handlers.base import Sink, now_ms
from streams.store import RedisStore

__all__ = ["Monitor"]


class Monitor:
    """Emits each closed window once across all workers (a Redis SET NX claim)."""

    def __init__(self, store: RedisStore, sink: Sink, *, metrics_topic: str, window_s: float,
                 grace_s: float = 2.0, lookback_windows: int = 6) -> None:
        self.store = store
        self.sink = sink
        self.metrics_topic = metrics_topic
        self.window_ms = max(int(window_s * 1000), 1)
        self.grace_ms = int(grace_s * 1000)
        self._next = ((now_ms() // self.window_ms) - lookback_windows) * self.window_ms
        self.latest: dict[str, Any] | None = None

    async def tick(self) -> list[dict[str, Any]]:
        """Emit every window that closed since the last tick."""
        emitted = []
        horizon = now_ms() - self.grace_ms
        while self._next + self.window_ms <= horizon:
            start = self._next
            self._next += self.window_ms
            counters = await self.store.read_window(start)
            if not counters or not await self.store.claim_window(start):
                continue
            record = window_record(counters, window_start_ms=start, window_ms=self.window_ms)
            await (await self.sink.send(self.metrics_topic, b"window", orjson.dumps(record)))
            self.latest = record
            emitted.append(record)
        return emitted
