"""Calibration: fitted with scikit-learn, applied with numpy inside the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.calibration import apply_calibration, calibration_entry, fit_calibration
from models.manifest import read_manifest, write_manifest
from models.runtime import ModelError, ScorerRuntime
from models.synthetic import SyntheticConfig, synthetic_sample


def _skewed(n: int = 20_000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores that rank well but overstate: the true rate is p ** 2."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return p, (rng.random(n) < p ** 2).astype(np.int64)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_maps_scores_to_observed_rates(method: str) -> None:
    p, y = _skewed()
    entry = fit_calibration(p, y, method)
    cal = apply_calibration(entry, p.astype(np.float32))
    assert cal.dtype == np.float32
    for lo in (0.2, 0.5, 0.8):  # in a bin, the calibrated mean is the observed rate
        m = (p >= lo) & (p < lo + 0.1)
        assert abs(cal[m].mean() - y[m].mean()) < 0.04
        assert abs(p[m].mean() - y[m].mean()) > 0.1  # the raw score was off
    assert np.all(np.diff(cal[np.argsort(p)]) >= -1e-6)  # monotone


def test_isotonic_apply_equals_sklearn_predict() -> None:
    from sklearn.isotonic import IsotonicRegression

    p, y = _skewed(5000, seed=1)
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
    probe = np.linspace(-0.5, 1.5, 301)
    got = apply_calibration(fit_calibration(p, y, "isotonic"), probe)
    assert np.allclose(got, iso.predict(probe), atol=1e-6)


def test_calibration_refuses_one_class_and_unknown_methods() -> None:
    with pytest.raises(ValueError, match="both classes"):
        fit_calibration(np.array([0.1, 0.2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="method"):
        fit_calibration(np.array([0.1, 0.2]), np.array([0, 1]), "magic")


def test_entry_has_calibration_and_an_operating_point_on_calibrated_p() -> None:
    p, y = _skewed()
    d = (p > 0.95).astype(np.float64)
    e = calibration_entry(p, y, p, d, method="isotonic", target_precision=0.6)
    assert set(e["calibration"]) == {"p_negative", "p_dislike"}
    op = e["operating_point"]
    assert op["precision"] >= 0.6 and op["measured_on"] == "valid"
    cal = apply_calibration(e["calibration"]["p_negative"], p.astype(np.float32))
    flagged = cal >= op["threshold"]
    assert y[flagged].mean() >= 0.6
    assert op["flagged_share"] == pytest.approx(flagged.mean(), abs=1e-3)


def test_runtime_applies_the_manifests_calibration(model_dir: Path) -> None:
    s = synthetic_sample(SyntheticConfig(n=512, seed=5))
    rt = ScorerRuntime(model_dir, prefer_gpu=False)
    assert not rt.calibrated and rt.operating_point is None
    raw, _ = rt.score(s.portraits, s.videos)
    manifest = read_manifest(model_dir)
    # a deliberately non-trivial map: everything above 0.5 becomes 0.9, below 0.1
    manifest["calibration"] = {"p_negative": {"method": "isotonic", "x": [0.49, 0.51],
                                              "y": [0.1, 0.9]}}
    manifest["operating_point"] = {"threshold": 0.5, "target_precision": 0.6}
    manifest["version"] = manifest["version"] + "-cal"
    write_manifest(model_dir, manifest)
    assert rt.maybe_reload()
    assert rt.calibrated and rt.operating_point == {"threshold": 0.5, "target_precision": 0.6}
    cal, _ = rt.score(s.portraits, s.videos)
    assert np.allclose(cal, np.where(raw > 0.51, 0.9, np.where(raw < 0.49, 0.1, cal)))
    outs = rt.score_outputs(s.portraits, s.videos)
    raw_outs = rt.score_outputs(s.portraits, s.videos, raw=True)
    assert np.allclose(outs["p_negative"], cal) and np.allclose(raw_outs["p_negative"], raw)


def test_runtime_refuses_a_broken_calibration(model_dir: Path) -> None:
    manifest = read_manifest(model_dir)
    manifest["calibration"] = {"p_negative": {"method": "isotonic", "x": [0.5, 0.1],
                                              "y": [0.0, 1.0]}}
    write_manifest(model_dir, manifest)
    with pytest.raises(ModelError, match="x increasing"):
        ScorerRuntime(model_dir, prefer_gpu=False)
