"""Causal features of a row from its user's earlier rows: rates, recency, item-kNN.

Everything here reads only the user's strictly earlier rows (``earlier_rows``),
so it is the information ENF's portrait has at the row, given to a learner in
raw form: counts and outcome rates (all, last 5, exponentially recency-weighted),
the last outcome, the mean watch ratio / rating, and item-kNN over the earlier
items — similarity-weighted outcome means and the largest similarity to an
earlier disliked / skipped / liked item, in a given item space (MF item factors,
out of fold on train rows, and the content vectors).
"""

from __future__ import annotations

import numpy as np

from models.baselines.common import Context, earlier_rows

__all__ = ["HISTORY_NAMES", "history_features", "knn_features", "knn_names"]

HISTORY_NAMES = (
    "hist_n", "hist_pos_rate", "hist_skip_rate", "hist_dislike_rate", "hist_neg_rate",
    "hist_value_mean", "last5_neg_rate", "last5_value_mean", "ewm_neg_rate", "ewm_value",
    "last_outcome", "last_value",
)


def history_features(ctx: Context, k: int = 50, half_life: float = 8.0) -> np.ndarray:
    """[n, len(HISTORY_NAMES)] float32 over each row's last ``k`` earlier rows (and exact
    running counts over all earlier rows for the rates)."""
    n = ctx.n
    seq_rows = ctx.by_user
    out = np.zeros((n, len(HISTORY_NAMES)), np.float32)
    # exact rates over all earlier rows: cumulative sums along each user's sequence
    cnt = ctx.rank.astype(np.float64)
    oh = np.eye(3)[ctx.outcome[seq_rows]]  # [n, 3] in sequence order
    cum = np.cumsum(oh, 0) - oh
    val = ctx.value[seq_rows]
    cumv = np.cumsum(val) - val
    start = ctx.starts[ctx.user[seq_rows]]
    base = np.where(start[:, None] > 0, np.cumsum(oh, 0)[np.maximum(start - 1, 0)], 0.0)
    basev = np.where(start > 0, np.cumsum(val)[np.maximum(start - 1, 0)], 0.0)
    rates = (cum - base)[ctx.seq]  # back to row order through each row's sequence index
    vsum = (cumv - basev)[ctx.seq]
    denom = np.maximum(cnt, 1.0)
    out[:, 0] = np.log1p(cnt)
    out[:, 1:4] = (rates + np.array([0.6, 0.3, 0.1])) / (denom + 1.0)[:, None]
    out[:, 4] = out[:, 2] + out[:, 3]
    out[:, 5] = (vsum + 0.5) / (denom + 1.0)
    # windowed and recency-weighted over the last k
    e = earlier_rows(ctx, k)
    ok = e >= 0
    neg = np.where(ok, (ctx.outcome[np.maximum(e, 0)] >= 1).astype(np.float64), 0.0)
    v = np.where(ok, ctx.value[np.maximum(e, 0)], 0.0)
    last5 = ok[:, -5:]
    n5 = last5.sum(1)
    out[:, 6] = np.where(n5 > 0, neg[:, -5:].sum(1) / np.maximum(n5, 1), np.nan)
    out[:, 7] = np.where(n5 > 0, v[:, -5:].sum(1) / np.maximum(n5, 1), np.nan)
    w = np.where(ok, 0.5 ** ((k - 1 - np.arange(k)) / half_life)[None, :], 0.0)
    ws = w.sum(1)
    out[:, 8] = np.where(ws > 0, (w * neg).sum(1) / np.maximum(ws, 1e-9), np.nan)
    out[:, 9] = np.where(ws > 0, (w * v).sum(1) / np.maximum(ws, 1e-9), np.nan)
    has = ok[:, -1]
    out[:, 10] = np.where(has, ctx.outcome[np.maximum(e[:, -1], 0)], np.nan)
    out[:, 11] = np.where(has, v[:, -1], np.nan)
    return out


def knn_names(prefix: str) -> tuple[str, ...]:
    return tuple(f"{prefix}_{s}" for s in (
        "wneg", "wdislike", "wvalue", "top5_neg", "max_sim_dislike", "max_sim_skip",
        "max_sim_pos", "mean_sim"))


def knn_features(ctx: Context, item_vectors: np.ndarray, rows: np.ndarray, *, k: int = 50
                 ) -> np.ndarray:
    """[len(rows), 8] item-kNN of each row's candidate over its user's last ``k`` earlier
    items, in the space of ``item_vectors`` [n_items, d] (cosine; rows of zeros are
    dissimilar to everything)."""
    v = item_vectors / (np.linalg.norm(item_vectors, axis=1, keepdims=True) + 1e-9)
    out = np.full((len(rows), 8), np.nan, np.float32)
    for s in range(0, len(rows), 20_000):
        r = rows[s:s + 20_000]
        e = earlier_rows(ctx, k, r)
        ok = e >= 0
        ei = ctx.item[np.maximum(e, 0)]
        sim = np.einsum("nkd,nd->nk", v[ei], v[ctx.item[r]])
        sim = np.where(ok, sim, np.nan)
        oc = ctx.outcome[np.maximum(e, 0)]
        neg = (oc >= 1).astype(np.float64)
        dis = (oc == 2).astype(np.float64)
        val = ctx.value[np.maximum(e, 0)]
        w = np.where(ok, np.maximum(sim, 0.0) ** 2, 0.0)
        ws = w.sum(1)
        has = ws > 1e-9
        o = out[s:s + len(r)]
        o[:, 0] = np.where(has, (w * neg).sum(1) / np.maximum(ws, 1e-9), np.nan)
        o[:, 1] = np.where(has, (w * dis).sum(1) / np.maximum(ws, 1e-9), np.nan)
        o[:, 2] = np.where(has, (w * val).sum(1) / np.maximum(ws, 1e-9), np.nan)
        filled = np.where(ok, sim, -np.inf)
        top = np.argsort(-filled, axis=1)[:, :5]
        top_ok = np.take_along_axis(ok, top, 1)
        nt = top_ok.sum(1)
        o[:, 3] = np.where(nt > 0, (np.take_along_axis(neg, top, 1) * top_ok).sum(1)
                           / np.maximum(nt, 1), np.nan)
        for col, mask in ((4, oc == 2), (5, oc == 1), (6, oc == 0)):
            m = np.where(ok & mask, sim, -np.inf).max(1)
            o[:, col] = np.where(np.isfinite(m), m, np.nan)
        n_ok = ok.sum(1)
        o[:, 7] = np.where(n_ok > 0, np.where(ok, sim, 0.0).sum(1) / np.maximum(n_ok, 1),
                           np.nan)
    return out
