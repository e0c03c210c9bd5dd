"""``enf distill``: a teacher's soft labels into the scorer student and its explainer.

The teacher (the S-GRPO policy, teacher-forced: P("true") after the judgement
prefix, the four reasons' probabilities after the reason prefix; or any model
with the ``Teacher`` shape) labels training rows; the student learns

* ``p_negative`` towards ``soft_weight · p_teacher + (1 − soft_weight) · y``
  (the hard label: quick swipe or dislike),
* the reason towards ``soft_weight · q_teacher + (1 − soft_weight) · onehot``
  where the row has a reason label, ``q_teacher`` alone where it has none,

with the scorer training code (``models.train_scorer``) on the same inputs as
``enf train agents``, calibrated on valid, exported by ``models.export`` as a
new version of the model directory: ``teacher`` {policy, arm, version} and
``parent_version`` in the manifest, the other students' files kept, and an
explanation student from the teacher's sentences (or the stated reasons when
the teacher writes none). Running workers pick it up without a restart.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from enf_core.taxonomy import REASONS

__all__ = ["DistillConfig", "ScorerTeacher", "Teacher", "TeacherLabels", "distill"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherLabels:
    """A teacher's answers for some rows: probabilities, and sentences if it writes them."""

    p_negative: np.ndarray  # [n]
    reason_probs: np.ndarray  # [n, 4], rows sum to 1
    explanations: list[str] | None = None  # [n] the teacher's sentence per row


class Teacher(Protocol):
    """What ``distill`` needs of a teacher (the policy API provides it)."""

    def describe(self) -> dict[str, Any]:
        """{policy, arm, version}: recorded as the manifest's ``teacher``."""
        ...

    def label(self, features: Any, rows: np.ndarray) -> TeacherLabels:
        """Teacher-forced labels for ``rows`` of ``features`` (a DatasetFeatures)."""
        ...


@dataclass
class ScorerTeacher:
    """Another exported scorer as the teacher (e.g. a larger one): no sentences."""

    model_dir: str | Path

    def __post_init__(self) -> None:
        from models.runtime import ScorerRuntime

        self.runtime = ScorerRuntime(self.model_dir, prefer_gpu=False)

    def describe(self) -> dict[str, Any]:
        return {"policy": f"scorer:{self.runtime.manifest['name']}", "arm": "scorer",
                "version": self.runtime.version}

    def label(self, features: Any, rows: np.ndarray) -> TeacherLabels:
        out = self.runtime.score_outputs(features.portraits[rows], features.video_vectors(rows),
                                         raw=True)
        return TeacherLabels(np.asarray(out["p_negative"]), np.asarray(out["reason_probs"]))


@dataclass(frozen=True)
class DistillConfig:
    """How the student learns from the teacher (documented defaults)."""

    soft_weight: float = 0.5  # weight of the teacher beside the hard label (0: hard only)
    teacher_rows: int = 20_000  # train rows the teacher labels (a policy is slow on CPU)
    epochs: int = 8
    batch_size: int = 1024
    seed: int = 0
    explainer_from_teacher: bool = True  # teacher sentences as the explainer's source
    name: str = "enf-distilled"
    calibration_method: str = "isotonic"
    target_precision: float = 0.6
    extra: dict[str, Any] = field(default_factory=dict)


def _blend(c: DistillConfig, y: np.ndarray, reason: np.ndarray, t: TeacherLabels
           ) -> tuple[np.ndarray, np.ndarray]:
    a = c.soft_weight
    p = a * np.clip(t.p_negative, 0, 1) + (1 - a) * y
    q = np.asarray(t.reason_probs, np.float64)
    q = q / np.clip(q.sum(1, keepdims=True), 1e-9, None)
    onehot = np.zeros_like(q)
    known = reason >= 0
    onehot[np.flatnonzero(known), reason[known]] = 1.0
    soft = np.where(known[:, None], a * q + (1 - a) * onehot, q)
    return p.astype(np.float32), soft.astype(np.float32)


