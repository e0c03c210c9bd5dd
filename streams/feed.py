"""The demo's feed: a small simulated dataset, planned and replayed into Kafka,
with malformed messages mixed in while it streams."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.config import TopicNames

if TYPE_CHECKING:
    from enf_core.data.replay_plan import PlannedMessage
    from streams.demo import DemoConfig

__all__ = ["Feed", "build_feed", "produce_feed"]


@dataclass(frozen=True)
class Feed:
    messages: list[PlannedMessage]
    total: int  # valid events (an impression page counts one per item, as the worker does)
    by_type: dict[str, int]
    dataset_dir: Path
    kafka_url: str = ""


def build_feed(cfg: DemoConfig, workdir: Path, kafka_url: str) -> Feed:
    """Simulate users and videos, plan their replay, keep the first ``cfg.events``.

    Videos come first in the plan, so every video a kept event refers to is in it.
    """
    from enf_core.data.replay_plan import ReplayConfig, plan_replay
    from enf_core.data.schema import read_dataset
    from enf_core.data.simulate import SimulationConfig, simulate

    data_dir = workdir / "data"
    simulate(data_dir, SimulationConfig(users=cfg.users, videos=cfg.videos, days=2,
                                        seed=cfg.seed))
    # Ranker-like requests: the page's videos plus a few catalogue fill-ins at
    # most (a ranker's top-k, not a random sample of the catalogue).
    plan = plan_replay(read_dataset(data_dir), ReplayConfig(seed=cfg.seed,
                                                            extra_candidates=cfg.fill_ins))
    kept: list[PlannedMessage] = []
    total = 0
    by_type: dict[str, int] = {}
    for m in plan.messages:
        n = len(m.event_ids)
        if total + n > cfg.events:
            break
        kept.append(m)
        total += n
        by_type[m.type] = by_type.get(m.type, 0) + n
    return Feed(kept, total, by_type, data_dir, kafka_url)


async def _send_bad(bootstrap: str, bad: list[bytes], topics: TopicNames, seed: int,
                    spread_s: float) -> None:
    from aiokafka import AIOKafkaProducer

    rng = random.Random(seed)
    targets = [topics.user_events] * 3 + [topics.candidates, topics.videos]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for value in bad:
            await asyncio.sleep(rng.random() * spread_s / max(len(bad), 1))
            await producer.send_and_wait(rng.choice(targets), value=value,
                                         key=f"u{rng.randrange(1000)}".encode())
    finally:
        await producer.stop()


async def produce_feed(feed: Feed, bad: list[bytes], topics: TopicNames, *, rate: float,
                       page_size: int, seed: int, progress: dict[str, Any],
                       catalogue_ready: Callable[[int], Awaitable[None]],
                       candidates_topic: str = "user-events") -> None:
    """The catalogue first (videos are analysed before anyone is shown them, as in
    a real feed), then the feed, and meanwhile the bad messages at random moments."""
    from streams.replay import ReplayOptions, replay
    from streams.services import bootstrap_servers

    options = ReplayOptions(kafka_url=feed.kafka_url, topic_prefix=topics.prefix,
                            rate=rate or None, page_events=page_size, create_topics=False,
                            candidates_topic=candidates_topic)
    catalogue = [m for m in feed.messages if m.type == "video"]
    rest = [m for m in feed.messages if m.type != "video"]
    await replay(catalogue, replace(options, rate=None, page_events=1))
    progress["n"] = len(catalogue)
    await catalogue_ready(len(catalogue))
    progress["feed_started"] = time.monotonic()
    spread = (feed.total - len(catalogue)) / rate if rate else 2.0
    bad_task = asyncio.create_task(_send_bad(bootstrap_servers(feed.kafka_url), bad, topics,
                                             seed, spread))
    summary = await replay(rest, options)
    await bad_task
    progress["n"] = len(catalogue) + summary.events + len(bad)
    progress["replay"] = summary.to_dict()
