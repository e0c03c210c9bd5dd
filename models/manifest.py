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
    "archive_manifest",
    "archive_name",
    "file_sha256",
    "list_versions",
    "prune_versions",
    "publish_version",
    "read_manifest",
    "rollback",
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


def archive_name(version: str) -> str:
    """File name of a version's archived manifest (what rollback restores)."""
    if not version or "/" in version or version.startswith("."):
        raise ModelError(f"not a model version: {version!r}")
    return f"manifest-{version}.json"


def _write_atomic(model_dir: Path, name: str, manifest: dict[str, Any]) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".json.tmp", dir=model_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2, sort_keys=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; other users of the dir must read it
        target = model_dir / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def write_manifest(model_dir: str | Path, manifest: dict[str, Any], *,
                   archive: bool = True) -> Path:
    """Write ``manifest.json`` atomically (temp file in the same dir + os.replace).

    With ``archive`` the same manifest is first written as
    ``manifest-<version>.json``: every published version stays restorable by
    ``rollback`` for as long as its archive (and so its files) is kept.
    """
    validate_manifest(manifest)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if archive:
        archive_manifest(model_dir, manifest)
    return _write_atomic(model_dir, MANIFEST_NAME, manifest)


def archive_manifest(model_dir: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``manifest-<version>.json`` only (atomically); the current one is untouched."""
    validate_manifest(manifest)
    return _write_atomic(Path(model_dir), archive_name(str(manifest["version"])), manifest)


def _archives(model_dir: Path) -> dict[str, dict[str, Any]]:
    """Every readable archived manifest by version (unreadable ones are skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for path in model_dir.glob("manifest-*.json"):
        try:
            m = json.loads(path.read_bytes())
            validate_manifest(m, where=str(path))
        except (OSError, ValueError, ModelError):
            continue
        if path.name == archive_name(str(m["version"])):
            out[str(m["version"])] = m
    return out


def _order(m: dict[str, Any]) -> tuple[str, int, str]:
    """Publication order: ``created`` (seconds), then ``published_ns`` when present."""
    return (str(m["created"]), int(m.get("published_ns") or 0), str(m["version"]))


def _files_present(model_dir: Path, manifest: dict[str, Any]) -> bool:
    return all((model_dir / e["path"]).is_file() for e in manifest["files"].values())


def list_versions(model_dir: str | Path) -> dict[str, Any]:
    """The current version and every archived one, oldest first.

    Each entry: version, created, name, parent_version, teacher, current (bool),
    restorable (its archive and every file it names are present).
    """
    model_dir = Path(model_dir)
    current = read_manifest(model_dir)
    archives = _archives(model_dir)
    if current["version"] not in archives:
        archives[str(current["version"])] = current
    rows = []
    for version, m in sorted(archives.items(), key=lambda kv: _order(kv[1])):
        rows.append({"version": version, "created": m["created"], "name": m["name"],
                     "parent_version": m.get("parent_version"), "teacher": m.get("teacher"),
                     "current": version == current["version"],
                     "restorable": (model_dir / archive_name(version)).is_file()
                     and _files_present(model_dir, m)})
    return {"model": str(model_dir.resolve()), "current": current["version"], "versions": rows}


def rollback(model_dir: str | Path, to: str | None = None) -> dict[str, Any]:
    """Make an archived version current again; returns {from, to, manifest}.

    ``to=None`` restores the current version's ``parent_version``, else the
    newest archived version older than the current one. The archive replaces
    ``manifest.json`` with one ``os.replace`` (after checking every file it
    names is present and matches its checksum), so a polling worker switches
    back without a restart and never sees a half-written manifest.
    """
    model_dir = Path(model_dir)
    current = read_manifest(model_dir)
    archives = _archives(model_dir)
    if to is None:
        to = current.get("parent_version")
        if not to or to not in archives:
            older = sorted((m for v, m in archives.items() if v != current["version"]
                            and _order(m) <= _order(current)),
                           key=lambda m: _order(m))
            if not older:
                raise ModelError(f"{model_dir}: no earlier archived version to roll back to")
            to = str(older[-1]["version"])
    if to not in archives:
        raise ModelError(f"{model_dir}: no archived manifest for version {to!r} "
                         f"(have: {', '.join(sorted(archives)) or 'none'})")
    target = archives[to]
    for role, entry in target["files"].items():
        path = model_dir / entry["path"]
        if not path.is_file():
            raise ModelError(f"version {to}: files.{role} {path} is missing")
        digest = entry.get("sha256")
        if digest and file_sha256(path) != digest:
            raise ModelError(f"version {to}: {path} does not match its sha256")
    _write_atomic(model_dir, MANIFEST_NAME, target)
    return {"from": current["version"], "to": to, "manifest": target}


def prune_versions(model_dir: str | Path, *, keep: int, versioned_prefixes: tuple[str, ...]
                   ) -> list[str]:
    """Drop archived manifests beyond the ``keep`` newest (never the current one),
    then every versioned file (``<prefix>-*``) no remaining manifest names.

    Returns the names of the removed files. A running worker has its weights in
    memory already, so removing a file it loaded is safe.
    """
    model_dir = Path(model_dir)
    current = read_manifest(model_dir)
    archives = _archives(model_dir)
    ordered = sorted(archives.values(), key=lambda m: _order(m))
    others = [m for m in ordered if m["version"] != current["version"]]
    kept = others[-keep:] if keep > 0 else []
    removed: list[str] = []
    kept_versions = {str(m["version"]) for m in kept} | {str(current["version"])}
    for version in archives:
        if version not in kept_versions:
            (model_dir / archive_name(version)).unlink(missing_ok=True)
            removed.append(archive_name(version))
    referenced = {e["path"] for m in [current, *kept] for e in m["files"].values()}
    for f in model_dir.iterdir():
        if (f.is_file() and f.name not in referenced and "-" in f.name
                and f.name.split("-", 1)[0] in versioned_prefixes):
            f.unlink(missing_ok=True)
            removed.append(f.name)
    return removed


def publish_version(model_dir: str | Path, *, files: dict[str, str],
                    extra: dict[str, Any] | None = None, name: str | None = None,
                    keep: int = 4, versioned_prefixes: tuple[str, ...] = ()) -> dict[str, Any]:
    """A new version that reuses the current one's files except ``files``
    (role -> file name, already written in ``model_dir``), with ``extra`` keys.

    The version id is the time and a hash of the new files; ``parent_version``
    is the version it replaces. Archived, published atomically, then pruned
    like ``models.export`` does. Standard library only.
    """
    import time
    from datetime import UTC, datetime

    model_dir = Path(model_dir)
    current = read_manifest(model_dir)
    if not (model_dir / archive_name(str(current["version"]))).exists():
        archive_manifest(model_dir, current)
    h = hashlib.sha256()
    entries = {}
    for role, f in sorted(files.items()):
        digest = file_sha256(model_dir / f)
        h.update(f"{role}:{digest}".encode())
        entries[role] = {"path": f, "sha256": digest}
    now = datetime.now(UTC)
    manifest = {**current, **(extra or {}),
                "version": f"{now:%Y%m%dT%H%M%SZ}-{h.hexdigest()[:8]}",
                "created": now.isoformat(timespec="seconds"), "published_ns": time.time_ns(),
                "parent_version": current["version"],
                "files": {**current["files"], **entries}}
    if name:
        manifest["name"] = name
    write_manifest(model_dir, manifest)
    if versioned_prefixes:
        prune_versions(model_dir, keep=keep, versioned_prefixes=versioned_prefixes)
    return manifest
