"""Supervised fine-tuning (SFT) of the base model on demonstrations, with TRL's ``SFTTrainer``.

**Demonstrations.** Each is a review opening (prompt) and a short continuation written by
the corpus generator (completion): one to three sentences, then EOS. The base model was
pretrained on whole reviews of two to five sentences; SFT teaches it the task *format* of
the RL chapters — answer a prompt with a short, finished review and stop — so that
responses stay around 10–40 tokens and always have a chance to emit EOS.

The demonstrations are **half positive, half negative** on purpose: SFT imitates, so it
would copy any sentiment bias of its data. Keeping them balanced leaves the SFT policy in
the middle of the gold scale and makes the *alignment* (preferring positive, fluent
reviews) the job of the reward model and PPO in chapters 10–11, where we can measure it.

The loss is on the completion tokens only (TRL's default for prompt-completion data); TRL
appends EOS to every completion.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rl_basics.validation import check_fields
from rlhf import corpus
from rlhf.policy import response_logprobs
from rlhf.trl_args import trl_training_args


@dataclass(frozen=True)
class SFTSettings:
    """Settings of supervised fine-tuning (defaults: the tiny model on CPU)."""

    seed: int = 0
    """Seed of the demonstrations and of the trainer."""
    demos_per_prompt: int = 2
    """Demonstrations per training prompt (the tiny world has 1024 training prompts)."""
    max_sentences: int = 3
    """Longest demonstration, in sentences (the shortest has one)."""
    num_train_epochs: float = 1.0
    """Passes over the demonstrations."""
    learning_rate: float = 5e-4
    """Peak learning rate (linear decay). Use ~2e-4 for phi-2 with LoRA."""
    batch_size: int = 32
    """Demonstrations per optimizer step."""
    max_length: int = 128
    """Longest prompt + completion in tokens (longer ones are truncated by TRL)."""
    lora: bool = False
    """Train a LoRA adapter instead of all weights (what fits phi-2 on one GPU)."""

    def __post_init__(self):
        check_fields(self, "an integer >= 1", "demos_per_prompt", "max_sentences", "batch_size", "max_length")
        check_fields(self, "> 0", "learning_rate", "num_train_epochs")


def demonstrations(prompts: list[str], settings: SFTSettings = SFTSettings(), seed_offset: int = 0) -> list[dict]:
    """Prompt/completion demonstrations (balanced sentiment) for ``prompts``.

    Use ``seed_offset`` to draw a different set, e.g. held-out demonstrations for the eval prompts.
    """
    return corpus.generate_demonstrations(prompts, settings.seed + 1000 + seed_offset,
                                          per_prompt=settings.demos_per_prompt, max_sentences=settings.max_sentences)


@torch.no_grad()
def demonstration_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, demos: list[dict],
                       batch_size: int = 64) -> float:
    """Mean negative log-likelihood per completion token (EOS included) of ``demos`` under ``model``.

    This is the quantity SFT minimises, measured on any set of demonstrations.
    """
    nll, count = 0.0, 0
    for start in range(0, len(demos), batch_size):
        chunk = demos[start:start + batch_size]
        prompts = [d["prompt"] for d in chunk]
        completions = [d["completion"] for d in chunk]
        nll -= float(response_logprobs(model, tokenizer, prompts, completions).sum())
        count += sum(len(tokenizer(c, add_special_tokens=False)["input_ids"]) + 1 for c in completions)
    return nll / count


def supervised_args(settings: SFTSettings, output_dir: str | Path) -> dict:
    """The TRL arguments SFT and reward modelling share, for ``settings`` (an :class:`SFTSettings`
    or a ``RewardSettings``): :func:`rlhf.trl_args.trl_training_args` with its epochs, batch size,
    learning rate, max length and seed, and a linear schedule after 5 warm-up steps."""
    return trl_training_args(
        output_dir, settings.seed,
        num_train_epochs=settings.num_train_epochs,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=5,
        max_length=settings.max_length,
        activation_checkpointing=False,
        logging_steps=5,
        disable_tqdm=False,
    )


def sft_config(settings: SFTSettings, output_dir: str | Path):
    """TRL ``SFTConfig`` for ``settings`` (:func:`supervised_args`; loss on completion tokens only)."""
    from trl import SFTConfig

    return SFTConfig(**supervised_args(settings, output_dir), completion_only_loss=True, packing=False)


def train_sft(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, demos: list[dict],
              settings: SFTSettings = SFTSettings(), output_dir: str | Path | None = None) -> list[dict]:
    """Fine-tune ``model`` in place on ``demos`` with TRL's ``SFTTrainer``.

    Args:
        model: a causal LM (with a LoRA adapter if ``settings.lora``; see ``load_model(lora=True)``).
        tokenizer: its tokenizer (distinct pad and EOS).
        demos: dicts with "prompt" and "completion" (other keys are ignored).
        output_dir: the trainer's scratch directory (a temporary one if None; nothing is saved there).

    Returns:
        the trainer's log history (loss every ``logging_steps`` steps).
    """
    from trl import SFTTrainer

    if not demos:
        raise ValueError("demos is empty; SFT needs at least one demonstration")
    for i, d in enumerate(demos):
        for key in ("prompt", "completion"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ValueError(f"demonstration {i}: {key!r} must be a non-empty string, got {d.get(key)!r}")
    dataset = Dataset.from_list([{"prompt": d["prompt"], "completion": d["completion"]} for d in demos])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SFTTrainer(model=model, args=sft_config(settings, output_dir or tmp),
                             train_dataset=dataset, processing_class=tokenizer)
        trainer.train()
        history = trainer.state.log_history
    model.eval()
    return history


def build_sft_stage(out_dir: Path, base_dir: Path | str, settings: SFTSettings = SFTSettings(),
                    lora_targets: Sequence[str] | None = None) -> None:
    """The cached SFT stage: fine-tune the base model, save model + tokenizer + ``stage.json``.

    ``base_dir`` is anything :func:`rlhf.models.load_model` accepts (a directory or a hub id);
    a LoRA adapter (on ``lora_targets``, default phi-2's linear layers) is merged into the saved
    weights, in full precision even when the base was trained 4-bit (:func:`rlhf.models.merged`).
    """
    from rlhf.models import default_lora_config, load_model, merged
    from rlhf.tiny_world import load_prompts

    lora = default_lora_config(targets=lora_targets) if settings.lora else False
    model, tokenizer = load_model(str(base_dir), lora=lora, for_training=True)
    train_demos = demonstrations(load_prompts("train"), settings)
    eval_demos = demonstrations(load_prompts("eval"), settings, seed_offset=1)
    loss_before = demonstration_loss(model, tokenizer, eval_demos)
    history = train_sft(model, tokenizer, train_demos, settings)
    loss_after = demonstration_loss(model, tokenizer, eval_demos)
    if settings.lora:
        model = merged(model, str(base_dir))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    record = {
        "settings": asdict(settings),
        "base": str(base_dir),
        "eval_demonstration_loss_before": loss_before,
        "eval_demonstration_loss_after": loss_after,
        "train_loss": [h["loss"] for h in history if "loss" in h],
        "n_train_demonstrations": len(train_demos),
    }
    (out_dir / "stage.json").write_text(json.dumps(record, indent=2) + "\n")


def response_lengths(tokenizer: PreTrainedTokenizerBase, responses: list[str]) -> np.ndarray:
    """Token counts ``(B,)`` of ``responses`` (EOS not counted)."""
    return np.array([len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in responses])
