"""Batch planning: each event applied once, in order; duplicates skipped."""

from __future__ import annotations

from enf_core.analysis import VideoAnalysis
from enf_core.events import FeedbackEvent, ImpressionEvent, WatchEvent
from enf_core.monitoring import window_record
from enf_core.portrait import Portrait, apply_event
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS
from enf_core.updates import (
    UserState,
    format_wm,
    group_by_user,
    metric_deltas,
    parse_wm,
    plan_updates,
)


def _spider(vid: str = "v1") -> VideoAnalysis:
    elements = [0.0] * len(ELEMENTS)
    elements[ELEMENTS.index("insects_spiders")] = 0.9
    topics = [0.0] * len(TOPICS)
    topics[TOPICS.index("animals")] = 1.0
    return VideoAnalysis(vid, tuple(topics), tuple(elements), (0.05, 0.05, 0.1, 0.8))


EVENTS = [
    WatchEvent("w1", "u1", "v1", 100, 10_000, 1),
    ImpressionEvent("i1", "u2", "v1", "r", 0, 2),
    WatchEvent("w2", "u1", "v1", 9_000, 10_000, 3),
    FeedbackEvent("f1", "u1", "v1", "dislike", 4, "visual_discomfort", "spiders!"),
]


def test_plan_applies_in_order_and_counts_metrics() -> None:
    analyses = {"v1": _spider()}
    plans = plan_updates(group_by_user(EVENTS), {}, analyses)
    ref = Portrait.new("u1")
    for e in EVENTS:
        if e.user_id == "u1":
            apply_event(ref, e, analyses["v1"])
    assert plans["u1"].portrait.to_dict() == ref.to_dict()
    assert plans["u1"].applied_ids == ["w1", "w2", "f1"]
    m = plans["u1"].metrics
    assert m["watches"] == 2 and m["quick_swipes"] == 1 and m["dislikes"] == 1
    assert m["qs:visual_discomfort"] == 1 and m["dl:visual_discomfort"] == 1
    assert plans["u2"].metrics["impressions"] == 1


def test_already_applied_and_in_batch_duplicates_are_skipped() -> None:
    analyses = {"v1": _spider()}
    once = plan_updates(group_by_user(EVENTS), {}, analyses)["u1"]
    state = UserState(once.portrait.version, once.portrait, frozenset(once.applied_ids))
    again = plan_updates(group_by_user(EVENTS + EVENTS), {"u1": state}, analyses)
    assert "u1" not in again  # nothing new for u1: no write at all
    doubled = plan_updates(group_by_user(EVENTS + EVENTS), {}, analyses)["u1"]
    assert doubled.portrait.to_dict() == once.portrait.to_dict()
    assert doubled.skipped_duplicates == 3


def test_quick_swipes_on_spiders_make_a_sensitive_portrait() -> None:
    p = Portrait.new("u")
    for k in range(6):
        apply_event(p, WatchEvent(f"w{k}", "u", "v", 500, 10_000, k), _spider())
    sens = p.element_sensitivity[ELEMENTS.index("insects_spiders")]
    assert sens > 0.7
    assert any("insects" in tag for tag, _ in p.tags())
    assert p.reason_tolerance[REASONS.index("visual_discomfort")] < 0.8
    assert Portrait.from_dict(p.to_dict()).to_dict() == p.to_dict()


def test_metric_deltas_without_analysis_has_no_reason() -> None:
    d = metric_deltas(WatchEvent("w", "u", "v", 1, 100, 1), None, 0.3)
    assert d == {"events": 1, "watches": 1, "quick_swipes": 1}


def test_window_record_rates() -> None:
    rec = window_record({"watches": 200, "quick_swipes": 50, "dislikes": 2,
                         "dl:boring": 2, "qs:boring": 10}, window_start_ms=0, window_ms=1000)
    assert rec["quick_swipe_rate"] == 0.25 and rec["dislike_rate"] == 0.01
    assert rec["by_reason"]["boring"]["quick_swipes"] == 10
    assert rec["window_end"] == 1000


def _watches(uid: str, n: int) -> list[WatchEvent]:
    return [WatchEvent(f"{uid}-w{k}", uid, "v1", 100 * (k % 90), 10_000, k) for k in range(n)]


