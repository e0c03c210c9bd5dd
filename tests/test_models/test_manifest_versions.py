"""Archived manifests, parent_version, rollback and pruning of a model directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models.export import KEEP_OLD_VERSIONS, VERSIONED_PREFIXES, export_scorer
from models.manifest import (
    MANIFEST_NAME,
    ModelError,
    archive_name,
    list_versions,
    read_manifest,
    rollback,
)
from models.scorer import ScorerNet

ROOT = Path(__file__).resolve().parents[2]


def _publish(model_dir: Path, shift: float) -> dict:
    """A new version: the current weights with the last bias moved by ``shift``."""
    m = read_manifest(model_dir)
    net = ScorerNet()
    net.load_state_dict(torch.load(model_dir / m["files"]["torch"]["path"], weights_only=True))
    with torch.no_grad():
        list(net.parameters())[-1].add_(shift)
    return export_scorer(net, model_dir, name="tiny")


def test_every_version_is_archived_with_its_parent(model_dir: Path) -> None:
    a = read_manifest(model_dir)
    assert (model_dir / archive_name(a["version"])).is_file()
    b = _publish(model_dir, 0.5)
    assert b["parent_version"] == a["version"]
    listed = list_versions(model_dir)
    assert listed["current"] == b["version"]
    assert [v["version"] for v in listed["versions"]] == [a["version"], b["version"]]
    assert all(v["restorable"] for v in listed["versions"])
    assert [v["current"] for v in listed["versions"]] == [False, True]


def test_rollback_restores_the_parent_atomically(model_dir: Path) -> None:
    a = read_manifest(model_dir)
    b = _publish(model_dir, 0.5)
    out = rollback(model_dir)
    assert (out["from"], out["to"]) == (b["version"], a["version"])
    assert read_manifest(model_dir) == json.loads((model_dir / archive_name(a["version"]))
                                                  .read_text())
    # forward again by name, and no temp files are left behind
    assert rollback(model_dir, b["version"])["to"] == b["version"]
    assert read_manifest(model_dir)["version"] == b["version"]
    assert not [f for f in model_dir.iterdir() if f.name.endswith(".tmp")]


def test_rollback_refuses_unknown_or_damaged_versions(model_dir: Path) -> None:
    a = read_manifest(model_dir)
    with pytest.raises(ModelError, match="no earlier archived version"):
        rollback(model_dir)
    with pytest.raises(ModelError, match="no archived manifest"):
        rollback(model_dir, "nope")
    _publish(model_dir, 0.5)
    (model_dir / a["files"]["scorer"]["path"]).write_bytes(b"broken")
    with pytest.raises(ModelError, match="sha256"):
        rollback(model_dir, a["version"])
    assert read_manifest(model_dir)["version"] != a["version"]  # nothing was switched


def test_pruning_keeps_the_listed_versions_files(model_dir: Path) -> None:
    published = [read_manifest(model_dir)] + [_publish(model_dir, 0.1 * (k + 1))
                                               for k in range(KEEP_OLD_VERSIONS + 2)]
    listed = [v["version"] for v in list_versions(model_dir)["versions"]]
    assert listed == [m["version"] for m in published[-(KEEP_OLD_VERSIONS + 1):]]
    named = {e["path"] for m in published[-(KEEP_OLD_VERSIONS + 1):]
             for e in m["files"].values()}
    versioned = {f.name for f in model_dir.iterdir()
                 if f.name.split("-", 1)[0] in VERSIONED_PREFIXES}
    assert versioned == named
    assert not (model_dir / archive_name(published[0]["version"])).exists()
    # every kept version is still restorable
    assert rollback(model_dir, published[-KEEP_OLD_VERSIONS - 1]["version"])["to"]


def test_cli_versions_and_rollback(model_dir: Path) -> None:
    a = read_manifest(model_dir)
    b = _publish(model_dir, 0.5)

    def enf(*args: str) -> dict:
        r = subprocess.run([sys.executable, "-m", "streams.cli", "model", *args], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    v = enf("versions", "--model", str(model_dir), "--json")
    assert v["current"] == b["version"] and len(v["versions"]) == 2
    r = enf("rollback", "--model", str(model_dir), "--json")
    assert (r["from"], r["to"]) == (b["version"], a["version"])
    assert json.loads((model_dir / MANIFEST_NAME).read_text())["version"] == a["version"]
    bad = subprocess.run([sys.executable, "-m", "streams.cli", "model", "rollback", "--model",
                          str(model_dir), "--to", "missing", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "no archived manifest" in json.loads(bad.stdout)["error"]
