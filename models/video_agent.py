"""The Video Agent on torch: the pretrained encoders as torch modules.

Same reading as the worker's ``models.video_runtime.VideoAnalyzer`` (it *is*
that class, given torch-backed encoders), for training, evaluation and the
``enf agents video`` command, where torch is installed anyway and the ONNX
cache may not exist yet. ``TorchVideoAgent().analyze_path(path, title)`` is the
one-call form.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
import torch

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from models.encoder_export import FrameFeatures, MiniLMEmbedding, load_efficientnet, load_minilm
from models.encoders import MAX_TITLE_TOKENS, E5TitleEncoder, ImageHead, TitleEncoder
from models.video_runtime import AnalyzerConfig, VideoAnalyzer

__all__ = ["TorchFrameEncoder", "TorchMiniLM", "TorchVideoAgent"]


class TorchFrameEncoder:
    """EfficientNet-Lite0 features in torch (same graph as the ONNX export)."""

    name = "efficientnet-lite0"
    dim = 1280

    def __init__(self) -> None:
        self.net = load_efficientnet()
        self.module = FrameFeatures(self.net).eval()
        self._lock = threading.Lock()

    def head(self) -> ImageHead:
        fc: Any = self.net._fc
        return ImageHead(fc.weight.detach().numpy().astype(np.float32),
                         fc.bias.detach().numpy().astype(np.float32))

    @torch.no_grad()
    def encode(self, frames: np.ndarray) -> np.ndarray:
        with self._lock:
            return self.module(torch.from_numpy(np.ascontiguousarray(frames))).numpy()


class TorchMiniLM:
    """all-MiniLM-L6-v2 in torch (transformers, offline), sentence-transformers pooling."""

    name = "minilm"
    dim = 384

    def __init__(self) -> None:
        from tokenizers import Tokenizer

        bert, path = load_minilm()
        self.module = MiniLMEmbedding(bert).eval()
        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TITLE_TOKENS)
        self.tokenizer.enable_padding()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        enc = self.tokenizer.encode_batch([t or " " for t in texts])
        ids = torch.tensor([e.ids for e in enc])
        mask = torch.tensor([e.attention_mask for e in enc])
        return self.module(ids, mask).numpy()


class TorchVideoAgent(VideoAnalyzer):
    """VideoAnalyzer whose encoders run in torch; ``title_encoder``: minilm | e5 | none."""

    def __init__(self, title_encoder: str = "minilm", *,
                 config: AnalyzerConfig | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        frames = TorchFrameEncoder()
        title: TitleEncoder | None = None
        if title_encoder == "minilm":
            title = TorchMiniLM()
        elif title_encoder == "e5":
            title = E5TitleEncoder()
        elif title_encoder != "none":
            raise ValueError(f"unknown title encoder {title_encoder!r}")
        super().__init__(config or AnalyzerConfig(title_encoder=title_encoder),
                         frame_encoder=frames, head=frames.head(), title_encoder=title)

    def analyze_path(self, uri: str, title: str = "", *, video_id: str = "",
                     tags: tuple[str, ...] = ()) -> VideoAnalysis:
        vid = video_id or os.path.splitext(os.path.basename(uri))[0] or "video"
        return self.analyze(VideoEvent("cli", vid, title, 0, 0, tags, uri))
