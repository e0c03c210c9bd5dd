"""``enf model versions | rollback | calibrate``: the versions a model directory
can serve, and the calibration that turns its scores into probabilities.

Both read and write only manifests (standard library, no torch): rollback
replaces ``manifest.json`` with a version's archived manifest in one
``os.replace``, and running workers switch on their next poll
(``ENF_MODEL_POLL_S``) without a restart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["cli", "model"]


@click.group(name="model")
def model() -> None:
    """Inspect a model directory's versions, roll back to one, calibrate it."""


_MODEL = click.option("--model", "model_dir", required=True,
                      type=click.Path(exists=True, file_okay=False, path_type=Path),
                      help="Model directory (enf train agents / enf distill output).")
_JSON = click.option("--json", "as_json", is_flag=True, help="Print only the JSON object.")


@model.command(name="versions")
@_MODEL
@_JSON
def versions(model_dir: Path, as_json: bool) -> None:
    """List the current and the archived versions, oldest first."""
    from models.manifest import ModelError, list_versions

    try:
        out = list_versions(model_dir)
    except ModelError as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    if not as_json:
        for row in out["versions"]:
            mark = "*" if row["current"] else " "
            click.echo(f"{mark} {row['version']}  {row['created']}  parent "
                       f"{row['parent_version'] or '-'}"
                       + ("" if row["restorable"] else "  (not restorable)"), err=True)
    click.echo(json.dumps(out))


@model.command(name="rollback")
@_MODEL
@click.option("--to", "to", default=None,
              help="Version to restore (default: the current version's parent_version).")
@_JSON
def rollback(model_dir: Path, to: str | None, as_json: bool) -> None:
    """Make an archived version current again (atomic; workers reload it)."""
    from models.manifest import ModelError
    from models.manifest import rollback as do_rollback

    try:
        out = do_rollback(model_dir, to)
    except ModelError as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    if not as_json:
        click.echo(f"rolled back {out['from']} -> {out['to']}", err=True)
    click.echo(json.dumps({"model": str(model_dir.resolve()), "from": out["from"],
                           "to": out["to"], "name": out["manifest"]["name"]}))


@model.command(name="calibrate")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset the model was trained on (its valid split is used).")
@_MODEL
@click.option("--method", type=click.Choice(["isotonic", "platt"]), default="isotonic",
              show_default=True)
@click.option("--target-precision", type=float, default=None,
              help="Operating point's precision on valid (default ENF_SUPPRESS_TARGET_PRECISION"
                   ", 0.6).")
@_JSON
def calibrate(data_dir: Path, model_dir: Path, method: str, target_precision: float | None,
              as_json: bool) -> None:
    """Fit calibrated probabilities on DATA's valid split with MODEL's own ONNX
    scorer and publish them as a new version (atomic; workers reload it).

    Prints the operating point: the calibrated threshold, and the precision,
    recall and flagged share it gives on valid.
    """
    from enf_core.policy import SuppressionPolicy
    from models.calibration import calibrate_model
    from models.manifest import ModelError

    target = (target_precision if target_precision is not None
              else SuppressionPolicy.from_env().target_precision)
    try:
        m = calibrate_model(data_dir, model_dir, method=method, target_precision=target)
    except (ModelError, OSError, ValueError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    op = m["operating_point"]
    if not as_json:
        click.echo(f"calibrated {m['parent_version']} -> {m['version']} ({method}); operating "
                   f"point p >= {op['threshold']:.4f}: precision {op['precision']:.3f}, recall "
                   f"{op['recall']:.3f}, flags {op['flagged_share']:.1%} of valid rows", err=True)
    click.echo(json.dumps({"model": str(model_dir.resolve()), "from": m["parent_version"],
                           "version": m["version"], "method": method,
                           "operating_point": op,
                           "f1_threshold": m.get("threshold")}))


cli = model
