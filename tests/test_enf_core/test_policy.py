"""The suppression policy, rule by rule (pure: numpy arrays in, decisions out)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.features import portrait_vector, video_vector
from enf_core.policy import (
    SuppressionPolicy,
    decide,
    operating_point,
    portrait_watches,
    request_budgets,
)
from enf_core.portrait import Portrait
from enf_core.taxonomy import ELEMENTS

SPIDERS = ELEMENTS.index("insects_spiders")


def _portrait(watches: int, spider_sensitivity: float | None = None) -> np.ndarray:
    p = Portrait.new("u")
    p.n_watches = watches
    if spider_sensitivity is not None:
        p.element_sensitivity[SPIDERS] = spider_sensitivity
    return portrait_vector(p)


def _video(spiders: float = 0.0) -> np.ndarray:
    a = VideoAnalysis.neutral("v")
    elements = list(a.elements)
    elements[SPIDERS] = spiders
    return video_vector(replace(a, elements=tuple(elements)))


def _rows(n: int, watches: int = 50) -> tuple[np.ndarray, np.ndarray]:
    return np.tile(_portrait(watches), (n, 1)), np.tile(_video(), (n, 1))


def test_watches_read_back_from_the_experience_feature() -> None:
    rows = np.stack([_portrait(w) for w in (0, 1, 4, 5, 37, 2000)])
    assert portrait_watches(rows).tolist() == [0, 1, 4, 5, 37, 2000]


def test_budget_is_k_and_a_fraction_of_the_request() -> None:
    policy = SuppressionPolicy(max_per_request=3, max_fraction=0.25)
    assert request_budgets(policy, np.array([1, 3, 4, 8, 12, 100])).tolist() == [0, 0, 1, 2, 3, 3]
    unlimited = SuppressionPolicy(max_per_request=-1, max_fraction=1.0)
    assert request_budgets(unlimited, np.array([1, 7])).tolist() == [1, 7]


def test_threshold_flags_and_the_budget_keeps_the_likeliest() -> None:
    policy = SuppressionPolicy(max_per_request=2, max_fraction=0.5)
    p = np.array([0.9, 0.1, 0.7, 0.8, 0.65, 0.2, 0.95, 0.3])
    portraits, videos = _rows(8)
    d = decide(policy, p, 0.6, portraits, videos, np.array([0, 5, 8]))
    assert d.flagged.tolist() == [True, False, True, True, True, False, True, False]
    # request 1: rows 0..4, budget 2 -> the two highest (0.9, 0.8); request 2: rows 5..7,
    # budget floor(1.5) = 1 -> 0.95
    assert np.flatnonzero(d.suppressed).tolist() == [0, 3, 6]
    assert not d.penalty.any()  # drop mode: no penalties


def test_nothing_at_or_above_threshold_nothing_suppressed() -> None:
    portraits, videos = _rows(4)
    d = decide(SuppressionPolicy(), np.full(4, 0.3), 0.5, portraits, videos, np.array([0, 4]))
    assert not d.flagged.any() and not d.suppressed.any()


def test_threshold_is_inclusive() -> None:
    portraits, videos = _rows(4)
    d = decide(SuppressionPolicy(max_fraction=1.0), np.array([0.5, 0.49, 0.5, 0.1]), 0.5,
               portraits, videos, np.array([0, 4]))
    assert d.suppressed.tolist() == [True, False, True, False]


def test_cold_portrait_is_never_suppressed_on_p_alone() -> None:
    policy = SuppressionPolicy(cold_watches=5, max_fraction=1.0)
    portraits = np.stack([_portrait(0), _portrait(4), _portrait(5), _portrait(30)])
    videos = np.tile(_video(), (4, 1))
    d = decide(policy, np.full(4, 0.99), 0.5, portraits, videos, np.array([0, 1, 2, 3, 4]))
    assert d.cold.tolist() == [True, True, False, False]
    assert d.suppressed.tolist() == [False, False, True, True]


def test_decisive_element_suppresses_even_a_cold_portrait_and_goes_first() -> None:
    policy = SuppressionPolicy(max_per_request=1, max_fraction=1.0)
    # A new user who disliked a spider video: sensitivity ~0.66 after one explicit dislike.
    averse = _portrait(1, spider_sensitivity=0.66)
    portraits = np.stack([averse] * 3)
    videos = np.stack([_video(0.0), _video(0.9), _video(0.3)])
    d = decide(policy, np.array([0.2, 0.1, 0.99]), 0.5, portraits, videos, np.array([0, 3]))
    assert d.decisive.tolist() == [False, True, False]  # 0.3 spiders is below 0.5
    assert d.suppressed.tolist() == [False, True, False]  # cold: p alone does not count
    # Warm user: the decisive row still comes first in a budget of one.
    warm = np.stack([_portrait(50, spider_sensitivity=0.66)] * 3)
    d = decide(policy, np.array([0.2, 0.1, 0.99]), 0.5, warm, videos, np.array([0, 3]))
    assert d.flagged.tolist() == [False, True, True]
    assert d.suppressed.tolist() == [False, True, False]


def test_prior_sensitivity_is_not_decisive() -> None:
    d = decide(SuppressionPolicy(), np.array([0.0]), 0.5, _portrait(0)[None],
               _video(1.0)[None], np.array([0, 1]))
    assert not d.decisive.any() and not d.suppressed.any()


def test_unjudged_videos_are_never_suppressed_even_when_decisive() -> None:
    portraits = np.stack([_portrait(50, spider_sensitivity=0.9)] * 2)
    videos = np.stack([_video(0.9)] * 2)
    d = decide(SuppressionPolicy(max_fraction=1.0), np.array([0.99, 0.99]), 0.5, portraits,
               videos, np.array([0, 2]), eligible=np.array([False, True]))
    assert d.suppressed.tolist() == [False, True]


def test_demote_penalises_every_flagged_row_and_marks_the_budgeted() -> None:
    policy = SuppressionPolicy(mode="demote", max_per_request=1, max_fraction=1.0,
                               demote_weight=2.0)
    portraits, videos = _rows(3)
    d = decide(policy, np.array([0.7, 0.2, 0.9]), 0.5, portraits, videos, np.array([0, 3]))
    assert d.penalty.tolist() == pytest.approx([1.4, 0.0, 1.8])
    assert d.suppressed.tolist() == [False, False, True]


def test_ties_keep_the_rankers_order() -> None:
    portraits, videos = _rows(4)
    d = decide(SuppressionPolicy(max_per_request=2, max_fraction=1.0), np.full(4, 0.8), 0.5,
               portraits, videos, np.array([0, 4]))
    assert d.suppressed.tolist() == [True, True, False, False]


def test_starts_must_cover_the_rows() -> None:
    portraits, videos = _rows(3)
    with pytest.raises(ValueError, match="starts"):
        decide(SuppressionPolicy(), np.zeros(3), 0.5, portraits, videos, np.array([0, 2]))


def test_threshold_resolution_prefers_config_then_operating_point_then_f1() -> None:
    manifest = {"threshold": 0.27, "operating_point": {"threshold": 0.41}}
    assert SuppressionPolicy(threshold=0.8).resolve_threshold(manifest) == 0.8
    assert SuppressionPolicy().resolve_threshold(manifest) == 0.41
    assert SuppressionPolicy().resolve_threshold({"threshold": 0.27}) == 0.27
    assert SuppressionPolicy().resolve_threshold(None) == 0.5


def test_from_env_reads_every_field_typed_and_rejects_bad_values() -> None:
    env = {"ENF_SUPPRESS_MODE": "demote", "ENF_SUPPRESS_MAX_PER_REQUEST": "5",
           "ENF_SUPPRESS_MAX_FRACTION": "0.5", "ENF_SUPPRESS_COLD_WATCHES": "2",
           "ENF_SUPPRESS_THRESHOLD": "0.3", "ENF_SUPPRESS_TARGET_PRECISION": "0.7",
           "ENF_SUPPRESS_DECISIVE_ELEMENT": "0.4", "ENF_SUPPRESS_DECISIVE_SENSITIVITY": "0.5",
           "ENF_SUPPRESS_DEMOTE_WEIGHT": "3"}
    p = SuppressionPolicy.from_env(env)
    assert (p.mode, p.max_per_request, p.max_fraction, p.cold_watches, p.threshold,
            p.target_precision, p.decisive_element, p.decisive_sensitivity,
            p.demote_weight) == ("demote", 5, 0.5, 2, 0.3, 0.7, 0.4, 0.5, 3.0)
    assert SuppressionPolicy.from_env({}) == SuppressionPolicy()
    with pytest.raises(ValueError, match="mode"):
        SuppressionPolicy.from_env({"ENF_SUPPRESS_MODE": "hide"})
    with pytest.raises(ValueError, match="ENF_SUPPRESS_MAX_PER_REQUEST"):
        SuppressionPolicy.from_env({"ENF_SUPPRESS_MAX_PER_REQUEST": "three"})
    with pytest.raises(ValueError, match="max_fraction"):
        SuppressionPolicy(max_fraction=1.5)


def test_operating_point_is_the_lowest_threshold_reaching_the_precision() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    y = np.array([1, 1, 0, 1, 0, 0, 1, 0])
    op = operating_point(y, p, 0.75)
    # top 4: precision 3/4 -> threshold 0.6 (top 5 would be 3/5)
    assert op["threshold"] == 0.6 and op["precision"] == 0.75
    assert op["recall"] == 0.75 and op["flagged_share"] == 0.5
    assert op["measured_on"] == "valid" and op["target_precision"] == 0.75


def test_operating_point_cuts_only_between_distinct_scores() -> None:
    p = np.array([0.9, 0.5, 0.5, 0.1])
    y = np.array([1, 1, 0, 0])
    op = operating_point(y, p, 0.7)
    assert op["threshold"] == 0.9  # 0.5 would flag both tied rows: precision 2/3


def test_operating_point_out_of_reach_returns_the_most_precise() -> None:
    op = operating_point(np.array([0, 1, 0, 0]), np.array([0.9, 0.8, 0.7, 0.1]), 0.9)
    assert op["threshold"] == 0.8 and op["precision"] == 0.5
