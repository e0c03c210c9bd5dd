"""Planning a batch of portrait updates: grouping, de-duplication, metric deltas.

Pure logic between the store's read and its atomic write. Given what Redis says
(each user's version, portrait, watermark and recently applied event ids) and
the Video Agent's analyses, it applies each not-yet-applied event once, in
order, and says exactly which ids and which watermark the write must record and
which counters it must bump.

Exactly once without a window: a user's events are keyed by user id, so they
sit on one partition in order. The watermark ``wm`` is the position
(partition, offset, index in message) of the last event handled; a redelivered
event at or below it on the same partition was applied already, however old the
redelivery. The recent-id set only covers what positions cannot: the same event
produced again at a new offset (a producer retry), and a user whose partition
changed (a re-keyed topic, a new partition count).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from enf_core.analysis import VideoAnalysis
from enf_core.events import Event, FeedbackEvent, ImpressionEvent, UserProfileEvent, WatchEvent
from enf_core.portrait import Portrait, PortraitConfig, apply_event
from enf_core.taxonomy import REASONS

__all__ = ["PlannedUpdate", "Position", "UserState", "format_wm", "group_by_user",
           "metric_deltas", "parse_wm", "plan_updates"]

UserEvent = ImpressionEvent | WatchEvent | FeedbackEvent | UserProfileEvent
# (partition, offset, index of the event in its message); partition -1: unknown.
Position = tuple[int, int, int]


def format_wm(pos: Position) -> str:
    """The stored form: ``"<partition>:<offset>:<index in message>"``."""
    return f"{pos[0]}:{pos[1]}:{pos[2]}"


def parse_wm(raw: str | bytes | None) -> Position | None:
    """A stored watermark, or None when absent or unreadable (then ids decide)."""
    if not raw:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split(":")
    if len(parts) != 3:
        return None
    try:
        pos = (int(parts[0]), int(parts[1]), int(parts[2]))
    except ValueError:
        return None
    return pos if pos[0] >= 0 else None


def _at_or_below(pos: Position | None, wm: Position | None) -> bool:
    return (pos is not None and wm is not None and pos[0] == wm[0]
            and (pos[1], pos[2]) <= (wm[1], wm[2]))


@dataclass(frozen=True, slots=True)
class UserState:
    """What the store holds for a user at read time."""

    version: int
    portrait: Portrait | None
    applied: frozenset[str] = frozenset()
    wm: Position | None = None  # the last handled position, see the module docstring


@dataclass(slots=True)
class PlannedUpdate:
    portrait: Portrait
    expected_version: int
    applied_ids: list[str] = field(default_factory=list)
    metrics: Counter[str] = field(default_factory=Counter)
    skipped_duplicates: int = 0
    wm: Position | None = None  # the watermark the write must record
    # Portrait copies before the user's k-th event of the batch, for each k asked
    # (``snapshot_at``): what a candidates request at that position is scored on.
    snapshots: dict[int, Portrait] = field(default_factory=dict)


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
    positions: Mapping[str, Sequence[Position | None]] | None = None,
    snapshot_at: Mapping[str, Sequence[int]] | None = None,
    *, copy_base: bool = True,
) -> dict[str, PlannedUpdate]:
    """Apply each user's new events to a copy of the stored portrait.

    An event at or below the user's watermark (``positions`` gives each event's
    position, parallel to ``by_user``), or whose id is recorded in Redis or was
    seen earlier in this batch, is skipped: redelivery after a crash, a
    rebalance or an offset reset, and a producer retry, leave the portrait
    exactly as after one delivery.

    ``snapshot_at`` asks, per user, for copies of the portrait as it stands
    before the user's k-th event of the batch (k = len(events): after all of
    them); such a user gets a plan even when nothing new is applied.

    ``copy_base=False`` updates the stored portraits of ``states`` in place
    instead of copies (a copy was a sixth of the stream's CPU): for a caller
    that owns them and drops any it could not write.
    """
    c = config or PortraitConfig()
    plans: dict[str, PlannedUpdate] = {}
    for uid, events in by_user.items():
        state = states.get(uid, UserState(0, None))
        base = state.portrait
        portrait = (base.copy() if copy_base else base) if base is not None \
            else Portrait.new(uid, c)
        portrait.version = state.version
        plan = PlannedUpdate(portrait, state.version)
        seen = set(state.applied)
        wm = state.wm
        user_positions = positions.get(uid) if positions is not None else None
        wanted = sorted(set(snapshot_at.get(uid, ()))) if snapshot_at is not None else []
        for i, e in enumerate(events):
            while wanted and wanted[0] <= i:
                plan.snapshots[wanted.pop(0)] = portrait.copy()
            pos = user_positions[i] if user_positions is not None else None
            if pos is not None and pos[0] < 0:
                pos = None
            if _at_or_below(pos, wm):
                plan.skipped_duplicates += 1
                continue
            if pos is not None:
                wm = pos  # newer on the same partition, or the user's partition changed
            if e.event_id in seen:
                plan.skipped_duplicates += 1
                continue
            seen.add(e.event_id)
            analysis = None if isinstance(e, UserProfileEvent) else analyses.get(e.video_id)
            apply_event(portrait, e, analysis, c)
            plan.applied_ids.append(e.event_id)
            plan.metrics.update(metric_deltas(e, analysis, c.quick_swipe_ratio))
        for k in wanted:
            plan.snapshots[k] = portrait.copy()
        plan.wm = wm
        if plan.applied_ids or plan.snapshots:
            plans[uid] = plan
    return plans
