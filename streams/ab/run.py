"""``enf ab``: start the services and a worker, run the experiment, write the report."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enf_core.ab.experiment import ABConfig, ABRun, catalogue_for, run_experiment, video_record
from enf_core.ab.stats import summarize
from enf_core.ab.world import World, load_world
from streams.config import TopicNames

__all__ = ["ORDERINGS", "ABOptions", "default_simulation", "run_ab"]

ORDERINGS = ("ryw", "settle", "none")


@dataclass(frozen=True)
class ABOptions:
    """Where to run: the simulation, the broker, the worker's settings."""

    out: Path
    data: Path | None = None  # None: simulate a world under out/sim (sim_users x sim_videos)
    broker: str = "tansu"
    partitions: int = 4
    sim_users: int = 0  # 0: seeds x users_per_seed
    sim_videos: int = 1_500
    sim_seed: int = 101  # not the seed of the default training simulation (0)
    # How B's requests meet the users' events: "ryw" candidates on the user-events topic
    # (read-your-writes: scored at their place in the user's stream); "settle": on the
    # candidates topic, after waiting until every event is applied; "none": on the
    # candidates topic without waiting (portraits may lag: records say stale).
    ordering: str = "ryw"
    worker_env: dict[str, str] = field(default_factory=dict)
    command: str = "enf ab"


def default_simulation(out: Path, *, users: int, videos: int, seed: int) -> Path:
    """The A/B's own simulated world (written once under ``out``, reused when there)."""
    from enf_core.data.simulate import SimulationConfig, simulate

    sim = out / "sim"
    if not (sim / "truth" / "noise_model.json").is_file():
        simulate(sim, SimulationConfig(users=users, videos=videos, seed=seed))
    return sim


