"""The explanation student: a bank of sentences, each filled with the candidate's evidence.

``enf_core.reason.explain`` writes one fixed template per case; users write
"the tarantula close-up made my skin crawl". The student keeps the template's
grounds (which reason, which element, which trait: the same pure rules, so it
cites only what the numbers saw) and changes *how it is said*: per slot key —
(reason, cited element, whether an object is named) — it holds one sentence
pattern learned offline (``models.distill.explainer``: the pattern whose
filled-in sentences score the highest ROUGE against the stated reasons of the
training split; from policy-written sentences once a policy exists), with
``{obj}`` (the object the Video Agent saw: an ImageNet class or a title word,
mapped to its name) and ``{topic}`` (the video's top topic) as slots.

Pure and model-free: a dict lookup, one ``str.format`` and the template's
grounds, microseconds per record. The bank is a JSON file in the model
directory (``files.explainer``), loaded by the worker without torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enf_core.analysis import VideoAnalysis
from enf_core.data.imagenet_elements import IMAGENET_LABELS, OBJECTS
from enf_core.portrait import Portrait
from enf_core.reason import Explanation, ReasonConfig, explain
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS, Reason

__all__ = ["EXPLAINER_FORMAT", "ExplainerStudent", "Slots", "fill", "slot_key", "slots"]

EXPLAINER_FORMAT = "enf-explainer"
EXPLAINER_VERSION = 1
_ELEMENT_REASON = tuple(ELEMENT_REASON[e] for e in ELEMENTS)


def _norm(s: str) -> str:
    return " ".join(s.replace("_", " ").lower().split())


# An ImageNet class label or an object's own name -> the object's name ("barn spider" ->
# "spider"): what a person calls the thing the frames show.
_OBJECT_OF_LABEL: dict[str, str] = {}
for _o in OBJECTS:
    for _c in _o.classes:
        _OBJECT_OF_LABEL.setdefault(_norm(IMAGENET_LABELS[_c]), _o.name)
for _o in OBJECTS:
    _OBJECT_OF_LABEL[_norm(_o.name)] = _o.name
_OBJECT_WORDS: dict[str, str] = {}
for _o in OBJECTS:
    for _w in _norm(_o.name).split():
        if len(_w) > 3:
            _OBJECT_WORDS.setdefault(_w, _o.name)


@dataclass(frozen=True, slots=True)
class Slots:
    """What one explanation may cite, all read off the numbers behind the decision."""

    reason: str
    element: str  # "" when no element of the reason is evident
    obj: str  # "" when the evidence names no object
    topic: str


def _object(element: str, analysis: VideoAnalysis) -> str:
    ev = next((e for e in analysis.evidence if e.name == element), None)
    if ev is None:
        return ""
    for w in ev.title_words:  # the title names it: the user read that word
        n = _norm(w)
        if n in _OBJECT_OF_LABEL:
            return _OBJECT_OF_LABEL[n]
        for part in n.split():
            if part in _OBJECT_WORDS:
                return _OBJECT_WORDS[part]
    for c in ev.classes:  # else the frames' strongest class
        n = _norm(c)
        if n in _OBJECT_OF_LABEL:
            return _OBJECT_OF_LABEL[n]
    return ""


def slots(portrait: Portrait, analysis: VideoAnalysis, reason_probs: Sequence[float],
          config: ReasonConfig | None = None, *, reason: str | None = None) -> Slots:
    """The grounds of an explanation: the most probable reason (or ``reason``), the
    element of that reason the template would cite (sensitivity × score, else the
    strongest evident one), the object named by its evidence, the top topic."""
    c = config or ReasonConfig()
    r = Reason(reason) if reason else REASONS[max(range(len(REASONS)),
                                                  key=lambda i: reason_probs[i])]
    sens, el = portrait.element_sensitivity, analysis.elements
    best, best_x = -1, -1.0
    for i, er in enumerate(_ELEMENT_REASON):
        if er is r and el[i] >= c.element_floor:
            x = sens[i] * el[i] + 1e-6 * el[i]  # ties (sensitivity 0) go to the stronger element
            if x > best_x:
                best, best_x = i, x
    element = ELEMENTS[best] if best >= 0 else ""
    topic = TOPICS[max(range(len(TOPICS)), key=lambda i: analysis.topics[i])]
    return Slots(r.value, element, _object(element, analysis) if element else "", topic)


def slot_key(s: Slots) -> str:
    """The bank's key: reason | element | whether an object can be named."""
    return f"{s.reason}|{s.element}|{'obj' if s.obj else '-'}"


def fill(pattern: str, s: Slots) -> str:
    """A pattern with ``{obj}`` / ``{topic}`` filled (a pattern needing a missing slot
    must not be chosen; ``ExplainerStudent`` never does)."""
    return pattern.replace("{obj}", s.obj).replace("{topic}", s.topic)


class ExplainerStudent:
    """Slot key -> sentence pattern, with the fallbacks a missing key needs."""

    name = "student"

    def __init__(self, bank: Mapping[str, str], *, meta: Mapping[str, Any] | None = None,
                 config: ReasonConfig | None = None) -> None:
        self.bank = dict(bank)
        self.meta = dict(meta or {})
        self.config = config or ReasonConfig()

    # ------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        return {"format": EXPLAINER_FORMAT, "version": EXPLAINER_VERSION, "bank": self.bank,
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExplainerStudent:
        if d.get("format") != EXPLAINER_FORMAT or d.get("version") != EXPLAINER_VERSION:
            raise ValueError(f"not an {EXPLAINER_FORMAT} v{EXPLAINER_VERSION} file "
                             f"(format {d.get('format')!r}, version {d.get('version')!r})")
        bank = d.get("bank")
        if not isinstance(bank, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                 for k, v in bank.items()):
            raise ValueError("explainer bank must map slot keys to sentence patterns")
        return cls(bank, meta=d.get("meta") or {})

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1, sort_keys=True) + "\n",
                              encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ExplainerStudent:
        try:
            return cls.from_dict(json.loads(Path(path).read_bytes()))
        except (OSError, ValueError) as exc:
            raise ValueError(f"explainer {path}: {exc}") from None

    # ------------------------------------------------------------ inference

    def pattern(self, s: Slots) -> str:
        """The bank's pattern for ``s``: exact key, else the same reason and element
        without an object, else the reason's own, else the reason's name."""
        for key in (slot_key(s), f"{s.reason}|{s.element}|-", f"{s.reason}||-"):
            p = self.bank.get(key)
            if p is not None and ("{obj}" not in p or s.obj):
                return p
        return s.reason.replace("_", " ")

    def text(self, s: Slots) -> str:
        t = fill(self.pattern(s), s)
        return t[:1].upper() + t[1:] + ("" if t.endswith((".", "!", "?")) else ".")

    def explain(self, portrait: Portrait, analysis: VideoAnalysis, p_negative: float,
                reason_probs: Sequence[float]) -> Explanation:
        """The template's grounds (traits, elements, dimensions) with the student's sentence."""
        base = explain(portrait, analysis, p_negative, reason_probs, self.config)
        s = slots(portrait, analysis, reason_probs, self.config)
        evidence = {**base.evidence, "cited": {"element": s.element, "object": s.obj,
                                               "topic": s.topic, "key": slot_key(s)}}
        return Explanation(base.reason, self.text(s), base.p_negative, evidence)
