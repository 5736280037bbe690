"""Deep Q-networks (Mnih et al. 2015) and Double DQN (van Hasselt, Guez & Silver 2016).

One iteration:

1. act ``train_frequency`` environment steps (summed over sub-envs) with the
   epsilon-greedy policy of the online network ``Q_theta``, epsilon annealed linearly
   (gymnasium 1.x ``NEXT_STEP`` autoreset: the step after an episode end is not a real
   transition and never reaches the buffer, see :class:`TransitionCollector`);
2. store the real transitions ``(s, a, r, s', terminated)`` in the replay buffer; ``s'``
   is the final observation when the episode ended, so a time limit (truncation)
   bootstraps from it, while a termination does not bootstrap at all;
3. once ``learning_starts`` steps have been collected, take ``gradient_steps`` Adam steps,
   each on a uniform minibatch from the buffer, on the Huber loss between ``Q_theta(s, a)``
   and the TD target of the *target network* ``Q_theta-``::

       y = r + gamma * (1 - terminated) * Q_theta-(s', argmax_a' Q(s', a'))

   with ``Q = Q_theta-`` for DQN (the max of the target network) and ``Q = Q_theta`` for
   Double DQN (the online network picks the action, the target network evaluates it);
4. every ``target_update_interval`` gradient steps copy ``theta`` into ``theta-``.

The defaults are tuned for CartPole-v1 (see :class:`DQNConfig` for where they come from).

Usage::

    from rl_basics.agents import dqn
    from rl_basics.agents.rollout import evaluate
    result = dqn.train("CartPole-v1", dqn.DQNConfig(), seed=0)
    mean, std = evaluate(result.actor, "CartPole-v1", n_episodes=20)   # result.actor is the Q-network
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn
from torch.nn import functional as F

from rl_basics.agents.checkpoints import load_checkpoint
from rl_basics.agents.networks import ObservationEncoder, mlp
from rl_basics.agents.rollout import EnvLike, RolloutCollector, as_vector_env, evaluate
from rl_basics.agents.training import (
    Callback,
    TrainResult,
    check_finite,
    history_arrays,
    make_adam,
    progress_bar,
    set_seed,
    torch_threads,
)
from rl_basics.validation import check_fields


@dataclass
class DQNConfig:
    """DQN's hyperparameters; the defaults are tuned for CartPole-v1.

    They start from rl-zoo's tuned CartPole-v1 DQN (rl-baselines3-zoo's ``hyperparams/dqn.yml``:
    50k steps, learning rate 2.3e-3, batch 64, buffer 100k, learning starts 1,000, a training
    phase of 128 gradient steps every 256 environment steps with the target network refreshed
    between phases, epsilon from 1 to 0.04 over the first 16% of training, a 256-256 network) and change what
    costs CPU time: 8 sub-envs stepped together (one forward pass per step for all 8), 64 gradient steps of 256
    transitions per phase instead of 128 of 64 (twice the samples, half the updates), the target network copied
    once per phase (every 64 gradient steps), no gradient clipping (the Huber loss bounds each sample's
    gradient already), and a 128-128 network.

    The sweep: greedy 20-episode evaluations every 2,048 steps of the 50k-step schedule on CartPole-v1,
    counting the environment steps until the mean return first reached 475, on seeds 100-109 (the benchmark's
    seeds 0-9 left out; the variants on 3-8 of them). These defaults: all 10 seeds solved, median 24,576 steps
    (mean 27,443, from 16,384 to 43,008). The variants, as median steps (seeds solved): a 256-256 network 26,624
    (7/8) at 1.5-2x the CPU per step; Double DQN 26,624 (8/8); the target copied every 32 gradient steps 29,696
    (5/6); the squared error instead of the Huber loss 33,792 (7/8); epsilon over the first 10% 38,912 (6/6).
    With a 64-64 network: these settings 26,624 (3/3); 32 gradient steps per phase 44,032 (4/4); 128 gradient
    steps 30,720 (4/4) at twice the CPU; the target copied every 16 gradient steps: 2/4 solved; learning rate
    1e-3 40,960 (4/6); 4 sub-envs 33,792 (3/4).

    A re-run of the same protocol on seeds 100-109 in a later session (torch 2.13.0+cpu) gave these defaults a
    median of 35,840 steps with 8/10 seeds solved (18,432 to 45,056), and a phase of 32 gradient steps every 128
    environment steps 30,720 (10/10), every 64 with 16 gradient steps 38,912 (8/10). Medians over 10 seeds move by several thousand steps with the torch build and the
    seeds: none of these settings is clearly better than the others.
    """

    total_timesteps: int = 50_000
    """Environment steps to train for (summed over sub-envs, autoreset steps included)."""
    num_envs: int = 8
    """Parallel sub-environments in the vector env (ignored when a VectorEnv is passed in)."""
    buffer_size: int = 100_000
    """Capacity of the replay buffer (transitions); the oldest are overwritten first. A buffer as small as
    one iteration's transitions is "no replay": every minibatch comes from the latest, correlated experience."""
    learning_starts: int = 1_000
    """Environment steps collected (with epsilon from the schedule) before the first gradient step."""
    train_frequency: int = 256
    """Environment steps (summed over sub-envs) collected between two training phases; rounded up to a
    multiple of the number of sub-envs."""
    gradient_steps: int = 64
    """Gradient steps per training phase (each on one minibatch from the buffer)."""
    batch_size: int = 256
    """Transitions per minibatch, sampled uniformly with replacement from the buffer."""
    learning_rate: float = 2.3e-3
    """Adam's step size."""
    adam_eps: float = 1e-8
    """Adam's epsilon (torch's default)."""
    gamma: float = 0.99
    """Discount factor, in [0, 1]."""
    target_update_interval: int = 64
    """Gradient steps between two copies of the online weights into the target network; 1 means no target
    network at all (the target is computed with the current online weights)."""
    double_q: bool = False
    """Double DQN: the online network picks argmax_a Q(s', a), the target network evaluates it."""
    huber: bool = True
    """Huber loss (smooth L1 with delta 1: quadratic for TD errors below 1, linear above) instead of the squared error."""
    max_grad_norm: float | None = None
    """Clip the global gradient norm to this value (None: no clipping)."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the first step."""
    exploration_final_eps: float = 0.04
    """Epsilon once the schedule has run out (and for the rest of training)."""
    exploration_fraction: float = 0.16
    """Share of ``total_timesteps`` over which epsilon falls linearly from the initial to the final value."""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """Hidden layer widths of the Q-network (tanh MLP, orthogonal init, from ``rl_basics.agents.networks``)."""

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        check_fields(self, "an integer >= 1", "total_timesteps", "num_envs", "buffer_size", "train_frequency",
                     "gradient_steps", "batch_size", "target_update_interval")
        check_fields(self, "an integer >= 0", "learning_starts")
        check_fields(self, "> 0", "learning_rate", "adam_eps")
        check_fields(self, "> 0 or None", "max_grad_norm")
        check_fields(self, "in [0, 1]", "gamma", "exploration_initial_eps", "exploration_final_eps",
                     "exploration_fraction")
        if self.buffer_size < self.batch_size:
            raise ValueError(f"DQNConfig.buffer_size ({self.buffer_size}) must hold at least one minibatch "
                             f"(batch_size {self.batch_size})")
        check_fields(self, "positive layer widths", "hidden_sizes")

    def epsilon(self, step: int) -> float:
        """The exploration rate after ``step`` environment steps: linear from the initial to the final value
        over the first ``exploration_fraction * total_timesteps`` steps, then constant."""
        duration = self.exploration_fraction * self.total_timesteps
        if step >= duration:
            return self.exploration_final_eps
        return self.exploration_initial_eps + step / duration * (self.exploration_final_eps - self.exploration_initial_eps)


