"""Prometheus metrics of a worker, served at ``/metrics`` by Faust's web server."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics", "watch_gc"]


class WorkerMetrics:
    """One registry per worker app (tests may build several in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages = Counter("enf_messages_total", "Messages consumed", ["topic"], registry=r)
        self.events = Counter("enf_events_total", "Valid events decoded", ["agent"], registry=r)
        self.dead_letters = Counter("enf_dead_letters_total",
                                    "Messages sent to the dead-letter topic", ["agent"],
                                    registry=r)
        self.applied = Counter("enf_portrait_events_applied_total",
                               "User events applied to portraits", registry=r)
        self.duplicates = Counter("enf_portrait_events_duplicate_total",
                                  "Redelivered user events skipped", registry=r)
        self.conflicts = Counter("enf_portrait_conflicts_total",
                                 "Portrait writes retried because another writer moved it",
                                 registry=r)
        self.videos = Counter("enf_videos_analyzed_total", "Videos analysed", ["status"],
                              registry=r)
        self.video_stuck = Gauge("enf_video_stuck_analyses",
                                 "Timed-out video analyses still holding a thread "
                                 "(thread mode; bounded by ENF_VIDEO_MAX_STUCK_THREADS)",
                                 registry=r)
        self.videos_refused = Counter("enf_videos_refused_total",
                                      "Videos stored as failed unanalysed because "
                                      "ENF_VIDEO_MAX_STUCK_THREADS analyses were stuck",
                                      registry=r)
        self.candidates = Counter("enf_candidates_scored_total", "Candidate rows scored",
                                  registry=r)
        self.unknown_videos = Counter("enf_candidates_unknown_video_total",
                                      "Candidate rows whose video was not analysed yet "
                                      "(scored, never suppressed)", registry=r)
        self.video_requests = Counter("enf_video_requests_total",
                                      "Re-analysis requests sent on enf.video-requests for "
                                      "candidate videos without an analysis", registry=r)
        self.requests = Counter("enf_candidate_requests_total", "Candidate requests", registry=r)
        self.suppressions = Counter("enf_suppressions_total",
                                    "Candidates suppressed by the policy (demote: marked)",
                                    registry=r)
        self.flagged = Counter("enf_candidates_flagged_total",
                               "Candidates at or above the policy's threshold, before the "
                               "per-request budget", registry=r)
        self.stale_requests = Counter("enf_candidate_requests_stale_total",
                                      "Requests scored on a portrait known to lag the user's "
                                      "events", registry=r)
        self.explanations = Counter("enf_explanations_total", "Explanation records", registry=r)
        self.policy_explanations = Counter(
            "enf_policy_explanations_total", "ENF_EXPLAINER=policy side path: jobs queued, "
            "records written, jobs dropped (queue full), empty answers, failures", ["status"],
            registry=r)
        self.batch_seconds = Histogram("enf_batch_seconds", "Handler time per batch", ["agent"],
                                       buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1,
                                                2.5), registry=r)
        self.request_latency_ms = Histogram(
            "enf_request_latency_ms", "Candidates message ts to suppression emitted",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000), registry=r)
        # A full collection stops the event loop: every batch in flight waits for it.
        self.gc_pause_seconds = Histogram(
            "enf_gc_pause_seconds", "Garbage-collector pauses of the worker process",
            ["generation"], buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5),
            registry=r)
        self.gc_pause_max_seconds = Gauge("enf_gc_pause_max_seconds",
                                          "Longest garbage-collector pause so far",
                                          registry=r)
        self.quick_swipe_rate = Gauge("enf_quick_swipe_rate", "Last closed window", registry=r)
        self.dislike_rate = Gauge("enf_dislike_rate", "Last closed window", registry=r)
        self.reason_rate = Gauge("enf_reason_rate", "Last closed window, per reason",
                                 ["reason", "kind"], registry=r)
        self.model_info = Gauge("enf_model_info", "Model in use", ["version", "providers"],
                                registry=r)


def watch_gc(metrics: WorkerMetrics) -> Callable[[str, dict[str, Any]], None]:
    """Time every collection into ``metrics`` (a ``gc.callbacks`` hook, returned
    so that a caller can remove it): the worker's latency tail shows up here
    when the collector is its cause."""
    started = [0.0]
    longest = [0.0]

    def hook(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        pause = time.perf_counter() - started[0]
        metrics.gc_pause_seconds.labels(str(info.get("generation", ""))).observe(pause)
        if os.environ.get("ENF_GC_DEBUG") and info.get("generation") == 2 and pause > 0.02:
            import collections
            import logging
            objs = gc.get_objects(2)
            top = collections.Counter(type(o).__name__ for o in objs).most_common(12)
            logging.getLogger(__name__).warning("gc gen2 %.1f ms, gen2 objects %d: %s",
                                                1000 * pause, len(objs), top)
        if pause > longest[0]:
            longest[0] = pause
            metrics.gc_pause_max_seconds.set(pause)

    gc.callbacks.append(hook)
    return hook
