"""REINFORCE: returns, the gradient estimate, the baseline's variance reduction, the Box path, bad input."""

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

import rl_basics  # noqa: F401  (registers the environments)
from rl_basics.agents import reinforce
from rl_basics.agents.networks import load_actor, make_actor, make_critic
from rl_basics.agents.rollout import VectorRollout, as_vector_env, evaluate
from rl_basics.agents.training import set_seed
from rl_basics.envs.short_corridor import corridor_state_values

CORRIDOR = "rl_basics/ShortCorridor-v0"


def rollout(rewards, terminated, truncated, valid):
    """A (T, N) rollout with placeholder observations and actions."""
    rewards = torch.tensor(rewards, dtype=torch.float32)
    zeros = torch.zeros_like(rewards)
    return VectorRollout(obs=zeros, actions=zeros.long(), log_probs=zeros, rewards=rewards,
                         terminated=torch.tensor(terminated, dtype=torch.float32),
                         truncated=torch.tensor(truncated, dtype=torch.float32),
                         valid=torch.tensor(valid, dtype=torch.float32))


def test_returns_to_go_by_hand():
    """Episode 0 terminates at t=1 (later steps are waiting steps), episode 1 is truncated at t=3."""
    episodes = rollout(
        rewards=[[1.0, 1.0], [2.0, 1.0], [5.0, 1.0], [7.0, 4.0]],
        terminated=[[0, 0], [1, 0], [0, 0], [1, 0]],
        truncated=[[0, 0], [0, 0], [0, 0], [0, 1]],
        valid=[[1, 1], [1, 1], [0, 1], [0, 1]],
    )
    gamma = 0.5
    expected = torch.tensor([
        [1 + 0.5 * 2, 1 + 0.5 * 1 + 0.25 * 1 + 0.125 * 4],
        [2.0, 1 + 0.5 * 1 + 0.25 * 4],
        [0.0, 1 + 0.5 * 4],
        [0.0, 4.0],
    ])
    assert torch.allclose(reinforce.returns_to_go(episodes, gamma), expected)


def test_collected_episodes_on_the_short_corridor():
    envs, _ = as_vector_env(CORRIDOR, 6)
    set_seed(0)
    actor = make_actor(envs.single_observation_space, envs.single_action_space, hidden_sizes=())
    episodes = reinforce.collect_episodes(envs, actor, seed=0)
    lengths = episodes.valid.sum(dim=0)
    # reward -1 per step: each episode's return is minus its length, and it ends at the goal
    assert torch.equal((episodes.rewards * episodes.valid).sum(dim=0), -lengths)
    last = lengths.long() - 1
    assert torch.all(episodes.terminated[last, torch.arange(6)] == 1)
    assert torch.all(lengths >= 3)  # the goal is at least three steps away
    # a cap on the episode length truncates the episodes still running
    capped = reinforce.collect_episodes(envs, actor, max_episode_steps=2, seed=0)
    assert capped.valid.shape == (2, 6)
    assert torch.all(capped.episode_end[-1] == 1)


def test_episode_gradient_matches_the_softmax_formula():
    """Linear softmax policy on the corridor: grad log pi(a) w.r.t. the logits' bias is onehot(a) - pi."""
    envs, _ = as_vector_env(CORRIDOR, 3)
    set_seed(1)
    actor = make_actor(envs.single_observation_space, envs.single_action_space, hidden_sizes=())
    episodes = reinforce.collect_episodes(envs, actor, seed=1)
    gamma = 0.9
    grads = reinforce.episode_gradients(actor, episodes, gamma)
    probs = actor.distribution(torch.zeros(1, dtype=torch.long)).probs[0].detach()
    returns = reinforce.returns_to_go(episodes, gamma)
    for i in range(3):
        steps = episodes.valid[:, i].bool()
        onehot = torch.nn.functional.one_hot(episodes.actions[steps, i], 2).float()
        expected = (returns[steps, i, None] * (onehot - probs)).sum(dim=0)
        # parameters: weight (2, 1) on the constant one-hot input 1, then bias (2,)
        assert torch.allclose(grads[i], torch.cat([expected, expected]), atol=1e-5)
    # the training loss is minus the mean of these per-episode estimates
    log_probs = actor.distribution(episodes.obs.reshape(-1)).log_prob(episodes.actions.reshape(-1)).reshape(returns.shape)
    loss = reinforce.reinforce_loss(log_probs, returns, episodes.valid)
    loss.backward()
    flat = torch.cat([p.grad.reshape(-1) for p in actor.parameters()])
    assert torch.allclose(-flat, grads.mean(dim=0), atol=1e-5)


