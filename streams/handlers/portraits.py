"""The Profile Agent in the stream: user events → portraits in Redis, at most once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from enf_core.analysis import VideoAnalysis
from enf_core.events import FeedbackEvent, ImpressionEvent, WatchEvent
from enf_core.portrait import PortraitConfig
from enf_core.updates import UserState, group_by_user, plan_updates
from streams.handlers.base import Message, Sink, decode_batch, now_ms, send_dead_letters
from streams.store import PortraitWrite, RedisStore

__all__ = ["PortraitHandler", "PortraitResult"]

log = logging.getLogger(__name__)
_USER_EVENTS = (ImpressionEvent, WatchEvent, FeedbackEvent)


@dataclass(frozen=True, slots=True)
class PortraitResult:
    events: int
    applied: int
    duplicates: int
    users: int
    dead_letters: int
    conflicts: int


class PortraitHandler:
    """Reads once, plans in pure Python, writes once; retries users whose
    portrait moved under it (a rebalance overlap) until their write lands."""

    def __init__(self, store: RedisStore, sink: Sink, *, dead_letter_topic: str,
                 config: PortraitConfig | None = None, window_s: float = 10.0,
                 max_conflict_rounds: int = 50) -> None:
        self.store = store
        self.sink = sink
        self.dead_letter_topic = dead_letter_topic
        self.config = config or PortraitConfig()
        self.window_s = window_s
        self.max_conflict_rounds = max_conflict_rounds
        self._videos: dict[str, VideoAnalysis] = {}

    def window_start(self) -> int:
        w = max(int(self.window_s * 1000), 1)
        return (now_ms() // w) * w

    async def handle(self, messages: Sequence[Message]) -> PortraitResult:
        batch = decode_batch(messages, allowed=_USER_EVENTS)
        pending: list[Awaitable[Any]] = await send_dead_letters(
            self.sink, self.dead_letter_topic, batch.dead)
        by_user = group_by_user(batch.events)
        applied = duplicates = conflicts = 0
        todo = by_user
        for _round in range(self.max_conflict_rounds):
            if not todo:
                break
            ids = {uid: [e.event_id for e in evs] for uid, evs in todo.items()}
            video_ids = {e.video_id for evs in todo.values() for e in evs}
            raw_states, analyses = await self.store.read_for_update(ids, video_ids)
            states = {uid: UserState(v, p, frozenset(a)) for uid, (v, p, a) in raw_states.items()}
            plans = plan_updates(todo, states, analyses, self.config)
            writes = [PortraitWrite(p.portrait, p.expected_version, tuple(p.applied_ids),
                                    dict(p.metrics)) for p in plans.values()]
            moved = set(await self.store.write_portraits(writes, self.window_start()))
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
        for fut in pending:
            await fut
        return PortraitResult(len(batch.events), applied, duplicates, len(by_user),
                              len(batch.dead), conflicts)
