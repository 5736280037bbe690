"""Beyond PPO: DPO, GRPO and RLOO with TRL, and one yardstick for every method (chapter 12).

Chapter 11 trains the policy with the course's own PPO trainer (:mod:`rlhf.ppo`). This module
trains the same SFT policy, on the same prompts, with three methods that drop a piece of PPO:

* **DPO** (Rafailov et al. 2023, TRL's ``DPOTrainer``) drops sampling and the reward model:
  it fits the policy to chapter 10's *fixed* preference pairs with a logistic loss on the
  log-ratio to the reference. Offline: the data never changes during training.
* **GRPO** (Shao et al. 2024, TRL's ``GRPOTrainer``) and **RLOO** (Ahmadian et al. 2024,
  TRL's ``RLOOTrainer``) keep on-policy sampling and the reward model but drop the critic:
  the baseline of a response is the mean reward of the other responses to the same prompt
  (a group of ``num_generations`` samples), not a learned value function.

The wrappers are thin: each builds the TRL config from a small settings dataclass, trains,
and returns the policy with its wall-clock time and TRL's log. By default every method
trains a LoRA adapter with the same configuration as chapter 11's PPO policy (so all of them
change the same parameters, and the reference is the SFT model with the adapter disabled).

:func:`evaluate_policy` is the shared yardstick: it samples responses to held-out prompts
with the course's sampler (:func:`rlhf.ppo_rollout.sample_tokens`, the same random numbers
for every policy) and measures the gold reward (chapter 10's gold rater), the KL divergence
to the reference (summed over the response, in nats), the proxy reward-model score and the
response length.
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_callback import PrinterCallback

from rlhf.models import PHI2_LORA_TARGETS, default_lora_config
from rlhf.ppo_rollout import RewardScorer, left_pad, response_mask, sample_tokens, sampling_uniforms, tokenize_prompts
from rlhf.value_head import position_ids_from_mask

_EVAL_STREAM = 101  # random stream of evaluation samples (disjoint from the PPO trainer's streams)
_CALIBRATION_STREAM = 102


# --------------------------------------------------------------------------- evaluation


@dataclass
class PolicyEvaluation:
    """What :func:`evaluate_policy` measures on ``n`` held-out prompts (one sample each).

    The means are the table's numbers; the per-sample arrays are kept for plots and error bars.
    """

    gold: np.ndarray
    """``(n,)`` gold score of prompt + response (chapter 10's gold rater), in [0, 1]."""
    kl: np.ndarray
    """``(n,)`` ``sum_t log pi(a_t|s_t) - log pi_ref(a_t|s_t)`` over the response: an unbiased
    estimate of the sequence-level ``KL(pi || pi_ref)`` in nats (k1 estimator)."""
    length: np.ndarray
    """``(n,)`` response length in tokens (EOS included when emitted)."""
    eos: np.ndarray
    """``(n,)`` 1 where the response emitted EOS within the length limit."""
    proxy: np.ndarray | None
    """``(n,)`` raw reward-model score, or None when no reward model was given."""
    texts: list[str]
    """The whole texts (prompt + response) that were rated."""

    @property
    def n(self) -> int:
        return len(self.gold)

    def summary(self) -> dict[str, float]:
        """Means (and the gold reward's standard error) as a flat dict."""
        out = {
            "gold": float(self.gold.mean()),
            "gold_sem": float(self.gold.std(ddof=1) / math.sqrt(self.n)) if self.n > 1 else float("nan"),
            "kl": float(self.kl.mean()),
            "length": float(self.length.mean()),
            "eos_fraction": float(self.eos.mean()),
        }
        if self.proxy is not None:
            out["proxy"] = float(self.proxy.mean())
        return out

    def head(self, n: int) -> PolicyEvaluation:
        """The measurements of the first ``n`` prompts only.

        :func:`evaluate_policy`'s random numbers depend on the seed and the prompt's index, so this
        is what evaluating the same policy on ``prompts[:n]`` with the same seed gives, without
        sampling those prompts again (bit for bit when ``n`` is a multiple of the batch size).
        """
        if not 1 <= n <= self.n:
            raise ValueError(f"head(n) needs 1 <= n <= {self.n}, got {n}")
        return PolicyEvaluation(gold=self.gold[:n], kl=self.kl[:n], length=self.length[:n], eos=self.eos[:n],
                                proxy=None if self.proxy is None else self.proxy[:n], texts=self.texts[:n])


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@contextmanager
def _reference_of(policy: torch.nn.Module, reference: torch.nn.Module | None):
    """The reference model: ``reference`` if given, else ``policy`` with its adapters disabled."""
    if reference is not None:
        yield reference
    elif isinstance(policy, PeftModel):
        with policy.disable_adapter():
            yield policy
    else:
        raise ValueError(
            "no reference model: pass reference= (e.g. the SFT model), or a peft policy whose "
            "adapter-disabled base is the reference"
        )


@torch.no_grad()
def _scored_logprobs(lm: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                     response_length: int, temperature: float) -> torch.Tensor:
    """Log-probs ``[B, R]`` of the last ``R`` tokens of ``input_ids`` under ``lm`` (temperature-scaled)."""
    logits = lm(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=position_ids_from_mask(attention_mask)).logits
    logits = logits[:, -response_length - 1 : -1].float() / temperature
    return torch.log_softmax(logits, -1).gather(-1, input_ids[:, -response_length:, None]).squeeze(-1)


@torch.no_grad()
def sample_and_score(
    policy: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    reference: torch.nn.Module | None = None,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    stream: int = _EVAL_STREAM,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Sample one response per prompt and score it under the policy and the reference.

    Sampling uses the course's sampler with random numbers that depend on ``(seed, stream,
    prompt index)`` only, so two policies evaluated with the same seed see the same prompts
    *and* the same random numbers (common random numbers: their difference is measured with
    less noise than their values).

    Returns:
        dict with ``query_ids``/``query_mask`` (lists of per-batch tensors), ``responses``,
        ``mask``, ``logprobs``, ``ref_logprobs`` (lists of ``[b, R]`` tensors) and ``texts``.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings")
    context = getattr(getattr(policy, "config", None), "max_position_embeddings", None) or 10**9
    ids = tokenize_prompts(tokenizer, prompts, max(1, context - max_new_tokens), truncate=False)
    device = _device(policy)
    was_training = policy.training
    policy.eval()
    out: dict[str, list] = {"query_ids": [], "query_mask": [], "responses": [], "mask": [], "logprobs": [],
                            "ref_logprobs": [], "texts": []}
    try:
        for start in range(0, len(ids), batch_size):
            rows = list(range(start, min(start + batch_size, len(ids))))
            query_ids, query_mask = left_pad([ids[i] for i in rows], tokenizer.pad_token_id)
            query_ids, query_mask = query_ids.to(device), query_mask.to(device)
            uniforms = sampling_uniforms(seed, stream, 0, rows, max_new_tokens)
            responses, logprobs = sample_tokens(policy, query_ids, query_mask, uniforms, temperature,
                                                tokenizer.eos_token_id, tokenizer.pad_token_id)
            mask = response_mask(responses, tokenizer.eos_token_id)
            input_ids = torch.cat([query_ids, responses], 1)
            attention = torch.cat([query_mask, mask], 1)
            with _reference_of(policy, reference) as ref:
                ref_logprobs = _scored_logprobs(ref, input_ids.to(_device(ref)), attention.to(_device(ref)),
                                                responses.shape[1], temperature).to(device)
            out["query_ids"].append(query_ids)
            out["query_mask"].append(query_mask)
            out["responses"].append(responses)
            out["mask"].append(mask)
            out["logprobs"].append(logprobs * mask)
            out["ref_logprobs"].append(ref_logprobs * mask)
            out["texts"] += [
                tokenizer.decode(torch.cat([q[qm.bool()], r[m.bool()]]), skip_special_tokens=True)
                for q, qm, r, m in zip(query_ids, query_mask, responses, mask)
            ]
    finally:
        policy.train(was_training)
    return out


@torch.no_grad()
def evaluate_policy(
    policy: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    reference: torch.nn.Module | None = None,
    gold: Callable[[list[str]], np.ndarray] | Any | None = None,
    reward_scorer: RewardScorer | None = None,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
) -> PolicyEvaluation:
    """Gold reward, KL to the reference, proxy reward and length of a policy's samples.

    Args:
        policy: a causal LM (or a peft model; ``trainer.policy_value.model`` for chapter 11's
            PPO, see :func:`ppo_policy`).
        tokenizer: its tokenizer (pad distinct from EOS).
        prompts: held-out prompts, one sample each.
        reference: the reference policy (the SFT model). None: ``policy`` must be a peft
            model, and its base with the adapters disabled is the reference.
        gold: the gold rater (anything with ``score(texts)``) or a ``texts -> scores``
            function; None uses :class:`rlhf.gold.GoldRater` with its defaults.
        reward_scorer: optional :class:`rlhf.ppo_rollout.RewardScorer` for the proxy reward.
        max_new_tokens, temperature: the sampling settings of the methods being compared
            (chapter 11's PPO: 32 tokens at temperature 1).
        seed: seeds the sampler (same seed: same random numbers for every policy).
        batch_size: prompts per generation batch.
    """
    if gold is None:
        from rlhf.gold import GoldRater

        gold = GoldRater()
    score_fn = gold.score if hasattr(gold, "score") else gold
    s = sample_and_score(policy, tokenizer, prompts, reference=reference, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed, batch_size=batch_size)
    kl = torch.cat([(lp - rp).sum(1) for lp, rp in zip(s["logprobs"], s["ref_logprobs"])])
    length = torch.cat([m.sum(1) for m in s["mask"]])
    eos = torch.cat([(r == tokenizer.eos_token_id).any(1) for r in s["responses"]])
    proxy = None
    if reward_scorer is not None:
        proxy = torch.cat([reward_scorer(q, qm, r, m) for q, qm, r, m in
                           zip(s["query_ids"], s["query_mask"], s["responses"], s["mask"])]).cpu().numpy()
    gold_scores = np.asarray(score_fn(s["texts"]), dtype=np.float64)
    return PolicyEvaluation(gold=gold_scores, kl=kl.double().cpu().numpy(), length=length.double().cpu().numpy(),
                            eos=eos.double().cpu().numpy(), proxy=proxy, texts=s["texts"])


def ppo_policy(trainer) -> PeftModel:
    """Chapter 11's trained PPO policy as a peft model for :func:`evaluate_policy`.

    The course's PPO keeps policy, value and reference on one base: the ``"policy"`` LoRA
    adapter is made the active one, and with adapters disabled the same model is the
    reference (pass ``reference=None``).
    """
    from rlhf.value_head import POLICY

    model = trainer.policy_value.model
    model.set_adapter(POLICY)
    return model


# --------------------------------------------------------------------------- rewards for GRPO / RLOO


class ScoreNormalizer:
    """Turns raw scores into PPO's reward: ``(score - mean) / std``, minus a penalty without EOS.

    Chapter 11's PPO normalises reward-model scores with the mean and std of the reference
    policy's samples and subtracts ``missing_eos_penalty`` from responses that never end;
    the GRPO/RLOO reward functions below do exactly the same, so every method optimises the
    same reward (:meth:`calibrate` computes the statistics once, from SFT samples).
    """

    def __init__(self, missing_eos_penalty: float | None = 1.0):
        self.mean, self.std = 0.0, 1.0
        self.missing_eos_penalty = missing_eos_penalty

    def __call__(self, raw: np.ndarray, has_eos: np.ndarray) -> list[float]:
        z = (np.asarray(raw, dtype=np.float64) - self.mean) / self.std
        if self.missing_eos_penalty is not None:
            z = np.where(np.asarray(has_eos, dtype=bool), z, z - self.missing_eos_penalty)
        return [float(v) for v in z]


class _TRLReward:
    """Base of the reward functions handed to TRL (``reward_funcs=[...]``)."""

    __name__ = "reward"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, missing_eos_penalty: float | None = 1.0):
        self.tokenizer = tokenizer
        self.normalize = ScoreNormalizer(missing_eos_penalty)

    def raw(self, prompts: list[str], completion_ids: list[list[int]]) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, prompts: list[str], completions: list[str], completion_ids: list[list[int]], **kwargs) -> list[float]:
        has_eos = np.array([len(c) > 0 and c[-1] == self.tokenizer.eos_token_id for c in completion_ids])
        return self.normalize(self.raw(list(prompts), [list(c) for c in completion_ids]), has_eos)

    def calibrate(self, policy: torch.nn.Module, prompts: Sequence[str], *, n: int = 256,
                  max_new_tokens: int = 32, temperature: float = 1.0, seed: int = 0) -> ScoreNormalizer:
        """Set the normalisation from ``n`` samples of ``policy`` (the SFT/reference policy)."""
        return calibrate_rewards([self], policy, prompts, n=n, max_new_tokens=max_new_tokens,
                                 temperature=temperature, seed=seed)[0]


