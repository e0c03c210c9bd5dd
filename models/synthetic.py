"""A quick synthetic sample of (portrait, video) vectors with negative-feedback labels.

Used to build the default scorer shipped in ``models/default`` (so a fresh clone
scores sensibly before anyone trains on a dataset) and by tests that need a
trained model in seconds. The label process follows the paper's four dimensions:
a user reacts badly when the video carries elements they are sensitive to
(visual tolerance, values), when its reasons clash with their tolerance, when a
quick swiper meets a slow plot (plot appeal), or when it misses their interests
(interest match). The reason is the dimension that contributed most.

The full simulator with users, histories and Kafka-shaped logs lives in
``enf_core.data``; this module only needs numpy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from enf_core.features import PORTRAIT_DIM, PORTRAIT_SLICES, VIDEO_DIM, VIDEO_SLICES
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS, reason_index

__all__ = ["SyntheticConfig", "SyntheticSample", "synthetic_sample"]

_N_T, _N_E, _N_R = len(TOPICS), len(ELEMENTS), len(REASONS)
_ER = np.zeros((_N_E, _N_R), np.float32)
for _i, _name in enumerate(ELEMENTS):
    _ER[_i, reason_index(ELEMENT_REASON[_name])] = 1.0
_BORING = reason_index("boring")


@dataclass(frozen=True)
class SyntheticConfig:
    """Knobs of the label process (defaults give ~30% negatives, like quick swipes)."""

    n: int = 60_000
    seed: int = 0
    bias: float = -3.4  # base logit of a negative reaction
    w_exposure: float = 3.5  # per unit of sensitivity × element score
    w_intolerance: float = 2.0  # per unit of (1 − tolerance) × reason prior
    w_impatience: float = 3.0  # quick-swipe rate × (1 − plot appeal)
    w_interest: float = 4.0  # per unit of interest match above / below 0.5
    noise: float = 0.6  # logistic noise scale: keeps the task from being trivial
    element_rate: float = 0.12  # chance that a video carries a given element
    dislike_cut: float = 3.0  # strongest reason contribution (+ noise) that makes a dislike


@dataclass(frozen=True)
class SyntheticSample:
    portraits: np.ndarray  # [n, PORTRAIT_DIM] float32
    videos: np.ndarray  # [n, VIDEO_DIM] float32
    negative: np.ndarray  # [n] int64 0/1
    reason: np.ndarray  # [n] int64 index into REASONS, -1 for positives
    dislike: np.ndarray  # [n] int64 0/1: a negative strong enough to be disliked (~7 %)


def _portraits(rng: np.random.Generator, n: int) -> np.ndarray:
    p = np.zeros((n, PORTRAIT_DIM), np.float32)
    interests = rng.beta(2.0, 3.0, (n, _N_T))
    liked = rng.integers(0, _N_T, (n, 3))
    np.put_along_axis(interests, liked, rng.uniform(0.6, 1.0, (n, 3)), axis=1)
    sens = rng.beta(1.5, 7.0, (n, _N_E))
    n_sens = rng.integers(0, 4, n)
    for k in range(3):
        rows = np.nonzero(n_sens > k)[0]
        cols = rng.integers(0, _N_E, rows.size)
        sens[rows, cols] = rng.uniform(0.5, 1.0, rows.size)
    tol = rng.beta(5.0, 2.0, (n, _N_R))
    # a user sensitive to an element is usually less tolerant of its reason
    tol = np.clip(tol - 0.5 * np.clip(sens @ _ER - 0.3, 0, None), 0.0, 1.0)
    p[:, PORTRAIT_SLICES["interests"]] = interests
    p[:, PORTRAIT_SLICES["element_sensitivity"]] = sens
    p[:, PORTRAIT_SLICES["reason_tolerance"]] = tol
    p[:, PORTRAIT_SLICES["rates"]] = np.stack(
        [rng.beta(2.0, 5.0, n), rng.beta(1.0, 60.0, n), rng.uniform(0.0, 1.0, n)], axis=1)
    return p


def _videos(rng: np.random.Generator, n: int, element_rate: float) -> np.ndarray:
    v = np.zeros((n, VIDEO_DIM), np.float32)
    topics = rng.dirichlet(np.full(_N_T, 0.3), n)
    present = rng.random((n, _N_E)) < element_rate
    elements = np.where(present, rng.uniform(0.35, 1.0, (n, _N_E)), rng.uniform(0, 0.1, (n, _N_E)))
    plot = rng.beta(2.5, 2.0, n)
    prior = elements @ _ER + 0.05
    prior[:, _BORING] += 0.6 * (1.0 - plot)
    v[:, VIDEO_SLICES["topics"]] = topics
    v[:, VIDEO_SLICES["elements"]] = elements
    v[:, VIDEO_SLICES["reasons"]] = prior / prior.sum(1, keepdims=True)
    v[:, VIDEO_SLICES["meta"]] = np.stack([plot, rng.uniform(0.1, 1.0, n)], axis=1)
    return v


def synthetic_sample(config: SyntheticConfig | None = None) -> SyntheticSample:
    """Draw ``config.n`` independent (portrait, video) pairs and their labels."""
    c = config or SyntheticConfig()
    rng = np.random.default_rng(c.seed)
    p, v = _portraits(rng, c.n), _videos(rng, c.n, c.element_rate)
    interests = p[:, PORTRAIT_SLICES["interests"]]
    topics = v[:, VIDEO_SLICES["topics"]]
    exposure = (p[:, PORTRAIT_SLICES["element_sensitivity"]] * v[:, VIDEO_SLICES["elements"]]) @ _ER
    intolerance = (1.0 - p[:, PORTRAIT_SLICES["reason_tolerance"]]) * v[:, VIDEO_SLICES["reasons"]]
    impatience = p[:, PORTRAIT_SLICES["rates"]][:, 0] * (1.0 - v[:, VIDEO_SLICES["meta"]][:, 0])
    match = (interests * topics).sum(1)
    contrib = c.w_exposure * exposure + c.w_intolerance * intolerance
    contrib[:, _BORING] += (c.w_impatience * impatience
                            + c.w_interest * np.clip(0.5 - match, 0, None))
    logit = c.bias + contrib.sum(1) - c.w_interest * np.clip(match - 0.5, 0, None)
    logit += rng.logistic(0.0, c.noise, c.n)
    negative = (logit > 0).astype(np.int64)
    noisy = contrib + rng.gumbel(0.0, 0.15, contrib.shape)
    reason = np.where(negative == 1, noisy.argmax(1), -1).astype(np.int64)
    # A dislike takes one reason that is strong on its own, not just a bad match.
    strongest = contrib.max(1) + rng.logistic(0.0, c.noise, c.n)
    dislike = ((negative == 1) & (strongest > c.dislike_cut)).astype(np.int64)
    return SyntheticSample(p, v, negative, reason, dislike)
