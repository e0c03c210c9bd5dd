"""Latent taste (recursive least squares) and the recent history of a portrait."""

from __future__ import annotations

import numpy as np
import pytest

from enf_core.analysis import VideoAnalysis
from enf_core.events import FeedbackEvent, WatchEvent
from enf_core.features import PORTRAIT_SLICES, VIDEO_SLICES, portrait_vector, video_vector
from enf_core.latent import (
    LATENT_DIM,
    USER_LATENT_DIM,
    Outcome,
    history_rates,
    latent_update,
    new_latent_p,
    tri_to_full,
)
from enf_core.portrait import Portrait, PortraitConfig, apply_event
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS


def _video(vid: str, latent: tuple[float, ...] = (), source: str = "learned") -> VideoAnalysis:
    topics = (1.0 / len(TOPICS),) * len(TOPICS)
    return VideoAnalysis(vid, topics, (0.0,) * len(ELEMENTS), (0.25,) * len(REASONS),
                         latent=latent, latent_source=source if latent else "")


def test_rls_equals_the_ridge_solution() -> None:
    rng = np.random.default_rng(0)
    lam = 3.0
    items = rng.normal(0, 0.5, (40, USER_LATENT_DIM))
    y = rng.uniform(0, 1, 40)
    w, p = [0.0] * USER_LATENT_DIM, new_latent_p(lam)
    for item, t in zip(items, y, strict=True):
        w, p = latent_update(w, p, item, float(t))
    x = np.concatenate([items[:, :LATENT_DIM], np.ones((40, 1))], axis=1)
    target = y - items[:, LATENT_DIM]
    ridge = np.linalg.solve(x.T @ x + lam * np.eye(USER_LATENT_DIM), x.T @ target)
    np.testing.assert_allclose(w, ridge, atol=1e-9)
    np.testing.assert_allclose(tri_to_full(p),
                               np.linalg.inv(x.T @ x + lam * np.eye(USER_LATENT_DIM)), atol=1e-9)


def test_portrait_learns_taste_and_keeps_a_bounded_history() -> None:
    c = PortraitConfig(history_len=5)
    liked = tuple([0.5] * LATENT_DIM + [0.5])
    hated = tuple([-0.5] * LATENT_DIM + [0.5])
    p = Portrait.new("u", c)
    for i in range(12):
        apply_event(p, WatchEvent(f"a{i}", "u", f"good{i}", 10_000, 10_000, i), _video(
            f"good{i}", liked), c)
        apply_event(p, WatchEvent(f"b{i}", "u", f"bad{i}", 500, 10_000, i), _video(
            f"bad{i}", hated), c)
    w = np.asarray(p.latent)
    pred_good = liked[-1] + w[:LATENT_DIM] @ liked[:LATENT_DIM] + w[-1]
    pred_bad = hated[-1] + w[:LATENT_DIM] @ hated[:LATENT_DIM] + w[-1]
    assert pred_good > 0.8 and pred_bad < 0.2
    assert p.n_latent == 24
    assert len(p.history) == 5
    assert p.history[-1] == ("bad11", Outcome.QUICK_SWIPE, 0.05)
    assert np.dot(p.recent_negative, hated[:LATENT_DIM]) > 0
    assert np.dot(p.recent_positive, liked[:LATENT_DIM]) > 0
    # a dislike of the video just watched marks that entry, it does not add one
    apply_event(p, FeedbackEvent("f", "u", "bad11", "dislike", 99, "boring"), _video(
        "bad11", hated), c)
    assert len(p.history) == 5 and p.history[-1][1] == Outcome.DISLIKE
    # the stored form round-trips exactly, and old portraits load with the prior
    q = Portrait.from_dict(p.to_dict())
    assert q == p
    np.testing.assert_array_equal(q.vector(), p.vector())
    old = p.to_dict()
    for k in ("latent", "latent_p", "n_latent", "recent_negative", "recent_positive", "history"):
        old.pop(k)
    r = Portrait.from_dict(old)
    assert r.latent == [0.0] * USER_LATENT_DIM and r.history == []


def test_a_video_without_latent_teaches_only_the_history() -> None:
    p = Portrait.new("u")
    apply_event(p, WatchEvent("a", "u", "v", 100, 10_000, 1), _video("v"))
    assert p.n_latent == 0 and p.latent == [0.0] * USER_LATENT_DIM
    assert p.history == [("v", Outcome.QUICK_SWIPE, 0.01)]


def test_history_rates_weigh_recent_entries_more() -> None:
    old_swipes = [["a", Outcome.QUICK_SWIPE, 0.1]] * 5 + [["b", Outcome.FULL, 1.0]] * 2
    new_swipes = [["b", Outcome.FULL, 1.0]] * 2 + [["a", Outcome.QUICK_SWIPE, 0.1]] * 5
    assert history_rates(new_swipes, 0.8)[0] > history_rates(old_swipes, 0.8)[0]
    qs, dl, ratio, full = history_rates([["x", Outcome.DISLIKE, 0.0]], 0.8)
    assert (qs, dl, ratio, full) == (0.0, 1.0, 0.0, 0.0)
    assert history_rates([], 0.8) == (0.0, 0.0, 0.0, 0.0)


def test_vectors_carry_the_latent_parts() -> None:
    lat = tuple(float(i) / 10 for i in range(USER_LATENT_DIM))
    v = video_vector(_video("v", lat, "content"))
    assert v[VIDEO_SLICES["latent"]].tolist() == pytest.approx(lat)
    assert v[VIDEO_SLICES["latent_known"]].tolist() == [0.5]
    assert video_vector(_video("v", lat))[VIDEO_SLICES["latent_known"]].tolist() == [1.0]
    assert video_vector(_video("v"))[VIDEO_SLICES["latent_known"]].tolist() == [0.0]
    p = Portrait.new("u")
    p.latent = list(lat)
    assert portrait_vector(p)[PORTRAIT_SLICES["latent"]].tolist() == pytest.approx(lat)
    a = _video("v", lat, "content")
    assert VideoAnalysis.from_dict(a.to_dict()) == a


def test_portrait_rates_are_the_history_rates() -> None:
    c = PortraitConfig(history_len=100)
    p = Portrait.new("u", c)
    ratios = [0.05, 0.9, 0.5, 0.1, 1.0, 0.95, 0.2]
    for i, r in enumerate(ratios):
        apply_event(p, WatchEvent(f"w{i}", "u", f"v{i}", int(r * 10_000), 10_000, i), None, c)
    apply_event(p, FeedbackEvent("f", "u", "v6", "dislike", 9, ""), None, c)
    np.testing.assert_allclose(p.recent_rates, history_rates(p.history, c.history_decay),
                               atol=1e-12)
    assert p.recent_rates[1] > 0.1  # the dislike counts as the newest entry


def test_latent_step_keeps_p_symmetric_as_its_upper_triangle() -> None:
    """The step updates the stored triangle directly; it must equal the upper
    triangle of the full-matrix update P - k (P x)ᵀ, bit for bit."""
    import random

    from enf_core.latent import latent_update, new_latent_p, tri_to_full

    rng = random.Random(3)
    w, p = [0.0] * USER_LATENT_DIM, new_latent_p(3.0)
    for _ in range(200):
        item = [rng.gauss(0, 0.4) for _ in range(USER_LATENT_DIM)]
        x = np.array(item)
        x[-1] = 1.0
        full = tri_to_full(p)
        px = full @ x
        want = full - (px / (1.0 + float(x @ px)))[:, None] * px[None, :]
        w, p = latent_update(w, p, item, rng.random())
        assert p == want[np.triu_indices(USER_LATENT_DIM)].tolist()
