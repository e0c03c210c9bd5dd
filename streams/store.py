"""Redis as the source of truth: portraits, video analyses and metric windows.

Key layout (Feast-like: one hash per entity, a timestamp beside the features):

- ``{prefix}:p:{<user_id>}`` portrait hash: ``v`` version (CAS token), ``data``
  (orjson portrait), ``vec`` (float32 scorer input), ``ts``, ``n``, ``qsr``.
- ``{prefix}:a:{<user_id>}`` sorted set of applied event ids (score = version),
  trimmed to the newest ``applied_ids_per_user``: the redelivery check.
- ``{prefix}:v:<video_id>`` video hash: ``data`` (orjson VideoAnalysis),
  ``vec`` (float32), ``status`` (ok | failed), ``error``, ``ts``.
- ``{prefix}:m:<window_start>`` metric window hash (counters), with a TTL.

The user id sits in a hash tag ``{...}`` so a user's keys share a Redis Cluster
slot. A batch of portrait updates is written by one Lua script that, per user,
checks the version read earlier, writes the new portrait, records the applied
event ids and bumps the metric counters, all or nothing. A user whose version
moved (another worker during a rebalance) is reported back and recomputed, so
no event is applied twice and none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.exceptions import BusyLoadingError, NoScriptError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import Portrait

__all__ = ["PortraitWrite", "RedisStore", "StoreConfig", "with_retry"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionError, OSError)

# KEYS: per user [portrait, applied] ... then the metric window key.
# ARGV: n_users, keep, ttl, metric_ttl, then per user:
#   expected_version, new_version, data, vec, ts, n, qsr, n_ids, ids..., n_metric, (field, delta)...
# Returns the 1-based indices of users whose version had moved (not written).
_CAS_SCRIPT = """
local n = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local mttl = tonumber(ARGV[4])
local mkey = KEYS[2 * n + 1]
local a = 5
local conflicts = {}
for i = 1, n do
  local pkey = KEYS[2 * i - 1]
  local akey = KEYS[2 * i]
  local expected = tonumber(ARGV[a])
  local newv = ARGV[a + 1]
  local nids = tonumber(ARGV[a + 7])
  local nmet = tonumber(ARGV[a + 8 + nids])
  local current = tonumber(redis.call('HGET', pkey, 'v') or '0')
  if current ~= expected then
    table.insert(conflicts, i)
  else
    redis.call('HSET', pkey, 'v', newv, 'data', ARGV[a + 2], 'vec', ARGV[a + 3],
               'ts', ARGV[a + 4], 'n', ARGV[a + 5], 'qsr', ARGV[a + 6])
    if ttl > 0 then redis.call('EXPIRE', pkey, ttl) end
    for j = 1, nids do
      redis.call('ZADD', akey, newv, ARGV[a + 7 + j])
    end
    if nids > 0 then
      redis.call('ZREMRANGEBYRANK', akey, 0, -keep - 1)
      if ttl > 0 then redis.call('EXPIRE', akey, ttl) end
    end
    local m = a + 9 + nids
    for j = 1, nmet do
      redis.call('HINCRBY', mkey, ARGV[m], ARGV[m + 1])
      m = m + 2
    end
    if nmet > 0 then redis.call('EXPIRE', mkey, mttl) end
  end
  a = a + 9 + nids + 2 * nmet
end
return conflicts
"""


@dataclass(frozen=True)
class StoreConfig:
    """Key prefix, retention and retry policy of the Redis store."""

    prefix: str = "enf"
    applied_ids_per_user: int = 2000
    portrait_ttl_s: int = 0
    metric_ttl_s: int = 86_400
    retry_max_s: float = 30.0  # back-off cap between attempts
    retry_deadline_s: float = 0.0  # 0: retry forever (never drop a batch)


@dataclass(frozen=True, slots=True)
class PortraitWrite:
    """One user's new portrait plus what the write must record beside it."""

    portrait: Portrait
    expected_version: int
    applied_ids: tuple[str, ...]
    metrics: dict[str, int]


