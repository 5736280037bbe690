"""phi-2's own code path, offline: the stand-in, the presets, the dtype policy, and the command line.

``rlhf.phi2_standin`` installs a small ``PhiForCausalLM`` with phi-2's conventions as the tests' hub
cache entry of ``microsoft/phi-2`` (``HF_HUB_CACHE`` is the tests' own, see ``conftest.py``). Every
call below is the one a learner's GPU makes; only the model behind the name is small.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoTokenizer

from rlhf import models, presets, stages
from rlhf.models import PHI2, load_model
from rlhf.ppo import PPOConfig, PPOTrainer

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- the stand-in
def test_standin_carries_phi2_conventions(phi2_standin):
    config = AutoConfig.from_pretrained(PHI2)  # offline: resolved through the hub cache
    assert type(config).__name__ == "PhiConfig" and config.architectures == ["PhiForCausalLM"]
    assert config.rope_parameters["partial_rotary_factor"] == 0.4 and config.hidden_act == "gelu_new"
    assert config.tie_word_embeddings is False and config.resid_pdrop == 0.1 and config.embd_pdrop == 0.0
    assert config.dtype == torch.float16 and config.pad_token_id is None
    tokenizer = AutoTokenizer.from_pretrained(PHI2)
    assert tokenizer.pad_token is None
    assert tokenizer.bos_token == tokenizer.eos_token == tokenizer.unk_token == "<|endoftext|>"
    assert len(tokenizer) < config.vocab_size  # spare embedding rows, as on phi-2
    assert (phi2_standin / "STANDIN.json").is_file()


def test_load_model_resolves_phi2_to_the_standin_the_way_it_loads_phi2(phi2_standin):
    model, tokenizer = load_model(PHI2)
    assert type(model).__name__ == "PhiForCausalLM" and model.model.layers[0].mlp.fc1.bias is not None
    assert model.dtype == torch.float32  # on a CPU: never the fp16 stored in phi-2's config
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.pad_token_id not in (None, tokenizer.eos_token_id)
    assert tokenizer.pad_token_id < model.get_input_embeddings().weight.shape[0]  # a spare row, no resize
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert presets.for_model(PHI2).name == "phi-2"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RL_COURSE_MODEL", PHI2)
        assert models.resolve_model_name("auto") == PHI2 and presets.for_model("auto").name == "phi-2"


def test_standin_never_replaces_a_real_download(tmp_path):
    from rlhf import phi2_standin

    real = phi2_standin.repo_dir(tmp_path) / "snapshots" / "0123abcd"
    real.mkdir(parents=True)
    (real / "config.json").write_text("{}")
    with pytest.raises(FileExistsError, match="real microsoft/phi-2 download"):
        phi2_standin.install(tmp_path)
    with pytest.raises(FileExistsError):
        phi2_standin.uninstall(tmp_path)
    other = tmp_path / "other"
    assert phi2_standin.install(other).is_dir() and phi2_standin.is_installed(other)
    assert phi2_standin.uninstall(other) and not phi2_standin.repo_dir(other).exists()


# ----------------------------------------------------------------------------- presets
def test_presets_hold_every_setting_in_one_place(phi2_standin):
    tiny, phi2 = presets.get("tiny"), presets.get("phi-2")
    assert tiny.model == "tiny" and not tiny.sft.lora and tiny.gold.unseen_weight == 1.0
    assert phi2.model == PHI2 and phi2.sft.lora and phi2.reward.lora
    # the annotator that labels phi-2's pairs and the evaluation use one gold rater: no unseen-pair penalty
    assert phi2.gold.unseen_weight == 0.0 and phi2.gold_rater().config == phi2.gold
    config = phi2.ppo_config(total_steps=5)
    assert (config.preset, config.batch_size, config.batch_size // config.num_minibatches) == ("phi-2", 32, 4)
    assert config.total_steps == 5 and config.max_new_tokens == 48
    assert tiny.ppo_config() == PPOConfig()  # the tiny world's PPO settings are PPOConfig's defaults
    with pytest.raises(ValueError, match="cannot build a PPOConfig for preset 'tiny'"):
        phi2.ppo_config(preset="tiny")
    with pytest.raises(ValueError, match="unknown preset"):
        presets.get("phi-3")
    assert presets.for_model("tiny").name == "tiny"
    assert presets.for_model("some-org/some-causal-lm").model == "some-org/some-causal-lm"  # phi-2-like defaults
    assert phi2.stage_root() != tiny.stage_root() and phi2.stage_root().parent == tiny.stage_root()


def test_a_policy_of_one_preset_is_refused_with_another(tmp_path):
    stage = tmp_path / "sft"
    stage.mkdir()
    (stage / "stage.json").write_text(json.dumps({"preset": "phi-2", "base_model": PHI2}))
    with pytest.raises(ValueError, match="built by the 'phi-2' preset"):
        presets.check_policy_preset(stage, presets.tiny())
    presets.check_policy_preset(stage, presets.phi2())


# ----------------------------------------------------------------------------- dtype policy
@pytest.mark.parametrize("capability, dtype, quantization", [((7, 5), torch.float32, "4bit"),  # T4
                                                             ((7, 0), torch.float32, "4bit"),  # V100
                                                             ((8, 0), torch.bfloat16, None),  # A100
                                                             ((9, 0), torch.bfloat16, None)])  # H100/H200
def test_bf16_only_where_the_gpu_has_it_natively(monkeypatch, capability, dtype, quantization):
    """torch.cuda.is_bf16_supported() also counts emulation (True on a T4): the policy reads the hardware."""
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert models.default_dtype("cuda:0") == dtype and models.default_quantization("cuda:0") == quantization
    assert models.default_dtype("cpu") == torch.float32 and models.default_quantization("cpu") is None


def test_half_precision_weights_give_fp32_logits():
    model, tokenizer = load_model("tiny", dtype=torch.bfloat16)
    assert model.model.layers[0].mlp.fc1.weight.dtype == torch.bfloat16
    assert model.lm_head.weight.dtype == torch.float32
    ids = tokenizer(["This comedy is"], return_tensors="pt")["input_ids"]
    assert model(input_ids=ids).logits.dtype == torch.float32


def test_the_t4_path_a_4bit_base_trains_lora_and_merges_in_full_precision(tmp_path):
    """What load_model picks on a GPU without native bf16, run on the CPU (bitsandbytes supports it)."""
    pytest.importorskip("bitsandbytes")
    quantized, tokenizer = load_model("tiny", quantization="4bit", lora=True, for_training=True)
    assert models.is_quantized(quantized) and quantized.get_base_model().lm_head.weight.dtype == torch.float32
    trainable = [p for p in quantized.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)  # LoRA in fp32
    ids = tokenizer(["This comedy is wonderful."], return_tensors="pt")["input_ids"]
    loss = quantized(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in trainable)
    with torch.no_grad():
        for name, p in quantized.named_parameters():
            if "lora_B" in name:
                p.fill_(0.01)  # a visible adapter
    merged = models.merged(quantized, "tiny")
    assert not models.is_quantized(merged) and merged.model.layers[0].mlp.fc1.weight.dtype == torch.bfloat16
    plain, _ = load_model("tiny", dtype=torch.bfloat16)
    assert not torch.equal(merged.model.layers[0].mlp.fc1.weight, plain.model.layers[0].mlp.fc1.weight)
    merged.save_pretrained(tmp_path / "merged")
    assert not models.is_quantized(load_model(str(tmp_path / "merged"), quantization=None)[0])


def test_training_past_total_steps_is_refused():
    policy, tokenizer = load_model("tiny")
    config = PPOConfig(batch_size=4, num_minibatches=1, update_epochs=1, max_new_tokens=4, total_steps=1,
                       reward_norm_samples=4)
    from rlhf.tiny_world import load_prompts

    reward, reward_tokenizer = models.load_reward_model(str(stages.reward_model_dir()))
    trainer = PPOTrainer(policy, tokenizer, reward, reward_tokenizer, load_prompts("train"), config)
    with pytest.raises(ValueError, match="past total_steps=1.*learning rate to 0"):
        trainer.train(2, progress=False)


# ----------------------------------------------------------------------------- the command line
def _cli(*args: str, processes: int = 1, out: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    cli = ["-m", "rlhf.cli", "--output-dir", str(out), "--no-tensorboard", *args]
    if processes == 1:
        command = [sys.executable, *cli]
    else:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", str(port), *cli]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def _rows(out: Path) -> list[dict[str, float]]:
    with (out / "ppo" / "metrics.csv").open() as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def phi2_stages(phi2_standin, tmp_path_factory):
    """The whole pipeline through the stand-in, as `rlhf-pipeline --model microsoft/phi-2` runs it:
    SFT -> preferences -> reward model (each cached by rlhf.stages) -> PPO (2 steps) with evaluation."""
    out = tmp_path_factory.mktemp("phi2-one-process")
    done = _cli("--model", PHI2, "--steps", "2", out=out)
    stages_line = _cli("--model", PHI2, "--stages-only", out=out).stdout.strip().splitlines()[-1]
    return out, json.loads(stages_line), done.stdout


def test_pipeline_runs_end_to_end_on_phi2s_code_path(phi2_stages):
    out, built, stdout = phi2_stages
    assert built["preset"] == "phi-2"
    sft_record = json.loads((Path(built["policy"]) / "stage.json").read_text())
    assert sft_record["preset"] == "phi-2" and sft_record["base_model"] == PHI2 and sft_record["settings"]["lora"]
    prefs = next(Path(built["reward_model"]).parent.glob("preferences-*"))
    assert json.loads((prefs / "stage.json").read_text())["gold_config"]["unseen_weight"] == 0.0
    config = json.loads((out / "ppo" / "config.json").read_text())
    expected = presets.phi2().ppo_config()
    for key in ("preset", "batch_size", "num_minibatches", "learning_rate", "max_new_tokens", "lora_targets"):
        assert config[key] == (list(getattr(expected, key)) if key == "lora_targets" else getattr(expected, key)), key
    rows = _rows(out)
    assert [r["step"] for r in rows] == [1.0, 2.0]
    assert rows[0]["ppo/ratio_dev_at_start"] < 1e-5 and rows[0]["kl/k1"] == 0.0  # sampled = scored
    assert all(np.isfinite(list(r.values())).all() for r in rows)
    assert rows[1]["kl/k3"] > 0.0 and "reward/gold" in rows[0]  # the policy moved; evaluation ran
    assert '"preset": "phi-2"' in stdout


def test_accelerate_launch_keeps_the_phi2_preset(phi2_stages, tmp_path):
    """The documented launch passes only the stage directories: the preset comes from the SFT stage's
    record, never silently the tiny world's."""
    _, built, _ = phi2_stages
    _cli("--policy", built["policy"], "--reward-model", built["reward_model"], "--steps", "2",
         "--set", "update_epochs=1", processes=2, out=tmp_path)
    config = json.loads((tmp_path / "ppo" / "config.json").read_text())
    assert config["preset"] == "phi-2" and config["num_processes"] == 2
    assert (config["batch_size"], config["num_minibatches"], config["max_new_tokens"]) == (32, 8, 48)
    assert config["learning_rate"] == presets.phi2().ppo["learning_rate"]
    rows = _rows(tmp_path)
    assert len(rows) == 2 and rows[0]["ppo/ratio_dev_at_start"] < 1e-5
    with pytest.raises(AssertionError, match="built by the 'phi-2' preset"):
        _cli("--model", "tiny", "--policy", built["policy"], "--reward-model", built["reward_model"],
             "--steps", "1", out=tmp_path / "mismatch")


