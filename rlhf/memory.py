"""How much GPU memory PPO-RLHF of phi-2 needs, component by component.

:func:`phi2_config` is phi-2's published architecture (no download: the numbers are in
``microsoft/phi-2``'s ``config.json``). A model built from it on the ``meta`` device has
phi-2's exact parameter count and shapes without allocating anything, so every static
component below is counted exactly; only the activations kept for the backward pass are a
formula (stated in :func:`ppo_memory_estimate`). ``benchmarks/rlhf_gpu_memory.py`` measures
the real peak on a GPU with a randomly initialised model of these shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from transformers import PhiConfig, PhiForCausalLM

from rlhf.models import PHI2_LORA_TARGETS, POLICY_LORA_TARGETS
from rlhf.policy_value import VALUE_MODELS

GIB = 2**30


def phi2_config(**overrides) -> PhiConfig:
    """phi-2's configuration (2.78 B parameters) with dropout off, as RL needs it."""
    settings = dict(
        vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, partial_rotary_factor=0.4, hidden_act="gelu_new",
        max_position_embeddings=2048, layer_norm_eps=1e-5, tie_word_embeddings=False,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0,  # phi-2 ships resid_pdrop=0.1
        bos_token_id=50256, eos_token_id=50256,
    )
    return PhiConfig(**{**settings, **overrides})


def parameter_counts(config: PhiConfig, lora_r: int, lora_targets: Sequence[str] = PHI2_LORA_TARGETS) -> dict[str, int]:
    """Exact parameter counts: ``base`` (the causal LM) and ``lora`` (one adapter of rank ``lora_r``).

    The model is built on the ``meta`` device: shapes only, no memory.
    """
    with torch.device("meta"):
        model = PhiForCausalLM(config)
    lora = sum(
        lora_r * (m.in_features + m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name.split(".")[-1] in lora_targets
    )
    return {"base": sum(p.numel() for p in model.parameters()), "lora": lora}


def ppo_memory_estimate(
    config: PhiConfig,
    *,
    lora_r: int = 16,
    batch_size: int = 32,
    minibatch_size: int = 8,
    prompt_length: int = 64,
    response_length: int = 48,
    weight_bytes: float = 2.0,
    separate_reward_model: bool = True,
    value_model: str = "adapter",
) -> dict[str, float]:
    """GiB per component of the course's PPO on one GPU (one frozen base shared by policy,
    value and reference; see :mod:`rlhf.policy_value`).

    Args:
        config: the model's configuration (:func:`phi2_config` for phi-2).
        lora_r: rank of the policy and value adapters (trained in fp32 with Adam). The policy's
            adapter covers every linear layer and ``lm_head`` (``POLICY_LORA_TARGETS``, chapter 11's
            default), the value's every linear layer but ``lm_head`` (``PHI2_LORA_TARGETS``).
        batch_size: prompts per PPO step (the generation batch of one GPU).
        minibatch_size: sequences per optimizer step.
        prompt_length, response_length: tokens; a sequence has ``prompt_length + response_length``.
        weight_bytes: bytes per frozen base weight: 2 (bf16), 1 (8-bit), about 0.5 (4-bit).
        separate_reward_model: the reward model is a second full model of the same size in the
            same dtype (the course's chapter 10 reward model); False: it is not on this GPU.
        value_model: the critic (``PPOConfig.value_model``): ``"adapter"``, a second adapter
            whose pass through the base keeps its own activations, or ``"reward"``, a head
            (a fixed prior, not trained, + an MLP as wide as the hidden size) on the reward model's hidden states: no
            second adapter and one pass of activations (it needs the reward model on the GPU).

    Returns:
        GiB for ``base weights``, ``reward model``, ``LoRA adapters + Adam`` (fp32 weights,
        gradients and two moments: 16 bytes per parameter), ``KV cache (generation)``,
        ``logits (minibatch)`` (fp32 logits, log-softmax and probabilities over the vocabulary
        at each response position), ``activations (minibatch)`` and ``total``.

    The activations are an estimate: 34 bytes per token, layer and hidden unit for a bf16
    transformer layer whose attention does not store the score matrix (SDPA; Korthikanti et
    al. 2022, "Reducing Activation Recomputation in Large Transformer Models", without dropout
    masks it is a little less), counted twice with the value adapter because the policy and
    the value adapter each run the base forward. Generation and the update do not overlap, so
    the total counts the larger of the KV cache and the update's logits + activations.
    """
    if value_model not in VALUE_MODELS:
        raise ValueError(f"value_model must be one of {VALUE_MODELS}, got {value_model!r}")
    if value_model == "reward" and not separate_reward_model:
        raise ValueError("value_model='reward' reads the reward model's hidden states: it needs the reward model "
                         "on this GPU (separate_reward_model=True)")
    h, layers, vocab = config.hidden_size, config.num_hidden_layers, config.vocab_size
    counts = parameter_counts(config, lora_r)
    policy = parameter_counts(config, lora_r, POLICY_LORA_TARGETS)["lora"]
    # trained with Adam: the value adapter and its linear head, or the reward critic's MLP (h -> h -> 1; its prior is fixed)
    adapters = policy + (counts["lora"] + h + 1 if value_model == "adapter" else (h * h + h) + (h + 1))
    passes = 2 if value_model == "adapter" else 1
    seq = prompt_length + response_length
    act_bytes = 2  # bf16 activations
    parts = {
        "base weights": counts["base"] * weight_bytes,
        "reward model": counts["base"] * weight_bytes if separate_reward_model else 0.0,
        "LoRA adapters + Adam": adapters * 16,
        "KV cache (generation)": 2 * layers * batch_size * seq * h * act_bytes,
        "logits (minibatch)": 3 * minibatch_size * response_length * vocab * 4,
        "activations (minibatch)": passes * 34 * layers * minibatch_size * seq * h,
    }
    update = parts["logits (minibatch)"] + parts["activations (minibatch)"]
    static = parts["base weights"] + parts["reward model"] + parts["LoRA adapters + Adam"]
    parts["total"] = static + max(parts["KV cache (generation)"], update)
    return {k: v / GIB for k, v in parts.items()}