async def with_retry(op: Callable[[], Awaitable[T]], *, what: str, max_backoff_s: float = 30.0,
                     deadline_s: float = 0.0) -> T:
    """Run ``op`` until it succeeds, backing off while Redis is unavailable.

    A batch is never dropped because Redis blinked: the offsets of its messages
    are not committed until the write lands, so waiting is the safe choice.
    """
    delay = 0.05
    loop = asyncio.get_running_loop()
    start = loop.time()
    attempt = 0
    while True:
        try:
            return await op()
        except _RETRYABLE as exc:
            attempt += 1
            if deadline_s and loop.time() - start > deadline_s:
                raise
            log.warning("redis %s failed (attempt %d): %s; retrying in %.2fs",
                        what, attempt, exc, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, max_backoff_s)


class RedisStore:
    """Pipelined, batched access to portraits, videos and metric windows."""

    def __init__(self, url: str, config: StoreConfig | None = None, *,
                 client: aioredis.Redis | None = None) -> None:
        self.config = config or StoreConfig()
        self.url = url
        self.redis: aioredis.Redis = client or aioredis.Redis.from_url(
            url, decode_responses=False, socket_timeout=10, socket_connect_timeout=5,
            health_check_interval=30)
        self._cas = self.redis.register_script(_CAS_SCRIPT)

    # ------------------------------------------------------------------ keys
    def portrait_key(self, user_id: str) -> str:
        return f"{self.config.prefix}:p:{{{user_id}}}"

    def applied_key(self, user_id: str) -> str:
        return f"{self.config.prefix}:a:{{{user_id}}}"

    def video_key(self, video_id: str) -> str:
        return f"{self.config.prefix}:v:{video_id}"

    def metric_key(self, window_start: int) -> str:
        return f"{self.config.prefix}:m:{window_start}"

    async def _retry(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        return await with_retry(op, what=what, max_backoff_s=self.config.retry_max_s,
                                deadline_s=self.config.retry_deadline_s)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # ------------------------------------------------------------- portraits
    async def read_for_update(
        self, user_events: dict[str, list[str]], video_ids: Iterable[str],
    ) -> tuple[dict[str, tuple[int, Portrait | None, set[str]]], dict[str, VideoAnalysis]]:
        """One round trip: each user's version, portrait and which of the given
        event ids were already applied, plus the analyses of the given videos."""
        users = list(user_events)
        videos = list(video_ids)

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for uid in users:
                pipe.hmget(self.portrait_key(uid), "v", "data")
                ids = user_events[uid]
                if ids:
                    pipe.zmscore(self.applied_key(uid), ids)
            for vid in videos:
                pipe.hget(self.video_key(vid), "data")
            return await pipe.execute()

        replies = await self._retry(op, "read portraits")
        out: dict[str, tuple[int, Portrait | None, set[str]]] = {}
        i = 0
        for uid in users:
            version_raw, data = replies[i]
            i += 1
            applied: set[str] = set()
            ids = user_events[uid]
            if ids:
                scores = replies[i]
                i += 1
                applied = {eid for eid, s in zip(ids, scores, strict=True) if s is not None}
            version = int(version_raw) if version_raw is not None else 0
            portrait = Portrait.from_dict(orjson.loads(data)) if data else None
            out[uid] = (version, portrait, applied)
        analyses: dict[str, VideoAnalysis] = {}
        for vid in videos:
            data = replies[i]
            i += 1
            if data:
                analyses[vid] = VideoAnalysis.from_dict(orjson.loads(data))
        return out, analyses

    async def write_portraits(self, writes: Sequence[PortraitWrite],
                              window_start: int) -> list[str]:
        """Write all portraits in one atomic script; returns user ids whose
        version had moved since the read (nothing of theirs was written)."""
        if not writes:
            return []
        cfg = self.config
        keys: list[str] = []
        args: list[Any] = [len(writes), cfg.applied_ids_per_user, cfg.portrait_ttl_s,
                           cfg.metric_ttl_s]
        for w in writes:
            p = w.portrait
            keys += [self.portrait_key(p.user_id), self.applied_key(p.user_id)]
            args += [w.expected_version, p.version, orjson.dumps(p.to_dict()),
                     p.vector().tobytes(), p.last_ts, p.n_events, round(p.quick_swipe_rate, 6),
                     len(w.applied_ids), *w.applied_ids, len(w.metrics)]
            for name, delta in w.metrics.items():
                args += [name, delta]
        keys.append(self.metric_key(window_start))

        async def op() -> list[int]:
            try:
                return await self._cas(keys=keys, args=args)  # type: ignore[no-any-return]
            except NoScriptError:  # Redis restarted and lost its script cache
                self._cas = self.redis.register_script(_CAS_SCRIPT)
                return await self._cas(keys=keys, args=args)  # type: ignore[no-any-return]

        conflicts = await self._retry(op, "write portraits")
        return [writes[int(i) - 1].portrait.user_id for i in conflicts]

    async def get_portrait(self, user_id: str) -> Portrait | None:
        data = await self._retry(lambda: self.redis.hget(self.portrait_key(user_id), "data"),
                                 "get portrait")
        return Portrait.from_dict(orjson.loads(data)) if data else None

    async def portrait_count(self) -> int:
        n = 0
        async for _ in self.redis.scan_iter(match=f"{self.config.prefix}:p:*", count=1000):
            n += 1
        return n

    # ---------------------------------------------------------------- videos
    async def put_videos(self, analyses: Sequence[VideoAnalysis], *, ts: int,
                         failures: Sequence[tuple[str, str]] = ()) -> None:
        """Store analyses (and failed analyses with their error) in one round trip."""
        from enf_core.features import video_vector

        async def op() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for a in analyses:
                status = "failed" if a.extra.get("error") else "ok"
                mapping: dict[str, Any] = {"data": orjson.dumps(a.to_dict()),
                                           "vec": video_vector(a).tobytes(),
                                           "status": status, "ts": ts,
                                           "analyzer": a.analyzer}
                if status == "failed":
                    mapping["error"] = str(a.extra["error"])[:1000]
                pipe.hset(self.video_key(a.video_id), mapping=mapping)
            for vid, error in failures:
                pipe.hset(self.video_key(vid), mapping={"status": "failed",
                                                        "error": error[:1000], "ts": ts})
            await pipe.execute()

        await self._retry(op, "put videos")

    async def get_video(self, video_id: str) -> dict[bytes, bytes]:
        return await self._retry(lambda: self.redis.hgetall(self.video_key(video_id)),  # type: ignore[arg-type,return-value]
                                 "get video")

    async def read_for_scoring(self, user_ids: Sequence[str], video_ids: Sequence[str]
                               ) -> tuple[list[tuple[bytes | None, bytes | None]],
                                          list[tuple[bytes | None, bytes | None]]]:
        """One round trip: (vec, data) of each user's portrait and of each video."""

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for uid in user_ids:
                pipe.hmget(self.portrait_key(uid), "vec", "data")
            for vid in video_ids:
                pipe.hmget(self.video_key(vid), "vec", "data")
            return await pipe.execute()

        replies = await self._retry(op, "read for scoring")
        n = len(user_ids)
        return ([tuple(r) for r in replies[:n]],  # type: ignore[misc]
                [tuple(r) for r in replies[n:]])  # type: ignore[misc]

    # --------------------------------------------------------------- metrics
    async def read_window(self, window_start: int) -> dict[str, int]:
        raw = await self._retry(lambda: self.redis.hgetall(self.metric_key(window_start)),  # type: ignore[arg-type,return-value]
                                "read window")
        return {k.decode(): int(v) for k, v in raw.items()}

    async def claim_window(self, window_start: int) -> bool:
        """True for exactly one worker per window: it emits the metrics record."""
        key = f"{self.config.prefix}:memit:{window_start}"
        return bool(await self._retry(
            lambda: self.redis.set(key, b"1", nx=True, ex=self.config.metric_ttl_s),
            "claim window"))

    async def totals(self) -> dict[str, int]:
        """Sum of all metric windows still in Redis (for summaries and tests)."""
        totals: dict[str, int] = {}
        async for key in self.redis.scan_iter(match=f"{self.config.prefix}:m:*", count=1000):
            raw = await self.redis.hgetall(key)
            for k, v in raw.items():
                totals[k.decode()] = totals.get(k.decode(), 0) + int(v)
        return totals


def vec_from_bytes(raw: bytes | None, dim: int) -> np.ndarray | None:
    if raw is None:
        return None
    v = np.frombuffer(raw, dtype=np.float32)
    return v if v.shape[0] == dim else None
