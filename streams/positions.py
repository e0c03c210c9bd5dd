"""How far the portrait path has got on each user-events partition (Redis).

For requests on the separate ``candidates`` topic (read-your-writes is exact
only on the user-events topic, see streams/handlers/portraits.py). A user's
events and requests are keyed by user id, so they land on the same partition
number of both topics. The portrait path records per partition the next offset
it will handle and the timestamp of the last message it handled, after the
batch's writes landed. The scorer takes the user-events end offsets when a
batch of requests arrives and waits (at most ``ENF_PORTRAIT_WAIT_MS``) until,
for each request's partition, the portrait path has handled a message produced
at or after the request (so every earlier one: a partition's timestamps follow
the producer's order), or reached the end offset (nothing earlier is missing).
Past the wait the request is scored anyway, marked ``stale`` with
``portrait_lag_events`` = messages of the partition not yet handled (an upper
bound for that user).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from streams.handlers.base import Message
from streams.store import RedisStore, with_retry

__all__ = ["EndOffsets", "PartitionPositions", "Staleness"]

log = logging.getLogger(__name__)

EndOffsets = Callable[[Sequence[int]], Awaitable[dict[int, int]]]

# KEYS: one per partition; ARGV: next offset, last ts per key. Never moves back
# (two owners during a rebalance may both report). A stored value that is not a
# number (another tool, a half-written hash) or a key that is not a hash is
# replaced: it used to fail the script, and so every batch, for good.
_RECORD = """
for i, key in ipairs(KEYS) do
  local off, ts = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local cur = redis.pcall('HMGET', key, 'o', 't')
  if cur['err'] then redis.call('DEL', key); cur = {false, false} end
  local o, t = tonumber(cur[1] or ''), tonumber(cur[2] or '')
  if not o or o < off then redis.call('HSET', key, 'o', off) end
  if not t or t < ts then redis.call('HSET', key, 't', ts) end
end
return 1
"""


def _int(raw: Any) -> int:
    """A stored position field; 0 (nothing recorded) when absent or not an integer."""
    try:
        return int(raw or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True, slots=True)
class Staleness:
    stale: bool
    lag_events: int


class PartitionPositions:
    def __init__(self, store: RedisStore, topic: str) -> None:
        self.store = store
        self.topic = topic
        self._record = store.redis.register_script(_RECORD)

    def key(self, partition: int) -> str:
        # The topic is the hash tag: one Lua call writes several partitions' keys,
        # which on Redis Cluster must share a slot.
        return f"{self.store.config.prefix}:pos:{{{self.topic}}}:{partition}"

    async def record(self, messages: Sequence[Message]) -> None:
        """After a batch of ``topic`` was handled: its partitions' new positions."""
        seen: dict[int, tuple[int, int]] = {}
        for m in messages:
            if m.topic != self.topic or m.partition < 0 or m.offset < 0:
                continue
            off, ts = seen.get(m.partition, (-1, -1))
            seen[m.partition] = (max(off, m.offset + 1), max(ts, m.timestamp_ms))
        if not seen:
            return
        keys = [self.key(p) for p in seen]
        args = [x for v in seen.values() for x in v]
        await with_retry(lambda: self._record(keys=keys, args=args),  # type: ignore[arg-type,return-value]
                         what="record partition positions",
                         max_backoff_s=self.store.config.retry_max_s)

    async def read(self, partitions: Sequence[int]) -> dict[int, tuple[int, int]]:
        """(next offset, last timestamp) per partition; (0, 0) when none recorded."""

        async def op() -> list[list[bytes | None]]:
            pipe = self.store.redis.pipeline(transaction=False)
            for p in partitions:
                pipe.hmget(self.key(p), "o", "t")
            return await pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

        replies = await with_retry(op, what="read partition positions",
                                   max_backoff_s=self.store.config.retry_max_s)
        return {p: (_int(r[0]), _int(r[1])) if isinstance(r, list) else (0, 0)
                for p, r in zip(partitions, replies, strict=True)}

    async def wait(self, requests: Sequence[tuple[int, int]], end_offsets: EndOffsets,
                   wait_s: float, poll_s: float = 0.005) -> list[Staleness]:
        """For (partition, produced ts) of each request: wait until the portrait
        path has caught up with it, at most ``wait_s``; then say how stale each is."""
        parts = sorted({p for p, _ in requests if p >= 0})
        if not parts:
            return [Staleness(False, 0)] * len(requests)
        try:
            ends = await end_offsets(parts)
        except Exception as exc:  # the broker is busy: no bound known, no wait
            log.warning("user-events end offsets unavailable (%s); requests scored "
                        "without waiting", exc)
            return [Staleness(False, 0)] * len(requests)
        deadline = time.monotonic() + wait_s
        while True:
            pos = await self.read(parts)
            out = []
            for p, ts in requests:
                if p < 0:
                    out.append(Staleness(False, 0))
                    continue
                nxt, last_ts = pos[p]
                fresh = nxt >= ends.get(p, 0) or (ts > 0 and last_ts >= ts)
                out.append(Staleness(not fresh, 0 if fresh else max(ends.get(p, 0) - nxt, 0)))
            if not any(s.stale for s in out) or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(poll_s)
