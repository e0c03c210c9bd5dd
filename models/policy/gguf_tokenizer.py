"""A faithful tokenizer for SentencePiece-BPE GGUF files (Gemma 3), built from the GGUF itself.

transformers 5.17 converts a Gemma GGUF vocabulary into a *Unigram* model whose
log-probabilities are the GGUF scores; for Gemma 3 those scores are BPE merge
ranks (0, -1, -2, ...), so Unigram prefers many short pieces: "the" -> "▁t" +
"he", "The capital of France is" -> 24 tokens and a continuation of "1 1 1"
(transformers#41494, fix closed unmerged). Here the scores are read as ranks and
the merges rebuilt the way SentencePiece BPE applies them (higher score first).
From ../shared/tools/gguf_bpe_tokenizer.py (measured in SGRPO.md), typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["gguf_bpe_tokenizer"]


def gguf_bpe_tokenizer(path: str | Path) -> Any:
    """A ``PreTrainedTokenizerFast`` from a SentencePiece-BPE GGUF's vocabulary and ranks."""
    import gguf
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    f = gguf.GGUFReader(str(path)).fields
    toks = f["tokenizer.ggml.tokens"]
    tokens = [bytes(toks.parts[i]).decode("utf-8", "replace") for i in toks.data]
    sc = f["tokenizer.ggml.scores"]
    scores = [float(sc.parts[i][0]) for i in sc.data]
    tt = f["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]

    def fid(key: str) -> int:
        return int(f[key].parts[-1][0])

    bos, eos = fid("tokenizer.ggml.bos_token_id"), fid("tokenizer.ggml.eos_token_id")
    unk, pad = fid("tokenizer.ggml.unknown_token_id"), fid("tokenizer.ggml.padding_token_id")
    vocab = {t: i for i, t in enumerate(tokens)}
    normal = [i for i, k in enumerate(types) if k == 1]  # 1 normal, 3 control, 4 user, 6 byte
    rank = {i: -scores[i] for i in normal}
    merges = []
    for i in normal:
        t = tokens[i]
        for k in range(1, len(t)):
            a, b = vocab.get(t[:k]), vocab.get(t[k:])
            if a is not None and b is not None and types[a] in (1, 6) and types[b] in (1, 6):
                merges.append((rank[i], a, b, t[:k], t[k:]))
    merges.sort()
    bpe = BPE(vocab=vocab, merges=[(m[3], m[4]) for m in merges], unk_token=tokens[unk],
              byte_fallback=True, fuse_unk=True)
    tk = Tokenizer(bpe)
    tk.normalizer = normalizers.Replace(" ", "▁")
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                    decoders.Fuse()])
    tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                           for i, k in enumerate(types) if k == 3])
    user = [AddedToken(tokens[i], special=False, normalized=False)
            for i, k in enumerate(types) if k == 4]
    if user:
        tk.add_tokens(user)
    tk.post_processor = processors.TemplateProcessing(
        single=f"{tokens[bos]} $A", pair=f"{tokens[bos]} $A $B",
        special_tokens=[(tokens[bos], bos)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=tokens[bos],
                                   eos_token=tokens[eos], unk_token=tokens[unk],
                                   pad_token=tokens[pad])
