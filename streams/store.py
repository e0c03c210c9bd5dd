"""Redis as the source of truth: portraits, video analyses and metric windows.

Key layout (Feast-like: one hash per entity, a timestamp beside the features):

- ``{prefix}:p:{<user_id>}`` portrait hash: ``v`` version (CAS token), ``data``
  (orjson portrait), ``vec`` (float32 scorer input), ``ts``, ``n``, ``qsr``,
  ``wm`` (the last handled position ``"<partition>:<offset>:<index>"``: anything
  at or below it on that partition is a redelivery, however old).
- ``{prefix}:a:{<user_id>}`` sorted set of recently applied event ids (score =
  version), trimmed to the newest ``applied_ids_per_user``: catches what the
  watermark cannot (an event produced twice at two offsets, a user whose
  partition changed).
- ``{prefix}:v:<video_id>`` video hash: ``data`` (orjson VideoAnalysis),
  ``vec`` (float32), ``status`` (ok | failed), ``error``, ``ts``.
- ``{prefix}:m:<window_start>`` metric window hash (counters), with a TTL.
- ``{prefix}:epoch`` a random token written once (SET NX) when a worker first
  uses this Redis, then checked in every batch's pipeline (the same connection
  as the batch's scripts, so a restart between them breaks the pipeline): a
  Redis that lost its data answers without it, and the worker stops with
  :class:`RedisDataLostError` instead of carrying on over empty state.

The user id sits in a hash tag ``{...}`` so a user's keys share a Redis Cluster
slot. A batch of portrait updates is written by one Lua script that, per user,
checks the version read earlier, writes the new portrait, records the applied
event ids and bumps the metric counters, all or nothing. A user whose version
moved (another worker during a rebalance) is reported back and recomputed, so
no event is applied twice and none is lost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MovedError,
    NoScriptError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import FrozenPortrait, Portrait
from streams.stored import Quarantined, StoredValueError, parse_analysis, parse_portrait

__all__ = ["PortraitWrite", "RedisDataLostError", "RedisStore", "StoreConfig", "is_cluster_url",
           "slot_tag", "split_calls", "with_retry"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# Transient on a single Redis, and on a cluster while slots move or a node fails
# over (MOVED / ASK / TRYAGAIN that redis-py did not resolve itself).
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionError, OSError,
              TryAgainError, MovedError, AskError, ClusterDownError, ClusterError,
              SlotNotCoveredError)

# Event ids are printable (enf_core.events checks), so the unit separator \x1f can
# join them: one argument per user instead of one per id, because redis-py spends
# Python time on every argument it encodes.
SEP = "\x1f"

# A stored CAS version ``v``: its integer value, 0 when absent, -1 when it is not
# a decimal integer of at most 15 digits (written by another tool, half written),
# -2 when the portrait key is not a hash. The write expects -1 / -2 back for such
# a user (RedisStore.read_for_update reports them; the handler quarantines them)
# and replaces the value, so a foreign ``v`` can never make the CAS conflict forever.
_VERSION_LUA = """
local function version(raw)
  if type(raw) == 'table' then return -2 end
  if not raw then return 0 end
  if #raw > 15 or not string.match(raw, '^%d+$') then return -1 end
  return tonumber(raw)