def test_sigterm_stops_at_a_step_boundary_and_saves_a_checkpoint(tmp_path):
    """A closed session or a scheduler's SIGTERM loses nothing: the step in flight finishes, a checkpoint
    is written, and --resume continues from it."""
    sft, reward = stages.sft_model_dir(), stages.reward_model_dir()
    args = ["-m", "rlhf.cli", "--policy", str(sft), "--reward-model", str(reward), "--output-dir", str(tmp_path),
            "--no-tensorboard", "--no-gold", "--checkpoint-every", "0", "--set", "batch_size=8",
            "--set", "num_minibatches=1", "--set", "update_epochs=1", "--set", "max_new_tokens=8",
            "--set", "reward_norm_samples=8", "--set", "total_steps=200"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    metrics = tmp_path / "ppo" / "metrics.csv"
    deadline = time.time() + 300
    while time.time() < deadline and (not metrics.is_file() or metrics.read_text().count("\n") < 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    steps = len(_rows(tmp_path))
    assert 1 <= steps < 200 and f"stopped at step {steps}" in output
    assert (tmp_path / "ppo" / "checkpoints" / f"step-{steps:06d}" / "state.pt").is_file()
    resumed = subprocess.run([sys.executable, *args, "--resume", "--steps", "1"], env=env, capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from" in resumed.stdout and len(_rows(tmp_path)) == steps + 1
