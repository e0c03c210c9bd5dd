"""The response model shared by the simulator and the A/B: same output, reusable draws."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from enf_core.data.response import hashed_draws, latent_p_negative, respond
from enf_core.data.simulate import SimulationConfig, simulate

# sha256 of every Parquet table a small simulation writes, computed with the
# simulator's outcome model before it moved to enf_core.data.response: the move
# must not change a single value of `enf data simulate` for a given seed.
_SMALL_DIGEST = "b67518bf75fef49e7ed202eec5ce1a93312f31a78c6a34cd0272d2b56de4baae"


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.parquet")):
        h.update(f.name.encode())
        h.update(repr(pq.read_table(f).to_pydict()).encode())
    return h.hexdigest()


def test_simulate_output_unchanged_for_a_seed(tmp_path: Path) -> None:
    simulate(tmp_path, SimulationConfig(users=300, videos=400, seed=3, write_frames=False,
                                        real_videos_per_file=0))
    assert _digest(tmp_path) == _SMALL_DIGEST


def _world(n_users: int = 50, n_videos: int = 80, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    g = rng.gamma(0.5, size=(n_users, 16))
    users = {"interests": g / g.sum(axis=1, keepdims=True),
             "sens": rng.random((n_users, 11)) * (rng.random((n_users, 11)) < 0.3),
             "engagement": rng.normal(0, 0.4, n_users), "vocal": rng.normal(0, 0.8, n_users)}
    intensity = rng.uniform(0.3, 1.0, (n_videos, 11)) * (rng.random((n_videos, 11)) < 0.2)
    videos = {"topic": rng.integers(0, 16, n_videos), "intensity": intensity,
              "quality": rng.normal(0, 0.35, n_videos), "appeal": rng.beta(2.2, 1.8, n_videos),
              "duration": rng.integers(5_000, 60_000, n_videos)}
    return users, videos


def test_hashed_draws_are_common_random_numbers() -> None:
    cfg = SimulationConfig()
    users, videos = _world()
    u = np.array([1, 2, 3, 1])
    v = np.array([5, 5, 7, 5])
    a = respond(cfg, users, videos, u, v, np.zeros(4), hashed_draws(cfg, 11, u, v),
                dislike_intercept=-6.0)
    # The same (seed, user, video) reacts alike wherever it appears...
    assert a.watch_ratio[0] == a.watch_ratio[3]
    # ... and in another request, at another position, with the same noise.
    b = respond(cfg, users, videos, u[:1], v[:1], np.full(1, 3), hashed_draws(cfg, 11, u[:1],
                                                                             v[:1]),
                dislike_intercept=-6.0)
    assert b.z[0] < a.z[0]  # the position effect lowers z
    c = hashed_draws(cfg, 12, u, v)
    assert not np.allclose(c.noise, hashed_draws(cfg, 11, u, v).noise)


def test_respond_matches_its_probabilities_on_average() -> None:
    cfg = SimulationConfig()
    users, videos = _world()
    rng = np.random.default_rng(1)
    m = 40_000
    u, v = rng.integers(0, 50, m), rng.integers(0, 80, m)
    out = respond(cfg, users, videos, u, v, np.zeros(m), hashed_draws(cfg, 0, u, v))
    assert abs(out.implicit.mean() - out.p_implicit.mean()) < 0.02
    # Calibrated intercept: the expected dislike rate is the configured one.
    assert abs(out.p_dislike.mean() - cfg.dislike_rate) < 1e-4
    again = respond(cfg, users, videos, u, v, np.zeros(m), hashed_draws(cfg, 0, u, v),
                    dislike_intercept=out.dislike_intercept)
    np.testing.assert_array_equal(again.explicit, out.explicit)
    p_neg = latent_p_negative(cfg, users, videos, u, v, np.zeros(m), out.dislike_intercept)
    assert np.all((p_neg >= out.p_implicit) & (p_neg <= 1.0))
    negative = out.implicit | out.explicit
    assert abs(negative.mean() - p_neg.mean()) < 0.02
