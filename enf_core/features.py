"""Vector layouts of the scorer's two inputs: a portrait and a video.

The scorer graph (models/) takes ``portrait`` [B, PORTRAIT_DIM] and ``video``
[B, VIDEO_DIM] and computes the crosses itself, so that a GPU deployment can
keep every video's vector resident on the device and send only portraits and
indices. Layout changes bump ``FEATURE_LAYOUT_VERSION``; the model manifest
records it, and the runtime refuses a model built for another layout.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from enf_core.latent import (
    HISTORY_RATES,
    LATENT_DIM,
    USER_LATENT_DIM,
    confidence,
)
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS

if TYPE_CHECKING:
    from enf_core.analysis import VideoAnalysis
    from enf_core.portrait import Portrait

__all__ = [
    "FEATURE_LAYOUT_VERSION",
    "PORTRAIT_DIM",
    "PORTRAIT_SLICES",
    "VIDEO_DIM",
    "VIDEO_SLICES",
    "portrait_vector",
    "video_vector",
]

# 1: traits only (34 / 33). 2: + latent taste, recent centroids and history rates
# in the portrait (89), + latent [factors | bias] and its source in the video (51).
FEATURE_LAYOUT_VERSION = 2
_N_T, _N_E, _N_R = len(TOPICS), len(ELEMENTS), len(REASONS)


def _slices(*parts: tuple[str, int]) -> dict[str, slice]:
    out, start = {}, 0
    for name, width in parts:
        out[name] = slice(start, start + width)
        start += width
    return out


PORTRAIT_SLICES = _slices(("interests", _N_T), ("element_sensitivity", _N_E),
                          ("reason_tolerance", _N_R), ("rates", 3), ("latent", USER_LATENT_DIM),
                          ("recent_negative", LATENT_DIM), ("recent_positive", LATENT_DIM),
                          ("history", HISTORY_RATES + 2))
VIDEO_SLICES = _slices(("topics", _N_T), ("elements", _N_E), ("reasons", _N_R), ("meta", 2),
                       ("latent", USER_LATENT_DIM), ("latent_known", 1))
PORTRAIT_DIM = PORTRAIT_SLICES["history"].stop
VIDEO_DIM = VIDEO_SLICES["latent_known"].stop
_LATENT_KNOWN = {"learned": 1.0, "content": 0.5}


def portrait_vector(p: Portrait) -> np.ndarray:
    """interests | element sensitivity | reason tolerance | quick-swipe rate,
    dislike rate, experience (log1p watches / 10, capped at 1) | latent taste |
    recent negative centroid | recent positive centroid | recency-weighted
    quick-swipe, dislike, watch-ratio and full-watch rates of the history, the
    latent's confidence and the user's dislikes so far (log1p / 3, capped at 1: a
    user who pressed dislike before presses it again)."""
    # One conversion of the concatenated lists (the slices are consecutive, in
    # this order): a third of the cost of filling the slices, per user written.
    v = np.array([*p.interests, *p.element_sensitivity, *p.reason_tolerance,
                  p.quick_swipe_rate, p.dislike_rate, min(math.log1p(p.n_watches) / 10.0, 1.0),
                  *p.latent, *p.recent_negative, *p.recent_positive, *p.recent_rates,
                  confidence(p.n_latent), min(math.log1p(p.n_dislikes) / 3.0, 1.0)],
                 np.float32)
    if v.shape[0] != PORTRAIT_DIM:
        raise ValueError(f"portrait vector has {v.shape[0]} values, not {PORTRAIT_DIM}")
    return v


def video_vector(a: VideoAnalysis) -> np.ndarray:
    """topics | elements | reason prior | plot appeal, duration (minutes, capped at 5) |
    latent [factors | bias] (zeros when unknown) | 1 learned, 0.5 from content, 0 none."""
    v = np.empty(VIDEO_DIM, np.float32)
    v[VIDEO_SLICES["topics"]] = a.topics
    v[VIDEO_SLICES["elements"]] = a.elements
    v[VIDEO_SLICES["reasons"]] = a.reasons
    v[VIDEO_SLICES["meta"]] = (a.plot_appeal, min(a.duration_ms / 60_000.0, 5.0))
    if len(a.latent) == USER_LATENT_DIM:
        v[VIDEO_SLICES["latent"]] = a.latent
        v[VIDEO_SLICES["latent_known"]] = _LATENT_KNOWN.get(a.latent_source, 0.5)
    else:
        v[VIDEO_SLICES["latent"]] = 0.0
        v[VIDEO_SLICES["latent_known"]] = 0.0
    return v
