"""What the on-policy actor-critic agents (A2C and PPO) share around their update rules.

- :class:`OnPolicyConfig`: the hyperparameters both have (rollout size, optimizer schedule,
  GAE, loss weights, networks), with one validator; ``A2CConfig`` and ``PPOConfig`` derive
  from it and set their own tuned defaults
- :class:`Batch`, :func:`make_batch`: GAE on a :class:`~rl_basics.agents.rollout.VectorRollout`,
  then its real transitions only
- :class:`RewardNormalizer`: rewards divided by the running standard deviation of the discounted return
- :class:`OnPolicyLoop`: the plumbing around an update (env, seeding, networks, rollouts,
  history, progress bar, callback)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rl_basics.agents.losses import compute_gae
from rl_basics.agents.networks import RunningMeanStd, make_actor, make_critic
from rl_basics.agents.rollout import EnvLike, RolloutCollector, VectorRollout, as_vector_env
from rl_basics.agents.training import Callback, TrainResult, check_finite, history_arrays, progress_bar, set_seed
from rl_basics.validation import check_fields


@dataclass
class OnPolicyConfig:
    """The hyperparameters A2C and PPO share, and all that :class:`OnPolicyLoop` reads.

    ``A2CConfig`` and ``PPOConfig`` derive from it, each overriding the defaults (and the
    descriptions) its own tuning changed; on its own it is a generic starting point.
    Validated on construction: a bad value raises ``ValueError`` naming the class, the
    field, the rule and the value.
    """

    total_timesteps: int = 100_000
    """Environment steps to train for (summed over sub-envs, autoreset steps included)."""
    num_envs: int = 8
    """Parallel sub-environments in the vector env (ignored when a VectorEnv is passed in)."""
    n_steps: int = 32
    """Steps per sub-env per rollout; the batch is ``num_envs * n_steps`` transitions."""
    learning_rate: float = 1e-3
    """Step size of the optimizer."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    reward_scale: float = 1.0
    """Multiply rewards by this before computing advantages and value targets; logged episode returns stay unscaled."""
    gamma: float = 0.99
    """Discount factor, in [0, 1]."""
    gae_lambda: float = 0.95
    """GAE's lambda, in [0, 1]: 1 gives n-step returns (unbiased given the bootstrap, high variance), 0 one-step TD."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus (exploration)."""
    vf_coef: float = 0.5
    """Weight of the value loss ``0.5 * (V - R)^2``."""
    max_grad_norm: float = 0.5
    """Clip the global gradient norm to this value."""
    normalize_advantages: bool = True
    """Whiten each batch's advantages (mean 0, std 1)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the actor and of the (separate) critic."""
    normalize_obs: bool = False
    """Standardise ``Box`` observations with their running mean and variance (rl-zoo's ``normalize``), clipped
    to [-10, 10]. The statistics live in the actor and the critic (saved with them, used as they are at
    evaluation) and absorb each batch's observations after that batch's update, so the policy an update
    starts from is exactly the one that collected its batch."""
    normalize_rewards: bool = False
    """Divide rewards by the running standard deviation of the discounted return, clipped to [-10, 10] (the
    reward half of rl-zoo's ``normalize``; see :class:`RewardNormalizer`). An automatic ``reward_scale``:
    leave that at 1 when this is on."""

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        check_fields(self, "> 0", "total_timesteps", "num_envs", "n_steps", "learning_rate", "max_grad_norm",
                     "reward_scale")
        check_fields(self, "in [0, 1]", "gamma", "gae_lambda")
        check_fields(self, ">= 0", "ent_coef", "vf_coef")
        check_fields(self, "positive layer widths", "hidden_sizes")
        if self.normalize_rewards and self.reward_scale != 1.0:
            raise ValueError(f"{type(self).__name__}: normalize_rewards=True sets the rewards' scale itself, so "
                             f"reward_scale={self.reward_scale!r} would be undone; set reward_scale=1.0 or "
                             "normalize_rewards=False")


