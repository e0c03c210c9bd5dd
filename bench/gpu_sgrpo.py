"""The GPU run of issue 8: SFT, GRPO, S-GRPO on gemma-3-270m, held-out ablation, teacher labels.

Prepared for one H100 / H200 call (SGRPO.md, GPU.md): ~9 s per S-GRPO step of 32
prompts × 8 samples, so SFT (~2 min), 2 × ~25 RL steps and the evaluation fit in
12 minutes. The device has no network, so everything it needs travels with the call:

  here:    python bench/gpu_sgrpo.py pack --out shared/stash/sgrpo --data DIR
           (the gemma GGUF and the wheels the device lacks, in 48 MiB parts; the
           train / held-out rows rendered to JSONL, so the device needs no features)
  device:  python bench/gpu_sgrpo.py run --stash shared/stash/sgrpo --out $OUT
           (reassembles, pip-installs the wheels --no-index into a target dir,
           stages gemma with the rebuilt tokenizer, runs the ablation on CUDA in bf16,
           writes ablation.json / ablation.md and soft_labels.jsonl)
  CPU:     python bench/gpu_sgrpo.py run --cpu-dry-run --stash S --out O
           (the same path with the tiny policy and tiny budgets: tests/bench)

Not run on a GPU yet: no machine was lent to this task (issue 8 report).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PART = 48 * 2**20  # the device call carries files up to this size
WHEELS = ("trl==1.16.0", "peft", "accelerate", "datasets==5.0.1", "gguf", "rouge-score")


def _split(src: Path, dst: Path, name: str) -> list[str]:
    parts = []
    with src.open("rb") as f:
        k = 0
        while block := f.read(PART):
            p = dst / f"{name}.part{k:02d}"
            p.write_bytes(block)
            parts.append(p.name)
            k += 1
    return parts


def _join(stash: Path, name: str, target: Path) -> Path:
    if not target.is_file():
        with target.open("wb") as out:
            for p in sorted(stash.glob(f"{name}.part*")):
                out.write(p.read_bytes())
    return target


def pack(out: Path, data: Path | None, *, wheels: bool = True, gguf: bool = True,
         train_n: int = 1200, heldout_n: int = 48) -> dict[str, Any]:
    """Everything the device needs, under ``out`` (each file ≤ 48 MiB)."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {"parts": {}, "wheels": [], "rows": {}}
    if gguf:
        from models.policy.staging import gguf_path

        g = gguf_path("gemma")
        manifest["parts"]["gguf"] = _split(g, out, "gemma.gguf")
        manifest["gguf_name"] = g.name
        manifest["gguf_sha256"] = hashlib.sha256(g.read_bytes()).hexdigest()
    if wheels:
        wd = out / "wheels"
        wd.mkdir(exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(wd),
                        *WHEELS], check=True, timeout=600)
        manifest["wheels"] = sorted(p.name for p in wd.glob("*.whl"))
    if data is not None:
        from enf_core.reason_prompt import PromptConfig
        from models.policy.data import RowMix, load_rows

        third = train_n // 3
        for split, mix in (("train", RowMix(third, third, third, seed=0)),
                           ("heldout", RowMix(heldout_n, heldout_n, heldout_n, seed=1))):
            rows = load_rows(data, "train" if split == "train" else "test", mix, PromptConfig())
            (out / f"rows-{split}.jsonl").write_text(
                "".join(json.dumps(r.to_dict()) + "\n" for r in rows))
            manifest["rows"][split] = len(rows)
    (out / "stash.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _rows(stash: Path, split: str) -> list[Any]:
    from models.policy.data import PolicyRow

    return [PolicyRow(**json.loads(x)) for x in (stash / f"rows-{split}.jsonl").read_text()
            .splitlines()]


def _install(stash: Path) -> None:
    """pip-install the stashed wheels into a target dir (no network) unless importable."""
    try:
        import trl  # noqa: F401
        return
    except ImportError:
        pass
    target = Path(os.environ.get("TMPDIR", "/tmp")) / "sgrpo-wheels"
    wheels = sorted(glob.glob(str(stash / "wheels" / "*.whl")))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                    "--target", str(target), *wheels], check=True, timeout=300)
    sys.path.insert(0, str(target))


