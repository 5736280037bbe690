"""Experience from gymnasium 1.x vector environments: making them, stepping them, evaluating a policy.

- :data:`EnvLike`, :func:`as_vector_env`: an env id, factory, ``Env`` or ``VectorEnv`` as a
  vector env
- :func:`check_autoreset_mode`: only gymnasium's default ``NEXT_STEP`` autoreset is accepted
- :class:`VectorRollout`: ``T`` steps of ``N`` sub-envs, time first, the autoreset steps
  (the step after an episode end, not a real transition) marked invalid
- :class:`RolloutCollector`: collects fixed-length rollouts with a policy, keeping each
  sub-env's place between calls and the finished episodes' statistics (A2C, PPO, DQN)
- :func:`evaluate`: mean and standard deviation of a policy's return over fresh episodes

(``VectorRollout`` is not ``rlhf.ppo.Rollout``, a batch of language-model responses.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rl_basics.agents.networks import Actor
from rl_basics.agents.training import torch_threads


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
class VectorRollout:
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
    def collect(self, actor: Actor, n_steps: int, critic: nn.Module | None = None) -> VectorRollout:
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
        rollout = VectorRollout(
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
    ``num_threads``: torch threads while evaluating (see :func:`~rl_basics.agents.training.torch_threads`).
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


__all__ = [
    "EnvLike",
    "RolloutCollector",
    "VectorRollout",
    "as_vector_env",
    "check_autoreset_mode",
    "evaluate",
]