def test_baseline_reduces_gradient_variance_without_bias():
    """At the same policy parameters, on the same 128 CartPole episodes, per-episode gradient estimates
    with a learned V(s) baseline vary much less than without one, and agree with them on average."""
    set_seed(0)
    envs, _ = as_vector_env("CartPole-v1", 64)
    actor = make_actor(envs.single_observation_space, envs.single_action_space)
    critic = make_critic(envs.single_observation_space)
    # fit the baseline to this policy's returns on separate episodes (so it is independent of the test episodes)
    fit = reinforce.collect_episodes(envs, actor, seed=0)
    optimizer = torch.optim.Adam(critic.parameters(), lr=1e-2)
    reinforce.fit_critic(critic, optimizer, fit, reinforce.returns_to_go(fit, 0.99), steps=300)

    test_envs, _ = as_vector_env("CartPole-v1", 128)
    episodes = reinforce.collect_episodes(test_envs, actor, seed=1000)
    without = reinforce.episode_gradients(actor, episodes, 0.99)
    with_baseline = reinforce.episode_gradients(actor, episodes, 0.99, critic)
    var_without = without.var(dim=0).sum().item()  # trace of the covariance
    var_with = with_baseline.var(dim=0).sum().item()
    assert var_with < 0.5 * var_without

    # unbiased: the difference sum_t b(s_t) grad log pi(a_t|s_t) has mean zero, so its sample mean's
    # squared norm is about trace(Cov)/n (ratio ~1); a biased baseline would make it grow with n
    diff = without - with_baseline
    n = diff.shape[0]
    ratio = (diff.mean(dim=0) ** 2).sum().item() / (diff.var(dim=0).sum().item() / n)
    assert ratio < 3.0


def test_gradient_estimates_are_unbiased_against_the_exact_gradient():
    """Short corridor at pi(right) = 0.3: the mean per-episode estimate of dJ/dtheta (theta the "right"
    preference) matches the exact derivative of J(sigmoid(theta)), with and without a constant baseline."""
    p = 0.3
    envs, _ = as_vector_env(CORRIDOR, 400)
    set_seed(0)
    actor = make_actor(envs.single_observation_space, envs.single_action_space, hidden_sizes=())
    critic = make_critic(envs.single_observation_space, hidden_sizes=())
    with torch.no_grad():
        actor.net[0].weight.zero_()
        actor.net[0].bias.copy_(torch.tensor([0.0, np.log(p / (1 - p))]))
        critic.net[0].weight.zero_()
        critic.net[0].bias.fill_(-16.0)  # about J(0.3) = -16.19
    episodes = reinforce.collect_episodes(envs, actor, seed=0)
    h = 1e-6
    exact = (corridor_state_values(p + h)[0] - corridor_state_values(p - h)[0]) / (2 * h) * p * (1 - p)
    plain = reinforce.episode_gradients(actor, episodes, 1.0)[:, -1].numpy()
    based = reinforce.episode_gradients(actor, episodes, 1.0, critic)[:, -1].numpy()
    for estimates in (plain, based):
        assert abs(estimates.mean() - exact) < 4 * estimates.std(ddof=1) / np.sqrt(len(estimates))
    assert based.var() < 0.5 * plain.var()


