"""What the Video Agent says about a video, in a form every other part can use.

A ``VideoAnalysis`` is stored in Redis by the video analyzer, read by the
portrait updater (to learn which topics and elements a user reacts to) and by
the scorer (as the video half of the model input). Evidence is kept beside the
scores so that an explanation can cite frames, classes and title words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

__all__ = ["ElementEvidence", "VideoAnalysis"]


@dataclass(frozen=True, slots=True)
class ElementEvidence:
    """Why an element was detected: the frames and classes, or the title words."""

    name: str
    score: float
    frames: tuple[int, ...] = ()
    classes: tuple[str, ...] = ()
    title_words: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "score": round(self.score, 4), "frames": list(self.frames),
                "classes": list(self.classes), "title_words": list(self.title_words)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ElementEvidence:
        return cls(d["name"], float(d["score"]), tuple(d.get("frames", ())),
                   tuple(d.get("classes", ())), tuple(d.get("title_words", ())))


@dataclass(frozen=True, slots=True)
class VideoAnalysis:
    """Scores over the shared vocabularies plus the evidence behind them.

    ``topics`` sums to 1 over ``TOPICS``; ``elements`` are independent
    probabilities over ``ELEMENTS``; ``reasons`` is the distribution over
    ``REASONS`` of why a viewer who reacts badly to this video would do so.
    """

    video_id: str
    topics: tuple[float, ...]
    elements: tuple[float, ...]
    reasons: tuple[float, ...]
    plot_appeal: float = 0.5
    duration_ms: int = 0
    title: str = ""
    evidence: tuple[ElementEvidence, ...] = ()
    frame_indices: tuple[int, ...] = ()
    analyzer: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    # [factors | bias] learned from the logs or predicted from the content
    # (enf_core.latent, models.latent); empty when no model knows the video.
    latent: tuple[float, ...] = ()
    latent_source: str = ""  # "learned" | "content" | "" (none)

    def __post_init__(self) -> None:
        if len(self.topics) != len(TOPICS):
            raise ValueError(f"topics must have {len(TOPICS)} entries, got {len(self.topics)}")
        if len(self.elements) != len(ELEMENTS):
            raise ValueError(f"elements must have {len(ELEMENTS)} entries, "
                             f"got {len(self.elements)}")
        if len(self.reasons) != len(REASONS):
            raise ValueError(f"reasons must have {len(REASONS)} entries, got {len(self.reasons)}")

    def element_scores(self) -> dict[str, float]:
        return dict(zip(ELEMENTS, self.elements, strict=True))

    def top_elements(self, threshold: float = 0.3) -> list[ElementEvidence]:
        """Detected elements, strongest first, with evidence when the agent gave it."""
        by_name = {e.name: e for e in self.evidence}
        found = [by_name.get(name, ElementEvidence(name, score))
                 for name, score in zip(ELEMENTS, self.elements, strict=True) if score >= threshold]
        return sorted(found, key=lambda e: -e.score)

    def to_dict(self) -> dict[str, Any]:
        return {
            "video_id": self.video_id,
            "topics": [round(x, 5) for x in self.topics],
            "elements": [round(x, 5) for x in self.elements],
            "reasons": [round(x, 5) for x in self.reasons],
            "plot_appeal": round(self.plot_appeal, 5),
            "duration_ms": self.duration_ms,
            "title": self.title,
            "evidence": [e.to_dict() for e in self.evidence],
            "frame_indices": list(self.frame_indices),
            "analyzer": self.analyzer,
            **({"latent": [round(x, 5) for x in self.latent],
                "latent_source": self.latent_source} if self.latent else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VideoAnalysis:
        return cls(
            video_id=d["video_id"],
            topics=tuple(float(x) for x in d["topics"]),
            elements=tuple(float(x) for x in d["elements"]),
            reasons=tuple(float(x) for x in d["reasons"]),
            plot_appeal=float(d.get("plot_appeal", 0.5)),
            duration_ms=int(d.get("duration_ms", 0)),
            title=d.get("title", ""),
            evidence=tuple(ElementEvidence.from_dict(e) for e in d.get("evidence", ())),
            frame_indices=tuple(d.get("frame_indices", ())),
            analyzer=d.get("analyzer", ""),
            latent=tuple(float(x) for x in d.get("latent", ())),
            latent_source=d.get("latent_source", ""),
        )

    @classmethod
    def neutral(cls, video_id: str, *, duration_ms: int = 0, title: str = "") -> VideoAnalysis:
        """An analysis that knows nothing: uniform topics, no elements."""
        n_t, n_r = len(TOPICS), len(REASONS)
        return cls(video_id, (1.0 / n_t,) * n_t, (0.0,) * len(ELEMENTS), (1.0 / n_r,) * n_r,
                   duration_ms=duration_ms, title=title, analyzer="neutral")

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.asarray(self.topics, np.float32), np.asarray(self.elements, np.float32),
                np.asarray(self.reasons, np.float32))
