"""``enf agents video|profile``: run one agent on one input and print what it found."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["agents", "cli"]


def _fail(message: str) -> None:
    click.echo(json.dumps({"error": message}))
    sys.exit(1)


@click.group(name="agents")
def agents() -> None:
    """Run the Video and Profile agents on one input."""


def _video_agent(title_encoder: str, backend: str) -> Any:
    if backend in ("torch", "auto"):
        try:
            from models.video_agent import TorchVideoAgent

            return TorchVideoAgent(title_encoder)
        except ImportError:
            if backend == "torch":
                raise
    from models.video_runtime import AnalyzerConfig, VideoAnalyzer

    return VideoAnalyzer(AnalyzerConfig(title_encoder=title_encoder, threads=0))


@agents.command()
@click.argument("uri")
@click.option("--title", default="", help="The video's title.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--title-encoder", type=click.Choice(["minilm", "e5", "none"]), default="minilm",
              show_default=True)
@click.option("--backend", type=click.Choice(["auto", "torch", "onnx"]), default="auto",
              show_default=True, help="torch encoders, or the worker's ONNX ones.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON object.")
def video(uri: str, title: str, tags: tuple[str, ...], title_encoder: str, backend: str,
          as_json: bool) -> None:
    """Analyse the video at URI (a file, file:// or frames://PATH#ROW) with the Video Agent.

    The last line is one JSON object: frame_indices (the 16 sampled), elements
    [{name, score, frames}], reasons {category: probability}, topics, evidence.
    """
    from enf_core.events import VideoEvent
    from enf_core.taxonomy import REASONS, TOPICS
    from models.decode import VideoAnalysisError

    agent = _video_agent(title_encoder, backend)
    vid = Path(uri.split("#")[0]).stem or "video"
    try:
        a = agent.analyze(VideoEvent("cli", vid, title, 0, 0, tags, uri))
    except VideoAnalysisError as exc:
        _fail(str(exc))
        return
    detected = [e for e in a.evidence if e.score >= 0.1]
    out = {
        "video_id": a.video_id, "uri": uri, "title": title, "analyzer": a.analyzer,
        "frame_indices": list(a.frame_indices), "duration_ms": a.duration_ms,
        "elements": [{"name": e.name, "score": round(e.score, 4), "frames": list(e.frames)}
                     for e in detected],
        "reasons": {r.value: round(p, 4) for r, p in zip(REASONS, a.reasons, strict=True)},
        "topics": {t: round(p, 4) for t, p in sorted(zip(TOPICS, a.topics, strict=True),
                                                     key=lambda kv: -kv[1])[:5]},
        "plot_appeal": round(a.plot_appeal, 4),
        "evidence": [e.to_dict() for e in a.evidence],
        "topic_evidence": a.extra.get("topic_evidence", []),
        "timing_ms": {k: v for k, v in a.extra.items() if k.startswith("ms_")},
    }
    if not as_json:
        for e in detected:
            where = f"frames {list(e.frames)}" if e.frames else ""
            words = f"title {list(e.title_words)}" if e.title_words else ""
            click.echo(f"{e.name:30s} {e.score:.2f}  {where} {list(e.classes)} {words}")
    click.echo(json.dumps(out))


@agents.command()
@click.option("--data", "data_dir", required=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--user", "user_id", required=True)
@click.option("--split", type=click.Choice(["train", "valid", "test", "all"]), default="all",
              show_default=True, help="Replay the user's events up to the end of this split.")
@click.option("--title-encoder", type=click.Choice(["minilm", "e5", "none"]), default="minilm",
              show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON object.")
def profile(data_dir: Path, user_id: str, split: str, title_encoder: str, as_json: bool) -> None:
    """Build USER's portrait from DATA one event at a time with the Profile Agent.

    The last line is one JSON object: demographics, interests, psychological tags
    with weights, per-reason tolerance, quick-swipe rate, and the Redis hash fields.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from enf_core.data.schema import read_dataset
    from enf_core.events import VideoEvent
    from models.decode import VideoAnalysisError
    from models.profile_agent import portrait_summary, portrait_to_hash, replay_portraits
    from models.video_runtime import AnalyzerConfig, VideoAnalyzer

    ds = read_dataset(data_dir, validate=False)
    inter = ds.interactions.filter(pc.equal(ds.interactions.column("user_id"), user_id))
    if inter.num_rows == 0:
        _fail(f"user {user_id!r} has no interactions in {data_dir}")
        return
    if split != "all":
        order = {"train": ("train",), "valid": ("train", "valid"),
                 "test": ("train", "valid", "test")}[split]
        inter = inter.filter(pc.is_in(inter.column("split"), value_set=pa.array(order)))
    users = {u["user_id"]: u for u in ds.users.filter(
        pc.equal(ds.users.column("user_id"), user_id)).to_pylist()}
    vids = set(inter.column("video_id").to_pylist())
    videos = ds.videos.filter(pc.is_in(ds.videos.column("video_id"),
                                       value_set=pa.array(sorted(vids))))
    analyzer = VideoAnalyzer(AnalyzerConfig(title_encoder=title_encoder, threads=0))
    frames_path = ds.frames_path
    analyses = {}
    for v in videos.to_pylist():
        uri = ""
        if v.get("frames_row") is not None and frames_path is not None:
            uri = f"frames://{frames_path}#{v['frames_row']}"
        elif v.get("uri"):
            uri = v["uri"] if Path(v["uri"]).is_absolute() else str(Path(data_dir) / v["uri"])
        event = VideoEvent("cli", v["video_id"], v["title"] or "", v["duration_ms"] or 0, 0,
                           tuple(v["tags"] or ()), uri)
        try:
            analyses[v["video_id"]] = analyzer.analyze(event)
        except VideoAnalysisError:
            analyses[v["video_id"]] = analyzer.analyze(
                VideoEvent("cli", v["video_id"], v["title"] or "", 0, 0, tuple(v["tags"] or ())))
    cols = {c: inter.column(c).to_pylist() for c in (
        "user_id", "video_id", "ts", "play_ms", "duration_ms", "watch_ratio",
        "explicit_negative", "reason_category")}
    replay = replay_portraits(cols, analyses, users)
    p = replay.portraits[user_id]
    quick = [{"video_id": vid, "title": analyses[vid].title, "watch_ratio": round(r, 3),
              "elements": [e.name for e in analyses[vid].top_elements(0.3)]}
             for vid, r in zip(cols["video_id"], cols["watch_ratio"], strict=True)
             if r is not None and r < 0.3][:10]
    fields = portrait_to_hash(p)
    out = {**portrait_summary(p), "quick_swipes_seen": quick,
           "redis_hash": {"key": f"enf:p:{{{user_id}}}",
                          "fields": {k: (len(v) if k in ("data", "vec") else v.decode())
                                     for k, v in fields.items()}}}
    if not as_json:
        click.echo(f"{user_id}: {p.n_events} events, quick-swipe rate {p.quick_swipe_rate:.2f}")
        for tag, w in p.tags(limit=8):
            click.echo(f"  {tag:40s} {w:.2f}")
    click.echo(json.dumps(out))


cli = agents
