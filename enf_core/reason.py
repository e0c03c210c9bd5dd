"""The Reason Agent's explanation: which trait met which evidence, in one sentence.

The scorer (a student network) says *whether* a user will react badly and *why*
(a distribution over the four reasons). This module turns that verdict into
the paper's grounded explanation: it cites the portrait trait behind the
reason (a tag with its weight) and the Video Agent's evidence for the element
that triggered it (frames and ImageNet classes, or title words), e.g.
"You usually swipe away videos with insects or spiders; frames 4–9 show
tarantula." It also reports the paper's four judging dimensions.

Pure and model-free on purpose: the stream scorer calls it for every suppressed
candidate, so it must cost microseconds, and a template over the numbers that
made the decision can never cite something the numbers did not see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from enf_core.analysis import ElementEvidence, VideoAnalysis
from enf_core.portrait import _ELEMENT_TAGS, _REASON_TAGS, Portrait
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS, Reason

__all__ = ["ELEMENT_PHRASES", "Explanation", "ReasonConfig", "dimensions", "explain",
           "format_frames"]

ELEMENT_PHRASES: dict[str, str] = {
    "insects_spiders": "insects or spiders",
    "snakes_reptiles": "snakes or reptiles",
    "blood_injury": "blood or injuries",
    "weapons": "weapons",
    "accident_emergency": "accidents and emergency scenes",
    "fire_disaster": "fires and disasters",
    "animal_cruelty_food_animals": "animals being hurt or cooked",
    "negative_event_cue": "tragic or negative news",
    "vulgarity_cue": "vulgar content",
    "value_conflict_cue": "content that clashes with your values",
    "slow_plot": "slow plots",
}
_REASON_PHRASES: dict[Reason, str] = {
    Reason.NEGATIVE_EVENT: "negative or tragic events",
    Reason.VULGAR_OR_VALUE_CONFLICT: "vulgar content or clashing values",
    Reason.BORING: "slow, dull videos",
    Reason.VISUAL_DISCOMFORT: "visually uncomfortable scenes",
}
_ELEMENT_REASON = tuple(ELEMENT_REASON[e] for e in ELEMENTS)
_VISUAL = tuple(i for i, r in enumerate(_ELEMENT_REASON) if r is Reason.VISUAL_DISCOMFORT)
_VALUES = tuple(i for i, r in enumerate(_ELEMENT_REASON)
                if r in (Reason.NEGATIVE_EVENT, Reason.VULGAR_OR_VALUE_CONFLICT))
_R_VISUAL = REASONS.index(Reason.VISUAL_DISCOMFORT)
_R_VALUES = (REASONS.index(Reason.NEGATIVE_EVENT), REASONS.index(Reason.VULGAR_OR_VALUE_CONFLICT))


@dataclass(frozen=True)
class ReasonConfig:
    """Thresholds of the explanation templates (documented defaults)."""

    element_floor: float = 0.2  # video element score below this is not cited
    trait_floor: float = 0.3  # sensitivity at or above this is cited as a habit of the user
    intolerance_floor: float = 0.3  # 1 − tolerance at or above this is cited
    max_traits: int = 3
    max_classes: int = 2
    max_title_words: int = 3


@dataclass(frozen=True, slots=True)
class Explanation:
    """The Reason Agent's answer for one (user, video): reason, sentence, grounds."""

    reason: str
    text: str
    p_negative: float
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "text": self.text,
                "p_negative": round(self.p_negative, 4), "evidence": self.evidence}


def format_frames(frames: Sequence[int]) -> str:
    """'frame 3', 'frames 4–9', 'frames 1, 4–6 and 9' (contiguous runs joined)."""
    if not frames:
        return ""
    fs = sorted(set(frames))
    runs: list[str] = []
    start = prev = fs[0]
    for f in [*fs[1:], None]:
        if f is not None and f == prev + 1:
            prev = f
            continue
        runs.append(str(start) if start == prev else f"{start}–{prev}")
        if f is not None:
            start = prev = f
    if len(fs) == 1:
        return f"frame {runs[0]}"
    body = runs[0] if len(runs) == 1 else ", ".join(runs[:-1]) + " and " + runs[-1]
    return f"frames {body}"


def dimensions(portrait: Portrait, analysis: VideoAnalysis) -> dict[str, float]:
    """The paper's four judging dimensions, each in [0, 1], 1 = favourable.

    interest_match: the user's interest in the video's topic mix (interests · topics);
    plot_appeal: the Video Agent's plot appeal, discounted for a quick swiper;
    values: 1 − the worst clash of a negative/vulgar element or reason with the user;
    visual_tolerance: 1 − the worst visually uncomfortable element the user is sensitive to.
    """
    sens, el = portrait.element_sensitivity, analysis.elements
    tol, rs = portrait.reason_tolerance, analysis.reasons
    interest = sum(i * t for i, t in zip(portrait.interests, analysis.topics, strict=True))
    visual = max(max(sens[i] * el[i] for i in _VISUAL), (1 - tol[_R_VISUAL]) * rs[_R_VISUAL])
    values = max(max(sens[i] * el[i] for i in _VALUES),
                 max((1 - tol[r]) * rs[r] for r in _R_VALUES))
    plot = analysis.plot_appeal * (1.0 - 0.5 * portrait.quick_swipe_rate)
    return {"interest_match": round(min(max(interest, 0.0), 1.0), 4),
            "plot_appeal": round(plot, 4), "values": round(1.0 - values, 4),
            "visual_tolerance": round(1.0 - visual, 4)}


