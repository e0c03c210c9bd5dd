"""Rows for the policy: prompt, SFT completion and truth, from an ENF-schema dataset.

Three kinds of row, as the paper's cold start: explicit dislikes with a written
reason (explanation = the user's words), quick swipes with their cause (the
simulator's ``implicit_cause``, TVNF's drafted implicit labels; explanation = the
shipped explanation student's sentence for that cause — written like a user's
reason and filled with the video's evidence — or, with
``swipe_explanations="template"``, the template Reason Agent's sentence, whose
numbers no user writes: a policy cold-started on it learns to answer stated
dislikes with "This video carries slow plots; frames 0–15 …", ROUGE ≈ 0) and
positives (watched, not disliked; no explanation). The
chain of thought is the evidence the Video Agent cites
(``enf_core.reason_prompt.build_think``). Training rows come from the train
split, held-out rows from test; both are drawn with a fixed seed, in a fixed mix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from enf_core.features import PORTRAIT_SLICES
from enf_core.portrait import Portrait
from enf_core.reason import explain
from enf_core.reason_prompt import PromptConfig, build_prompt, build_think, render_answer
from enf_core.taxonomy import REASONS

__all__ = ["KINDS", "PolicyRow", "RowMix", "load_rows", "portrait_from_vector",
           "rows_from_features"]

KINDS = ("dislike", "swipe", "positive")


@dataclass(frozen=True)
class RowMix:
    """How many rows of each kind to draw (documented defaults)."""

    dislikes: int = 400
    swipes: int = 400
    positives: int = 400
    seed: int = 0


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One prompt with its SFT target and the truth the reward checks."""

    prompt: str
    completion: str
    negative: bool
    reason: str | None
    reason_text: str
    kind: str
    user_id: str
    video_id: str
    row: int  # index into the dataset's interactions

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": self.completion, "negative": self.negative,
                "reason": self.reason, "reason_text": self.reason_text, "kind": self.kind,
                "user_id": self.user_id, "video_id": self.video_id, "row": self.row}


def portrait_from_vector(vec: np.ndarray, user_id: str,
                         demographics: dict[str, Any] | None = None) -> Portrait:
    """A Portrait with the numbers of a scorer input vector (for its words and tags)."""
    p = Portrait(user_id)
    p.interests = [float(x) for x in vec[PORTRAIT_SLICES["interests"]]]
    p.element_sensitivity = [float(x) for x in vec[PORTRAIT_SLICES["element_sensitivity"]]]
    p.reason_tolerance = [float(x) for x in vec[PORTRAIT_SLICES["reason_tolerance"]]]
    qsr, dr, exp_ = (float(x) for x in vec[PORTRAIT_SLICES["rates"]])
    p.quick_swipe_rate, p.dislike_rate = qsr, dr
    p.n_watches = round(math.expm1(exp_ * 10.0))
    p.demographics = dict(demographics or {})
    return p


def _pick(idx: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(idx, size=min(n, len(idx)), replace=False)) if len(idx) else idx


def rows_from_features(f: Any, users: dict[str, dict[str, Any]], reason_text: np.ndarray,
                       split: str, mix: RowMix, prompt: PromptConfig | None = None,
                       swipe_explainer: Any = None) -> list[PolicyRow]:
    """Draw ``mix`` rows of ``split`` from DatasetFeatures ``f`` and render them.

    ``swipe_explainer`` (``enf_core.explainer.ExplainerStudent`` or anything with its
    ``explain``) writes the swipes' explanations; None: the template."""
    rng = np.random.default_rng(mix.seed)
    in_split = f.split == split
    dislike = np.nonzero(in_split & f.explicit & (f.reason >= 0) & (reason_text != ""))[0]
    swipe = np.nonzero(in_split & f.implicit & ~f.explicit & (f.reason_source == 2))[0]
    positive = np.nonzero(in_split & f.implicit_known & ~f.implicit & ~f.explicit)[0]
    out: list[PolicyRow] = []
    for kind, idx, n in (("dislike", dislike, mix.dislikes), ("swipe", swipe, mix.swipes),
                         ("positive", positive, mix.positives)):
        for i in _pick(idx, n, rng):
            uid, vid = str(f.user_ids[i]), str(f.video_ids[i])
            u = users.get(uid, {})
            demo = {k: u.get(k) for k in ("age", "gender", "occupation") if u.get(k) is not None}
            p = portrait_from_vector(f.portraits[i], uid, demo)
            a = f.analyses[vid]
            neg = kind != "positive"
            reason = REASONS[int(f.reason[i])].value if neg else None
            if kind == "dislike":
                text = str(reason_text[i])
                expl = text
            elif kind == "swipe":
                text = ""
                probs = [1.0 if r.value == reason else 0.0 for r in REASONS]
                expl = (swipe_explainer or _Template).explain(p, a, 1.0, probs).text
            else:
                text, expl = "", ""
            think = build_think(p, a, reason, prompt)
            out.append(PolicyRow(build_prompt(p, a, prompt),
                                 render_answer(neg, reason, expl, think),
                                 neg, reason, text, kind, uid, vid, int(i)))
    order = rng.permutation(len(out))
    return [out[k] for k in order]


class _Template:
    explain = staticmethod(explain)


SWIPE_EXPLANATIONS = ("student", "template")


def _student() -> Any:
    """The shipped model's explanation student (models/default, files.explainer)."""
    from models.runtime import DEFAULT_MODEL_DIR, ScorerRuntime

    student = ScorerRuntime(DEFAULT_MODEL_DIR, prefer_gpu=False).explainer
    if student is None:
        raise ValueError(f"{DEFAULT_MODEL_DIR} has no explanation student (files.explainer)")
    return student


def load_rows(data_dir: str | Path, split: str, mix: RowMix,
              prompt: PromptConfig | None = None,
              swipe_explanations: str = "student") -> list[PolicyRow]:
    """Rows of ``split`` of the dataset in ``data_dir`` (features from the shared cache);
    ``swipe_explanations``: ``student`` | ``template`` (module docstring)."""
    from enf_core.data.schema import read_dataset
    from models.dataset_features import dataset_features

    if swipe_explanations not in SWIPE_EXPLANATIONS:
        raise ValueError(f"swipe_explanations must be one of {SWIPE_EXPLANATIONS}, "
                         f"not {swipe_explanations!r}")

    f = dataset_features(data_dir)
    ds = read_dataset(Path(data_dir), validate=False)
    users = {u["user_id"]: u for u in ds.users.to_pylist()}
    texts = np.asarray(ds.interactions.column("reason_text").to_pylist(), dtype=object)
    return rows_from_features(f, users, texts, split, mix, prompt,
                              _student() if swipe_explanations == "student" else None)
