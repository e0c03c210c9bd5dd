"""``enf demo``: the whole plugin on one machine, live, then a summary."""

from __future__ import annotations

import asyncio
import json
import sys

import click

__all__ = ["demo"]


@click.command()
@click.option("--events", default=20_000, show_default=True, help="valid events to feed")
@click.option("--bad-events", default=50, show_default=True,
              help="malformed messages mixed in (each must become a dead letter)")
@click.option("--broker", type=click.Choice(["tansu", "kafka"]), default="tansu",
              show_default=True, help="embedded broker (ENF_KAFKA_URL overrides: external)")
@click.option("--users", default=600, show_default=True)
@click.option("--videos", default=800, show_default=True)
@click.option("--rate", default=0.0, show_default=True, help="events/s; 0 = as fast as possible")
@click.option("--page-size", default=1, show_default=True,
              help="user events per Kafka message (pages cut per-message overhead)")
@click.option("--seed", default=7, show_default=True)
@click.option("--fill-ins", default=2, show_default=True,
              help="catalogue videos added to each page's videos in a candidates request")
@click.option("--candidates-topic", type=click.Choice(["user-events", "candidates"]),
              default="user-events", show_default=True,
              help="user-events: requests in the user's ordered stream (read-your-writes)")
@click.option("--json", "as_json", is_flag=True, help="no live view; print one JSON object last")
def demo(events: int, bad_events: int, broker: str, users: int, videos: int, rate: float,
         page_size: int, seed: int, fill_ins: int, candidates_topic: str,
         as_json: bool) -> None:
    """Start an embedded broker and Redis, stream a simulated feed through a real
    ENF worker, show what happens live, and end with a summary."""
    from rich.console import Console

    from streams.demo import DemoConfig, run_demo

    cfg = DemoConfig(events=events, bad_events=bad_events, broker=broker, users=users,
                     videos=videos, rate=rate, page_size=page_size, seed=seed, live=not as_json,
                     fill_ins=fill_ins, candidates_topic=candidates_topic)
    console = Console(stderr=as_json)
    summary = asyncio.run(run_demo(cfg, console=console))
    if not as_json:
        from rich.table import Table

        table = Table(title="ENF Stream demo summary")
        table.add_column("metric")
        table.add_column("value")
        for key, value in summary.items():
            table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
        console.print(table)
    sys.stdout.write(json.dumps(summary) + "\n")
