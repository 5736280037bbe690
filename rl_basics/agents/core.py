"""The pieces every policy-gradient agent of the course shares.

One implementation of the PPO/A2C math serves the classic-control agents
(``reinforce``, ``a2c``, ``ppo``) and the language-model PPO trainer in ``rlhf``.
Tensors are laid out time-first, ``(T, N)`` (CleanRL's layout); language-model code
passes its ``(B, T)`` tensors transposed.

Math
    :func:`compute_gae`, :func:`masked_mean`, :func:`masked_whiten`,
    :func:`explained_variance`, :func:`ppo_policy_loss`, :func:`ppo_value_loss`
Networks
    :func:`layer_init`, :func:`make_actor` (:class:`Actor`), :func:`make_critic` (:class:`Critic`)
Environments
    :func:`as_vector_env`, :class:`RolloutCollector` (gymnasium 1.x vector envs with
    ``NEXT_STEP`` autoreset: the step after an episode end is marked invalid),
    :func:`make_batch` (GAE, then only the real transitions), :class:`OnPolicyLoop` (the
    plumbing A2C and PPO share: env, networks, rollouts, history, progress bar, callback),
    :func:`evaluate`
Bookkeeping
    :class:`TrainResult`, :func:`check_finite`, :func:`set_seed`, :func:`torch_threads`,
    :func:`progress_bar`, :func:`make_adam`, :func:`save_checkpoint`, :func:`load_checkpoint`,
    :func:`load_actor`
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

# --------------------------------------------------------------------------- math


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    episode_end: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), time on axis 0.

    All inputs have the same shape ``(T, N)`` (or ``(T,)``)::

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * (1 - episode_end_t) * A_{t+1},   A_T = 0
        returns = A + values

    Args:
        rewards: ``r_t``, the reward of the transition taken at step ``t``.
        values: ``V(s_t)``.
        next_values: ``V(s_{t+1})``; on a truncated step the caller passes V of the
            final observation, so the time limit does not look like a terminal state.
        terminated: 1 where ``s_{t+1}`` is a true terminal state (no bootstrap).
        episode_end: 1 where the episode ends at ``t`` (terminated or truncated, or the
            last real token): the lambda-recursion does not reach across it.
        gamma: discount factor in ``[0, 1]``.
        lam: GAE lambda in ``[0, 1]``: 0 gives the one-step TD error, 1 the Monte-Carlo
            return minus ``V`` (bootstrapped at the end of the rollout).

    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``. Steps that are not real
        transitions (an autoreset step, padding) get numbers too; the caller masks them
        out of the losses. Because the episode end before such a step cuts the
        recursion, they never leak into the advantages of real steps.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    shapes = {t.shape for t in (rewards, values, next_values, terminated, episode_end)}
    if len(shapes) != 1:
        raise ValueError(
            "compute_gae needs rewards, values, next_values, terminated and episode_end of one shape, got "
            f"{[tuple(t.shape) for t in (rewards, values, next_values, terminated, episode_end)]}"
        )
    dtype = values.dtype
    not_terminated = 1.0 - terminated.to(dtype)
    not_end = 1.0 - episode_end.to(dtype)
    deltas = rewards.to(dtype) + gamma * not_terminated * next_values - values
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_end[t] * running
        advantages[t] = running
    return advantages, advantages + values


def masked_mean(x: Tensor, mask: Tensor | None = None, dim: int | Sequence[int] | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (all entries when ``mask`` is None).

    ``dim`` as in ``Tensor.mean``; ``None`` averages everything. An all-zero mask gives 0.
    """
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1.0)
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim).clamp_min(1.0)


