"""PPO for language models (RLHF), readable top to bottom.

One call of :meth:`PPOTrainer.step` is one PPO iteration:

1. **rollout** — sample a response for each prompt of the batch from the policy, then score
   every response token under the policy (log-probs, entropy), the value network and the
   reference, and the whole text under the reward model;
2. **rewards** — per token ``r_t = -beta * KL_t``, plus at the last real token the
   normalised reward-model score (minus a penalty if the response never emitted EOS);
3. **advantages** — GAE (``gamma = 1``, ``lambda = 0.95``) over the response tokens, padding
   masked, whitened over the batch;
4. **PPO epochs** — several passes over shuffled minibatches minimising the clipped policy
   loss plus the clipped value loss, with gradient clipping and a learning-rate schedule.

The math is the course's classic PPO (``rl_basics.agents.losses``): :func:`compute_gae`,
:func:`ppo_policy_loss`, :func:`ppo_value_loss`, :func:`masked_whiten`. What is specific to
language models lives here: the KL-shaped token rewards, the reward-model score at the last
token, the EOS penalty, the adaptive KL coefficient, and the bookkeeping of padding.

Sources: Ziegler et al. 2019 (KL penalty, adaptive coefficient); Huang et al., "The N
implementation details of RLHF with PPO" (2023) and "The N+ implementation details of RLHF
with PPO" (2024); Zheng et al., "Secrets of RLHF in Large Language Models Part I: PPO"
(arXiv:2307.04964); Schulman et al., "Proximal Policy Optimization Algorithms" (arXiv:1707.06347).

The trainer runs unchanged on a CPU, a GPU, or several processes through ``accelerate``
(``accelerate launch --multi_gpu --num_processes N -m rlhf.cli ...``; on a machine
without GPUs that starts N CPU processes talking over gloo). Its randomness is a function
of ``(seed, step, position in the batch)``, and a run resumed from a checkpoint continues the same
curve. On one process or several (same global batch) the rollout, the rewards and the advantages are
the same; the updates are the same only with one minibatch per epoch (``num_minibatches=1``): each
process shuffles its own share of the batch, so with several minibatches N processes group the
sequences into minibatches differently from one process. Each is a valid PPO run; they differ by
which sequences share a gradient step.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from accelerate import Accelerator
from peft import LoraConfig
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rl_basics.agents.checkpoints import load_checkpoint, save_checkpoint
from rl_basics.agents.losses import compute_gae, explained_variance, masked_whiten, ppo_policy_loss, ppo_value_loss
from rl_basics.agents.training import check_finite, progress_bar
from rl_basics.validation import check_fields, check_one_of
from rlhf.models import POLICY_LORA_TARGETS, default_lora_config, fuse_gelu
from rlhf.paths import stage_preset
from rlhf.policy import kl_per_token
from rlhf.policy_value import POLICY, VALUE_MODELS, PolicyValueModel
from rlhf.scoring import RewardScorer, ScoreNormalizer
from rlhf.tokens import decode_texts, left_pad, response_mask, sample_tokens, sampling_uniforms, tokenize_prompts

# Independent random streams (see ``sampling_uniforms``).
_TRAIN_STREAM, _REWARD_STATS_STREAM, _GENERATE_STREAM, _MINIBATCH_STREAM = 0, 1, 2, 3


@dataclass
class PPOConfig:
    """Hyperparameters of PPO-RLHF. Defaults suit the tiny world on a CPU; for phi-2 see notebook 11."""

    batch_size: int = 64
    """Prompts (= responses) per PPO step, over all processes together."""
    num_minibatches: int = 4
    """Minibatches per PPO epoch; ``batch_size`` must divide into ``num_minibatches * num_processes``."""
    update_epochs: int = 4
    """Passes over the batch per PPO step."""
    total_steps: int = 60
    """Length of the learning-rate schedule in PPO steps (and the default length of :meth:`PPOTrainer.train`)."""
    learning_rate: float = 3e-4
    """Adam learning rate of the LoRA adapters and the value head (1e-5 to 1e-4 for phi-2 LoRA)."""
    lr_schedule: Literal["linear", "constant"] = "linear"
    """``linear`` anneals the learning rate to 0 at ``total_steps`` (stepped once per PPO step)."""
    adam_eps: float = 1e-5
    """Adam epsilon."""
    max_grad_norm: float = 1.0
    """Global gradient-norm clipping threshold."""
    clip_coef: float = 0.2
    """PPO ratio clipping epsilon."""
    clip_coef_vf: float | None = 0.2
    """Value clipping range around the rollout's values (None: unclipped value loss)."""
    vf_coef: float = 0.1
    """Weight of the value loss in the total loss."""
    value_model: Literal["adapter", "reward"] = "adapter"
    """The critic (``rlhf.policy_value``). ``adapter``: a linear head on the shared base run with
    its own LoRA adapter; it learns its own features, and costs a second pass through the base
    for every scored and trained minibatch. ``reward``: the frozen reward model's normalised score
    of each prefix plus an MLP correction trained on its hidden states (which scoring computes
    anyway); one pass through the base per minibatch, and the reward model must use the policy's
    tokenizer and have a ``score`` layer."""
    gamma: float = 1.0
    """Discount over response tokens (1: the reward model judges the whole response)."""
    gae_lambda: float = 0.95
    """GAE lambda, in [0, 1]."""
    temperature: float = 1.0
    """Sampling temperature; training log-probs use logits / temperature too."""
    max_new_tokens: int = 32
    """Longest response in tokens (responses stop earlier at EOS)."""
    max_prompt_length: int = 64
    """Longest prompt in tokens; longer ones raise (or are truncated, see ``truncate_prompts``)."""
    truncate_prompts: bool = False
    """Keep the last ``max_prompt_length`` tokens of a longer prompt (with a warning) instead of raising."""
    kl_coef: float = 0.05
    """beta of the per-token KL penalty (its initial value when adaptive)."""
    kl_estimator: Literal["k1", "k3"] = "k1"
    """Per-token KL estimator of the penalty: ``k1 = log pi/pi_ref`` or ``k3 = (rho - 1) - log rho`` (never
    negative). Both *values* estimate KL(pi || pi_ref) without bias; but used as a reward, only k1's expected
    policy gradient is the KL's gradient: k3's is not (Schulman 2020; it is a fine metric, a biased penalty)."""
    kl_target: float | None = None
    """Target KL (nats per response) of the adaptive coefficient; None keeps ``kl_coef`` fixed."""
    kl_horizon: float = 10_000.0
    """Horizon (in samples) of the adaptive coefficient: how fast beta follows the target."""
    missing_eos_penalty: float | None = 1.0
    """Subtracted from the (normalised) score of a response that never emitted EOS; None disables."""
    normalize_reward: bool = True
    """Shift and scale reward-model scores to mean 0, std 1 over the reference policy's samples."""
    reward_norm_samples: int = 256
    """Reference samples used (once, at the start) for the reward normalisation statistics."""
    lora_r: int = 16
    """LoRA rank of the policy and value adapters."""
    lora_alpha: float = 32.0
    """LoRA scaling numerator (the update is scaled by ``lora_alpha / lora_r``)."""
    lora_targets: tuple[str, ...] = POLICY_LORA_TARGETS
    """Module names that get LoRA adapters: phi-2's attention and MLP projections and, in the policy only,
    the output layer (``lm_head``; the value adapter leaves it out, its head reads the hidden state)."""
    preset: Literal["tiny", "phi-2"] = "tiny"
    """The model preset these settings belong to (:mod:`rlhf.presets`; ``preset.ppo_config()`` sets it).
    A policy whose stage was built by another preset, or a checkpoint of another preset, is refused."""
    checkpoint_every: int = 0
    """Save a checkpoint every this many PPO steps (0: never; needs a checkpoint directory)."""
    keep_checkpoints: int = 2
    """How many of the latest checkpoints to keep."""

    def __post_init__(self):
        self.lora_targets = tuple(self.lora_targets)
        check_fields(self, "an integer >= 1", "batch_size", "num_minibatches", "update_epochs", "total_steps",
                     "max_new_tokens", "max_prompt_length", "reward_norm_samples", "keep_checkpoints")
        check_fields(self, "> 0", "learning_rate", "adam_eps", "max_grad_norm", "clip_coef", "temperature",
                     "kl_horizon", "lora_r", "lora_alpha")
        check_fields(self, "> 0 or None", "clip_coef_vf", "kl_target")
        check_fields(self, "in [0, 1]", "gamma", "gae_lambda")
        check_fields(self, ">= 0", "vf_coef", "kl_coef")
        check_fields(self, "an integer >= 0", "checkpoint_every")
        check_fields(self, "a non-empty tuple of module names", "lora_targets")
        check_one_of(self, "kl_estimator", ("k1", "k3"))
        check_one_of(self, "value_model", VALUE_MODELS)
        check_one_of(self, "lr_schedule", ("linear", "constant"))
        check_one_of(self, "preset", ("tiny", "phi-2"))
        if self.batch_size % self.num_minibatches:
            raise ValueError(
                f"PPOConfig.batch_size ({self.batch_size}) must be a multiple of num_minibatches ({self.num_minibatches})"
            )

    def lora_config(self) -> LoraConfig:
        """The LoRA configuration of the adapters (no LoRA dropout: RL needs deterministic networks)."""
        return default_lora_config(self.lora_r, self.lora_alpha, task_type=None, targets=self.lora_targets)


