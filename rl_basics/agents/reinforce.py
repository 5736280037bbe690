"""REINFORCE: Monte-Carlo policy gradient (Williams 1992; Sutton & Barto, sections 13.3-13.4).

One update:

1. each of ``episodes_per_update`` vector sub-envs plays one complete episode with the
   current policy (:func:`collect_episodes`);
2. every step gets its Monte-Carlo return-to-go ``G_t = r_t + gamma r_{t+1} + ...``
   up to the end of its episode (:func:`returns_to_go`; no bootstrapping, not even at a
   time limit: REINFORCE only uses what it saw);
3. the policy gradient is estimated by the mean over the episodes of
   ``sum_t (G_t - b(s_t)) grad log pi(a_t|s_t)`` (:func:`reinforce_loss`), with ``b = 0``
   or, with a baseline, ``b = V_w(s)``, a critic regressed on the returns;
4. one Adam step on the policy (and ``value_steps`` on the critic, from the same batch).

Like most implementations (Spinning Up's, for one) the update leaves out the
book's ``gamma^t`` factor, so late steps of long episodes are not discounted away.

Usage::

    from rl_basics.agents import reinforce
    result = reinforce.train("CartPole-v1", reinforce.ReinforceConfig(baseline=True), seed=0)
    mean, std = evaluate(result.actor, "CartPole-v1", n_episodes=20)

:func:`episode_gradients` returns the per-episode gradient estimates at fixed policy
parameters, which is how notebook 06 and the tests measure the variance a baseline removes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import Tensor, nn

from rl_basics.agents.losses import compute_gae, explained_variance, masked_mean
from rl_basics.agents.networks import Actor, make_actor, make_critic
from rl_basics.agents.rollout import EnvLike, VectorRollout, as_vector_env, check_autoreset_mode
from rl_basics.agents.training import Callback, TrainResult, check_finite, history_arrays, progress_bar, set_seed
from rl_basics.validation import check_fields


@dataclass
class ReinforceConfig:
    """REINFORCE's hyperparameters (defaults: learns CartPole-v1 within a few hundred episodes)."""

    total_episodes: int = 640
    """Episodes to train for (rounded up to whole updates)."""
    episodes_per_update: int = 8
    """Complete episodes per gradient estimate, played side by side in a vector env
    (ignored when a VectorEnv is passed in: its number of sub-envs wins)."""
    gamma: float = 0.99
    """Discount factor of the returns, in [0, 1]."""
    learning_rate: float = 2e-3
    """Adam's step size for the policy (alpha_theta in the book)."""
    baseline: bool = True
    """Subtract a learned state value V_w(s_t) from the return (REINFORCE with baseline)."""
    value_learning_rate: float = 1e-2
    """Adam's step size for the baseline's critic (alpha_w in the book); unused without a baseline."""
    value_steps: int = 10
    """Critic gradient steps per batch of episodes (regressing V_w(s_t) on G_t); unused without a baseline."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and of the critic; () gives a linear policy (softmax of preferences)."""
    max_episode_steps: int = 10_000
    """Safety cap: an episode still running after this many steps is cut (as a truncation)."""

    def __post_init__(self):
        self.hidden_sizes = tuple(self.hidden_sizes)
        check_fields(self, "an integer >= 1", "total_episodes", "episodes_per_update", "value_steps",
                     "max_episode_steps")
        check_fields(self, "> 0", "learning_rate", "value_learning_rate")
        check_fields(self, "in [0, 1]", "gamma")
        check_fields(self, "positive layer widths or () (a linear network)", "hidden_sizes")


@torch.no_grad()
def collect_episodes(
    envs: gym.vector.VectorEnv, actor: Actor, max_episode_steps: int = 10_000, seed: int | None = None
) -> VectorRollout:
    """Reset ``envs`` and let each sub-env play one complete episode with ``actor``.

    Returns a time-first :class:`~rl_basics.agents.rollout.VectorRollout` of shape ``(T, N)``, ``T``
    the longest episode: ``valid[t, i]`` is 1 for the steps of sub-env ``i``'s episode
    (its last step included) and 0 afterwards, while it waits for the others (those
    steps are discarded). An episode still running after ``max_episode_steps`` is marked
    truncated at its last step.
    """
    check_autoreset_mode(envs)
    obs, _ = envs.reset(seed=seed)
    running = np.ones(envs.num_envs, dtype=bool)
    steps: dict[str, list] = {k: [] for k in ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "valid")}
    for _ in range(max_episode_steps):
        obs_t = torch.as_tensor(obs)
        dist = actor.distribution(obs_t)
        action = dist.sample()
        obs, reward, terminated, truncated, _ = envs.step(actor.to_env_action(action))
        for key, value in (("obs", obs_t), ("actions", action), ("log_probs", dist.log_prob(action)),
                           ("rewards", reward), ("terminated", terminated), ("truncated", truncated),
                           ("valid", running.copy())):
            steps[key].append(torch.as_tensor(value))
        running &= ~(terminated | truncated)
        if not running.any():
            break
    else:
        steps["truncated"][-1] = steps["truncated"][-1] | torch.as_tensor(running)
    stacked = {key: torch.stack(values) for key, values in steps.items()}
    for key in ("rewards", "terminated", "truncated", "valid"):
        stacked[key] = stacked[key].float()
    return VectorRollout(**stacked)


