"""The other two students: the video head and the portrait update step.

* ``VideoHeadNet`` — encoder outputs of one video (mean and max of the 16 frame
  features, the title embedding) -> element probabilities and the topic mix.
  Trained to agree with the Video Agent (its elements and topics as soft
  targets) and, where a dataset has element labels (the simulator's truth),
  on those; so it can be better than the agent it learns from. Lets a GPU
  deployment analyse a batch of videos in one call instead of per-video rules.
* ``PortraitStepNet`` — (portrait, video, event) -> next portrait, a residual
  MLP that imitates ``enf_core.portrait.apply_event``: the batched, GPU-ready
  form of the Profile Agent's update. The exact rule stays the reference.

Both export to ONNX like the scorer (checked within 1e-5 of torch).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from enf_core.features import PORTRAIT_DIM, VIDEO_DIM
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

__all__ = [
    "EVENT_DIM",
    "PortraitStepNet",
    "StudentConfig",
    "VideoHeadNet",
    "event_features",
    "export_student",
    "train_portrait_step",
    "train_video_head",
]

_N_E, _N_T, _N_R = len(ELEMENTS), len(TOPICS), len(REASONS)
EVENT_DIM = 3 + _N_R  # watch ratio, quick swipe, dislike, stated reason one-hot


@dataclass(frozen=True)
class StudentConfig:
    """Training settings shared by the two students (documented defaults)."""

    hidden: int = 128
    epochs: int = 6
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4
    truth_weight: float = 1.0  # weight of element labels (when present) beside the agent's
    seed: int = 0


class VideoHeadNet(nn.Module):
    """[mean frame features | max frame features | title embedding] -> (elements, topics)."""

    def __init__(self, frame_dim: int = 1280, title_dim: int = 384, hidden: int = 128) -> None:
        super().__init__()
        self.frame_dim, self.title_dim = frame_dim, title_dim
        dim = 2 * frame_dim + title_dim
        self.register_buffer("in_mean", torch.zeros(dim))
        self.register_buffer("in_std", torch.ones(dim))
        self.net = nn.Sequential(nn.Linear(2 * frame_dim + title_dim, hidden), nn.ReLU(),
                                 nn.Linear(hidden, hidden), nn.ReLU())
        self.elements = nn.Linear(hidden, _N_E)
        self.topics = nn.Linear(hidden, _N_T)

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.net((x - self.in_mean) / self.in_std)  # type: ignore[operator]
        return self.elements(h), self.topics(h)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e, t = self.logits(x)
        return torch.sigmoid(e), torch.softmax(t, dim=-1)


class PortraitStepNet(nn.Module):
    """(portrait [B, 34], video [B, 33], event [B, 7]) -> next portrait [B, 34]."""

    def __init__(self, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(PORTRAIT_DIM + VIDEO_DIM + EVENT_DIM, hidden),
                                 nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, PORTRAIT_DIM))
        # one event moves a portrait by ~1e-2: learn the step in units of its std
        self.register_buffer("step_scale", torch.ones(PORTRAIT_DIM))

    def forward(self, portrait: torch.Tensor, video: torch.Tensor,
                event: torch.Tensor) -> torch.Tensor:
        return portrait + self.step_scale * self.net(torch.cat([portrait, video, event], dim=1))


def event_features(watch_ratio: np.ndarray, dislike: np.ndarray, reason: np.ndarray,
                   quick_ratio: float = 0.3) -> np.ndarray:
    """[n, EVENT_DIM]: what happened in a row, as the portrait step sees it."""
    n = len(watch_ratio)
    known = ~np.isnan(watch_ratio)
    ratio = np.where(known, np.clip(watch_ratio, 0.0, 1.0), 0.5)
    out = np.zeros((n, EVENT_DIM), np.float32)
    out[:, 0] = ratio
    out[:, 1] = known & (ratio < quick_ratio)
    out[:, 2] = dislike
    stated = (reason >= 0) & dislike
    out[np.nonzero(stated)[0], 3 + reason[stated]] = 1.0
    return out


def _batches(n: int, size: int, gen: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=gen)
    return [perm[i:i + size] for i in range(0, n, size)]


def train_video_head(x: np.ndarray, agent_elements: np.ndarray, agent_topics: np.ndarray,
                     truth_elements: np.ndarray | None = None,
                     config: StudentConfig | None = None) -> tuple[VideoHeadNet, float]:
    """Fit the video head; returns it (eval mode) and the wall time."""
    c = config or StudentConfig()
    torch.manual_seed(c.seed)
    gen = torch.Generator().manual_seed(c.seed)
    model = VideoHeadNet(frame_dim=(x.shape[1] - 384) // 2, hidden=c.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    X = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    with torch.no_grad():
        model.in_mean.copy_(X.mean(0))  # type: ignore[operator]
        model.in_std.copy_(X.std(0) + 1e-3)  # type: ignore[operator]
    AE = torch.from_numpy(np.ascontiguousarray(agent_elements, np.float32))
    AT = torch.from_numpy(np.ascontiguousarray(agent_topics, np.float32))
    TE = None if truth_elements is None else torch.from_numpy(
        np.ascontiguousarray(truth_elements, np.float32))
    bce = nn.BCEWithLogitsLoss()
    t0 = time.perf_counter()
    for _ in range(c.epochs):
        model.train()
        for b in _batches(len(X), c.batch_size, gen):
            e, t = model.logits(X[b])
            loss = bce(e, AE[b]) - (AT[b] * torch.log_softmax(t, -1)).sum(1).mean()
            if TE is not None:
                loss = loss + c.truth_weight * bce(e, TE[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval(), time.perf_counter() - t0


def train_portrait_step(before: np.ndarray, video: np.ndarray, event: np.ndarray,
                        after: np.ndarray, config: StudentConfig | None = None
                        ) -> tuple[PortraitStepNet, float]:
    c = config or StudentConfig()
    torch.manual_seed(c.seed)
    gen = torch.Generator().manual_seed(c.seed)
    model = PortraitStepNet(c.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=c.weight_decay)
    P, V, E, A = (torch.from_numpy(np.ascontiguousarray(a, np.float32))
                  for a in (before, video, event, after))
    with torch.no_grad():
        model.step_scale.copy_((A - P).std(0) + 1e-6)  # type: ignore[operator]
    t0 = time.perf_counter()
    for _ in range(c.epochs):
        model.train()
        for b in _batches(len(P), c.batch_size, gen):
            # in units of each coordinate's step std: raw steps are ~1e-2 and would vanish
            scale = model.step_scale
            loss = nn.functional.mse_loss((model(P[b], V[b], E[b]) - P[b]) / scale,  # type: ignore[operator]
                                          (A[b] - P[b]) / scale)  # type: ignore[operator]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval(), time.perf_counter() - t0


def export_student(model: nn.Module, path: Path, example: tuple[torch.Tensor, ...],
                   inputs: list[str], outputs: list[str], *, opset: int = 17) -> dict[str, Any]:
    """Export with a dynamic batch axis and check onnxruntime against torch (1e-5)."""
    import onnxruntime as ort

    model.eval()
    tmp = path.with_suffix(".onnx.tmp")
    dynamic = {name: {0: "batch"} for name in [*inputs, *outputs]}
    torch.onnx.export(model, example, str(tmp), dynamo=False, opset_version=opset,
                      input_names=inputs, output_names=outputs, dynamic_axes=dynamic)
    gen = torch.Generator().manual_seed(0)
    probe = tuple(torch.rand((64, *e.shape[1:]), generator=gen) for e in example)
    with torch.no_grad():
        ref = model(*probe)
    ref_t = ref if isinstance(ref, tuple) else (ref,)
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: p.numpy() for n, p in zip(inputs, probe, strict=True)})
    diff = max(float(np.abs(g - r.numpy()).max()) for g, r in zip(got, ref_t, strict=True))
    if diff > 1e-5:
        raise RuntimeError(f"{path.name}: ONNX differs from torch by {diff:.2e}")
    tmp.replace(path)
    return {"inputs": inputs, "outputs": outputs, "opset": opset, "parity_max_abs_diff": diff}


def config_dict(config: StudentConfig) -> dict[str, Any]:
    return asdict(config)