def test_training_is_seeded_and_reports_history(tmp_path):
    config = reinforce.ReinforceConfig(total_episodes=24, episodes_per_update=4, hidden_sizes=(), learning_rate=0.05)
    first = reinforce.train(CORRIDOR, config, seed=3, progress=False)
    second = reinforce.train(CORRIDOR, config, seed=3, progress=False)
    h = first.history
    assert len(h["episode_returns"]) == 24 and len(h["update_steps"]) == 6
    assert np.array_equal(h["episode_returns"], second.history["episode_returns"])
    assert np.array_equal(h["episode_returns"], -h["episode_lengths"])  # -1 per step
    assert np.array_equal(h["episode_steps"], np.cumsum(h["episode_lengths"]))
    assert np.all(np.isfinite(h["explained_variance"]))
    for a, b in zip(first.actor.parameters(), second.actor.parameters()):
        assert torch.equal(a, b)

    # checkpoint round trip
    path = first.save(tmp_path / "reinforce.pt")
    env = gym.make(CORRIDOR)
    restored = load_actor(path, env.observation_space, env.action_space)
    obs = torch.zeros(1, dtype=torch.long)
    assert torch.allclose(restored.distribution(obs).probs, first.actor.distribution(obs).probs)


def test_without_baseline_has_no_critic():
    config = reinforce.ReinforceConfig(total_episodes=4, episodes_per_update=2, baseline=False, hidden_sizes=(8,))
    result = reinforce.train("CartPole-v1", config, seed=0, progress=False)
    assert result.critic is None
    assert np.all(np.isnan(result.history["value_loss"]))


def test_gaussian_policy_on_pendulum():
    """The Box path: a diagonal Gaussian policy trains on Pendulum-v1 (smoke level: 2 updates)."""
    config = reinforce.ReinforceConfig(total_episodes=4, episodes_per_update=2, hidden_sizes=(16,), learning_rate=0.01)
    result = reinforce.train("Pendulum-v1", config, seed=0, progress=False)
    h = result.history
    assert np.array_equal(h["episode_lengths"], [200] * 4)  # Pendulum's time limit
    assert np.all((h["episode_returns"] < 0) & (h["episode_returns"] > -16.3 * 200))
    assert np.all(np.isfinite(h["policy_loss"])) and np.all(np.isfinite(h["value_loss"]))
    assert result.actor.continuous
    assert not torch.equal(result.actor.log_std.detach(), torch.zeros(1))  # the std was learned too
    action = result.actor.act(np.zeros(3, dtype=np.float32))
    assert action.shape == (1,) and -2.0 <= action.item() <= 2.0
    mean, std = evaluate(result.actor, "Pendulum-v1", n_episodes=2, greedy=False)
    assert -16.3 * 200 < mean < 0 and std >= 0


class _ToyEnv(gym.Env):
    """One observation, episodes of 3 steps; configurable action space and reward."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, action_space=None, reward=1.0):
        self.action_space = action_space if action_space is not None else spaces.Discrete(2)
        self.reward = reward
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), self.reward, self.t >= 3, False, {}


def test_unsupported_action_space_is_named():
    with pytest.raises(TypeError, match="MultiBinary"):
        reinforce.train(lambda: _ToyEnv(spaces.MultiBinary(3)), reinforce.ReinforceConfig(total_episodes=2), progress=False)


def test_nan_loss_stops_training_naming_update_and_quantity():
    config = reinforce.ReinforceConfig(total_episodes=2, episodes_per_update=2, baseline=False)
    with pytest.raises(FloatingPointError, match="policy loss.*update 1"):
        reinforce.train(lambda: _ToyEnv(reward=float("nan")), config, progress=False)
    with pytest.raises(FloatingPointError, match="value loss.*update 1"):
        reinforce.train(lambda: _ToyEnv(reward=float("inf")), reinforce.ReinforceConfig(total_episodes=2), progress=False)


@pytest.mark.parametrize(
    "field, value",
    [("total_episodes", 0), ("episodes_per_update", 2.5), ("gamma", 1.5), ("learning_rate", 0.0),
     ("value_learning_rate", -1.0), ("value_steps", 0), ("hidden_sizes", (64, 0)), ("max_episode_steps", 0)],
)
def test_invalid_hyperparameters(field, value):
    with pytest.raises(ValueError, match=field):
        reinforce.ReinforceConfig(**{field: value})