@dataclass
class Batch:
    """The real transitions of a rollout, time and sub-env axes flattened into one."""

    obs: Tensor
    actions: Tensor
    log_probs: Tensor
    advantages: Tensor
    returns: Tensor
    values: Tensor

    def __len__(self) -> int:
        return self.log_probs.shape[0]

    def __getitem__(self, index: Tensor) -> Batch:
        return Batch(*(getattr(self, name)[index] for name in self.__dataclass_fields__))


def make_batch(rollout: VectorRollout, gamma: float, gae_lambda: float) -> Batch:
    """GAE on the rollout (time-first), then keep only its real transitions.

    Autoreset steps (``rollout.valid == 0``) do not enter the GAE of real steps (the
    episode end before them cuts the recursion) and are dropped here, so no loss, no
    advantage normalisation and no statistic ever sees them.
    """
    advantages, returns = compute_gae(
        rollout.rewards, rollout.values, rollout.next_values,
        rollout.terminated, rollout.episode_end, gamma, gae_lambda,
    )
    real = rollout.valid.reshape(-1) > 0

    def flat(x: Tensor) -> Tensor:
        return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])[real]

    return Batch(
        obs=flat(rollout.obs), actions=flat(rollout.actions), log_probs=flat(rollout.log_probs),
        advantages=flat(advantages), returns=flat(returns), values=flat(rollout.values),
    )


REWARD_CLIP = 10.0
"""Normalised rewards are clipped to [-REWARD_CLIP, REWARD_CLIP] (as Stable-Baselines3's VecNormalize does)."""


class RewardNormalizer:
    """Rewards divided by the running standard deviation of the discounted return (VecNormalize's rewards).

    Each sub-env keeps a discounted sum of its rewards, ``G_t = gamma * G_{t-1} + r_t``, set back to 0 when
    an episode ends; the rewards of a rollout ``(T, N)`` are divided by ``sqrt(Var[G] + 1e-8)`` over every
    ``G_t`` of the real steps so far (this rollout's included) and clipped to ``[-10, 10]``. The mean is not
    subtracted: shifting rewards would change which policies are best in episodes of varying length. Only
    the scale of the learning signal changes; episode returns are recorded before this, in the env's units.
    """

    def __init__(self, num_envs: int, gamma: float):
        self.gamma = gamma
        self.returns = torch.zeros(num_envs, dtype=torch.float64)  # (N,) G of each sub-env's current episode
        self.stats = RunningMeanStd()

    def __call__(self, rollout: VectorRollout) -> None:
        """Fold the rollout's returns into the statistics, then normalise its rewards in place."""
        seen = []
        for t in range(rollout.rewards.shape[0]):
            real = rollout.valid[t] > 0  # an autoreset step (reward 0) neither adds to G nor counts
            self.returns = torch.where(real, self.gamma * self.returns + rollout.rewards[t].double(), self.returns)
            seen.append(self.returns[real])
            self.returns[rollout.episode_end[t] > 0] = 0.0
        self.stats.update(torch.cat(seen))
        rollout.rewards.div_(self.std()).clamp_(-REWARD_CLIP, REWARD_CLIP)

    def std(self) -> Tensor:
        """What the rewards are divided by: ``sqrt(Var[G] + 1e-8)``, a float32 scalar."""
        return torch.sqrt(self.stats.var + 1e-8).float()


