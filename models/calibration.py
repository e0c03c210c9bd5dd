"""Calibrated probabilities: fitted on the valid split, stored in the manifest.

A scorer trained with class weights and early stopping on F1 gives scores that
rank well but are not probabilities; a product threshold ("suppress when the
chance of a quick swipe or dislike is at least x") needs probabilities. The
fit is scikit-learn's (``IsotonicRegression`` with clipping, or Platt scaling
as a logistic regression on the logit), stored as plain numbers in
``manifest["calibration"]`` and applied with numpy alone inside
``models.runtime`` (the worker never imports scikit-learn):

* ``{"method": "isotonic", "x": [...], "y": [...]}``: piecewise-linear through
  the fitted thresholds, clipped at both ends (exactly ``predict`` of the
  fitted ``IsotonicRegression(out_of_bounds="clip")``);
* ``{"method": "platt", "a": a, "b": b}``: ``sigmoid(a · logit(p) + b)``.

``calibrate_model`` re-calibrates an existing model directory (``enf model
calibrate``) and ``calibration_entry`` is what ``enf train agents`` calls at
export, so every newly trained model ships calibrated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "METHODS",
    "apply_calibration",
    "calibrate_model",
    "calibration_entry",
    "check_calibration",
    "fit_calibration",
]

METHODS = ("isotonic", "platt")
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p.astype(np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(q / (1 - q)))


def fit_calibration(p: np.ndarray, y: np.ndarray, method: str = "isotonic"
                    ) -> dict[str, Any]:
    """Fit a monotone map raw p -> P(y = 1) on held-out rows."""
    p = np.asarray(p, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if len(p) != len(y) or len(p) < 2:
        raise ValueError("calibration needs at least two rows with equal p and y lengths")
    if not 0 < y.sum() < len(y):
        raise ValueError("calibration needs both classes in the held-out rows")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return {"method": "isotonic", "x": [float(v) for v in iso.X_thresholds_],
                "y": [float(v) for v in iso.y_thresholds_], "rows": len(p)}
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(p)[:, None], y)
        return {"method": "platt", "a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0]),
                "rows": len(p)}
    raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, not {method!r}")


def apply_calibration(entry: Mapping[str, Any] | None, p: np.ndarray) -> np.ndarray:
    """Calibrated p (float32); the identity when ``entry`` is None."""
    if entry is None:
        return p
    method = entry.get("method")
    if method == "isotonic":
        x = np.asarray(entry["x"], np.float64)
        yv = np.asarray(entry["y"], np.float64)
        return np.interp(p, x, yv).astype(np.float32)
    if method == "platt":
        z = float(entry["a"]) * _logit(np.asarray(p)) + float(entry["b"])
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    raise ValueError(f"unknown calibration method {method!r}")


def check_calibration(calibration: Any, *, where: str = "calibration") -> None:
    """Raise ValueError naming what is wrong with a manifest's ``calibration``."""
    if not isinstance(calibration, Mapping):
        raise ValueError(f"{where}: expected an object of output -> calibration")
    for name, entry in calibration.items():
        if not isinstance(entry, Mapping) or entry.get("method") not in METHODS:
            raise ValueError(f"{where}.{name}: method must be one of {', '.join(METHODS)}")
        if entry["method"] == "isotonic":
            x, y = entry.get("x"), entry.get("y")
            if (not isinstance(x, list) or not isinstance(y, list) or len(x) != len(y)
                    or len(x) < 1 or any(b < a for a, b in pairwise(x))):
                raise ValueError(f"{where}.{name}: x and y must be equal-length lists, "
                                 f"x increasing")
        elif not all(isinstance(entry.get(k), int | float) for k in ("a", "b")):
            raise ValueError(f"{where}.{name}: platt needs numbers a and b")


def calibration_entry(p_negative: np.ndarray, y_negative: np.ndarray,
                      p_dislike: np.ndarray | None, y_dislike: np.ndarray | None, *,
                      method: str, target_precision: float) -> dict[str, Any]:
    """The manifest's ``calibration`` and ``operating_point`` from valid rows' raw
    outputs and labels (the operating point is measured on the calibrated p)."""
    from enf_core.policy import operating_point

    calibration = {"p_negative": fit_calibration(p_negative, y_negative, method)}
    if p_dislike is not None and y_dislike is not None and 0 < int(np.sum(y_dislike)):
        calibration["p_dislike"] = fit_calibration(p_dislike, y_dislike, method)
    cal = apply_calibration(calibration["p_negative"], np.asarray(p_negative, np.float32))
    op = operating_point(np.asarray(y_negative), cal, target_precision)
    op["threshold"] = round(op["threshold"], 6)
    return {"calibration": calibration, "operating_point": op}


def _valid_rows(data_dir: Path, title_encoder: str) -> tuple[Any, np.ndarray]:
    """The valid split's rows the scorer was validated on (as in train_agents)."""
    from models.dataset_features import dataset_features

    f = dataset_features(data_dir, title_encoder=title_encoder)
    valid = f.rows("valid")
    valid = valid[f.implicit_known[valid] | f.rating_known[valid]]
    if len(valid) == 0:
        raise ValueError(f"{data_dir}: no valid-split rows with a known outcome")
    return f, valid


def calibrate_model(data_dir: str | Path, model_dir: str | Path, *, method: str = "isotonic",
                    target_precision: float = 0.6) -> dict[str, Any]:
    """Fit calibration on DATA's valid split with MODEL's own ONNX scorer, publish
    a new manifest version atomically (same weight files), return the manifest."""
    from models.manifest import archive_manifest, archive_name, read_manifest, write_manifest
    from models.runtime import ScorerRuntime

    data_dir, model_dir = Path(data_dir), Path(model_dir)
    manifest = read_manifest(model_dir)
    runtime = ScorerRuntime(model_dir, prefer_gpu=False)
    encoder = str((manifest.get("training") or {}).get("title_encoder") or "minilm")
    f, valid = _valid_rows(data_dir, encoder)
    out = runtime.score_outputs(f.portraits[valid], f.video_vectors(valid), raw=True)
    neg = f.implicit[valid] | f.explicit[valid] | (f.dislike[valid] & f.rating_known[valid])
    entry = calibration_entry(out["p_negative"], neg.astype(np.int64), out.get("p_dislike"),
                              f.explicit[valid].astype(np.int64), method=method,
                              target_precision=target_precision)
    now = datetime.now(UTC)
    stamp = f"{now:%Y%m%dT%H%M%SZ}"
    digest = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:8]
    new = {**manifest, **entry, "parent_version": manifest["version"],
           "version": f"{stamp}-cal{digest}", "created": now.isoformat(timespec="seconds"),
           "calibrated": {"data": str(data_dir.resolve()), "at": stamp, "method": method,
                          "rows": len(valid)}}
    if not (model_dir / archive_name(str(manifest["version"]))).is_file():
        archive_manifest(model_dir, manifest)  # so `enf model rollback` can undo this
    write_manifest(model_dir, new)
    return new
