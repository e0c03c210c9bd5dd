"""Offline video latents: ALS recovers planted taste, out of fold, cold start from content."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.latent import LATENT_DIM, USER_LATENT_DIM
from enf_core.taxonomy import ELEMENTS, REASONS, TOPICS
from models.latent import CONTENT_DIM, fit_latents, load_latent_model
from models.metrics import auc


def _planted(seed: int = 0, users: int = 300, items: int = 200, per_user: int = 40):
    rng = np.random.default_rng(seed)
    u_f, i_f = rng.normal(0, 1, (users, 3)), rng.normal(0, 1, (items, 3))
    quality = rng.normal(0, 0.5, items)
    u = np.repeat(np.arange(users), per_user)
    i = np.concatenate([rng.choice(items, per_user, replace=False) for _ in range(users)])
    score = (u_f[u] * i_f[i]).sum(1) + quality[i]
    y = 1 / (1 + np.exp(-score + rng.normal(0, 0.3, len(u))))
    content = np.zeros((items, CONTENT_DIM))
    content[:, 0] = quality  # the content reveals the quality, not the taste
    return u, i, y, content, quality


def test_als_learns_taste_and_keeps_train_rows_out_of_fold() -> None:
    u, i, y, content, quality = _planted()
    n = len(u)
    train = np.zeros(n, bool)
    train[np.arange(n) % 40 < 30] = True  # per user: 30 train rows, 10 held out
    fit = fit_latents(u, i, y, np.arange(n), train, n, [f"v{k}" for k in range(200)], content)
    assert fit.table.shape == (200, USER_LATENT_DIM) and fit.learned.all()
    assert fit.oof.shape[0] == 5 and (fit.fold[~train] == -1).all() and (fit.fold[train] >= 0).all()
    # a user's ridge fit on train rows predicts the held-out rows
    x = np.concatenate([fit.table[:, :LATENT_DIM], np.ones((200, 1))], axis=1)
    pred = np.zeros(n)
    for user in np.unique(u):
        mine = np.flatnonzero((u == user) & train)
        xs, t = x[i[mine]], y[mine] - fit.table[i[mine], LATENT_DIM]
        w = np.linalg.solve(xs.T @ xs + 3 * np.eye(USER_LATENT_DIM), xs.T @ t)
        test = np.flatnonzero((u == user) & ~train)
        pred[test] = fit.table[i[test], LATENT_DIM] + x[i[test]] @ w
    assert auc(y[~train] > 0.5, pred[~train]) > 0.8
    # the out-of-fold tables differ from the full one (they did not see that fold)
    assert np.abs(fit.oof[0] - fit.table).max() > 1e-3
    # the content head predicts the bias from the content (here: the planted quality)
    head_bias = (np.c_[content, np.ones(200)] @ fit.model.head)[:, LATENT_DIM]
    assert np.corrcoef(head_bias, quality)[0, 1] > 0.8


def test_latent_model_round_trips_and_attaches(tmp_path: Path) -> None:
    u, i, y, content, _ = _planted(items=50, users=60, per_user=20)
    train = np.ones(len(u), bool)
    fit = fit_latents(u, i, y, np.arange(len(u)), train, len(u),
                      [f"v{k}" for k in range(50)], content)
    fit.model.save(tmp_path / "latents.npz", tmp_path / "head.npy")
    m = load_latent_model(tmp_path / "latents.npz", tmp_path / "head.npy")
    assert m.video_ids == fit.model.video_ids
    np.testing.assert_array_equal(m.table, fit.model.table)
    topics = (1.0 / len(TOPICS),) * len(TOPICS)
    known = VideoAnalysis("v3", topics, (0.0,) * len(ELEMENTS), (0.25,) * len(REASONS))
    a = m.attach(known)
    assert a.latent_source == "learned"
    np.testing.assert_allclose(a.latent, fit.table[3], atol=1e-6)
    new = m.attach(VideoAnalysis("never-seen", topics, (0.0,) * len(ELEMENTS),
                                 (0.25,) * len(REASONS)))
    assert new.latent_source == "content" and len(new.latent) == USER_LATENT_DIM


def test_folds_are_by_user_and_a_fold_never_sees_its_users() -> None:
    """Issue 9, Steam: with folds of rows, a train row's label reached its portrait
    through the earlier videos' latents (fitted with the user's own factors). Folds are
    of users now, and fold k's table does not move when fold k's users change."""
    u, i, y, content, _ = _planted(users=120, items=80, per_user=20)
    n = len(u)
    train = np.ones(n, bool)
    ids = [f"v{k}" for k in range(80)]
    fit = fit_latents(u, i, y, np.arange(n), train, n, ids, content)
    for user in np.unique(u):
        assert len(np.unique(fit.fold[u == user])) == 1  # one fold per user
        assert fit.fold[u == user][0] == fit.user_fold[user]
    k = 2
    flipped = np.where(fit.fold == k, 1.0 - y, y)  # rewrite everything fold k's users did
    again = fit_latents(u, i, flipped, np.arange(n), train, n, ids, content)
    np.testing.assert_allclose(again.oof[k], fit.oof[k], atol=1e-5)
    assert np.abs(again.oof[(k + 1) % 5] - fit.oof[(k + 1) % 5]).max() > 1e-3
