"""Biased matrix factorisation (d = 32) of a task's label, and the user + item bias model.

``logit p(negative | u, i) = b + b_u + b_i + P_u · Q_i``, fitted by full-batch
Adam on the binary cross-entropy of the task's train labels with L2 on every
parameter (``MFConfig``); ``dim = 0`` is the user + item bias model (a one-hot
user + item logistic regression). Information: the train split's (user, item,
label) triples, nothing else.

``oof_mf`` also fits one model per fold of the train rows, so that a feature
built from MF (LightGBM's score, factors, item-kNN similarity) is out of fold on
train rows and from the whole train split elsewhere.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from models.baselines.common import TaskData

__all__ = ["OOFMF", "BiasedMF", "MFConfig", "MFParams", "UserItemBias", "fit_mf",
           "fit_task_mf", "oof_mf"]


@dataclass(frozen=True)
class MFConfig:
    dim: int = 32
    epochs: int = 10
    batch: int = 2048
    lr: float = 0.01  # Adam
    l2: float = 0.02  # on the factors (and biases, times bias_l2) a batch touches, per row
    bias_l2: float = 1.0
    loss: str = "auto"  # "logistic" on the label, "squared" on the rating; auto: squared on
    # rating data (Koren's biased MF of ratings; its score is minus the predicted rating)
    seed: int = 0
    threads: int = 1  # one thread: the scatter-heavy backward does not scale on 2 cores


@dataclass(frozen=True)
class MFParams:
    b: float
    bu: np.ndarray  # [n_users]
    bi: np.ndarray  # [n_items]
    p: np.ndarray  # [n_users, dim]
    q: np.ndarray  # [n_items, dim]

    def logit(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        out = self.b + self.bu[user] + self.bi[item]
        if self.p.shape[1]:
            out = out + (self.p[user] * self.q[item]).sum(1)
        return np.asarray(out, np.float64)


def fit_mf(user: np.ndarray, item: np.ndarray, y: np.ndarray, n_users: int, n_items: int,
           config: MFConfig = MFConfig(), *, squared: bool = False) -> MFParams:
    """Fit on (user, item, y) triples by mini-batch Adam: the logistic loss on y in {0, 1},
    or (``squared``) the squared error on y (a rating read in [0, 1])."""
    import torch
    from torch import nn

    c = config
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    u = torch.as_tensor(np.asarray(user, np.int64))
    i = torch.as_tensor(np.asarray(item, np.int64))
    t = torch.as_tensor(np.asarray(y, np.float32))
    prior = float(np.clip(np.mean(y), 1e-4, 1 - 1e-4)) if len(y) else 0.5
    b = nn.Parameter(torch.tensor([prior if squared else float(np.log(prior / (1 - prior)))]))
    bu, bi = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
    p, q = nn.Embedding(n_users, c.dim), nn.Embedding(n_items, c.dim)
    for e in (bu, bi):
        nn.init.zeros_(e.weight)
    for e in (p, q):
        nn.init.normal_(e.weight, std=0.01)
    params = [b, *bu.parameters(), *bi.parameters(), *p.parameters(), *q.parameters()]
    opt = torch.optim.Adam(params, lr=c.lr)
    g = torch.Generator().manual_seed(c.seed)
    n = len(t)
    for _ in range(c.epochs if n else 0):
        for idx in torch.randperm(n, generator=g).split(c.batch):
            ub, ib = u[idx], i[idx]
            pu, qi, bub, bib = p(ub), q(ib), bu(ub).squeeze(-1), bi(ib).squeeze(-1)
            logit = b + bub + bib + (pu * qi).sum(1)
            reg = (c.bias_l2 * (bub ** 2 + bib ** 2) + (pu ** 2).sum(1) + (qi ** 2).sum(1)).mean()
            if squared:
                fit = ((logit - t[idx]) ** 2).mean()
            else:
                fit = nn.functional.binary_cross_entropy_with_logits(logit, t[idx])
            loss = fit + c.l2 * reg
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return MFParams(b=float(b[0]), bu=bu.weight[:, 0].numpy().astype(np.float64),
                        bi=bi.weight[:, 0].numpy().astype(np.float64),
                        p=p.weight.numpy().astype(np.float64),
                        q=q.weight.numpy().astype(np.float64))


def fit_task_mf(d: TaskData, rows: np.ndarray, config: MFConfig = MFConfig()) -> MFParams:
    """MF of a task on ``rows``: on rating data (loss "auto") the squared error of the
    rating, sign-flipped so that a larger logit means a likelier negative; else the
    logistic loss of the task label."""
    ctx = d.ctx
    squared = config.loss == "squared" or (config.loss == "auto" and ctx.kind == "rating")
    y = ctx.value[rows] if squared else d.label[rows]
    m = fit_mf(ctx.user[rows], ctx.item[rows], y, ctx.n_users, ctx.n_items, config,
               squared=squared)
    if not squared:
        return m
    return MFParams(b=-m.b, bu=-m.bu, bi=-m.bi, p=-m.p, q=m.q)


@dataclass(frozen=True)
class OOFMF:
    """The whole-train model and one per fold; ``for_rows`` picks, per row, the model
    that never saw it (its fold's) or the whole-train one (rows outside train)."""

    full: MFParams
    per_fold: tuple[MFParams, ...]

    def model_of(self, d: TaskData, rows: np.ndarray) -> np.ndarray:
        """[len(rows)] index into (per_fold..., full): the fold, or len(per_fold)."""
        f = d.fold[rows]
        return np.where(f >= 0, f, len(self.per_fold))

    def logit(self, d: TaskData, rows: np.ndarray) -> np.ndarray:
        which = self.model_of(d, rows)
        out = np.empty(len(rows), np.float64)
        for k, m in enumerate((*self.per_fold, self.full)):
            sel = which == k
            if sel.any():
                out[sel] = m.logit(d.ctx.user[rows[sel]], d.ctx.item[rows[sel]])
        return out


def oof_mf(d: TaskData, config: MFConfig = MFConfig()) -> OOFMF:
    """The task's MF on all train rows and on each fold's complement (cached per task)."""
    key = f"oof_mf:{config}"
    if key not in d.shared:
        tr = d.train
        per_fold = tuple(fit_task_mf(d, tr[d.fold[tr] != k], config) for k in range(d.folds))
        d.shared[key] = OOFMF(full=fit_task_mf(d, tr, config), per_fold=per_fold)
    out = d.shared[key]
    assert isinstance(out, OOFMF)
    return out


@dataclass
class BiasedMF:
    """Biased MF, d = 32, on the task's train labels."""

    config: MFConfig = field(default_factory=MFConfig)
    name: str = "biased_mf"
    info: str = ("train split's (user, item, rating) triples on rating data (squared loss), "
                 "(user, item, label) on the simulator (logistic loss); d = 32")
    share: bool = True
    params: MFParams | None = None
    seconds: float = 0.0

    def fit(self, d: TaskData) -> BiasedMF:
        t0 = time.perf_counter()
        if self.config.dim and self.share:
            self.params = oof_mf(d, self.config).full  # the same fit LightGBM's MF uses
        else:
            self.params = fit_task_mf(d, d.train, self.config)
        self.seconds = time.perf_counter() - t0
        return self

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        assert self.params is not None, "fit first"
        z = self.params.logit(d.ctx.user[rows], d.ctx.item[rows])
        return (1 / (1 + np.exp(-z))).astype(np.float32), None


def UserItemBias() -> BiasedMF:
    """The user + item bias model: MF with no factors (one-hot user + item logistic
    regression, L2-regularised)."""
    return BiasedMF(config=MFConfig(dim=0, loss="logistic", l2=1e-3), name="user_item_bias",
                    info="train split's (user, item, label) triples; b + b_user + b_item, "
                         "logistic loss")