async def _run_through_worker(world: World, config: ABConfig, options: ABOptions,
                              progress: Callable[[str, int, int], None]) -> tuple[ABRun,
                                                                                  dict[str, Any]]:
    from streams.ab.harness import WorkerFilter
    from streams.media import roots_for
    from streams.process import WorkerProcess
    from streams.services import EmbeddedServices, bootstrap_servers, create_enf_topics

    topics = TopicNames("enfab")
    external_kafka = os.environ.get("ENF_KAFKA_URL")
    services = None if external_kafka else EmbeddedServices(
        broker=options.broker, partitions=options.partitions).start()
    workdir = Path(tempfile.mkdtemp(prefix="enf-ab-"))
    worker = None
    enf = None
    try:
        kafka_url = external_kafka or services.kafka_url  # type: ignore[union-attr]
        redis_url = os.environ.get("ENF_REDIS_URL") or services.redis_url  # type: ignore[union-attr]
        create_enf_topics(kafka_url, topics, partitions=options.partitions)
        # Two analysis processes: the catalogue is one bulk load before the feed starts.
        # The worker may open the world's frames and clips, nothing else (streams.media).
        env = {"ENF_SUPPRESS_MODE": config.mode, "ENF_METRICS_WINDOW_S": "5",
               "ENF_VIDEO_PROCESSES": "2",
               "ENF_MEDIA_ROOT": roots_for(world.videos["uri"]), **options.worker_env}
        worker = WorkerProcess(kafka_url=kafka_url, redis_url=redis_url,
                               broker_kind=options.broker, prefix=topics.prefix,
                               log_path=options.out / "worker.log", app_id="enf-ab",
                               partitions=options.partitions, env=env)
        await asyncio.to_thread(worker.wait_ready)
        if options.ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {', '.join(ORDERINGS)}")
        enf = WorkerFilter(bootstrap=bootstrap_servers(kafka_url), topics=topics, worker=worker,
                           mode=config.mode, settle=options.ordering == "settle",
                           candidates_topic=topics.user_events if options.ordering == "ryw"
                           else topics.candidates)
        await enf.start()
        t0 = time.perf_counter()
        catalogue = catalogue_for(world, config)
        now = int(time.time() * 1000)
        progress("catalogue", 0, len(catalogue))
        await enf.send_videos([video_record(world, int(v), now) for v in catalogue.tolist()])
        progress("catalogue", len(catalogue), len(catalogue))
        catalogue_s = time.perf_counter() - t0
        run = await run_experiment(world, config, enf, progress=progress)
        run.seconds["catalogue_s"] = catalogue_s
        await enf.drain()
        status = worker.status()
        metrics = worker.metrics()
        info = {"model": status.get("model", {}),
                "broker": {"kind": options.broker if not external_kafka else "external",
                           "url": kafka_url},
                "worker": {"requests": int(metrics.get("enf_candidate_requests_total", 0)),
                           "stale_requests": int(metrics.get(
                               "enf_candidate_requests_stale_total", 0)),
                           "suppressions": int(metrics.get("enf_suppressions_total", 0)),
                           "events_applied": int(metrics.get(
                               "enf_portrait_events_applied_total", 0)),
                           "dead_letters": int(metrics.get("enf_dead_letters_total", 0)),
                           "latency_ms": status.get("latency_ms", {})},
                "harness": {"requests_sent": enf.requests_sent - enf.probe_requests_sent,
                            "probe_requests_sent": enf.probe_requests_sent,
                            "events_sent": enf.events_sent,
                            "suppressed_seen": enf.answers.suppressed_items
                            - enf.answers.probe_suppressed,
                            "probe_suppressed_seen": enf.answers.probe_suppressed,
                            "output_records": enf.answers.records,
                            "wait_s": {k: round(v, 2) for k, v in enf.wait_s.items()}},
                "worker_log": str(options.out / "worker.log")}
        return run, info
    finally:
        if enf is not None:
            await enf.stop()
        if worker is not None:
            worker.stop()
        if services is not None:
            services.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def run_ab(config: ABConfig, options: ABOptions, *,
           progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """The whole ``enf ab``: world, services, worker, experiment, report; the results."""
    from streams.ab.report import write_report

    report = progress or (lambda stage, done, total: None)
    options.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = options.data
    if data is None:
        report("simulate", 0, 1)
        data = default_simulation(options.out, users=options.sim_users
                                  or config.seeds * config.users_per_seed,
                                  videos=options.sim_videos, seed=options.sim_seed)
        report("simulate", 1, 1)
    world = load_world(data)
    run, info = asyncio.run(_run_through_worker(world, config, options, report))
    summary = summarize(run.per_seed_metrics())
    results: dict[str, Any] = {
        **summary,
        "command": options.command,
        "seeds": config.seeds,
        "broker": info["broker"]["kind"],
        "model": info["model"],
        "mode": config.mode,
        "data": str(data),
        "config": _config_dict(config, options),
        "per_seed": run.per_seed_metrics(),
        # B's requests whose answer said stale (only requests with an output record
        # can say so); the worker's own count of stale requests is in worker.
        "stale_share": _stale_share(run),
        "responsiveness": {arm: r.summary() for arm, r in run.responsiveness.items()},
        "suppressed_share_by_round": _by_round(run),
        "worker": info["worker"],
        "harness": info["harness"],
        "seconds": {**{k: round(v, 2) for k, v in run.seconds.items()},
                    "total_s": round(time.perf_counter() - t0, 2)},
    }
    write_report(options.out, results)
    return results


def _stale_share(run: ABRun) -> float:
    b = run.tallies["B"]
    return sum(t.stale_requests for t in b) / max(1, sum(t.requests for t in b))


def _by_round(run: ABRun) -> dict[str, list[float]]:
    out = {}
    for arm in ("B", "O"):
        tallies = run.tallies[arm]
        rounds = max(len(t.per_round_scored) for t in tallies)
        out[arm] = [sum(t.per_round_suppressed[r] for t in tallies)
                    / max(1, sum(t.per_round_scored[r] for t in tallies)) for r in range(rounds)]
    return out


def _config_dict(config: ABConfig, options: ABOptions) -> dict[str, Any]:
    from dataclasses import asdict

    return {"experiment": asdict(config), "broker": options.broker,
            "partitions": options.partitions, "ordering": options.ordering,
            "worker_env": dict(options.worker_env)}