def masked_var(x: Tensor, mask: Tensor | None = None, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over the valid entries (Bessel-corrected when ``unbiased`` and more than one)."""
    if mask is None:
        if x.numel() < 2:
            return torch.zeros((), dtype=x.dtype, device=x.device)
        return torch.var(x, correction=1 if unbiased else 0)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        var = torch.where(n > 1, var * n / (n - 1).clamp_min(1.0), var)
    return var


def masked_whiten(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise ``x`` to unit variance (and zero mean when ``shift_mean``) using valid entries only.

    This is PPO's advantage normalisation. Invalid entries (``mask == 0``) are set to 0,
    so they cannot contribute even if a caller forgets to mask them later.
    """
    if mask is None and x.numel() > 1:
        var, mean = torch.var_mean(x)
    else:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    if mask is not None:
        whitened = whitened * mask.to(x.dtype)
    return whitened


def explained_variance(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """``1 - Var(target - pred) / Var(target)`` over valid entries: 1 is a perfect critic,
    0 no better than predicting the mean, negative worse. NaN when ``target`` is constant."""
    pred, target = pred.detach(), target.detach()
    var_target = masked_var(target, mask).item()
    if var_target == 0.0:
        return float("nan")
    return 1.0 - masked_var(target - pred, mask).item() / var_target


def ppo_policy_loss(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    clip_coef: float,
    mask: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate objective, as a loss to minimise.

    ``loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))`` with
    ``ratio = exp(logp_new - logp_old)``, averaged over the valid entries of ``mask``. Where the two
    terms are equal (every ratio inside ``[1 - eps, 1 + eps]``, including its edges) the gradient is
    the unclipped term's, ``-A * ratio * d log pi``: the objective's one-sided derivative from inside
    the trust region, the same on every torch release.

    Returns:
        ``(loss, stats)``; ``stats`` holds detached 0-dim tensors: ``approx_kl`` (the k3
        estimator ``mean((ratio - 1) - log ratio)`` of KL(old || new)), ``clip_frac``
        (the fraction of entries with ``|ratio - 1| > eps``) and ``ratio_mean``.
    """
    if clip_coef <= 0:
        raise ValueError(f"clip_coef must be > 0, got {clip_coef}")
    log_ratio = logp_new - logp_old
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    # At a tie (inside the clip range, or exactly on its edge) take the unclipped term, so the gradient
    # is the policy gradient there on every torch: torch.maximum splits a tie's gradient in half, and
    # torch.clamp's gradient exactly on a bound is 1 on some releases and 0 on others.
    loss = masked_mean(torch.where(unclipped >= clipped, unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "clip_frac": masked_mean(((ratio - 1.0).abs() > clip_coef).to(ratio.dtype), mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def ppo_value_loss(
    values_new: Tensor,
    values_old: Tensor,
    returns: Tensor,
    clip_coef: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Half the mean squared error of the value prediction, optionally clipped around the old value.

    ``0.5 * mean(max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2))``; without
    clipping (``clip_coef=None``) simply ``0.5 * mean((v - R)^2)``.
    """
    unclipped = (values_new - returns) ** 2
    if clip_coef is None:
        return 0.5 * masked_mean(unclipped, mask)
    if clip_coef <= 0:
        raise ValueError(f"value clip_coef must be > 0 or None, got {clip_coef}")
    v_clipped = values_old + torch.clamp(values_new - values_old, -clip_coef, clip_coef)
    clipped = (v_clipped - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)


def check_finite(name: str, value: Any, step: int) -> None:
    """Raise ``FloatingPointError`` naming ``name`` and the update ``step`` if ``value`` has a NaN or inf."""
    array = value.detach().cpu().double().numpy() if isinstance(value, Tensor) else np.asarray(value, dtype=float)
    bad = ~np.isfinite(array)
    if bad.any():
        shown = f"{array.item()}" if array.size == 1 else f"{int(bad.sum())} of {array.size} entries NaN or inf"
        raise FloatingPointError(
            f"{name} is not finite ({shown}) at update {step}; training stopped. "
            "Common causes: a learning rate too high, unnormalised rewards or observations, "
            "or a log-probability of an impossible action."
        )


# --------------------------------------------------------------------------- networks


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights with gain ``std`` and a constant bias (the PPO initialisation)."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def mlp(in_dim: int, hidden_sizes: Sequence[int], out_dim: int, out_std: float) -> nn.Sequential:
    """The agents' network: ``[B, in_dim] -> [B, out_dim]`` through tanh hidden layers, orthogonally
    initialised (:func:`layer_init`), the output layer with gain ``out_std`` (0.01 for a policy's logits,
    1 for values)."""
    layers: list[nn.Module] = []
    last = in_dim
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(last, size)), nn.Tanh()]
        last = size
    layers.append(layer_init(nn.Linear(last, out_dim), std=out_std))
    return nn.Sequential(*layers)


