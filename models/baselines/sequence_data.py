"""Per-user sequences for the sequence baselines (SASRec, DFN), built once per dataset.

``user_windows`` cuts each user's rows (event order) into windows of at most
``length`` rows, overlapping by half: every row is *owned* by exactly one window,
the first in which it has at least ``length // 2`` earlier rows of context (or
the user's first window), so it is trained on and predicted once.
``typed_history`` gives each row its user's last ``k`` earlier rows of each
outcome (positive / skip / dislike): the three feedback sequences of DFN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.baselines.common import Context

__all__ = ["Windows", "typed_history", "user_windows"]


@dataclass(frozen=True)
class Windows:
    rows: np.ndarray  # [w, length] row index per slot, -1 padding (left-aligned)
    owned: np.ndarray  # [w, length] bool: this window predicts that slot's row


def user_windows(ctx: Context, length: int) -> Windows:
    half = max(length // 2, 1)
    rows_out: list[np.ndarray] = []
    owned_out: list[np.ndarray] = []
    for u in range(ctx.n_users):
        seq = ctx.by_user[ctx.starts[u]:ctx.starts[u + 1]]
        m = len(seq)
        start = 0
        while True:
            part = seq[start:start + length]
            slot = np.full(length, -1, np.int64)
            slot[:len(part)] = part
            own = np.zeros(length, bool)
            lo = 0 if start == 0 else half
            own[lo:len(part)] = True
            rows_out.append(slot)
            owned_out.append(own)
            if start + length >= m:
                break
            start += length - half
    if not rows_out:
        return Windows(np.zeros((0, length), np.int64), np.zeros((0, length), bool))
    return Windows(np.stack(rows_out), np.stack(owned_out))


def typed_history(ctx: Context, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    """[len(rows), 3, k] int64: per outcome, the row's last ``k`` earlier rows of that
    outcome (most recent last, right-aligned), -1 pads."""
    rows = np.arange(ctx.n) if rows is None else np.asarray(rows, np.int64)
    out = np.full((len(rows), 3, k), -1, np.int64)
    oc_seq = ctx.outcome[ctx.by_user]
    p = ctx.seq[rows]
    first = ctx.starts[ctx.user[rows]]
    for c in range(3):
        pos = np.flatnonzero(oc_seq == c)  # sequence positions with outcome c, sorted
        before = np.searchsorted(pos, p)  # how many such positions precede p (globally)
        first_c = np.searchsorted(pos, first)  # the user's first one
        idx = before[:, None] - k + np.arange(k)[None, :]
        ok = idx >= first_c[:, None]
        out[:, c, :] = np.where(ok, ctx.by_user[pos[np.where(ok, idx, 0)]] if len(pos)
                                else -1, -1)
    return out
