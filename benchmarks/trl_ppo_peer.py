"""Peer side of ``benchmarks/rlhf_vs_trl_ppo.py``: TRL 1.12's PPOTrainer on the tiny world.

Runs inside its own virtual environment (``benchmarks/.venv-trl112``, built by the
benchmark script from ``benchmarks/requirements-trl-ppo.txt``), never in the course's:
TRL removed ``PPOTrainer`` after 1.12.0, and the course itself uses a newer TRL.

It imports nothing from the course. The orchestrator hands it a JSON settings file (model
directories, tokenised prompts, batch size, response length, PPO epochs, ...) and gets back
a JSON result (training wall-clock, episodes per second, peak resident and GPU memory, versions,
checkpoints). A ``TrainerCallback`` saves the policy with ``save_pretrained`` every
``checkpoint_every`` PPO steps (if set) and after the last, so the orchestrator can rate each checkpoint
with the course's gold rater exactly as it rates the course's own PPO policies; the time spent
saving is measured by the callback and left out of the training time.

TRL's design, as its docs describe it: four separate full models — the policy, a frozen
reference copy of it, the reward model and a value model (a sequence-classification model
initialised from the reward model, trained with the policy).

Usage (the orchestrator does this)::

    benchmarks/.venv-trl112/bin/python benchmarks/trl_ppo_peer.py settings.json result.json
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
import warnings

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def cpu_seconds() -> float:
    """User + system CPU time of this process (all its threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def policy_checkpoints(tokenizer, out_dir: str, every: int) -> transformers.TrainerCallback:
    """A ``TrainerCallback`` that saves the policy every ``every`` PPO steps (0: never) and after the last one,
    into ``out_dir/step-NNN``, and adds up the wall-clock and CPU seconds it spends saving."""
    from transformers import TrainerCallback

    class PolicyCheckpoints(TrainerCallback):
        def __init__(self):
            self.checkpoints: list[dict] = []
            self.seconds = self.cpu_seconds = 0.0

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step != state.max_steps and not (every and state.global_step % every == 0):
                return
            cpu_start, start = cpu_seconds(), time.perf_counter()
            path = os.path.join(out_dir, f"step-{state.global_step:03d}")
            model.policy.save_pretrained(path, safe_serialization=True)  # model: TRL's policy-and-value wrapper
            tokenizer.save_pretrained(path)
            self.seconds += time.perf_counter() - start
            self.cpu_seconds += cpu_seconds() - cpu_start
            self.checkpoints.append({"step": state.global_step, "episodes": state.episode, "policy_dir": path})

    return PolicyCheckpoints()


def main(settings_path: str, result_path: str) -> int:
    settings = json.loads(open(settings_path).read())
    import torch

    torch.set_num_threads(int(settings["threads"]))
    import datasets
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    seed = int(settings["seed"])
    transformers.set_seed(seed)

    tokenizer = AutoTokenizer.from_pretrained(settings["policy_dir"])
    tokenizer.padding_side = "left"  # TRL's PPOTrainer expects left-padded queries
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ValueError("TRL's PPOTrainer needs a pad token distinct from EOS")
    dtype = getattr(torch, settings.get("dtype", "float32"))  # bfloat16 for the GPU benchmark
    policy = AutoModelForCausalLM.from_pretrained(settings["policy_dir"], dtype=dtype)
    reference = AutoModelForCausalLM.from_pretrained(settings["policy_dir"], dtype=dtype)
    reward = AutoModelForSequenceClassification.from_pretrained(settings["reward_dir"], num_labels=1, dtype=dtype)
    value = AutoModelForSequenceClassification.from_pretrained(settings["reward_dir"], num_labels=1, dtype=dtype)
    for model in (reward, value):
        model.config.pad_token_id = tokenizer.pad_token_id

    train = datasets.Dataset.from_dict({"input_ids": settings["prompt_ids"]})
    evaluation = datasets.Dataset.from_dict({"input_ids": settings["prompt_ids"][: settings["batch_size"]]})
    out_dir = settings.get("output_dir") or tempfile.mkdtemp(prefix="trl-ppo-")
    config = PPOConfig(
        output_dir=os.path.join(out_dir, "trainer"),
        seed=seed,
        learning_rate=settings["learning_rate"],
        per_device_train_batch_size=settings["batch_size"],
        gradient_accumulation_steps=1,
        num_mini_batches=settings["num_mini_batches"],
        num_ppo_epochs=settings["ppo_epochs"],
        total_episodes=settings["total_episodes"],
        local_rollout_forward_batch_size=settings["batch_size"],
        response_length=settings["response_length"],
        temperature=settings["temperature"],
        kl_coef=settings["kl_coef"],
        kl_estimator=settings.get("kl_estimator", "k1"),
        cliprange=settings["clip_coef"],
        cliprange_value=settings["value_clip_coef"],
        vf_coef=settings["vf_coef"],
        gamma=1.0,
        lam=settings["gae_lambda"],
        stop_token="eos",
        missing_eos_penalty=settings["missing_eos_penalty"],
        max_grad_norm=settings["max_grad_norm"],
        num_sample_generations=0,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        bf16=dtype == torch.bfloat16,
        fp16=False,
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        dataloader_num_workers=0,
    )
    checkpoints = policy_checkpoints(tokenizer, out_dir, int(settings.get("checkpoint_every", 0)))
    trainer = PPOTrainer(
        args=config,
        processing_class=tokenizer,
        model=policy,
        ref_model=reference,
        reward_model=reward,
        value_model=value,
        train_dataset=train,
        eval_dataset=evaluation,
        callbacks=[checkpoints],
    )
    rss_before = peak_rss_mb()
    cpu_start, start = cpu_seconds(), time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start - checkpoints.seconds
    cpu = cpu_seconds() - cpu_start - checkpoints.cpu_seconds
    episodes = int(trainer.state.episode)
    history = [row for row in trainer.state.log_history if "objective/scores" in row]
    result = {
        "trainer": "trl.experimental.ppo.PPOTrainer",
        "episodes": episodes,
        "train_seconds": seconds,
        "episodes_per_second": episodes / seconds,
        "train_cpu_seconds": cpu,
        "episodes_per_cpu_second": episodes / cpu,
        "save_seconds": checkpoints.seconds,
        "peak_rss_mb": peak_rss_mb(),
        "peak_rss_mb_before_training": rss_before,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        "checkpoints": checkpoints.checkpoints,
        "proxy_score_first": history[0]["objective/scores"] if history else None,
        "proxy_score_last": history[-1]["objective/scores"] if history else None,
        "kl_last": history[-1]["objective/kl"] if history else None,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": transformers.__version__, "trl": trl.__version__,
                     "datasets": datasets.__version__},
        "threads": torch.get_num_threads(),
    }
    with open(result_path, "w") as f:
        json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: trl_ppo_peer.py SETTINGS.json RESULT.json")
    sys.exit(main(sys.argv[1], sys.argv[2]))
