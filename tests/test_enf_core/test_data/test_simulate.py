"""The simulator: statistics in range, truth kept apart, frames that the head can read."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from enf_core.data.frames import element_class_mass, head_probabilities, load_head
from enf_core.data.schema import read_dataset
from enf_core.data.simulate import SimulationConfig, simulate
from enf_core.taxonomy import ELEMENTS, REASONS


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("sim")
    result = simulate(out, SimulationConfig(users=300, videos=600, seed=0))
    return out, result


def test_small_simulation_statistics(small) -> None:
    out, result = small
    ds = read_dataset(out)
    s = result.summary
    assert (s["users"], s["videos"]) == (300, 600)
    per_user = ds.interactions.group_by("user_id").aggregate([("video_id", "count")])
    assert pc.min(per_user.column("video_id_count")).as_py() >= 15
    assert 0.15 <= s["implicit_negative_rate"] <= 0.35
    assert 0.001 <= s["explicit_negative_rate"] <= 0.006
    assert all(s["reason_counts"][r.value] > 0 for r in REASONS)
    assert sum(s["split_counts"].values()) == s["interactions"]
    explicit = ds.interactions.filter(ds.interactions.column("explicit_negative"))
    texts = explicit.column("reason_text").to_pylist()
    assert all(texts) and len(set(texts)) >= 0.8 * len(texts)
    assert set(s["oracle"]) == {"explicit_class_acc", "implicit_f1"}


def test_truth_is_kept_apart(small) -> None:
    out, _ = small
    for name in ("users_truth", "videos_truth", "interactions_truth"):
        assert (out / "truth" / f"{name}.parquet").is_file()
    ds = read_dataset(out)
    latent = {"topic", "interests", "sensitivity", "plot_appeal", "element_intensity", "z"}
    for table in (ds.users, ds.videos, ds.interactions):
        assert not latent & set(table.column_names)
    assert "truth" not in {p.name for p in out.iterdir() if p.suffix == ".parquet"}


def test_some_titles_hide_the_element(small) -> None:
    out, _ = small
    truth = pq.read_table(out / "truth" / "videos_truth.parquet").to_pylist()
    with_element = [t for t in truth if any(t["element_objects"]) and not t["real_file"]]
    hidden = [t for t in with_element if not t["title_mentions"]]
    assert 0.15 * len(with_element) <= len(hidden) <= 0.6 * len(with_element)


def test_frames_show_the_element_in_the_evidence_window(small) -> None:
    out, _ = small
    ds = read_dataset(out)
    frames = ds.frames
    assert frames is not None and frames.shape == (600, 16, 1280) and frames.dtype == np.float16
    head = load_head()
    truth = pq.read_table(out / "truth" / "videos_truth.parquet").to_pylist()
    inside, outside = [], []
    for row, t in enumerate(truth):
        if t["real_file"]:
            continue
        intensity = np.array(t["element_intensity"])
        for e, name in enumerate(ELEMENTS):
            if not t["element_objects"][e] or intensity[e] < 0.6:
                continue
            mass = element_class_mass(head_probabilities(np.asarray(frames[row]), head))[:, e]
            windows = [w for w in t["evidence_frames"]]
            hit = np.zeros(16, dtype=bool)
            for lo, hi in windows:
                hit[lo:hi + 1] = True
            inside.append(mass[hit].max())
            outside.append(np.median(mass[~hit]) if (~hit).any() else 0.0)
    assert len(inside) >= 20
    assert np.median(inside) > 5 * np.median(outside)


def test_same_seed_same_data(tmp_path: Path) -> None:
    cfg = SimulationConfig(users=40, videos=80, write_frames=False, seed=3)
    a = simulate(tmp_path / "a", cfg)
    b = simulate(tmp_path / "b", cfg)
    c = simulate(tmp_path / "c", SimulationConfig(users=40, videos=80, write_frames=False, seed=4))
    ta = pq.read_table(tmp_path / "a" / "interactions.parquet")
    assert ta.equals(pq.read_table(tmp_path / "b" / "interactions.parquet"))
    assert not ta.equals(pq.read_table(tmp_path / "c" / "interactions.parquet"))
    assert a.summary == b.summary != c.summary


def test_oracle_lands_in_the_target_ranges(tmp_path: Path) -> None:
    result = simulate(tmp_path, SimulationConfig(users=3000, videos=6000, write_frames=False))
    oracle = result.summary["oracle"]
    assert 0.82 <= oracle["explicit_class_acc"] <= 0.94
    assert 0.68 <= oracle["implicit_f1"] <= 0.82


@pytest.mark.slow
def test_default_scale_in_two_minutes(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = simulate(tmp_path, SimulationConfig())
    wall = time.perf_counter() - start
    s = result.summary
    assert wall <= 120
    assert (s["users"], s["videos"]) == (10_000, 20_000)
    assert s["interactions"] >= 320_000
    assert 0.15 <= s["implicit_negative_rate"] <= 0.35
    assert 0.002 <= s["explicit_negative_rate"] <= 0.004
    assert 0.85 <= s["oracle"]["explicit_class_acc"] <= 0.9
    assert 0.7 <= s["oracle"]["implicit_f1"] <= 0.8
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert size < 1.1e9