class ObservationEncoder(nn.Module):
    """Turns a batch of observations into float features.

    ``Box``: flattened to ``[B, prod(shape)]``. ``Discrete``: one-hot ``[B, n]`` (the
    observations are ``[B]`` integers). Any other space raises ``TypeError``.
    """

    def __init__(self, observation_space: gym.Space):
        super().__init__()
        if isinstance(observation_space, spaces.Box):
            self.discrete = False
            self.obs_shape = tuple(observation_space.shape)
            self.out_dim = int(np.prod(observation_space.shape))
        elif isinstance(observation_space, spaces.Discrete):
            self.discrete = True
            self.obs_shape = ()
            self.out_dim = int(observation_space.n)
            self.start = int(observation_space.start)
        else:
            raise TypeError(
                f"unsupported observation space {observation_space!r} ({type(observation_space).__name__}): "
                "the course's agents take Box or Discrete observations (flatten or wrap others first)"
            )

    def is_batched(self, obs: Tensor) -> bool:
        return obs.dim() > len(self.obs_shape)

    def forward(self, obs: Tensor) -> Tensor:
        if self.discrete:
            index = obs.reshape(-1).long() - self.start
            return nn.functional.one_hot(index, self.out_dim).float()
        return obs.reshape(obs.shape[0], -1).float()


