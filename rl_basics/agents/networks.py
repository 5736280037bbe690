"""The agents' networks: tanh MLPs with orthogonal initialisation, a policy and a value function.

- :func:`layer_init`, :func:`mlp`: the building blocks (PPO's initialisation: hidden gain
  sqrt(2), output gain 0.01 for a policy's logits, 1 for values)
- :class:`RunningMeanStd`: running mean and variance of a stream of batches (observation and reward
  normalisation)
- :class:`ObservationEncoder`: ``Box`` observations flattened (and optionally standardised with running
  statistics), ``Discrete`` ones one-hot
- :class:`Actor` (:func:`make_actor`): a categorical policy for ``Discrete`` actions, a
  diagonal Gaussian for ``Box`` actions
- :class:`Critic` (:func:`make_critic`): a state-value function ``V(s)``
- :func:`load_actor`: the policy saved by ``TrainResult.save``, rebuilt
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from rl_basics.agents.checkpoints import load_checkpoint


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


class RunningMeanStd(nn.Module):
    """The running mean and (population) variance of a stream of batches ``[B, *shape]``, as float64 buffers
    (saved with the module that holds it).

    Before any data it is mean 0, variance 1 with a prior count of 1e-4 (Stable-Baselines3's). :meth:`update`
    folds in a whole batch with the parallel algorithm of Chan et al., so the result equals the statistics of
    every batch so far, pooled, whatever the batch sizes.
    """

    def __init__(self, shape: tuple[int, ...] = ()):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold in a batch ``[B, *shape]`` (``B >= 1``)."""
        x = x.to(torch.float64)
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = mean - self.mean
        self.var.copy_((self.var * self.count + var * n + delta.pow(2) * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)


OBS_CLIP = 10.0
"""Standardised observations are clipped to [-OBS_CLIP, OBS_CLIP] (as Stable-Baselines3's VecNormalize does)."""


class ObservationEncoder(nn.Module):
    """Turns a batch of observations into float features.

    ``Box``: flattened to ``[B, prod(shape)]``. ``Discrete``: one-hot ``[B, n]`` (the
    observations are ``[B]`` integers). Any other space raises ``TypeError``.

    ``normalize`` (``Box`` only) standardises each feature with a running mean and variance,
    ``clip((x - mean) / sqrt(var + 1e-8), -10, 10)``, kept as buffers (saved with the network, used
    unchanged at evaluation) and moved only by :meth:`update_statistics`; before any update the
    statistics are mean 0, variance 1, so the features are the raw observations.
    """

    def __init__(self, observation_space: gym.Space, normalize: bool = False):
        super().__init__()
        self.normalize = normalize
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
        if normalize:
            if self.discrete:
                raise ValueError("observation normalisation applies to Box observations; Discrete ones are "
                                 "one-hot encoded already (set normalize_obs=False)")
            self.stats = RunningMeanStd((self.out_dim,))

    def is_batched(self, obs: Tensor) -> bool:
        return obs.dim() > len(self.obs_shape)

    def update_statistics(self, obs: Tensor) -> None:
        """Fold a batch of observations ``[B, *obs_shape]`` into the running statistics (:class:`RunningMeanStd`)."""
        self.stats.update(obs.reshape(obs.shape[0], -1))

    def forward(self, obs: Tensor) -> Tensor:
        if self.discrete:
            index = obs.reshape(-1).long() - self.start
            return nn.functional.one_hot(index, self.out_dim).float()
        x = obs.reshape(obs.shape[0], -1).float()
        if self.normalize:
            x = ((x - self.stats.mean.float()) * torch.rsqrt(self.stats.var.float() + 1e-8)).clamp(-OBS_CLIP, OBS_CLIP)
        return x


class Actor(nn.Module):
    """A stochastic policy: an MLP from observation features to a distribution over actions.

    ``Discrete(n)`` actions: a categorical over ``n`` logits. ``Box`` actions: a diagonal
    Gaussian whose mean is the MLP's output and whose log-std is a learned,
    state-independent vector (log-prob and entropy summed over action dimensions).
    Sampled Gaussian actions are not squashed; :meth:`to_env_action` clips them to the
    space's bounds before they reach the environment.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64),
                 normalize_obs: bool = False):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.encoder = ObservationEncoder(observation_space, normalize_obs)
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

    def __init__(self, observation_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64), normalize_obs: bool = False):
        super().__init__()
        self.encoder = ObservationEncoder(observation_space, normalize_obs)
        self.net = mlp(self.encoder.out_dim, hidden_sizes, 1, out_std=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(self.encoder(obs)).squeeze(-1)


def make_actor(observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64),
               normalize_obs: bool = False) -> Actor:
    """A tanh MLP policy with orthogonal init (hidden gain sqrt(2), output gain 0.01); ``normalize_obs``
    standardises ``Box`` observations with running statistics (:class:`ObservationEncoder`).

    Raises ``TypeError`` naming the space for action spaces other than ``Discrete`` and
    ``Box`` (e.g. ``MultiBinary``) and observation spaces other than ``Box`` and ``Discrete``.
    """
    return Actor(observation_space, action_space, tuple(hidden_sizes), normalize_obs)


def make_critic(observation_space: gym.Space, hidden_sizes: Sequence[int] = (64, 64),
                normalize_obs: bool = False) -> Critic:
    """A tanh MLP state-value network with orthogonal init (output gain 1) returning ``[B]``."""
    return Critic(observation_space, tuple(hidden_sizes), normalize_obs)


def load_actor(path: str | os.PathLike, observation_space: gym.Space, action_space: gym.Space) -> Actor:
    """Rebuild the trained policy saved by ``TrainResult.save`` for the given spaces."""
    state = load_checkpoint(path)
    config = state.get("config") or {}
    actor = make_actor(observation_space, action_space, config.get("hidden_sizes", (64, 64)),
                       config.get("normalize_obs", False))
    actor.load_state_dict(state["actor"])
    return actor


__all__ = [
    "OBS_CLIP",
    "Actor",
    "Critic",
    "ObservationEncoder",
    "layer_init",
    "load_actor",
    "make_actor",
    "make_critic",
    "mlp",
]
