"""``enf up`` / ``enf down``: embedded broker and Redis that outlive the command.

Why detached: ``enf up`` lets a person run ``enf worker`` (or several) against local
services from other terminals. The services run in their own sessions; the state
file ``$ENF_CACHE/run/services.json`` is how ``enf down`` (or a second ``enf up``)
finds them. Both commands are idempotent and take a lock, so two at once are safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from typing import Any

import click

from streams.config import WorkerConfig
from streams.services import (
    BROKER_KINDS,
    EmbeddedServices,
    KafkaConfig,
    RedisConfig,
    ServiceError,
    ServicesState,
    TansuConfig,
    read_state,
    remove_state,
    state_path,
    write_state,
)

__all__ = ["down", "up"]


@contextlib.contextmanager
def _state_lock() -> Iterator[None]:
    path = state_path().with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _summary(state: ServicesState, **extra: Any) -> str:
    return json.dumps({
        "broker_kind": state.broker_kind,
        "kafka_url": state.kafka_url,
        "redis_url": state.redis_url,
        "pids": {r.name: r.pid for r in state.services},
        "state_file": str(state_path()),
        **extra,
    })  # fmt: skip


def _load_state() -> ServicesState | None:
    try:
        return read_state()
    except ValueError as exc:
        click.echo(f"enf: ignoring unreadable state file {state_path()}: {exc}", err=True)
        remove_state()
        return None


def _stop_state(state: ServicesState) -> list[str]:
    stopped = []
    for handle in state.handles():
        was_alive = handle.alive()
        handle.stop()
        if was_alive:
            stopped.append(f"{handle.name}:{handle.pid}")
    remove_state()
    return stopped


@click.command()
@click.option("--broker", type=click.Choice(BROKER_KINDS), default="tansu", show_default=True,
              help="tansu: in-memory, no Java; kafka: Apache Kafka 3.9 (needs `make kafka`)")
@click.option("--kafka-port", type=int, default=0, show_default="a free port",
              help="broker port on 127.0.0.1")
@click.option("--redis-port", type=int, default=0, show_default="a free port",
              help="Redis port on 127.0.0.1 (ignored when ENF_REDIS_URL is set)")
@click.option("--partitions", type=int, default=None,
              help="partitions of the ENF topics (ENF_PARTITIONS, default 4)")
@click.option("--topic-prefix", default=None, help="ENF topic prefix (ENF_TOPIC_PREFIX)")
@click.option("--create-topics/--no-create-topics", default=True, show_default=True,
              help="create the ENF topics so workers and producers agree on partitions")
def up(broker: str, kafka_port: int, redis_port: int, partitions: int | None,
       topic_prefix: str | None, create_topics: bool) -> None:
    """Start a broker and Redis in the background on loopback; print their URLs as JSON.

    Running it again while they run prints the same URLs (a different --broker is an
    error: run `enf down` first)."""
    config = WorkerConfig.from_env(partitions=partitions, topic_prefix=topic_prefix)
    with _state_lock():
        state = _load_state()
        if state is not None:
            handles = state.handles()
            if all(h.alive() for h in handles):
                if state.broker_kind != broker:
                    raise click.ClickException(
                        f"a {state.broker_kind} broker is already up ({state.kafka_url}); "
                        "run `enf down` first")
                click.echo("enf: services already running", err=True)
                click.echo(_summary(state, already_running=True))
                return
            click.echo("enf: previous services are partly gone; restarting them", err=True)
            _stop_state(state)
        run_dir = state_path().parent
        services = EmbeddedServices(
            broker=broker,
            kafka=KafkaConfig(port=kafka_port, partitions=config.partitions),
            tansu=TansuConfig(port=kafka_port),
            redis=RedisConfig(port=redis_port),
            topics=config.topics if create_topics else None,
            partitions=config.partitions,
            detached=True,
            run_dir=run_dir,
        )
        t0 = time.monotonic()
        try:
            services.start()
        except ServiceError as exc:
            raise click.ClickException(str(exc)) from exc
        state = ServicesState(
            broker_kind=broker,
            kafka_url=services.kafka_url,
            redis_url=services.redis_url,
            services=tuple(s.record() for s in services.services),
            created_at=time.time(),
        )
        write_state(state)
    click.echo(f"enf: up in {time.monotonic() - t0:.1f} s; stop with `enf down`", err=True)
    click.echo(_summary(state, topics_prefix=config.topic_prefix if create_topics else None))


@click.command()
def down() -> None:
    """Stop the services started by `enf up` and remove the state file."""
    with _state_lock():
        state = _load_state()
        if state is None:
            click.echo("enf: nothing running", err=True)
            click.echo(json.dumps({"stopped": []}))
            return
        stopped = _stop_state(state)
    click.echo(json.dumps({"stopped": stopped}))

