"""Planning a batch of portrait updates: grouping, de-duplication, metric deltas.

Pure logic between the store's read and its atomic write. Given what Redis says
(each user's version, portrait and already-applied event ids) and the Video
Agent's analyses, it applies each not-yet-applied event once, in order, and
says exactly which ids the write must record and which counters it must bump.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from enf_core.analysis import VideoAnalysis
from enf_core.events import Event, FeedbackEvent, ImpressionEvent, UserProfileEvent, WatchEvent
from enf_core.portrait import Portrait, PortraitConfig, apply_event
from enf_core.taxonomy import REASONS

__all__ = ["PlannedUpdate", "UserState", "group_by_user", "metric_deltas", "plan_updates"]

UserEvent = ImpressionEvent | WatchEvent | FeedbackEvent | UserProfileEvent


@dataclass(frozen=True, slots=True)
class UserState:
    """What the store holds for a user at read time."""

    version: int
    portrait: Portrait | None
    applied: frozenset[str] = frozenset()


@dataclass(slots=True)
class PlannedUpdate:
    portrait: Portrait
    expected_version: int
    applied_ids: list[str] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)
    skipped_duplicates: int = 0


def group_by_user(events: Iterable[Event]) -> dict[str, list[UserEvent]]:
    """User events grouped by user, in arrival order (Kafka keeps per-user order)."""
    out: dict[str, list[UserEvent]] = {}
    for e in events:
        if isinstance(e, ImpressionEvent | WatchEvent | FeedbackEvent | UserProfileEvent):
            out.setdefault(e.user_id, []).append(e)
    return out


def metric_deltas(event: UserEvent, analysis: VideoAnalysis | None,
                  quick_swipe_ratio: float) -> dict[str, int]:
    """Counters one applied event adds to its metric window.

    Quick swipes carry no stated reason, so they are attributed to the most
    likely reason of the video (per the Video Agent), when the video is known.
    """
    if isinstance(event, UserProfileEvent):
        return {"profiles": 1}
    if isinstance(event, ImpressionEvent):
        return {"events": 1, "impressions": 1}
    if isinstance(event, WatchEvent):
        d = {"events": 1, "watches": 1}
        if event.watch_ratio < quick_swipe_ratio:
            d["quick_swipes"] = 1
            if analysis is not None:
                top = max(range(len(REASONS)), key=analysis.reasons.__getitem__)
                d[f"qs:{REASONS[top].value}"] = 1
        return d
    d = {"events": 1, "dislikes": 1}
    d[f"dl:{event.reason_category or 'unstated'}"] = 1
    return d


def plan_updates(
    by_user: Mapping[str, Sequence[UserEvent]],
    states: Mapping[str, UserState],
    analyses: Mapping[str, VideoAnalysis],
    config: PortraitConfig | None = None,
) -> dict[str, PlannedUpdate]:
    """Apply each user's new events to a copy of the stored portrait.

    An event id already recorded in Redis, or seen earlier in this batch, is
    skipped: redelivery after a crash, a rebalance or a producer retry leaves
    the portrait exactly as after one delivery.
    """
    c = config or PortraitConfig()
    plans: dict[str, PlannedUpdate] = {}
    for uid, events in by_user.items():
        state = states.get(uid, UserState(0, None))
        base = state.portrait
        portrait = base.copy() if base is not None else Portrait.new(uid, c)
        portrait.version = state.version
        plan = PlannedUpdate(portrait, state.version)
        seen = set(state.applied)
        for e in events:
            if e.event_id in seen:
                plan.skipped_duplicates += 1
                continue
            seen.add(e.event_id)
            analysis = None if isinstance(e, UserProfileEvent) else analyses.get(e.video_id)
            apply_event(portrait, e, analysis, c)
            plan.applied_ids.append(e.event_id)
            plan.metrics.update(metric_deltas(e, analysis, c.quick_swipe_ratio))
        if plan.applied_ids:
            plans[uid] = plan
    return plans
