"""Export the scorer to ONNX with its manifest, atomically and checked.

Order of a publish: write ``scorer-<version>.onnx`` (and its indexed twin and
the torch weights), check that onnxruntime reproduces torch within 1e-5, then
replace ``manifest.json``. A scorer polling the directory therefore never sees a
manifest that names a file not yet complete. Old versions are pruned after the
swap: the archived manifests ``manifest-<version>.json`` of the current and
the ``KEEP_OLD_VERSIONS`` previous versions, and every file they name, stay, so
``enf model rollback`` can restore them (a running session has its weights in
memory already).
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from enf_core.features import FEATURE_LAYOUT_VERSION, PORTRAIT_DIM, VIDEO_DIM
from enf_core.taxonomy import REASONS
from models.manifest import (
    MANIFEST_NAME,
    archive_manifest,
    archive_name,
    file_sha256,
    prune_versions,
    read_manifest,
    write_manifest,
)
from models.scorer import IndexedScorer, ScorerNet

__all__ = ["OPSET", "PARITY_ATOL", "data_hash", "export_scorer", "onnx_parity"]

log = logging.getLogger(__name__)
OPSET = 17
PARITY_ATOL = 1e-5
KEEP_OLD_VERSIONS = 4  # archived versions kept restorable beside the current one

SCORER_INPUTS = [
    {"name": "portrait", "shape": ["batch", PORTRAIT_DIM], "dtype": "float32"},
    {"name": "video", "shape": ["batch", VIDEO_DIM], "dtype": "float32"},
]
SCORER_OUTPUTS = [
    {"name": "p_negative", "shape": ["batch"], "dtype": "float32"},
    {"name": "reason_probs", "shape": ["batch", len(REASONS)], "dtype": "float32",
     "order": [r.value for r in REASONS]},
    {"name": "p_dislike", "shape": ["batch"], "dtype": "float32"},
]
OUTPUT_NAMES = ["p_negative", "reason_probs", "p_dislike"]
INDEXED_INPUTS = [
    {"name": "portrait", "shape": ["users", PORTRAIT_DIM], "dtype": "float32"},
    {"name": "portrait_index", "shape": ["batch"], "dtype": "int64"},
    {"name": "video_table", "shape": ["videos", VIDEO_DIM], "dtype": "float32"},
    {"name": "video_index", "shape": ["batch"], "dtype": "int64"},
]


def data_hash(*arrays: np.ndarray) -> str:
    """sha256 over the arrays' dtypes, shapes and bytes: which data made a model."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return "sha256:" + h.hexdigest()


def _export(module: torch.nn.Module, args: tuple[torch.Tensor, ...], path: Path,
            inputs: list[str], dynamic: dict[str, dict[int, str]]) -> None:
    tmp = path.with_suffix(".onnx.tmp")
    torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=OPSET,
                      input_names=inputs, output_names=OUTPUT_NAMES,
                      dynamic_axes=dynamic, do_constant_folding=True)
    tmp.replace(path)


def onnx_parity(model: ScorerNet, onnx_path: str | Path, *, n: int = 512, seed: int = 0) -> float:
    """Max |onnxruntime − torch| over both outputs on random in-range inputs: the traits
    uniform in [0, 1]; the latent and history columns (unbounded) around the training
    data (the model's stored mean ± 2 std), where the model is used."""
    import onnxruntime as ort

    from enf_core.features import PORTRAIT_SLICES, VIDEO_SLICES

    rng = np.random.default_rng(seed)
    p = rng.random((n, PORTRAIT_DIM), dtype=np.float32)
    v = rng.random((n, VIDEO_DIM), dtype=np.float32)
    mean = model.in_mean.detach().cpu().numpy()  # type: ignore[operator]
    std = model.in_std.detach().cpu().numpy()  # type: ignore[operator]
    for x, start, offset in ((p, PORTRAIT_SLICES["latent"].start, 0),
                             (v, VIDEO_SLICES["latent"].start, PORTRAIT_DIM)):
        cols = slice(offset + start, offset + x.shape[1])
        x[:, start:] = (mean[cols] + std[cols] * rng.uniform(-2, 2, (n, x.shape[1] - start))
                        ).astype(np.float32)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"portrait": p, "video": v})
    model.eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(p), torch.from_numpy(v))
    return float(max(np.abs(g - t.numpy()).max() for g, t in zip(got, ref, strict=True)))


