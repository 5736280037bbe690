"""PPO-RLHF under ``accelerate launch`` with two CPU processes (gloo) behaves like one process.

The trainer's random numbers depend on (seed, step, position in the batch) only, each process weights
its loss by its share of the minibatch's tokens, and advantages are whitened over the global
batch, so with the same global batch and one minibatch per epoch the two runs compute the
same thing up to floating-point rounding: their metrics and trained weights must agree. The
two-process run is also interrupted after two steps and resumed from its checkpoint (one RNG
file per process), through the command line, and must continue the one-process curve.

A randomly initialised tiny Phi and reward model keep this to a few seconds of compute; most
of the time is the start-up of the three launches.
"""

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import PhiForCausalLM, PhiForSequenceClassification

from rl_basics.agents.checkpoints import load_checkpoint
from rlhf import corpus
from rlhf.cli import parse_overrides
from rlhf.tiny_world import TinyWorldConfig, tiny_phi_config, train_tokenizer

TINY = TinyWorldConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       max_position_embeddings=64)
PPO_ARGS = ["--no-gold", "--no-tensorboard", "--checkpoint-every", "2", "--seed", "3",
            "--set", "batch_size=8", "--set", "num_minibatches=1", "--set", "update_epochs=2",
            "--set", "max_new_tokens=10", "--set", "reward_norm_samples=16", "--set", "lora_r=4",
            "--set", "total_steps=3", "--set", "learning_rate=1e-3"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A random tiny policy and reward model saved like the pipeline's stages, and a prompt file."""
    root = tmp_path_factory.mktemp("models")
    tokenizer = train_tokenizer(corpus.generate_reviews(200, 0), vocab_size=300, max_length=64)
    config = tiny_phi_config(tokenizer, TINY)
    torch.manual_seed(0)
    policy = PhiForCausalLM(config)
    with torch.no_grad():  # EOS likely enough that responses end at mixed lengths
        policy.lm_head.bias[tokenizer.eos_token_id] = 3.0
    config.num_labels = 1
    reward = PhiForSequenceClassification(config)
    for name, model in (("policy", policy), ("reward", reward)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    (root / "prompts.txt").write_text("\n".join(corpus.generate_prompts(32, 4, 0)[0]) + "\n")
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(models: Path, out: Path, processes: int, *extra: str) -> None:
    cli = ["-m", "rlhf.cli", "--policy", str(models / "policy"), "--reward-model", str(models / "reward"),
           "--prompts", str(models / "prompts.txt"), "--output-dir", str(out), *PPO_ARGS, *extra]
    if processes == 1:
        command = [sys.executable, *cli]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(_free_port()), *cli]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def _metrics(out: Path) -> dict[str, np.ndarray]:
    with (out / "ppo" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return {key: np.array([float(r[key]) for r in rows]) for key in rows[0]}


def test_two_cpu_processes_match_one_and_resume_across_processes(models, tmp_path):
    _run(models, tmp_path / "one", 1, "--steps", "3")
    _run(models, tmp_path / "two", 2, "--steps", "2")
    two_ckpt = tmp_path / "two" / "ppo" / "checkpoints" / "step-000002"
    assert sorted(p.name for p in two_ckpt.glob("rng-*.pt")) == ["rng-0.pt", "rng-1.pt"]
    _run(models, tmp_path / "two", 2, "--resume")  # to total_steps = 3

    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    np.testing.assert_array_equal(two["step"], [1.0, 2.0, 3.0])
    assert one["kl/k1"][0] == 0.0 and one["ppo/ratio_dev_at_start"].max() < 1e-6
    assert one["kl/k3"][-1] > 1e-4  # the policy did move, so agreement below is not trivial
    for key in one:
        if not key.startswith("time/"):
            np.testing.assert_allclose(two[key], one[key], rtol=1e-3, atol=1e-5, err_msg=key)

    final_one = load_checkpoint(tmp_path / "one" / "ppo" / "checkpoints" / "step-000003" / "state.pt")
    final_two = load_checkpoint(tmp_path / "two" / "ppo" / "checkpoints" / "step-000003" / "state.pt")
    assert final_two["num_processes"] == 2 and final_one["num_processes"] == 1
    for name, value in final_one["model"].items():
        torch.testing.assert_close(final_two["model"][name], value, rtol=1e-3, atol=1e-5, msg=name)


def test_reward_model_critic_under_two_processes_matches_one(models, tmp_path):
    critic = ("--set", "value_model=reward")  # its head's fixed prior is a buffer, set alike on every process
    _run(models, tmp_path / "one", 1, "--steps", "2", *critic)
    _run(models, tmp_path / "two", 2, "--steps", "2", *critic)
    one, two = _metrics(tmp_path / "one"), _metrics(tmp_path / "two")
    assert one["kl/k3"][-1] > 1e-4 and one["ppo/value_explained_variance"][0] != 0.0  # moved; the prior explains
    for key in one:
        if not key.startswith("time/"):
            np.testing.assert_allclose(two[key], one[key], rtol=1e-3, atol=1e-5, err_msg=key)


def test_cli_config_overrides_are_typed_and_checked():
    assert parse_overrides(["kl_coef=0.1", "kl_target=none", "batch_size=8", "truncate_prompts=true",
                            "lora_targets=q_proj,v_proj", "kl_estimator=k3", "value_model=reward"]) == {
        "kl_coef": 0.1, "kl_target": None, "batch_size": 8, "truncate_prompts": True,
        "lora_targets": ("q_proj", "v_proj"), "kl_estimator": "k3", "value_model": "reward"}
    with pytest.raises(ValueError, match="FIELD=VALUE"):
        parse_overrides(["klcoef=0.1"])
    with pytest.raises(ValueError, match="true or false"):
        parse_overrides(["normalize_reward=maybe"])