class Actor(nn.Module):
    """A stochastic policy: an MLP from observation features to a distribution over actions.

    ``Discrete(n)`` actions: a categorical over ``n`` logits. ``Box`` actions: a diagonal
    Gaussian whose mean is the MLP's output and whose log-std is a learned,
    state-independent vector (log-prob and entropy summed over action dimensions).
    Sampled Gaussian actions are not squashed; :meth:`to_env_action` clips them to the
    space's bounds before they reach the environment.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64)):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = ObservationEncoder(observation_space)
        if isinstance(action_space, spaces.Discrete):
            self.continuous = False
            out_dim = int(action_space.n)
            self.action_start = int(action_space.start)
        elif isinstance(action_space, spaces.Box):
            self.continuous = True
            out_dim = int(np.prod(action_space.shape))
            self.log_std = nn.Parameter(torch.zeros(out_dim))
            self.register_buffer("action_low", torch.as_tensor(action_space.low, dtype=torch.float32).reshape(-1))
            self.register_buffer("action_high", torch.as_tensor(action_space.high, dtype=torch.float32).reshape(-1))
        else:
            raise TypeError(
                f"unsupported action space {action_space!r} ({type(action_space).__name__}): "
                "the course's agents support Discrete (categorical policy) and Box (Gaussian policy) action spaces"
            )
        self.net = mlp(self.encoder.out_dim, hidden_sizes, out_dim, out_std=0.01)

    def distribution(self, obs: Tensor) -> Distribution:
        """The policy at a batch of observations ``[B, *obs_shape]``; ``log_prob`` and ``entropy`` are ``[B]``."""
        out = self.net(self.encoder(obs))
        if not self.continuous:
            return Categorical(logits=out, validate_args=False)
        std = self.log_std.exp().expand_as(out)
        return Independent(Normal(out, std, validate_args=False), 1, validate_args=False)

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Sample actions and their log-probabilities: ``distribution(obs)``'s ``sample`` and
        ``log_prob`` in a few tensor operations (the rollout's hot path)."""
        out = self.net(self.encoder(obs))
        if not self.continuous:
            logp_all = torch.log_softmax(out, dim=-1)
            gumbel = -torch.log(-torch.log(torch.rand_like(logp_all)))  # Gumbel-max trick: argmax is a sample
            action = (logp_all + gumbel).argmax(dim=-1)
            return action, logp_all.gather(-1, action.unsqueeze(-1)).squeeze(-1)
        std = self.log_std.exp()
        noise = torch.randn_like(out)
        action = out + std * noise
        return action, (-0.5 * noise.pow(2) - self.log_std - _HALF_LOG_2PI).sum(-1)

    def log_prob(self, obs: Tensor, actions: Tensor) -> Tensor:
        """``distribution(obs).log_prob(actions)``, ``[B]``, computed directly."""
        out = self.net(self.encoder(obs))
        if not self.continuous:
            return torch.log_softmax(out, dim=-1).gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
        z = (actions - out) * torch.exp(-self.log_std)
        return (-0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI).sum(-1)

    def log_prob_entropy(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
        """``(log_prob(actions), entropy())`` of ``distribution(obs)``, both ``[B]``, computed directly
        (the same numbers; fewer operations in the training loop)."""
        out = self.net(self.encoder(obs))
        if not self.continuous:
            logp_all = torch.log_softmax(out, dim=-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            return logp_all.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy
        z = (actions - out) * torch.exp(-self.log_std)
        log_prob = (-0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI).sum(-1)
        entropy = (0.5 + _HALF_LOG_2PI + self.log_std).sum().expand(out.shape[0])
        return log_prob, entropy

    def greedy_action(self, obs: Tensor) -> Tensor:
        """The most likely action (argmax for categorical, the mean for Gaussian), in policy units."""
        out = self.net(self.encoder(obs))
        return out.argmax(dim=-1) if not self.continuous else out

    def to_env_action(self, action: Tensor) -> np.ndarray:
        """Policy actions ``[B]`` / ``[B, action_dim]`` -> a numpy batch the vector env accepts
        (Gaussian samples clipped to the Box bounds, ``Discrete.start`` added)."""
        action = action.detach()
        if not self.continuous:
            return (action + self.action_start if self.action_start else action).cpu().numpy()
        action = torch.clamp(action, self.action_low, self.action_high)
        shape = (action.shape[0], *self.action_space.shape)
        return action.cpu().numpy().reshape(shape).astype(self.action_space.dtype, copy=False)

    @torch.no_grad()
    def act(self, obs: Tensor | np.ndarray, greedy: bool = False) -> Tensor:
        """Environment-ready actions for ``obs`` (batched ``[B, ...]`` or a single observation).

        ``greedy`` takes the most likely action instead of sampling. Box actions are
        clipped to the action space's bounds.
        """
        device = next(self.parameters()).device
        obs = torch.as_tensor(np.asarray(obs) if not isinstance(obs, Tensor) else obs, device=device)
        single = not self.encoder.is_batched(obs)
        if single:
            obs = obs.unsqueeze(0)
        action = self.greedy_action(obs) if greedy else self.distribution(obs).sample()
        env_action = torch.as_tensor(self.to_env_action(action))
        return env_action[0] if single else env_action


class Critic(nn.Module):
    """A state-value function: an MLP from observation features to ``V(s)`` of shape ``[B]``."""

    def __init__(self, observation_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64)):
        super().__init__()
        self.encoder = ObservationEncoder(observation_space)
        self.net = mlp(self.encoder.out_dim, hidden_sizes, 1, out_std=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(self.encoder(obs)).squeeze(-1)


def make_actor(observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64)) -> Actor:
    """A tanh MLP policy with orthogonal init (hidden gain sqrt(2), output gain 0.01).

    Raises ``TypeError`` naming the space for action spaces other than ``Discrete`` and
    ``Box`` (e.g. ``MultiBinary``) and observation spaces other than ``Box`` and ``Discrete``.
    """
    return Actor(observation_space, action_space, tuple(hidden_sizes))


def make_critic(observation_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64)) -> Critic:
    """A tanh MLP state-value network with orthogonal init (output gain 1) returning ``[B]``."""
    return Critic(observation_space, tuple(hidden_sizes))


