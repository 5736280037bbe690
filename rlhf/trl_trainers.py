"""DPO, GRPO and RLOO through TRL (chapter 12): three methods that each drop a piece of PPO.

Chapter 11 trains the policy with the course's own PPO trainer (:mod:`rlhf.ppo`). This module
trains the same SFT policy, on the same prompts, with TRL's trainers:

* **DPO** (Rafailov et al. 2023, TRL's ``DPOTrainer``) drops sampling and the reward model:
  it fits the policy to chapter 10's *fixed* preference pairs with a logistic loss on the
  log-ratio to the reference. Offline: the data never changes during training.
* **GRPO** (Shao et al. 2024, TRL's ``GRPOTrainer``) and **RLOO** (Ahmadian et al. 2024,
  TRL's ``RLOOTrainer``) keep on-policy sampling and the reward model but drop the critic:
  the baseline of a response is the mean reward of the other responses to the same prompt
  (a group of ``num_generations`` samples), not a learned value function.

The wrappers are thin: each builds the TRL config from a small settings dataclass (named
``*Settings`` because it is translated into TRL's ``*Config`` of the same method), trains, and
returns the policy with its wall-clock time and TRL's log. By default every method trains a
LoRA adapter with the same configuration as chapter 11's PPO policy (so all of them change the
same parameters, and the reference is the SFT model with the adapter disabled). The reward
functions handed to GRPO/RLOO score and normalise exactly as PPO does
(:class:`rlhf.scoring.RewardScorer`, :class:`rlhf.scoring.ScoreNormalizer`). Every method is
measured with :func:`rlhf.evaluation.evaluate_policy`.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from rl_basics.agents.training import progress_bar
from rl_basics.validation import check_fields, check_one_of
from rlhf.evaluation import sample_and_score
from rlhf.models import PHI2_LORA_TARGETS, default_lora_config
from rlhf.scoring import RewardScorer, ScoreNormalizer
from rlhf.tokens import left_pad
from rlhf.trl_args import trl_training_args

CALIBRATION_STREAM = 102
"""Random stream of the SFT samples that calibrate the rewards' normalisation."""


class _TRLReward:
    """Base of the reward functions handed to TRL (``reward_funcs=[...]``)."""

    __name__ = "reward"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, missing_eos_penalty: float | None = 1.0):
        self.tokenizer = tokenizer
        self.normalize = ScoreNormalizer(missing_eos_penalty=missing_eos_penalty)

    def raw(self, prompts: list[str], completion_ids: list[list[int]]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, prompts: list[str], completions: list[str], completion_ids: list[list[int]], **kwargs) -> list[float]:
        has_eos = torch.tensor([len(c) > 0 and c[-1] == self.tokenizer.eos_token_id for c in completion_ids])
        raw = torch.as_tensor(self.raw(list(prompts), [list(c) for c in completion_ids]), dtype=torch.float64)
        return self.normalize(raw, has_eos).tolist()

    def calibrate(self, policy: torch.nn.Module, prompts: Sequence[str], *, n: int = 256,
                  max_new_tokens: int = 32, temperature: float = 1.0, seed: int = 0) -> ScoreNormalizer:
        """Set the normalisation from ``n`` samples of ``policy`` (the SFT/reference policy)."""
        return calibrate_rewards([self], policy, prompts, n=n, max_new_tokens=max_new_tokens,
                                 temperature=temperature, seed=seed)[0]


