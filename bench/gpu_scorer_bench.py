"""Scorer on an H100 / H200: onnxruntime-gpu (CUDA EP, IO binding) beside torch CUDA.

Prepared for the GPU machine; not run on CPU-only hosts. One run measures, in
rows/s, for fp32 and fp16 and batches 1,024 and 65,536:

* ``ort_numpy``   — CUDA EP, numpy in / out (every call copies both inputs);
* ``ort_iobind``  — CUDA EP, IO binding, *indexed* graph: every video's vector
  sits on the device (``video_table``), only the portraits of the batch's users
  and two int64 index vectors cross PCIe, outputs stay on the device;
* ``torch_cuda``  — the same weights in torch, table resident, eager.

    python bench/gpu_scorer_bench.py [--model models/default] [--videos 200000]
        [--users-per-batch 64] [--ort-wheel PATH.whl]

Needs torch with CUDA and onnxruntime-gpu (the ``gpu`` extra); ``--ort-wheel``
installs a staged wheel aside (``pip --target``) when the machine has no index.
``--cpu-dry-run`` runs the same code on CPU (CPU EP, 5,000 videos, batch 1,024)
to check the script before spending GPU time on it.
Writes ``gpu_scorer.json`` to $OUT when set, and prints it last.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_s(fn: Callable[[], object], sync: Callable[[], None], n: int = 30) -> float:
    for _ in range(5):
        fn()
    sync()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _ort(wheel: str | None):  # type: ignore[no-untyped-def]
    if wheel:
        target = Path(tempfile.gettempdir()) / "ortgpu"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", str(target), wheel], check=True)
        sys.path.insert(0, str(target))
    import onnxruntime as ort

    try:
        ort.preload_dlls()  # uses torch's CUDA / cuDNN libraries when present
    except Exception as exc:
        print("preload_dlls:", exc, flush=True)
    return ort


def _bench_batch(b, dtype, ndt, args, rng, table, s_plain, s_idx, table_dev, outs,  # type: ignore[no-untyped-def]
                 tmodel, ttable, sync, dev) -> dict[str, object]:
    """One batch size: the three paths on identical requests."""
    import torch

    from enf_core.features import PORTRAIT_DIM

    users = min(args.users_per_batch, b)
    portraits = rng.random((users, PORTRAIT_DIM), dtype=np.float32).astype(ndt)
    pidx = rng.integers(0, users, b).astype(np.int64)
    vidx = rng.integers(0, args.videos, b).astype(np.int64)
    rows_p, rows_v = portraits[pidx], table[vidx].astype(ndt)

    def ort_numpy() -> object:
        return s_plain.run(None, {"portrait": rows_p, "video": rows_v})

    io = s_idx.io_binding()

    def ort_iobind() -> object:
        io.bind_cpu_input("portrait", portraits)  # per-request data only
        io.bind_cpu_input("portrait_index", pidx)
        io.bind_cpu_input("video_index", vidx)
        io.bind_ortvalue_input("video_table", table_dev)
        for o in outs:
            io.bind_output(o, dev)
        s_idx.run_with_iobinding(io)
        return None

    tp, tpi, tvi = torch.from_numpy(portraits), torch.from_numpy(pidx), torch.from_numpy(vidx)

    def torch_cuda() -> object:
        with torch.inference_mode():
            p = tp.to(dev, non_blocking=True)
            i, j = tpi.to(dev, non_blocking=True), tvi.to(dev, non_blocking=True)
            return tmodel(p[i], ttable[j])

    row: dict[str, object] = {"dtype": dtype, "batch": b, "users": users}
    for name, fn in (("ort_numpy", ort_numpy), ("ort_iobind", ort_iobind),
                     ("torch_cuda", torch_cuda)):
        row[f"{name}_rows_s"] = round(b / _median_s(fn, sync))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "default"))
    ap.add_argument("--videos", type=int, default=200_000, help="rows of the resident table")
    ap.add_argument("--users-per-batch", type=int, default=64)
    ap.add_argument("--batches", default="1024,65536")
    ap.add_argument("--ort-wheel", default=None)
    ap.add_argument("--cpu-dry-run", action="store_true",
                    help="check the script on a CPU machine (CPU EP, small sizes, fp32 only)")
    args = ap.parse_args()
    if args.cpu_dry_run:
        args.videos, args.batches = min(args.videos, 5000), "1024"

    import torch

    from enf_core.features import PORTRAIT_DIM, VIDEO_DIM
    from models.manifest import read_manifest
    from models.scorer import IndexedScorer, ScorerConfig, ScorerNet

    ort = _ort(args.ort_wheel)
    dev = "cpu" if args.cpu_dry_run else "cuda"
    if not args.cpu_dry_run:
        assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    card = "cpu (dry run)" if args.cpu_dry_run else torch.cuda.get_device_name(0)
    print("card", card, "ort", ort.__version__, ort.get_available_providers(), flush=True)
    m = read_manifest(args.model)
    net = ScorerNet(ScorerConfig(**m.get("scorer_config", {})))
    net.load_state_dict(torch.load(Path(args.model) / m["files"]["torch"]["path"],
                                   weights_only=True, map_location="cpu"))
    net.eval()
    rng = np.random.default_rng(0)
    table = rng.random((args.videos, VIDEO_DIM), dtype=np.float32)
    work = Path(tempfile.mkdtemp())
    results = []
    sync = (lambda: None) if args.cpu_dry_run else torch.cuda.synchronize
    for dtype in ("fp32", "fp16"):
        tdt = torch.float32 if dtype == "fp32" else torch.float16
        ndt = np.float32 if dtype == "fp32" else np.float16
        model = net.to("cpu").to(tdt)
        ex_p, ex_v = torch.zeros(2, PORTRAIT_DIM, dtype=tdt), torch.zeros(2, VIDEO_DIM, dtype=tdt)
        idx = torch.zeros(2, dtype=torch.int64)
        plain, indexed = work / f"scorer_{dtype}.onnx", work / f"scorer_indexed_{dtype}.onnx"
        outs = ["p_negative", "reason_probs", "p_dislike"]
        if dtype == "fp32":  # the published files
            plain = Path(args.model) / m["files"]["scorer"]["path"]
            indexed = Path(args.model) / m["files"]["scorer_indexed"]["path"]
        else:
            torch.onnx.export(model, (ex_p, ex_v), str(plain), dynamo=False, opset_version=17,
                              input_names=["portrait", "video"], output_names=outs,
                              dynamic_axes={k: {0: "b"} for k in ["portrait", "video", *outs]})
            torch.onnx.export(IndexedScorer(model), (ex_p, idx, ex_v, idx), str(indexed),
                              dynamo=False, opset_version=17,
                              input_names=["portrait", "portrait_index", "video_table",
                                           "video_index"], output_names=outs,
                              dynamic_axes={"portrait": {0: "u"}, "portrait_index": {0: "b"},
                                            "video_table": {0: "n"}, "video_index": {0: "b"},
                                            **{o: {0: "b"} for o in outs}})
        providers = (["CPUExecutionProvider"] if args.cpu_dry_run
                     else ["CUDAExecutionProvider", "CPUExecutionProvider"])
        s_plain = ort.InferenceSession(str(plain), providers=providers)
        s_idx = ort.InferenceSession(str(indexed), providers=providers)
        assert providers[0] in s_plain.get_providers(), s_plain.get_providers()
        table_dev = ort.OrtValue.ortvalue_from_numpy(table.astype(ndt), dev, 0)
        tmodel = model.to(dev)
        ttable = torch.from_numpy(table).to(dev, tdt)
        for b in (int(x) for x in args.batches.split(",")):
            row = _bench_batch(b, dtype, ndt, args, rng, table, s_plain, s_idx, table_dev,
                               outs, tmodel, ttable, sync, dev)
            results.append(row)
            print(row, flush=True)
    report = {"bench": "gpu_scorer", "card": card, "onnxruntime": ort.__version__,
              "torch": torch.__version__, "videos_resident": args.videos,
              "model": m["version"], "results": results}
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_scorer.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