# --------------------------------------------------------------------------- environments

EnvLike = Any  # an env id, an EnvSpec, a factory returning an Env, a gymnasium Env or VectorEnv


def as_vector_env(env: EnvLike, num_envs: int) -> tuple[gym.vector.VectorEnv, bool]:
    """A gymnasium vector env for ``env``; returns ``(vector_env, created)``.

    - an env id or ``EnvSpec``: ``gym.make_vec(env, num_envs)`` (CartPole's fast native
      vector env where gymnasium has one, otherwise a ``SyncVectorEnv``);
    - a factory (a callable returning an ``Env``): a ``SyncVectorEnv`` of ``num_envs`` of them;
    - a ``VectorEnv``: used as it is (its own number of sub-envs wins);
    - a single ``Env``: ``num_envs`` copies re-made from its spec (a warning says so), or
      the env itself when ``num_envs == 1``.

    ``created`` is True when this function made the env (the caller should close it).
    """
    if isinstance(env, gym.vector.VectorEnv):
        return env, False
    if isinstance(env, (str, gym.envs.registration.EnvSpec)):
        return gym.make_vec(env, num_envs=num_envs), True
    if isinstance(env, gym.Env):
        if num_envs == 1:
            return gym.vector.SyncVectorEnv([lambda: env]), True
        if env.spec is None:
            raise ValueError(
                f"cannot make {num_envs} copies of {env!r}: it has no spec; pass an env id, a factory "
                "(a function returning a new env) or a gymnasium VectorEnv"
            )
        warnings.warn(f"making {num_envs} new copies of {env.spec.id} from its spec for the vector env", stacklevel=3)
        spec = env.spec
        return gym.vector.SyncVectorEnv([lambda: gym.make(spec) for _ in range(num_envs)]), True
    if callable(env):
        return gym.vector.SyncVectorEnv([env for _ in range(num_envs)]), True
    raise TypeError(f"expected an env id, EnvSpec, env factory, Env or VectorEnv, got {type(env).__name__}")


def check_autoreset_mode(envs: gym.vector.VectorEnv) -> None:
    """Accept only gymnasium's default ``NEXT_STEP`` autoreset (a missing entry counts as it)."""
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if isinstance(mode, str):
        mode = gym.vector.AutoresetMode(mode)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        raise ValueError(
            f"unsupported autoreset mode {mode!r}: the rollout expects gymnasium's default AutoresetMode.NEXT_STEP "
            "(make the vector env with autoreset_mode=gymnasium.vector.AutoresetMode.NEXT_STEP)"
        )


@dataclass
class Rollout:
    """``T`` steps of ``N`` sub-environments, time on axis 0.

    ``valid[t, i]`` is False for gymnasium's ``NEXT_STEP`` autoreset step (the step after
    an episode of sub-env ``i`` ended: it ignores the action, returns the reset observation
    and reward 0): it is not a real transition and must stay out of the losses.
    ``next_values[t]`` is ``V(obs[t+1])``; on the step that ends an episode ``obs[t+1]`` is
    the final observation, which is what truncation bootstraps from.
    """

    obs: Tensor  # (T, N, *obs_shape) observations the actions were taken in
    actions: Tensor  # (T, N) or (T, N, action_dim), in policy units (unclipped)
    log_probs: Tensor  # (T, N) log pi(a|s) under the rollout policy
    rewards: Tensor  # (T, N)
    terminated: Tensor  # (T, N) 1.0 where a true terminal state was reached
    truncated: Tensor  # (T, N) 1.0 where the episode was cut (time limit)
    valid: Tensor  # (T, N) 1.0 for real transitions, 0.0 for autoreset steps
    values: Tensor | None = None  # (T, N) V(obs_t), when a critic was given
    next_values: Tensor | None = None  # (T, N) V(obs_{t+1})
    last_obs: Tensor | None = None  # (N, *obs_shape) obs[T], the observation after the last step

    @property
    def episode_end(self) -> Tensor:
        return torch.clamp(self.terminated + self.truncated, max=1.0)


