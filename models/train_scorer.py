"""Training loop of the scorer student (and of any model with the same two heads).

One loss per head, as the paper's agents answer two questions: binary
cross-entropy on "will this user react negatively", and cross-entropy on the
reason, over the negative rows whose reason is known (explicit reasons, or the
labels of implicit negatives). Labels may also be soft (teacher probabilities),
which is how the students are distilled from the agents.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from models.metrics import best_f1_threshold, binary_metrics, class_accuracy
from models.scorer import ScorerConfig, ScorerNet

__all__ = ["ScorerData", "TrainConfig", "evaluate_scorer", "predict", "predict_all",
           "train_scorer"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser settings (defaults train the default scorer in seconds on 2 cores)."""

    epochs: int = 12
    batch_size: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-4
    reason_weight: float = 1.0  # weight of the reason loss beside the binary one
    pos_weight: float = 1.0  # >1 when negatives are rare
    dislike_weight: float = 1.0  # weight of the dislike head's loss (when labels exist)
    dislike_pos_weight: float = 10.0  # dislikes are ~0.3 % of rows: up-weight them
    val_fraction: float = 0.1
    seed: int = 0
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default


@dataclass(frozen=True)
class ScorerData:
    """Training rows: vectors, the binary label (or a teacher probability), the reason."""

    portraits: np.ndarray  # [n, 34] float32
    videos: np.ndarray  # [n, 33] float32
    negative: np.ndarray  # [n] 0/1 or a probability
    reason: np.ndarray  # [n] int64 index into REASONS, -1 when unknown
    weight: np.ndarray | None = None  # [n] per-row loss weight
    dislike: np.ndarray | None = None  # [n] 0/1 explicit dislike; None trains no dislike head
    # [n, 4] a teacher's reason distribution (NaN rows: none); where given it is the
    # reason target instead of ``reason`` (models.distill)
    reason_soft: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.negative)

    def subset(self, idx: np.ndarray) -> ScorerData:
        return ScorerData(self.portraits[idx], self.videos[idx], self.negative[idx],
                          self.reason[idx], None if self.weight is None else self.weight[idx],
                          None if self.dislike is None else self.dislike[idx],
                          None if self.reason_soft is None else self.reason_soft[idx])


@torch.no_grad()
def predict_all(model: ScorerNet, portraits: np.ndarray, videos: np.ndarray,
                batch: int = 65_536) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p_negative [n], reason_probs [n, 4], p_dislike [n]) in torch."""
    model.eval()
    outs: list[list[np.ndarray]] = [[], [], []]
    for i in range(0, len(portraits), batch):
        res = model(torch.from_numpy(np.ascontiguousarray(portraits[i:i + batch], np.float32)),
                    torch.from_numpy(np.ascontiguousarray(videos[i:i + batch], np.float32)))
        for o, t in zip(outs, res, strict=True):
            o.append(t.numpy())
    if not outs[0]:
        return np.zeros(0, np.float32), np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    p, r, d = (np.concatenate(o) for o in outs)
    return p, r, d


def predict(model: ScorerNet, portraits: np.ndarray, videos: np.ndarray,
            batch: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """(p_negative, reason_probs): the runtime's ``score`` in torch."""
    p, r, _ = predict_all(model, portraits, videos, batch)
    return p, r


def evaluate_scorer(model: ScorerNet, data: ScorerData, threshold: float = 0.5
                    ) -> dict[str, float]:
    p, r, d = predict_all(model, data.portraits, data.videos)
    y = (data.negative >= 0.5).astype(np.int64)
    out = binary_metrics(y, p, threshold)
    out["class_acc"] = class_accuracy(np.where(y == 1, data.reason, -1), r.argmax(1))
    out["threshold"] = threshold
    if data.dislike is not None:
        from models.metrics import auc

        out["dislike_auc"] = auc(np.asarray(data.dislike) > 0, d)
    return out


