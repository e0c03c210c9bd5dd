from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from enf_core.features import FEATURE_LAYOUT_VERSION, PORTRAIT_DIM, VIDEO_DIM
from models.manifest import MANIFEST_NAME, read_manifest
from models.runtime import DEFAULT_MODEL_DIR, FeatureLayoutError, ModelError, ScorerRuntime
from models.synthetic import SyntheticConfig, synthetic_sample


def _rows(n: int = 64, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    s = synthetic_sample(SyntheticConfig(n=n, seed=seed))
    return s.portraits, s.videos, s.negative


def test_default_model_is_committed_trained_and_loads() -> None:
    manifest = read_manifest(DEFAULT_MODEL_DIR)
    assert manifest["feature_layout_version"] == FEATURE_LAYOUT_VERSION
    assert manifest["training_data_hash"].startswith("sha256:")
    # trained on the default simulation by `enf train agents`, not random weights
    assert manifest["training"]["dataset"] == "simulated"
    assert manifest["metrics"]["valid_any_negative"]["auc"] > 0.75
    rt = ScorerRuntime(prefer_gpu=False)
    assert rt.version == manifest["version"]
    assert rt.providers == ["CPUExecutionProvider"]
    p, v, y = _rows(2000)
    pn, rp = rt.score(p, v)
    assert pn.shape == (2000,) and pn.dtype == np.float32
    assert rp.shape == (2000, 4) and np.allclose(rp.sum(1), 1, atol=1e-5)
    raw = rt.score_outputs(p, v, raw=True)["p_negative"]
    # synthetic rows have no history, latent or learned video latent (nothing the
    # layout-2 model saw in training, so its scores sit high): it still ranks them
    from models.metrics import auc

    assert auc(y == 1, raw) > 0.7
    # shipped calibrated (enf model calibrate on the default simulation): a monotone
    # map of the raw score, with the product operating point beside it
    assert rt.calibrated and 0.0 < rt.operating_point["threshold"] < 1.0  # type: ignore[index]
    assert rt.operating_point["precision"] >= 0.6  # type: ignore[index]
    order = np.argsort(raw)
    assert np.all(np.diff(pn[order]) >= -1e-6) and pn[y == 1].mean() > pn[y == 0].mean()


def test_worker_import_has_no_torch() -> None:
    code = ("import sys, models.runtime, models.video_runtime, enf_core.reason; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_score_user_and_indexed_agree_with_score(model_dir: Path) -> None:
    rt = ScorerRuntime(model_dir, prefer_gpu=False)
    p, v, _ = _rows(50)
    full_p, full_r = rt.score(np.repeat(p[:1], 50, 0), v)
    up, ur = rt.score_user(p[0], v)
    np.testing.assert_allclose(up, full_p, atol=1e-6)
    np.testing.assert_allclose(ur, full_r, atol=1e-6)
    rt.set_video_table(v)
    ip, ir = rt.score_indexed(p[:3], np.zeros(50, np.int64), np.arange(50))
    np.testing.assert_allclose(ip, full_p, atol=1e-6)
    np.testing.assert_allclose(ir, full_r, atol=1e-6)
    with pytest.raises(IndexError):
        rt.score_indexed(p[:1], np.array([0]), np.array([50]))


def test_shape_errors_are_clear(model_dir: Path) -> None:
    rt = ScorerRuntime(model_dir, prefer_gpu=False)
    with pytest.raises(ValueError, match=rf"\[B, {PORTRAIT_DIM}\]"):
        rt.score(np.zeros((2, 5), np.float32), np.zeros((2, VIDEO_DIM), np.float32))
    with pytest.raises(ValueError, match="portraits for"):
        rt.score(np.zeros((2, PORTRAIT_DIM)), np.zeros((3, VIDEO_DIM)))
    pn, rp = rt.score(np.zeros((0, PORTRAIT_DIM)), np.zeros((0, VIDEO_DIM)))
    assert pn.shape == (0,) and rp.shape == (0, 4)


def test_cpu_fallback_is_logged_with_reason(model_dir: Path, caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with caplog.at_level(logging.WARNING, logger="models.runtime"):
        rt = ScorerRuntime(model_dir, prefer_gpu=True)
    assert rt.providers == ["CPUExecutionProvider"]
    assert rt.fallback_reason and "CUDAExecutionProvider" in rt.fallback_reason
    assert any("runs on CPU" in r.message and "onnxruntime-gpu" in r.message
               for r in caplog.records)


def test_layout_mismatch_is_refused(model_dir: Path) -> None:
    path = model_dir / MANIFEST_NAME
    m = json.loads(path.read_text())
    m["feature_layout_version"] = FEATURE_LAYOUT_VERSION + 1
    path.write_text(json.dumps(m))
    with pytest.raises(FeatureLayoutError, match="feature layout"):
        ScorerRuntime(model_dir, prefer_gpu=False)


def test_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model at"):
        ScorerRuntime(tmp_path / "nowhere", prefer_gpu=False)


def _publish_new_version(model_dir: Path) -> str:
    from models.export import export_scorer
    from models.train_scorer import ScorerData, TrainConfig, train_scorer

    s = synthetic_sample(SyntheticConfig(n=1500, seed=11))
    model, _ = train_scorer(ScorerData(s.portraits, s.videos, s.negative, s.reason),
                            TrainConfig(epochs=1, seed=5))
    return str(export_scorer(model, model_dir, name="tiny")["version"])


def test_reload_picks_up_a_new_version(model_dir: Path) -> None:
    rt = ScorerRuntime(model_dir, prefer_gpu=False)
    old = rt.version
    p, v, _ = _rows(20)
    before = rt.score(p, v)[0]
    assert rt.maybe_reload() is False
    new = _publish_new_version(model_dir)
    assert new != old
    assert rt.maybe_reload() is True
    assert rt.version == new
    assert not np.allclose(rt.score(p, v)[0], before)
    assert rt.maybe_reload() is False


def test_reload_keeps_old_model_on_broken_manifest_or_file(
        model_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    rt = ScorerRuntime(model_dir, prefer_gpu=False)
    old = rt.version
    path = model_dir / MANIFEST_NAME
    good = path.read_text()
    path.write_text(good[: len(good) // 2])  # half-written manifest
    with caplog.at_level(logging.WARNING, logger="models.runtime"):
        assert rt.maybe_reload() is False
    assert rt.version == old and "not loaded" in caplog.text
    # a manifest naming a truncated ONNX file: checksum mismatch, old model kept
    m = json.loads(good)
    m["version"] = "next"
    onnx = model_dir / m["files"]["scorer"]["path"]
    truncated = model_dir / "scorer-next.onnx"
    truncated.write_bytes(onnx.read_bytes()[:1000])
    m["files"]["scorer"]["path"] = truncated.name
    path.write_text(json.dumps(m))
    os.utime(path, ns=(1, 1))
    assert rt.maybe_reload() is False
    assert rt.version == old
    p, v, _ = _rows(4)
    assert rt.score(p, v)[0].shape == (4,)
