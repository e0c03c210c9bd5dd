"""The causal-LM Reason Agent's words: the prompt it reads and the answer it writes.

The prompt is the Profile Agent's portrait in words (demographics, psychological
tags with weights, rates, tolerances), the Video Agent's analysis (topics, plot
appeal, detected elements with their frames / ImageNet classes / title words and
the user's sensitivity to each) and the candidate (title, length). Numbers are
rounded to one decimal: a small policy learns comparisons between few distinct
tokens far faster than between thousands.

The answer grammar (the paper's ``<think>…</think><answer>…</answer>``)::

    <think>free text: the evidence</think><answer>{"negative": true|false,
    "reason": "negative_event"|"vulgar_or_value_conflict"|"boring"|"visual_discomfort"|null,
    "explanation": "one sentence"}</answer>

The answer is one JSON object with exactly those three keys; ``reason`` must be
null when ``negative`` is false and one of the four when it is true. Anything
else is unparseable (reward 0). Pure: no model, no I/O, used by the reward, the
trainer, the GPU script and the distillation of the policy into students.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from enf_core.analysis import VideoAnalysis
from enf_core.portrait import Portrait
from enf_core.reason import format_frames
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS

__all__ = ["ANSWER_OPEN", "JUDGEMENT_PREFIX", "REASON_PREFIX", "THINK_OPEN", "Answer",
           "PromptConfig", "build_prompt", "build_think", "parse_answer", "render_answer"]

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
JUDGEMENT_PREFIX = '{"negative": '  # the judgement token follows this in every answer
REASON_PREFIX = ', "reason": '
_REASON_VALUES = frozenset(r.value for r in REASONS)
_ANSWER_RE = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)
_SHORT_REASON = {"negative_event": "negative events", "vulgar_or_value_conflict": "vulgarity",
                 "boring": "boredom", "visual_discomfort": "visual discomfort"}


@dataclass(frozen=True)
class PromptConfig:
    """What goes into a prompt (documented defaults)."""

    max_tags: int = 4  # portrait tags, strongest first
    max_topics: int = 2  # the video's strongest topics
    element_floor: float = 0.3  # elements scored below this are not listed
    max_elements: int = 3
    max_classes: int = 2  # ImageNet classes cited per element
    max_title_words: int = 2
    title_chars: int = 80  # the candidate's title is cut here
    instruction: bool = True  # the one-line task statement (constant; pretrained LMs need it)


@dataclass(frozen=True, slots=True)
class Answer:
    """A parsed answer: the judgement, the reason category (None if not negative), the text."""

    negative: bool
    reason: str | None
    explanation: str
    think: str = ""


def _r(x: float) -> str:
    return f"{x:.1f}"


def build_prompt(portrait: Portrait, analysis: VideoAnalysis,
                 config: PromptConfig | None = None) -> str:
    """Portrait in words + the Video Agent's analysis + the candidate -> the prompt text."""
    c = config or PromptConfig()
    d = portrait.demographics
    who = " ".join(str(x) for x in (d.get("age"), d.get("gender"), d.get("occupation"))
                   if x not in (None, ""))
    tags = ", ".join(f"{t} {_r(w)}" for t, w in portrait.tags(limit=c.max_tags)) or "none"
    tol = ", ".join(f"{_SHORT_REASON[r.value]} {_r(t)}"
                    for r, t in zip(REASONS, portrait.reason_tolerance, strict=True))
    topics = sorted(range(len(TOPICS)), key=lambda i: -analysis.topics[i])[:c.max_topics]
    top = ", ".join(f"{TOPICS[i]} {_r(analysis.topics[i])} (interest "
                    f"{_r(portrait.interests[i])})" for i in topics)
    by_name = {e.name: e for e in analysis.evidence}
    found = sorted((i for i, s in enumerate(analysis.elements) if s >= c.element_floor),
                   key=lambda i: -analysis.elements[i])[:c.max_elements]
    els = []
    for i in found:
        name = ELEMENTS[i]
        ev = by_name.get(name)
        grounds = []
        if ev is not None and ev.frames:
            cls = " and ".join(x.replace("_", " ") for x in ev.classes[:c.max_classes])
            grounds.append(f"{format_frames(ev.frames)}{': ' + cls if cls else ''}")
        if ev is not None and ev.title_words:
            grounds.append("title: " + ", ".join(ev.title_words[:c.max_title_words]))
        g = f" [{'; '.join(grounds)}]" if grounds else ""
        els.append(f"{name} {_r(analysis.elements[i])}{g} (user sensitivity "
                   f"{_r(portrait.element_sensitivity[i])})")
    title = analysis.title[:c.title_chars]
    lines = [
        f"User: {who or 'unknown'}; tags: {tags}; quick-swipe rate "
        f"{_r(portrait.quick_swipe_rate)}; dislike rate {_r(portrait.dislike_rate)}; "
        f"tolerance: {tol}.",
        f"Video: \"{title}\", {round(analysis.duration_ms / 1000)} s; topics: {top}; "
        f"plot appeal {_r(analysis.plot_appeal)}; elements: {'; '.join(els) or 'none'}.",
    ]
    if c.instruction:
        lines.insert(0, "Will this user swipe away or dislike the video, and why?")
    return "\n".join(lines) + "\n"