class RolloutCollector:
    """Collects fixed-length rollouts from a gymnasium 1.x vector env with ``NEXT_STEP`` autoreset.

    It remembers where each sub-env stands between calls, marks autoreset steps invalid,
    counts environment steps (every sub-env step, autoreset steps included) and records
    each finished episode's return, length and the global step at which it ended.
    """

    def __init__(self, envs: gym.vector.VectorEnv, seed: int | None = None):
        check_autoreset_mode(envs)
        self.envs = envs
        self.num_envs = envs.num_envs
        obs, _ = envs.reset(seed=seed)
        self._obs = torch.as_tensor(obs)
        self._next_is_reset = np.zeros(self.num_envs, dtype=bool)
        self._ep_return = np.zeros(self.num_envs)
        self._ep_length = np.zeros(self.num_envs, dtype=np.int64)
        self.env_steps = 0
        self.episode_returns: list[float] = []
        self.episode_lengths: list[int] = []
        self.episode_steps: list[int] = []

    @torch.no_grad()
    def collect(self, actor: Actor, n_steps: int, critic: nn.Module | None = None) -> Rollout:
        """Step every sub-env ``n_steps`` times with actions sampled from ``actor``."""
        n = self.num_envs
        observations, actions, log_probs = [], [], []
        rewards = np.zeros((n_steps, n), dtype=np.float32)
        terminated = np.zeros((n_steps, n), dtype=np.float32)
        truncated = np.zeros((n_steps, n), dtype=np.float32)
        valid = np.zeros((n_steps, n), dtype=np.float32)
        for t in range(n_steps):
            observations.append(self._obs)
            action, log_prob = actor.sample(self._obs)
            actions.append(action)
            log_probs.append(log_prob)
            next_obs, reward, term, trunc, _ = self.envs.step(actor.to_env_action(action))
            real = ~self._next_is_reset
            valid[t] = real
            rewards[t] = reward
            terminated[t] = term
            truncated[t] = trunc
            self.env_steps += n
            self._ep_return += reward * real
            self._ep_length += real
            done = np.logical_or(term, trunc)
            for i in np.flatnonzero(done & real):
                self.episode_returns.append(float(self._ep_return[i]))
                self.episode_lengths.append(int(self._ep_length[i]))
                self.episode_steps.append(self.env_steps)
                self._ep_return[i] = 0.0
                self._ep_length[i] = 0
            self._next_is_reset = done
            self._obs = torch.from_numpy(next_obs.copy())  # a copy: some vector envs reuse their observation buffer
        observations.append(self._obs)
        obs = torch.stack(observations)
        rollout = Rollout(
            obs=obs[:-1],
            actions=torch.stack(actions),
            log_probs=torch.stack(log_probs),
            rewards=torch.from_numpy(rewards),
            terminated=torch.from_numpy(terminated),
            truncated=torch.from_numpy(truncated),
            valid=torch.from_numpy(valid),
            last_obs=obs[-1],
        )
        if critic is not None:
            flat = obs.reshape((n_steps + 1) * n, *obs.shape[2:])
            all_values = critic(flat).reshape(n_steps + 1, n)
            rollout.values, rollout.next_values = all_values[:-1], all_values[1:]
        return rollout


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


def make_batch(rollout: Rollout, gamma: float, gae_lambda: float) -> Batch:
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