class RewardModelReward(_TRLReward):
    """The reward model as a TRL reward function, scored exactly as chapter 11's PPO scores it.

    TRL would also accept the reward model itself, but it scores ``prompt + completion``
    text without the EOS token the model was trained to see at the end of a finished
    response. This wrapper re-uses :class:`rlhf.ppo_rollout.RewardScorer` on the sampled
    token ids (EOS included), then normalises like PPO (:class:`ScoreNormalizer`).
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
        for row, ids in enumerate(completion_ids):
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
    rng = np.random.default_rng([seed, _CALIBRATION_STREAM])
    chosen = [prompts[i] for i in rng.choice(len(prompts), n, replace=len(prompts) < n)]
    s = sample_and_score(policy, tokenizer, chosen, reference=policy, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed, stream=_CALIBRATION_STREAM)
    completion_ids = [r[m.bool()].tolist() for rs, ms in zip(s["responses"], s["mask"]) for r, m in zip(rs, ms)]
    for reward in rewards:
        raw = reward.raw(chosen, completion_ids)
        reward.normalize.mean, reward.normalize.std = float(np.mean(raw)), float(max(np.std(raw, ddof=1), 1e-6))
    return [reward.normalize for reward in rewards]


# --------------------------------------------------------------------------- settings


@dataclass
class DPOSettings:
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
        _validate(self, positive=("beta", "learning_rate", "epochs", "batch_size", "max_length", "lora_r", "lora_alpha"))
        if self.max_pairs is not None and self.max_pairs < 1:
            raise ValueError(f"DPOSettings.max_pairs must be >= 1 or None, got {self.max_pairs}")


@dataclass
class GroupSettings:
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
    """Passes over each generation batch (mu in the GRPO paper; PPO's ``ppo_epochs``)."""
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
    lora: bool = True
    """Train a LoRA adapter (the reference is the adapter-disabled base)."""
    lora_r: int = 16
    """LoRA rank (chapter 11's PPO uses the same)."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator."""
    lora_targets: tuple[str, ...] = PHI2_LORA_TARGETS
    """Modules that get LoRA adapters."""
    bf16: bool | None = None
    """bf16 mixed precision; None: on a CUDA GPU that supports it, off on CPU."""

    def __post_init__(self):
        if self.algorithm not in ("grpo", "rloo"):
            raise ValueError(f"GroupSettings.algorithm must be 'grpo' or 'rloo', got {self.algorithm!r}")
        _validate(self, positive=("total_episodes", "num_generations", "prompts_per_batch", "minibatches",
                                  "num_iterations", "learning_rate", "clip_coef", "max_new_tokens", "temperature",
                                  "max_grad_norm", "lora_r", "lora_alpha"))
        if self.beta < 0:
            raise ValueError(f"GroupSettings.beta must be >= 0, got {self.beta}")
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


def _validate(settings, positive: Sequence[str]) -> None:
    name = type(settings).__name__
    for key in positive:
        value = getattr(settings, key)
        if not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name}.{key} must be > 0, got {value!r}")
    settings.lora_targets = tuple(settings.lora_targets)
    if settings.lora and not settings.lora_targets:
        raise ValueError(f"{name}.lora_targets is empty: name the modules that get LoRA adapters")