end
"""

# KEYS: per user [portrait, applied] ... then the metric window key.
# ARGV: n_users, keep, ttl, metric_ttl, then per user 10 values:
#   expected_version, new_version, data, vec, ts, n, qsr, ids (joined), metrics
#   ("name=delta" joined), wm ("" keeps the stored one).
# Returns the 1-based indices of users whose version had moved (not written).
_CAS_SCRIPT = _VERSION_LUA + """
local n = tonumber(ARGV[1])
local keep = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local mttl = tonumber(ARGV[4])
local mkey = KEYS[2 * n + 1]
local conflicts = {}
local counted = false
for i = 1, n do
  local a = 5 + 10 * (i - 1)
  local pkey = KEYS[2 * i - 1]
  local akey = KEYS[2 * i]
  local expected = tonumber(ARGV[a])
  local newv = ARGV[a + 1]
  local current = version(redis.pcall('HGET', pkey, 'v'))
  if current ~= expected then
    table.insert(conflicts, i)
  else
    if current == -2 then redis.call('DEL', pkey) end
    redis.call('HSET', pkey, 'v', newv, 'data', ARGV[a + 2], 'vec', ARGV[a + 3],
               'ts', ARGV[a + 4], 'n', ARGV[a + 5], 'qsr', ARGV[a + 6])
    if ARGV[a + 9] ~= '' then redis.call('HSET', pkey, 'wm', ARGV[a + 9]) end
    if ttl > 0 then redis.call('EXPIRE', pkey, ttl) end
    local nids = 0
    for id in string.gmatch(ARGV[a + 7], '[^\\31]+') do
      if type(redis.pcall('ZADD', akey, newv, id)) == 'table' then  -- not a sorted set
        redis.call('DEL', akey)
        redis.call('ZADD', akey, newv, id)
      end
      nids = nids + 1
    end
    if nids > 0 then
      redis.call('ZREMRANGEBYRANK', akey, 0, -keep - 1)
      if ttl > 0 then redis.call('EXPIRE', akey, ttl) end
    end
    for name, delta in string.gmatch(ARGV[a + 8], '([^\\31=]+)=(-?%d+)') do
      if type(redis.pcall('HINCRBY', mkey, name, delta)) == 'table' then
        -- a counter that is not an integer (or a window that is not a hash) restarts
        if redis.call('TYPE', mkey)['ok'] ~= 'hash' then redis.call('DEL', mkey) end
        redis.call('HSET', mkey, name, delta)
      end
      counted = true
    end
  end
end
if counted then redis.call('EXPIRE', mkey, mttl) end
return conflicts
"""


# KEYS: per user [portrait, applied]. ARGV: n_users, then per user the ids (joined)
# and the version the caller holds in its cache (-1: none).
# Returns per user {version or false, data (false when the caller's copy is
# current), {1|0 per id: already applied}, wm or false}.
# One command instead of two per user: redis-py spends ~50 µs of Python per command.
_READ_SCRIPT = _VERSION_LUA + """
local n = tonumber(ARGV[1])
local a = 2
local out = {}
for i = 1, n do
  local pkey = KEYS[2 * i - 1]
  local akey = KEYS[2 * i]
  local head = redis.pcall('HMGET', pkey, 'v', 'wm')
  if head['err'] then head = {-2, false} end  -- not a hash (an integer reply): the CAS replaces it
  local v = head[1]
  local data = false
  local sv = v and v ~= -2 and version(v)
  if sv and (sv < 0 or sv ~= tonumber(ARGV[a + 1])) then
    data = redis.call('HGET', pkey, 'data')
  end
  local flags = {}
  for id in string.gmatch(ARGV[a], '[^\\31]+') do
    local hit = redis.pcall('ZSCORE', akey, id)  -- an id set of the wrong type: none applied
    if hit and type(hit) ~= 'table' then table.insert(flags, 1) else table.insert(flags, 0) end
  end
  a = a + 2
  out[i] = {v, data, flags, head[2]}
