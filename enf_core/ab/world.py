"""The simulated world of an A/B: a simulation's latent truth and what a feed can observe.

``load_world`` reads any ``enf data simulate`` output. The latent part (traits,
video elements, the noise model) drives only the simulated users' reactions and
the oracle arm; the observed part (declared interest tags, the logged history,
video titles and tags) is all the baseline ranker and the stream ever see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from enf_core.data.schema import read_dataset
from enf_core.data.simulate import SimulationConfig
from enf_core.taxonomy import ELEMENTS, TOPICS

__all__ = ["History", "World", "load_world", "recover_intercept"]


@dataclass(frozen=True)
class History:
    """A user's logged interactions (observed), in time order, as row indices."""

    video: np.ndarray  # video index
    watch_ratio: np.ndarray
    play_ms: np.ndarray
    disliked: np.ndarray
    category: list[str]
    text: list[str]


@dataclass
class World:
    """Latent truth (``users``, ``videos``: the response model's inputs) and observations."""

    config: SimulationConfig
    users: dict[str, Any]  # interests, sens, engagement, vocal + user_id, age, gender, ...
    videos: dict[str, Any]  # topic, intensity, quality, appeal, duration + observed fields
    dislike_intercept: float
    # observed
    video_topic: np.ndarray  # topic index from the video's first tag (what the feed knows)
    popularity: np.ndarray  # impressions of each video in the logged history (+1)
    histories: list[History]
    source: str = ""

    @property
    def n_users(self) -> int:
        return len(self.users["user_id"])

    @property
    def n_videos(self) -> int:
        return len(self.videos["video_id"])


def _config(noise_model: dict[str, Any]) -> SimulationConfig:
    raw = noise_model.get("config", {})
    scalar = {f.name: raw[f.name] for f in fields(SimulationConfig)
              if f.name in raw and not isinstance(raw[f.name], dict | list)}
    return replace(SimulationConfig(), **scalar)


def recover_intercept(cfg: SimulationConfig, p_dislike: np.ndarray, scores: np.ndarray,
                      vocal: np.ndarray, implicit: np.ndarray) -> float:
    """The simulator's calibrated dislike intercept, recovered from its truth:
    logit(p_dislike) - drive, the same on every row (median against float32 rounding)."""
    p = np.clip(p_dislike.astype(np.float64), 1e-12, 1 - 1e-12)
    drive = cfg.dislike_gain * scores.max(axis=1) + vocal + cfg.dislike_after_swipe * implicit
    return float(np.median(np.log(p / (1 - p)) - drive))


def _matrix(column: Any) -> np.ndarray:
    return np.asarray(column.to_pylist(), dtype=np.float64)


def load_world(directory: str | Path) -> World:
    """Read a simulation (``DIR`` and ``DIR/truth``) into a ``World``."""
    root = Path(directory)
    truth = root / "truth"
    if not (truth / "users_truth.parquet").is_file():
        raise FileNotFoundError(f"{root} has no latent truth ({truth}): enf ab needs an "
                                "`enf data simulate` output")
    noise = json.loads((truth / "noise_model.json").read_text())
    cfg = _config(noise)
    ds = read_dataset(root)
    ut = pq.read_table(truth / "users_truth.parquet")
    vt = pq.read_table(truth / "videos_truth.parquet")
    user_ids = ds.users.column("user_id").to_pylist()
    if ut.column("user_id").to_pylist() != user_ids:
        raise ValueError("users.parquet and truth/users_truth.parquet disagree on users")
    video_ids = ds.videos.column("video_id").to_pylist()
    if vt.column("video_id").to_pylist() != video_ids:
        raise ValueError("videos.parquet and truth/videos_truth.parquet disagree on videos")
    t_index = {t: i for i, t in enumerate(TOPICS)}
    users: dict[str, Any] = {
        "user_id": np.array(user_ids, dtype=object),
        "interests": _matrix(ut.column("interests")),
        "sens": _matrix(ut.column("sensitivity")),
        "engagement": ut.column("engagement").to_numpy().astype(np.float64),
        "vocal": ut.column("vocal").to_numpy().astype(np.float64),
        "age": ds.users.column("age").to_pylist(),
        "gender": ds.users.column("gender").to_pylist(),
        "occupation": ds.users.column("occupation").to_pylist(),
        "interest_tags": [list(t or []) for t in ds.users.column("interest_tags").to_pylist()],
    }
    tags = [list(t or []) for t in ds.videos.column("tags").to_pylist()]
    videos: dict[str, Any] = {
        "video_id": np.array(video_ids, dtype=object),
        "topic": np.array([t_index[t] for t in vt.column("topic").to_pylist()]),
        "intensity": _matrix(vt.column("element_intensity")),
        "objects": [list(o) for o in vt.column("element_objects").to_pylist()],
        "quality": vt.column("quality").to_numpy().astype(np.float64),
        "appeal": vt.column("plot_appeal").to_numpy().astype(np.float64),
        "duration": ds.videos.column("duration_ms").to_numpy().astype(np.int64),
        "title": ds.videos.column("title").to_pylist(),
        "tags": tags,
        "uri": ds.video_uris(),
    }
    if videos["intensity"].shape[1] != len(ELEMENTS):
        raise ValueError("the simulation's element list differs from enf_core.taxonomy")
    video_topic = np.array([t_index.get(t[0], -1) if t else -1 for t in tags])

    inter = ds.interactions
    it = pq.read_table(truth / "interactions_truth.parquet",
                       columns=["p_dislike", "reason_scores"])
    u_index = {u: i for i, u in enumerate(user_ids)}
    v_index = {v: i for i, v in enumerate(video_ids)}
    uix = np.array([u_index[u] for u in inter.column("user_id").to_pylist()])
    vix = np.array([v_index[v] for v in inter.column("video_id").to_pylist()])
    implicit = inter.column("implicit_negative").to_numpy(zero_copy_only=False).astype(bool)
    sample = np.arange(min(len(uix), 20_000))
    intercept = recover_intercept(
        cfg, it.column("p_dislike").to_numpy()[sample],
        _matrix(it.column("reason_scores").slice(0, len(sample))),
        users["vocal"][uix[sample]], implicit[sample])
    popularity = np.bincount(vix, minlength=len(video_ids)).astype(np.float64) + 1.0

    ts = inter.column("ts").to_numpy()
    ratio = inter.column("watch_ratio").to_numpy(zero_copy_only=False).astype(np.float64)
    play = inter.column("play_ms").to_numpy(zero_copy_only=False)
    disliked = inter.column("explicit_negative").to_numpy(zero_copy_only=False).astype(bool)
    cats = inter.column("reason_category").to_pylist()
    texts = inter.column("reason_text").to_pylist()
    order = np.lexsort((ts, uix))
    bounds = np.searchsorted(uix[order], np.arange(len(user_ids) + 1))
    histories = []
    for u in range(len(user_ids)):
        rows = order[bounds[u]:bounds[u + 1]]
        histories.append(History(vix[rows], np.nan_to_num(ratio[rows]),
                                 np.nan_to_num(play[rows].astype(np.float64)).astype(np.int64),
                                 disliked[rows], [cats[r] or "" for r in rows],
                                 [texts[r] or "" for r in rows]))
    return World(cfg, users, videos, intercept, video_topic, popularity, histories,
                 source=str(root))
