"""Settings of the policy's training: SFT, and the RL arms on TRL's GRPOTrainer.

``SGRPOConfig.grpo_args`` builds TRL's ``GRPOConfig`` with **every** GRPO field set
here, never left to TRL's defaults (which drifted: ``loss_type`` defaults to
``"dapo"``, ``beta`` to 0 with no reference model, ``learning_rate`` to 1e-6,
``gradient_checkpointing`` on). The paper's choices: the per-sequence mean loss
(``"grpo"``), a KL to the SFT policy (``beta`` > 0, k3 estimator, no bias
correction), clipping ε = 0.2, G = 8, group-normalised advantages, and
``multi_objective_aggregation="sum_then_normalize"`` (the other mode normalises
each reward separately and would undo the gate).

TRL scores every log-probability (policy, old policy, reference) at
``softmax(logits / temperature)``: the ratio and the KL are those of the
*sampling* policy, which is the paper's objective at its T = 1 and its natural
reading at ours. ``tests/test_models/test_sgrpo_policy.py`` pins this against a
written-out reference of the paper's advantage, loss and gradients.

Defaults are those of the tiny CPU policy and were chosen to make learning
visible on CPU in minutes (why each differs from the paper is noted beside it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

__all__ = ["ARMS", "Arm", "SFTSettings", "SGRPOConfig"]

Arm = Literal["sft", "grpo", "sgrpo"]
ARMS: tuple[Arm, ...] = ("sft", "grpo", "sgrpo")


@dataclass(frozen=True)
class SFTSettings:
    """The SFT cold start (TRL SFTTrainer, completion-only loss)."""

    learning_rate: float = 1e-3  # from scratch; a pretrained policy wants ~1e-4 (LoRA) or 2e-5
    epochs: float = 3.0
    max_steps: int = -1  # > 0 overrides epochs (the budget sets it)
    batch_size: int = 16
    max_length: int = 640  # prompt + completion tokens
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    seed: int = 0
    logging_steps: int = 10
    use_cpu: bool = True
    bf16: bool = False  # the GPU script turns this on


@dataclass(frozen=True)
class SGRPOConfig:
    """One RL arm. ``gated``: S-GRPO's staged reward; else the ungated sum (plain GRPO)."""

    gated: bool = True
    # Paper: lr 1e-6 for a 7B model. A 3M-parameter policy needs ~100x larger steps to move
    # within a few hundred updates; the KL term and clipping keep it near the SFT policy.
    learning_rate: float = 2e-4
    beta: float = 0.02  # KL coefficient (paper: not given); > 0 loads the reference model
    epsilon: float = 0.2  # clip range (paper: not given; the common choice)
    num_generations: int = 8  # G (paper)
    prompts_per_step: int = 2  # so a step sees prompts_per_step × G completions
    # Paper: T = 1. A short CPU cold start parses at T = 1 almost never (every reward 0,
    # frac_reward_zero_std 1.0: no signal); at T = 0.7 part of each group parses, so the
    # groups' rewards vary and the advantage is informative.
    temperature: float = 0.7
    max_completion_length: int = 128
    max_steps: int = 150
    num_iterations: int = 1  # on-policy: one gradient step per generation
    scale_rewards: Literal["group", "batch", "none"] = "group"
    warmup_ratio: float = 0.0
    lr_scheduler_type: str = "constant"
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    seed: int = 0
    logging_steps: int = 5
    save_steps: int = 50
    save_total_limit: int = 2
    bf16: bool = False  # CPU runs in float32; the GPU script turns this on
    use_cpu: bool = True
    gradient_checkpointing: bool = False  # a tiny policy does not need it; gemma on GPU neither
    extra: dict[str, Any] = field(default_factory=dict)  # any further GRPOConfig overrides

    def with_(self, **kw: Any) -> SGRPOConfig:
        return replace(self, **kw)

    def grpo_fields(self) -> dict[str, Any]:
        """Every GRPO-specific field of TRL 1.16's GRPOConfig, set explicitly."""
        return {
            # model / init
            "model_init_kwargs": None, "trust_remote_code": False, "router_aux_loss_coef": None,
            "disable_dropout": True, "cast_lm_head_to_fp32": False,
            # generation
            "num_generations": self.num_generations, "num_generations_eval": self.num_generations,
            "max_completion_length": self.max_completion_length,
            "ds3_gather_for_generation": True, "shuffle_dataset": True,
            "pad_to_multiple_of": None, "generation_batch_size": None,
            "steps_per_generation": None, "temperature": self.temperature, "top_p": 1.0,
            "top_k": 0, "min_p": None, "generation_kwargs": None, "chat_template_kwargs": None,
            "repetition_penalty": 1.0, "cache_implementation": None,
            # vLLM: not used (CPU, and the GPU script runs HF generate)
            "use_vllm": False, "vllm_mode": "colocate", "vllm_model_impl": "vllm",
            "vllm_enable_sleep_mode": False, "vllm_structured_outputs_regex": None,
            "vllm_server_base_url": None, "vllm_server_host": "0.0.0.0",  # noqa: S104 (unused)
            "vllm_server_port": 8000, "vllm_server_timeout": 240.0, "vllm_group_port": 51216,
            "vllm_gpu_memory_utilization": 0.3, "vllm_max_model_length": None,
            "vllm_tensor_parallel_size": 1, "vllm_importance_sampling_correction": False,
            "vllm_importance_sampling_mode": "sequence_mask",
            "vllm_importance_sampling_clip_max": 3.0, "vllm_importance_sampling_clip_min": None,
            "vllm_importance_sampling_cap": None,
            # the objective (PAPER.md)
            "beta": self.beta, "num_iterations": self.num_iterations, "epsilon": self.epsilon,
            "delta": None, "epsilon_high": self.epsilon,
            "sapo_temperature_neg": 1.05, "sapo_temperature_pos": 1.0,
            "vespo_k_pos": 2.0, "vespo_lambda_pos": 3.0, "vespo_k_neg": 3.0,
            "vespo_lambda_neg": 2.0,
            "importance_sampling_level": "token",
            "reward_weights": None,  # set by the trainer: [1, 0, 0, 0, 0] (total, components)
            "multi_objective_aggregation": "sum_then_normalize",
            "scale_rewards": self.scale_rewards, "loss_type": "grpo",
            "mask_truncated_completions": False, "sync_ref_model": False,
            "ref_model_mixup_alpha": 0.6, "ref_model_sync_steps": 512,
            "top_entropy_quantile": 1.0, "entropy_coef": 0.0, "use_adaptive_entropy": False,
            "entropy_coef_min": 0.0, "entropy_coef_max": 1.0, "entropy_coef_delta": 0.005,
            "entropy_target": 0.2, "max_tool_calling_iterations": None,
            "off_policy_mask_threshold": None,
            "use_bias_correction_kl": False,  # the paper's plain k3 KL
            # logging
            "log_completions": False, "log_multimodal": False, "num_completions_to_print": None,
            "log_unique_prompts": False, "log_completions_hub_repo": None,
            "use_transformers_continuous_batching": False,
            "transformers_continuous_batching_config": None, "use_transformers_paged": False,
        }

    def grpo_args(self, output_dir: str, **overrides: Any) -> Any:
        """TRL's GRPOConfig for this arm (with the training arguments that matter)."""
        from trl import GRPOConfig

        kw = self.grpo_fields()
        kw.update(
            output_dir=output_dir, learning_rate=self.learning_rate,
            per_device_train_batch_size=self.prompts_per_step * self.num_generations,
            gradient_accumulation_steps=1, max_steps=self.max_steps, num_train_epochs=1,
            warmup_steps=self.warmup_ratio, lr_scheduler_type=self.lr_scheduler_type,
            max_grad_norm=self.max_grad_norm, weight_decay=self.weight_decay, seed=self.seed,
            data_seed=self.seed, logging_steps=self.logging_steps, save_steps=self.save_steps,
            save_total_limit=self.save_total_limit, save_strategy="steps", bf16=self.bf16,
            fp16=False, use_cpu=self.use_cpu,
            gradient_checkpointing=self.gradient_checkpointing, report_to="none",
            remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=True,
            logging_strategy="steps", eval_strategy="no", push_to_hub=False)
        kw.update(self.extra)
        kw.update(overrides)
        return GRPOConfig(**kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