def returns_to_go(episodes: VectorRollout, gamma: float) -> Tensor:
    """``(T, N)`` discounted returns ``G_t = sum_{k >= t} gamma^(k-t) r_k`` within each episode.

    This is GAE with ``lambda = 1`` and all values 0 (no bootstrapping), so it reuses
    :func:`~rl_basics.agents.losses.compute_gae`; the sum stops at each episode's end.
    """
    zeros = torch.zeros_like(episodes.rewards)
    returns, _ = compute_gae(episodes.rewards, zeros, zeros, episodes.terminated, episodes.episode_end, gamma, 1.0)
    return returns * episodes.valid


def reinforce_loss(log_probs: Tensor, advantages: Tensor, valid: Tensor) -> Tensor:
    """Minus the REINFORCE surrogate: ``-mean_i sum_t valid * (G_t - b_t) * log pi(a_t|s_t)``.

    Inputs are ``(T, N)`` with ``N`` episodes; ``advantages`` (return minus baseline) must
    not carry gradient. The gradient of this loss is minus the policy gradient estimate:
    the sum over each episode's steps, averaged over the episodes.
    """
    return -(valid * advantages * log_probs).sum(dim=0).mean()


def _flatten(x: Tensor) -> Tensor:
    """``(T, N, ...)`` -> ``(T * N, ...)``."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _log_probs(actor: Actor, episodes: VectorRollout) -> tuple[Tensor, Tensor]:
    """Log-probabilities of the episodes' actions and the policy's entropies, ``(T, N)``, with gradients."""
    dist = actor.distribution(_flatten(episodes.obs))
    shape = episodes.valid.shape
    return dist.log_prob(_flatten(episodes.actions)).reshape(shape), dist.entropy().reshape(shape)


def fit_critic(
    critic: nn.Module, optimizer: torch.optim.Optimizer, episodes: VectorRollout, returns: Tensor, steps: int,
    update: int = 0,
) -> float:
    """Regress ``critic(s_t)`` on the returns ``G_t`` (``(T, N)``) with ``steps`` optimizer steps.

    Minimises ``0.5 * mean over valid steps of (V(s_t) - G_t)^2``; returns the last loss.
    ``update`` only labels the error raised if the loss is NaN or inf.
    """
    obs = _flatten(episodes.obs)
    for _ in range(steps):
        values = critic(obs).reshape(returns.shape)
        loss = 0.5 * masked_mean((values - returns) ** 2, episodes.valid)
        check_finite("REINFORCE value loss", loss, update)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss.item()


@torch.no_grad()
def _values(critic: nn.Module, episodes: VectorRollout) -> Tensor:
    """The baseline ``V(s_t)``, ``(T, N)``, without gradient."""
    return critic(_flatten(episodes.obs)).reshape(episodes.valid.shape)


def _episode(episodes: VectorRollout, i: int) -> VectorRollout:
    """Sub-env ``i``'s episode as a rollout with ``N = 1``."""
    return VectorRollout(**{name: getattr(episodes, name)[:, i:i + 1] for name in
                            ("obs", "actions", "log_probs", "rewards", "terminated", "truncated", "valid")})


def episode_gradients(actor: Actor, episodes: VectorRollout, gamma: float, critic: nn.Module | None = None) -> Tensor:
    """Per-episode policy gradient estimates at the actor's current parameters.

    Row ``i`` is ``sum_t (G_t - b(s_t)) grad log pi(a_t|s_t)`` for episode ``i``, flattened
    over all actor parameters: shape ``(N, n_params)``. ``b = 0`` without a ``critic``,
    ``b = critic(s)`` with one (held fixed). Their mean is the gradient estimate REINFORCE
    steps along; their spread across episodes is the variance a baseline reduces.
    """
    params = [p for p in actor.parameters() if p.requires_grad]
    rows = []
    for i in range(episodes.valid.shape[1]):
        episode = _episode(episodes, i)
        returns = returns_to_go(episode, gamma)
        log_probs, _ = _log_probs(actor, episode)
        advantages = returns if critic is None else returns - _values(critic, episode)
        grads = torch.autograd.grad(-reinforce_loss(log_probs, advantages, episode.valid), params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)]))
    return torch.stack(rows)


