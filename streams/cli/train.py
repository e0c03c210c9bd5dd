"""``enf train agents``: train the agents' students on a dataset and export them to ONNX."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

__all__ = ["cli", "train"]


@click.group(name="train")
def train() -> None:
    """Train and export the agents' students (needs the train extra: torch)."""


@train.command(name="agents")
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Dataset directory in the ENF log schema (enf data simulate / load).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model directory; a new version is published atomically (hot reload).")
@click.option("--title-encoder", type=click.Choice(["minilm", "e5"]), default="minilm",
              show_default=True)
@click.option("--epochs", type=int, default=None, help="Scorer epochs (default 8).")
@click.option("--no-students", is_flag=True, help="Only the scorer (skip video head and "
              "portrait step).")
@click.option("--threads", type=int, default=0, show_default=True,
              help="torch threads; 0 keeps torch's default.")
def agents(data_dir: Path, out_dir: Path, title_encoder: str, epochs: int | None,
           no_students: bool, threads: int) -> None:
    """Run the Video and Profile agents over DATA, train the students, export to OUT.

    Prints one JSON object last: version, metrics on valid, thresholds, timings.
    """
    from enf_core.policy import SuppressionPolicy
    from models.agents_pipeline import AgentsTrainConfig, train_agents

    c = AgentsTrainConfig(title_encoder=title_encoder, train_students=not no_students,
                          target_precision=SuppressionPolicy.from_env().target_precision)
    scorer = replace(c.scorer, threads=threads)
    if epochs is not None:
        scorer = replace(scorer, epochs=epochs)
    c = replace(c, scorer=scorer)
    t0 = time.perf_counter()
    try:
        m = train_agents(data_dir, out_dir, c)
    except (OSError, ValueError, RuntimeError) as exc:
        click.echo(json.dumps({"error": str(exc)}), err=False)
        sys.exit(1)
    click.echo(json.dumps({"out": str(out_dir.resolve()), "name": m["name"],
                           "version": m["version"], "metrics": m["metrics"],
                           "thresholds": m["thresholds"],
                           "operating_point": m.get("operating_point"),
                           "students": m["students"],
                           "timing_s": m["timing_s"],
                           "wall_s": round(time.perf_counter() - t0, 1)}))


cli = train
