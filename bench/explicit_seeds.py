"""Explicit negatives (issue 9, item 5): the model's dislike head on the simulator's
held-out dislikes, at natural balance and at the 1:3 protocol, over 5 seeds.

A test split holds ~100 dislikes (±0.05 F1 between draws), so one number says
little. Seeds here resample the evaluation, not the simulation: seed s draws the
1:3 negatives of valid and test with seed s (the threshold is F1-optimal on that
valid set), and a bootstrap of the test rows (seeded s) gives the natural-balance
spread. Prints one JSON object: per protocol the mean, the 95 % t-interval and
the per-seed values of F1, precision, recall, accuracy and AUC.

Usage: python bench/explicit_seeds.py --data DIR --model MODEL [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.dataset_features import dataset_features
from models.evaluate import explicit_rows
from models.metrics import best_f1_threshold, binary_metrics
from models.runtime import ScorerRuntime


def _interval(values: list[float]) -> dict[str, Any]:
    from scipy import stats

    a = np.asarray(values, np.float64)
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))) if len(
        a) > 1 else 0.0
    return {"mean": round(float(a.mean()), 4), "ci95": [round(float(a.mean()) - half, 4),
                                                        round(float(a.mean()) + half, 4)],
            "seeds": [round(float(v), 4) for v in a]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--ratio", type=int, default=3)
    args = ap.parse_args()
    rt = ScorerRuntime(args.model, prefer_gpu=False)
    f = dataset_features(args.data)

    def p_dislike(rows: np.ndarray) -> np.ndarray:
        out = rt.score_outputs(f.portraits[rows], f.video_vectors(rows), raw=True)
        return np.asarray(out.get("p_dislike", out["p_negative"]))

    keys = ("f1", "precision", "recall", "acc", "auc")
    protocol: dict[str, dict[str, list[float]]] = {"ratio_1_3": {k: [] for k in keys},
                                                   "natural": {k: [] for k in keys}}
    valid_all, test_all = f.rows("valid"), f.rows("test")
    pv_all, pt_all = p_dislike(valid_all), p_dislike(test_all)
    yv_all, yt_all = f.explicit[valid_all].astype(int), f.explicit[test_all].astype(int)
    natural_t = best_f1_threshold(yv_all, pv_all)
    for s in range(args.seeds):
        valid, yv = explicit_rows(f, "valid", args.ratio, s)
        test, yt = explicit_rows(f, "test", args.ratio, 1000 + s)
        t = best_f1_threshold(yv, p_dislike(valid))
        m = binary_metrics(yt, p_dislike(test), t)
        for k in keys:
            protocol["ratio_1_3"][k].append(m[k])
        boot = np.random.default_rng(s).integers(0, len(test_all), len(test_all))
        m = binary_metrics(yt_all[boot], pt_all[boot], natural_t)
        for k in keys:
            protocol["natural"][k].append(m[k])
    report = {name: {k: _interval(v) for k, v in d.items()} for name, d in protocol.items()}
    report["test_dislikes"] = int(yt_all.sum())
    report["test_rows"] = len(test_all)
    report["model"] = rt.version
    report["how"] = ("ratio_1_3: negatives redrawn per seed (valid seed s, test seed 1000+s), "
                     "threshold F1-optimal on that valid set; natural: bootstrap of all test "
                     "rows per seed, threshold F1-optimal on all valid rows")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
