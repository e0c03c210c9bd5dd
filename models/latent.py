"""Video latent vectors learned offline from the logs, and predicted from content.

The model is biased matrix factorisation of the engagement ``y`` of a row
(``enf_core.latent``: the clipped watch ratio, a rating read as a ratio, an
explicit dislike as an extra observation of 0):

    y(u, i) ≈ b_i + v_i · w_u[:d] + w_u[d]

fitted by alternating ridge regressions (ALS) on the **train split only**. The
user step is exactly what the Profile Agent's recursive least squares keeps per
event (same ridge λ), so the latent taste a portrait builds online is the one
this fit assumes. Only the item side ``[v_i, b_i]`` is kept: it goes into each
video's analysis (``VideoAnalysis.latent``, source ``learned``).

* **Out of fold, by user.** A train row must not see its own label, neither
  through its video's vector nor through the latent taste its portrait built
  from the user's earlier videos: the users are split into ``folds`` random
  folds, the whole fit (ALS from scratch) is repeated without each fold's train
  rows, and a train row's video vector *and* its portrait's replay use the fit
  that left its user out (``DatasetFeatures.video_vectors``,
  ``models.dataset_features``). Folds of rows were not enough: the earlier
  videos' latents, fitted with the user's own factors, carried the row's label
  into the portrait (Steam, 1.6 train rows per user: the portrait's w · v had
  AUC 0.68 on train rows and 0.50 on valid, and the scorer learned the leak).
* **Cold start.** A video the train split never showed gets its latent from a
  ridge regression of the learned latents on the content part of the video
  vector (topics, elements, reason prior, plot appeal, duration), weighted by
  how many rows each learned latent rests on: source ``content``. The head is
  shipped in the model directory (``latent_head`` file) beside the table of
  learned latents (``latents`` file), and the stream applies both.

Numpy and scipy only.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from enf_core.analysis import VideoAnalysis
from enf_core.features import VIDEO_SLICES
from enf_core.latent import LATENT_DIM, USER_LATENT_DIM
from enf_core.portrait import PortraitConfig

__all__ = ["LatentFit", "LatentFitConfig", "LatentModel", "fit_latents", "load_latent_model"]

log = logging.getLogger(__name__)
CONTENT_DIM = VIDEO_SLICES["meta"].stop  # topics | elements | reasons | meta


@dataclass(frozen=True)
class LatentFitConfig:
    """Offline fit of the video latents (documented defaults)."""

    reg: float = PortraitConfig.latent_prior_precision  # ridge λ of users and item factors
    bias_reg: float = 2.0  # ridge λ of an item bias towards the global mean
    iters: int = 8  # ALS sweeps
    folds: int = 5  # out-of-fold refits (folds of users) for train rows
    content_reg: float = 10.0  # ridge λ of the content → latent head
    min_rows: int = 1  # a video needs this many train rows to get a learned latent
    seed: int = 0


@dataclass(frozen=True)
class LatentModel:
    """Learned latents per video id, and the content head for the others."""

    video_ids: list[str]
    table: np.ndarray  # [n, USER_LATENT_DIM] float32: [v | b]
    head: np.ndarray  # [CONTENT_DIM + 1, USER_LATENT_DIM] float64 (last row: intercept)
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {v: i for i, v in enumerate(self.video_ids)})

    def from_content(self, content: np.ndarray) -> np.ndarray:
        """[n, CONTENT_DIM] content vectors → [n, USER_LATENT_DIM] predicted latents."""
        c = np.atleast_2d(np.asarray(content, np.float64))[:, :CONTENT_DIM]
        return (c @ self.head[:-1] + self.head[-1]).astype(np.float32)

    def attach(self, a: VideoAnalysis, content: np.ndarray | None = None) -> VideoAnalysis:
        """``a`` with its latent: the learned one when the logs knew the video, else
        predicted from its content (``content`` defaults to its video vector)."""
        i = self.index.get(a.video_id)
        if i is not None:
            return replace(a, latent=tuple(float(x) for x in self.table[i]),
                           latent_source="learned")
        if content is None:
            from enf_core.features import video_vector

            content = video_vector(a)
        lat = self.from_content(content)[0]
        return replace(a, latent=tuple(float(x) for x in lat), latent_source="content")

    def save(self, table_path: Path, head_path: Path) -> None:
        np.savez(table_path, video_ids=np.array(self.video_ids), table=self.table)
        np.save(head_path, self.head)


@dataclass(frozen=True)
class LatentFit:
    """What training needs beyond the shipped model: every item's latent (learned or
    from content), the out-of-fold tables and each interaction row's fold."""

    model: LatentModel
    table: np.ndarray  # [n_items, USER_LATENT_DIM] float32
    learned: np.ndarray  # [n_items] bool
    oof: np.ndarray  # [folds, n_items, USER_LATENT_DIM] float32
    oof_learned: np.ndarray  # [folds, n_items] bool: learned without that fold (else content)
    fold: np.ndarray  # [n_rows] int: the fold of a train row (its user's), -1 for the others
    user_fold: np.ndarray  # [n_users] int: each user code's fold (-1 with one fold)