def train_scorer(data: ScorerData, config: TrainConfig | None = None,
                 scorer_config: ScorerConfig | None = None,
                 val: ScorerData | None = None) -> tuple[ScorerNet, dict[str, float]]:
    """Train a ScorerNet; returns it (eval mode) and validation metrics.

    Without ``val`` a ``val_fraction`` of ``data`` is held out. The F1-optimal
    threshold on validation is reported (``threshold``) so callers can use it.
    """
    c = config or TrainConfig()
    torch.manual_seed(c.seed)
    if c.threads:
        torch.set_num_threads(c.threads)
    rng = np.random.default_rng(c.seed)
    if val is None:
        idx = rng.permutation(len(data))
        n_val = max(1, int(len(data) * c.val_fraction))
        val, data = data.subset(idx[:n_val]), data.subset(idx[n_val:])
    model = ScorerNet(scorer_config)
    model.set_normalization(torch.from_numpy(np.ascontiguousarray(data.portraits, np.float32)),
                            torch.from_numpy(np.ascontiguousarray(data.videos, np.float32)))
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    steps = max(1, c.epochs * ((len(data) + c.batch_size - 1) // c.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=steps)
    bce = nn.BCEWithLogitsLoss(reduction="none", pos_weight=torch.tensor(c.pos_weight))
    ce = nn.CrossEntropyLoss(reduction="none")
    P = torch.from_numpy(np.ascontiguousarray(data.portraits, np.float32))
    V = torch.from_numpy(np.ascontiguousarray(data.videos, np.float32))
    Y = torch.from_numpy(np.asarray(data.negative, np.float32))
    R = torch.from_numpy(np.asarray(data.reason, np.int64))
    W = torch.from_numpy(np.asarray(data.weight if data.weight is not None
                                    else np.ones(len(data)), np.float32))
    D = None if data.dislike is None else torch.from_numpy(np.asarray(data.dislike, np.float32))
    Q = None
    if data.reason_soft is not None:
        q = np.asarray(data.reason_soft, np.float32)
        Q = torch.from_numpy(np.where(np.isnan(q), 0.0, q).astype(np.float32))
        QK = torch.from_numpy(~np.isnan(q).any(axis=1))
    bce_d = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(c.dislike_pos_weight))
    t0 = time.perf_counter()
    for epoch in range(c.epochs):
        model.train()
        perm = torch.randperm(len(Y))
        total = 0.0
        for i in range(0, len(perm), c.batch_size):
            b = perm[i:i + c.batch_size]
            neg, reason, dislike = model.logits(P[b], V[b])
            loss = (bce(neg, Y[b]) * W[b]).mean()
            if D is not None:
                loss = loss + c.dislike_weight * bce_d(dislike, D[b])
            known = R[b] >= 0
            if Q is not None:  # a teacher's distribution replaces the hard label where given
                soft = QK[b]
                known = known & ~soft
                if soft.any():
                    logp = torch.log_softmax(reason[soft], dim=1)
                    sl = -(Q[b][soft] * logp).sum(1) * W[b][soft]
                    loss = loss + c.reason_weight * sl.sum() / len(b)
            if known.any():
                rl = ce(reason[known], R[b][known]) * W[b][known]
                loss = loss + c.reason_weight * rl.sum() / len(b)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        log.info("epoch %d loss %.4f (%.1fs)", epoch, total / len(Y), time.perf_counter() - t0)
    model.eval()
    pv, _ = predict(model, val.portraits, val.videos)
    threshold = best_f1_threshold((val.negative >= 0.5).astype(np.int64), pv)
    metrics = evaluate_scorer(model, val, threshold)
    metrics["train_seconds"] = round(time.perf_counter() - t0, 2)
    metrics["train_rows"] = len(data)
    metrics["val_rows"] = len(val)
    return model, {k: round(float(v), 5) for k, v in metrics.items()}


def config_dict(config: TrainConfig) -> dict[str, float | int]:
    return asdict(config)