def _grounds(ev: ElementEvidence, c: ReasonConfig) -> str:
    parts = []
    if ev.frames:
        what = " and ".join(x.replace("_", " ") for x in ev.classes[:c.max_classes])
        parts.append(f"{format_frames(ev.frames)} show {what}" if what
                     else f"{format_frames(ev.frames)} show it")
    if ev.title_words:
        words = ", ".join(f"“{w}”" for w in ev.title_words[:c.max_title_words])
        parts.append(f"the title says {words}")
    return " and ".join(parts)


def _top_topic(portrait: Portrait, analysis: VideoAnalysis) -> tuple[str, float]:
    t = max(range(len(TOPICS)), key=lambda i: analysis.topics[i])
    return TOPICS[t], portrait.interests[t]


def explain(portrait: Portrait, analysis: VideoAnalysis, p_negative: float,
            reason_probs: Sequence[float], config: ReasonConfig | None = None) -> Explanation:
    """Explain the scorer's verdict on (portrait, analysis) in one grounded sentence.

    The reason is the most probable one; the cited element is the one of that
    reason with the largest sensitivity × score; the cited trait is the user's
    sensitivity to it, else their tolerance for the reason, else their habits.
    """
    c = config or ReasonConfig()
    r_idx = max(range(len(REASONS)), key=lambda i: reason_probs[i])
    reason = REASONS[r_idx]
    sens, el = portrait.element_sensitivity, analysis.elements
    by_name = {e.name: e for e in analysis.evidence}

    best, best_x = -1, 0.0
    for i, r in enumerate(_ELEMENT_REASON):
        if r is reason and el[i] >= c.element_floor and sens[i] * el[i] > best_x:
            best, best_x = i, sens[i] * el[i]

    traits: list[dict[str, Any]] = []
    elements: list[dict[str, Any]] = []
    clauses: list[str] = []
    intolerance = 1.0 - portrait.reason_tolerance[r_idx]
    if best >= 0:
        name = ELEMENTS[best]
        ev = by_name.get(name, ElementEvidence(name, el[best]))
        elements.append({**ev.to_dict(), "score": round(el[best], 4)})
        grounds = _grounds(ev, c)
        if sens[best] >= c.trait_floor:
            traits.append({"tag": _ELEMENT_TAGS[name], "weight": round(sens[best], 3)})
            clauses.append(f"You usually swipe away videos with {ELEMENT_PHRASES[name]}")
        elif intolerance >= c.intolerance_floor:
            traits.append({"tag": _REASON_TAGS[reason], "weight": round(intolerance, 3)})
            clauses.append(f"You have little patience for {_REASON_PHRASES[reason]}")
        else:
            clauses.append(f"This video carries {ELEMENT_PHRASES[name]}")
        clauses.append(grounds or f"the video agent scores it {el[best]:.2f}")
    elif reason is Reason.BORING:
        topic, interest = _top_topic(portrait, analysis)
        if portrait.quick_swipe_rate >= 0.25:
            traits.append({"tag": "impatient with slow plots",
                           "weight": round(portrait.quick_swipe_rate, 3)})
            clauses.append(f"You often skip slow videos (quick-swipe rate "
                           f"{portrait.quick_swipe_rate:.0%})")
        elif intolerance >= c.intolerance_floor:
            traits.append({"tag": _REASON_TAGS[reason], "weight": round(intolerance, 3)})
            clauses.append(f"You have little patience for {_REASON_PHRASES[reason]}")
        if interest < 0.4:
            traits.append({"tag": f"rarely finishes {topic} videos",
                           "weight": round(1.0 - interest, 3)})
            clauses.append(f"this {topic} video matches your interests poorly "
                           f"(interest {interest:.2f})")
        if analysis.plot_appeal < 0.5:
            clauses.append(f"its plot appeal is low ({analysis.plot_appeal:.2f})")
        elif not clauses:
            clauses.append(f"this video is unlikely to hold your attention (plot appeal "
                           f"{analysis.plot_appeal:.2f}, interest {interest:.2f})")
    else:
        if intolerance >= c.intolerance_floor:
            traits.append({"tag": _REASON_TAGS[reason], "weight": round(intolerance, 3)})
            clauses.append(f"You have little patience for {_REASON_PHRASES[reason]}")
        clauses.append(f"the video agent links this video to {_REASON_PHRASES[reason]} "
                       f"({analysis.reasons[r_idx]:.0%})")

    # Other traits of the user that bear on this reason, strongest first.
    seen = {t["tag"] for t in traits}
    for tag, weight in portrait.tags(limit=8):
        if len(traits) >= c.max_traits:
            break
        if tag not in seen and _tag_reason(tag) is reason:
            traits.append({"tag": tag, "weight": weight})
            seen.add(tag)

    text = clauses[0] + ("; " + ", and ".join(clauses[1:]) if len(clauses) > 1 else "") + "."
    text = text[0].upper() + text[1:]
    evidence = {"traits": traits, "elements": elements,
                "dimensions": dimensions(portrait, analysis),
                "reason_probs": {r.value: round(float(p), 4)
                                 for r, p in zip(REASONS, reason_probs, strict=True)}}
    return Explanation(reason.value, text, float(p_negative), evidence)


_TAG_REASON: dict[str, Reason] = {
    **{tag: ELEMENT_REASON[name] for name, tag in _ELEMENT_TAGS.items()},
    **{tag: r for r, tag in _REASON_TAGS.items()},
    "quick swiper": Reason.BORING,
}


def _tag_reason(tag: str) -> Reason | None:
    return _TAG_REASON.get(tag)