class OnPolicyLoop:
    """The plumbing A2C and PPO share around their update rule.

    It builds the vector env (see :func:`as_vector_env`), seeds everything, makes the actor
    and the (separate) critic, and keeps a :class:`RolloutCollector`. Each update the agent
    asks :meth:`next_batch` for GAE-processed real transitions, applies its own loss, and
    hands its diagnostics to :meth:`record` (history, progress bar, callback).
    :meth:`result` collects the history. Use it as a context manager: the progress bar and
    an env it made are closed on the way out, also after an error.

    ``config`` is the agent's config: it reads ``total_timesteps``, ``num_envs``,
    ``n_steps``, ``hidden_sizes``, ``gamma``, ``gae_lambda`` and ``reward_scale``.
    ``keys`` names the per-update diagnostics the agent records (``update_steps``, the global
    env step of each update, is always recorded first).
    """

    def __init__(
        self,
        env: EnvLike,
        config: Any,
        seed: int,
        keys: Sequence[str],
        progress: bool = True,
        desc: str | None = None,
        callback: Callable[[dict[str, Any]], bool | None] | None = None,
    ):
        self.envs, self.created = as_vector_env(env, config.num_envs)
        set_seed(seed)
        self.actor = make_actor(self.envs.single_observation_space, self.envs.single_action_space, config.hidden_sizes)
        self.critic = make_critic(self.envs.single_observation_space, config.hidden_sizes)
        self.params = [*self.actor.parameters(), *self.critic.parameters()]
        self.collector = RolloutCollector(self.envs, seed=seed)
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
        are finite, scale them by ``config.reward_scale`` and return :func:`make_batch`'s batch."""
        rollout = self.collector.collect(self.actor, self.config.n_steps, self.critic)
        check_finite("the environment's reward", rollout.rewards, update)
        if self.config.reward_scale != 1.0:
            rollout.rewards.mul_(self.config.reward_scale)
        return make_batch(rollout, self.config.gamma, self.config.gae_lambda)

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