# --------------------------------------------------------------------------- the Q-network and its policies


class QNetwork(nn.Module):
    """``Q_theta(s, .)``: an MLP from observation features to one value per action, ``[B, n_actions]``.

    The encoder and the MLP are the actor's and critic's (``rl_basics.agents.networks``: a tanh MLP with
    orthogonal init; the output layer has gain 1, like the critic's). Only ``Discrete`` actions: the
    greedy policy takes an argmax over them.
    """

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, hidden_sizes: Sequence[int] = (128, 128)):
        super().__init__()
        if not isinstance(action_space, spaces.Discrete):
            raise TypeError(
                f"unsupported action space {action_space!r} ({type(action_space).__name__}): DQN needs Discrete "
                "actions (it maximises over them); use PPO for continuous ones"
            )
        self.observation_space, self.action_space = observation_space, action_space
        self.n_actions = int(action_space.n)
        self.action_start = int(action_space.start)
        self.encoder = ObservationEncoder(observation_space)
        self.net = mlp(self.encoder.out_dim, hidden_sizes, self.n_actions, out_std=1.0)

    def forward(self, obs: Tensor) -> Tensor:
        return self.net(self.encoder(obs))

    def to_env_action(self, action: Tensor) -> np.ndarray:
        """Action indices ``[B]`` -> the numpy batch the vector env accepts (``Discrete.start`` added)."""
        return (action + self.action_start).cpu().numpy()

    @torch.no_grad()
    def act(self, obs: Tensor | np.ndarray, greedy: bool = True, epsilon: float = 0.05) -> Tensor:
        """Environment-ready actions for ``obs`` (batched ``[B, ...]`` or a single observation).

        ``greedy``: ``argmax_a Q(s, a)``; otherwise epsilon-greedy with ``epsilon`` (0.05, the evaluation
        epsilon of Mnih et al. 2015). This is what :func:`rl_basics.agents.rollout.evaluate` calls.
        """
        device = next(self.parameters()).device
        obs = torch.as_tensor(np.asarray(obs) if not isinstance(obs, Tensor) else obs, device=device)
        single = not self.encoder.is_batched(obs)
        if single:
            obs = obs.unsqueeze(0)
        action, _ = EpsilonGreedy(self, 0.0 if greedy else epsilon).sample(obs)
        env_action = torch.as_tensor(self.to_env_action(action))
        return env_action[0] if single else env_action


