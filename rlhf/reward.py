"""Reward modelling with TRL's ``RewardTrainer``: a Bradley–Terry model of the annotator's choices.

The reward model ``r_phi`` is the SFT model with its LM head replaced by a scalar head
(``AutoModelForSequenceClassification``, ``num_labels=1``); it reads ``prompt + response +
EOS`` and its score is the head's output at the last non-pad token (the EOS). Training
minimises the Bradley–Terry negative log-likelihood of the labelled pairs,

.. math:: \\mathcal{L}(\\phi) = -\\mathbb{E}_{(x, y_w, y_l)} \\log \\sigma(r_\\phi(x, y_w) - r_\\phi(x, y_l)).

Score texts with :func:`score` the way the trainer saw them: prompt + response, then EOS.
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
from rlhf.preferences import load_preference_dataset, noise_ceiling, validate_preference_dataset
from rlhf.sft import supervised_args


@dataclass(frozen=True)
class RewardSettings:
    """Settings of reward-model training (defaults: the tiny model on CPU)."""

    seed: int = 0
    """Seed of the new scalar head and of the data order."""
    num_train_epochs: float = 2.0
    """Passes over the training pairs."""
    learning_rate: float = 3e-4
    """Peak learning rate (linear decay). Use ~1e-5 (full) or ~1e-4 (LoRA) for phi-2."""
    batch_size: int = 32
    """Pairs per optimizer step."""
    max_length: int = 128
    """Pairs with a longer prompt + response (+ EOS) are dropped by TRL."""
    center_rewards_coefficient: float | None = 0.01
    """Small penalty on the mean squared score that keeps rewards centred near 0 (Eisenstein et al. 2023)."""
    lora: bool = False
    """Train a LoRA adapter (plus the new head) instead of all weights."""

    def __post_init__(self):
        check_fields(self, "> 0", "learning_rate", "num_train_epochs")
        check_fields(self, "an integer >= 1", "batch_size", "max_length")
        check_fields(self, ">= 0 or None", "center_rewards_coefficient")


def reward_config(settings: RewardSettings, output_dir: str | Path):
    """TRL ``RewardConfig`` for ``settings`` (:func:`rlhf.sft.supervised_args`, plus score centring)."""
    from trl import RewardConfig

    return RewardConfig(**supervised_args(settings, output_dir),
                        center_rewards_coefficient=settings.center_rewards_coefficient)


def train_reward_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_data: Dataset,
                       settings: RewardSettings = RewardSettings(), output_dir: str | Path | None = None) -> list[dict]:
    """Train ``model`` (a sequence classifier with one label) in place on preference pairs.

    Args:
        model: e.g. ``load_reward_model(sft_dir, for_training=True)`` — SFT body, new scalar head.
        tokenizer: its tokenizer (distinct pad and EOS; the score is read at the last non-pad token).
        train_data: prompt/chosen/rejected rows (extra columns are ignored).
        output_dir: trainer scratch directory (temporary if None; nothing is saved there).

    Returns:
        the trainer's log history (loss and batch accuracy every ``logging_steps`` steps).
    """
    from trl import RewardTrainer

    validate_preference_dataset(train_data, tokenizer=tokenizer, max_tokens=settings.max_length)
    train_data = train_data.select_columns(["prompt", "chosen", "rejected"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = RewardTrainer(model=model, args=reward_config(settings, output_dir or tmp),
                                train_dataset=train_data, processing_class=tokenizer)
        trainer.train()
        history = trainer.state.log_history
    model.eval()
    return history


@torch.no_grad()
def score(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
          responses: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Reward-model scores ``(B,)`` of ``prompt + response + EOS`` (as the trainer formats pairs)."""
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses; they must pair up")
    model.eval()
    device = next(model.parameters()).device
    scores = []
    for start in range(0, len(prompts), batch_size):
        texts = [p + r + tokenizer.eos_token for p, r in
                 zip(prompts[start:start + batch_size], responses[start:start + batch_size])]
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        scores.append(model(**batch).logits[:, 0].float().cpu())
    return torch.cat(scores).numpy().astype(np.float64)


def pairwise_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, data: Dataset | list[dict]) -> dict:
    """How often the reward model ranks the pairs as the labels (and, if present, the gold scores) do.

    Returns:
        dict with ``label_accuracy`` (chosen scored above rejected; ties count 1/2) and, when the
        rows carry ``chosen_gold``/``rejected_gold``, ``gold_accuracy`` (agreement with the gold
        order on pairs whose gold scores differ), plus the raw scores ``chosen``/``rejected`` ``(N,)``.
    """
    rows = list(data)
    prompts = [r["prompt"] for r in rows]
    chosen = score(model, tokenizer, prompts, [r["chosen"] for r in rows])
    rejected = score(model, tokenizer, prompts, [r["rejected"] for r in rows])
    diff = chosen - rejected
    result = {"label_accuracy": float(np.mean((diff > 0) + 0.5 * (diff == 0))), "chosen": chosen, "rejected": rejected}
    if rows and "chosen_gold" in rows[0]:
        gold_diff = np.array([r["chosen_gold"] - r["rejected_gold"] for r in rows])
        informative = gold_diff != 0
        result["gold_accuracy"] = float(np.mean(np.sign(diff[informative]) == np.sign(gold_diff[informative])))
    return result


def build_reward_stage(out_dir: Path, sft_dir: Path, preferences_path: Path,
                       settings: RewardSettings = RewardSettings(), lora_targets: Sequence[str] | None = None) -> None:
    """The cached reward stage: train on the train pairs, evaluate on the eval pairs, save (a LoRA
    adapter on ``lora_targets`` merged in full precision, see :func:`rlhf.models.merged`)."""
    from rlhf.models import default_lora_config, load_reward_model, merged

    torch.manual_seed(settings.seed)  # the new scalar head's initialisation
    lora = default_lora_config(targets=lora_targets, task_type="SEQ_CLS") if settings.lora else False
    model, tokenizer = load_reward_model(str(sft_dir), lora=lora, for_training=True)
    train_data = load_preference_dataset(preferences_path, split="train")
    eval_data = load_preference_dataset(preferences_path, split="eval")
    history = train_reward_model(model, tokenizer, train_data, settings)
    accuracy = pairwise_accuracy(model, tokenizer, eval_data)
    if settings.lora:
        model = merged(model, str(sft_dir))
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    record = {
        "settings": asdict(settings),
        "sft": str(sft_dir),
        "preferences": str(preferences_path),
        "eval_label_accuracy": accuracy["label_accuracy"],
        "eval_gold_accuracy": accuracy.get("gold_accuracy"),
        "eval_noise_ceiling": noise_ceiling(list(eval_data)),
        "train_loss": [h["loss"] for h in history if "loss" in h],
    }
    (out_dir / "stage.json").write_text(json.dumps(record, indent=2) + "\n")


def stage_record(stage_dir: Path) -> dict:
    """The ``stage.json`` record of a cached stage directory."""
    return json.loads((Path(stage_dir) / "stage.json").read_text())
