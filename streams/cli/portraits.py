"""``enf portraits rebuild``: rebuild Redis state from the retained input topics."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from streams.config import WorkerConfig

__all__ = ["cli", "portraits"]


@click.group(name="portraits")
def portraits() -> None:
    """Portraits in Redis: rebuild them after Redis lost its data."""


@portraits.command(name="rebuild")
@click.option("--kafka-url", help="kafka://host:port (ENF_KAFKA_URL)")
@click.option("--redis-url", help="redis://host:port/db (ENF_REDIS_URL)")
@click.option("--broker-kind", type=click.Choice(["kafka", "tansu"]),
              help="tunes consumer settings for the broker (ENF_BROKER_KIND)")
@click.option("--topic-prefix", help="topic and key prefix (ENF_TOPIC_PREFIX)")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON summary.")
def rebuild(kafka_url: str | None, redis_url: str | None, broker_kind: str | None,
            topic_prefix: str | None, as_json: bool) -> None:
    """Replay the videos topic (re-analysing every video) and the user-events
    topic (through the workers' portrait handler) into Redis, and write a new
    epoch. Stop the workers first; restart them after. Exact only while the
    topics' retention covers the whole history (see the README)."""
    from streams.rebuild import rebuild_portraits

    cfg = WorkerConfig.from_env(kafka_url=kafka_url, redis_url=redis_url,
                                broker_kind=broker_kind, topic_prefix=topic_prefix)

    def progress(stage: str, done: int, total: int) -> None:
        if not as_json:
            click.echo(f"\r{stage}: {done}/{total} messages", nl=False, err=True)

    try:
        summary = asyncio.run(rebuild_portraits(cfg, progress=progress))
    except Exception as exc:
        click.echo(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    if not as_json:
        click.echo("", err=True)
    click.echo(json.dumps(summary))


cli = portraits
