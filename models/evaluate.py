"""``enf eval quick``: ENF and baselines on the test splits, one protocol for all.

Protocol (also in docs/agents.md):

* **Implicit** (TVNF-like data): every test-split row with a watch ratio; the
  label is the quick swipe (watch ratio < 0.3), natural class balance (~22 %;
  the paper's precision/recall imply ~28 %). Class accuracy is over the test
  quick swipes that have a reason label (the simulator's implicit cause).
* **Explicit**: every test-split dislike plus ``explicit_ratio`` (3) test rows
  without a dislike per dislike, drawn with a fixed seed — the paper's
  accuracy, recall and F1 together imply about one dislike per three other
  rows. Class accuracy is over the dislikes (their stated category).
* **MovieLens-100K / Steam** (binary like / dislike): test-split ratings,
  dislike = rating <= 3 (Agent4Rec's "> 3 is positive"; Steam: not
  recommended); the majority class is down-sampled (seeded) to a 1:1 set.
  ENF is trained on each dataset's train split (the same scorer network over
  the Profile Agent's portraits and the item analyses); an item's plot appeal
  is its train-split like rate (Beta-smoothed), since there is no video to watch;
  a train row's rate is computed out of fold, so it never contains the row's own label.
* Thresholds are chosen on the valid split built the same way, then metrics are
  computed once on test: ``acc`` at the accuracy-optimal threshold, ``f1`` (with
  ``precision``, ``recall``) at the F1-optimal one, ``auc`` always (no threshold).
  F1, precision and recall are of the negative-feedback class; ``f1_all_negative``
  is the F1 of flagging every row (0.667 on a 1:1 set), the floor F1 must clear.
* Baselines (``models.baselines``, one module each) are fitted per task on the
  same train rows and scored on the same valid / test rows; each is causal (a
  row sees its user's earlier rows only; train-split statistics of a train row
  are out of fold).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from enf_core.features import VIDEO_SLICES
from models.baselines import DEFAULT_BASELINES, TaskData, build_context, make_baseline, task_data
from models.baselines.common import event_positions
from models.dataset_features import DatasetFeatures, dataset_features
from models.item_appeal import item_rates
from models.metrics import (
    best_accuracy_threshold,
    best_f1_threshold,
    binary_metrics,
    class_accuracy,
)

__all__ = ["PAPER_FLOORS", "EvalConfig", "evaluate_quick", "explicit_rows", "implicit_rows"]

log = logging.getLogger(__name__)

PAPER_FLOORS: dict[str, dict[str, float]] = {
    "explicit": {"acc": 0.861, "recall": 0.808, "f1": 0.750, "class_acc": 0.654},
    "implicit": {"acc": 0.612, "precision": 0.404, "recall": 0.782, "f1": 0.533,
                 "class_acc": 0.543},
    "movielens": {"acc": 0.815, "f1": 0.808},
    "steam": {"acc": 0.803, "f1": 0.805},
}


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation protocol knobs (documented defaults; see the module docstring)."""

    explicit_ratio: int = 3  # rows without a dislike per dislike in the explicit set
    seed: int = 0
    title_encoder: str = "minilm"
    appeal_prior: float = 5.0  # Beta prior strength of an item's like rate (rating data)
    domain_epochs: int = 12
    domain_threads: int = 0
    rating_datasets: tuple[str, ...] = ("movielens", "steam")  # generalisation sets to run
    baselines: tuple[str, ...] = DEFAULT_BASELINES  # models.baselines.BASELINES names
    folds: int = 3  # out-of-fold train-split statistics (item appeal, baselines' rates, MF)


Progress = Callable[[str], None]


