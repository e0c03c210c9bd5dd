"""Binary and reason-class metrics, numpy only (shared by training, eval and bench).

Definitions follow the paper's tables: accuracy, precision, recall and F1 of the
"negative" class; class accuracy is the share of true negatives (rows whose
true label is negative and whose reason is known) whose reason category the
model gets right, so a model is not credited for reasons of rows it missed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["auc", "best_accuracy_threshold", "best_f1_threshold", "binary_metrics",
           "class_accuracy"]


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank statistic (ties get average ranks); 0.5 when one class."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    order = np.argsort(score, kind="mergesort")
    s = np.asarray(score)[order]
    ranks = np.empty(len(s), np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """acc, precision, recall, f1 of the positive (= negative-feedback) class, and auc."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(p) >= threshold
    tp = int((pred & y).sum())
    fp = int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"acc": float((pred == y).mean()) if len(y) else 0.0, "precision": precision,
            "recall": recall, "f1": f1, "auc": auc(y, np.asarray(p))}


def class_accuracy(true_reason: np.ndarray, pred_reason: np.ndarray) -> float:
    """Reason accuracy over rows with a known reason (``true_reason >= 0``)."""
    mask = np.asarray(true_reason) >= 0
    if not mask.any():
        return 0.0
    return float((np.asarray(pred_reason)[mask] == np.asarray(true_reason)[mask]).mean())


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises F1 on (validation) data; chosen there, used on test."""
    y = np.asarray(y).astype(bool)
    if not y.any():
        return 0.5
    order = np.argsort(-np.asarray(p), kind="mergesort")
    ps = np.asarray(p)[order]
    tp = np.cumsum(y[order])
    k = np.arange(1, len(ps) + 1)
    f1 = 2 * tp / (k + y.sum())
    # only cut between distinct scores
    valid = np.r_[ps[1:] < ps[:-1], True]
    best = int(np.argmax(np.where(valid, f1, -1.0)))
    return float(ps[best])


def best_accuracy_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises accuracy on (validation) data: flag p >= threshold.
    Above every score (flag nothing) when that is best."""
    y = np.asarray(y).astype(bool)
    if len(y) == 0:
        return 0.5
    order = np.argsort(-np.asarray(p), kind="mergesort")
    ps = np.asarray(p, np.float64)[order]
    tp = np.cumsum(y[order])
    k = np.arange(1, len(ps) + 1)
    correct = tp + ((~y).sum() - (k - tp))  # flag the top k: tp + true negatives
    valid = np.r_[ps[1:] < ps[:-1], True]
    best = int(np.argmax(np.where(valid, correct, -1)))
    if (~y).sum() >= correct[best]:  # flagging nothing is at least as accurate
        return float(np.nextafter(ps[0], np.inf))
    return float(ps[best])
