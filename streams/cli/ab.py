"""``enf ab``: the closed-loop simulated A/B of ENF through the real worker."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["cli"]


@click.command("ab")
@click.option("--seeds", default=5, show_default=True, help="independent replications")
@click.option("--out", "out", type=click.Path(path_type=Path), required=True,
              help="report directory (report.md, results.json, PNGs)")
@click.option("--data", type=click.Path(path_type=Path, exists=True), default=None,
              help="an `enf data simulate` output (default: a world simulated under OUT/sim)")
@click.option("--broker", type=click.Choice(["tansu", "kafka"]), default="tansu",
              show_default=True, help="embedded broker (ENF_KAFKA_URL overrides: external)")
@click.option("--mode", type=click.Choice(["drop", "demote"]), default="drop",
              show_default=True, help="arm B: drop suppressed videos or demote them")
@click.option("--users", "users_per_seed", default=300, show_default=True,
              help="users per seed")
@click.option("--sessions", default=4, show_default=True, help="sessions per user")
@click.option("--pages", default=5, show_default=True, help="feed requests per session")
@click.option("--catalogue", default=1_500, show_default=True,
              help="videos in the catalogue (the simulation's most shown)")
@click.option("--request-size", default=12, show_default=True,
              help="ranked candidates per request sent to ENF (the page and its backfill)")
@click.option("--page-size", default=6, show_default=True, help="videos served per request")
@click.option("--no-history", is_flag=True, help="start from cold portraits (no logged history)")
@click.option("--ordering", type=click.Choice(["ryw", "settle", "none"]), default="ryw",
              show_default=True,
              help="ryw: candidates on the user-events topic (read-your-writes); settle: on "
                   "the candidates topic after every event is applied; none: no wait")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object as the last line")
def cli(seeds: int, out: Path, data: Path | None, broker: str, mode: str, users_per_seed: int,
        sessions: int, pages: int, catalogue: int, request_size: int, page_size: int,
        no_history: bool, ordering: str, as_json: bool) -> None:
    """Simulated users request feeds from a baseline ranker; arm A serves its top page,
    arm B the same list through the real ENF worker on a real broker and Redis, arm O
    an oracle with the same budget. Writes OUT/report.md, OUT/results.json and plots."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from enf_core.ab.arms import Budget
    from enf_core.ab.experiment import ABConfig
    from enf_core.ab.ranker import RankerConfig
    from streams.ab.run import ABOptions, run_ab

    config = ABConfig(seeds=seeds, users_per_seed=users_per_seed, sessions=sessions,
                      pages_per_session=pages, catalogue=catalogue, history=not no_history,
                      mode=mode, ranker=RankerConfig(request_size=request_size,
                                                     page_size=page_size),
                      budget=Budget.from_policy())
    command = "enf " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    options = ABOptions(out=out, data=data, broker=broker, ordering=ordering,
                        command=command)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
                                                                            "{task.total}"),
                  TimeElapsedColumn(), console=console, transient=as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        results = run_ab(config, options, progress=progress)
    if not as_json:
        console.print((out / "report.md").read_text())
    line = {k: results[k] for k in ("arms", "relative", "seeds", "broker", "model")}
    line.update({k: results[k] for k in ("share_of_oracle_gain", "bar", "mode") if k in results})
    sys.stdout.write(json.dumps(line) + "\n")
