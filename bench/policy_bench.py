"""CPU cost of the policy: generation tokens/s and one policy-gradient step (SGRPO.md's table).

  python bench/policy_bench.py --policy tiny            # the from-scratch CI policy
  python bench/policy_bench.py --policy gemma --dtype bfloat16

One prompt of the Reason Agent (~230 tokens for gemma), G = 8 samples of 64 new
tokens (min = max, so every run generates the same amount), then one step: the
completion log-probs of the 8 sequences, a policy-gradient loss, backward, AdamW.
Prints one JSON object: load_s, prompt_tokens, gen_s, gen_tokens_per_s, step_s,
peak_rss_gib, threads, load average (the machine is shared: say so with the numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROMPT_ROWS = 24


def _prompts() -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "test_models"))
    from test_policy import _rows  # hand-made portraits and analyses, no dataset needed

    return [r.prompt + r.completion for r in _rows(PROMPT_ROWS)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--policy", choices=["tiny", "gemma", "smollm2"], default="tiny")
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--g", type=int, default=8)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    from enf_core.reason_prompt import PromptConfig
    from models.policy.runner import PolicyRunner, RunnerConfig

    texts = _prompts()
    t0 = time.perf_counter()
    if a.policy == "tiny":
        from models.policy.tiny import build_tiny_policy

        d = build_tiny_policy(texts, Path(tempfile.mkdtemp()) / "tiny")
    else:
        from models.policy.staging import stage_policy

        d = stage_policy(a.policy)
    r = PolicyRunner(d, RunnerConfig(dtype=a.dtype, max_new_tokens=a.new))
    load_s = time.perf_counter() - t0
    del PromptConfig
    prompt = texts[0].split("<think>")[0]
    if a.policy != "tiny":
        prompt = "Will this user swipe away or dislike the video, and why?\n" + prompt
    tok, model = r.tokenizer, r.model
    enc = tok([prompt] * a.g, return_tensors="pt", add_special_tokens=False)
    t1 = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, max_new_tokens=a.new,
                             min_new_tokens=a.new, pad_token_id=tok.pad_token_id)
    gen_s = time.perf_counter() - t1
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    steps = []
    for _ in range(2):
        t2 = time.perf_counter()
        logits = model(out).logits[:, -a.new - 1:-1].float()
        lp = torch.log_softmax(logits, -1).gather(-1, out[:, -a.new:, None])[..., 0]
        loss = -(lp.mean(-1) * torch.randn(lp.shape[0])).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        steps.append(time.perf_counter() - t2)
    print(json.dumps({
        "policy": a.policy, "dtype": a.dtype, "params_m": round(sum(
            p.numel() for p in model.parameters()) / 1e6, 2),
        "load_s": round(load_s, 1), "prompt_tokens": int(enc["input_ids"].shape[1]),
        "g": a.g, "new_tokens": a.new, "gen_s": round(gen_s, 2),
        "gen_tokens_per_s": round(a.g * a.new / gen_s, 1), "step_s": round(min(steps), 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "threads": torch.get_num_threads(), "loadavg_1m": round(os.getloadavg()[0], 1)}))


if __name__ == "__main__":
    main()
