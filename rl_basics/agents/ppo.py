"""Proximal policy optimisation (Schulman et al. 2017) with the clipped surrogate objective.

One PPO iteration:

1. collect ``n_steps`` steps from each of ``num_envs`` vector sub-envs with the current
   policy (gymnasium 1.x ``NEXT_STEP`` autoreset: the step after an episode end is not a
   real transition and is masked out of everything below);
2. GAE(lambda) advantages and returns, bootstrapping from V(final observation) on
   truncation but not on termination;
3. ``update_epochs`` passes over the batch in shuffled minibatches, minimising
   ``clipped policy loss - ent_coef * entropy + vf_coef * value loss`` with gradient
   clipping, advantages normalised per minibatch, learning rate and clip range
   annealed linearly to 0.

The defaults are tuned for CartPole-v1, from rl-zoo's tuned settings (8 envs x 32 steps,
one minibatch, gamma 0.98, lambda 0.8, clip 0.2, no entropy bonus, learning rate and clip
range annealed to 0) with 15 epochs instead of 20 and a learning rate of 4e-3 instead of
1e-3; :class:`PPOConfig` describes the sweep behind them. Other environments want other
settings (see notebook 08).

Usage::

    from rl_basics.agents import ppo
    result = ppo.train("CartPole-v1", ppo.PPOConfig(total_timesteps=100_000), seed=0)
    mean, std = evaluate(result.actor, "CartPole-v1", n_episodes=20)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rl_basics.agents.losses import explained_variance, masked_whiten, ppo_policy_loss, ppo_value_loss
from rl_basics.agents.networks import Actor
from rl_basics.agents.on_policy import Batch, OnPolicyConfig, OnPolicyLoop
from rl_basics.agents.rollout import EnvLike
from rl_basics.agents.training import Callback, TrainResult, check_finite, make_adam, torch_threads
from rl_basics.validation import check_fields


@dataclass
class PPOConfig(OnPolicyConfig):
    """PPO's hyperparameters; the defaults are tuned for CartPole-v1.

    They start from rl-zoo's tuned CartPole-v1 PPO (8 envs x 32 steps, batch 256 in one
    minibatch, 20 epochs, gamma 0.98, lambda 0.8, clip 0.2, no entropy bonus, learning rate
    1e-3 and clip range annealed linearly to 0) and take 15 epochs at a learning rate of 4e-3.
    The sweep: greedy 20-episode evaluations every 2,048 steps of a 100k-step schedule on 8
    synchronous CartPole-v1 envs, counting the environment steps (and CPU seconds) until the
    mean return first reached 475, over seeds 100-131 (the benchmark's seeds 0-9 left out).
    These defaults needed a median of 8,192 steps (mean 9,664, 90th percentile 14,336; all
    32 seeds reached 475) and about half the CPU time of the previous defaults (8 x 16
    steps, 10 epochs, 2e-3: median 12,288 steps, and 20 gradient steps on 128 transitions
    per 256 environment steps, which cost more than 15 on 256). 20 epochs at 4e-3 also
    needed 8,192 steps, at a third more CPU per step; 15 epochs at 3e-3 or 5e-3 and 10
    epochs at 5e-3 needed 10,240-12,288. Fewer epochs (5 or 8), 16 envs, a learning rate
    of 6e-3 and lambda 0.9 were no better (16 seeds each).

    The fields PPO shares with A2C (``total_timesteps``, ``num_envs``, ``n_steps``, ``anneal_lr``, ...) and
    their validation are :class:`~rl_basics.agents.on_policy.OnPolicyConfig`'s; PPO keeps its defaults but
    for the fields redefined below, and adds the minibatch, epoch, clipping and KL settings.
    """

    learning_rate: float = 4e-3
    """Adam's initial step size."""
    reward_scale: float = 1.0
    """Multiply rewards by this before computing advantages and value targets (e.g. 0.1 for
    Pendulum-v1, whose returns are in the thousands); logged episode returns stay unscaled."""
    gamma: float = 0.98
    """Discount factor, in [0, 1]."""
    gae_lambda: float = 0.8
    """GAE's lambda, in [0, 1]: 0 is the one-step TD error (low variance, biased), 1 the Monte-Carlo return."""
    vf_coef: float = 1.0
    """Weight of the value loss ``0.5 * (V - R)^2`` (1.0 matches Stable-Baselines3's 0.5 on the plain squared error)."""
    normalize_advantages: bool = True
    """Whiten the advantages of each minibatch (mean 0, std 1 over its real transitions)."""
    minibatch_size: int = 256
    """Transitions per gradient step; must divide ``num_envs * n_steps``."""
    update_epochs: int = 15
    """Passes over each batch (K in the paper)."""
    adam_eps: float = 1e-5
    """Adam's epsilon (1e-5 as in the PPO reference implementation, not torch's 1e-8)."""
    clip_coef: float = 0.2
    """epsilon of the clipped surrogate: the ratio pi_new / pi_old is kept within [1 - eps, 1 + eps]; > 0."""
    anneal_clip: bool = True
    """Decay the clip range linearly to 0 with the learning rate schedule's progress."""
    clip_coef_vf: float | None = None
    """Clip the value prediction to within this distance of its rollout value (None: no value clipping)."""
    target_kl: float | None = None
    """Stop an iteration's epochs early once the approximate KL to the rollout policy exceeds this (None: never)."""

    def __post_init__(self):
        super().__post_init__()
        check_fields(self, "> 0", "minibatch_size", "update_epochs", "adam_eps", "clip_coef")
        check_fields(self, "> 0 or None", "clip_coef_vf", "target_kl")
        if self.batch_size % self.minibatch_size:
            raise ValueError(
                f"the batch of num_envs * n_steps = {self.num_envs} * {self.n_steps} = {self.batch_size} transitions "
                f"does not divide into minibatches of {self.minibatch_size}"
            )

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.n_steps


def ppo_loss(
    actor: Actor, critic: nn.Module, mb: Batch, config: PPOConfig, clip_coef: float, whiten: bool | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's total loss on a minibatch: clipped policy loss - ent_coef * entropy + vf_coef * value loss.

    ``whiten`` (default: ``config.normalize_advantages``) normalises the minibatch's advantages;
    the training loop passes False when it has already whitened a single-minibatch batch once.
    The entropy enters the loss (and ``stats``) only when ``config.ent_coef > 0``.
    """
    whiten = config.normalize_advantages if whiten is None else whiten
    advantages = masked_whiten(mb.advantages) if whiten else mb.advantages
    if config.ent_coef:
        logp, entropy = actor.log_prob_entropy(mb.obs, mb.actions)
    else:
        logp = actor.log_prob(mb.obs, mb.actions)
    policy_loss, stats = ppo_policy_loss(logp, mb.log_probs, advantages, clip_coef)
    value_loss = ppo_value_loss(critic(mb.obs), mb.values, mb.returns, config.clip_coef_vf)
    loss = policy_loss + config.vf_coef * value_loss
    if config.ent_coef:
        entropy = entropy.mean()
        loss = loss - config.ent_coef * entropy
        stats["entropy"] = entropy.detach()
    stats.update(policy_loss=policy_loss.detach(), value_loss=value_loss.detach())
    return loss, stats


def train(
    env: EnvLike,
    config: PPOConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: Callback | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train a PPO agent.

    Args:
        env: an env id (``"CartPole-v1"``), a factory returning a gymnasium ``Env``, a
            single ``Env`` or a gymnasium 1.x ``VectorEnv`` (``NEXT_STEP`` autoreset).
            ``Discrete`` actions get a categorical policy, ``Box`` actions a Gaussian one.
        config: hyperparameters; ``PPOConfig()`` when None.
        seed: seeds torch, numpy, python and the environments.
        progress: show a progress bar.
        callback: called after every update with a dict (``update``, ``env_steps``,
            ``actor``, ``critic``, ``stats``); returning True stops training.
        num_threads: torch threads while training (1 is fastest for these small networks;
            None leaves torch's setting alone). The previous setting is restored afterwards.

    Returns:
        A :class:`TrainResult`; ``history`` holds per-episode ``episode_returns``,
        ``episode_lengths``, ``episode_steps`` and per-update ``update_steps``,
        ``learning_rate``, ``clip_coef``, ``policy_loss``, ``value_loss``, ``entropy``,
        ``approx_kl``, ``clip_frac``, ``explained_variance``, ``epochs``.

    Raises:
        FloatingPointError: a loss became NaN or inf (checked once per update, after its epochs; the message
            names the quantity and the update).
    """
    with torch_threads(num_threads):
        return _train(env, config or PPOConfig(), seed, progress, callback)


def _train(env: EnvLike, config: PPOConfig, seed: int, progress: bool, callback: Callback | None) -> TrainResult:
    keys = ("learning_rate", "clip_coef", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac",
            "explained_variance", "epochs")
    with OnPolicyLoop(env, config, seed, keys, progress, "PPO", callback) as loop:
        actor, critic = loop.actor, loop.critic
        optimizer = make_adam(loop.params, config.learning_rate, config.adam_eps)
        if loop.batch_size % config.minibatch_size:
            raise ValueError(f"the vector env's batch of {loop.envs.num_envs} * {config.n_steps} = {loop.batch_size} "
                             f"transitions does not divide into minibatches of {config.minibatch_size}")
        n_minibatches = loop.batch_size // config.minibatch_size
        for update in range(1, loop.n_updates + 1):
            remaining = 1.0 - (update - 1) / loop.n_updates
            lr = config.learning_rate * (remaining if config.anneal_lr else 1.0)
            clip = config.clip_coef * (remaining if config.anneal_clip else 1.0)
            for group in optimizer.param_groups:
                group["lr"] = lr

            batch = loop.next_batch(update)
            whiten = config.normalize_advantages
            if whiten and n_minibatches == 1:  # the one minibatch is the batch: whiten once, not every epoch
                batch.advantages = masked_whiten(batch.advantages)
                whiten = False

            epoch_stats = []
            for epoch in range(config.update_epochs):
                if n_minibatches == 1:
                    minibatches = [batch]
                else:
                    order = torch.randperm(len(batch))
                    minibatches = [batch[index] for index in torch.tensor_split(order, n_minibatches)]
                for mb in minibatches:
                    loss, stats = ppo_loss(actor, critic, mb, config, clip, whiten=whiten)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(loop.params, config.max_grad_norm)
                    optimizer.step()
                    epoch_stats.append(stats)
                if config.target_kl is not None and stats["approx_kl"] > config.target_kl:
                    break

            means = {k: torch.stack([s[k] for s in epoch_stats]).mean().item() for k in epoch_stats[0]}
            for name in ("policy_loss", "value_loss", "entropy"):  # one check per update, not per minibatch
                if name in means:
                    check_finite(f"PPO {name.replace('_', ' ')}", means[name], update)
            if "entropy" not in means:  # no entropy bonus: measure the updated policy's entropy once
                with torch.no_grad():
                    means["entropy"] = actor.log_prob_entropy(batch.obs, batch.actions)[1].mean().item()
            row = dict(
                learning_rate=lr, clip_coef=clip, policy_loss=means["policy_loss"], value_loss=means["value_loss"],
                entropy=means["entropy"], approx_kl=means["approx_kl"], clip_frac=means["clip_frac"],
                explained_variance=explained_variance(batch.values, batch.returns), epochs=epoch + 1,
            )
            if loop.record(update, row):
                break
    return loop.result(int_keys=("epochs",))