end
return out
"""


class RedisDataLostError(RuntimeError):
    """Redis no longer holds this store's epoch: it lost its data (restarted
    without persistence, flushed, failed over to an empty replica). Not
    retried: portraits must be rebuilt (``enf portraits rebuild``) first."""


@dataclass(frozen=True)
class StoreConfig:
    """Key prefix, retention and retry policy of the Redis store."""

    prefix: str = "enf"
    applied_ids_per_user: int = 2000
    portrait_ttl_s: int = 0
    metric_ttl_s: int = 86_400
    retry_max_s: float = 30.0  # back-off cap between attempts
    retry_deadline_s: float = 0.0  # 0: retry forever (never drop a batch)
    socket_timeout_s: float = 10.0
    # Users per Lua call. A script blocks Redis while it runs and its cost grows
    # faster than linearly with its argument count (20k users: ~1 s, 40k: ~8 s),
    # so a batch's users are split into calls of at most this many (pipelined:
    # other clients run between them). A call that times out is retried with
    # half as many users (down to one), never whole forever.
    max_users_per_call: int = 500
    # Event ids per Lua call (the read checks each, the write records each): a few
    # huge pages are few users but many ids. A single user always fits one call.
    max_ids_per_call: int = 20_000


@dataclass(frozen=True, slots=True)
class PortraitWrite:
    """One user's new portrait plus what the write must record beside it."""

    portrait: Portrait
    expected_version: int
    applied_ids: tuple[str, ...]
    metrics: dict[str, int]
    wm: str = ""  # the new watermark (enf_core.updates.format_wm); "" keeps the stored one


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
        # redis+cluster:// (or rediss+cluster://) selects Redis Cluster: a batch's
        # users are grouped by hash slot, one Lua call per slot (and size limit),
        # pipelined per node by redis-py's RedisCluster (MOVED / ASK / TRYAGAIN
        # during a slot migration are followed by it or retried here).
        self.cluster = is_cluster_url(url)
        self.redis: Any
        if client is not None:
            self.redis = client
        elif self.cluster:
            from redis.asyncio.cluster import RedisCluster

            self.redis = RedisCluster.from_url(
                url.replace("+cluster://", "://", 1), decode_responses=False,
                socket_timeout=self.config.socket_timeout_s, socket_connect_timeout=5)
        else:
            self.redis = aioredis.Redis.from_url(
                url, decode_responses=False, socket_timeout=self.config.socket_timeout_s,
                socket_connect_timeout=5, health_check_interval=30)
            pool = self.redis.connection_pool
            pool.connection_class = hiredis_packing(pool.connection_class)
        self._cas = self.redis.register_script(_CAS_SCRIPT)
        self._read = self.redis.register_script(_READ_SCRIPT)
        self.epoch: bytes | None = None  # this Redis's epoch token, once known

    # ------------------------------------------------------------------ keys
    def portrait_key(self, user_id: str) -> str:
        return f"{self.config.prefix}:p:{{{user_id}}}"

    def applied_key(self, user_id: str) -> str:
        return f"{self.config.prefix}:a:{{{user_id}}}"

    def video_key(self, video_id: str) -> str:
        return f"{self.config.prefix}:v:{video_id}"

    def metric_key(self, window_start: int, slot: int | None = None) -> str:
        """One hash per window; on a cluster one per window and slot (a Lua call
        touches one slot only), listed in :meth:`window_slots_key`."""
        base = f"{self.config.prefix}:m:{window_start}"
        return base if slot is None else f"{base}:{{{slot_tag(slot)}}}"

    def window_slots_key(self, window_start: int) -> str:
        return f"{self.config.prefix}:ms:{window_start}"

    async def _retry(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        return await with_retry(op, what=what, max_backoff_s=self.config.retry_max_s,
                                deadline_s=self.config.retry_deadline_s)

    async def close(self) -> None:
        await self.redis.aclose()

    # ----------------------------------------------------------------- epoch
    def epoch_key(self, slot: int | None = None) -> str:
        """``enf:epoch``; on a cluster one copy per hash slot (``enf:epoch:{tag}``),
        so that a node that lost its data is caught by the calls routed to it,
        and a migrating slot takes its copy along."""
        base = f"{self.config.prefix}:epoch"
        return base if slot is None else f"{base}:{{{slot_tag(slot)}}}"

    def _epoch_keys(self) -> list[str]:
        if self.cluster:
            return [self.epoch_key(slot) for slot in range(_SLOTS)]
        return [self.epoch_key()]

    async def ensure_epoch(self) -> bytes:
        """Adopt this Redis's epoch, writing a fresh one if it has none (a new
        Redis, or the first worker after ``enf portraits rebuild`` reset it).
        On a cluster, copies that disagree mean some node lost its data."""
        token = secrets.token_hex(8).encode()
        keys = self._epoch_keys()

        async def op() -> set[bytes]:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, token, nx=True)
            for key in keys:
                pipe.get(key)
            replies = await pipe.execute()
            return {bytes(r) for r in replies[len(keys):] if isinstance(r, bytes)}

        found = await self._retry(op, "epoch")
        # Load the scripts now (on every primary of a cluster), not on a first NOSCRIPT.
        for script in (self._cas, self._read):
            await self._retry(lambda s=script: self.redis.script_load(s.script),  # type: ignore[misc]
                              "load scripts")
        if len(found) != 1:
            raise RedisDataLostError(
                f"Redis Cluster at {_redact(self.url)} holds {len(found)} different epochs: a "
                "node lost its data. Stop the workers, run `enf portraits rebuild`, then "
                "restart them.")
        self.epoch = found.pop()
        return self.epoch

    async def reset_epoch(self) -> bytes:
        """A new epoch (after a rebuild): workers still holding the old one stop."""
        token = secrets.token_hex(8).encode()
        keys = self._epoch_keys()

        async def op() -> None:
            pipe = self.redis.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, token)
            await pipe.execute()

        await self._retry(op, "reset epoch")
        self.epoch = token
        return token

    def _check_epoch(self, seen: bytes | None) -> None:
        if seen != self.epoch:
            raise RedisDataLostError(
                f"Redis at {_redact(self.url)} lost its data: epoch key {self.epoch_key()!r} is "
                f"{'missing' if seen is None else 'different'} (expected {self.epoch!r}, found "
                f"{seen!r}). It restarted without persistence, was flushed, or failed over to an "
                "empty replica. Stop the workers, run `enf portraits rebuild`, then restart "
                "them (see the README's Guarantees).")

    async def _epoch_pipeline(self, slots: Sequence[int] = ()) -> Any:
        """A pipeline whose first replies are the epoch copies (checked by the
        caller): one on a single Redis, one per given slot on a cluster (each
        sent to the node, and so the connection, that runs that slot's calls)."""
        if self.epoch is None:
            await self.ensure_epoch()
        pipe = self.redis.pipeline(transaction=False)
        if self.cluster:
            for slot in slots:
                pipe.get(self.epoch_key(slot))
        else:
            pipe.get(self.epoch_key())
        return pipe

    def _n_epochs(self, slots: Sequence[int]) -> int:
        return len(slots) if self.cluster else 1

    async def _per_user_script(self, script: Any, units: Sequence[tuple[list[str], list[Any]]],
                               weights: Sequence[int], head: Callable[[int], list[Any]],
                               tail_keys: Callable[[int | None], list[str]], what: str
                               ) -> list[tuple[list[int], Any]]:
        """Run ``script`` over per-user (keys, args) units in calls of at most
        ``max_users_per_call`` users and ``max_ids_per_call`` event ids
        (``weights``), pipelined in one round trip; on a cluster, a call holds
        users of one hash slot only. Returns (indices of the call's units, the
        call's reply) per call.

        A timed-out pipeline is retried with calls half the size: a call that
        landed before the timeout is harmless to repeat (a CAS whose version
        moved is reported as a conflict and recomputed; reads have no effect).
        """
        limits = [max(1, self.config.max_users_per_call), max(1, self.config.max_ids_per_call)]
        groups: dict[int | None, list[int]] = {}
        for i, (keys, _args) in enumerate(units):
            groups.setdefault(key_slot(keys[0].encode()) if self.cluster else None,
                              []).append(i)

        # After a timeout the calls also go one per round trip: a pipeline of
        # many small calls is still one large write to the socket.
        one_by_one = [False]

        async def run_calls(calls: list[tuple[int | None, list[int]]]) -> list[Any]:
            call_slots = sorted({slot for slot, _m in calls if slot is not None})
            pipe = await self._epoch_pipeline(call_slots)
            for slot, members in calls:
                keys = [k for i in members for k in units[i][0]] + tail_keys(slot)
                args = head(len(members)) + [a for i in members for a in units[i][1]]
                # EVALSHA straight away (ClusterPipeline blocks .evalsha()): a
                # Script on a pipeline asks SCRIPT EXISTS first, one more round
                # trip per batch. NOSCRIPT (a restarted Redis) is handled below.
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            n_epochs = self._n_epochs(call_slots)
            replies = await pipe.execute()
            for seen in replies[:n_epochs]:
                self._check_epoch(seen)
            return list(replies[n_epochs:])

        async def op() -> list[tuple[list[int], Any]]:
            calls: list[tuple[int | None, list[int]]] = []
            for slot, members in groups.items():
                for start, end in split_calls([weights[i] for i in members],
                                              limits[0], limits[1]):
                    calls.append((slot, members[start:end]))
            rounds = [[c] for c in calls] if one_by_one[0] else [calls]
            replies: list[Any] = []
            try:
                for batch in rounds:
                    replies += await run_calls(batch)
            except NoScriptError:
                await self.redis.script_load(script.script)  # every primary of a cluster
                raise RedisConnectionError("script cache was empty: loaded it") from None
            except RedisTimeoutError:
                one_by_one[0] = True
                largest = max(len(members) for _slot, members in calls)
                if largest > 1:  # halve the calls actually made, not just the limit
                    limits[0] = max(1, min(limits[0], largest) // 2)
                    limits[1] = max(1, limits[1] // 2)
                    log.warning("redis %s timed out in calls of up to %d users; retrying with "
                                "up to %d, one call per round trip", what, largest, limits[0])
                raise
            return [(members, reply) for (_slot, members), reply
                    in zip(calls, replies, strict=True)]

        return await self._retry(op, what)

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # ------------------------------------------------------------- portraits
    async def read_for_update(
        self, user_events: dict[str, list[str]],
        cached: Mapping[str, Portrait | FrozenPortrait] | None = None,
        quarantine: list[Quarantined] | None = None,
    ) -> dict[str, tuple[int, Portrait | FrozenPortrait | None, set[str], bytes | None]]:
        """One command: each user's version, portrait, which of the given
        event ids were already applied, and the stored watermark.

        ``cached`` holds portraits this worker wrote last; Redis sends a portrait
        back only when its version differs from the cached one (another worker
        wrote it), which saves most transfers and JSON parses. A cached one that
        is current comes back as it is (the same object, frozen or not).
        """
        cached = cached or {}
        users = list(user_events)
        units: list[tuple[list[str], list[Any]]] = []
        for uid in users:
            mine = cached.get(uid)
            units.append(([self.portrait_key(uid), self.applied_key(uid)],
                          [SEP.join(user_events[uid]), mine.version if mine is not None else -1]))
        # A Redis that lost its script cache answers NOSCRIPT: loaded, then retried.
        calls = await self._per_user_script(self._read, units,
                                            [len(user_events[u]) for u in users],
                                            lambda n: [n], lambda _slot: [], "read portraits")
        replies: list[Any] = [None] * len(users)
        for members, reply in calls:
            for i, r in zip(members, reply, strict=True):
                replies[i] = r
        out: dict[str, tuple[int, Portrait | FrozenPortrait | None, set[str], bytes | None]] = {}
        for uid, (version_raw, data, flags, wm) in zip(users, replies, strict=True):
            ids = user_events[uid]
            applied = {eid for eid, f in zip(ids, flags, strict=True) if f}
            version = stored_version(version_raw)
            if version < 0:  # the CAS expects this token back and replaces the value
                if quarantine is None:
                    raise StoredValueError(f"{self.portrait_key(uid)}: unusable version")
                quarantine.append(Quarantined(
                    self.portrait_key(uid), None if version == -2 else bytes(version_raw),
                    "stored portrait key is not a hash: replaced by a new portrait"
                    if version == -2 else "stored portrait version 'v' is not an integer: "
                    "replaced (the portrait continues from its data when that is usable)"))
            portrait: Portrait | FrozenPortrait | None
            if data:
                try:
                    portrait = parse_portrait(data)
                except StoredValueError as exc:
                    if quarantine is None:
                        raise
                    quarantine.append(Quarantined(self.portrait_key(uid), data, str(exc)))
                    portrait = None
            elif version > 0 and uid in cached:
                portrait = cached[uid]  # Redis confirmed it is current
            else:
                portrait = None
            out[uid] = (version, portrait, applied, wm or None)
        return out

    async def get_analyses(self, video_ids: Sequence[str],
                           quarantine: list[Quarantined] | None = None
                           ) -> dict[str, VideoAnalysis]:
        """The stored analyses of the given videos (missing ones are left out;
        unusable ones too, appended to ``quarantine``)."""
        if not video_ids:
            return {}

        async def op() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for vid in video_ids:
                pipe.hget(self.video_key(vid), "data")
            return await pipe.execute(raise_on_error=False)

        replies = await self._retry(op, "read videos")
        out: dict[str, VideoAnalysis] = {}
        for vid, data in zip(video_ids, replies, strict=True):
            if isinstance(data, Exception):  # a video key that is not a hash
                _raise_unless_wrongtype(data)
                if quarantine is None:
                    raise data
                quarantine.append(Quarantined(self.video_key(vid), None,
                                              "stored video key is not a hash"))
                continue
            if not data:
                continue
            try:
                out[vid] = parse_analysis(data)
            except StoredValueError as exc:
                if quarantine is None:
                    raise
                quarantine.append(Quarantined(self.video_key(vid), data, str(exc)))
        return out

    async def write_portraits(self, writes: Sequence[PortraitWrite],
                              window_start: int) -> list[str]:
        """Write the portraits with atomic scripts (each user's portrait, ids,
        watermark and counters all or nothing, at most ``max_users_per_call``
        users per script); returns user ids whose version had moved since the
        read (nothing of theirs was written)."""
        if not writes:
            return []
        cfg = self.config
        keep = max(cfg.applied_ids_per_user, 0)
        units: list[tuple[list[str], list[Any]]] = []
        weights: list[int] = []
        for w in writes:
            p = w.portrait
            # Only the newest ``keep`` ids survive the trim: send no more.
            ids = w.applied_ids[-keep:] if keep else ()
            weights.append(len(ids))
            units.append(([self.portrait_key(p.user_id), self.applied_key(p.user_id)],
                          [w.expected_version, p.version, orjson.dumps(p.to_dict()),
                           p.vector().tobytes(), p.last_ts, p.n_events,
                           repr(round(p.quick_swipe_rate, 6)), SEP.join(ids),
                           SEP.join(f"{name}={delta}" for name, delta in w.metrics.items()),
                           w.wm]))
        calls = await self._per_user_script(
            self._cas, units, weights,
            lambda n: [n, cfg.applied_ids_per_user, cfg.portrait_ttl_s, cfg.metric_ttl_s],
            lambda slot: [self.metric_key(window_start, slot)], "write portraits")
        if self.cluster:  # which slots' window hashes to sum (idempotent, after the writes)
            slots = {key_slot(u[0][0].encode()) for u in units}
            await self._retry(lambda: self.redis.sadd(self.window_slots_key(window_start),
                                                      *sorted(slots)), "window slots")
            await self._retry(lambda: self.redis.expire(self.window_slots_key(window_start),
                                                        cfg.metric_ttl_s), "window slots")
        return [writes[members[int(i) - 1]].portrait.user_id
                for members, conflicts in calls for i in conflicts]

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
                mapping: dict[str | bytes, Any] = {"data": orjson.dumps(a.to_dict()),
                                           "vec": video_vector(a).tobytes(),
                                           "status": status, "ts": ts,
                                           "analyzer": a.analyzer}
                if status == "failed":
                    mapping["error"] = str(a.extra["error"])[:1000]
                pipe.hset(self.video_key(a.video_id), mapping=mapping)  # type: ignore[arg-type]
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

        slots = sorted({key_slot(self.portrait_key(u).encode()) for u in user_ids}) \
            if self.cluster else []

        async def op() -> list[Any]:
            pipe = await self._epoch_pipeline(slots)
            for uid in user_ids:
                pipe.hmget(self.portrait_key(uid), "vec", "data")
            for vid in video_ids:
                pipe.hmget(self.video_key(vid), "vec", "data")
            replies = await pipe.execute(raise_on_error=False)
            n_epochs = self._n_epochs(slots)
            for seen in replies[:n_epochs]:
                if isinstance(seen, Exception):
                    raise seen
                self._check_epoch(seen)
            return replies[n_epochs:]

        replies = await self._retry(op, "read for scoring")
        # A key that is not a hash reads as (b"", b""): its vector has the wrong
        # size and its data is not JSON, so the scorer quarantines it.
        rows: list[tuple[bytes | None, bytes | None]] = []
        for r in replies:
            if isinstance(r, Exception):
                _raise_unless_wrongtype(r)
                rows.append((b"", b""))
            else:
                rows.append((r[0], r[1]))
        n = len(user_ids)
        return rows[:n], rows[n:]

    # --------------------------------------------------------------- metrics
    async def read_window(self, window_start: int) -> dict[str, int]:
        """A window's counters; one that is not an integer (or a window key that
        is not a hash) is left out with a warning, never fails the monitor."""
        if not self.cluster:
            async def one() -> Any:
                pipe = self.redis.pipeline(transaction=False)
                pipe.hgetall(self.metric_key(window_start))
                return (await pipe.execute(raise_on_error=False))[0]

            return _counters([await self._retry(one, "read window")], window_start)

        async def op() -> dict[str, int]:
            slots = await self.redis.smembers(self.window_slots_key(window_start))
            pipe = self.redis.pipeline(transaction=False)
            for slot in sorted(_int_or(x, -1) for x in slots):
                if 0 <= slot < _SLOTS:
                    pipe.hgetall(self.metric_key(window_start, slot))
            return _counters(await pipe.execute(raise_on_error=False) if slots else [],
                             window_start)

        return await self._retry(op, "read window")

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
            pipe = self.redis.pipeline(transaction=False)
            pipe.hgetall(key)
            for k, v in _counters(await pipe.execute(raise_on_error=False), key).items():
                totals[k] = totals.get(k, 0) + v
        return totals


_SLOTS = 16384  # Redis Cluster's hash slots


@functools.cache
def hiredis_packing(connection_class: type) -> type:
    """``connection_class`` packing commands with hiredis's C packer.

    redis-py's asyncio connections pack every argument in Python (its sync ones
    use hiredis when installed): that was a fifth of the portrait path's CPU.
    hiredis writes floats as ``repr`` does (redis-py's text); what it refuses
    (bool, None, bytearray) goes to redis-py's packer, which decides; without
    hiredis the class is returned unchanged.
    """
    try:
        from hiredis import pack_command
    except ImportError:  # pragma: no cover - hiredis is a dependency
        return connection_class

    def pack_one(args: tuple[Any, ...]) -> bytes | None:
        head = args[0]
        if b" " in head if type(head) is bytes else " " in head:
            return None  # 'SCRIPT LOAD' and the like: redis-py splits them
        try:  # floats come out as repr() does, redis-py's text for them
            return pack_command(args)  # type: ignore[no-any-return]
        except TypeError:  # bool, None, bytearray: redis-py's encoder decides
            return None

    class HiredisPacking(connection_class):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            packed = pack_one(args)
            return super().pack_command(*args) if packed is None else [packed]

        def pack_commands(self, commands: Any) -> list[bytes]:
            out: list[bytes] = []
            for cmd in commands:
                packed = pack_one(tuple(cmd))
                out.extend(super().pack_command(*cmd) if packed is None else [packed])
            return [b"".join(out)]

    HiredisPacking.__name__ = HiredisPacking.__qualname__ = \
        f"HiredisPacking{connection_class.__name__}"
    return HiredisPacking


def is_cluster_url(url: str) -> bool:
    """``redis+cluster://`` / ``rediss+cluster://``: the store talks Redis Cluster."""
    return url.split("://", 1)[0].lower() in ("redis+cluster", "rediss+cluster")


@functools.cache
def _slot_tags() -> tuple[str, ...]:
    """For each hash slot, a short string that hashes to it (a key's ``{tag}``)."""
    tags: list[str | None] = [None] * _SLOTS
    missing, i = _SLOTS, 0
    while missing:
        slot = key_slot(str(i).encode())
        if tags[slot] is None:
            tags[slot] = str(i)
            missing -= 1
        i += 1
    return tuple(t for t in tags if t is not None)


def slot_tag(slot: int) -> str:
    return _slot_tags()[slot]


def split_calls(weights: Sequence[int], max_units: int, max_weight: int
                ) -> list[tuple[int, int]]:
    """Consecutive [start, end) spans of at most ``max_units`` units and
    ``max_weight`` total weight each (a unit heavier than that gets a span of
    its own): how a batch's users are split into Lua calls."""
    spans: list[tuple[int, int]] = []
    start, weight = 0, 0
    for i, w in enumerate(weights):
        if i > start and (i - start >= max_units or weight + w > max_weight):
            spans.append((start, i))
            start, weight = i, 0
        weight += w
    if start < len(weights):
        spans.append((start, len(weights)))
    return spans


def stored_version(raw: bytes | int | None) -> int:
    """What the scripts' ``version()`` makes of a stored ``v`` (see _VERSION_LUA):
    the integer, 0 when absent, -1 when not a decimal integer of at most 15
    digits, -2 when the read script found the portrait key not a hash."""
    if isinstance(raw, int):
        return raw
    if not raw:
        return 0 if raw is None else -1
    if len(raw) > 15 or not raw.isdigit():
        return -1
    return int(raw)


def _redact(url: str) -> str:
    """The URL without its password (credentials never reach logs)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _raise_unless_wrongtype(exc: Exception) -> None:
    """A WRONGTYPE reply is a bad stored value (quarantined); anything else is not."""
    if not (isinstance(exc, ResponseError) and str(exc).startswith("WRONGTYPE")):
        raise exc


def _int_or(raw: Any, default: T) -> int | T:
    try:
        return int(raw)
    except (TypeError, ValueError):
        return default


def _counters(replies: Sequence[Any], where: object) -> dict[str, int]:
    """Summed HGETALL replies of metric hashes, skipping what is not an integer
    counter (another tool's value; the CAS script restarts such a counter)."""
    out: dict[str, int] = {}
    for raw in replies:
        if not isinstance(raw, dict):
            log.warning("metric window %s is not a hash: %s", where, raw)
            continue
        for k, v in raw.items():
            n = _int_or(v, None)
            if n is None:
                log.warning("metric window %s: counter %r is not an integer: %r", where, k, v)
                continue
            out[_text(k)] = out.get(_text(k), 0) + n
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def vec_from_bytes(raw: bytes | None, dim: int) -> np.ndarray | None:
    if raw is None:
        return None
    v = np.frombuffer(raw, dtype=np.float32)
    return v if v.shape[0] == dim else None
