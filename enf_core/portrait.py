"""The Profile Agent's portrait of a user, updated one event at a time.

A portrait is what the paper's Profile Agent writes in prose, kept as numbers a
scorer can use and a person can read: per-topic interest (the watch ratio the
user tends to give that topic), per-element sensitivity (how often an element
in a video goes with a quick swipe or a dislike), per-reason tolerance, and the
user's quick-swipe and dislike rates. Quick swipes (watch ratio < 0.3) and
explicit reasons move it most, as in the paper.

Beside the traits, a portrait keeps a latent taste vector (ridge regression of
the user's engagement on the videos' latent vectors, kept exactly per event)
and a bounded recent history with recency-weighted centroids of what the user
swiped and fully watched (``enf_core.latent``): the collaborative and
sequential signal. Tags still come from the traits only.

Updates are pure functions of (portrait, event, video analysis, config); the
stream makes them idempotent by recording applied event ids beside the write.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.events import Event, FeedbackEvent, ImpressionEvent, UserProfileEvent, WatchEvent
from enf_core.latent import (
    LATENT_DIM,
    USER_LATENT_DIM,
    Outcome,
    ema_centroid,
    latent_update,
    new_latent_p,
    outcome_of,
    outcome_values,
    update_rates,
)
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS, Reason, reason_index

__all__ = ["FrozenPortrait", "Portrait", "PortraitConfig", "apply_event", "apply_profile",
           "portrait_tags"]

_N_T, _N_E, _N_R = len(TOPICS), len(ELEMENTS), len(REASONS)
_ELEMENT_REASON_IDX = tuple(reason_index(ELEMENT_REASON[e]) for e in ELEMENTS)


@dataclass(frozen=True)
class PortraitConfig:
    """Learning rates of the incremental Profile Agent (documented defaults)."""

    quick_swipe_ratio: float = 0.3  # watch ratio below this is a quick swipe (paper)
    interest_rate: float = 0.15  # EMA step of per-topic watch ratio, scaled by topic weight
    sensitivity_rate_quick: float = 0.35  # element sensitivity step on a quick swipe
    sensitivity_rate_watch: float = 0.08  # ... on a normal watch (evidence of tolerance)
    sensitivity_rate_explicit: float = 0.6  # ... on an explicit dislike naming the reason
    tolerance_rate_quick: float = 0.06  # reason tolerance step on a quick swipe
    tolerance_rate_watch: float = 0.02
    tolerance_rate_explicit: float = 0.5
    rate_ema: float = 0.05  # EMA step of quick-swipe and dislike rates
    prior_interest: float = 0.5
    prior_sensitivity: float = 0.15
    prior_tolerance: float = 0.8
    element_floor: float = 0.2  # element scores below this do not move sensitivities
    declared_interest: float = 0.65  # interest of a topic the user declared as a tag
    latent_prior_precision: float = 3.0  # ridge λ of the latent taste: P starts at I / λ
    history_len: int = 32  # recent (video, outcome, watch ratio) entries kept per user
    history_decay: float = 0.85  # weight of the k-th newest history entry: decay ** k
    centroid_rate: float = 0.25  # EMA step of the recent negative / positive latent centroids
    full_watch_ratio: float = 0.8  # a watch at or above this ratio is a full watch


class FrozenPortrait(NamedTuple):
    """``Portrait.freeze``'s copy: the version (what caches compare) and the
    fields in ``Portrait``'s order, as tuples."""

    version: int
    fields: tuple[Any, ...]


