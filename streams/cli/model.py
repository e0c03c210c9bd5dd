"""``enf model versions | rollback``: the versions a model directory can serve.

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
    """Inspect a model directory's versions and roll back to one of them."""


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


cli = model