def _new_version(model: ScorerNet) -> str:
    h = hashlib.sha256()
    for t in model.state_dict().values():
        h.update(t.detach().cpu().numpy().tobytes())
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{h.hexdigest()[:8]}"


VERSIONED_PREFIXES = ("scorer", "scorer_indexed", "video_head", "portrait_step", "explainer",
                      "latents", "latent_head")


def export_scorer(model: ScorerNet, model_dir: str | Path, *, name: str = "enf-scorer",
                  metrics: dict[str, Any] | None = None, training_data_hash: str = "",
                  versioned: bool = True, extra: dict[str, Any] | None = None,
                  extra_files: dict[str, str] | None = None) -> dict[str, Any]:
    """Export ``model`` into ``model_dir`` and publish it; returns the manifest.

    ``versioned=False`` writes plain ``scorer.onnx`` names (the small default
    model committed to the repository); trained models use versioned names.
    ``extra_files`` (role -> file name, already written in ``model_dir``) are
    listed and checksummed in the same manifest (the students).
    Raises RuntimeError if onnxruntime disagrees with torch by more than 1e-5.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    version = _new_version(model)
    suffix = f"-{version}" if versioned else ""
    files = {"scorer": f"scorer{suffix}.onnx", "scorer_indexed": f"scorer_indexed{suffix}.onnx",
             "torch": f"scorer{suffix}.pt"}
    p, v = torch.zeros(2, PORTRAIT_DIM), torch.zeros(2, VIDEO_DIM)
    t0 = time.perf_counter()
    _export(model, (p, v), model_dir / files["scorer"], ["portrait", "video"],
            {"portrait": {0: "batch"}, "video": {0: "batch"},
             **{o: {0: "batch"} for o in OUTPUT_NAMES}})
    idx = torch.zeros(2, dtype=torch.int64)
    _export(IndexedScorer(model), (p, idx, v, idx), model_dir / files["scorer_indexed"],
            ["portrait", "portrait_index", "video_table", "video_index"],
            {"portrait": {0: "users"}, "portrait_index": {0: "batch"},
             "video_table": {0: "videos"}, "video_index": {0: "batch"},
             **{o: {0: "batch"} for o in OUTPUT_NAMES}})
    torch.save(model.state_dict(), model_dir / files["torch"])
    diff = onnx_parity(model, model_dir / files["scorer"])
    if diff > PARITY_ATOL:
        raise RuntimeError(f"ONNX export differs from torch by {diff:.2e} > {PARITY_ATOL}")
    manifest: dict[str, Any] = {
        "name": name,
        "version": version,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "published_ns": time.time_ns(),  # orders versions published within one second
        "opset": OPSET,
        "feature_layout_version": FEATURE_LAYOUT_VERSION,
        "inputs": SCORER_INPUTS,
        "outputs": SCORER_OUTPUTS,
        "indexed_inputs": INDEXED_INPUTS,
        "training_data_hash": training_data_hash,
        "metrics": metrics or {},
        "files": {role: {"path": f, "sha256": file_sha256(model_dir / f)}
                  for role, f in {**files, **(extra_files or {})}.items()},
        "scorer_config": model.config.to_dict(),
        "parity_max_abs_diff": diff,
        "export_seconds": round(time.perf_counter() - t0, 3),
        **(extra or {}),
    }
    old: dict[str, Any] | None = None
    if (model_dir / MANIFEST_NAME).exists():
        try:
            old = read_manifest(model_dir)
        except Exception:  # a broken old manifest is simply replaced
            old = None
    if old is not None and "parent_version" not in manifest:
        manifest["parent_version"] = old["version"]
    if old is not None and versioned and not (model_dir / archive_name(old["version"])).exists():
        # a version published before archives existed: archive it, so it stays restorable
        archive_manifest(model_dir, old)
    write_manifest(model_dir, manifest, archive=versioned)
    if versioned:
        prune_versions(model_dir, keep=KEEP_OLD_VERSIONS, versioned_prefixes=VERSIONED_PREFIXES)
    log.info("published %s %s to %s (parity %.1e)", name, version, model_dir, diff)
    return manifest