# --------------------------------------------------------------------------- rewards and advantages


def per_token_rewards(
    scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, kl_coef: float, estimator: str = "k1"
) -> tuple[Tensor, Tensor]:
    """The reward of every response token.

    ``r_t = -kl_coef * KL_t`` on every real token, and the sequence's score added at its last
    real token (the reward model judges the finished response).

    Args:
        scores: ``[B]`` per-response score (normalised, EOS penalty applied).
        logprobs, ref_logprobs: ``[B, R]`` sampled tokens' log-probs under policy and reference.
        mask: ``[B, R]`` 1 on real response tokens (a prefix of each row).

    Returns:
        ``(rewards, kl)``, both ``[B, R]`` and 0 on padding.
    """
    mask = mask.to(logprobs.dtype)
    kl = kl_per_token(logprobs, ref_logprobs, estimator) * mask
    rewards = -kl_coef * kl
    last = mask.sum(-1).long() - 1
    rewards[torch.arange(len(scores), device=scores.device), last] += scores
    return rewards, kl


def response_advantages(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """GAE over response tokens ``[B, R]`` (the course's :func:`compute_gae`, time on axis 1 here).

    The episode ends at each row's last real token (EOS, or the length limit): nothing is
    bootstrapped past it and the lambda-recursion stops there, so padding never leaks into a
    real token's advantage. Entries on padding are meaningless; mask them out.

    Returns:
        ``(advantages, returns)``, both ``[B, R]``.
    """
    last = mask.sum(-1).long() - 1
    end = torch.zeros_like(rewards)
    end[torch.arange(len(last), device=last.device), last] = 1.0
    next_values = torch.cat([values[:, 1:], torch.zeros_like(values[:, :1])], dim=1)
    advantages, returns = compute_gae(rewards.T, values.T, next_values.T, end.T, end.T, gamma, lam)
    return advantages.T, returns.T


class KLController:
    """The KL coefficient beta: fixed, or adapted toward a target KL (Ziegler et al. 2019).

    Adaptive: after each step ``beta *= 1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon``
    where ``n`` is the number of samples in the step: beta grows while the policy drifts
    further than the target from the reference and shrinks while it stays closer.
    """

    def __init__(self, init: float, target: float | None = None, horizon: float = 10_000.0):
        self.value, self.target, self.horizon = float(init), target, horizon

    def update(self, kl: float, n_samples: int) -> None:
        if self.target is not None:
            error = float(np.clip(kl / self.target - 1.0, -0.2, 0.2))
            self.value *= 1.0 + error * n_samples / self.horizon


# --------------------------------------------------------------------------- the trainer


@dataclass
class Rollout:
    """One PPO step's samples on this process (``B`` local prompts, ``R`` = the longest response of the global batch)."""

    input_ids: Tensor
    """``[B, P + R]`` left-padded prompt followed by the response (pad after EOS)."""
    attention_mask: Tensor
    """``[B, P + R]`` 1 on real prompt and response tokens."""
    mask: Tensor
    """``[B, R]`` 1 on real response tokens (up to and including the first EOS)."""
    logprobs: Tensor
    """``[B, R]`` policy log-probs of the sampled tokens at the time of sampling (temperature-scaled)."""
    ref_logprobs: Tensor
    """``[B, R]`` the same under the reference (adapters disabled)."""
    values: Tensor
    """``[B, R]`` value estimates at the time of sampling."""
    value_features: Tensor | None
    """``[B, R, H]`` the reward model's hidden states the critic reads (``value_model="reward"``; else None)."""
    scores: Tensor
    """``[B]`` reward-model scores, normalised, EOS penalty applied."""
    stats: dict[str, Tensor]
    """``[B]`` per-sample quantities for the metrics (raw score, gold, length, entropy, ...)."""


class PPOTrainer:
    """PPO-RLHF of a causal language model (policy = base + LoRA) against a reward model.

    Args:
        policy: the starting policy (the SFT model); it becomes the frozen shared base of
            :class:`~rlhf.policy_value.PolicyValueModel` and, with adapters disabled, the reference.
        tokenizer: the policy's tokenizer (EOS and a distinct pad token).
        reward_model: ``AutoModelForSequenceClassification`` with one output (frozen).
        reward_tokenizer: its tokenizer; when it differs from ``tokenizer`` the responses are
            re-tokenised (with a warning).
        prompts: the training prompts; each step samples ``batch_size`` of them.
        config: hyperparameters (``PPOConfig()`` if None).
        seed: seeds every random choice (prompts, samples, minibatches).
        gold_fn: optional ground truth, ``texts -> scores`` on whole texts (prompt + response),
            logged as ``reward/gold`` and never used for training (chapter 10's gold rater).
        accelerator: an ``accelerate.Accelerator`` (a default one if None: CPU or one GPU, or
            whatever ``accelerate launch`` set up).
        checkpoint_dir: where checkpoints go (``step-NNNNNN/``), needed for ``checkpoint_every``
            and for the checkpoint written when a NaN/inf stops training.
    """

    def __init__(
        self,
        policy: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        reward_model: PreTrainedModel,
        reward_tokenizer: PreTrainedTokenizerBase,
        prompts: Sequence[str],
        config: PPOConfig | None = None,
        *,
        seed: int = 0,
        gold_fn: Callable[[list[str]], np.ndarray] | None = None,
        accelerator: Accelerator | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
    ):
        if tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
            raise ValueError(
                "the policy tokenizer needs a pad token distinct from EOS (otherwise a real EOS looks like "
                "padding); add one, e.g. tokenizer.add_special_tokens({'pad_token': '<|pad|>'})"
            )
        config = config or PPOConfig()
        recorded = stage_preset(policy.config.name_or_path) if Path(policy.config.name_or_path).is_dir() else None
        if recorded is not None and recorded != config.preset:
            raise ValueError(f"the policy {policy.config.name_or_path} was built by the {recorded!r} preset but "
                             f"PPOConfig.preset is {config.preset!r}: build the config with "
                             f"rlhf.presets.get({recorded!r}).ppo_config(...)")
        if config.checkpoint_every and checkpoint_dir is None:
            raise ValueError("config.checkpoint_every > 0 needs a checkpoint_dir")
        self.config, self.seed, self.tokenizer, self.gold_fn = config, seed, tokenizer, gold_fn
        # Where the policy and the reward model came from: a checkpoint of other models is refused on resume.
        self.model_sources = {"policy": str(policy.config.name_or_path),
                              "reward_model": str(reward_model.config.name_or_path)}
        # cpu=True on a machine without GPUs: several CPU processes then talk over gloo
        self.accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        world = self.accelerator.num_processes
        if config.batch_size % (world * config.num_minibatches):
            raise ValueError(
                f"batch_size ({config.batch_size}) must be a multiple of num_minibatches x num_processes "
                f"({config.num_minibatches} x {world})"
            )
        self.local_batch_size = config.batch_size // world
        self.minibatch_size = self.local_batch_size // config.num_minibatches

        context = getattr(policy.config, "max_position_embeddings", None)
        self.max_prompt_length = config.max_prompt_length
        if context is not None:
            if config.max_new_tokens >= context:
                raise ValueError(f"max_new_tokens ({config.max_new_tokens}) must be below the context window ({context})")
            self.max_prompt_length = min(self.max_prompt_length, context - config.max_new_tokens)
        self.prompts = list(prompts)
        self.prompt_ids = tokenize_prompts(tokenizer, self.prompts, self.max_prompt_length, config.truncate_prompts)

        if reward_model.device != self.accelerator.device:  # (a quantized model is placed when loaded, and stays)
            reward_model.to(self.accelerator.device)
        self.scorer = RewardScorer(reward_model, reward_tokenizer, tokenizer)
        fuse_gelu(reward_model)  # the same function, one kernel (see fuse_gelu)
        if config.value_model == "reward":
            score_layer = getattr(reward_model, "score", None)
            if self.scorer.retokenize:
                raise ValueError("value_model='reward' reads the reward model's hidden states at the policy's tokens, so "
                                 "the reward model must use the policy's tokenizer; use value_model='adapter'")
            if not (isinstance(score_layer, torch.nn.Linear) and score_layer.out_features == 1):
                raise ValueError("value_model='reward' starts its head from the reward model's `score` layer (a "
                                 "Linear(hidden_size, 1), as in every *ForSequenceClassification decoder); this reward "
                                 f"model has {type(score_layer).__name__}: use value_model='adapter'")
        with torch.random.fork_rng(devices=range(torch.cuda.device_count())):
            torch.manual_seed(seed)  # the adapters' random initialisation is part of the run
            model = PolicyValueModel(policy, config.lora_config(), config.value_model,
                                     reward_model.config.hidden_size if config.value_model == "reward" else None)
        optimizer = torch.optim.Adam(model.trainable_parameters(), lr=config.learning_rate, eps=config.adam_eps,
                                     fused=True)  # one kernel for all parameters: many small LoRA matrices
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self._policy_value = self.accelerator.unwrap_model(self.model)  # (unwrapping walks every module: once)
        total = config.total_steps
        schedule = (lambda s: max(0.0, 1.0 - s / total)) if config.lr_schedule == "linear" else (lambda s: 1.0)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        self.kl_ctl = KLController(config.kl_coef, config.kl_target, config.kl_horizon)
        self.normalizer = ScoreNormalizer(missing_eos_penalty=config.missing_eos_penalty)
        self.reward_stats_ready = not config.normalize_reward
        if config.value_model == "reward" and self.reward_stats_ready:
            self._start_value_head()
        self.step_count = 0
        self.history: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ helpers

    @property
    def policy_value(self) -> PolicyValueModel:
        """The model without its distributed wrapper (for sampling and no-grad scoring)."""
        return self._policy_value

    def _check_finite(self, name: str, value: Tensor) -> None:
        """Stop (on every process at once) if ``value`` holds a NaN or inf on any process."""
        total = self.accelerator.reduce(value.detach().float().sum().reshape(1), reduction="sum")
        check_finite(name, total, self.step_count)

    def _gather(self, x: Tensor) -> Tensor:
        return self.accelerator.gather(x.contiguous())

    def _local_rows(self, x: Tensor) -> Tensor:
        """This process's rows of a gathered ``[B_global, ...]`` tensor."""
        start = self.accelerator.process_index * self.local_batch_size
        return x[start : start + self.local_batch_size]

    def _prompt_indices(self, stream: int, step: int) -> np.ndarray:
        """A global batch of prompt indices, a function of (seed, stream, step) only."""
        rng = np.random.default_rng([self.seed, stream, step])
        n = len(self.prompts)
        return rng.choice(n, self.config.batch_size, replace=n < self.config.batch_size)

    def _sample(self, batch: np.ndarray, stream: int, step: int, adapter: str | None) -> tuple[Tensor, ...]:
        """Sample this process's share of the global batch of prompt indices ``batch``.

        Row ``b`` of the global batch is sampled with the random numbers of ``(seed, stream,
        step, b)``, whichever process handles it. Returns ``(query_ids, query_mask, responses,
        sample_logprobs)`` for the local rows.
        """
        positions = self._local_rows(np.arange(len(batch)))
        query_ids, query_mask = left_pad([self.prompt_ids[i] for i in batch[positions]], self.tokenizer.pad_token_id)
        query_ids, query_mask = query_ids.to(self.accelerator.device), query_mask.to(self.accelerator.device)
        uniforms = sampling_uniforms(self.seed, stream, step, positions, self.config.max_new_tokens)
        with self.policy_value.adapter(adapter) as lm:
            responses, logprobs = sample_tokens(
                lm, query_ids, query_mask, uniforms, self.config.temperature,
                self.tokenizer.eos_token_id, self.tokenizer.pad_token_id,
            )
        return query_ids, query_mask, responses, logprobs

    def minibatches(self, step: int, epoch: int) -> list[Tensor]:
        """The rows of this process's batch in each minibatch of one epoch: a shuffle that depends on
        ``(seed, step, epoch)`` only, split into ``num_minibatches`` index tensors of ``minibatch_size``."""
        order = np.random.default_rng([self.seed, _MINIBATCH_STREAM, step, epoch]).permutation(self.local_batch_size)
        return [rows.to(self.accelerator.device) for rows in torch.as_tensor(order).split(self.minibatch_size)]

    # ------------------------------------------------------------------ reward normalisation

    @torch.no_grad()
    def compute_reward_statistics(self) -> None:
        """Mean and std of the reward model's scores of the reference policy's samples
        (``reward_norm_samples`` of them, over all processes), used to normalise every later score."""
        scores = []
        for chunk in range(math.ceil(self.config.reward_norm_samples / self.config.batch_size)):
            batch = self._prompt_indices(_REWARD_STATS_STREAM, chunk)
            query_ids, query_mask, responses, _ = self._sample(batch, _REWARD_STATS_STREAM, chunk, adapter=None)
            scores.append(self.scorer(query_ids, query_mask, responses, response_mask(responses, self.tokenizer.eos_token_id)))
        scores = self._gather(torch.cat(scores))
        self._check_finite("reward-model score of the reference samples", scores)
        self.normalizer.fit(scores)
        self.reward_stats_ready = True
        if self.config.value_model == "reward":
            self._start_value_head()

    def _start_value_head(self) -> None:
        """The reward-model critic's fixed prior: the reward model's normalised score of each prefix."""
        self.policy_value.value_head.start_from(self.scorer.model.score, self.normalizer.mean, self.normalizer.std)

    # ------------------------------------------------------------------ 1. rollout

    @torch.no_grad()
    def rollout(self, step: int) -> Rollout:
        """Sample this step's responses and score them (no gradients anywhere)."""
        cfg, model = self.config, self.policy_value
        batch = self._prompt_indices(_TRAIN_STREAM, step)
        query_ids, query_mask, responses, sample_logprobs = self._sample(batch, _TRAIN_STREAM, step, POLICY)
        mask = response_mask(responses, self.tokenizer.eos_token_id)
        # Drop the columns that are padding in every response of the global batch (causal
        # attention: they change nothing before them), so scoring and training skip them.
        R = int(self._gather(mask.sum(1).max().reshape(1)).max())
        responses, sample_logprobs, mask = responses[:, :R], sample_logprobs[:, :R], mask[:, :R]
        input_ids = torch.cat([query_ids, responses], dim=1)
        attention_mask = torch.cat([query_mask, mask], dim=1)

        value_features = None
        if cfg.value_model == "reward":  # the critic reads the hidden states of the pass that scores the responses
            raw_scores, value_features = self.scorer.score_with_features(query_ids, query_mask, responses, mask)
        else:
            raw_scores = self.scorer(query_ids, query_mask, responses, mask)

        # Score every token in minibatch-sized chunks (the shapes the PPO update will use).
        parts: dict[str, list[Tensor]] = {"logprobs": [], "entropy": [], "values": [], "ref_logprobs": []}
        for rows in torch.arange(len(query_ids)).split(self.minibatch_size):
            features = None if value_features is None else value_features[rows]
            logprobs, entropy, values = model(input_ids[rows], attention_mask[rows], R, cfg.temperature, features)
            ref_logprobs, _ = model.response_logprobs(input_ids[rows], attention_mask[rows], R, cfg.temperature, adapter=None)
            for key, value in zip(parts, (logprobs, entropy, values, ref_logprobs)):
                parts[key].append(value)
        logprobs, entropy, values, ref_logprobs = (torch.cat(parts[k]) for k in parts)
        for name, value in (("policy log-probs", logprobs), ("reference log-probs", ref_logprobs),
                            ("values", values), ("reward-model score", raw_scores)):
            self._check_finite(name, value)

        has_eos = (responses == self.tokenizer.eos_token_id).any(dim=1)
        scores = self.normalizer(raw_scores, has_eos)
        maskf = mask.float()
        stats = {
            "raw_score": raw_scores,
            "score": self.normalizer.normalize(raw_scores),
            "length": maskf.sum(1),
            "no_eos": (~has_eos).float(),
            "entropy_sum": (entropy * maskf).sum(1),
            "nll_sum": -(logprobs * maskf).sum(1),
            "kl_k1": (kl_per_token(logprobs, ref_logprobs, "k1") * maskf).sum(1),
            "kl_k3": (kl_per_token(logprobs, ref_logprobs, "k3") * maskf).sum(1),
            "logprob_gap": ((sample_logprobs - logprobs).abs() * maskf).amax(1),
        }
        if self.gold_fn is not None:
            gold = self.gold_fn(decode_texts(self.tokenizer, query_ids, query_mask, responses, mask))
            stats["gold"] = torch.as_tensor(np.asarray(gold, dtype=np.float32), device=scores.device)
        return Rollout(input_ids, attention_mask, mask, logprobs, ref_logprobs, values, value_features, scores, stats)

    # ------------------------------------------------------------------ 4. PPO epochs

    def ppo_update(self, batch: Rollout, advantages: Tensor, returns: Tensor, step: int) -> dict[str, float]:
        """``update_epochs`` passes over shuffled minibatches; returns the averaged training statistics.

        Each process averages its loss over its own tokens; weighting it by its share of the
        minibatch's tokens (DDP then averages gradients over processes) makes the gradient the
        token-mean over the whole minibatch, whatever the number of processes.
        """
        cfg, acc = self.config, self.accelerator
        R = batch.mask.shape[1]
        world = acc.num_processes
        sums: dict[str, Tensor] = {}
        ratio_dev_at_start = torch.zeros(1, device=acc.device)
        n_updates = 0
        for epoch in range(cfg.update_epochs):
            for rows in self.minibatches(step, epoch):
                mask = batch.mask[rows]
                features = None if batch.value_features is None else batch.value_features[rows]
                logprobs, _, values = self.model(batch.input_ids[rows], batch.attention_mask[rows], R, cfg.temperature,
                                                 features)
                pg_loss, pg_stats = ppo_policy_loss(logprobs, batch.logprobs[rows], advantages[rows], cfg.clip_coef, mask)
                vf_loss = ppo_value_loss(values, batch.values[rows], returns[rows], cfg.clip_coef_vf, mask)
                loss = pg_loss + cfg.vf_coef * vf_loss
                self._check_finite("PPO loss", loss)
                if n_updates == 0:  # before any update the ratio must be exactly 1
                    ratio_dev_at_start = ((logprobs - batch.logprobs[rows]).abs() * mask).amax().detach().reshape(1)

                n_local = mask.sum().float()
                share = n_local / acc.reduce(n_local.clone(), reduction="sum")
                acc.backward(loss * share * world)
                grad_norm = acc.clip_grad_norm_(self.policy_value.trainable_parameters(), cfg.max_grad_norm)
                self._check_finite("gradient norm", torch.as_tensor(grad_norm))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                n_updates += 1

                with torch.no_grad():
                    mb = {"policy_loss": pg_loss, "value_loss": vf_loss, **pg_stats}
                    for key, value in mb.items():  # token-weighted: sums to the global token-mean
                        sums[key] = sums.get(key, 0.0) + value.detach() * share
                    # the same on every process (DDP synchronised the gradients): /world undoes the sum
                    sums["grad_norm"] = sums.get("grad_norm", 0.0) + torch.as_tensor(grad_norm, device=acc.device) / world
        stats = {k: (acc.reduce(v.reshape(1), reduction="sum") / n_updates).item() for k, v in sums.items()}
        stats["ratio_dev_at_start"] = self._gather(ratio_dev_at_start).max().item()
        return stats

    # ------------------------------------------------------------------ one PPO step

    def step(self) -> dict[str, float]:
        """One PPO iteration: rollout -> rewards -> advantages -> PPO epochs. Returns its metrics.

        A NaN or inf in the scores, log-probs, values, losses or gradients stops training
        with a ``FloatingPointError`` naming the quantity and the step, after saving a
        checkpoint of the state at the fault (the weights are still finite: every check
        happens before the optimizer step) in ``<checkpoint_dir>/fault-step-NNNNNN``.
        """
        try:
            return self._step()
        except FloatingPointError as err:
            if self.checkpoint_dir is None:
                raise
            path = self.save_checkpoint(f"fault-step-{self.step_count:06d}")
            raise FloatingPointError(f"{err} The state at the fault is saved in {path}.") from err

    def _step(self) -> dict[str, float]:
        cfg, step = self.config, self.step_count
        start = time.perf_counter()
        if not self.reward_stats_ready:
            self.compute_reward_statistics()

        # 1. rollout
        batch = self.rollout(step)
        # 2. per-token rewards: -beta * KL on every token, the score at the last one
        rewards, _ = per_token_rewards(batch.scores, batch.logprobs, batch.ref_logprobs, batch.mask,
                                       self.kl_ctl.value, cfg.kl_estimator)
        # 3. advantages over response tokens, whitened over the global batch
        advantages, returns = response_advantages(rewards, batch.values, batch.mask, cfg.gamma, cfg.gae_lambda)
        advantages = self._local_rows(masked_whiten(self._gather(advantages), self._gather(batch.mask)))
        # 4. PPO epochs
        lr = self.scheduler.get_last_lr()[0]
        train_stats = self.ppo_update(batch, advantages, returns, step)
        self.scheduler.step()

        metrics = self._metrics(batch, rewards, returns, train_stats)
        metrics["ppo/lr"] = lr
        metrics["kl/coef"] = self.kl_ctl.value
        self.kl_ctl.update(metrics[f"kl/{cfg.kl_estimator}"], cfg.batch_size)
        metrics["time/step_seconds"] = time.perf_counter() - start
        self.step_count += 1
        metrics = {"step": float(self.step_count), **metrics}
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        if cfg.checkpoint_every and self.step_count % cfg.checkpoint_every == 0:
            self.save_checkpoint()
        return metrics

    def _metrics(self, batch: Rollout, rewards: Tensor, returns: Tensor, train_stats: dict[str, float]) -> dict[str, float]:
        """Means over the global batch of everything worth watching."""
        s = {k: self._gather(v) for k, v in batch.stats.items()}
        tokens = s["length"].sum()
        metrics = {
            "reward/proxy": s["score"].mean().item(),
            "reward/proxy_raw": s["raw_score"].mean().item(),
            "reward/total": self._gather(rewards.sum(1)).mean().item(),
            "kl/k1": s["kl_k1"].mean().item(),
            "kl/k3": s["kl_k3"].mean().item(),
            "policy/entropy": (s["entropy_sum"].sum() / tokens).item(),
            "policy/perplexity": math.exp((s["nll_sum"].sum() / tokens).item()),
            "policy/response_length": s["length"].mean().item(),
            "policy/no_eos_fraction": s["no_eos"].mean().item(),
            "rollout/logprob_gap": s["logprob_gap"].max().item(),
            "ppo/value_explained_variance": explained_variance(
                self._gather(batch.values), self._gather(returns), self._gather(batch.mask)
            ),
        }
        if "gold" in s:
            metrics["reward/gold"] = s["gold"].mean().item()
        metrics.update({f"ppo/{k}": v for k, v in train_stats.items()})
        return metrics

    # ------------------------------------------------------------------ training loop

    def train(
        self,
        n_steps: int | None = None,
        progress: bool = True,
        callback: Callable[[PPOTrainer, dict[str, float]], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``n_steps`` PPO steps (default: up to ``config.total_steps``); returns the history.

        ``callback(trainer, metrics)`` runs after every step (e.g. a live plot).

        Raises:
            ValueError: if the run would go past ``total_steps`` with the linear schedule, where the
                learning rate is 0 and the steps would cost time and change nothing (raise
                ``total_steps``, or resume with the same config and fewer steps).
        """
        n_steps = self.config.total_steps - self.step_count if n_steps is None else n_steps
        if self.config.lr_schedule == "linear" and self.step_count + n_steps > self.config.total_steps:
            raise ValueError(
                f"{n_steps} more steps from step {self.step_count} go past total_steps={self.config.total_steps}, "
                "where the linear schedule has annealed the learning rate to 0: those steps would train nothing. "
                "Use a config with a larger total_steps (a new run), or lr_schedule='constant'."
            )
        bar = progress_bar(n_steps, enabled=progress and self.accelerator.is_main_process, desc="PPO")
        try:
            for _ in range(n_steps):
                metrics = self.step()
                postfix = {"proxy": metrics["reward/proxy"], "kl": metrics["kl/k1"]}
                if "reward/gold" in metrics:
                    postfix["gold"] = metrics["reward/gold"]
                bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()})
                bar.update()
                if callback is not None:
                    callback(self, metrics)
        finally:
            bar.close()
        return self.history_arrays()

    def history_arrays(self) -> dict[str, np.ndarray]:
        """The metrics of every step so far, one numpy array per metric."""
        return {k: np.asarray(v, dtype=np.float64) for k, v in self.history.items()}

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], reference: bool = False, seed: int = 0) -> list[str]:
        """Sample one response (text, special tokens dropped) per prompt from the current policy,
        or from the reference with ``reference=True``. The random numbers depend on ``seed`` and
        the prompt's position only, so two policies asked with the same seed are compared on the
        same random numbers. Runs on this process alone."""
        ids = tokenize_prompts(self.tokenizer, prompts, self.max_prompt_length, self.config.truncate_prompts)
        responses = []
        for start in range(0, len(ids), self.local_batch_size):
            rows = list(range(start, min(start + self.local_batch_size, len(ids))))
            query_ids, query_mask = left_pad([ids[i] for i in rows], self.tokenizer.pad_token_id)
            uniforms = sampling_uniforms(seed, _GENERATE_STREAM, 0, rows, self.config.max_new_tokens)
            with self.policy_value.adapter(None if reference else POLICY) as lm:
                tokens, _ = sample_tokens(
                    lm, query_ids.to(self.accelerator.device), query_mask.to(self.accelerator.device), uniforms,
                    self.config.temperature, self.tokenizer.eos_token_id, self.tokenizer.pad_token_id,
                )
            responses += decode_texts(self.tokenizer, query_ids, query_mask, tokens,
                                      response_mask(tokens, self.tokenizer.eos_token_id), with_prompt=False)
        return responses

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str | None = None) -> Path:
        """Write ``<checkpoint_dir>/<name>`` (default ``step-NNNNNN``) and keep the last
        ``keep_checkpoints`` step checkpoints.

        The checkpoint holds the trained weights (the LoRA adapter(s) and the value head),
        optimizer, scheduler, KL coefficient, reward statistics, step, history, config, and
        every process's RNG states; the policy adapter also goes to ``policy_adapter/`` in
        peft's format (``PeftModel.from_pretrained(base, .../policy_adapter/policy)``). It is
        written into a temporary directory renamed into place when complete, so an
        interrupted save never damages the previous checkpoint.
        """
        if self.checkpoint_dir is None:
            raise ValueError("this trainer has no checkpoint_dir; pass checkpoint_dir= to PPOTrainer")
        acc = self.accelerator
        final = self.checkpoint_dir / (name or f"step-{self.step_count:06d}")
        tmp = self.checkpoint_dir / f".{final.name}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        save_checkpoint(tmp / f"rng-{acc.process_index}.pt")
        if acc.is_main_process:
            save_checkpoint(
                tmp / "state.pt",
                model=self.policy_value.trainable_state_dict(),
                optimizer=self.optimizer.state_dict(),
                scheduler=self.scheduler.state_dict(),
                step=self.step_count,
                kl_coef=self.kl_ctl.value,
                reward_stats=[self.normalizer.mean, self.normalizer.std, self.reward_stats_ready],
                history=self.history,
                config=dataclasses.asdict(self.config),
                seed=self.seed,
                num_processes=acc.num_processes,
                model_sources=self.model_sources,
            )
            self.policy_value.model.save_pretrained(tmp / "policy_adapter", selected_adapters=[POLICY])
        acc.wait_for_everyone()
        if acc.is_main_process:
            if final.exists():  # e.g. a second fault checkpoint at the same step
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in sorted(self.checkpoint_dir.glob("step-*"))[: -self.config.keep_checkpoints]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return final

    def resume(self) -> Path | None:
        """Continue from the newest checkpoint in ``checkpoint_dir``, if there is one (a re-run after a
        disconnect); returns its path, or None when the run starts from step 0."""
        if self.checkpoint_dir is None:
            raise ValueError("this trainer has no checkpoint_dir; pass checkpoint_dir= to PPOTrainer")
        path = latest_checkpoint(self.checkpoint_dir)
        if path is not None:
            self.load_checkpoint(path)
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Continue from a checkpoint written by :meth:`save_checkpoint` (same config and processes)."""
        path = Path(path)
        state = load_checkpoint(path / "state.pt")
        if state["config"] != dataclasses.asdict(self.config) or state["seed"] != self.seed:
            raise ValueError(
                f"{path} was written with a different config or seed; resume with the same settings "
                "(compare state['config'] from rl_basics.agents.checkpoints.load_checkpoint)"
            )
        if state.get("model_sources", self.model_sources) != self.model_sources:
            raise ValueError(
                f"{path} was trained from other models ({state['model_sources']}) than this trainer's "
                f"({self.model_sources}); give this run its own checkpoint_dir (rlhf.ppo.run_dir(name, ...) with a "
                "name that says which models it uses), or delete the old folder"
            )
        if state["num_processes"] != self.accelerator.num_processes:
            raise ValueError(f"{path} was written by {state['num_processes']} processes; "
                             f"resume with the same number (this run has {self.accelerator.num_processes})")
        self.policy_value.load_trainable_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step_count = int(state["step"])
        self.kl_ctl.value = float(state["kl_coef"])
        self.normalizer.mean, self.normalizer.std, self.reward_stats_ready = state["reward_stats"]
        self.history = {k: list(v) for k, v in state["history"].items()}
        if self.config.value_model == "reward" and self.reward_stats_ready:
            self._start_value_head()  # the critic's prior is not a trained weight: rebuild it from the statistics
        load_checkpoint(path / f"rng-{self.accelerator.process_index}.pt", restore_rng=True)


def run_dir(name: str, config: PPOConfig, seed: int) -> Path:
    """``<runs_dir()>/<name>/<preset>-seed<seed>-<hash of the config>``: one folder per distinct run, so
    a re-run with the same settings resumes from its checkpoints and a changed setting starts afresh."""
    from rlhf.paths import runs_dir

    digest = hashlib.sha256(repr(sorted(dataclasses.asdict(config).items())).encode()).hexdigest()[:10]
    return runs_dir() / name / f"{config.preset}-seed{seed}-{digest}"


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest complete ``step-NNNNNN`` checkpoint in ``checkpoint_dir`` (None if there is none)."""
    found = sorted(Path(checkpoint_dir).glob("step-*"))
    return found[-1] if found else None


__all__ = [
    "KLController",
    "PPOConfig",
    "PPOTrainer",
    "Rollout",
    "latest_checkpoint",
    "per_token_rewards",
    "run_dir",
    "response_advantages",
]
