"""Train the explanation student's sentence bank and score every explainer by ROUGE.

Training (``train_explainer``): for every training-split dislike with a stated
reason, the slots the student would cite for its *stated* category (element,
object, topic; ``enf_core.explainer.slots``) turn the sentence into a pattern
(the object's name → ``{obj}``, the topic → ``{topic}``). Per slot key the
bank keeps the pattern whose filled-in sentences score the highest mean of
ROUGE-1/2/L F against the stated reasons of that key (the medoid); with too
few rows the key's reason-and-element pool decides. Policy-written sentences
(``sentences=``) replace the stated reasons as the source once a policy
writes them.

Evaluation (``explainer_rouge``): ROUGE-1/2/L F (``rouge-score``, stemmed)
of each explainer's sentence against the held-out stated reasons: the
template (``enf_core.reason.explain``), one fixed most representative phrase
per predicted category (the training medoid), the student; the reason cited is
always the scorer's most probable one.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.explainer import ExplainerStudent, Slots, fill, slot_key, slots
from enf_core.features import PORTRAIT_SLICES
from enf_core.portrait import Portrait
from enf_core.reason import explain
from enf_core.taxonomy import REASONS

__all__ = ["ExplainerConfig", "ExplainerRows", "evaluate_explainers", "explainer_rouge",
           "explainer_rows", "fixed_phrases", "portrait_from_vector", "publish_explainer",
           "rouge", "standard_explainers", "train_explainer", "write_explainer"]

log = logging.getLogger(__name__)
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


@dataclass(frozen=True)
class ExplainerConfig:
    """How the bank is chosen (documented defaults)."""

    min_rows: int = 4  # a key with fewer training sentences is scored on its element's pool
    max_candidates: int = 200  # patterns tried per key (most frequent first)
    use_stemmer: bool = True  # rouge-score's Porter stemmer, as the paper's ROUGE


@dataclass(frozen=True)
class ExplainerRows:
    """Explicit dislikes with a stated reason: what an explanation is scored against."""

    portraits: list[Portrait]
    analyses: list[VideoAnalysis]
    reason_probs: np.ndarray  # [n, 4] the scorer's
    p_negative: np.ndarray  # [n]
    category: list[str]  # the stated category
    text: list[str]  # the stated reason
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.text)


def portrait_from_vector(user_id: str, v: np.ndarray) -> Portrait:
    """The parts of a portrait an explanation reads, back from its scorer vector."""
    p = Portrait.new(user_id)
    p.interests = [float(x) for x in v[PORTRAIT_SLICES["interests"]]]
    p.element_sensitivity = [float(x) for x in v[PORTRAIT_SLICES["element_sensitivity"]]]
    p.reason_tolerance = [float(x) for x in v[PORTRAIT_SLICES["reason_tolerance"]]]
    qsr, dr, exp = (float(x) for x in v[PORTRAIT_SLICES["rates"]])
    p.quick_swipe_rate, p.dislike_rate = qsr, dr
    p.n_watches = round(math.expm1(exp * 10.0))
    return p


Predict = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def explainer_rows(f: Any, data_dir: str | Path, split: str, runtime: Any = None, *,
                   predict: Predict | None = None) -> ExplainerRows:
    """The split's dislikes with a stated reason, with the scorer's outputs on them.

    ``f`` is the dataset's ``DatasetFeatures``; the outputs come from
    ``predict(portraits, videos) -> (p_negative, reason_probs)`` or a
    ``ScorerRuntime`` (default: the shipped model). Reason texts come from the
    interactions table (same row order as ``f``).
    """
    import pyarrow.parquet as pq

    texts = pq.read_table(Path(data_dir) / "interactions.parquet",
                          columns=["reason_text", "reason_category"])
    text = texts.column("reason_text").to_pylist()
    cat = texts.column("reason_category").to_pylist()
    if len(text) != len(f.split):
        raise ValueError(f"{data_dir}: {len(text)} interactions, features have {len(f.split)}")
    rows = np.array([i for i in f.rows(split) if f.explicit[i] and (text[i] or "").strip()
                     and cat[i]], np.int64)
    if predict is None:
        if runtime is None:
            from models.runtime import ScorerRuntime

            runtime = ScorerRuntime(prefer_gpu=False)
        predict = runtime.score
    if len(rows):
        p_neg, probs = (np.asarray(x) for x in predict(f.portraits[rows], f.video_vectors(rows)))
    else:
        probs, p_neg = np.zeros((0, len(REASONS)), np.float32), np.zeros(0, np.float32)
    return ExplainerRows(
        portraits=[portrait_from_vector(str(f.user_ids[i]), f.portraits[i]) for i in rows],
        analyses=[f.analyses[str(f.video_ids[i])] for i in rows],
        reason_probs=probs, p_negative=p_neg, category=[str(cat[i]) for i in rows],
        text=[str(text[i]) for i in rows], rows=rows)


class _Rouge:
    def __init__(self, use_stemmer: bool) -> None:
        from rouge_score import rouge_scorer

        self._s = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=use_stemmer)

    def scores(self, prediction: str, reference: str) -> tuple[float, float, float]:
        s = self._s.score(reference, prediction)
        return (s["rouge1"].fmeasure, s["rouge2"].fmeasure, s["rougeL"].fmeasure)


def rouge(predictions: Sequence[str], references: Sequence[str], *,
          use_stemmer: bool = True) -> dict[str, float]:
    """Mean ROUGE-1/2/L F over pairs, and ``mean`` of the three (the staged reward's)."""
    r = _Rouge(use_stemmer)
    if not predictions:
        return {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0, "mean": 0.0, "n": 0}
    s = np.array([r.scores(p, t) for p, t in zip(predictions, references, strict=True)])
    m = s.mean(0)
    return {"rouge1": round(float(m[0]), 4), "rouge2": round(float(m[1]), 4),
            "rougeL": round(float(m[2]), 4), "mean": round(float(m.mean()), 4),
            "n": len(predictions)}


def _pattern(text: str, s: Slots) -> str:
    import re

    t = " ".join(text.lower().split())
    if s.obj:
        t = re.sub(rf"\b{re.escape(s.obj.lower())}\b", "{obj}", t)
    t = re.sub(rf"\b{re.escape(s.topic.lower())}\b", "{topic}", t)
    return t


def _names() -> tuple[str, ...]:
    """Object names, ImageNet labels and topics: a pattern may say them only as slots."""
    from enf_core.data.imagenet_elements import IMAGENET_LABELS, OBJECTS
    from enf_core.taxonomy import TOPICS

    names = {o.name.lower() for o in OBJECTS} | {v.lower().replace("_", " ")
                                                 for v in IMAGENET_LABELS.values()}
    return tuple(sorted(names | set(TOPICS), key=len, reverse=True))


_NAMES = _names()


def _cites_unseen(pattern: str) -> bool:
    import re

    text = pattern.replace("{obj}", " ").replace("{topic}", " ")
    return any(re.search(rf"\b{re.escape(n)}\b", text) for n in _NAMES)


def _bare(pattern: str) -> str:
    """The pattern without trailing punctuation and emoticons."""
    words = pattern.split()
    while words and not any(ch.isalnum() or ch in "{}" for ch in words[-1]):
        words.pop()
    return " ".join(words).rstrip(" .!?,:;")


def _canonical(pattern: str, sentences: set[str]) -> str:
    """Without the writer's filler ("ugh,", "ok so", "honestly"): a lead of one to
    three words is a filler where what follows is, on its own, another writer's
    whole sentence."""
    words = pattern.split()
    for k in (1, 2, 3):
        rest = " ".join(words[k:])
        if len(words) - k >= 2 and rest in sentences:
            return rest
    return pattern


def train_explainer(rows: ExplainerRows, config: ExplainerConfig | None = None, *,
                    sentences: Sequence[str] | None = None,
                    source: str = "stated reasons (train split)") -> ExplainerStudent:
    """Choose one pattern per slot key (see the module docstring)."""
    c = config or ExplainerConfig()
    t0 = time.perf_counter()
    targets = list(sentences) if sentences is not None else rows.text
    r = _Rouge(c.use_stemmer)
    grounds = [slots(p, a, probs, reason=cat) for p, a, probs, cat in zip(
        rows.portraits, rows.analyses, rows.reason_probs, rows.category, strict=True)]
    patterns = [_pattern(t, s) for t, s in zip(targets, grounds, strict=True)]
    bare = [_bare(p) for p in patterns]
    whole = set(bare)
    canonical = [_canonical(p, whole) for p in bare]
    by_key: dict[str, list[int]] = defaultdict(list)
    by_element: dict[str, list[int]] = defaultdict(list)
    by_reason: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(grounds):
        by_key[slot_key(s)].append(i)
        by_element[f"{s.reason}|{s.element}"].append(i)
        by_reason[s.reason].append(i)

    def best(candidates: list[int], scored_on: list[int], with_obj: bool) -> tuple[str, float]:
        sources: dict[str, set[int]] = defaultdict(set)
        for i in candidates:
            if (with_obj or "{obj}" not in patterns[i]) and not _cites_unseen(patterns[i]):
                sources[canonical[i]].add(i)
        ranked = sorted(sources, key=lambda p: -len(sources[p]))[:c.max_candidates]
        top, top_score = "", -1.0
        for pat in ranked:
            got = {j: float(np.mean(r.scores(fill(pat, grounds[j]), targets[j])))
                   for j in scored_on}
            # Leave one out: the sentence a pattern was cut from does not vote for it,
            # or every key of a few rows would pick one of its own sentences verbatim.
            own = [got[j] for j in sources[pat] if j in got]
            total, n = sum(got.values()), len(got)
            if own and n > 1:
                total, n = total - max(own), n - 1
            score = total / max(n, 1)
            if score > top_score:
                top, top_score = pat, score
        return top, top_score

    bank: dict[str, str] = {}
    fit: dict[str, dict[str, float]] = {}
    keys: dict[str, tuple[list[int], list[int], bool]] = {}
    for key, idx in by_key.items():
        reason, element, obj = key.split("|")
        pool = by_element[f"{reason}|{element}"]
        scored = idx if len(idx) >= c.min_rows else [i for i in pool if
                                                      (obj == "obj") == bool(grounds[i].obj)
                                                      ] or idx
        keys[key] = (pool, scored, obj == "obj")
    for reason, idx in by_reason.items():  # the reason's fallback: no element, no object
        keys.setdefault(f"{reason}||-", (idx, idx, False))
    for element_key, idx in by_element.items():  # an element seen without a nameable object
        keys.setdefault(f"{element_key}|-", (idx, idx, False))
    for key, (pool, scored, with_obj) in sorted(keys.items()):
        pat, score = best(pool, scored, with_obj)
        if pat:
            bank[key] = pat
            fit[key] = {"train_rouge_mean": round(score, 4), "rows": len(scored)}
    meta = {"source": source, "train_rows": len(rows), "keys": fit,
            "train_seconds": round(time.perf_counter() - t0, 2),
            "config": {"min_rows": c.min_rows, "max_candidates": c.max_candidates,
                       "use_stemmer": c.use_stemmer}}
    log.info("explainer bank: %d keys from %d sentences in %.1fs", len(bank), len(rows),
             time.perf_counter() - t0)
    return ExplainerStudent(bank, meta=meta)


def fixed_phrases(rows: ExplainerRows, *, use_stemmer: bool = True) -> dict[str, str]:
    """Per category, the stated training reason most like the others (mean ROUGE-1 F)."""
    r = _Rouge(use_stemmer)
    out: dict[str, str] = {}
    by_cat: dict[str, list[str]] = defaultdict(list)
    for cat, t in zip(rows.category, rows.text, strict=True):
        by_cat[cat].append(t)
    for cat, texts in by_cat.items():
        uniq = list(dict.fromkeys(texts))
        best, best_s = uniq[0], -1.0
        for cand in uniq:
            s = float(np.mean([r.scores(cand, t)[0] for t in texts]))
            if s > best_s:
                best, best_s = cand, s
        out[cat] = best
    return out


Explainer = Callable[[Portrait, VideoAnalysis, float, Sequence[float]], str]


def explainer_rouge(rows: ExplainerRows, explainers: Mapping[str, Explainer], *,
                    use_stemmer: bool = True) -> dict[str, dict[str, float]]:
    """ROUGE of each named explainer's sentences against ``rows``' stated reasons,
    with the mean time per sentence in microseconds (this machine, loaded)."""
    out: dict[str, dict[str, float]] = {}
    for name, fn in explainers.items():
        t0 = time.perf_counter()
        preds = [fn(p, a, float(pn), [float(x) for x in probs]) for p, a, pn, probs in zip(
            rows.portraits, rows.analyses, rows.p_negative, rows.reason_probs, strict=True)]
        us = (time.perf_counter() - t0) / max(len(preds), 1) * 1e6
        out[name] = {**rouge(preds, rows.text, use_stemmer=use_stemmer),
                     "us_per_sentence": round(us, 1)}
    return out


def standard_explainers(train: ExplainerRows, student: ExplainerStudent | None
                        ) -> dict[str, Explainer]:
    """template, fixed_phrase (from ``train``) and, when given, the student."""
    phrases = fixed_phrases(train)

    def template(p: Portrait, a: VideoAnalysis, pn: float, probs: Sequence[float]) -> str:
        return explain(p, a, pn, probs).text

    def fixed(p: Portrait, a: VideoAnalysis, pn: float, probs: Sequence[float]) -> str:
        reason = REASONS[int(np.argmax(probs))].value
        return phrases.get(reason, reason.replace("_", " "))

    out: dict[str, Explainer] = {"template": template, "fixed_phrase": fixed}
    if student is not None:
        out["student"] = lambda p, a, pn, probs: student.explain(p, a, pn, probs).text
    return out


def write_explainer(student: ExplainerStudent, model_dir: str | Path) -> str:
    """Write ``explainer-<hash>.json`` into ``model_dir``; returns the file name."""
    import hashlib
    import json

    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(student.to_dict(), indent=1, sort_keys=True) + "\n"
    name = f"explainer-{hashlib.sha256(body.encode()).hexdigest()[:12]}.json"
    tmp = model_dir / f".{name}.tmp"
    tmp.write_text(body, encoding="utf-8")
    tmp.replace(model_dir / name)
    return name


def publish_explainer(model_dir: str | Path, student: ExplainerStudent,
                      metrics: dict[str, Any] | None = None,
                      extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A new model version = the current one + this explanation student."""
    from models.export import KEEP_OLD_VERSIONS, VERSIONED_PREFIXES
    from models.manifest import publish_version, read_manifest

    current = read_manifest(model_dir)
    name = write_explainer(student, model_dir)
    students = {**current.get("students", {}), "explainer": {
        **{k: v for k, v in student.meta.items() if k != "keys"}, "keys": len(student.bank),
        **({"rouge_test": metrics} if metrics else {})}}
    return publish_version(model_dir, files={"explainer": name},
                           extra={"students": students, **(extra or {})},
                           keep=KEEP_OLD_VERSIONS, versioned_prefixes=VERSIONED_PREFIXES)


def evaluate_explainers(f: Any, data_dir: str | Path, runtime: Any, *,
                        student: ExplainerStudent | None = None, split: str = "test",
                        extra: Mapping[str, Explainer] | None = None) -> dict[str, Any]:
    """ROUGE of template, fixed_phrase and the model's student (``runtime.explainer``,
    or ``student``) on ``split``'s stated reasons; the fixed phrases come from train.
    ``extra`` adds named explainers (the policy's, for the ablation)."""
    train = explainer_rows(f, data_dir, "train", runtime)
    held = explainer_rows(f, data_dir, split, runtime)
    student = student if student is not None else getattr(runtime, "explainer", None)
    out: dict[str, Any] = explainer_rouge(held, {**standard_explainers(train, student),
                                                 **(extra or {})})
    out["protocol"] = {"split": split, "rows": len(held),
                       "rouge": "rouge-score F, Porter stemmer; reason = the scorer's argmax",
                       "references": "stated reasons of explicit dislikes"}
    return out