def make_adam(params: list[nn.Parameter], lr: float, eps: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch build supports it (much less per-step overhead on CPU)."""
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=eps)


def evaluate(
    actor: Any,
    env_id_or_factory: EnvLike,
    n_episodes: int = 20,
    greedy: bool = True,
    seed: int = 0,
    max_steps: int = 100_000,
    num_threads: int | None = 1,
) -> tuple[float, float]:
    """Mean and standard deviation of the return of ``actor`` over ``n_episodes`` episodes.

    The episodes run side by side in a vector env of ``n_episodes`` sub-envs seeded
    ``seed, seed + 1, ...``; each sub-env contributes its first episode. ``greedy`` takes
    the most likely action, otherwise actions are sampled (with a torch RNG seeded by
    ``seed`` and restored afterwards, so evaluating does not disturb training's randomness).
    ``actor`` is anything with ``act(obs_batch, greedy) -> actions``. Episodes still running
    after ``max_steps`` steps (an env without a time limit) count with their return so far.
    ``num_threads``: torch threads while evaluating (see :func:`torch_threads`).
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes}")
    envs, created = as_vector_env(env_id_or_factory, n_episodes)
    if envs.num_envs != n_episodes:
        raise ValueError(f"evaluate needs a vector env of n_episodes={n_episodes} sub-envs, got {envs.num_envs}")
    try:
        obs, _ = envs.reset(seed=seed)
        returns = np.zeros(n_episodes)
        done = np.zeros(n_episodes, dtype=bool)
        with torch.random.fork_rng(devices=[]), torch.no_grad(), torch_threads(num_threads):
            torch.manual_seed(seed)
            for _ in range(max_steps):
                action = np.asarray(actor.act(torch.as_tensor(obs), greedy=greedy))
                obs, reward, term, trunc, _ = envs.step(action)
                returns += np.where(done, 0.0, reward)
                done |= np.logical_or(term, trunc)
                if done.all():
                    break
    finally:
        if created:
            envs.close()
    return float(returns.mean()), float(returns.std())


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class TrainResult:
    """What an agent's ``train`` returns.

    ``history`` maps names to numpy arrays: per episode ``episode_returns``,
    ``episode_lengths`` and ``episode_steps`` (the global env step at which the episode
    ended), and per update the agent's diagnostics (``update_steps`` holds the global
    env step of each update; loss terms, entropy, approx-KL, ...).
    """

    actor: Actor
    history: dict[str, np.ndarray]
    critic: nn.Module | None = None
    config: Any = None
    seed: int | None = None

    def save(self, path: str | os.PathLike) -> Path:
        """Save the networks, config, seed and history (see :func:`save_checkpoint`)."""
        return save_checkpoint(
            path,
            actor=self.actor,
            critic=self.critic,
            config=self.config,
            seed=self.seed,
            history=self.history,
        )


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the body with ``n`` torch intra-op threads (``None``: leave torch's setting alone).

    The course's networks are tiny: with more than one thread each operation costs more
    in synchronisation than it saves, and on a busy machine far more. Training and
    evaluation therefore run single-threaded by default; the previous setting is restored.
    """
    previous = torch.get_num_threads()
    if n is not None and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None and n != previous:
            torch.set_num_threads(previous)


def set_seed(seed: int) -> None:
    """Seed python's, numpy's and torch's global random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(total: int, enabled: bool = True, desc: str | None = None):
    """A tqdm progress bar (``tqdm.auto``: a widget in notebooks, text in a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True, leave=False)


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }


def _restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def _saveable(value: Any) -> Any:
    """Convert to what ``torch.load(weights_only=True)`` can read back."""
    if isinstance(value, (nn.Module, torch.optim.Optimizer)):
        return value.state_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _saveable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _saveable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_saveable(v) for v in value)
    return value


def save_checkpoint(path: str | os.PathLike, **state: Any) -> Path:
    """Save ``state`` (modules and optimizers as state dicts, dataclasses as dicts, numpy
    arrays as tensors) plus the python/numpy/torch RNG states under ``"rng"``.

    The file is written to a temporary file in the same directory and atomically renamed
    over ``path``: an interrupted save never leaves a broken or half-written checkpoint,
    and the previous checkpoint at ``path`` stays intact until the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {key: _saveable(value) for key, value in state.items()}
    payload["rng"] = _rng_state()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, restore_rng: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (safely: ``weights_only=True``).

    With ``restore_rng`` the python, numpy and torch RNGs continue from where they were
    when it was saved.
    """
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if restore_rng and "rng" in state:
        _restore_rng_state(state["rng"])
    return state


def load_actor(path: str | os.PathLike, observation_space: gym.Space, action_space: gym.Space) -> Actor:
    """Rebuild the trained policy saved by ``TrainResult.save`` for the given spaces."""
    state = load_checkpoint(path)
    hidden_sizes = (state.get("config") or {}).get("hidden_sizes", (64, 64))
    actor = make_actor(observation_space, action_space, hidden_sizes)
    actor.load_state_dict(state["actor"])
    return actor


def history_arrays(history: dict[str, list], dtypes: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Lists of numbers -> numpy arrays (float64 unless ``dtypes`` says otherwise)."""
    dtypes = dtypes or {}
    return {key: np.asarray(values, dtype=dtypes.get(key, np.float64)) for key, values in history.items()}


__all__ = [
    "Actor",
    "Batch",
    "Critic",
    "ObservationEncoder",
    "OnPolicyLoop",
    "Rollout",
    "RolloutCollector",
    "TrainResult",
    "as_vector_env",
    "check_autoreset_mode",
    "check_finite",
    "compute_gae",
    "evaluate",
    "explained_variance",
    "history_arrays",
    "layer_init",
    "load_actor",
    "load_checkpoint",
    "make_actor",
    "make_adam",
    "make_batch",
    "make_critic",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "mlp",
    "ppo_policy_loss",
    "ppo_value_loss",
    "progress_bar",
    "save_checkpoint",
    "set_seed",
    "torch_threads",
]
