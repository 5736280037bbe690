"""One preset per model family: everything that differs between the tiny world and phi-2, in one place.

A :class:`ModelPreset` names the base model, how it is loaded (dtype, 4-bit base on GPUs without
native bf16), the LoRA targets, the settings of every stage (SFT, preference data, reward model,
PPO), the annotator's and the gold rater's configuration, and where its stages are cached. The
command line (``rlhf-pipeline``), ``accelerate launch``, the MLRun job and notebooks 09–12 all take
their set-up from here, so a fix lands everywhere at once.

=========  ======================================  ===============================================
preset     base model                              used for
=========  ======================================  ===============================================
``tiny``   the tiny world's ``PhiForCausalLM``     CPU, every test, the course's figures
``phi-2``  ``microsoft/phi-2`` (or any hub          a GPU; offline, the stand-in of
           causal LM, with phi-2-like defaults)    :mod:`rlhf.phi2_standin` takes its place
=========  ======================================  ===============================================

    >>> from rlhf import presets
    >>> preset = presets.for_model("auto")          # RL_COURSE_MODEL, else phi-2 on a >= 14 GiB GPU
    >>> config = preset.ppo_config(total_steps=20)  # a PPOConfig with the preset's settings
    >>> gold = preset.gold_rater()

A PPO run records its preset (``PPOConfig.preset``); resuming it with another preset, or training
a policy whose stage was built by another preset, is refused (:func:`check_policy_preset`).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlhf.gold import GoldRater, GoldRaterConfig
from rlhf.models import PHI2, PHI2_LORA_TARGETS, resolve_model_name
from rlhf.paths import cache_dir, stage_preset
from rlhf.ppo import PPOConfig
from rlhf.preferences import PreferenceConfig
from rlhf.reward import RewardSettings
from rlhf.sft import SFTSettings

TINY, PHI2_PRESET = "tiny", "phi-2"


@dataclass(frozen=True)
class ModelPreset:
    """The set-up of one model family, from loading the base model to PPO."""

    name: str
    """``"tiny"`` or ``"phi-2"``; recorded in every stage it builds and in ``PPOConfig.preset``."""
    model: str
    """The base model as :func:`rlhf.models.load_model` takes it: ``"tiny"``, a hub id or a directory."""
    sft: SFTSettings
    """Supervised fine-tuning (chapter 9)."""
    preferences: PreferenceConfig
    """How preference pairs are sampled and labelled (chapter 10)."""
    reward: RewardSettings
    """Reward-model training (chapter 10)."""
    gold: GoldRaterConfig
    """The gold rater of evaluation and of the annotator that labels the pairs: the same on both sides."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """``PPOConfig`` fields that differ from its defaults (which suit the tiny world)."""
    lora_targets: tuple[str, ...] = PHI2_LORA_TARGETS
    """Linear layers that get LoRA adapters in SFT and reward modelling (phi-2's names)."""

    def ppo_config(self, **overrides: Any) -> PPOConfig:
        """A ``PPOConfig`` with this preset's settings, then ``overrides``; it records the preset's name."""
        if overrides.get("preset", self.name) != self.name:
            raise ValueError(f"the {self.name!r} preset cannot build a PPOConfig for preset {overrides['preset']!r}")
        return PPOConfig(**{**self.ppo, **overrides, "preset": self.name})

    def gold_rater(self) -> GoldRater:
        """The gold rater of this preset (evaluation and annotator share it)."""
        return GoldRater(self.gold)

    def stage_root(self) -> Path:
        """Where this preset's stages are cached: ``<data>/cache`` for the tiny world (shared with the
        notebooks and tests), ``<data>/cache/<model>`` for any other base model."""
        if self.name == TINY:
            return cache_dir()
        return cache_dir() / re.sub(r"[^A-Za-z0-9._-]+", "--", self.model.strip("/"))

    def describe(self) -> dict[str, Any]:
        """Everything the preset sets, as plain data (for stage records and logs)."""
        return dataclasses.asdict(self)


def tiny() -> ModelPreset:
    """The offline tiny world on a CPU: full fine-tuning, the tiny world's gold rater."""
    return ModelPreset(name=TINY, model="tiny", sft=SFTSettings(), preferences=PreferenceConfig(),
                       reward=RewardSettings(), gold=GoldRaterConfig())


def phi2(model: str = PHI2) -> ModelPreset:
    """phi-2 (or another hub causal LM) on one GPU of about 16 GB: LoRA in every stage.

    - SFT: LoRA r=16, learning rate 2e-4, batch 8, one demonstration per training prompt (phi-2
      writes fluent English already; SFT teaches it the task's format).
    - Preferences: 256 training and 64 held-out prompts, two pairs each. The annotator and the
      evaluation share the gold rater with the unseen-word-pair penalty off (``unseen_weight=0``):
      phi-2 writes general English, not the tiny corpus's word pairs.
    - Reward model: LoRA, learning rate 1e-4, batch 8, one epoch.
    - PPO: batch 32 in minibatches of 4 (8 per epoch), 48-token responses, learning rate 2e-5.
    """
    return ModelPreset(
        name=PHI2_PRESET,
        model=model,
        sft=SFTSettings(lora=True, learning_rate=2e-4, batch_size=8, demos_per_prompt=1),
        preferences=PreferenceConfig(max_train_prompts=256, max_eval_prompts=64),
        reward=RewardSettings(lora=True, learning_rate=1e-4, batch_size=8, num_train_epochs=1.0),
        gold=GoldRaterConfig(unseen_weight=0.0),
        ppo={"batch_size": 32, "num_minibatches": 8, "learning_rate": 2e-5, "max_new_tokens": 48,
             "max_prompt_length": 64, "total_steps": 200},
    )


def get(name: str) -> ModelPreset:
    """The preset called ``name`` (``"tiny"`` or ``"phi-2"``)."""
    if name == TINY:
        return tiny()
    if name == PHI2_PRESET:
        return phi2()
    raise ValueError(f"unknown preset {name!r}: use {TINY!r} or {PHI2_PRESET!r}")


def for_model(name: str = "auto") -> ModelPreset:
    """The preset of a model setting (``"auto"``, ``"tiny"``, a hub id or a directory).

    The tiny world's base model gets ``tiny``; a directory built by a preset's stage gets that
    preset (its ``stage.json`` says which); anything else gets phi-2's settings with that model.
    """
    resolved = resolve_model_name(name)
    if resolved == resolve_model_name("tiny"):
        return tiny()
    recorded = stage_preset(resolved) if Path(resolved).is_dir() else None
    if recorded is not None:
        preset = get(recorded)
        return preset if recorded == TINY else phi2(stage_base_model(resolved) or resolved)
    return phi2(resolved)


def stage_base_model(stage_dir: str | Path) -> str | None:
    """The base model a stage directory was built from (its ``stage.json``), or None."""
    import json

    record = Path(stage_dir) / "stage.json"
    return json.loads(record.read_text()).get("base_model") if record.is_file() else None


def check_policy_preset(policy_dir: str | Path, preset: ModelPreset) -> None:
    """Refuse to train a policy whose stage was built by another preset (nothing is silently tiny).

    Raises:
        ValueError: naming both presets and the fix.
    """
    recorded = stage_preset(policy_dir)
    if recorded is not None and recorded != preset.name:
        raise ValueError(f"{policy_dir} was built by the {recorded!r} preset, but this run uses {preset.name!r}; "
                         f"use presets.get({recorded!r}) (command line: --model as the stage was built), "
                         "or rebuild the stage with this preset")