def load_latent_model(table_path: str | Path, head_path: str | Path) -> LatentModel:
    with np.load(table_path, allow_pickle=False) as z:
        ids, table = [str(x) for x in z["video_ids"]], z["table"].astype(np.float32)
    return LatentModel(ids, table, np.load(head_path, allow_pickle=False))


def _grouped_solve(group: np.ndarray, n_groups: int, x: np.ndarray, t: np.ndarray,
                   reg: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Per group g: argmin Σ (t − x·θ)² + Σ_j reg_j (θ_j − prior_j)², batched."""
    from scipy.sparse import csr_matrix

    d = x.shape[1]
    n = len(group)
    gram = np.zeros((n_groups, d * d))
    rhs = np.zeros((n_groups, d))
    step = 65_536
    for s in range(0, n, step):
        e = min(n, s + step)
        g = csr_matrix((np.ones(e - s), (group[s:e], np.arange(e - s))), shape=(n_groups, e - s))
        xs = x[s:e]
        gram += g @ (xs[:, :, None] * xs[:, None, :]).reshape(e - s, d * d)
        rhs += g @ (xs * t[s:e, None])
    a = gram.reshape(n_groups, d, d) + np.diag(reg)[None]
    b = rhs + (reg * prior)[None]
    return np.linalg.solve(a, b[:, :, None])[:, :, 0]


def _item_step(users: np.ndarray, items: np.ndarray, y: np.ndarray, w: np.ndarray,
               n_items: int, c: LatentFitConfig, mean: float) -> np.ndarray:
    z = np.concatenate([w[users, :LATENT_DIM], np.ones((len(users), 1))], axis=1)
    t = y - w[users, LATENT_DIM]
    reg = np.r_[np.full(LATENT_DIM, c.reg), c.bias_reg]
    prior = np.r_[np.zeros(LATENT_DIM), mean]
    return _grouped_solve(items, n_items, z, t, reg, prior)


def _user_step(users: np.ndarray, items: np.ndarray, y: np.ndarray, theta: np.ndarray,
               n_users: int, c: LatentFitConfig) -> np.ndarray:
    x = np.concatenate([theta[items, :LATENT_DIM], np.ones((len(items), 1))], axis=1)
    t = y - theta[items, LATENT_DIM]
    reg = np.full(USER_LATENT_DIM, c.reg)
    return _grouped_solve(users, n_users, x, t, reg, np.zeros(USER_LATENT_DIM))


def _als(u: np.ndarray, i: np.ndarray, y: np.ndarray, n_users: int, n_items: int,
         c: LatentFitConfig, mean: float, rng: np.random.Generator) -> np.ndarray:
    """[n_items, USER_LATENT_DIM] item latents [v | b] by ``c.iters`` ALS sweeps."""
    theta = np.zeros((n_items, USER_LATENT_DIM))
    theta[:, :LATENT_DIM] = rng.normal(0, 0.1, (n_items, LATENT_DIM))
    theta[:, LATENT_DIM] = mean
    for _ in range(c.iters):
        w = _user_step(u, i, y, theta, n_users, c)
        theta = _item_step(u, i, y, w, n_items, c, mean)
    return theta


def fit_latents(users: np.ndarray, items: np.ndarray, engagement: np.ndarray,
                obs_row: np.ndarray, train_rows: np.ndarray, n_rows: int,
                video_ids: list[str], content: np.ndarray,
                config: LatentFitConfig | None = None,
                row_user: np.ndarray | None = None) -> LatentFit:
    """Fit the video latents on the observations of the train rows.

    One observation per (interaction row, signal): ``users`` / ``items`` int codes,
    ``engagement`` the target, ``obs_row`` the interaction row it came from.
    ``train_rows`` [n_rows] bool marks the rows that may be learned from.
    ``row_user`` [n_rows] is every row's user code (the codes of ``users``; a user
    with no observation may have a code past them); by default each row's code is
    taken from its observations. Each user gets a random fold, and so do its train
    rows. ``content`` [n_items, CONTENT_DIM+] are the items' content vectors.
    """
    c = config or LatentFitConfig()
    t0 = time.perf_counter()
    n_items = len(video_ids)
    if row_user is None:
        row_user = np.full(n_rows, -1, np.int64)
        row_user[obs_row] = users
    row_user = np.asarray(row_user, np.int64)
    n_users = int(max(users.max() if len(users) else -1, row_user.max(initial=-1))) + 1
    rng = np.random.default_rng(c.seed)
    folds = max(c.folds, 1)
    user_fold = rng.integers(0, folds, size=n_users) if folds > 1 else np.full(n_users, -1)
    row_fold = np.full(n_rows, -1, np.int64)
    mark = train_rows & (row_user >= 0)
    row_fold[mark] = user_fold[row_user[mark]]
    tr = np.flatnonzero(train_rows[obs_row])
    u, i, y = users[tr], items[tr], engagement[tr].astype(np.float64)
    fold = user_fold[u] if folds > 1 else np.zeros(len(u), np.int64)
    mean = float(y.mean()) if len(y) else 0.5
    theta = _als(u, i, y, n_users, n_items, c, mean, rng)
    counts = np.bincount(i, minlength=n_items)
    learned = counts >= c.min_rows
    # content head: ridge of the learned latents on content, weighted by their support
    cont = np.concatenate([np.asarray(content, np.float64)[:, :CONTENT_DIM],
                           np.ones((n_items, 1))], axis=1)
    head = np.zeros((CONTENT_DIM + 1, USER_LATENT_DIM))
    head[-1, LATENT_DIM] = mean
    if learned.any():
        sw = np.sqrt(np.minimum(counts, 50).astype(np.float64))[learned, None]
        xs, ys = cont[learned] * sw, theta[learned] * sw
        reg = np.r_[np.full(CONTENT_DIM, c.content_reg), 1e-6]
        head = np.linalg.solve(xs.T @ xs + np.diag(reg), xs.T @ ys)
    predicted = cont @ head
    table = np.where(learned[:, None], theta, predicted).astype(np.float32)
    oof = np.empty((folds, n_items, USER_LATENT_DIM), np.float32)
    oof_learned = np.zeros((folds, n_items), bool)
    for k in range(folds):
        keep = fold != k
        if folds == 1 or not keep.any():
            oof[k], oof_learned[k] = table, learned
            continue
        # the whole fit again without this fold's users: nothing they did is in it
        th = _als(u[keep], i[keep], y[keep], n_users, n_items, c, float(y[keep].mean()), rng)
        seen = np.bincount(i[keep], minlength=n_items) >= c.min_rows
        oof[k] = np.where(seen[:, None], th, predicted)
        oof_learned[k] = seen
    ids = [video_ids[j] for j in np.flatnonzero(learned)]
    model = LatentModel(ids, table[learned], head)
    log.info("video latents: %d learned of %d, %d train observations, %d user folds, %.1fs",
             int(learned.sum()), n_items, len(tr), folds, time.perf_counter() - t0)
    return LatentFit(model, table, learned, oof, oof_learned, row_fold, user_fold)