def run(stash: Path, out: Path, *, cpu_dry_run: bool, budget_s: float | None,
        teacher_rows: int) -> dict[str, Any]:
    t0 = time.monotonic()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _install(stash)
    import torch

    from models.policy.ablation import AblationConfig, run_ablation
    from models.policy.config import SFTSettings, SGRPOConfig
    from models.policy.runner import PolicyRunner, RunnerConfig

    train, heldout = _rows(stash, "train"), _rows(stash, "heldout")
    out.mkdir(parents=True, exist_ok=True)
    if cpu_dry_run:
        from models.policy.tiny import TinyConfig

        device = "cpu"
        c = AblationConfig(
            policy="tiny", budget_s=budget_s or 600,
            sft=SFTSettings(max_steps=10, batch_size=8, learning_rate=3e-3),
            rl=SGRPOConfig(num_generations=4, prompts_per_step=2, max_completion_length=48,
                           max_steps=2, save_steps=10),
            runner=RunnerConfig(max_new_tokens=48),
            tiny=TinyConfig(vocab_size=400, hidden=64, layers=2, heads=2, intermediate=128))
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: use --cpu-dry-run")
        device = "cuda"
        from models.policy.staging import stage_policy

        m = json.loads((stash / "stash.json").read_text())
        g = _join(stash, "gemma.gguf", Path(os.environ.get("TMPDIR", "/tmp")) / m["gguf_name"])
        os.environ["ENF_CACHE"] = str(g.parent / "enf-cache")
        (g.parent / "enf-cache" / "policies" / "gguf").mkdir(parents=True, exist_ok=True)
        os.replace(g, g.parent / "enf-cache" / "policies" / "gguf" / m["gguf_name"])
        stage_policy("gemma")
        # GPU.md: ~9 s per step of 32 prompts x 8 samples x 96 tokens; bf16; no checkpointing
        c = AblationConfig(
            policy="gemma", budget_s=budget_s or 690,
            sft=SFTSettings(learning_rate=5e-5, epochs=1.0, batch_size=32, use_cpu=False,
                            bf16=True, logging_steps=5),
            rl=SGRPOConfig(learning_rate=2e-6, beta=0.04, prompts_per_step=32,
                           max_completion_length=96, max_steps=40, use_cpu=False, bf16=True,
                           save_steps=1000),
            runner=RunnerConfig(max_new_tokens=96, batch_size=64, device="cuda",
                                dtype="bfloat16"))
    from enf_core.reason_prompt import PromptConfig

    c = replace(c, prompt=PromptConfig(), eval_share=0.2)
    result = run_ablation(None, out, c, rows=(train, heldout), device=device)
    # teacher labels for the distillation: the S-GRPO policy's soft labels on train rows
    runner = PolicyRunner(Path(result["out"]) / "sgrpo" / "policy", c.runner)
    subset = train[:teacher_rows]
    with (out / "soft_labels.jsonl").open("w") as fh:
        for r, j in zip(subset, runner.judge([x.prompt for x in subset]), strict=True):
            fh.write(json.dumps({"row": r.row, "user_id": r.user_id, "video_id": r.video_id,
                                 "p_negative": j.p_negative, "reason_probs": j.reason_probs,
                                 "explanation": j.explanation, "format_ok": j.format_ok}) + "\n")
    lines = ["| arm | reward | F1 | class acc | ROUGE-1 | ROUGE-2 | ROUGE-L | format |",
             "|---|---|---|---|---|---|---|---|"]
    for arm, m in result["arms"].items():
        lines.append(f"| {arm} | {m['reward']} | {m['f1']} | {m['class_acc']} | {m['rouge1']} | "
                     f"{m['rouge2']} | {m['rougeL']} | {m['format_ok']} |")
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    result["teacher_rows"] = len(subset)
    result["total_s"] = round(time.monotonic() - t0, 1)
    (out / "gpu_sgrpo.json").write_text(json.dumps(result, indent=1))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--no-wheels", action="store_true")
    p.add_argument("--no-gguf", action="store_true")
    r = sub.add_parser("run")
    r.add_argument("--stash", type=Path, required=True)
    r.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-sgrpo-out")))
    r.add_argument("--cpu-dry-run", action="store_true")
    r.add_argument("--budget-s", type=float, default=None)
    r.add_argument("--teacher-rows", type=int, default=1200)
    a = ap.parse_args()
    if a.cmd == "pack":
        res = pack(a.out, a.data, wheels=not a.no_wheels, gguf=not a.no_gguf)
    else:
        res = run(a.stash, a.out, cpu_dry_run=a.cpu_dry_run, budget_s=a.budget_s,
                  teacher_rows=a.teacher_rows)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
