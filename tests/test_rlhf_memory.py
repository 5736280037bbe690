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
    assert small["LoRA adapters + Adam"] == pytest.approx((policy + value + 2561) * 16 / GIB)  # + the linear head
    assert ppo_memory_estimate(config, separate_reward_model=False)["reward model"] == 0.0


def test_reward_model_critic_has_no_value_adapter_and_one_pass_of_activations():
    config = phi2_config()
    adapter, reward = (ppo_memory_estimate(config, minibatch_size=8, value_model=v) for v in ("adapter", "reward"))
    assert reward["activations (minibatch)"] == pytest.approx(adapter["activations (minibatch)"] / 2)
    policy = parameter_counts(config, 16, POLICY_LORA_TARGETS)["lora"]
    head = 2560 * 2561 + 2561  # the MLP (2560 -> 2560 -> 1); the prior is a fixed buffer, not trained
    assert reward["LoRA adapters + Adam"] == pytest.approx((policy + head) * 16 / GIB)
    assert reward["total"] < 15.0 < adapter["total"]  # minibatches of 8 fit a 16 GB GPU with the reward critic
    with pytest.raises(ValueError, match="needs the reward model"):
        ppo_memory_estimate(config, value_model="reward", separate_reward_model=False)
    with pytest.raises(ValueError, match=r"value_model must be one of \('adapter', 'reward'\), got 'shared'"):
        ppo_memory_estimate(config, value_model="shared")


def test_gpu_benchmark_script_runs_in_smoke_mode():
    """benchmarks/rlhf_gpu_memory.py stays runnable without a GPU: --smoke runs both critics on both
    paths (bf16-or-fp32 base and the 4-bit T4 path) on tiny shapes, and writes nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("bitsandbytes")
    root = Path(__file__).resolve().parents[1]
    results = root / "benchmarks" / "RESULTS.md"
    before = results.read_text()
    done = subprocess.run([sys.executable, str(root / "benchmarks" / "rlhf_gpu_memory.py"), "--smoke"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "smoke run: every set-up ran" in done.stdout
    assert "4-bit base, fp32 compute (T4 path) |  reward | cap None | ok" in done.stdout
    assert results.read_text() == before
