"""A DFN-style feedback network (Xie et al., 2020, "Deep Feedback Network for Recommendation").

DFN reads a user's *separate* feedback sequences — clicks, unclicks (skips) and
dislikes — and lets the candidate attend to each: an internal feedback
interaction (a self-attention layer over the click sequence, then attention from
the candidate) and external interactions (candidate attention over the skip and
dislike sequences), combined with a wide part. Here: per row, its user's last
``k`` earlier rows of each outcome (positive / skip / dislike,
``sequence_data.typed_history``); item embedding = id embedding + a projection of
the content vector; per sequence the candidate's scaled dot-product attention
pools it (the positive sequence first through one self-attention layer); the
pooled vectors, the candidate, their products and the sequences' lengths go
through an MLP, plus an item bias (the wide part). Information: the user's
earlier rows split by outcome, item ids and content vectors; trained on the
task's train rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.baselines.common import TaskData
from models.baselines.sequence_data import typed_history
from models.baselines.torch_fit import FitConfig, fit_torch

__all__ = ["DFN", "DFNConfig"]


@dataclass(frozen=True)
class DFNConfig:
    dim: int = 32
    k: int = 20  # last k earlier rows per outcome
    hidden: int = 64
    dropout: float = 0.1
    batch: int = 512
    fit: FitConfig = field(default_factory=lambda: FitConfig(epochs=15, patience=3, lr=2e-3))


def _net(n_items: int, content_dim: int, c: DFNConfig) -> Any:
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            d = c.dim
            self.item = nn.Embedding(n_items + 1, d, padding_idx=n_items)
            nn.init.normal_(self.item.weight, std=0.05)
            self.content = nn.Linear(content_dim, d, bias=False)
            self.value = nn.Linear(1, d, bias=False)
            self.self_att = nn.TransformerEncoderLayer(d, 1, dim_feedforward=d,
                                                       dropout=c.dropout, batch_first=True,
                                                       norm_first=True)
            self.query = nn.ModuleList(nn.Linear(d, d, bias=False) for _ in range(3))
            self.mlp = nn.Sequential(nn.Linear(d * 7 + 3, c.hidden), nn.ReLU(),
                                     nn.Dropout(c.dropout), nn.Linear(c.hidden, 1))
            self.bias = nn.Embedding(n_items + 1, 1)
            nn.init.zeros_(self.bias.weight)

        def embed(self, item: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
            return self.item(item) + self.content(content)

        def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
            cand = self.embed(x["cand_item"], x["cand_content"])  # [B, d]
            seq = self.embed(x["seq_item"], x["seq_content"])  # [B, 3, k, d]
            seq = seq + self.value(x["seq_value"].unsqueeze(-1))
            ok = x["seq_ok"]  # [B, 3, k] bool
            pooled = []
            for t in range(3):
                s = seq[:, t]
                has = ok[:, t].any(1)
                if t == 0:  # internal interaction among the positive feedback
                    pad = ~ok[:, t] & has.unsqueeze(1)  # all-pad rows: no mask (ignored below)
                    s = self.self_att(s, src_key_padding_mask=pad)
                q = self.query[t](cand).unsqueeze(1)
                att = (q * s).sum(-1) / (c.dim ** 0.5)
                att = att.masked_fill(~ok[:, t], -1e9)
                w = torch.softmax(att, 1) * has.unsqueeze(1).float()
                pooled.append((w.unsqueeze(-1) * s).sum(1))
            counts = torch.log1p(ok.float().sum(-1))  # [B, 3]
            z = torch.cat([cand, *pooled, *(p * cand for p in pooled), counts], 1)
            return self.mlp(z).squeeze(-1) + self.bias(x["cand_item"]).squeeze(-1)

    return Net()


@dataclass
class DFN:
    config: DFNConfig = field(default_factory=DFNConfig)
    name: str = "dfn"
    info: str = ("the user's earlier rows as three sequences (positive / skip / dislike, "
                 "last 20 each), item ids and content vectors; candidate attention per "
                 "sequence, MLP + item bias")
    valid_rows: np.ndarray | None = None
    net: Any = None
    stats: dict[str, float] = field(default_factory=dict)
    _hist: np.ndarray | None = None

    def _inputs(self, d: TaskData, rows: np.ndarray) -> dict[str, Any]:
        import torch

        assert self._hist is not None
        ctx = d.ctx
        h = self._hist[rows]  # [B, 3, k]
        ok = h >= 0
        hi = np.maximum(h, 0)
        content = d.f.videos[:, :-2]
        pad = ctx.n_items
        return {
            "cand_item": torch.as_tensor(ctx.item[rows]),
            "cand_content": torch.as_tensor(content[ctx.item[rows]], dtype=torch.float32),
            "seq_item": torch.as_tensor(np.where(ok, ctx.item[hi], pad)),
            "seq_content": torch.as_tensor(np.where(ok[..., None], content[ctx.item[hi]], 0.0),
                                           dtype=torch.float32),
            "seq_value": torch.as_tensor(np.where(ok, ctx.value[hi], 0.0), dtype=torch.float32),
            "seq_ok": torch.as_tensor(ok),
        }

    def _score(self, d: TaskData, rows: np.ndarray) -> np.ndarray:
        import torch

        out = np.empty(len(rows), np.float32)
        with torch.no_grad():
            for s in range(0, len(rows), 4096):
                r = rows[s:s + 4096]
                out[s:s + len(r)] = torch.sigmoid(self.net(self._inputs(d, r))).numpy()
        return out

    def fit(self, d: TaskData) -> DFN:
        import torch

        c = self.config
        self._hist = typed_history(d.ctx, c.k)
        torch.manual_seed(c.fit.seed)  # the initial weights too: one seed, one result
        self.net = _net(d.ctx.n_items, d.f.videos.shape[1] - 2, c)
        train = d.train
        label = d.label.astype(np.float32)

        def batches(rng: np.random.Generator) -> Iterator[tuple[Any, Any, Any]]:
            order = rng.permutation(train)
            for s in range(0, len(order), c.batch):
                r = order[s:s + c.batch]
                yield (self._inputs(d, r), torch.as_tensor(label[r]),
                       torch.ones(len(r)))

        valid = self.valid_rows

        def score_valid() -> tuple[np.ndarray, np.ndarray]:
            assert valid is not None
            return d.label[valid], self._score(d, valid)

        self.stats = fit_torch(self.net, batches, score_valid if valid is not None else None,
                               c.fit)
        return self

    def predict(self, d: TaskData, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        assert self.net is not None, "fit first"
        return self._score(d, rows), None
