"""Video Agent cost on CPU (decode + encode + read), and student-vs-agent agreement.

    .venv/bin/python bench/video_bench.py [--videos DIR ...] [--data DATASET] [--model DIR]

Per real video: decode 16 frames (decord), EfficientNet-Lite0 (onnxruntime and
torch), the title (MiniLM ONNX), the vocabulary; the precomputed-features path
(frames://) too. With --model, the students' agreement with the agents recorded
at training time; with --data as well, the video head student (ONNX) against
the Video Agent on up to --n videos of that dataset. One JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere


def _median_ms(fn, n: int = 3) -> float:  # type: ignore[no-untyped-def]
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return round(statistics.median(ts) * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", nargs="*", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    from enf_core.events import VideoEvent
    from models.decode import sample_frames
    from models.encoder_export import build_encoders
    from models.video_runtime import AnalyzerConfig, VideoAnalyzer

    build_encoders()
    videos = [Path(v) for v in args.videos] if args.videos else sorted(
        (ROOT.parent / "shared" / "data" / "videos").glob("*.mp4"))
    onnx = VideoAnalyzer(AnalyzerConfig(threads=args.threads))
    torch_agent = None
    try:
        from models.video_agent import TorchVideoAgent

        torch_agent = TorchVideoAgent()
    except ImportError:
        pass
    rows = []
    for v in videos:
        d = sample_frames(str(v))
        event = VideoEvent("b", v.stem, v.stem.replace("_", " "), 0, 0, uri=str(v))
        row = {"video": v.name, "decode_ms": _median_ms(lambda v=v: sample_frames(str(v))),
               "encode_onnx_ms": _median_ms(lambda d=d: onnx.frame_encoder.encode(d.frames)),
               "analyze_onnx_ms": _median_ms(lambda e=event: onnx.analyze(e))}
        if torch_agent is not None:
            row["encode_torch_ms"] = _median_ms(
                lambda d=d: torch_agent.frame_encoder.encode(d.frames))  # type: ignore[union-attr]
            row["analyze_torch_ms"] = _median_ms(lambda e=event: torch_agent.analyze(e))
        rows.append(row)
        print(row)
    out: dict[str, object] = {"bench": "video_cpu", "cores": os.cpu_count(), "per_video": rows}
    if rows:
        out["mean_analyze_onnx_ms"] = round(float(np.mean([r["analyze_onnx_ms"] for r in rows])), 1)
    if args.data:
        from enf_core.data.schema import read_dataset

        ds = read_dataset(args.data, validate=False)
        if ds.frames_path is not None:
            titles = ds.videos.column("title").to_pylist()
            ev = [VideoEvent("b", f"v{i}", titles[i], 1000, 0, uri=f"frames://{ds.frames_path}#{i}")
                  for i in range(min(200, len(titles)))]
            t = time.perf_counter()
            for e in ev:
                onnx.analyze(e)
            out["frames_uri_analyze_ms"] = round((time.perf_counter() - t) / len(ev) * 1000, 2)
    if args.model:
        from models.manifest import read_manifest

        m = read_manifest(args.model)
        out["students_at_training"] = {
            k: {kk: vv for kk, vv in v.items() if kk not in ("inputs", "outputs")}
            for k, v in m.get("students", {}).items()}
        out["scorer_onnx_vs_torch_max_abs"] = m.get("parity_max_abs_diff")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
