"""The A/B's baseline ranker: observed popularity x the user's observed topic interest.

It stands for the upstream recommender ENF plugs into, and reads only what a
feed observes: how often each video was shown in the logged history (its
popularity), the video's topic tag, the user's declared interest tags and
the watch ratios of what the user watched. Never the latent truth.

Per request: a pool of ``pool_size`` catalogue videos the user has not seen,
drawn uniformly (retrieval), scored

    score = popularity_weight * log(popularity) + log(interest[topic] + smoothing)

where interest is the user's share of attention per topic (declared tags count
``declared_weight`` watches each; each watch adds its watch ratio to the
video's topic), and ranked; the top ``request_size`` are the ranked list (the
page and its backfill).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from enf_core.taxonomy import TOPICS

__all__ = ["RankerConfig", "TopicInterest", "rank_pool"]

N_T = len(TOPICS)


@dataclass(frozen=True)
class RankerConfig:
    """The baseline's knobs (documented defaults; ``enf ab`` flags set the sizes)."""

    pool_size: int = 200  # candidates retrieved per request
    request_size: int = 10  # ranked list sent downstream: the page and its backfill
    page_size: int = 6  # videos served per request
    popularity_weight: float = 1.0
    declared_weight: float = 2.0  # a declared interest tag counts as this many full watches
    smoothing: float = 0.02


class TopicInterest:
    """A user's observed topic interest, updated by each watch (the ranker's state)."""

    def __init__(self, declared: list[int], config: RankerConfig) -> None:
        self.mass = np.zeros(N_T)
        for t in declared:
            if 0 <= t < N_T:
                self.mass[t] += config.declared_weight
        self.config = config

    def watch(self, topic: int, watch_ratio: float) -> None:
        if 0 <= topic < N_T:
            self.mass[topic] += min(max(watch_ratio, 0.0), 1.0)

    def watch_many(self, topics: np.ndarray, watch_ratios: np.ndarray) -> None:
        ok = (topics >= 0) & (topics < N_T)
        np.add.at(self.mass, topics[ok], np.clip(watch_ratios[ok], 0.0, 1.0))

    def share(self) -> np.ndarray:
        total = self.mass.sum()
        return self.mass / total if total > 0 else np.full(N_T, 1.0 / N_T)


def rank_pool(pool: np.ndarray, video_topic: np.ndarray, popularity: np.ndarray,
              interest: np.ndarray, config: RankerConfig) -> tuple[np.ndarray, np.ndarray]:
    """The pool's top ``request_size`` video indices and their scores, best first."""
    topic = video_topic[pool]
    share = np.where(topic >= 0, interest[np.clip(topic, 0, N_T - 1)], 0.0)
    score = config.popularity_weight * np.log(popularity[pool]) + np.log(share + config.smoothing)
    # Ties broken by video index, so a ranking never depends on the pool's order.
    order = np.lexsort((pool, -score))[: config.request_size]
    return pool[order], score[order]