def test_a_redelivery_below_the_watermark_is_skipped_however_old() -> None:
    """The id set forgets (it keeps the newest ids only); the watermark does not:
    2,500 events redelivered at their positions are all skipped, with no ids."""
    evs = _watches("u1", 2500)
    pos = {"u1": [(3, 100 + k, 0) for k in range(2500)]}
    once = plan_updates({"u1": evs}, {}, {}, positions=pos)["u1"]
    assert once.wm == (3, 2599, 0) and len(once.applied_ids) == 2500
    forgetful = UserState(once.portrait.version, once.portrait, frozenset(), once.wm)
    assert plan_updates({"u1": evs}, {"u1": forgetful}, {}, positions=pos) == {}
    # Half redelivered, half new: only the new half is applied, in order.
    more = _watches("u1", 3000)
    pos2 = {"u1": [(3, 100 + k, 0) for k in range(3000)]}
    plan = plan_updates({"u1": more}, {"u1": forgetful}, {}, positions=pos2)["u1"]
    assert plan.applied_ids == [e.event_id for e in more[2500:]]
    assert plan.skipped_duplicates == 2500 and plan.wm == (3, 3099, 0)
    ref = plan_updates({"u1": more}, {}, {})["u1"]
    assert plan.portrait.to_dict() == ref.portrait.to_dict()


def test_the_index_in_message_orders_events_of_one_page() -> None:
    evs = _watches("u1", 4)
    pos = {"u1": [(0, 7, 0), (0, 7, 1), (0, 7, 2), (0, 7, 3)]}
    state = UserState(1, None, frozenset(), (0, 7, 1))  # crashed after the second
    plan = plan_updates({"u1": evs}, {"u1": state}, {}, positions=pos)["u1"]
    assert plan.applied_ids == ["u1-w2", "u1-w3"] and plan.wm == (0, 7, 3)


def test_another_partition_or_no_position_falls_back_to_ids() -> None:
    """A re-keyed topic or a new partition count moves a user: positions on
    another partition say nothing, the recent ids decide, the watermark moves."""
    evs = _watches("u1", 3)
    state = UserState(1, None, frozenset({"u1-w0"}), (2, 500, 0))
    plan = plan_updates({"u1": evs}, {"u1": state}, {},
                        positions={"u1": [(5, 1, 0), (5, 2, 0), (5, 3, 0)]})["u1"]
    assert plan.applied_ids == ["u1-w1", "u1-w2"] and plan.wm == (5, 3, 0)
    unknown = plan_updates({"u1": evs}, {"u1": state}, {},
                           positions={"u1": [(-1, -1, 0)] * 3})["u1"]
    assert unknown.applied_ids == ["u1-w1", "u1-w2"] and unknown.wm == (2, 500, 0)
    # A producer retry (same event, new offset) is caught by its id.
    retry = plan_updates({"u1": evs[:1]}, {"u1": state}, {},
                         positions={"u1": [(2, 900, 0)]})
    assert retry == {}


def test_watermark_text_round_trips_and_garbage_is_ignored() -> None:
    assert parse_wm(format_wm((1, 22, 3))) == (1, 22, 3)
    assert parse_wm(b"0:5:0") == (0, 5, 0)
    for bad in (None, b"", "x", "1:2", "a:b:c", "-1:4:0"):
        assert parse_wm(bad) is None


def test_snapshots_are_the_portrait_before_the_kth_event() -> None:
    events = [WatchEvent(f"w{i}", "u", "v", 100 * i, 1000, i) for i in range(1, 5)]
    plans = plan_updates({"u": events, "cold": []}, {}, {}, snapshot_at={"u": [0, 2, 4],
                                                                        "cold": [0]})
    snaps = plans["u"].snapshots
    assert sorted(snaps) == [0, 2, 4]
    ref = Portrait.new("u")
    assert snaps[0].to_dict() == ref.to_dict()
    for e in events[:2]:
        apply_event(ref, e)
    assert snaps[2].to_dict() == ref.to_dict()
    assert snaps[4].to_dict() == plans["u"].portrait.to_dict()
    assert snaps[0] is not snaps[2]  # copies, not the live portrait
    # a user with nothing to apply still gets a plan carrying its snapshot
    assert plans["cold"].applied_ids == [] and plans["cold"].snapshots[0].n_events == 0
