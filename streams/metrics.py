"""Prometheus metrics of a worker, served at ``/metrics`` by Faust's web server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["WorkerMetrics"]


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
        self.quick_swipe_rate = Gauge("enf_quick_swipe_rate", "Last closed window", registry=r)
        self.dislike_rate = Gauge("enf_dislike_rate", "Last closed window", registry=r)
        self.reason_rate = Gauge("enf_reason_rate", "Last closed window, per reason",
                                 ["reason", "kind"], registry=r)
        self.model_info = Gauge("enf_model_info", "Model in use", ["version", "providers"],
                                registry=r)