def make_q_network(observation_space: gym.Space, action_space: gym.Space,
                   hidden_sizes: Sequence[int] = (128, 128)) -> QNetwork:
    """A :class:`QNetwork`; ``TypeError`` naming the space for non-``Discrete`` actions or unsupported observations."""
    return QNetwork(observation_space, action_space, tuple(hidden_sizes))


class EpsilonGreedy:
    """The behaviour policy: a uniformly random action with probability ``epsilon``, else ``argmax_a Q(s, a)``.

    It has the interface :class:`~rl_basics.agents.rollout.RolloutCollector` expects of a policy:
    ``sample(obs) -> (actions, log_probs)`` (the log-probabilities of the epsilon-greedy policy) and
    ``to_env_action``.
    """

    def __init__(self, q_network: QNetwork, epsilon: float):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.q_network, self.epsilon = q_network, epsilon

    @torch.no_grad()
    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        greedy = self.q_network(obs).argmax(dim=-1)  # [B]
        if self.epsilon == 0.0:
            return greedy, torch.zeros(greedy.shape, device=greedy.device)
        n = self.q_network.n_actions
        explore = torch.rand(greedy.shape, device=greedy.device) < self.epsilon
        action = torch.where(explore, torch.randint(n, greedy.shape, device=greedy.device), greedy)
        prob = self.epsilon / n + (1.0 - self.epsilon) * (action == greedy)
        return action, prob.log()

    def to_env_action(self, action: Tensor) -> np.ndarray:
        return self.q_network.to_env_action(action)


# --------------------------------------------------------------------------- experience


@dataclass
class Transitions:
    """A batch of transitions ``(s, a, r, s', terminated)``, one row each."""

    obs: Tensor  # [B, *obs_shape]
    actions: Tensor  # [B] int64 action indices
    rewards: Tensor  # [B] float32
    next_obs: Tensor  # [B, *obs_shape]: the successor; the final observation when the episode ended here
    terminated: Tensor  # [B] float32: 1 where s' is a true terminal state (no bootstrapping from it)

    def __len__(self) -> int:
        return self.actions.shape[0]


