"""Scoring path alone on Apache Kafka: candidates/s at a given suppression threshold
and output format, to separate the model's cost from the cost of emitting records.

Usage: python bench/scoring_bench.py [--threshold 1.01] [--format record|page]
(threshold above 1 suppresses nothing: the scorer alone)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream_bench import candidates, drain_rate, produce, video

from streams.config import TopicNames
from streams.process import WorkerProcess, wait_until
from streams.services import EmbeddedServices, create_enf_topics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threshold", default="1.01")
    ap.add_argument("--format", default="record", choices=["record", "page"])
    ap.add_argument("--broker", default="kafka", choices=["kafka", "tansu"])
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    log = Path(tempfile.mkdtemp(prefix="enf-scoring-")) / "worker.log"
    with EmbeddedServices(broker=args.broker, partitions=4) as svc:
        t = TopicNames("sc")
        create_enf_topics(svc.kafka_url, t, partitions=4)
        w = WorkerProcess(kafka_url=svc.kafka_url, redis_url=svc.redis_url,
                          broker_kind=args.broker, prefix="sc", log_path=log,
                          # No budget and no cold rule: the threshold alone sets the
                          # share, so the cost of emitting records is what is measured.
                          env={"ENF_SUPPRESS_THRESHOLD": args.threshold,
                               "ENF_SUPPRESS_MAX_PER_REQUEST": "-1",
                               "ENF_SUPPRESS_MAX_FRACTION": "1",
                               "ENF_SUPPRESS_COLD_WATCHES": "0",
                               "ENF_SUPPRESSION_FORMAT": args.format})
        try:
            asyncio.run(produce(svc.bootstrap, t.videos, [video(i) for i in range(200)]))
            wait_until(lambda: w.metrics().get("enf_videos_analyzed_total", 0) >= 200,
                       timeout_s=300, what="videos", worker=w)
            asyncio.run(produce(svc.bootstrap, t.candidates,
                                [candidates(i, 5000, 200, 100) for i in range(args.requests)]))
            cps = drain_rate(w, "enf_candidates_scored_total", 100 * args.requests, 600)
            m = w.metrics()
            share = m.get("enf_suppressions_total", 0) / max(m.get("enf_candidates_scored_total",
                                                                   1), 1)
            print({"broker": args.broker, "threshold": args.threshold, "format": args.format,
                   "candidates_per_s": round(cps or 0), "suppressed_share": round(share, 3),
                   "handler_seconds": w.handler_seconds()})
        finally:
            w.stop()


if __name__ == "__main__":
    main()
