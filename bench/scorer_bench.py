"""Scorer throughput on CPU: onnxruntime (the worker's runtime) vs torch, rows/s.

    .venv/bin/python bench/scorer_bench.py [--model MODEL_DIR] [--threads N] [--json]

Batches 1, 64 and 1024 (and 65,536 for the bulk path); the same weights on both
backends (the manifest's torch file). Prints a table and one JSON object last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere


def _rate(fn: Callable[[], object], rows: int, min_s: float = 0.5) -> float:
    for _ in range(3):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_s or len(times) < 5:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return rows / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model dir (default: models/default)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads for both backends")
    ap.add_argument("--batches", default="1,64,1024,65536")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    from models.manifest import read_manifest
    from models.runtime import DEFAULT_MODEL_DIR, ScorerRuntime
    from models.scorer import ScorerConfig, ScorerNet
    from models.synthetic import SyntheticConfig, synthetic_sample

    model_dir = Path(args.model) if args.model else DEFAULT_MODEL_DIR
    rt = ScorerRuntime(model_dir, prefer_gpu=False, intra_op_threads=args.threads)
    m = read_manifest(model_dir)
    net = ScorerNet(ScorerConfig(**m.get("scorer_config", {})))
    net.load_state_dict(torch.load(model_dir / m["files"]["torch"]["path"], weights_only=True))
    net.eval()
    torch.set_num_threads(args.threads)
    s = synthetic_sample(SyntheticConfig(n=65_536, seed=9))
    results = []
    for b in (int(x) for x in args.batches.split(",")):
        p, v = s.portraits[:b], s.videos[:b]
        tp, tv = torch.from_numpy(p), torch.from_numpy(v)

        def run_torch(tp: torch.Tensor = tp, tv: torch.Tensor = tv) -> object:
            with torch.inference_mode():
                return net(tp, tv)

        ort_rate = _rate(lambda p=p, v=v: rt.score(p, v), b)
        torch_rate = _rate(run_torch, b)
        results.append({"batch": b, "onnxruntime_rows_s": round(ort_rate),
                        "torch_rows_s": round(torch_rate),
                        "onnxruntime_us_per_call": round(b / ort_rate * 1e6, 1)})
        if not args.json:
            print(f"batch {b:6d}  onnxruntime {ort_rate:12,.0f} rows/s "
                  f"({b / ort_rate * 1e6:8.1f} µs/call)   torch {torch_rate:12,.0f} rows/s")
    print(json.dumps({"bench": "scorer_cpu", "model": rt.version, "threads": args.threads,
                      "cpu": platform.processor() or platform.machine(),
                      "cores": os.cpu_count(), "results": results}))


if __name__ == "__main__":
    main()