def distill(data_dir: str | Path, model_dir: str | Path, teacher: Teacher,
            config: DistillConfig | None = None) -> dict[str, Any]:
    """Label, train, calibrate, export; returns the published manifest."""
    from models.agents_pipeline import AgentsTrainConfig, scorer_data
    from models.calibration import calibration_entry
    from models.dataset_features import dataset_features
    from models.distill.explainer import (
        explainer_rouge,
        explainer_rows,
        standard_explainers,
        train_explainer,
        write_explainer,
    )
    from models.export import data_hash, export_scorer
    from models.manifest import read_manifest
    from models.train_scorer import ScorerData, TrainConfig, predict, predict_all, train_scorer

    c = config or DistillConfig()
    t0 = time.perf_counter()
    data_dir, model_dir = Path(data_dir).resolve(), Path(model_dir)
    current = read_manifest(model_dir)
    f = dataset_features(data_dir)
    ac = AgentsTrainConfig()
    train, valid = f.rows("train"), f.rows("valid")
    train = train[f.implicit_known[train] | f.rating_known[train]]
    valid = valid[f.implicit_known[valid] | f.rating_known[valid]]
    hard = scorer_data(f, train, ac)
    rng = np.random.default_rng(c.seed)
    # every train dislike (the explainer's sentences), the rest drawn at random
    dislikes = train[f.explicit[train]]
    rest = np.setdiff1d(train, dislikes)
    n_rest = max(0, min(len(rest), c.teacher_rows - len(dislikes)))
    labelled = np.sort(np.concatenate([dislikes, rng.choice(rest, n_rest, replace=False)]))
    t1 = time.perf_counter()
    labels = teacher.label(f, labelled)
    t_teacher = time.perf_counter() - t1
    pos = np.searchsorted(train, labelled)
    negative = np.asarray(hard.negative, np.float32).copy()
    soft = np.full((len(train), len(REASONS)), np.nan, np.float32)
    negative[pos], soft[pos] = _blend(c, hard.negative[pos], hard.reason[pos], labels)
    data = ScorerData(hard.portraits, hard.videos, negative, hard.reason, hard.weight,
                      hard.dislike, soft if c.soft_weight > 0 else None)
    model, val_metrics = train_scorer(data, TrainConfig(epochs=c.epochs, batch_size=c.batch_size,
                                                        seed=c.seed), ac.scorer_net,
                                      val=scorer_data(f, valid, ac))
    vdata = scorer_data(f, valid, ac)
    pv, _, dv = predict_all(model, vdata.portraits, vdata.videos)
    calibration = calibration_entry(pv, vdata.negative, dv, vdata.dislike,
                                    method=c.calibration_method,
                                    target_precision=c.target_precision)
    # agreement with the teacher on the rows it labelled
    ps, rs = predict(model, f.portraits[labelled], f.video_vectors(labelled))
    agreement = {
        "p_negative_corr": round(float(np.corrcoef(ps, labels.p_negative)[0, 1]), 4)
        if len(ps) > 2 else None,
        "reason_argmax": round(float((rs.argmax(1) == labels.reason_probs.argmax(1)).mean()),
                               4) if len(rs) else None}

    def scorer(p: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict(model, p, v)

    files: dict[str, str] = {k: current["files"][k]["path"] for k in ("video_head",
                                                                    "portrait_step")
                             if k in current["files"]}
    students = {k: v for k, v in current.get("students", {}).items() if k in files}
    etrain = explainer_rows(f, data_dir, "train", predict=scorer)
    if len(etrain):
        sentences = None
        if c.explainer_from_teacher and labels.explanations is not None:
            by_row = dict(zip(labelled.tolist(), labels.explanations, strict=True))
            sentences = [by_row.get(int(r)) or t for r, t in zip(etrain.rows, etrain.text,
                                                                 strict=True)]
        student = train_explainer(etrain, sentences=sentences,
                                  source="teacher sentences" if sentences else
                                  "stated reasons (train split)")
        etest = explainer_rows(f, data_dir, "test", predict=scorer)
        rouge = explainer_rouge(etest, standard_explainers(etrain, student)) if len(etest) else {}
        files["explainer"] = write_explainer(student, model_dir)
        students["explainer"] = {**{k: v for k, v in student.meta.items() if k != "keys"},
                                 "keys": len(student.bank), "rouge_test": rouge}
    described = teacher.describe()
    manifest = export_scorer(
        model, model_dir, name=c.name, metrics={"valid_any_negative": val_metrics},
        training_data_hash=data_hash(data.portraits, data.videos, data.negative, data.reason),
        extra={"threshold": float(val_metrics["threshold"]), **calibration,
               "teacher": described, "students": students,
               "distillation": {"config": {k: v for k, v in asdict(c).items() if k != "extra"},
                                "teacher_rows": len(labelled), "agreement": agreement,
                                "teacher_seconds": round(t_teacher, 1),
                                "seconds": round(time.perf_counter() - t0, 1),
                                "data": str(data_dir)},
               **c.extra},
        extra_files=files)
    log.info("distilled %s into %s %s", described, model_dir, manifest["version"])
    return manifest
