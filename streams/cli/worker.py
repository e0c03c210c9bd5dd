"""``enf worker``: one ENF worker process against Kafka and Redis given by URL."""

from __future__ import annotations

import gc
import logging
import os

import click

from streams.config import WorkerConfig

__all__ = ["worker"]

log = logging.getLogger(__name__)


@click.command()
@click.option("--kafka-url", help="kafka://host:port[;host:port] (ENF_KAFKA_URL)")
@click.option("--redis-url", help="redis://host:port/db (ENF_REDIS_URL)")
@click.option("--broker-kind", type=click.Choice(["kafka", "tansu"]),
              help="tunes consumer settings for the broker (ENF_BROKER_KIND)")
@click.option("--topic-prefix", help="topic and key prefix (ENF_TOPIC_PREFIX)")
@click.option("--app-id", help="consumer group id (ENF_APP_ID)")
@click.option("--partitions", type=int, help="partitions of topics it creates (ENF_PARTITIONS)")
@click.option("--model-dir", help="scorer model dir; default: the shipped model (ENF_MODEL_DIR)")
@click.option("--web-port", type=int, help="metrics/status port on 127.0.0.1 (ENF_WEB_PORT)")
@click.option("--create-topics/--no-create-topics", default=True, show_default=True,
              help="create the ENF topics if missing before starting")
@click.option("--loglevel", default="warning", show_default=True)
def worker(kafka_url: str | None, redis_url: str | None, broker_kind: str | None,
           topic_prefix: str | None, app_id: str | None, partitions: int | None,
           model_dir: str | None, web_port: int | None, create_topics: bool,
           loglevel: str) -> None:
    """Consume user events, videos and candidate requests; keep portraits in Redis;
    emit suppressions, explanations, metrics and dead letters."""
    # A worker is one event loop: multi-threaded BLAS only fights the broker, Redis
    # and ONNX Runtime for the cores (a 16x1280 @ 1280x1000 product took 36 ms with
    # two OpenBLAS threads on a busy 2-core machine, 3 ms with one). Set before numpy
    # loads; an explicit setting in the environment wins.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    from faust.worker import Worker

    from streams.app import EnfWorker

    config = WorkerConfig.from_env(kafka_url=kafka_url, redis_url=redis_url,
                                   broker_kind=broker_kind, topic_prefix=topic_prefix,
                                   app_id=app_id, partitions=partitions, model_dir=model_dir,
                                   web_port=web_port)
    if create_topics:
        from streams.services import create_enf_topics

        create_enf_topics(config.kafka_url, config.topics, partitions=config.partitions,
                          security=config.kafka_security())
    enf = EnfWorker(config)
    from streams.metrics import watch_gc

    watch_gc(enf.metrics)  # enf_gc_pause_seconds: is the collector the latency tail?
    # Latency: a full collection walks every cached portrait and took the p99 of
    # the portrait path well past 100 ms; start-up objects are frozen out of it
    # and young collections run less often (the event path allocates freely).
    if os.environ.get("ENF_GC_FREEZE", "1") != "0":
        gc.collect()
        gc.freeze()
    gen0 = int(os.environ.get("ENF_GC_GEN0", "0"))
    if gen0:
        gc.set_threshold(gen0, 50, 1000)
    runner = Worker(enf.app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    profile_path = os.environ.get("ENF_PROFILE")
    if not profile_path:
        runner.execute_from_commandline()
        return
    # ENF_PROFILE=out.prof: profile the whole worker (benchmarks use it to show
    # where the per-message time goes); the stats are written on shutdown.
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        runner.execute_from_commandline()
    finally:
        profiler.disable()
        profiler.dump_stats(profile_path)
