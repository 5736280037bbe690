"""Advantage actor-critic (A2C, the synchronous variant of Mnih et al. 2016's A3C).

Each update:

1. collect ``n_steps`` steps from each of ``num_envs`` vector sub-envs (gymnasium 1.x
   ``NEXT_STEP`` autoreset steps are dropped: they are not real transitions);
2. advantages by GAE(lambda) — ``gae_lambda = 1`` gives the classic n-step return
   ``r_t + gamma r_{t+1} + ... + gamma^k V(s_{t+k})`` minus ``V(s_t)``, ``gae_lambda = 0``
   the one-step TD error; bootstrapping from V(final observation) on truncation, not
   on termination;
3. one gradient step on ``-A * log pi(a|s) - ent_coef * entropy + vf_coef * 0.5 (V - R)^2``.

Unlike PPO, every batch is used once and thrown away, so there is no ratio to clip.

Usage::

    from rl_basics.agents import a2c
    result = a2c.train("CartPole-v1", a2c.A2CConfig(), seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rl_basics.agents.core import (
    EnvLike,
    OnPolicyLoop,
    TrainResult,
    check_finite,
    explained_variance,
    make_adam,
    masked_whiten,
    ppo_value_loss,
    torch_threads,
)


@dataclass
class A2CConfig:
    """A2C's hyperparameters (defaults tuned to solve CartPole-v1 quickly)."""

    total_timesteps: int = 150_000
    """Environment steps to train for (summed over sub-envs, autoreset steps included)."""
    num_envs: int = 8
    """Parallel sub-environments in the vector env (ignored when a VectorEnv is passed in)."""
    n_steps: int = 16
    """Steps per sub-env per update: the n of the n-step returns (the batch is ``num_envs * n_steps``)."""
    learning_rate: float = 1e-3
    """Step size of the optimizer."""
    optimizer: str = "adam"
    """``"adam"`` or ``"rmsprop"`` (the original A2C/A3C choice: alpha 0.99, eps 1e-5)."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over training."""
    reward_scale: float = 0.1
    """Multiply rewards by this before computing advantages and value targets; logged episode returns
    stay unscaled. Small value targets keep the critic's gradient from dominating the clipped global
    gradient norm: with CartPole's returns of up to 100 unscaled, the actor's share of the clipped
    gradient shrinks and A2C's greedy return hovered between 370 and 470 instead of reaching 500."""
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

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        for name in ("total_timesteps", "num_envs", "n_steps", "learning_rate", "max_grad_norm", "reward_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"A2CConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("gamma", "gae_lambda"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"A2CConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("ent_coef", "vf_coef"):
            if getattr(self, name) < 0:
                raise ValueError(f"A2CConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"A2CConfig.optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if not self.hidden_sizes or min(self.hidden_sizes) < 1:
            raise ValueError(f"A2CConfig.hidden_sizes must be positive layer widths, got {self.hidden_sizes}")


def train(
    env: EnvLike,
    config: A2CConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], bool | None] | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train an A2C agent.

    Args:
        env: an env id, a factory returning a gymnasium ``Env``, a single ``Env`` or a
            gymnasium 1.x ``VectorEnv`` (``NEXT_STEP`` autoreset). ``Discrete`` actions get
            a categorical policy, ``Box`` actions a Gaussian one.
        config: hyperparameters; ``A2CConfig()`` when None.
        seed: seeds torch, numpy, python and the environments.
        progress: show a progress bar.
        callback: called after every update with a dict (``update``, ``env_steps``,
            ``actor``, ``critic``, ``stats``); returning True stops training.
        num_threads: torch threads while training (1 is fastest for these small networks;
            None leaves torch's setting alone). The previous setting is restored afterwards.

    Returns:
        A :class:`TrainResult`; ``history`` holds per-episode ``episode_returns``,
        ``episode_lengths``, ``episode_steps`` and per-update ``update_steps``,
        ``policy_loss``, ``value_loss``, ``entropy``, ``explained_variance``.

    Raises:
        FloatingPointError: a loss became NaN or inf (the message names it and the update).
    """
    with torch_threads(num_threads):
        return _train(env, config or A2CConfig(), seed, progress, callback)


def _train(
    env: EnvLike, config: A2CConfig, seed: int, progress: bool, callback: Callable[[dict[str, Any]], bool | None] | None
) -> TrainResult:
    keys = ("policy_loss", "value_loss", "entropy", "explained_variance")
    with OnPolicyLoop(env, config, seed, keys, progress, "A2C", callback) as loop:
        actor, critic = loop.actor, loop.critic
        if config.optimizer == "adam":
            optimizer = make_adam(loop.params, config.learning_rate, eps=1e-5)
        else:
            optimizer = torch.optim.RMSprop(loop.params, lr=config.learning_rate, alpha=0.99, eps=1e-5)
        for update in range(1, loop.n_updates + 1):
            if config.anneal_lr:
                for group in optimizer.param_groups:
                    group["lr"] = config.learning_rate * (1.0 - (update - 1) / loop.n_updates)

            batch = loop.next_batch(update)
            advantages = masked_whiten(batch.advantages) if config.normalize_advantages else batch.advantages

            log_prob, entropy = actor.log_prob_entropy(batch.obs, batch.actions)
            policy_loss = -(advantages * log_prob).mean()
            value_loss = ppo_value_loss(critic(batch.obs), batch.values, batch.returns)
            entropy = entropy.mean()
            loss = policy_loss - config.ent_coef * entropy + config.vf_coef * value_loss
            if not torch.isfinite(loss):
                check_finite("A2C policy loss", policy_loss, update)
                check_finite("A2C value loss", value_loss, update)
                check_finite("A2C entropy", entropy, update)
                check_finite("A2C loss", loss, update)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(loop.params, config.max_grad_norm)
            optimizer.step()

            row = dict(
                policy_loss=policy_loss.item(), value_loss=value_loss.item(), entropy=entropy.item(),
                explained_variance=explained_variance(batch.values, batch.returns),
            )
            if loop.record(update, row):
                break
    return loop.result()