class TransitionCollector(RolloutCollector):
    """:class:`~rl_basics.agents.rollout.RolloutCollector` (autoreset-aware stepping, episode statistics)
    that also pairs every step with its successor observation and keeps only the real transitions.

    Under gymnasium 1.x's ``NEXT_STEP`` autoreset the observation after step ``t`` is ``obs[t + 1]``
    (after the last step of a rollout, the collector's current observation). At an episode end that
    is the final observation, so a truncated transition keeps a successor to bootstrap from. The step
    after an episode end (``rollout.valid == 0``) is not a transition: its "previous observation" is
    the final one and its action was ignored, so it is dropped here.
    """

    def collect_transitions(self, policy: EpsilonGreedy, n_steps: int) -> Transitions:
        """Step every sub-env ``n_steps`` times with ``policy``; return the real transitions, time-major."""
        rollout = self.collect(policy, n_steps)
        next_obs = torch.cat([rollout.obs[1:], rollout.last_obs.unsqueeze(0)])  # obs[t + 1]
        real = rollout.valid.reshape(-1) > 0

        def flat(x: Tensor) -> Tensor:
            return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])[real]

        return Transitions(obs=flat(rollout.obs), actions=flat(rollout.actions).long(), rewards=flat(rollout.rewards),
                           next_obs=flat(next_obs), terminated=flat(rollout.terminated))


class ReplayBuffer:
    """The last ``capacity`` transitions in a ring (the oldest are overwritten first), sampled uniformly.

    Storage is preallocated: ``obs`` and ``next_obs`` ``[capacity, *obs_shape]``, ``actions``,
    ``rewards`` and ``terminated`` ``[capacity]``; rows ``0 .. len(self) - 1`` are filled.
    """

    def __init__(self, capacity: int, observation_space: gym.Space):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        shape = tuple(observation_space.shape or ())
        dtype = torch.float32 if isinstance(observation_space, spaces.Box) else torch.int64
        self.capacity = capacity
        self.storage = {
            "obs": torch.zeros((capacity, *shape), dtype=dtype),
            "actions": torch.zeros(capacity, dtype=torch.int64),
            "rewards": torch.zeros(capacity),
            "next_obs": torch.zeros((capacity, *shape), dtype=dtype),
            "terminated": torch.zeros(capacity),
        }
        self.position = 0  # the next row to write
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Transitions) -> None:
        """Write a batch of transitions at the ring's write position (wrapping around)."""
        n = len(batch)
        if n > self.capacity:  # only the newest `capacity` survive
            batch = Transitions(*(getattr(batch, f)[-self.capacity:] for f in Transitions.__dataclass_fields__))
            n = self.capacity
        rows = (self.position + torch.arange(n)) % self.capacity
        for name, value in (("obs", batch.obs), ("actions", batch.actions), ("rewards", batch.rewards),
                            ("next_obs", batch.next_obs), ("terminated", batch.terminated)):
            self.storage[name][rows] = value.to(self.storage[name].dtype)
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Transitions:
        """``batch_size`` transitions drawn uniformly, with replacement, from the filled rows."""
        return Transitions(**sample_transitions(self.storage, self.size, batch_size, generator))


