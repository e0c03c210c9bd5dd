"""The simulated users' response model: how a user reacts to a video shown at a position.

One pure function, ``respond``, is the whole outcome model of the simulator:
``enf data simulate`` uses it to generate the logged interactions, and
``enf ab`` uses it to make the same simulated users react to the feeds each
A/B arm serves. The randomness comes in as arrays (``ResponseDraws``), so the
simulator draws from its generator in its historical order (its output stays
identical for a seed) while the A/B harness draws per (user, video) from a
counter-based hash, so one user shown one video reacts alike in every arm.

The model (docs/data.md): watch ratio = sigmoid(z + logistic noise) where z adds
interest match, quality and plot appeal and subtracts the user's aversions to
the video's elements, slow plots and a position effect; a quick swipe is a
watch ratio below ``IMPLICIT_THRESHOLD``. A dislike has probability
sigmoid(intercept + dislike_gain * max reason score + vocal + after-swipe bonus);
its category is drawn from a softmax of the four reason scores with a slip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from enf_core.data.schema import IMPLICIT_THRESHOLD
from enf_core.taxonomy import ELEMENT_REASON, ELEMENTS, REASONS, TOPICS, Reason

if TYPE_CHECKING:
    from enf_core.data.simulate import SimulationConfig

__all__ = [
    "ELEMENT_REASON_IX",
    "Outcomes",
    "ResponseDraws",
    "calibrate_intercept",
    "dislike_trigger",
    "hashed_draws",
    "latent_p_negative",
    "respond",
]

N_T = len(TOPICS)
N_E = len(ELEMENTS)
N_R = len(REASONS)
SLOW = ELEMENTS.index("slow_plot")
_R = {r.value: i for i, r in enumerate(REASONS)}
BORING = _R[Reason.BORING.value]
# Reason of each element, as an index into REASONS.
ELEMENT_REASON_IX = np.array([_R[ELEMENT_REASON[e].value] for e in ELEMENTS])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _logit(p: float) -> float:
    return float(np.log(p / (1.0 - p)))


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


@dataclass(frozen=True)
class ResponseDraws:
    """The randomness of ``m`` reactions.

    ``noise``: logistic(0, noise_scale) added to z; ``replay_u`` / ``replay_factor``:
    whether and how much a full watch is replayed (uniform, uniform(1, 2.5));
    ``dislike_u``: uniform compared with P(dislike); ``category_u``: given the rows
    that disliked (in order), one uniform each for the category draw.
    """

    noise: np.ndarray
    replay_u: np.ndarray
    replay_factor: np.ndarray
    dislike_u: np.ndarray
    category_u: Callable[[np.ndarray], np.ndarray]


@dataclass
class Outcomes:
    """Per impression: the latent quantities and the sampled reaction."""

    z: np.ndarray
    watch_ratio: np.ndarray
    play_ms: np.ndarray
    implicit: np.ndarray
    p_implicit: np.ndarray
    reason_scores: np.ndarray  # [m, 4]
    cause: np.ndarray  # implicit cause, index into REASONS
    p_dislike: np.ndarray
    explicit: np.ndarray
    p_reason: np.ndarray  # [m, 4]
    category: np.ndarray  # index into REASONS or -1
    dislike_intercept: float = 0.0


@dataclass(frozen=True)
class _Latent:
    z: np.ndarray
    p_implicit: np.ndarray
    scores: np.ndarray
    cause: np.ndarray
    drive_base: np.ndarray  # dislike drive without the after-swipe bonus


def _latent(cfg: SimulationConfig, users: Mapping[str, Any], videos: Mapping[str, Any],
            user_ix: np.ndarray, video_ix: np.ndarray, position: np.ndarray) -> _Latent:
    topic = videos["topic"][video_ix]
    log_interest = np.log(users["interests"][user_ix, topic] * N_T + 0.05)
    # Element contributions: sensitivity x intensity, per element.
    contrib = users["sens"][user_ix] * videos["intensity"][video_ix]  # [m, N_E]
    scale = np.full(N_E, cfg.aversion_scale)
    scale[SLOW] = cfg.slow_scale
    penalty = contrib * scale
    appeal = videos["appeal"][video_ix]
    z = (cfg.watch_bias + users["engagement"][user_ix] + videos["quality"][video_ix]
         + cfg.beta_interest * log_interest + cfg.beta_plot * (appeal - 0.5)
         - penalty.sum(axis=1) - cfg.position_effect * position)
    # P(ratio < t) = P(noise < logit(t) - z): logistic CDF (rounding of play_ms aside).
    p_implicit = _sigmoid((_logit(IMPLICIT_THRESHOLD) - z) / cfg.noise_scale)
    m = len(user_ix)
    # Reason scores: per category, the summed sensitivities x intensities; boring also
    # counts missing interest.
    scores = np.zeros((m, N_R))
    for r in range(N_R):
        scores[:, r] = contrib[:, ELEMENT_REASON_IX == r].sum(axis=1)
    scores[:, BORING] += cfg.interest_boredom * np.maximum(0.0, -log_interest)
    # Implicit cause: the category that pushed z down the most.
    push = np.zeros((m, N_R))
    for r in range(N_R):
        push[:, r] = penalty[:, ELEMENT_REASON_IX == r].sum(axis=1)
    push[:, BORING] += (cfg.beta_interest * np.maximum(0.0, -log_interest)
                        + cfg.beta_plot * np.maximum(0.0, 0.5 - appeal))
    drive_base = cfg.dislike_gain * scores.max(axis=1) + users["vocal"][user_ix]
    return _Latent(z, p_implicit, scores, push.argmax(axis=1), drive_base)


def calibrate_intercept(drive: np.ndarray, rate: float) -> float:
    """The dislike intercept b with mean(sigmoid(b + drive)) = rate (bisection)."""
    lo, hi = -40.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if _sigmoid(mid + drive).mean() > rate:
            hi = mid
        else:
            lo = mid
    return lo


def respond(cfg: SimulationConfig, users: Mapping[str, Any], videos: Mapping[str, Any],
            user_ix: np.ndarray, video_ix: np.ndarray, position: np.ndarray,
            draws: ResponseDraws, *, dislike_intercept: float | None = None) -> Outcomes:
    """The reactions of ``users[user_ix]`` to ``videos[video_ix]`` shown at ``position``.

    ``users`` needs ``interests`` [n, topics], ``sens`` [n, elements], ``engagement``
    and ``vocal``; ``videos`` needs ``topic``, ``intensity`` [n, elements], ``quality``,
    ``appeal`` and ``duration`` (ms). ``dislike_intercept`` None calibrates it so the
    expected dislike rate of these impressions is ``cfg.dislike_rate`` (what the
    simulator does over its whole log); the A/B passes the simulation's own.
    """
    lat = _latent(cfg, users, videos, user_ix, video_ix, position)
    ratio = _sigmoid(lat.z + draws.noise)
    replay = (ratio > 0.95) & (draws.replay_u < cfg.p_replay)
    ratio = np.where(replay, ratio * draws.replay_factor, ratio)
    duration = videos["duration"][video_ix]
    play_ms = np.round(ratio * duration).astype(np.int64)
    watch_ratio = play_ms / duration
    implicit = watch_ratio < IMPLICIT_THRESHOLD
    drive = lat.drive_base + cfg.dislike_after_swipe * implicit
    b = calibrate_intercept(drive, cfg.dislike_rate) if dislike_intercept is None \
        else dislike_intercept
    p_dislike = _sigmoid(b + drive)
    explicit = draws.dislike_u < p_dislike
    p_reason = ((1 - cfg.class_slip) * _softmax(lat.scores / cfg.class_temperature, axis=1)
                + cfg.class_slip / N_R)
    category = np.full(len(user_ix), -1, dtype=np.int64)
    rows = np.flatnonzero(explicit)
    cum = np.cumsum(p_reason[rows], axis=1)
    category[rows] = np.minimum((draws.category_u(rows)[:, None] > cum).sum(axis=1), N_R - 1)
    return Outcomes(lat.z, watch_ratio, play_ms, implicit, lat.p_implicit, lat.scores, lat.cause,
                    p_dislike, explicit, p_reason, category, float(b))


def latent_p_negative(cfg: SimulationConfig, users: Mapping[str, Any],
                      videos: Mapping[str, Any], user_ix: np.ndarray, video_ix: np.ndarray,
                      position: np.ndarray, dislike_intercept: float) -> np.ndarray:
    """P(quick swipe or dislike) from the latent truth: what the oracle arm ranks by.

    P(swipe) + P(no swipe) * P(dislike | no swipe), the after-swipe bonus applying
    only to the swipe branch (which is already counted as negative).
    """
    lat = _latent(cfg, users, videos, user_ix, video_ix, position)
    p_dislike_no_swipe = _sigmoid(dislike_intercept + lat.drive_base)
    return lat.p_implicit + (1.0 - lat.p_implicit) * p_dislike_no_swipe


def dislike_trigger(cfg: SimulationConfig, sens: np.ndarray, intensity: np.ndarray,
                    interest: float, category: Reason) -> int:
    """The element a disliking user names (index into ELEMENTS), or -1 for none.

    The strongest sensitivity x intensity among the category's elements; a boring
    dislike blames the topic rather than the pacing when missing interest weighs more.
    """
    contrib = sens * intensity
    in_cat = np.flatnonzero(ELEMENT_REASON_IX == _R[category.value])
    e = int(in_cat[np.argmax(contrib[in_cat])])
    if contrib[e] <= 0:
        return -1
    if category == Reason.BORING and e == SLOW:
        boredom = cfg.interest_boredom * max(0.0, -float(np.log(interest * N_T + 0.05)))
        if boredom > contrib[e]:
            return -1  # bored because of the topic, not the pacing
    return e


# ----------------------------------------------------------------- hashed draws

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a good 64-bit hash, vectorised."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def _uniform(seed: int, user_ix: np.ndarray, video_ix: np.ndarray, stream: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = _mix(np.full(len(user_ix), np.uint64(seed) * _GOLD + np.uint64(stream)))
        x = _mix(x ^ (user_ix.astype(np.uint64) * _GOLD))
        x = _mix(x ^ (video_ix.astype(np.uint64) + _GOLD))
    # 53 random bits -> (0, 1), never exactly 0 (the logistic needs log(u)).
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def hashed_draws(cfg: SimulationConfig, seed: int, user_ix: np.ndarray,
                 video_ix: np.ndarray) -> ResponseDraws:
    """Draws that depend only on (seed, user, video): the same user shown the same
    video reacts with the same noise in every arm (common random numbers)."""
    u = _uniform(seed, user_ix, video_ix, 1)
    noise = cfg.noise_scale * np.log(u / (1.0 - u))
    cat = _uniform(seed, user_ix, video_ix, 5)
    return ResponseDraws(
        noise=noise,
        replay_u=_uniform(seed, user_ix, video_ix, 2),
        replay_factor=1.0 + 1.5 * _uniform(seed, user_ix, video_ix, 3),
        dislike_u=_uniform(seed, user_ix, video_ix, 4),
        category_u=lambda rows: cat[rows])