# --------------------------------------------------------------------------- training


@dataclass
class BaselineResult:
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
        from rl_basics.agents.training import progress_bar

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


def _common_args(seed: int, bf16: bool | None, out_dir: str) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    if bf16 is None:
        bf16 = cuda and torch.cuda.is_bf16_supported()
    return dict(
        output_dir=out_dir, seed=seed, data_seed=seed, report_to="none", save_strategy="no", logging_steps=1,
        disable_tqdm=True, bf16=bool(bf16), fp16=False, gradient_checkpointing=False, use_cpu=not cuda,
        dataloader_num_workers=0, gradient_accumulation_steps=1, weight_decay=0.0,
    )


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
) -> BaselineResult:
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
            **_common_args(seed, settings.bf16, out_dir),
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
    return BaselineResult(method="dpo", model=trained, tokenizer=tokenizer, train_seconds=seconds, episodes=0,
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
) -> BaselineResult:
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
        **_common_args(seed, s.bf16, out_dir),
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
    return BaselineResult(method=s.algorithm, model=trained, tokenizer=tokenizer, train_seconds=seconds,
                          episodes=s.total_episodes, log=log, evaluations=tracker.rows,
                          settings={**asdict(s), "optimizer_steps": s.optimizer_steps})


def train_grpo(policy, tokenizer, prompts, reward, settings: GroupSettings | None = None, **kwargs) -> BaselineResult:
    """:func:`train_group` with ``algorithm="grpo"``."""
    settings = settings or GroupSettings()
    if settings.algorithm != "grpo":
        raise ValueError("train_grpo needs GroupSettings(algorithm='grpo')")
    return train_group(policy, tokenizer, prompts, reward, settings, **kwargs)


def train_rloo(policy, tokenizer, prompts, reward, settings: GroupSettings | None = None, **kwargs) -> BaselineResult:
    """:func:`train_group` with ``algorithm="rloo"``."""
    settings = settings or GroupSettings(algorithm="rloo")
    if settings.algorithm != "rloo":
        raise ValueError("train_rloo needs GroupSettings(algorithm='rloo')")
    return train_group(policy, tokenizer, prompts, reward, settings, **kwargs)


__all__ = [
    "BaselineResult",
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
