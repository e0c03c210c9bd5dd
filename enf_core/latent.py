"""Latent taste and recent history: the collaborative and sequential half of a portrait.

The interpretable traits (``enf_core.portrait``) say *why* a user reacts badly;
they carry no collaborative signal ("users who swiped this also swiped that")
and no sequence ("the last three videos like this one were swiped"). This
module adds both, as pure functions the stream and the offline replay share:

* **Latent taste.** Every video has a latent vector ``[v (LATENT_DIM), b]``
  learned offline from the logs (matrix factorisation of the engagement, train
  split only; ``models.latent``) or, for a video the logs never showed,
  predicted from its content. A user's taste ``w`` ([v-part, user bias]) is the
  ridge-regression fit of the user's engagement residuals ``y − b`` on
  ``[v, 1]`` over every event so far, kept exactly by recursive least squares
  (the inverse Gram matrix ``P`` is updated by Sherman–Morrison per event):
  the same solution an offline ALS user step gives, updated in O(d²) per event.
  The predicted engagement of a candidate is ``b + w · [v, 1]``.
* **Recent history.** The last ``history_len`` (video, outcome, watch ratio)
  of the user, and recency-weighted centroids of the latent vectors of the
  videos the user quickly swiped or disliked, and of those fully watched; the
  scorer compares a candidate with them (item-kNN against the centroids) and
  reads recency-weighted outcome rates from the history.

Engagement ``y``: the watch ratio clipped to [0, 1] (a rating r of 1–5 reads
as (r − 1) / 4, as everywhere in the Profile Agent); an explicit dislike is an
observation of 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "HISTORY_RATES",
    "LATENT_DIM",
    "USER_LATENT_DIM",
    "Outcome",
    "confidence",
    "ema_centroid",
    "history_rates",
    "latent_update",
    "new_latent_p",
    "outcome_of",
    "outcome_values",
    "tri_to_full",
    "update_rates",
]

LATENT_DIM = 16  # item factors
USER_LATENT_DIM = LATENT_DIM + 1  # the user's factors + the user's bias
_TRI = np.triu_indices(USER_LATENT_DIM)
# index of each full-matrix entry in the upper-triangle list (one gather, no loops)
_pos = np.zeros((USER_LATENT_DIM, USER_LATENT_DIM), np.int64)
_pos[_TRI] = np.arange(len(_TRI[0]))
_TRI_POS = np.maximum(_pos, _pos.T).ravel()
HISTORY_RATES = 4  # quick-swipe rate, dislike rate, mean watch ratio, full-watch rate


class Outcome:
    """Codes of a history entry (ints: they are stored in the portrait's JSON)."""

    QUICK_SWIPE = 0
    PARTIAL = 1
    FULL = 2
    DISLIKE = 3


def new_latent_p(prior_precision: float) -> list[float]:
    """The upper triangle of P = I / λ: the prior of a user with no events."""
    return list(_prior_p(prior_precision))


@functools.lru_cache(maxsize=8)
def _prior_p(prior_precision: float) -> tuple[float, ...]:
    # every new portrait needs one: built once (numpy per call cost ~25 µs)
    full = np.eye(USER_LATENT_DIM) / prior_precision
    return tuple(float(x) for x in full[_TRI])


def tri_to_full(tri: Sequence[float]) -> np.ndarray:
    return np.asarray(tri, np.float64)[_TRI_POS].reshape(USER_LATENT_DIM, USER_LATENT_DIM)


def outcome_of(watch_ratio: float, *, quick_swipe_ratio: float, full_watch_ratio: float) -> int:
    """The history code of a watch (a dislike is ``Outcome.DISLIKE``)."""
    if watch_ratio < quick_swipe_ratio:
        return Outcome.QUICK_SWIPE
    return Outcome.FULL if watch_ratio >= full_watch_ratio else Outcome.PARTIAL


def latent_update(w: list[float], p_tri: list[float], item: Sequence[float],
                  engagement: float) -> tuple[list[float], list[float]]:
    """One recursive-least-squares step of the user's taste on one observation.

    ``item`` is the video's ``[v, b]``; the regression target is the residual
    ``engagement − b`` on ``x = [v, 1]``. Returns the new (w, upper-tri P).
    Exact: after n events, w equals the ridge solution over those n events.
    """
    x = np.array(item, np.float64)
    bias = float(x[LATENT_DIM])
    x[LATENT_DIM] = 1.0
    wv = np.asarray(w, np.float64)
    tri = np.asarray(p_tri, np.float64)
    Px = tri[_TRI_POS].reshape(USER_LATENT_DIM, USER_LATENT_DIM) @ x
    k = Px / (1.0 + float(x @ Px))
    wv = wv + k * (engagement - bias - float(wv @ x))
    # The upper triangle of P - k Pxᵀ, computed on the triangle only: entry for
    # entry the same operations as on the full matrix, without building it.
    return wv.tolist(), (tri - k[_TRI[0]] * Px[_TRI[1]]).tolist()


def ema_centroid(centroid: list[float], item: Sequence[float], rate: float) -> list[float]:
    c = np.asarray(centroid, np.float64)
    return (c + rate * (np.asarray(item[:LATENT_DIM], np.float64) - c)).tolist()


def outcome_values(outcome: int, ratio: float) -> tuple[float, float, float, float]:
    """What an entry adds to the rates: quick swipe, dislike, watch ratio, full watch."""
    return (float(outcome == Outcome.QUICK_SWIPE), float(outcome == Outcome.DISLIKE), ratio,
            float(outcome == Outcome.FULL))


def update_rates(rates: list[float], weight: float, values: Sequence[float], decay: float
                 ) -> tuple[list[float], float]:
    """Add a newest entry to recency-weighted rates in O(1): the normalised
    exponential average ``history_rates`` computes (over an unbounded history)."""
    dw = decay * weight  # (decay * weight) * r: the same rounding as before, hoisted
    w = dw + 1.0
    return [(dw * r + v) / w for r, v in zip(rates, values, strict=True)], w


def history_rates(history: Sequence[Sequence[object]], decay: float) -> tuple[float, ...]:
    """Recency-weighted (newest first) quick-swipe, dislike, mean watch ratio and
    full-watch rates over ``history`` (oldest first); neutral zeros when empty."""
    n = len(history)
    if not n:
        return (0.0,) * HISTORY_RATES
    weight = decay ** np.arange(n - 1, -1, -1, dtype=np.float64)
    weight /= weight.sum()
    outcome = np.fromiter((e[1] for e in history), np.int64, n)  # type: ignore[misc]
    ratio = np.fromiter((e[2] for e in history), np.float64, n)  # type: ignore[misc]
    return (float(weight @ (outcome == Outcome.QUICK_SWIPE)),
            float(weight @ (outcome == Outcome.DISLIKE)), float(weight @ ratio),
            float(weight @ (outcome == Outcome.FULL)))


def confidence(n_latent: int) -> float:
    """How many events the user's latent rests on, squashed to [0, 1]."""
    return min(math.log1p(n_latent) / 5.0, 1.0)
