"""The Profile Agent in the stream: user events → portraits in Redis, at most once.

Read-your-writes: a ``candidates`` record sent on the user-events topic (keyed
by user id, like the user's other events) sits in the user's ordered stream, so
this handler scores it against the portrait exactly at its position: after
every event of the user before it, none after. All of a batch's requests go to
the scorer at once, after the batch's portrait writes landed (one ONNX call,
at most one Redis read for video vectors not cached).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from enf_core.analysis import VideoAnalysis
from enf_core.events import (
    CandidatesEvent,
    FeedbackEvent,
    ImpressionEvent,
    UserProfileEvent,
    WatchEvent,
)
from enf_core.limits import InputLimits
from enf_core.portrait import FrozenPortrait, Portrait, PortraitConfig
from enf_core.updates import Position, UserState, format_wm, parse_wm, plan_updates
from streams.handlers.base import (
    DEAD_LETTER_MAX_BYTES,
    DeadLetters,
    Message,
    Quarantined,
    Sink,
    decode_batch,
    now_ms,
)
from streams.handlers.scoring import ScoringHandler, ScoringRequest, ScoringResult
from streams.positions import PartitionPositions
from streams.store import PortraitWrite, RedisStore, split_calls

__all__ = ["PortraitHandler", "PortraitResult"]

log = logging.getLogger(__name__)
_USER_EVENTS = (ImpressionEvent, WatchEvent, FeedbackEvent, UserProfileEvent)


@dataclass(frozen=True, slots=True)
class PortraitResult:
    events: int
    applied: int
    duplicates: int
    users: int
    dead_letters: int
    conflicts: int
    scoring: ScoringResult | None = None  # candidates requests on the user-events topic


# A candidates request at its place in the user's stream: (how many of the
# user's events of this batch precede it, the request, its message).
_Placed = tuple[int, CandidatesEvent, Message]


def _group_with_positions(events: Sequence[Any], sources: Sequence[Message],
                          requests: list[_Placed] | None = None
                          ) -> tuple[dict[str, list[Any]], dict[str, list[Position | None]]]:
    """User events grouped by user in arrival order, each with its position
    (partition, offset, index in its message) for the watermark check; each
    candidates request is appended to ``requests`` with its place."""
    by_user: dict[str, list[Any]] = {}
    positions: dict[str, list[Position | None]] = {}
    prev: Message | None = None
    index = 0
    for e, msg in zip(events, sources, strict=True):
        index = index + 1 if msg is prev else 0  # a message's events are contiguous
        prev = msg
        if isinstance(e, CandidatesEvent) and requests is not None:
            requests.append((len(by_user.setdefault(e.user_id, [])), e, msg))
            positions.setdefault(e.user_id, [])
            continue
        if not isinstance(e, _USER_EVENTS):
            continue
        pos = (msg.partition, msg.offset, index) if msg.partition >= 0 and msg.offset >= 0 \
            else None
        by_user.setdefault(e.user_id, []).append(e)
        positions.setdefault(e.user_id, []).append(pos)
    return by_user, positions


class PortraitHandler:
    """Reads once, plans in pure Python, writes once; retries users whose
    portrait moved under it (a rebalance overlap) until their write lands."""

    def __init__(self, store: RedisStore, sink: Sink, *, dead_letter_topic: str,
                 config: PortraitConfig | None = None, window_s: float = 10.0,
                 max_conflict_rounds: int = 50, video_cache_size: int = 100_000,
                 video_cache_ttl_s: float = 30.0, portrait_cache_size: int = 200_000,
                 dead_letter_max_bytes: int = DEAD_LETTER_MAX_BYTES,
                 scorer: ScoringHandler | None = None,
                 positions: PartitionPositions | None = None,
                 count_metrics: bool = True, limits: InputLimits | None = None) -> None:
        self.store = store
        # Scores candidates records that arrive on the user-events topic; without
        # one, such records are dead letters.
        self.scorer = scorer
        # Where this path has got per partition, for candidates-topic requests.
        self.positions = positions
        self.sink = sink
        self.dead_letter_topic = dead_letter_topic
        # False for a rebuild: old events must not count in today's metric windows.
        self.count_metrics = count_metrics
        self.dead = DeadLetters(sink, dead_letter_topic, dead_letter_max_bytes)
        self.limits = limits or InputLimits()
        self.config = config or PortraitConfig()
        self.window_s = window_s
        self.max_conflict_rounds = max_conflict_rounds
        self._videos: OrderedDict[str, tuple[float, VideoAnalysis]] = OrderedDict()
        self.video_cache_size = video_cache_size
        # Portraits this worker wrote last; only trusted when Redis says the
        # stored version is still the same (see RedisStore.read_for_update).
        # Frozen (tuples only): a full garbage collection then skips them.
        self._portraits: OrderedDict[str, FrozenPortrait] = OrderedDict()
        self.portrait_cache_size = portrait_cache_size
        self.video_cache_ttl_s = video_cache_ttl_s

    def _remember(self, uid: str, portrait: Portrait) -> None:
        self._portraits[uid] = portrait.freeze()
        self._portraits.move_to_end(uid)
        if len(self._portraits) > self.portrait_cache_size:
            self._portraits.popitem(last=False)

    async def _analyses(self, video_ids: set[str], quarantine: list[Quarantined]
                        ) -> dict[str, VideoAnalysis]:
        """Video analyses through a short-lived cache: videos change rarely, and
        re-reading and re-parsing them per batch was a third of the path's time.
        A video not analysed yet is not cached, so it is picked up once it is."""
        now = time.monotonic()
        out: dict[str, VideoAnalysis] = {}
        missing = []
        for vid in video_ids:
            hit = self._videos.get(vid)
            if hit is not None and now - hit[0] <= self.video_cache_ttl_s:
                out[vid] = hit[1]
            else:
                missing.append(vid)
        for vid, analysis in (await self.store.get_analyses(missing, quarantine)).items():
            out[vid] = analysis
            self._videos[vid] = (now, analysis)
            self._videos.move_to_end(vid)
        while len(self._videos) > self.video_cache_size:
            self._videos.popitem(last=False)
        return out

    def window_start(self) -> int:
        w = max(int(self.window_s * 1000), 1)
        return (now_ms() // w) * w

    async def _apply(self, todo: dict[str, list[Any]],
                     positions: dict[str, list[Position | None]],
                     pending: list[Awaitable[Any]],
                     snapshot_at: dict[str, list[int]] | None = None,
                     snapshots: dict[str, dict[int, Portrait]] | None = None
                     ) -> tuple[int, int, int]:
        """Read, plan and write one slice of users until no write conflicts;
        returns (applied, duplicates, conflicts). The portraits asked for in
        ``snapshot_at`` go to ``snapshots``, taken from the plans that landed."""
        applied = duplicates = conflicts = 0
        for _round in range(self.max_conflict_rounds):
            if not todo:
                break
            ids = {uid: [e.event_id for e in evs] for uid, evs in todo.items()}
            # A stored value that cannot be used is quarantined: its video counts as
            # not analysed, its user starts a fresh portrait (written over it).
            bad: list[Quarantined] = []
            analyses = await self._analyses({e.video_id for evs in todo.values() for e in evs
                                             if not isinstance(e, UserProfileEvent)}, bad)
            raw_states = await self.store.read_for_update(ids, self._portraits, bad)
            states: dict[str, UserState] = {}
            tokens: dict[str, int] = {}  # users whose stored v is unusable: the CAS token
            for uid, (v, p, a, wm) in raw_states.items():
                # A cached portrait Redis confirmed comes back frozen: thawed, it is
                # this batch's own copy, which the plans update in place.
                p = Portrait.thaw(p) if isinstance(p, FrozenPortrait) else p
                if v < 0:  # quarantined by the store; continue from the data's version
                    tokens[uid], v = v, (p.version if p is not None else 0)
                pos = parse_wm(wm)
                if wm and pos is None:  # ids decide; the write records a sound one
                    bad.append(Quarantined(self.store.portrait_key(uid), bytes(wm),
                                           "stored watermark 'wm' is unreadable: ignored"))
                states[uid] = UserState(v, p, frozenset(a), pos)
            pending += await self.dead.quarantine(bad)
            plans = plan_updates(todo, states, analyses, self.config, positions, snapshot_at,
                                 copy_base=False)
            writes = [PortraitWrite(p.portrait, tokens.get(uid, p.expected_version),
                                    tuple(p.applied_ids),
                                    dict(p.metrics) if self.count_metrics else {},
                                    format_wm(p.wm) if p.wm else "")
                      for uid, p in plans.items() if p.applied_ids]
            moved = set(await self.store.write_portraits(writes, self.window_start()))
            for uid in todo:
                if uid in moved:
                    self._portraits.pop(uid, None)
                    continue
                plan = plans.get(uid)
                if plan is None:  # nothing new: the read portrait is still current
                    unchanged = states[uid].portrait
                    if unchanged is not None:
                        self._remember(uid, unchanged)
                    continue
                self._remember(uid, plan.portrait)
                if snapshots is not None and plan.snapshots:
                    snapshots[uid] = plan.snapshots
            for uid, evs in todo.items():
                if uid in moved:
                    continue
                n = len(plans[uid].applied_ids) if uid in plans else 0
                applied += n
                duplicates += len(evs) - n
            if moved:
                conflicts += len(moved)
                log.info("portrait version moved for %d users; re-reading", len(moved))
            todo = {uid: todo[uid] for uid in moved}
        else:
            raise RuntimeError(f"portraits of {len(todo)} users kept moving; giving up this batch")
        return applied, duplicates, conflicts

    async def handle(self, messages: Sequence[Message]) -> PortraitResult:
        allowed = _USER_EVENTS + ((CandidatesEvent,) if self.scorer is not None else ())
        batch = decode_batch(messages, allowed=allowed, limits=self.limits)
        pending: list[Awaitable[Any]] = await self.dead.send(batch.dead)
        placed: list[_Placed] = []
        by_user, positions = _group_with_positions(batch.events, batch.sources, placed)
        snapshot_at: dict[str, list[int]] = {}
        for k, e, _ in placed:
            snapshot_at.setdefault(e.user_id, []).append(k)
        snapshots: dict[str, dict[int, Portrait]] = {}
        applied = duplicates = conflicts = 0
        # Users in slices of at most max_users_per_call (and max_ids_per_call
        # events): each slice is read, planned and written before the next, so a
        # huge batch holds one slice's portraits at a time and never one long
        # Lua call (see StoreConfig).
        users = list(by_user)
        cfg = self.store.config
        for start, end in split_calls([len(by_user[u]) for u in users],
                                      cfg.max_users_per_call, cfg.max_ids_per_call):
            a, d, c = await self._apply({u: by_user[u] for u in users[start:end]},
                                        positions, pending, snapshot_at, snapshots)
            applied, duplicates, conflicts = applied + a, duplicates + d, conflicts + c
        if self.positions is not None:
            await self.positions.record(messages)
        scoring = None
        if placed and self.scorer is not None:
            requests = []
            for k, e, msg in placed:
                portrait = snapshots[e.user_id][k]
                requests.append(ScoringRequest(e, msg.timestamp_ms or e.ts, portrait.vector(),
                                               portrait))
            scoring = await self.scorer.respond(requests)
        for fut in pending:
            await fut
        n_user_events = len(batch.events) - len(placed)
        return PortraitResult(n_user_events, applied, duplicates,
                              sum(1 for evs in by_user.values() if evs), len(batch.dead),
                              conflicts, scoring)