def sample_transitions(storage: dict[str, Tensor], size: int, batch_size: int,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A uniform minibatch (with replacement) of the first ``size`` rows of every tensor in ``storage``.

    One index per sampled transition serves every field, so ``obs[i]``, ``actions[i]``,
    ``rewards[i]``, ``next_obs[i]`` and ``terminated[i]`` stay one transition.
    """
    if size < 1:
        raise ValueError("cannot sample from an empty replay buffer")
    index = torch.randint(size, (batch_size,), generator=generator)
    return {name: value[index] for name, value in storage.items()}


# --------------------------------------------------------------------------- the learning rule


def td_target(rewards: Tensor, next_q_target: Tensor, terminated: Tensor, gamma: float,
              next_q_online: Tensor | None = None) -> Tensor:
    """The TD target of a batch, ``[B]``, with no gradient.

    DQN: ``r + gamma * (1 - terminated) * max_a' Q_target(s', a')``. Double DQN (``next_q_online``
    given): ``r + gamma * (1 - terminated) * Q_target(s', argmax_a' Q_online(s', a'))``.

    Args:
        rewards: ``[B]``.
        next_q_target: ``[B, A]`` the target network's ``Q(s', .)``.
        terminated: ``[B]``, 1 where ``s'`` is terminal (its value is 0); a truncated transition is
            not terminated and bootstraps like any other.
        gamma: discount factor.
        next_q_online: ``[B, A]`` the online network's ``Q(s', .)``, for Double DQN's action choice.
    """
    next_q_target = next_q_target.detach()
    chooser = next_q_target if next_q_online is None else next_q_online.detach()
    best = chooser.argmax(dim=1, keepdim=True)
    next_value = next_q_target.gather(1, best).squeeze(1)
    return rewards + gamma * (1.0 - terminated) * next_value


def dqn_loss(q_network: QNetwork, target_network: QNetwork, batch: Transitions, config: DQNConfig
             ) -> tuple[Tensor, Tensor]:
    """The loss between ``Q_theta(s, a)`` and the TD target, and the mean predicted ``Q(s, a)`` (detached)."""
    q = q_network(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        next_online = q_network(batch.next_obs) if config.double_q else None
        target = td_target(batch.rewards, target_network(batch.next_obs), batch.terminated, config.gamma, next_online)
    loss = F.smooth_l1_loss(q, target) if config.huber else F.mse_loss(q, target)
    return loss, q.detach().mean()


def train(
    env: EnvLike,
    config: DQNConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: Callback | None = None,
    num_threads: int | None = 1,
) -> TrainResult:
    """Train a DQN (or Double DQN) agent.

    Args:
        env: an env id (``"CartPole-v1"``), a factory returning a gymnasium ``Env``, a single ``Env``
            or a gymnasium 1.x ``VectorEnv`` (``NEXT_STEP`` autoreset) with ``Discrete`` actions.
        config: hyperparameters; ``DQNConfig()`` when None.
        seed: seeds torch, numpy, python and the environments.
        progress: show a progress bar.
        callback: called after every iteration with a dict (``update``, ``env_steps``, ``actor`` and
            ``q_network`` (the same network), ``target_network``, ``stats``); returning True stops training.
        num_threads: torch threads while training (1 is fastest for these small networks; None leaves
            torch's setting alone). The previous setting is restored afterwards.

    Returns:
        A :class:`~rl_basics.agents.training.TrainResult` whose ``actor`` is the trained Q-network (its
        ``act`` is the greedy policy); ``history`` holds per-episode ``episode_returns``,
        ``episode_lengths``, ``episode_steps`` and per-iteration ``update_steps`` (env steps),
        ``epsilon``, ``gradient_steps`` (so far), ``loss`` and ``q_mean`` (the mean predicted
        ``Q(s, a)`` of the iteration's minibatches; NaN before learning starts).

    Raises:
        FloatingPointError: the loss or a reward became NaN or inf (the message names it and the iteration).
        TypeError: the action space is not ``Discrete``.
    """
    with torch_threads(num_threads):
        return _train(env, config or DQNConfig(), seed, progress, callback)


def _train(env: EnvLike, config: DQNConfig, seed: int, progress: bool, callback: Callback | None) -> TrainResult:
    envs, created = as_vector_env(env, config.num_envs)
    set_seed(seed)
    q_network = make_q_network(envs.single_observation_space, envs.single_action_space, config.hidden_sizes)
    target_network = copy.deepcopy(q_network).requires_grad_(False)
    optimizer = make_adam(list(q_network.parameters()), config.learning_rate, config.adam_eps)
    buffer = ReplayBuffer(config.buffer_size, envs.single_observation_space)
    collector = TransitionCollector(envs, seed=seed)
    n_steps = math.ceil(config.train_frequency / envs.num_envs)  # per sub-env per iteration
    chunk = n_steps * envs.num_envs
    n_iterations = math.ceil(config.total_timesteps / chunk)
    log: dict[str, list] = {key: [] for key in ("update_steps", "epsilon", "gradient_steps", "loss", "q_mean")}
    bar = progress_bar(n_iterations * chunk, progress, desc="Double DQN" if config.double_q else "DQN")
    gradient_step = 0
    try:
        for iteration in range(1, n_iterations + 1):
            epsilon = config.epsilon(collector.env_steps)
            batch = collector.collect_transitions(EpsilonGreedy(q_network, epsilon), n_steps)
            check_finite("the environment's reward", batch.rewards, iteration)
            buffer.add(batch)

            losses, q_means = [], []
            if collector.env_steps >= config.learning_starts:
                for _ in range(config.gradient_steps):
                    loss, q_mean = dqn_loss(q_network, target_network, buffer.sample(config.batch_size), config)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.max_grad_norm is not None:
                        nn.utils.clip_grad_norm_(q_network.parameters(), config.max_grad_norm)
                    optimizer.step()
                    gradient_step += 1
                    if gradient_step % config.target_update_interval == 0:
                        target_network.load_state_dict(q_network.state_dict())
                    losses.append(loss.detach())
                    q_means.append(q_mean)
            mean_loss = torch.stack(losses).mean().item() if losses else float("nan")
            if losses:
                check_finite("the DQN loss", mean_loss, iteration)

            row = {"update_steps": collector.env_steps, "epsilon": epsilon, "gradient_steps": gradient_step,
                   "loss": mean_loss, "q_mean": torch.stack(q_means).mean().item() if q_means else float("nan")}
            for key, values in log.items():
                values.append(row[key])
            bar.update(chunk)
            if progress and collector.episode_returns and iteration % 10 == 0:
                bar.set_postfix(mean_return=f"{np.mean(collector.episode_returns[-20:]):.1f}", refresh=False)
            info = {"update": iteration, "env_steps": collector.env_steps, "actor": q_network, "q_network": q_network,
                    "target_network": target_network, "stats": row}
            if callback is not None and callback(info):
                break
    finally:
        bar.close()
        if created:
            envs.close()
    history = history_arrays(
        {"episode_returns": collector.episode_returns, "episode_lengths": collector.episode_lengths,
         "episode_steps": collector.episode_steps, **log},
        dtypes={key: np.int64 for key in ("episode_lengths", "episode_steps", "update_steps", "gradient_steps")},
    )
    return TrainResult(actor=q_network, history=history, config=config, seed=seed)


class DiscountedReward(gym.Wrapper):
    """Each reward multiplied by ``gamma ** t`` (``t`` the steps since the reset), so an episode's return is its
    discounted return: :func:`rl_basics.agents.rollout.evaluate` on this env measures discounted returns."""

    def __init__(self, env: gym.Env, gamma: float):
        super().__init__(env)
        self.gamma, self.t = gamma, 0

    def reset(self, **kwargs):
        self.t = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        reward, self.t = reward * self.gamma**self.t, self.t + 1
        return obs, reward, terminated, truncated, info


def start_state_values(q_network: QNetwork, env: str | Callable[[], gym.Env], gamma: float, n_episodes: int = 20,
                       seed: int = 0) -> tuple[float, float]:
    """What the network predicts at the start and what its greedy policy then collects (van Hasselt et al.'s measure).

    Returns ``(predicted, observed)``: the mean of ``max_a Q(s_0, a)`` over the start states of ``n_episodes``
    episodes of ``env`` (an env id or a factory; sub-envs seeded ``seed, seed + 1, ...``), and the mean
    discounted return the greedy policy
    collects from those same start states (no bootstrapping: an episode cut by a time limit counts its
    rewards so far, e.g. at most ``(1 - 0.99^500) / 0.01 = 99.3`` on CartPole-v1, where ``Q`` can reach 100).
    """
    def make() -> gym.Env:
        return DiscountedReward(gym.make(env) if isinstance(env, str) else env(), gamma)

    envs = gym.vector.SyncVectorEnv([make] * n_episodes)
    obs, _ = envs.reset(seed=seed)
    envs.close()
    with torch.no_grad():
        predicted = q_network(torch.as_tensor(obs)).max(dim=1).values.mean().item()
    observed, _ = evaluate(q_network, make, n_episodes=n_episodes, greedy=True, seed=seed)
    return predicted, observed


def load_q_network(path: str | os.PathLike, observation_space: gym.Space, action_space: gym.Space) -> QNetwork:
    """Rebuild the Q-network saved by ``TrainResult.save`` (of a DQN run) for the given spaces."""
    state = load_checkpoint(path)
    hidden_sizes = (state.get("config") or {}).get("hidden_sizes", DQNConfig().hidden_sizes)
    q_network = make_q_network(observation_space, action_space, hidden_sizes)
    q_network.load_state_dict(state["actor"])
    return q_network
