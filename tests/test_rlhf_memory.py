"""rlhf.memory: phi-2's exact parameter counts and the PPO memory estimate's arithmetic."""

import pytest

from rlhf.memory import GIB, parameter_counts, phi2_config, ppo_memory_estimate
from rlhf.models import PHI2_LORA_TARGETS, POLICY_LORA_TARGETS


def test_phi2_parameter_count_matches_the_published_model():
    counts = parameter_counts(phi2_config(), lora_r=16)
    assert counts["base"] == 2_779_683_840  # microsoft/phi-2's model card: 2.78 B
    # 32 layers x (q, k, v, dense: 4 x 16 x (2560 + 2560); fc1, fc2: 2 x 16 x (2560 + 10240))
    assert counts["lora"] == 32 * (4 * 16 * 5120 + 2 * 16 * 12800)


def test_policy_adapter_adds_lm_head():
    config = phi2_config()
    projections = parameter_counts(config, 16, PHI2_LORA_TARGETS)["lora"]
    with_head = parameter_counts(config, 16, POLICY_LORA_TARGETS)["lora"]
    assert with_head - projections == 16 * (2560 + 51200)


def test_estimate_adds_up_and_scales_with_the_minibatch():
    config = phi2_config()
    small, large = (ppo_memory_estimate(config, minibatch_size=m) for m in (4, 8))
    for est in (small, large):
        update = est["logits (minibatch)"] + est["activations (minibatch)"]
        static = est["base weights"] + est["reward model"] + est["LoRA adapters + Adam"]
        assert est["total"] == pytest.approx(static + max(update, est["KV cache (generation)"]))
    assert large["activations (minibatch)"] == pytest.approx(2 * small["activations (minibatch)"])
    assert small["base weights"] == pytest.approx(2_779_683_840 * 2 / GIB)
    policy = parameter_counts(config, 16, POLICY_LORA_TARGETS)["lora"]
    value = parameter_counts(config, 16, PHI2_LORA_TARGETS)["lora"]
    assert small["LoRA adapters + Adam"] == pytest.approx((policy + value) * 16 / GIB)
    assert ppo_memory_estimate(config, separate_reward_model=False)["reward model"] == 0.0
