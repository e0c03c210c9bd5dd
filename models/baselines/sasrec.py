"""A small SASRec (Kang & McAuley, 2018): causal self-attention over the user's item sequence.

The architecture is SASRec's: item embeddings plus learned absolute positions,
``blocks`` pre-norm self-attention blocks with a causal mask (a position attends
only to itself and earlier positions), point-wise feed-forward, dropout, and the
prediction for the next item is the dot product of the sequence state with that
item's (shared) embedding, plus an item bias. Two changes for this task: SASRec
predicts *which* item comes next, here the item is given and its outcome is
predicted (binary cross-entropy on the task label), so each earlier item's token
also carries its outcome (positive / skip / dislike, and its watch ratio or
rating); and an item's embedding adds a projection of its content vector (the
Video Agent's topics, elements, reason prior), the metadata ENF has too.

Causality: the state that scores row t is computed from the tokens of the
user's rows before t only (inputs are shifted by one; a begin token starts each
user). Sequences are windows of ``length`` rows overlapping by half
(``sequence_data.user_windows``); each row is predicted once, with at least
half a window of context. Information: the user's earlier rows (items,
outcomes), item ids and content vectors; trained on train-split rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.baselines.common import TaskData
from models.baselines.sequence_data import Windows, user_windows
from models.baselines.torch_fit import FitConfig, fit_torch

__all__ = ["SASRec", "SASRecConfig"]


@dataclass(frozen=True)
class SASRecConfig:
    dim: int = 64
    blocks: int = 2
    heads: int = 1
    length: int = 50
    dropout: float = 0.2
    batch: int = 128
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=20, patience=3, lr=3e-3))


def _net(n_items: int, content_dim: int, c: SASRecConfig) -> Any:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = c.dim
            self.item = nn.Embedding(n_items + 1, d, padding_idx=n_items)  # last: begin token
            self.content = nn.Linear(content_dim, d, bias=False)
            self.outcome = nn.Embedding(4, d)  # 3 outcomes + "none" (the begin token)
            self.value = nn.Linear(1, d, bias=False)
            self.pos = nn.Embedding(c.length, d)
            self.bias = nn.Embedding(n_items + 1, 1)
            nn.init.zeros_(self.bias.weight)
            nn.init.normal_(self.item.weight, std=0.05)
            layer = nn.TransformerEncoderLayer(d, c.heads, dim_feedforward=d,
                                               dropout=c.dropout, batch_first=True,
                                               norm_first=True, activation="relu")
            self.blocks = nn.TransformerEncoder(layer, c.blocks, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.drop = nn.Dropout(c.dropout)
            mask = torch.triu(torch.full((c.length, c.length), float("-inf")), diagonal=1)
            self.register_buffer("mask", mask)

        def embed(self, item: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
            return self.item(item) + self.content(content)

        def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
            length = x["in_item"].shape[1]
            tok = (self.embed(x["in_item"], x["in_content"]) + self.outcome(x["in_outcome"])
                   + self.value(x["in_value"].unsqueeze(-1)))
            tok = tok + self.pos.weight[:length].unsqueeze(0)
            mask: torch.Tensor = self.mask  # type: ignore[assignment]
            h = self.blocks(self.drop(tok), mask=mask[:length, :length], is_causal=True)
            h = self.norm(h)
            cand = self.embed(x["cand_item"], x["cand_content"])
            return (h * cand).sum(-1) + self.bias(x["cand_item"]).squeeze(-1)

    return Net()


@dataclass
class SASRec:
    config: SASRecConfig = field(default_factory=SASRecConfig)
    name: str = "sasrec"
    info: str = ("the user's earlier rows (item ids, outcomes, watch ratio / rating) and "
                 "item content vectors; causal self-attention, 2 blocks, d = 64, 50 rows")
    valid_rows: np.ndarray | None = None
    net: Any = None
    windows: Windows | None = None
    stats: dict[str, float] = field(default_factory=dict)
    _pred: np.ndarray | None = None

    def _inputs(self, d: TaskData, w: np.ndarray) -> dict[str, Any]:
        """Tensors for windows ``w`` (indices into self.windows)."""
        import torch

        assert self.windows is not None
        ctx = d.ctx
        rows = self.windows.rows[w]
        real = rows >= 0
        r = np.maximum(rows, 0)
        # the input at a slot is the user's previous row (begin token for the first row)
        prev_seq = ctx.seq[r] - 1
        has_prev = real & (ctx.rank[r] > 0)
        prev = np.where(has_prev, ctx.by_user[np.maximum(prev_seq, 0)], -1)
        p = np.maximum(prev, 0)
        content = d.f.videos[:, :-2]
        begin = ctx.n_items
        return {
            "in_item": torch.as_tensor(np.where(prev >= 0, ctx.item[p], begin)),
            "in_content": torch.as_tensor(np.where((prev >= 0)[..., None], content[ctx.item[p]],
                                                   0.0), dtype=torch.float32),
            "in_outcome": torch.as_tensor(np.where(prev >= 0, ctx.outcome[p], 3)),
            "in_value": torch.as_tensor(np.where(prev >= 0, ctx.value[p], 0.0),
                                        dtype=torch.float32),
            "cand_item": torch.as_tensor(np.where(real, ctx.item[r], begin)),
            "cand_content": torch.as_tensor(np.where(real[..., None], content[ctx.item[r]], 0.0),
                                            dtype=torch.float32),
        }

    def _predict_all(self, d: TaskData) -> np.ndarray:
        import torch

        assert self.windows is not None and self.net is not None
        out = np.full(d.ctx.n, np.nan, np.float32)
        with torch.no_grad():
            for s in range(0, len(self.windows.rows), 512):
                w = np.arange(s, min(s + 512, len(self.windows.rows)))
                z = torch.sigmoid(self.net(self._inputs(d, w))).numpy()
                rows, own = self.windows.rows[w], self.windows.owned[w]
                out[rows[own]] = z[own]
        return out

    def fit(self, d: TaskData) -> SASRec:
        import torch

        c = self.config
        self.windows = user_windows(d.ctx, c.length)
        torch.manual_seed(c.fit.seed)  # the initial weights too: one seed, one result
        self.net = _net(d.ctx.n_items, d.f.videos.shape[1] - 2, c)
        is_train = np.zeros(d.ctx.n, bool)
        is_train[d.train] = True
        rows, own = self.windows.rows, self.windows.owned
        target = own & is_train[np.maximum(rows, 0)] & (rows >= 0)
        useful = np.flatnonzero(target.any(1))
        label = d.label.astype(np.float32)

        def batches(rng: np.random.Generator) -> Iterator[tuple[Any, Any, Any]]:
            order = rng.permutation(useful)
            for s in range(0, len(order), c.batch):
                w = order[s:s + c.batch]
                y = label[np.maximum(rows[w], 0)]
                yield (self._inputs(d, w), torch.as_tensor(y),
                       torch.as_tensor(target[w].astype(np.float32)))

        valid = self.valid_rows

        def score_valid() -> tuple[np.ndarray, np.ndarray]:
            assert valid is not None
            p = self._predict_all(d)
            return d.label[valid], p[valid]

        self.stats = fit_torch(self.net, batches, score_valid if valid is not None else None,
                               c.fit)
        self._pred = self._predict_all(d)
        return self

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        assert self._pred is not None, "fit first"
        return self._pred[rows], None
