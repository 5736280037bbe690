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

from dataclasses import dataclass

import torch
from torch import nn

from rl_basics.agents.losses import explained_variance, masked_whiten, ppo_value_loss
from rl_basics.agents.on_policy import OnPolicyConfig, OnPolicyLoop
from rl_basics.agents.rollout import EnvLike
from rl_basics.agents.training import Callback, TrainResult, check_finite, make_adam, torch_threads
from rl_basics.validation import check_one_of


@dataclass
class A2CConfig(OnPolicyConfig):
    """A2C's hyperparameters (defaults tuned to solve CartPole-v1 quickly).

    The fields A2C shares with PPO (``num_envs``, ``learning_rate``, ``gamma``, ``gae_lambda``, ...) and
    their validation are :class:`~rl_basics.agents.on_policy.OnPolicyConfig`'s; A2C keeps its defaults but
    for the fields redefined below, and adds ``optimizer``.
    """

    total_timesteps: int = 150_000
    """Environment steps to train for (summed over sub-envs, autoreset steps included)."""
    n_steps: int = 16
    """Steps per sub-env per update: the n of the n-step returns (the batch is ``num_envs * n_steps``)."""
    reward_scale: float = 0.1
    """Multiply rewards by this before computing advantages and value targets; logged episode returns
    stay unscaled. Small value targets keep the critic's gradient from dominating the clipped global
    gradient norm: with CartPole's discounted returns of up to 100 unscaled, the critic's errors and so its
    gradient can be far larger than the actor's, whose share of each clipped step then shrinks."""
    optimizer: str = "adam"
    """``"adam"`` or ``"rmsprop"`` (the original A2C/A3C choice: alpha 0.99, eps 1e-5)."""

    def __post_init__(self):
        super().__post_init__()
        check_one_of(self, "optimizer", ("adam", "rmsprop"))


def train(
    env: EnvLike,
    config: A2CConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: Callback | None = None,
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


def _train(env: EnvLike, config: A2CConfig, seed: int, progress: bool, callback: Callback | None) -> TrainResult:
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