class Predictor(Protocol):
    def predict(self, f: DatasetFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _log_progress(msg: str) -> None:
    log.info("%s", msg)


@dataclass
class RuntimePredictor:
    """ENF's exported scorer through the worker's ONNX runtime; ``output`` picks the
    binary head (p_negative, or p_dislike for the explicit task when the model has it)."""

    runtime: Any
    output: str = "p_negative"

    def predict(self, f: DatasetFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Raw scores: benchmarks rank and threshold (F1 on valid) the uncalibrated p.
        out = self.runtime.score_outputs(f.portraits[rows], f.video_vectors(rows), raw=True)
        p = out.get(self.output, out["p_negative"])
        return np.asarray(p), np.asarray(out["reason_probs"])


@dataclass
class TorchPredictor:
    model: Any

    def predict(self, f: DatasetFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from models.train_scorer import predict

        return predict(self.model, f.portraits[rows], f.video_vectors(rows))


def implicit_rows(f: DatasetFeatures, split: str) -> tuple[np.ndarray, np.ndarray]:
    rows = f.rows(split)
    rows = rows[f.implicit_known[rows]]
    return rows, f.implicit[rows].astype(np.int64)


def explicit_rows(f: DatasetFeatures, split: str, ratio: int, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    rows = f.rows(split)
    pos = rows[f.explicit[rows]]
    neg = rows[~f.explicit[rows]]
    rng = np.random.default_rng(seed)
    neg = rng.choice(neg, min(len(neg), ratio * len(pos)), replace=False)
    out = np.sort(np.concatenate([pos, neg]))
    return out, f.explicit[out].astype(np.int64)


def balanced_rows(f: DatasetFeatures, split: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows = f.rows(split)
    rows = rows[f.rating_known[rows]]
    pos, neg = rows[f.dislike[rows]], rows[~f.dislike[rows]]
    n = min(len(pos), len(neg))
    rng = np.random.default_rng(seed)
    out = np.sort(np.concatenate([rng.choice(pos, n, replace=False),
                                  rng.choice(neg, n, replace=False)]))
    return out, f.dislike[out].astype(np.int64)


def task_metrics(y_valid: np.ndarray, p_valid: np.ndarray, y_test: np.ndarray,
                 p_test: np.ndarray) -> dict[str, float]:
    """Thresholds from valid, metrics on test: acc at the accuracy-optimal threshold, F1
    (precision, recall) at the F1-optimal one, AUC."""
    t_f1 = best_f1_threshold(y_valid, p_valid)
    t_acc = best_accuracy_threshold(y_valid, p_valid)
    m = binary_metrics(y_test, p_test, t_f1)
    prevalence = float(np.mean(y_test)) if len(y_test) else 0.0
    out = {
        "acc": binary_metrics(y_test, p_test, t_acc)["acc"],
        "f1": m["f1"], "auc": m["auc"], "precision": m["precision"], "recall": m["recall"],
        "acc_at_f1_threshold": m["acc"],
        "f1_all_negative": 2 * prevalence / (1 + prevalence) if prevalence else 0.0,
        "threshold_acc": t_acc, "threshold_f1": t_f1,
    }
    return {k: round(float(v), 4) for k, v in out.items()}


def _task(model: Predictor, f: DatasetFeatures, valid: tuple[np.ndarray, np.ndarray],
          test: tuple[np.ndarray, np.ndarray], *, with_class: bool) -> dict[str, float]:
    pv, _ = model.predict(f, valid[0])
    p, r = model.predict(f, test[0])
    out: dict[str, Any] = task_metrics(valid[1], pv, test[1], p)
    if with_class:
        truth = np.where(test[1] == 1, f.reason[test[0]], -1)
        out["class_acc"] = round(class_accuracy(truth, r.argmax(1)), 4)
        out["class_n"] = int((truth >= 0).sum())
    out["n"] = len(test[0])
    out["positives"] = int(test[1].sum())
    return out


def run_baselines(d: TaskData, valid: tuple[np.ndarray, np.ndarray],
                  test: tuple[np.ndarray, np.ndarray], names: tuple[str, ...], *,
                  with_class: bool, where: str, progress: Progress = _log_progress
                  ) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Fit each named baseline on ``d`` and score it like ENF; returns (metrics, info)."""
    out: dict[str, dict[str, Any]] = {}
    info: dict[str, str] = {}
    for name in names:
        t0 = time.perf_counter()
        b = make_baseline(name)
        info[name] = b.info
        if hasattr(b, "valid_rows"):
            b.valid_rows = valid[0]  # early stopping on the valid split, as ENF's scorer
        progress(f"{where}: {name} fitting")
        try:
            b.fit(d)
            pv, _ = b.predict(d, valid[0])
            pt, rt = b.predict(d, test[0])
        except Exception as exc:  # one broken baseline must not sink the report
            log.exception("%s: %s failed", where, name)
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
            progress(f"{where}: {name} FAILED: {exc}")
            continue
        m: dict[str, Any] = task_metrics(valid[1], pv, test[1], pt)
        if with_class and rt is not None:
            truth = np.where(test[1] == 1, d.f.reason[test[0]], -1)
            m["class_acc"] = round(class_accuracy(truth, rt.argmax(1)), 4)
            m["class_n"] = int((truth >= 0).sum())
        m["n"], m["positives"] = len(test[0]), int(test[1].sum())
        m["fit_seconds"] = round(time.perf_counter() - t0, 1)
        out[name] = m
        progress(f"{where}: {name} auc {m['auc']:.3f} acc {m['acc']:.3f} f1 {m['f1']:.3f} "
                 f"({m['fit_seconds']:.0f}s)")
    return out, info


def evaluate_tvnf(f: DatasetFeatures, runtime: Any, config: EvalConfig, *,
                  data_dir: str | Path, progress: Progress = _log_progress) -> dict[str, Any]:
    c = config
    sets = {
        "implicit": (implicit_rows(f, "valid"), implicit_rows(f, "test")),
        "explicit": (explicit_rows(f, "valid", c.explicit_ratio, c.seed),
                     explicit_rows(f, "test", c.explicit_ratio, c.seed + 1)),
    }
    ctx = build_context(f, *event_positions(data_dir)) if c.baselines else None
    train = f.rows("train")
    out: dict[str, Any] = {"enf": {}, "baselines": {}, "info": {}}
    for task, (valid, test) in sets.items():
        enf = RuntimePredictor(runtime, "p_dislike" if task == "explicit" else "p_negative")
        out["enf"][task] = _task(enf, f, valid, test, with_class=True)
        e = out["enf"][task]
        progress(f"{task}: enf auc {e['auc']:.3f} acc {e['acc']:.3f} f1 {e['f1']:.3f}")
        if ctx is None:
            continue
        label = (f.implicit if task == "implicit" else f.explicit).astype(np.int64)
        rows = train[f.implicit_known[train]] if task == "implicit" else train
        d = task_data(ctx, task, label, rows, folds=c.folds, seed=c.seed)
        res, info = run_baselines(d, valid, test, c.baselines, with_class=True, where=task,
                                  progress=progress)
        for name, m in res.items():
            out["baselines"].setdefault(name, {})[task] = m
        out["info"].update(info)
    return out


def with_item_appeal(f: DatasetFeatures, prior: float, *, folds: int = 5, seed: int = 0
                     ) -> tuple[DatasetFeatures, np.ndarray]:
    """Rating data: plot appeal := the item's Beta-smoothed train-split like rate.

    Returns the features with the whole-train rate in every video vector (what valid
    and test rows see) and the train rows' own video vectors [n_train, 33], whose rate
    is out of fold (``models.item_appeal``): a train row never sees its own label.
    """
    train = f.rows("train")
    train = train[f.rating_known[train]]
    like = (~f.dislike).astype(np.float64)
    rates = item_rates(f.video_row, like, train, len(f.videos), prior=prior, folds=folds,
                       seed=seed)
    col = VIDEO_SLICES["meta"].start
    videos = f.videos.copy()
    videos[:, col] = rates.full
    out = replace(f, videos=videos)
    train_videos = out.video_vectors(train).copy()
    train_videos[:, col] = rates.row[train]
    return out, train_videos


def evaluate_rating(f: DatasetFeatures, config: EvalConfig, *, data_dir: str | Path,
                    name: str = "rating", progress: Progress = _log_progress) -> dict[str, Any]:
    """ENF trained on the dataset's train split, and the baselines, on the balanced sets."""
    from models.train_scorer import ScorerData, TrainConfig, train_scorer

    c = config
    f, train_videos = with_item_appeal(f, c.appeal_prior, folds=c.folds, seed=c.seed)
    valid, test = balanced_rows(f, "valid", c.seed), balanced_rows(f, "test", c.seed + 1)
    train = f.rows("train")
    train = train[f.rating_known[train]]
    label = f.dislike.astype(np.int64)
    data = ScorerData(f.portraits[train], train_videos, label[train],
                      np.full(len(train), -1, np.int64))  # no dislike head: one label here
    vdata = ScorerData(f.portraits[valid[0]], f.video_vectors(valid[0]), valid[1],
                       np.full(len(valid[0]), -1, np.int64))
    t0 = time.perf_counter()
    progress(f"{name}: enf training")
    model, _ = train_scorer(data, TrainConfig(epochs=c.domain_epochs, seed=c.seed,
                                              threads=c.domain_threads), val=vdata)
    enf: dict[str, Any] = _task(TorchPredictor(model), f, valid, test, with_class=False)
    enf["train_seconds"] = round(time.perf_counter() - t0, 2)
    progress(f"{name}: enf auc {enf['auc']:.3f} acc {enf['acc']:.3f} f1 {enf['f1']:.3f}")
    baselines: dict[str, dict[str, Any]] = {}
    info: dict[str, str] = {}
    if c.baselines:
        ctx = build_context(f, *event_positions(data_dir))
        d = task_data(ctx, name, label, train, folds=c.folds, seed=c.seed,
                      train_videos=train_videos)
        baselines, info = run_baselines(d, valid, test, c.baselines, with_class=False,
                                        where=name, progress=progress)
    return {"enf": enf, "baselines": baselines, "info": info}


def _rating_dataset(kind: str, path: str | Path | None) -> Path:
    """A converted dataset dir for ``kind`` (converting into the cache when needed)."""
    import os

    if path is not None and (Path(path) / "schema.json").is_file():
        return Path(path)
    cache = Path(os.environ.get("ENF_CACHE") or Path.home() / ".cache" / "enf-stream")
    out = cache / "datasets" / kind
    if (out / "schema.json").is_file():
        return out
    from enf_core.data.loaders import load_dataset

    load_dataset(kind, out, Path(path) if path else None)
    return out


def evaluate_quick(data_dir: str | Path, model_dir: str | Path | None = None, *,
                   steam_path: str | Path | None = None,
                   movielens_path: str | Path | None = None,
                   config: EvalConfig | None = None,
                   progress: Progress = _log_progress) -> dict[str, Any]:
    """The ``enf eval quick`` report (see the module docstring for the protocol)."""
    from models.runtime import ScorerRuntime

    c = config or EvalConfig()
    for b in c.baselines:
        make_baseline(b)  # unknown names fail before any work
    t0 = time.perf_counter()

    def timed(msg: str) -> None:
        progress(f"[{time.perf_counter() - t0:6.0f}s] {msg}")

    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    timed("features of the simulated data")
    f = dataset_features(data_dir, title_encoder=c.title_encoder)
    tv = evaluate_tvnf(f, runtime, c, data_dir=data_dir, progress=timed)
    report: dict[str, Any] = {**tv["enf"]}
    baselines: dict[str, dict[str, Any]] = tv["baselines"]
    info: dict[str, str] = tv["info"]
    skipped: dict[str, str] = {}
    for name, path in (("movielens", movielens_path), ("steam", steam_path)):
        if name not in c.rating_datasets:
            skipped[name] = "not requested"
            continue
        kind = "movielens-100k" if name == "movielens" else "steam"
        try:
            d = _rating_dataset(kind, path)
        except Exception as exc:  # a missing optional dataset must not sink the report
            log.warning("%s skipped: %s", name, exc)
            skipped[name] = str(exc)
            continue
        timed(f"features of {name}")
        r = evaluate_rating(dataset_features(d, title_encoder=c.title_encoder), c, data_dir=d,
                            name=name, progress=timed)
        report[name] = r["enf"]
        for b, m in r["baselines"].items():
            baselines.setdefault(b, {})[name] = m
        info.update(r["info"])
    report["baselines"] = baselines
    report["baselines_info"] = info
    if f.explicit.any():  # explanation ROUGE of each explainer (models.distill.explainer)
        timed("explainers")
        from models.distill.explainer import evaluate_explainers

        report["explainers"] = evaluate_explainers(f, data_dir, runtime)
    report["paper"] = PAPER_FLOORS
    report["beats_paper"] = {
        task: {k: bool(report[task].get(k, 0) >= v) for k, v in floors.items()}
        for task, floors in PAPER_FLOORS.items() if task in report}
    report["model"] = {"dir": str(runtime.model_dir), "name": runtime.manifest["name"],
                       "version": runtime.version}
    report["data"] = {"dir": str(Path(data_dir).resolve()), "name": f.name,
                      "rows": len(f.split), "feature_seconds": f.seconds}
    report["protocol"] = {**asdict(c), "doc": "models/evaluate.py, docs/agents.md"}
    if skipped:
        report["skipped"] = skipped
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def default_eval_config(**kw: Any) -> EvalConfig:
    return replace(EvalConfig(), **kw)

