"""The training loop the torch baselines share: Adam, BCE, best epoch on valid AUC."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from models.metrics import auc

__all__ = ["FitConfig", "fit_torch"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 12
    patience: int = 3  # epochs without a better valid AUC before stopping
    lr: float = 2e-3
    weight_decay: float = 1e-5
    max_seconds: float = 240.0  # wall-clock cap on one fit (a loaded machine)
    threads: int = 1  # small nets: more threads only spin on a shared 2-core machine
    seed: int = 0


def fit_torch(model: Any, batches: Callable[[np.random.Generator], Iterator[tuple[Any, Any, Any]]],
              score_valid: Callable[[], tuple[np.ndarray, np.ndarray]] | None,
              config: FitConfig) -> dict[str, float]:
    """``batches(rng)`` yields (inputs, labels, weights) per step of one epoch; the model
    maps inputs to logits. Keeps the epoch with the best valid AUC."""
    import torch

    c = config
    if c.threads:
        torch.set_num_threads(c.threads)
    torch.manual_seed(c.seed)
    rng = np.random.default_rng(c.seed)
    opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    best, best_state, bad, epochs = -1.0, None, 0, 0
    t0 = time.perf_counter()
    for _epoch in range(c.epochs):
        model.train()
        for x, y, w in batches(rng):
            opt.zero_grad()
            logit = model(x)
            each = torch.nn.functional.binary_cross_entropy_with_logits(logit, y,
                                                                        reduction="none")
            loss = (each * w).sum() / w.sum().clamp_min(1.0)
            loss.backward()
            opt.step()
        epochs += 1
        if score_valid is None:
            continue
        model.eval()
        with torch.no_grad():
            yv, pv = score_valid()
        a = auc(yv, pv)
        if a > best:
            best, best_state, bad = a, copy.deepcopy(model.state_dict()), 0
        else:
            bad += 1
        if bad >= c.patience or time.perf_counter() - t0 > c.max_seconds:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return {"epochs": epochs, "valid_auc": round(best, 4), "seconds": time.perf_counter() - t0}
