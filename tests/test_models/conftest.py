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
