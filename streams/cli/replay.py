"""``enf replay DIR``: stream a dataset into the Kafka topics in time order.

Prints one JSON object as its last line: events, messages, by_type, by_topic,
ids_sha256 (sha256 of the sorted event ids), wall_s, events_per_s.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import click

__all__ = ["replay"]


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--kafka-url", default="kafka://127.0.0.1:9092", show_default=True,
              envvar="ENF_KAFKA_URL")
@click.option("--topic-prefix", default="enf", show_default=True, envvar="ENF_TOPIC_PREFIX")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Events per second (default: as fast as possible).")
@click.option("--limit", type=click.IntRange(min=0), default=None,
              help="Replay only the first N interactions (time order) and the videos they "
                   "mention.")
@click.option("--page-events", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="Send JSON arrays of up to N events per message (1: one event each).")
@click.option("--page-size", type=click.IntRange(1, 2000), default=6, show_default=True,
              help="Feed page size when the data has no request_id.")
@click.option("--extra-candidates", type=click.IntRange(0, 1900), default=20, show_default=True,
              help="Random catalogue videos added to each candidates request.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--partitions", type=click.IntRange(1), default=4, show_default=True,
              help="Partitions of topics this command creates (existing ones are kept).")
@click.option("--create-topics/--no-create-topics", default=True, show_default=True)
@click.option("--candidates-topic", type=click.Choice(["candidates", "user-events"]),
              default="candidates", show_default=True,
              help="user-events: requests in the user's ordered stream (read-your-writes)")
def replay(directory: Path, kafka_url: str, topic_prefix: str, rate: float | None,
           limit: int | None, page_events: int, page_size: int, extra_candidates: int,
           seed: int, partitions: int, create_topics: bool, candidates_topic: str) -> None:
    """Replay the dataset in DIRECTORY into <prefix>.videos, .user-events, .candidates."""
    from enf_core.data.replay_plan import ReplayConfig
    from streams.replay import ReplayOptions, replay_dataset

    options = ReplayOptions(kafka_url=kafka_url, topic_prefix=topic_prefix, rate=rate,
                            page_events=page_events, create_topics=create_topics,
                            partitions=partitions, candidates_topic=candidates_topic)
    config = ReplayConfig(page_size=page_size, extra_candidates=extra_candidates, seed=seed,
                          limit=limit)
    try:
        summary = asyncio.run(replay_dataset(directory, options, config))
    except (OSError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(json.dumps(summary.to_dict()))
