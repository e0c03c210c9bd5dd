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
* The decision threshold of every model is the F1-optimal one on the valid
  split built the same way; metrics are then computed once on test. F1,
  precision and recall are of the negative-feedback class.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from enf_core.features import VIDEO_SLICES
from models.baselines import ItemPopularity, LogisticBaseline
from models.dataset_features import DatasetFeatures, dataset_features
from models.item_appeal import item_rates
from models.metrics import best_f1_threshold, binary_metrics, class_accuracy

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


class Predictor(Protocol):
    def predict(self, f: DatasetFeatures, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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


def _task(model: Predictor, f: DatasetFeatures, valid: tuple[np.ndarray, np.ndarray],
          test: tuple[np.ndarray, np.ndarray], *, with_class: bool) -> dict[str, float]:
    pv, _ = model.predict(f, valid[0])
    threshold = best_f1_threshold(valid[1], pv)
    p, r = model.predict(f, test[0])
    m = binary_metrics(test[1], p, threshold)
    out: dict[str, float] = {k: round(v, 4) for k, v in m.items()}
    if with_class:
        truth = np.where(test[1] == 1, f.reason[test[0]], -1)
        out["class_acc"] = round(class_accuracy(truth, r.argmax(1)), 4)
        out["class_n"] = int((truth >= 0).sum())
    out["threshold"] = round(float(threshold), 4)
    out["n"] = len(test[0])
    out["positives"] = int(test[1].sum())
    return out


def evaluate_tvnf(f: DatasetFeatures, runtime: Any, config: EvalConfig) -> dict[str, Any]:
    c = config
    sets = {
        "implicit": (implicit_rows(f, "valid"), implicit_rows(f, "test")),
        "explicit": (explicit_rows(f, "valid", c.explicit_ratio, c.seed),
                     explicit_rows(f, "test", c.explicit_ratio, c.seed + 1)),
    }
    train = f.rows("train")
    out: dict[str, Any] = {"enf": {}, "baselines": {"item_popularity": {},
                                                    "logistic_regression": {}}}
    for task, (valid, test) in sets.items():
        enf = RuntimePredictor(runtime, "p_dislike" if task == "explicit" else "p_negative")
        out["enf"][task] = _task(enf, f, valid, test, with_class=True)
        label = (f.implicit if task == "implicit" else f.explicit).astype(np.int64)
        rows = train[f.implicit_known[train]] if task == "implicit" else train
        pop = ItemPopularity().fit(f, rows, label)
        out["baselines"]["item_popularity"][task] = _task(pop, f, valid, test, with_class=True)
        lr = LogisticBaseline(seed=c.seed).fit(f, rows, label)
        out["baselines"]["logistic_regression"][task] = _task(lr, f, valid, test,
                                                              with_class=True)
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


def evaluate_rating(f: DatasetFeatures, config: EvalConfig) -> dict[str, Any]:
    from models.train_scorer import ScorerData, TrainConfig, train_scorer

    c = config
    f, train_videos = with_item_appeal(f, c.appeal_prior, seed=c.seed)
    valid, test = balanced_rows(f, "valid", c.seed), balanced_rows(f, "test", c.seed + 1)
    train = f.rows("train")
    train = train[f.rating_known[train]]
    label = f.dislike.astype(np.int64)
    data = ScorerData(f.portraits[train], train_videos, label[train],
                      np.full(len(train), -1, np.int64))  # no dislike head: one label here
    vdata = ScorerData(f.portraits[valid[0]], f.video_vectors(valid[0]), valid[1],
                       np.full(len(valid[0]), -1, np.int64))
    t0 = time.perf_counter()
    model, _ = train_scorer(data, TrainConfig(epochs=c.domain_epochs, seed=c.seed,
                                              threads=c.domain_threads), val=vdata)
    keep = ("acc", "f1", "auc", "precision", "recall", "threshold", "n", "positives")
    enf = {k: v for k, v in _task(TorchPredictor(model), f, valid, test,
                                  with_class=False).items() if k in keep}
    enf["train_seconds"] = round(time.perf_counter() - t0, 2)
    pop = ItemPopularity().fit(f, train, label)
    lr = LogisticBaseline(seed=c.seed).fit(f, train, label, videos=train_videos)
    return {"enf": enf, "baselines": {
        "item_popularity": {k: v for k, v in _task(pop, f, valid, test, with_class=False).items()
                            if k in keep},
        "logistic_regression": {k: v for k, v in _task(lr, f, valid, test,
                                                       with_class=False).items() if k in keep}}}


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
                   config: EvalConfig | None = None) -> dict[str, Any]:
    """The ``enf eval quick`` report (see the module docstring for the protocol)."""
    from models.runtime import ScorerRuntime

    c = config or EvalConfig()
    t0 = time.perf_counter()
    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    f = dataset_features(data_dir, title_encoder=c.title_encoder)
    tv = evaluate_tvnf(f, runtime, c)
    report: dict[str, Any] = {**tv["enf"]}
    baselines: dict[str, dict[str, Any]] = tv["baselines"]
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
        r = evaluate_rating(dataset_features(d, title_encoder=c.title_encoder), c)
        report[name] = r["enf"]
        for b, m in r["baselines"].items():
            baselines[b][name] = m
    report["baselines"] = baselines
    if f.explicit.any():  # explanation ROUGE of each explainer (models.distill.explainer)
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