@dataclass(slots=True)
class Portrait:
    """A user's portrait; ``version`` counts applied events (the store's CAS token)."""

    user_id: str
    interests: list[float] = field(default_factory=lambda: [0.5] * _N_T)
    element_sensitivity: list[float] = field(default_factory=lambda: [0.15] * _N_E)
    reason_tolerance: list[float] = field(default_factory=lambda: [0.8] * _N_R)
    quick_swipe_rate: float = 0.0
    dislike_rate: float = 0.0
    n_events: int = 0
    n_impressions: int = 0
    n_watches: int = 0
    n_quick_swipes: int = 0
    n_dislikes: int = 0
    reason_counts: list[int] = field(default_factory=lambda: [0] * _N_R)
    demographics: dict[str, Any] = field(default_factory=dict)
    last_ts: int = 0
    version: int = 0
    # latent taste [factors | bias] and the upper triangle of its inverse Gram matrix
    latent: list[float] = field(default_factory=lambda: [0.0] * USER_LATENT_DIM)
    latent_p: list[float] = field(default_factory=lambda: new_latent_p(
        PortraitConfig.latent_prior_precision))
    n_latent: int = 0  # observations the latent rests on
    # recency-weighted latent centroids of quickly swiped / disliked and fully watched videos
    recent_negative: list[float] = field(default_factory=lambda: [0.0] * LATENT_DIM)
    recent_positive: list[float] = field(default_factory=lambda: [0.0] * LATENT_DIM)
    # [video_id, outcome, watch ratio], oldest first, at most history_len entries
    # (tuples: immutable entries are shared by copies and skipped by the collector)
    history: list[tuple[str, int, float]] = field(default_factory=list)
    # recency-weighted quick-swipe, dislike, watch-ratio, full-watch rates (enf_core.latent)
    recent_rates: list[float] = field(default_factory=lambda: [0.0] * 4)
    recent_weight: float = 0.0

    @classmethod
    def new(cls, user_id: str, config: PortraitConfig | None = None) -> Portrait:
        c = config or PortraitConfig()
        return cls(user_id, [c.prior_interest] * _N_T, [c.prior_sensitivity] * _N_E,
                   [c.prior_tolerance] * _N_R, latent_p=new_latent_p(c.latent_prior_precision))

    def vector(self) -> np.ndarray:
        """The scorer's portrait input; layout in ``enf_core.features``."""
        from enf_core.features import portrait_vector

        return portrait_vector(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            # Full precision: a portrait must not depend on where batches split.
            "interests": list(self.interests),
            "element_sensitivity": list(self.element_sensitivity),
            "reason_tolerance": list(self.reason_tolerance),
            "quick_swipe_rate": self.quick_swipe_rate,
            "dislike_rate": self.dislike_rate,
            "n_events": self.n_events,
            "n_impressions": self.n_impressions,
            "n_watches": self.n_watches,
            "n_quick_swipes": self.n_quick_swipes,
            "n_dislikes": self.n_dislikes,
            "reason_counts": list(self.reason_counts),
            "demographics": self.demographics,
            "last_ts": self.last_ts,
            "version": self.version,
            "latent": list(self.latent),
            "latent_p": list(self.latent_p),
            "n_latent": self.n_latent,
            "recent_negative": list(self.recent_negative),
            "recent_positive": list(self.recent_positive),
            "history": [list(h) for h in self.history],
            "recent_rates": list(self.recent_rates),
            "recent_weight": self.recent_weight,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Portrait:
        p = cls(d["user_id"])
        for name in ("interests", "element_sensitivity", "reason_tolerance"):
            setattr(p, name, [float(x) for x in d[name]])
        for name in ("quick_swipe_rate", "dislike_rate"):
            setattr(p, name, float(d[name]))
        for name in ("n_events", "n_impressions", "n_watches", "n_quick_swipes", "n_dislikes",
                     "last_ts", "version"):
            setattr(p, name, int(d[name]))
        p.reason_counts = [int(x) for x in d.get("reason_counts", [0] * _N_R)]
        p.demographics = dict(d.get("demographics", {}))
        # Portraits written before the latent layout start from the prior.
        if "latent" in d:
            p.latent = [float(x) for x in d["latent"]]
            p.latent_p = [float(x) for x in d["latent_p"]]
            p.n_latent = int(d.get("n_latent", 0))
            p.recent_negative = [float(x) for x in d["recent_negative"]]
            p.recent_positive = [float(x) for x in d["recent_positive"]]
            p.history = [(str(h[0]), int(h[1]), float(h[2])) for h in d.get("history", ())]
            p.recent_rates = [float(x) for x in d["recent_rates"]]
            p.recent_weight = float(d["recent_weight"])
        return p

    def copy(self) -> Portrait:
        return Portrait(self.user_id, list(self.interests), list(self.element_sensitivity),
                        list(self.reason_tolerance), self.quick_swipe_rate, self.dislike_rate,
                        self.n_events, self.n_impressions, self.n_watches, self.n_quick_swipes,
                        self.n_dislikes, list(self.reason_counts), dict(self.demographics),
                        self.last_ts, self.version, list(self.latent), list(self.latent_p),
                        self.n_latent, list(self.recent_negative), list(self.recent_positive),
                        list(self.history), list(self.recent_rates),
                        self.recent_weight)

    def freeze(self) -> FrozenPortrait:
        """An immutable copy made of tuples only.

        A cache of many portraits must not hold lists: the garbage collector
        walks every list of every cached portrait in each full collection (a
        dozen a portrait, 45 while history entries were lists: a 200k-portrait
        cache made pauses of seconds), while tuples of numbers are untracked
        after their first collections.
        """
        return FrozenPortrait(self.version, (
            self.user_id, tuple(self.interests), tuple(self.element_sensitivity),
            tuple(self.reason_tolerance), self.quick_swipe_rate, self.dislike_rate,
            self.n_events, self.n_impressions, self.n_watches, self.n_quick_swipes,
            self.n_dislikes, tuple(self.reason_counts),
            tuple((k, tuple(v) if isinstance(v, list) else v)
                  for k, v in self.demographics.items()), self.last_ts,
            self.version, tuple(self.latent), tuple(self.latent_p), self.n_latent,
            tuple(self.recent_negative), tuple(self.recent_positive),
            tuple(self.history), tuple(self.recent_rates),
            self.recent_weight))

    @classmethod
    def thaw(cls, frozen: FrozenPortrait) -> Portrait:
        """The mutable portrait of :meth:`freeze`'s copy (a new one each call)."""
        (uid, interests, sensitivity, tolerance, qsr, dlr, n_events, n_impressions, n_watches,
         n_quick, n_dislikes, reason_counts, demographics, last_ts, version, latent, latent_p,
         n_latent, negative, positive, history, rates, weight) = frozen.fields
        return cls(uid, list(interests), list(sensitivity), list(tolerance), qsr, dlr,
                   n_events, n_impressions, n_watches, n_quick, n_dislikes,
                   list(reason_counts),
                   {k: list(v) if isinstance(v, tuple) else v for k, v in demographics},
                   last_ts, version, list(latent),
                   list(latent_p), n_latent, list(negative), list(positive),
                   list(history), list(rates), weight)

    def tags(self, limit: int = 6) -> list[tuple[str, float]]:
        return portrait_tags(self, limit=limit)


def _step(value: float, target: float, rate: float) -> float:
    return value + rate * (target - value)


def _remember(p: Portrait, video_id: str, outcome: int, ratio: float,
              c: PortraitConfig) -> None:
    ratio = round(ratio, 4)
    p.history.append((video_id, outcome, ratio))
    p.recent_rates, p.recent_weight = update_rates(p.recent_rates, p.recent_weight,
                                                   outcome_values(outcome, ratio),
                                                   c.history_decay)
    if len(p.history) > c.history_len:
        del p.history[:len(p.history) - c.history_len]


def _apply_latent(p: Portrait, a: VideoAnalysis, engagement: float, outcome: int,
                  c: PortraitConfig) -> None:
    """The latent taste and the recent centroids; a video without a latent vector
    (no model knew it, none predicted it) teaches them nothing."""
    if len(a.latent) != USER_LATENT_DIM:
        return
    p.latent, p.latent_p = latent_update(p.latent, p.latent_p, a.latent, engagement)
    p.n_latent += 1
    if outcome in (Outcome.QUICK_SWIPE, Outcome.DISLIKE):
        p.recent_negative = ema_centroid(p.recent_negative, a.latent, c.centroid_rate)
    elif outcome == Outcome.FULL:
        p.recent_positive = ema_centroid(p.recent_positive, a.latent, c.centroid_rate)


def _apply_watch(p: Portrait, e: WatchEvent, a: VideoAnalysis | None, c: PortraitConfig) -> None:
    ratio = e.watch_ratio
    quick = ratio < c.quick_swipe_ratio
    p.n_watches += 1
    p.n_quick_swipes += quick
    p.quick_swipe_rate = _step(p.quick_swipe_rate, float(quick), c.rate_ema)
    outcome = outcome_of(ratio, quick_swipe_ratio=c.quick_swipe_ratio,
                         full_watch_ratio=c.full_watch_ratio)
    _remember(p, e.video_id, outcome, min(max(ratio, 0.0), 1.0), c)
    if a is None:
        return
    _apply_latent(p, a, min(max(ratio, 0.0), 1.0), outcome, c)
    for t, w in enumerate(a.topics):
        if w > 0.01:
            p.interests[t] = _step(p.interests[t], ratio, c.interest_rate * w * _N_T / 4)
    rate = c.sensitivity_rate_quick if quick else c.sensitivity_rate_watch
    target = 1.0 if quick else 0.0
    for i, s in enumerate(a.elements):
        if s >= c.element_floor:
            p.element_sensitivity[i] = _step(p.element_sensitivity[i], target, rate * s)
    t_rate = c.tolerance_rate_quick if quick else c.tolerance_rate_watch
    for r, w in enumerate(a.reasons):
        p.reason_tolerance[r] = _step(p.reason_tolerance[r], 0.0 if quick else 1.0, t_rate * w)


def _apply_feedback(p: Portrait, e: FeedbackEvent, a: VideoAnalysis | None,
                    c: PortraitConfig) -> None:
    p.n_dislikes += 1
    p.dislike_rate = _step(p.dislike_rate, 1.0, c.rate_ema)
    if p.history and p.history[-1][0] == e.video_id and p.recent_weight > 0:
        # the watch of the same video, now disliked: the newest entry (weight 1) changes
        last = p.history[-1]
        old = outcome_values(int(last[1]), float(last[2]))
        new = outcome_values(Outcome.DISLIKE, float(last[2]))
        p.recent_rates = [r + (n - o) / p.recent_weight
                          for r, n, o in zip(p.recent_rates, new, old, strict=True)]
        p.history[-1] = (last[0], Outcome.DISLIKE, last[2])
    else:
        _remember(p, e.video_id, Outcome.DISLIKE, 0.0, c)
    if a is not None:
        _apply_latent(p, a, 0.0, Outcome.DISLIKE, c)
    reason = reason_index(e.reason_category) if e.reason_category else None
    if reason is not None:
        p.reason_counts[reason] += 1
        p.reason_tolerance[reason] = _step(p.reason_tolerance[reason], 0.0,
                                           c.tolerance_rate_explicit)
    elif a is not None:
        for r, w in enumerate(a.reasons):
            p.reason_tolerance[r] = _step(p.reason_tolerance[r], 0.0,
                                          c.tolerance_rate_explicit * w * 0.5)
    if a is None:
        return
    for i, s in enumerate(a.elements):
        if s < c.element_floor:
            continue
        # A stated reason singles out the elements that belong to it.
        weight = 1.0 if reason is None or _ELEMENT_REASON_IDX[i] == reason else 0.25
        p.element_sensitivity[i] = _step(p.element_sensitivity[i], 1.0,
                                         c.sensitivity_rate_explicit * s * weight)
    for t, w in enumerate(a.topics):
        if w > 0.01:
            p.interests[t] = _step(p.interests[t], 0.0, c.interest_rate * w * _N_T / 4)


def apply_event(p: Portrait, event: Event, analysis: VideoAnalysis | None = None,
                config: PortraitConfig | None = None) -> Portrait:
    """Apply one user event to ``p`` in place and return it.

    ``analysis`` is the Video Agent's view of the event's video, if known: without
    it only counters and rates move (the video analyzer may not have seen the
    video yet). Events that do not describe the user (videos, candidates) are
    ignored. Not idempotent by itself: the store guarantees at-most-once.
    """
    c = config or PortraitConfig()
    if isinstance(event, WatchEvent):
        _apply_watch(p, event, analysis, c)
    elif isinstance(event, FeedbackEvent):
        _apply_feedback(p, event, analysis, c)
    elif isinstance(event, ImpressionEvent):
        # Counted only: an impression says nothing about taste until it is watched.
        p.n_impressions += 1
    elif isinstance(event, UserProfileEvent):
        apply_profile(p, age=event.age, gender=event.gender or None,
                      occupation=event.occupation or None, interest_tags=event.interest_tags,
                      config=c)
    else:
        return p
    p.n_events += 1
    p.version += 1
    p.last_ts = max(p.last_ts, event.ts)
    return p


_TOPIC_INDEX = {t: i for i, t in enumerate(TOPICS)}


def apply_profile(p: Portrait, *, age: int | None = None, gender: str | None = None,
                  occupation: str | None = None, interest_tags: Sequence[str] = (),
                  config: PortraitConfig | None = None) -> Portrait:
    """Seed a portrait with what the feed knows up front: demographics as given,
    declared interest topics raised to ``declared_interest`` (never lowered)."""
    c = config or PortraitConfig()
    p.demographics.update({k: v for k, v in (("age", age), ("gender", gender),
                                             ("occupation", occupation)) if v is not None})
    tags = [t for t in interest_tags if t]
    if tags:
        p.demographics["interest_tags"] = list(tags)
    for t in tags:
        i = _TOPIC_INDEX.get(t)
        if i is not None:
            p.interests[i] = max(p.interests[i], c.declared_interest)
    return p


_ELEMENT_TAGS: dict[str, str] = {
    "insects_spiders": "sensitive to insects and spiders",
    "snakes_reptiles": "sensitive to snakes and reptiles",
    "blood_injury": "sensitive to blood and injury",
    "weapons": "uneasy with weapons",
    "accident_emergency": "upset by accidents",
    "fire_disaster": "upset by fires and disasters",
    "animal_cruelty_food_animals": "animal lover",
    "negative_event_cue": "avoids tragic news",
    "vulgarity_cue": "averse to vulgar content",
    "value_conflict_cue": "rejects clashing values",
    "slow_plot": "impatient with slow plots",
}
_REASON_TAGS: dict[Reason, str] = {
    Reason.NEGATIVE_EVENT: "low tolerance for negative events",
    Reason.VULGAR_OR_VALUE_CONFLICT: "averse to vulgar content",
    Reason.BORING: "impatient with slow plots",
    Reason.VISUAL_DISCOMFORT: "visually sensitive",
}


def portrait_tags(p: Portrait, *, limit: int = 6) -> list[tuple[str, float]]:
    """Psychological tags with weights, strongest first, as the paper's portraits.

    Derived, not stored, so that a tag always agrees with the numbers behind it.
    """
    tags: dict[str, float] = {}

    def add(tag: str, weight: float) -> None:
        tags[tag] = max(tags.get(tag, 0.0), round(weight, 3))

    for name, s in zip(ELEMENTS, p.element_sensitivity, strict=True):
        if s >= 0.4:
            add(_ELEMENT_TAGS[name], s)
    for reason, tol in zip(REASONS, p.reason_tolerance, strict=True):
        if tol <= 0.5:
            add(_REASON_TAGS[reason], 1.0 - tol)
    for topic, interest in zip(TOPICS, p.interests, strict=True):
        if interest >= 0.7:
            add(f"likes {topic}", interest)
    if p.n_watches >= 5 and p.quick_swipe_rate >= 0.4:
        add("quick swiper", p.quick_swipe_rate)
    ranked = sorted(tags.items(), key=lambda kv: -kv[1])
    return [(t, w) for t, w in ranked[:limit] if not math.isnan(w)]