class RewardModelReward(_TRLReward):
    """The reward model as a TRL reward function, scored exactly as chapter 11's PPO scores it.

    TRL would also accept the reward model itself, but it scores ``prompt + completion``
    text without the EOS token the model was trained to see at the end of a finished
    response. This wrapper re-uses :class:`rlhf.scoring.RewardScorer` on the sampled
    token ids (EOS included), then normalises like PPO (:class:`rlhf.scoring.ScoreNormalizer`).
    """

    __name__ = "reward_model"

    def __init__(self, reward_model: PreTrainedModel, reward_tokenizer: PreTrainedTokenizerBase,
                 tokenizer: PreTrainedTokenizerBase, missing_eos_penalty: float | None = 1.0):
        super().__init__(tokenizer, missing_eos_penalty)
        self.scorer = RewardScorer(reward_model, reward_tokenizer, tokenizer)

    @torch.no_grad()
    def raw(self, prompts: list[str], completion_ids: list[list[int]]) -> np.ndarray:
        prompt_ids = self.tokenizer(prompts, add_special_tokens=False)["input_ids"]
        query_ids, query_mask = left_pad(prompt_ids, self.tokenizer.pad_token_id)
        longest = max(1, max(len(c) for c in completion_ids))
        responses = torch.full((len(prompts), longest), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(responses)
        for row, ids in enumerate(completion_ids):  # right-aligned after the prompt: the scorer's layout
            responses[row, : len(ids)] = torch.as_tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        return self.scorer(query_ids, query_mask, responses, mask).cpu().double().numpy()


class GoldReward(_TRLReward):
    """The gold rater as a TRL reward function: the ceiling of what optimising the reward
    model could give (no reward hacking is possible against the ground truth itself)."""

    __name__ = "gold"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, rater=None, missing_eos_penalty: float | None = 1.0):
        super().__init__(tokenizer, missing_eos_penalty)
        if rater is None:
            from rlhf.gold import GoldRater

            rater = GoldRater()
        self.rater = rater

    def raw(self, prompts: list[str], completion_ids: list[list[int]]) -> np.ndarray:
        texts = [p + self.tokenizer.decode(c, skip_special_tokens=True) for p, c in zip(prompts, completion_ids)]
        return np.asarray(self.rater.score(texts), dtype=np.float64)


def calibrate_rewards(rewards: Sequence[_TRLReward], policy: torch.nn.Module, prompts: Sequence[str], *,
                      n: int = 256, max_new_tokens: int = 32, temperature: float = 1.0,
                      seed: int = 0) -> list[ScoreNormalizer]:
    """:meth:`_TRLReward.calibrate` for several rewards at once: every reward's normalisation is set
    from the same ``n`` samples of ``policy``, sampled once (calibrating each reward on its own
    draws exactly these samples again). The rewards must share the policy's tokenizer."""
    if not rewards:
        raise ValueError("calibrate_rewards needs at least one reward")
    tokenizer = rewards[0].tokenizer
    if any(reward.tokenizer is not tokenizer for reward in rewards):
        raise ValueError("the rewards calibrated together must share the policy's tokenizer")
    rng = np.random.default_rng([seed, CALIBRATION_STREAM])
    chosen = [prompts[i] for i in rng.choice(len(prompts), n, replace=len(prompts) < n)]
    s = sample_and_score(policy, tokenizer, chosen, reference=policy, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed, stream=CALIBRATION_STREAM)
    completion_ids = [r[m.bool()].tolist() for rs, ms in zip(s["responses"], s["mask"]) for r, m in zip(rs, ms)]
    for reward in rewards:
        reward.normalize.fit(torch.as_tensor(reward.raw(chosen, completion_ids), dtype=torch.float64))
    return [reward.normalize for reward in rewards]


# --------------------------------------------------------------------------- settings


@dataclass
class AdapterSettings:
    """What every TRL method of this module trains, and in which precision: the fields DPO, GRPO and
    RLOO share (by default the same LoRA adapter as chapter 11's PPO policy, without the output layer,
    which TRL's GRPO/RLOO refuse)."""

    lora: bool = True
    """Train a LoRA adapter (the reference is the adapter-disabled base) instead of every weight."""
    lora_r: int = 16
    """LoRA rank (chapter 11's PPO uses the same)."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator."""
    lora_targets: tuple[str, ...] = PHI2_LORA_TARGETS
    """Modules that get LoRA adapters."""
    bf16: bool | None = None
    """bf16 mixed precision; None: on a CUDA GPU that supports it, off on CPU."""

    def __post_init__(self):
        check_fields(self, "> 0", "lora_r", "lora_alpha")
        self.lora_targets = tuple(self.lora_targets)
        if self.lora:
            check_fields(self, "a non-empty tuple of module names", "lora_targets")


