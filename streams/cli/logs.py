"""``enf logs dump``: the logged topics back into the ENF log schema (retraining input)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["cli", "logs"]


@click.group(name="logs")
def logs() -> None:
    """Read what a deployment logged."""


@logs.command(name="dump")
@click.option("--kafka-url", default="kafka://127.0.0.1:9092", show_default=True,
              envvar="ENF_KAFKA_URL")
@click.option("--topic-prefix", default="enf", show_default=True, envvar="ENF_TOPIC_PREFIX")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Dataset directory to write (ENF log schema + decisions.parquet).")
@click.option("--stall-s", type=float, default=30.0, show_default=True,
              help="Give up on a topic after this long without progress to its end offsets.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON summary.")
def dump(kafka_url: str, topic_prefix: str, out: Path, stall_s: float, as_json: bool) -> None:
    """Dump user events, videos, candidates, suppressions and explanations (dead letters
    skipped) into OUT, outcomes joined to the decisions they followed.

    Prints one JSON object last: the dataset summary (users, videos, interactions,
    rates, reason and split counts), decisions, suppressed, suppressed_watched,
    suppressed_disliked, explained, counts, messages, wall_s, out.
    """
    from streams.logs import DumpOptions, dump_logs

    try:
        summary = dump_logs(out, DumpOptions(kafka_url=kafka_url, topic_prefix=topic_prefix,
                                             stall_s=stall_s))
    except (OSError, ValueError) as exc:
        click.echo(json.dumps({"error": str(exc)}))
        sys.exit(1)
    if not as_json:
        click.echo(f"{summary['interactions']} interactions, {summary['decisions']} decisions "
                   f"({summary['suppressed']} suppressed) -> {summary['out']}", err=True)
    click.echo(json.dumps(summary))


cli = logs
