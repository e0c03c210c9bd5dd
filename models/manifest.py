"""The model manifest: what a model directory holds and how it was made.

A model directory holds versioned weight files and one ``manifest.json`` naming
them. Writers put the new files first and replace the manifest last with
``os.replace``, so a reader (the stream scorer polling for new versions) sees
either the old model or the new one, never a mix. File checksums in the
manifest let a reader reject a half-copied directory instead of loading it.

Standard library only: the worker reads manifests without numpy or torch.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "ModelError",
    "file_sha256",
    "read_manifest",
    "validate_manifest",
    "write_manifest",
]

MANIFEST_NAME = "manifest.json"
REQUIRED_KEYS = ("name", "version", "created", "opset", "feature_layout_version", "inputs",
                 "outputs", "training_data_hash", "metrics", "files")


class ModelError(RuntimeError):
    """A model directory that cannot be used; the message says why and where."""


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(model_dir: str | Path) -> dict[str, Any]:
    """Read and check ``manifest.json``; raises ModelError naming the problem."""
    path = Path(model_dir) / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model manifest {path}: {exc.strerror or exc}") from None
    try:
        manifest = json.loads(raw)
    except ValueError as exc:
        raise ModelError(f"model manifest {path} is not valid JSON: {exc}") from None
    validate_manifest(manifest, where=str(path))
    return manifest  # type: ignore[no-any-return]


def validate_manifest(manifest: Any, *, where: str = "manifest") -> None:
    if not isinstance(manifest, dict):
        raise ModelError(f"{where}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in manifest]
    if missing:
        raise ModelError(f"{where}: missing keys {', '.join(missing)}")
    files = manifest["files"]
    if not isinstance(files, dict) or "scorer" not in files:
        raise ModelError(f"{where}: 'files' must name at least the 'scorer' ONNX file")
    for role, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ModelError(f"{where}: files.{role} must be an object with a 'path'")
        if "/" in entry["path"] or entry["path"].startswith("."):
            raise ModelError(f"{where}: files.{role}.path must be a plain file name")


def write_manifest(model_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest.json`` atomically (temp file in the same dir + os.replace)."""
    validate_manifest(manifest)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".json", dir=model_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other users of the dir must read it
        target = model_dir / MANIFEST_NAME
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