@dataclass
class DPOSettings(AdapterSettings):
    """DPO on chapter 10's preference pairs (TRL ``DPOConfig`` underneath)."""

    beta: float = 0.1
    """Strength of the implicit KL regularisation: DPO's loss is
    ``-log sigma(beta * (log-ratio(chosen) - log-ratio(rejected)))``, log-ratio to the reference."""
    learning_rate: float = 3e-4
    """AdamW learning rate (of the LoRA adapter; ~1e-6 for full fine-tuning of a real model)."""
    epochs: float = 1.0
    """Passes over the preference pairs."""
    max_pairs: int | None = None
    """Use only the first ``max_pairs`` pairs (None: all)."""
    batch_size: int = 16
    """Pairs per optimizer step."""
    lr_schedule: str = "linear"
    """``transformers`` scheduler name (``linear`` anneals to 0, ``constant`` does not)."""
    max_length: int = 128
    """Longest prompt + response in tokens."""
    def __post_init__(self):
        super().__post_init__()
        check_fields(self, "> 0", "beta", "learning_rate", "epochs")
        check_fields(self, "an integer >= 1", "batch_size", "max_length")
        check_fields(self, "an integer >= 1 or None", "max_pairs")


@dataclass
class GroupSettings(AdapterSettings):
    """GRPO or RLOO: on-policy sampling in groups, no critic (TRL ``GRPOConfig`` / ``RLOOConfig``).

    One *generation batch* is ``prompts_per_batch * num_generations`` responses (chapter 11's
    PPO samples 64 per step: 16 prompts x 4 here); it is split into ``minibatches`` optimizer
    steps, and reused ``num_iterations`` times (PPO's epochs: with more than one, the clipped
    importance ratio keeps the reuse safe, as in PPO).
    """

    algorithm: Literal["grpo", "rloo"] = "grpo"
    """``grpo``: advantage = (r - group mean) / group std; ``rloo``: r - mean of the *other* responses."""
    total_episodes: int = 640
    """Responses sampled over the whole run (chapter 11 counts PPO's budget the same way)."""
    num_generations: int = 4
    """Responses per prompt (the group whose mean reward is the baseline)."""
    prompts_per_batch: int = 16
    """Prompts per generation batch."""
    minibatches: int = 4
    """Optimizer steps per pass over a generation batch."""
    num_iterations: int = 1
    """Passes over each generation batch (mu in the GRPO paper; PPO's ``update_epochs``)."""
    beta: float = 0.05
    """KL coefficient: GRPO adds ``beta * KL`` (k3 estimator) to the loss, RLOO subtracts
    ``beta * KL`` from the reward. Chapter 11's PPO uses ``kl_coef = 0.05``."""
    learning_rate: float = 3e-4
    """AdamW learning rate of the LoRA adapter (chapter 11's PPO: 3e-4)."""
    lr_schedule: str = "linear"
    """``transformers`` scheduler name."""
    clip_coef: float = 0.2
    """Ratio clipping epsilon (matters when ``num_iterations > 1``)."""
    max_new_tokens: int = 32
    """Longest response (chapter 11: 32)."""
    temperature: float = 1.0
    """Sampling temperature (chapter 11: 1.0)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clipping."""
    loss_type: str | None = None
    """GRPO's loss aggregation (``dapo``, ``grpo``, ``dr_grpo``, ...); None keeps TRL's default."""
    def __post_init__(self):
        super().__post_init__()
        check_one_of(self, "algorithm", ("grpo", "rloo"))
        check_fields(self, "an integer >= 1", "total_episodes", "num_generations", "prompts_per_batch", "minibatches",
                     "num_iterations", "max_new_tokens")
        check_fields(self, "> 0", "learning_rate", "clip_coef", "temperature", "max_grad_norm")
        check_fields(self, ">= 0", "beta")
        if self.num_generations < 2:
            raise ValueError("GroupSettings.num_generations must be >= 2: the group mean of the others is the baseline")
        if self.generation_batch % self.minibatches:
            raise ValueError(f"prompts_per_batch * num_generations ({self.generation_batch}) must be a multiple of "
                             f"minibatches ({self.minibatches})")
        if (self.generation_batch // self.minibatches) % self.num_generations:
            raise ValueError(
                f"each minibatch ({self.generation_batch // self.minibatches} responses) must hold whole groups of "
                f"num_generations={self.num_generations}: lower minibatches or raise prompts_per_batch"
            )
        if self.total_episodes % self.generation_batch:
            raise ValueError(f"total_episodes ({self.total_episodes}) must be a multiple of the generation batch "
                             f"({self.generation_batch} = prompts_per_batch x num_generations)")

    @property
    def generation_batch(self) -> int:
        """Responses sampled per generation (PPO's ``batch_size``)."""
        return self.prompts_per_batch * self.num_generations

    @property
    def optimizer_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.total_episodes // self.generation_batch * self.minibatches * self.num_iterations


# --------------------------------------------------------------------------- training


@dataclass
class TrainedPolicy:
    """A trained policy and what it cost."""

    method: str
    """``dpo``, ``grpo`` or ``rloo`` (plus a suffix such as ``+gold`` chosen by the caller)."""
    model: PreTrainedModel
    """The trained policy (a peft model when trained with LoRA: disable its adapter for the reference)."""
    tokenizer: PreTrainedTokenizerBase
    train_seconds: float
    """Wall-clock seconds of training alone (model loading and evaluation callbacks excluded)."""
    episodes: int
    """Responses sampled during training (0 for DPO: it samples nothing)."""
    log: list[dict[str, float]]
    """TRL's log, one dict per logged step."""
    evaluations: list[dict[str, float]] = field(default_factory=list)
    """Evaluations during training (see ``evaluate_every``): ``step``, ``episodes``, ``gold``, ``kl``, ..."""
    settings: dict[str, Any] = field(default_factory=dict)


class _Progress(TrainerCallback):
    """A progress bar, and an evaluation of the policy every ``every`` optimizer steps (keeping
    the wall-clock spent evaluating, so it can be left out of the training time); after the last
    step only if ``last``."""

    def __init__(self, evaluate: Callable[[PreTrainedModel], dict[str, float]] | None, every: int,
                 episodes_per_step: float, desc: str, progress: bool, last: bool = True):
        self.evaluate, self.every, self.episodes_per_step, self.last = evaluate, every, episodes_per_step, last
        self.desc, self.progress, self.bar = desc, progress, None
        self.rows: list[dict[str, float]] = []
        self.eval_seconds = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.bar = progress_bar(state.max_steps, enabled=self.progress, desc=self.desc)

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.bar is not None:
            self.bar.update(1)
        due = self.every and state.global_step % self.every == 0 and (self.last or state.global_step < state.max_steps)
        if self.evaluate is not None and due:
            start = time.perf_counter()
            row = {"step": state.global_step, "episodes": state.global_step * self.episodes_per_step,
                   **self.evaluate(model)}
            self.rows.append(row)
            self.eval_seconds += time.perf_counter() - start


def _trl_args(out_dir: str, seed: int, bf16: bool | None) -> dict[str, Any]:
    """:func:`rlhf.trl_args.trl_training_args` as DPO, GRPO and RLOO share them: a log line every step
    (the curves), TRL's own progress bar off (:class:`_Progress` draws one), no weight decay."""
    return trl_training_args(out_dir, seed, bf16=bf16, logging_steps=1, disable_tqdm=True,
                             gradient_checkpointing=False, gradient_accumulation_steps=1, weight_decay=0.0)


def _train_trl(trainer_class: type, model: PreTrainedModel, settings: DPOSettings | GroupSettings,
               tracker: _Progress, **kwargs: Any) -> tuple[PreTrainedModel, list[dict], float]:
    """Build ``trainer_class(model=model, **kwargs)`` (LoRA per ``settings``), train it quietly;
    returns ``(trained model in eval mode, TRL's log, training seconds without evaluations)``."""
    peft_config = (default_lora_config(settings.lora_r, settings.lora_alpha, targets=settings.lora_targets)
                   if settings.lora else None)
    with _quiet():
        warnings.simplefilter("ignore")
        trainer = trainer_class(model=model, peft_config=peft_config, callbacks=[tracker], **kwargs)
        trainer.remove_callback(PrinterCallback)  # TRL prints every log line when tqdm is off
        start = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - start - tracker.eval_seconds
    shutil.rmtree(trainer.args.output_dir, ignore_errors=True)  # TRL's scratch folder (save_strategy="no": nothing kept)
    return trainer.model.eval(), [dict(row) for row in trainer.state.log_history], seconds


def _fresh(model: PreTrainedModel, copy_policy: bool, lora: bool) -> PreTrainedModel:
    """The model to train: a copy of ``model`` unless ``copy_policy`` is False (TRL wraps and
    changes the model it is given). Without LoRA every weight is made trainable (the course's
    loader returns frozen models); with LoRA, peft makes only the adapter trainable."""
    model = copy.deepcopy(model) if copy_policy else model
    if not lora:
        model.requires_grad_(True)
    return model


def _quiet():
    import transformers

    transformers.logging.set_verbosity_error()
    return warnings.catch_warnings()


def train_dpo(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    preferences,
    settings: DPOSettings | None = None,
    *,
    seed: int = 0,
    evaluate: Callable[[PreTrainedModel], dict[str, float]] | None = None,
    evaluate_every: int = 0,
    evaluate_last: bool = True,
    copy_policy: bool = True,
    progress: bool = True,
) -> TrainedPolicy:
    """Train ``policy`` with TRL's ``DPOTrainer`` on preference pairs.

    Args:
        policy: the SFT policy (copied first unless ``copy_policy=False``); it is also the reference.
        tokenizer: its tokenizer.
        preferences: a ``datasets.Dataset`` or a JSON-lines path with ``prompt``, ``chosen``
            and ``rejected`` columns (chapter 10's :func:`rlhf.stages.preference_dataset_path`);
            ``chosen``/``rejected`` are responses to ``prompt``, without the prompt.
        settings: :class:`DPOSettings`.
        seed: seeds TRL (initialisation of the adapter, data order).
        evaluate: optional ``model -> dict`` run every ``evaluate_every`` optimizer steps
            (e.g. ``lambda m: evaluate_policy(m, ...).summary()``); its time is not counted
            in ``train_seconds``.
        evaluate_last: also run ``evaluate`` after the last step when it falls on one (False:
            the caller evaluates the trained model anyway, e.g. on more prompts, and
            :meth:`PolicyEvaluation.head` gives the end of the curve without sampling again).
        copy_policy: train a deep copy of ``policy`` (False: train ``policy`` itself, e.g. a
            freshly loaded model, to save memory).
        progress: show a progress bar (TRL's own log printing is switched off).
    """
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    settings = settings or DPOSettings()
    data = _load_preferences(preferences)
    if settings.max_pairs is not None:
        data = data.select(range(min(settings.max_pairs, len(data))))
    data = data.select_columns(["prompt", "chosen", "rejected"])
    assert isinstance(data, Dataset)
    out_dir = tempfile.mkdtemp(prefix="dpo-")
    with _quiet():
        warnings.simplefilter("ignore")
        args = DPOConfig(
            **_trl_args(out_dir, seed, settings.bf16),
            beta=settings.beta,
            learning_rate=settings.learning_rate,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            lr_scheduler_type=settings.lr_schedule,
            max_length=settings.max_length,
            loss_type=["sigmoid"],
        )
    tracker = _Progress(evaluate, evaluate_every, 0, "DPO", progress, last=evaluate_last)
    trained, log, seconds = _train_trl(DPOTrainer, _fresh(policy, copy_policy, settings.lora), settings, tracker,
                                       ref_model=None, args=args, train_dataset=data, processing_class=tokenizer)
    return TrainedPolicy(method="dpo", model=trained, tokenizer=tokenizer, train_seconds=seconds, episodes=0,
                          log=log, evaluations=tracker.rows,
                          settings={**asdict(settings), "pairs": len(data)})


def _load_preferences(preferences):
    from datasets import Dataset

    if isinstance(preferences, Dataset):
        return preferences
    path = Path(preferences)
    if not path.is_file():
        raise FileNotFoundError(f"no preference data at {path}; build it with rlhf.stages.preference_dataset_path()")
    data = Dataset.from_json(str(path))
    missing = {"prompt", "chosen", "rejected"} - set(data.column_names)
    if missing:
        raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; DPO needs prompt/chosen/rejected")
    return data


def train_group(
    policy: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    reward: Callable[..., list[float]],
    settings: GroupSettings | None = None,
    *,
    seed: int = 0,
    evaluate: Callable[[PreTrainedModel], dict[str, float]] | None = None,
    evaluate_every: int = 0,
    evaluate_last: bool = True,
    copy_policy: bool = True,
    progress: bool = True,
) -> TrainedPolicy:
    """Train ``policy`` with TRL's ``GRPOTrainer`` or ``RLOOTrainer`` (``settings.algorithm``).

    Args:
        policy: the SFT policy (copied first unless ``copy_policy=False``); also the reference.
        tokenizer: its tokenizer.
        prompts: the training prompts (chapter 11's PPO uses :func:`rlhf.tiny_world.load_prompts`
            ``("train")``).
        reward: a TRL reward function, e.g. :class:`RewardModelReward` (the proxy chapter 11
            optimises) or :class:`GoldReward` (the ceiling); calibrate it first.
        settings: :class:`GroupSettings`.
        seed: seeds TRL (adapter initialisation, prompt order, sampling).
        evaluate, evaluate_every, evaluate_last, copy_policy, progress: as in :func:`train_dpo`.
    """
    from datasets import Dataset

    settings = settings or GroupSettings()
    s = settings
    out_dir = tempfile.mkdtemp(prefix=f"{s.algorithm}-")
    per_step = s.generation_batch // s.minibatches
    common = dict(
        **_trl_args(out_dir, seed, s.bf16),
        learning_rate=s.learning_rate,
        lr_scheduler_type=s.lr_schedule,
        max_steps=s.optimizer_steps,
        per_device_train_batch_size=per_step,
        steps_per_generation=s.minibatches,
        num_generations=s.num_generations,
        num_iterations=s.num_iterations,
        max_completion_length=s.max_new_tokens,
        temperature=s.temperature,
        top_p=1.0,
        top_k=0,
        beta=s.beta,
        epsilon=s.clip_coef,
        max_grad_norm=s.max_grad_norm,
        disable_dropout=True,
        shuffle_dataset=True,
    )
    if s.algorithm == "grpo":
        from trl import GRPOConfig as Config
        from trl import GRPOTrainer as Trainer

        if s.loss_type is not None:
            common["loss_type"] = s.loss_type
    else:
        from trl import RLOOConfig as Config
        from trl import RLOOTrainer as Trainer
    with _quiet():
        warnings.simplefilter("ignore")
        args = Config(**common)
    data = Dataset.from_dict({"prompt": list(prompts)})
    episodes_per_step = s.generation_batch / (s.minibatches * s.num_iterations)
    tracker = _Progress(evaluate, evaluate_every, episodes_per_step, s.algorithm.upper(), progress,
                        last=evaluate_last)
    trained, log, seconds = _train_trl(Trainer, _fresh(policy, copy_policy, s.lora), s, tracker,
                                       reward_funcs=[reward], args=args, train_dataset=data, processing_class=tokenizer)
    return TrainedPolicy(method=s.algorithm, model=trained, tokenizer=tokenizer, train_seconds=seconds,
                          episodes=s.total_episodes, log=log, evaluations=tracker.rows,
                          settings={**asdict(s), "optimizer_steps": s.optimizer_steps})


def train_grpo(policy, tokenizer, prompts, reward, settings: GroupSettings | None = None, **kwargs) -> TrainedPolicy:
    """:func:`train_group` with ``algorithm="grpo"``."""
    settings = settings or GroupSettings()
    if settings.algorithm != "grpo":
        raise ValueError("train_grpo needs GroupSettings(algorithm='grpo')")
    return train_group(policy, tokenizer, prompts, reward, settings, **kwargs)


def train_rloo(policy, tokenizer, prompts, reward, settings: GroupSettings | None = None, **kwargs) -> TrainedPolicy:
    """:func:`train_group` with ``algorithm="rloo"``."""
    settings = settings or GroupSettings(algorithm="rloo")
    if settings.algorithm != "rloo":
        raise ValueError("train_rloo needs GroupSettings(algorithm='rloo')")
    return train_group(policy, tokenizer, prompts, reward, settings, **kwargs)


__all__ = [
    "AdapterSettings",
    "TrainedPolicy",
    "DPOSettings",
    "GoldReward",
    "GroupSettings",
    "PolicyEvaluation",
    "RewardModelReward",
    "ScoreNormalizer",
    "calibrate_rewards",
    "evaluate_policy",
    "ppo_policy",
    "sample_and_score",
    "train_dpo",
    "train_grpo",
    "train_group",
    "train_rloo",
]