class OnPolicyLoop:
    """The plumbing A2C and PPO share around their update rule.

    It builds the vector env (see :func:`~rl_basics.agents.rollout.as_vector_env`), seeds everything, makes
    the actor and the (separate) critic, and keeps a :class:`~rl_basics.agents.rollout.RolloutCollector`.
    Each update the agent asks :meth:`next_batch` for GAE-processed real transitions, applies its own
    loss, and hands its diagnostics to :meth:`record` (history, progress bar, callback).
    :meth:`result` collects the history. Use it as a context manager: the progress bar and
    an env it made are closed on the way out, also after an error.

    ``config`` is the agent's config, an :class:`OnPolicyConfig`: the loop reads ``total_timesteps``,
    ``num_envs``, ``n_steps``, ``hidden_sizes``, ``gamma``, ``gae_lambda``, ``reward_scale``,
    ``normalize_obs`` and ``normalize_rewards``.
    ``keys`` names the per-update diagnostics the agent records (``update_steps``, the global
    env step of each update, is always recorded first).
    """

    def __init__(
        self,
        env: EnvLike,
        config: OnPolicyConfig,
        seed: int,
        keys: Sequence[str],
        progress: bool = True,
        desc: str | None = None,
        callback: Callback | None = None,
    ):
        self.envs, self.created = as_vector_env(env, config.num_envs)
        set_seed(seed)
        obs_space = self.envs.single_observation_space
        self.actor = make_actor(obs_space, self.envs.single_action_space, config.hidden_sizes, config.normalize_obs)
        self.critic = make_critic(obs_space, config.hidden_sizes, config.normalize_obs)
        self.unseen_obs: Tensor | None = None  # the last batch's observations, for the statistics after its update
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.collector = RolloutCollector(self.envs, seed=seed)
        self.reward_normalizer = RewardNormalizer(self.envs.num_envs, config.gamma) if config.normalize_rewards else None
        self.config, self.seed, self.callback = config, seed, callback
        self.batch_size = self.envs.num_envs * config.n_steps
        self.n_updates = math.ceil(config.total_timesteps / self.batch_size)
        self.log: dict[str, list] = {key: [] for key in ("update_steps", *keys)}
        self.progress = progress
        self.bar = progress_bar(self.n_updates * self.batch_size, progress, desc=desc)

    def __enter__(self) -> OnPolicyLoop:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.close()
        if self.created:
            self.envs.close()

    def next_batch(self, update: int) -> Batch:
        """Collect ``config.n_steps`` steps per sub-env with the current actor, check the rewards
        are finite, scale them by ``config.reward_scale`` (or normalise them, :class:`RewardNormalizer`)
        and return :func:`make_batch`'s batch.

        With ``config.normalize_obs`` the previous batch's observations (its update is done by now) first
        move the observation statistics of the actor and the critic."""
        if self.unseen_obs is not None:
            for network in (self.actor, self.critic):
                network.encoder.update_statistics(self.unseen_obs)
        rollout = self.collector.collect(self.actor, self.config.n_steps, self.critic)
        check_finite("the environment's reward", rollout.rewards, update)
        if self.config.reward_scale != 1.0:
            rollout.rewards.mul_(self.config.reward_scale)
        if self.reward_normalizer is not None:
            self.reward_normalizer(rollout)
        batch = make_batch(rollout, self.config.gamma, self.config.gae_lambda)
        if self.config.normalize_obs:
            self.unseen_obs = batch.obs
        return batch

    def record(self, update: int, row: dict[str, Any]) -> bool:
        """Append the update's diagnostics (``row`` holds every key but ``update_steps``, added here),
        advance the progress bar, and call the callback; True means stop training."""
        row = {"update_steps": self.collector.env_steps, **row}
        for key, values in self.log.items():
            values.append(row[key])
        self.bar.update(self.batch_size)
        if self.progress and self.collector.episode_returns and update % 10 == 0:
            self.bar.set_postfix(mean_return=f"{np.mean(self.collector.episode_returns[-20:]):.1f}", refresh=False)
        info = {"update": update, "env_steps": self.collector.env_steps, "actor": self.actor, "critic": self.critic,
                "stats": row}
        return bool(self.callback is not None and self.callback(info))

    def result(self, int_keys: Sequence[str] = ()) -> TrainResult:
        """The trained networks and the history: per episode ``episode_returns``, ``episode_lengths``,
        ``episode_steps``; per update the recorded keys (``int_keys`` and ``update_steps`` as int64)."""
        collector = self.collector
        history = history_arrays(
            {"episode_returns": collector.episode_returns, "episode_lengths": collector.episode_lengths,
             "episode_steps": collector.episode_steps, **self.log},
            dtypes={key: np.int64 for key in ("episode_lengths", "episode_steps", "update_steps", *int_keys)},
        )
        return TrainResult(actor=self.actor, critic=self.critic, history=history, config=self.config, seed=self.seed)


__all__ = ["Batch", "OnPolicyConfig", "OnPolicyLoop", "RewardNormalizer", "make_batch"]