def train(
    env: EnvLike,
    config: ReinforceConfig | None = None,
    seed: int = 0,
    progress: bool = True,
    callback: Callback | None = None,
    actor: Actor | None = None,
    critic: nn.Module | None = None,
) -> TrainResult:
    """Train a REINFORCE agent, with or without a learned baseline (``config.baseline``).

    Args:
        env: an env id (``"CartPole-v1"``), a factory returning a gymnasium ``Env``, a
            single ``Env`` or a gymnasium 1.x ``VectorEnv`` (``NEXT_STEP`` autoreset).
            ``Discrete`` actions get a categorical policy, ``Box`` actions a Gaussian one.
        config: hyperparameters; ``ReinforceConfig()`` when None.
        seed: seeds torch, numpy, python and the environments.
        progress: show a progress bar.
        callback: called after every update with a dict (``update``, ``env_steps``,
            ``actor``, ``critic``, ``stats``); returning True stops training.
        actor: start from this policy (e.g. one loaded with ``load_actor``, or one set to a
            chosen initial policy) instead of a fresh ``make_actor``; it is trained in place.
        critic: likewise for the baseline's critic (used only with ``config.baseline``).

    Returns:
        A :class:`~rl_basics.agents.training.TrainResult` (``critic`` is None without a
        baseline). ``history`` holds per episode ``episode_returns``, ``episode_lengths``,
        ``episode_steps`` (transitions collected up to and including this episode, the
        episodes of a batch counted in sub-env order; the discarded waiting steps are not
        counted) and per update ``update_steps``, ``policy_loss``,
        ``value_loss`` (NaN without a baseline), ``entropy``, ``grad_norm`` (of the policy
        gradient estimate) and ``explained_variance`` (NaN without a baseline).

    Raises:
        FloatingPointError: a loss became NaN or inf (the message names it and the update).
    """
    config = config or ReinforceConfig()
    envs, created = as_vector_env(env, config.episodes_per_update)
    set_seed(seed)
    if actor is None:
        actor = make_actor(envs.single_observation_space, envs.single_action_space, config.hidden_sizes)
    elif (actor.observation_space, actor.action_space) != (envs.single_observation_space, envs.single_action_space):
        raise ValueError(
            f"the actor was made for observations {actor.observation_space} and actions {actor.action_space}, "
            f"but the env has {envs.single_observation_space} and {envs.single_action_space}"
        )
    optimizer = torch.optim.Adam(actor.parameters(), lr=config.learning_rate)
    value_optimizer = None
    if config.baseline:
        if critic is None:
            critic = make_critic(envs.single_observation_space, config.hidden_sizes)
        value_optimizer = torch.optim.Adam(critic.parameters(), lr=config.value_learning_rate)
    else:
        critic = None
    n_episodes = envs.num_envs
    n_updates = math.ceil(config.total_episodes / n_episodes)

    keys = ("update_steps", "policy_loss", "value_loss", "entropy", "grad_norm", "explained_variance")
    log: dict[str, list] = {key: [] for key in keys + ("episode_returns", "episode_lengths", "episode_steps")}
    env_steps = 0
    bar = progress_bar(n_updates * n_episodes, progress, desc="REINFORCE" + (" + baseline" if config.baseline else ""))
    bar.unit = "episode"
    try:
        for update in range(1, n_updates + 1):
            episodes = collect_episodes(envs, actor, config.max_episode_steps, seed=seed if update == 1 else None)
            returns = returns_to_go(episodes, config.gamma)
            log_probs, entropy = _log_probs(actor, episodes)
            if critic is not None:
                values = _values(critic, episodes)  # the baseline before this batch's critic steps
                advantages = returns - values
                explained = explained_variance(values, returns, episodes.valid)
                value_loss = fit_critic(critic, value_optimizer, episodes, returns, config.value_steps, update)
            else:
                advantages, explained, value_loss = returns, float("nan"), float("nan")
            policy_loss = reinforce_loss(log_probs, advantages, episodes.valid)
            check_finite("REINFORCE policy loss", policy_loss, update)
            optimizer.zero_grad(set_to_none=True)
            policy_loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(actor.parameters(), float("inf"))
            optimizer.step()

            # per-episode statistics, in sub-env order (sorting by end time would put short episodes first)
            lengths = episodes.valid.sum(dim=0).long().numpy()
            ep_returns = (episodes.rewards * episodes.valid).sum(dim=0).numpy()
            for i in range(n_episodes):
                env_steps += int(lengths[i])
                log["episode_returns"].append(float(ep_returns[i]))
                log["episode_lengths"].append(int(lengths[i]))
                log["episode_steps"].append(env_steps)
            row = dict(
                update_steps=env_steps,
                policy_loss=policy_loss.item(),
                value_loss=value_loss,
                entropy=masked_mean(entropy.detach(), episodes.valid).item(),
                grad_norm=grad_norm.item(),
                explained_variance=explained,
            )
            for key in keys:
                log[key].append(row[key])

            bar.update(n_episodes)
            if progress:
                bar.set_postfix(mean_return=f"{np.mean(log['episode_returns'][-20:]):.1f}")
            if callback is not None and callback(
                {"update": update, "env_steps": env_steps, "actor": actor, "critic": critic, "stats": row}
            ):
                break
    finally:
        bar.close()
        if created:
            envs.close()

    history = history_arrays(
        log, dtypes={"episode_lengths": np.int64, "episode_steps": np.int64, "update_steps": np.int64}
    )
    return TrainResult(actor=actor, critic=critic, history=history, config=config, seed=seed)
