"""End to end on a tiny simulated dataset: features, training, export, eval, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from streams.cli import main


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    from enf_core.data.simulate import SimulationConfig, simulate

    # keep this session's feature caches out of the user's cache
    os.environ["ENF_FEATURE_CACHE"] = str(tmp_path_factory.mktemp("feature-cache"))
    out = tmp_path_factory.mktemp("tiny-sim")
    simulate(out, SimulationConfig(users=300, videos=600, seed=5))
    return out


@pytest.fixture(scope="session")
def trained(tiny_dataset: Path, encoders: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, dict]:
    from models.agents_pipeline import AgentsTrainConfig, train_agents
    from models.students import StudentConfig
    from models.train_scorer import TrainConfig

    out = tmp_path_factory.mktemp("tiny-model")
    manifest = train_agents(tiny_dataset, out, AgentsTrainConfig(
        scorer=TrainConfig(epochs=3, batch_size=512), students=StudentConfig(epochs=2),
        portrait_step=StudentConfig(epochs=2), portrait_step_rows=5000))
    return out, manifest


def test_dataset_features_are_causal_and_aligned(tiny_dataset: Path, encoders: Path) -> None:
    from enf_core.features import PORTRAIT_DIM, PORTRAIT_SLICES, VIDEO_DIM, VIDEO_SLICES
    from models.dataset_features import dataset_features

    f = dataset_features(tiny_dataset, cache=False)
    n = len(f.split)
    assert f.portraits.shape == (n, PORTRAIT_DIM) and f.videos.shape[1] == VIDEO_DIM
    assert set(np.unique(f.split)) == {"train", "valid", "test"}
    # the portrait before a user's first row is the prior one: no label leaks in
    first = {}
    for i, u in enumerate(f.user_ids):
        first.setdefault(u, i)
    firsts = f.portraits[list(first.values())]
    assert np.allclose(firsts[:, PORTRAIT_SLICES["rates"]].sum(1), 0.0)
    assert np.allclose(firsts[:, PORTRAIT_SLICES["latent"]], 0.0)
    assert np.allclose(firsts[:, PORTRAIT_SLICES["history"]], 0.0)
    # later rows carry a latent taste learned from the earlier ones
    assert np.abs(f.portraits[:, PORTRAIT_SLICES["latent"]]).sum(1).mean() > 0
    # train rows see their video's latent out of fold; valid / test rows the whole-train fit
    lat = VIDEO_SLICES["latent"]
    train, test = f.rows("train"), f.rows("test")
    assert not np.allclose(f.video_vectors(train)[:, lat], f.videos[f.video_row[train]][:, lat])
    np.testing.assert_array_equal(f.video_vectors(test), f.videos[f.video_row[test]])
    assert (f.videos[:, VIDEO_SLICES["latent_known"].start] == 1.0).mean() > 0.5
    # folds are of users, and a train row's portrait was replayed without its user
    assert f.fold is not None
    for u in np.unique(f.user_ids[train]):
        assert len(np.unique(f.fold[train][f.user_ids[train] == u])) == 1
    assert (f.fold[f.split != "train"] == -1).all()
    assert (f.reason_source[f.explicit] == 1).all()
    assert f.implicit.mean() == pytest.approx(0.22, abs=0.05)


def test_train_agents_exports_a_loadable_versioned_model(trained: tuple[Path, dict]) -> None:
    from models.runtime import ScorerRuntime

    out, m = trained
    assert set(m["files"]) >= {"scorer", "scorer_indexed", "torch", "video_head",
                               "portrait_step", "latents", "latent_head"}
    assert m["parity_max_abs_diff"] <= 1e-5
    assert m["students"]["video_head"]["parity_max_abs_diff"] <= 1e-5
    assert m["students"]["portrait_step"]["parity_max_abs_diff"] <= 1e-5
    assert {"implicit", "any"} <= set(m["thresholds"])
    rt = ScorerRuntime(out, prefer_gpu=False)
    assert rt.version == m["version"]
    from enf_core.features import PORTRAIT_DIM, VIDEO_DIM

    outs = rt.score_outputs(np.zeros((3, PORTRAIT_DIM), np.float32),
                            np.zeros((3, VIDEO_DIM), np.float32))
    assert set(outs) == {"p_negative", "reason_probs", "p_dislike"}
    assert rt.latents is not None and len(rt.latents.video_ids) > 0
    # the explanation student ships in the same version, loaded without torch
    assert "explainer" in m["files"] and rt.explainer is not None
    assert m["students"]["explainer"]["keys"] == len(rt.explainer.bank) > 0


def test_train_agents_ships_calibrated_with_an_operating_point(trained: tuple[Path, dict]
                                                               ) -> None:
    from models.runtime import ScorerRuntime

    out, m = trained
    assert m["calibration"]["p_negative"]["method"] == "isotonic"
    op = m["operating_point"]
    assert op["target_precision"] == 0.6 and op["measured_on"] == "valid"
    assert 0.0 < op["flagged_share"] < 1.0 and 0.0 <= op["threshold"] <= 1.0
    rt = ScorerRuntime(out, prefer_gpu=False)
    assert rt.calibrated and rt.operating_point == op


def test_cli_model_calibrate_publishes_a_new_version(tiny_dataset: Path,
                                                     trained: tuple[Path, dict],
                                                     tmp_path: Path) -> None:
    import shutil

    from models.manifest import list_versions, read_manifest
    from models.runtime import ScorerRuntime

    model = tmp_path / "model"
    shutil.copytree(trained[0], model)
    before = read_manifest(model)
    res = CliRunner().invoke(main, ["model", "calibrate", "--data", str(tiny_dataset),
                                    "--model", str(model), "--method", "platt",
                                    "--target-precision", "0.5", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output.strip().splitlines()[-1])
    after = read_manifest(model)
    assert out["from"] == before["version"] == after["parent_version"]
    assert out["version"] == after["version"] != before["version"]
    assert after["calibration"]["p_negative"]["method"] == "platt"
    assert out["operating_point"] == after["operating_point"]
    assert after["operating_point"]["target_precision"] == 0.5
    assert after["files"] == before["files"]  # same weights, new probabilities
    assert ScorerRuntime(model, prefer_gpu=False).calibrated
    assert {v["version"] for v in list_versions(model)["versions"]} >= {before["version"],
                                                                          after["version"]}
    bad = CliRunner().invoke(main, ["model", "calibrate", "--data", str(tmp_path),
                                    "--model", str(model), "--json"])
    assert bad.exit_code == 1 and "error" in json.loads(bad.output.strip().splitlines()[-1])


def test_eval_quick_reports_enf_and_baselines(tiny_dataset: Path,
                                              trained: tuple[Path, dict]) -> None:
    from models.evaluate import EvalConfig, evaluate_quick

    names = ("item_popularity", "logistic_enf_inputs", "biased_mf")
    r = evaluate_quick(tiny_dataset, trained[0],
                       config=EvalConfig(rating_datasets=(), baselines=names))
    keys = {"acc", "precision", "recall", "f1", "auc", "threshold_acc", "threshold_f1"}
    for task in ("explicit", "implicit"):
        assert keys | {"class_acc"} <= set(r[task])
        assert r[task]["acc"] >= r[task]["acc_at_f1_threshold"] - 0.05  # chosen on valid
        for b in names:
            assert keys <= set(r["baselines"][b][task])
        for b in ("item_popularity", "logistic_enf_inputs"):  # the two with a reason head
            assert "class_acc" in r["baselines"][b][task]
    assert set(r["baselines_info"]) == set(names)
    assert r["implicit"]["auc"] > 0.6  # a real signal even on 300 users
    assert r["skipped"] == {"movielens": "not requested", "steam": "not requested"}
    ex = r["explainers"]
    assert {"template", "fixed_phrase", "student"} <= set(ex)
    assert ex["protocol"]["rows"] == ex["student"]["n"] > 0
    assert all(0 <= ex[k][m] <= 1 for k in ("template", "fixed_phrase", "student")
               for m in ("rouge1", "rouge2", "rougeL"))


def test_rating_protocol_on_a_small_rating_dataset(tiny_dataset: Path, encoders: Path) -> None:
    """The like/dislike protocol on rating data (a tiny stand-in with MovieLens' shape)."""
    from dataclasses import replace

    from models.dataset_features import dataset_features
    from models.evaluate import EvalConfig, evaluate_rating

    f = dataset_features(tiny_dataset)
    rng = np.random.default_rng(0)
    rating_known = np.ones(len(f.split), bool)
    dislike = f.implicit | (rng.random(len(f.split)) < 0.2)
    f = replace(f, rating_known=rating_known, dislike=dislike)
    names = ("item_popularity", "user_item_bias")
    r = evaluate_rating(f, EvalConfig(domain_epochs=2, baselines=names), data_dir=tiny_dataset)
    assert r["enf"]["positives"] * 2 == r["enf"]["n"]  # balanced 1:1
    assert {"acc", "f1", "auc"} <= set(r["enf"])
    assert r["enf"]["f1_all_negative"] == pytest.approx(2 / 3, abs=1e-3)
    assert set(r["baselines"]) == set(names)
    for b in names:
        assert r["baselines"][b]["n"] == r["enf"]["n"]  # the same test rows


def _last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def test_cli_train_and_eval(tiny_dataset: Path, encoders: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["train", "agents", "--data", str(tiny_dataset), "--out",
                               str(tmp_path / "m"), "--epochs", "1", "--no-students"])
    assert res.exit_code == 0, res.output
    out = _last_json(res.output)
    assert out["version"] and "valid_implicit" in out["metrics"]
    res = runner.invoke(main, ["eval", "quick", "--data", str(tiny_dataset), "--model",
                               str(tmp_path / "m"), "--skip", "movielens,steam", "--skip",
                               "user_item_bias", "--baselines", "item_popularity,user_item_bias",
                               "--json"])
    assert res.exit_code == 0, res.output
    report = _last_json(res.output)
    assert set(report) >= {"explicit", "implicit", "baselines", "paper"}
    assert set(report["baselines"]) == {"item_popularity"}
    res = runner.invoke(main, ["eval", "quick", "--data", str(tiny_dataset), "--baselines",
                               "xgboost"])
    assert res.exit_code != 0 and "unknown xgboost" in res.output


def test_cli_agents_profile(tiny_dataset: Path, encoders: Path) -> None:
    res = CliRunner().invoke(main, ["agents", "profile", "--data", str(tiny_dataset), "--user",
                                    "u000001", "--json"])
    assert res.exit_code == 0, res.output
    out = _last_json(res.output)
    assert out["user_id"] == "u000001" and out["events"] > 0
    assert {"demographics", "interests", "tags", "reason_tolerance", "quick_swipe_rate",
            "redis_hash"} <= set(out)


def test_cli_agents_video(encoders: Path) -> None:
    video = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "videos" / \
        "moviepy_fire2.mp4"
    if not video.is_file():
        pytest.skip("shared/data/videos not present")
    res = CliRunner().invoke(main, ["agents", "video", str(video), "--title",
                                    "Cosy evening by the fire", "--backend", "onnx", "--json"])
    assert res.exit_code == 0, res.output
    out = _last_json(res.output)
    assert len(out["frame_indices"]) == 16
    assert set(out["reasons"]) == {"negative_event", "vulgar_or_value_conflict", "boring",
                                   "visual_discomfort"}
    assert any(e["name"] == "fire_disaster" for e in out["elements"])
    missing = CliRunner().invoke(main, ["agents", "video", "/nonexistent.mp4", "--backend",
                                        "onnx"])
    assert missing.exit_code == 1 and "not found" in missing.output