def build_think(portrait: Portrait, analysis: VideoAnalysis, reason: str | None,
                config: PromptConfig | None = None) -> str:
    """The evidence the Video Agent cites for ``reason`` (None: why the video fits).

    The SFT cold start's chain of thought: the element of that reason with the
    largest sensitivity × score and where it was seen, or the plot and interest
    numbers for boredom, or the best-matching topic for a positive.
    """
    c = config or PromptConfig()
    t = max(range(len(TOPICS)), key=lambda i: analysis.topics[i])
    topic = f"{TOPICS[t]} interest {_r(portrait.interests[t])}"
    if reason is None:
        worst = max(range(len(ELEMENTS)),
                    key=lambda i: portrait.element_sensitivity[i] * analysis.elements[i])
        risk = portrait.element_sensitivity[worst] * analysis.elements[worst]
        return (f"{topic}; plot appeal {_r(analysis.plot_appeal)}; "
                f"strongest risk {ELEMENTS[worst]} {_r(risk)}")
    cands = [i for i, e in enumerate(ELEMENTS) if ELEMENT_REASON[e].value == reason
             and analysis.elements[i] >= 0.1]
    if cands:
        i = max(cands, key=lambda k: portrait.element_sensitivity[k] * analysis.elements[k])
        ev = {e.name: e for e in analysis.evidence}.get(ELEMENTS[i])
        where = ""
        if ev is not None and ev.frames:
            where = f" in {format_frames(ev.frames)}"
            if ev.classes:
                where += " (" + " and ".join(x.replace("_", " ")
                                             for x in ev.classes[:c.max_classes]) + ")"
        elif ev is not None and ev.title_words:
            where = " in the title (" + ", ".join(ev.title_words[:c.max_title_words]) + ")"
        return (f"{ELEMENTS[i]} {_r(analysis.elements[i])}{where}; user sensitivity "
                f"{_r(portrait.element_sensitivity[i])}; {topic}")
    r = [x.value for x in REASONS].index(reason)
    return (f"{_SHORT_REASON[reason]} prior {_r(analysis.reasons[r])}; tolerance "
            f"{_r(portrait.reason_tolerance[r])}; plot appeal {_r(analysis.plot_appeal)}; "
            f"quick-swipe rate {_r(portrait.quick_swipe_rate)}; {topic}")


def render_answer(negative: bool, reason: str | None, explanation: str, think: str = "") -> str:
    """The completion text of an answer in the grammar (the SFT target)."""
    if negative and reason not in _REASON_VALUES:
        raise ValueError(f"a negative answer needs one of {sorted(_REASON_VALUES)}, got {reason!r}")
    body = json.dumps({"negative": bool(negative), "reason": reason if negative else None,
                       "explanation": explanation}, ensure_ascii=False)
    return f"{THINK_OPEN}{think}{THINK_CLOSE}{ANSWER_OPEN}{body}{ANSWER_CLOSE}"


def parse_answer(text: str) -> Answer | None:
    """The answer in ``text`` per the grammar above, or None when it does not parse."""
    m = _ANSWER_RE.match(text)
    if m is None:
        return None
    try:
        obj: Any = json.loads(m.group(2))
    except ValueError:
        return None
    if not isinstance(obj, dict) or set(obj) != {"negative", "reason", "explanation"}:
        return None
    neg, reason, expl = obj["negative"], obj["reason"], obj["explanation"]
    if not isinstance(neg, bool) or not isinstance(expl, str):
        return None
    if neg and reason not in _REASON_VALUES:
        return None
    if not neg and reason is not None:
        return None
    return Answer(neg, reason, expl, m.group(1).strip())
