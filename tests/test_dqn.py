"""Chapter 5 (value-function approximation and DQN): the DQN agent, its replay buffer and targets, the
linear methods of Sutton & Barto chapters 9-11 with their simulators, the chapter's exercise checks, and
the DQN benchmark's smoke mode. (CartPole-v1 to 475 and the book's figures are asserted in the notebook.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from rl_basics import approximation as ap
from rl_basics import checks, dp
from rl_basics.agents import dqn
from rl_basics.agents.rollout import evaluate
from rl_basics.course.checking import CheckFailed
from rl_basics.envs.baird import BEHAVIOUR, FEATURES, TARGET, W0, BairdEnv
from rl_basics.envs.mountain_car import HIGH, LOW, MountainCarLanes
from rl_basics.envs.random_walk_1000 import RandomWalk1000Env
from rl_basics.tile_coding import TileCoder
from tests.test_agents_core import CountingEnv, counting_vector_env

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(total_timesteps=512, num_envs=2, train_frequency=64, gradient_steps=4, batch_size=16, learning_starts=64,
            buffer_size=1000, hidden_sizes=(16, 16), target_update_interval=4)


def t(values):
    return torch.tensor(values, dtype=torch.float32)


# --------------------------------------------------------------------------- config and network


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(total_timesteps=0), "total_timesteps"),
        (dict(batch_size=0), "batch_size"),
        (dict(buffer_size=10, batch_size=64), "buffer_size"),
        (dict(target_update_interval=0), "target_update_interval"),
        (dict(gradient_steps=2.5), "gradient_steps"),
        (dict(learning_starts=-1), "learning_starts"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(gamma=1.5), "gamma"),
        (dict(exploration_final_eps=-0.1), "exploration_final_eps"),
        (dict(exploration_fraction=2.0), "exploration_fraction"),
        (dict(max_grad_norm=0.0), "max_grad_norm"),
        (dict(hidden_sizes=()), "hidden_sizes"),
    ],
)
def test_invalid_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dqn.DQNConfig(**kwargs)


def test_epsilon_schedule_is_linear_then_constant():
    config = dqn.DQNConfig(total_timesteps=1000, exploration_fraction=0.5, exploration_initial_eps=1.0,
                           exploration_final_eps=0.1)
    assert config.epsilon(0) == 1.0
    assert config.epsilon(250) == pytest.approx(0.55)
    assert config.epsilon(500) == pytest.approx(0.1) and config.epsilon(900) == pytest.approx(0.1)
    assert dqn.DQNConfig(exploration_fraction=0.0).epsilon(0) == dqn.DQNConfig().exploration_final_eps


def test_q_network_rejects_continuous_actions_naming_the_space():
    with pytest.raises(TypeError, match="Box"):
        dqn.make_q_network(spaces.Box(-1, 1, (3,)), spaces.Box(-1, 1, (2,)))


def test_q_network_shapes_and_greedy_act():
    env = gym.make("CartPole-v1")
    q = dqn.make_q_network(env.observation_space, env.action_space, (8,))
    obs = torch.randn(5, 4)
    assert q(obs).shape == (5, 2)
    np.testing.assert_array_equal(q.act(obs).numpy(), q(obs).argmax(1).numpy())
    assert q.act(obs[0]).shape == ()  # a single observation gives a single action
    torch.manual_seed(0)
    explore = dqn.EpsilonGreedy(q, 1.0)
    actions, log_probs = explore.sample(torch.randn(4000, 4))
    assert abs(actions.float().mean().item() - 0.5) < 0.05  # epsilon = 1: uniform
    torch.testing.assert_close(log_probs, torch.full((4000,), np.log(0.5)))
    with pytest.raises(ValueError, match="epsilon"):
        dqn.EpsilonGreedy(q, 1.5)


# --------------------------------------------------------------------------- targets and replay


def test_td_target_hand_computed_termination_and_truncation():
    rewards = t([1.0, 1.0, 1.0])
    next_q = t([[2.0, 5.0], [3.0, 1.0], [4.0, 4.5]])
    terminated = t([0.0, 1.0, 0.0])  # the third transition was truncated: it bootstraps like the first
    torch.testing.assert_close(dqn.td_target(rewards, next_q, terminated, 0.9), t([1 + 0.9 * 5, 1.0, 1 + 0.9 * 4.5]))


def test_double_dqn_target_lets_the_online_network_choose():
    rewards = t([0.0, 0.0])
    online = t([[1.0, 0.0], [0.0, 1.0]])  # prefers action 0, then action 1
    target = t([[2.0, 9.0], [7.0, 3.0]])  # prefers the other ones
    torch.testing.assert_close(dqn.td_target(rewards, target, t([0.0, 0.0]), 1.0, online), t([2.0, 3.0]))
    torch.testing.assert_close(dqn.td_target(rewards, target, t([0.0, 0.0]), 1.0), t([9.0, 7.0]))  # DQN: the max


def test_td_target_carries_no_gradient():
    next_q = torch.randn(4, 3, requires_grad=True)
    assert not dqn.td_target(torch.zeros(4), next_q, torch.zeros(4), 0.9, next_q).requires_grad


def _transitions(start, n):
    rows = torch.arange(start, start + n, dtype=torch.float32)
    return dqn.Transitions(obs=rows[:, None], actions=torch.arange(n) % 2, rewards=rows, next_obs=rows[:, None] + 0.5,
                           terminated=torch.zeros(n))


def test_replay_buffer_ring_overwrites_the_oldest_and_samples_filled_rows():
    buffer = dqn.ReplayBuffer(5, spaces.Box(-np.inf, np.inf, (1,)))
    buffer.add(_transitions(0, 3))
    assert len(buffer) == 3
    sample = buffer.sample(200, torch.Generator().manual_seed(0))
    assert set(sample.rewards.tolist()) == {0.0, 1.0, 2.0}  # never the empty rows
    buffer.add(_transitions(3, 4))  # 7 transitions in 5 rows: 0 and 1 are gone
    assert len(buffer) == 5 and buffer.position == 2
    assert sorted(buffer.storage["rewards"].tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]
    sample = buffer.sample(500, torch.Generator().manual_seed(1))
    torch.testing.assert_close(sample.next_obs[:, 0], sample.rewards + 0.5)  # every field from the same row
    torch.testing.assert_close(sample.obs[:, 0], sample.rewards)
    buffer.add(_transitions(10, 12))  # more than the capacity at once: the newest 5 survive
    assert sorted(buffer.storage["rewards"].tolist()) == [17.0, 18.0, 19.0, 20.0, 21.0]
    with pytest.raises(ValueError, match="empty"):
        dqn.ReplayBuffer(3, spaces.Discrete(4)).sample(2)


def test_collected_transitions_drop_the_autoreset_step_and_keep_the_final_observation():
    envs = counting_vector_env()  # env 0 terminates every 3 steps, env 1 is truncated after 4
    collector = dqn.TransitionCollector(envs, seed=0)
    q = dqn.make_q_network(CountingEnv.observation_space, CountingEnv.action_space, (4,))
    batch = collector.collect_transitions(dqn.EpsilonGreedy(q, 0.5), n_steps=10)
    # 20 sub-env steps, 4 of them autoreset steps (env 0 at t=3, 7; env 1 at t=4, 9)
    assert len(batch) == 16
    # every real transition goes from count c to c + 1; the final observation is the successor at an episode end
    torch.testing.assert_close(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    # env 1's truncations at count 4 stay non-terminal: they bootstrap from the final observation 4
    assert ((batch.next_obs[:, 0] == 4) & (batch.terminated == 0)).sum() == 2
    assert (batch.terminated == 1).sum() == 2 and (batch.rewards == 1).all()
    # the second call continues seamlessly: its first successor pairs with the last observation of the first
    nxt = collector.collect_transitions(dqn.EpsilonGreedy(q, 0.5), n_steps=2)
    torch.testing.assert_close(nxt.next_obs[:, 0], nxt.obs[:, 0] + 1)
    envs.close()


def test_other_autoreset_modes_are_rejected():
    envs = gym.make_vec("CartPole-v1", 2, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP})
    with pytest.raises(ValueError, match="SAME_STEP"):
        dqn.train(envs, dqn.DQNConfig(**TINY), progress=False)
    envs.close()


# --------------------------------------------------------------------------- training


def test_seeded_runs_are_identical_and_history_is_complete():
    a = dqn.train("CartPole-v1", dqn.DQNConfig(**TINY), seed=3, progress=False)
    b = dqn.train("CartPole-v1", dqn.DQNConfig(**TINY), seed=3, progress=False)
    for key in ("episode_returns", "loss", "q_mean", "epsilon"):
        np.testing.assert_array_equal(a.history[key], b.history[key])
    for pa, pb in zip(a.actor.parameters(), b.actor.parameters()):
        torch.testing.assert_close(pa, pb)
    h = a.history
    assert h["update_steps"].tolist() == [64 * k for k in range(1, 9)]  # 64 env steps (2 sub-envs x 32) per iteration
    assert h["gradient_steps"].tolist() == [4 * k for k in range(1, 9)]
    assert (np.diff(h["epsilon"]) <= 0).all() and h["epsilon"][0] == 1.0 and np.isfinite(h["loss"]).all()
    late = dqn.train("CartPole-v1", dqn.DQNConfig(**{**TINY, "learning_starts": 128}), seed=3, progress=False).history
    assert np.isnan(late["loss"][0]) and late["gradient_steps"][0] == 0 and np.isfinite(late["loss"][1:]).all()


def test_target_update_interval_one_means_no_target_network():
    updates = []

    def same(info):
        updates.append(all(torch.equal(p, q) for p, q in zip(info["q_network"].parameters(),
                                                             info["target_network"].parameters())))

    dqn.train("CartPole-v1", dqn.DQNConfig(**{**TINY, "target_update_interval": 1}), progress=False, callback=same)
    assert all(updates)
    updates.clear()
    dqn.train("CartPole-v1", dqn.DQNConfig(**{**TINY, "target_update_interval": 1000}), progress=False, callback=same)
    assert not any(updates[1:])  # after learning starts the target lags


def test_callback_stops_and_checkpoint_round_trip(tmp_path):
    result = dqn.train("CartPole-v1", dqn.DQNConfig(**TINY), seed=1, progress=False,
                       callback=lambda info: info["update"] == 2)
    assert len(result.history["update_steps"]) == 2
    env = gym.make("CartPole-v1")
    path = result.save(tmp_path / "dqn.pt")
    restored = dqn.load_q_network(path, env.observation_space, env.action_space)
    assert evaluate(restored, "CartPole-v1", n_episodes=3, seed=5) == evaluate(result.actor, "CartPole-v1",
                                                                                          n_episodes=3, seed=5)


class NaNRewardEnv(CountingEnv):
    def step(self, action):
        obs, _, terminated, truncated, info = super().step(action)
        return obs, float("nan"), terminated, truncated, info


def test_nan_reward_stops_training_naming_the_quantity():
    with pytest.raises(FloatingPointError, match="reward is not finite .* at update 1"):
        dqn.train(lambda: NaNRewardEnv(terminate_at=5), dqn.DQNConfig(**TINY), progress=False)


class TwoStepEnv(gym.Env):
    """Action 1 pays 1 and ends the episode; action 0 pays 0 and moves on (terminating after 2 steps)."""

    observation_space = spaces.Discrete(2)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.s = 0
        return 0, {}

    def step(self, action):
        if action == 1:
            return self.s, 1.0, True, False, {}
        self.s += 1
        return self.s % 2, 0.0, self.s >= 2, False, {}


def test_dqn_learns_the_values_of_a_two_step_task():
    config = dqn.DQNConfig(total_timesteps=3000, num_envs=4, train_frequency=64, gradient_steps=16, batch_size=64,
                           learning_starts=200, buffer_size=3000, hidden_sizes=(16,), target_update_interval=16,
                           learning_rate=1e-2, gamma=0.5)
    result = dqn.train(TwoStepEnv, config, seed=0, progress=False)
    with torch.no_grad():
        q = result.actor(torch.tensor([0, 1]))
    # q(s, 1) = 1 everywhere; q(0, 0) = 0 + 0.5 * max q(1, .) = 0.5; q(1, 0) = 0 (terminates)
    torch.testing.assert_close(q, t([[0.5, 1.0], [0.0, 1.0]]), atol=0.05, rtol=0)


# --------------------------------------------------------------------------- chapter 9: state aggregation


def test_random_walk_model_and_simulator_agree():
    env = RandomWalk1000Env(n_states=20, max_jump=3)
    model = dp.as_model(env)
    np.testing.assert_allclose(model.transitions.sum(-1), 1.0)
    v = dp.solve_policy_exact(env, np.ones((22, 1)), 1.0)
    assert v[1] < 0 < v[20] and np.allclose(v[1:21], -v[20:0:-1])  # antisymmetric
    states, rewards = env.simulate(20_000, np.random.default_rng(0))
    ended_right = (rewards == 1).mean()
    assert abs(ended_right - (1 + v[10]) / 2) < 0.02  # P(right) = (1 + v(start)) / 2
    mu = ap.on_policy_distribution(env)
    visits = np.bincount(states[states >= 0].astype(int), minlength=22)[1:21]
    np.testing.assert_allclose(visits / visits.sum(), mu[1:21] / mu[1:21].sum(), atol=0.01)


def test_gradient_mc_closed_form_equals_the_step_by_step_update():
    env = RandomWalk1000Env(n_states=40, max_jump=6)
    alpha, groups = 0.05, ap.state_aggregation(40, 4)
    result = ap.gradient_mc_aggregation(env, 30, alpha, n_groups=4, n_runs=2, seed=7, record_every=10)
    rng = np.random.default_rng(7)
    w = np.zeros((2, 4))
    for _ in range(3):  # blocks of 10 episodes, 2 runs each: row e * 2 + r
        states, final = env.simulate(20, rng)
        for e in range(10):
            for r in range(2):
                row = states[e * 2 + r]
                for s in row[(row > 0) & (row <= 40)]:
                    g = groups[s]
                    w[r, g] += alpha * (final[e * 2 + r] - w[r, g])
    np.testing.assert_allclose(result.w, w, atol=1e-12)
    assert result.history.shape == (2, 4, 4) and result.episodes.tolist() == [0, 10, 20, 30]


def test_semi_gradient_td_replay_equals_the_step_by_step_update():
    env = RandomWalk1000Env(n_states=40, max_jump=6)
    alpha, groups = 0.1, ap.state_aggregation(40, 4)
    result = ap.semi_gradient_td0_aggregation(env, 20, alpha, n_groups=4, n_runs=3, seed=2, record_every=10)
    rng = np.random.default_rng(2)
    w = np.zeros((3, 5))
    for _ in range(2):
        states, final = env.simulate(30, rng)
        for e in range(10):
            for r in range(3):
                row = states[e * 3 + r]
                row = row[row >= 0]
                for s, s2 in zip(row[:-1], row[1:]):
                    reward = final[e * 3 + r] if s2 in (0, 41) else 0.0
                    w[r, groups[s]] += alpha * (reward + w[r, groups[s2]] - w[r, groups[s]])
    np.testing.assert_allclose(result.w, w[:, :4], atol=1e-12)



def _n_step_td_loop(env, n, alpha, n_episodes, n_groups, n_runs, seed):
    """n-step semi-gradient TD, one run, one episode, one step at a time: the weights after every episode."""
    groups = ap.state_aggregation(env.n_walk_states, n_groups)
    states, final = env.simulate(n_episodes * n_runs, np.random.default_rng(seed))
    w = np.zeros((n_runs, n_groups))
    history = [w.copy()]
    for e in range(n_episodes):
        for r in range(n_runs):
            row = states[e * n_runs + r]
            row = row[row >= 0]
            T = len(row) - 1
            for tau in range(T):  # the book's order: S_tau is updated once S_tau+n is seen (or the episode ended)
                G = final[e * n_runs + r] if tau + n >= T else w[r, groups[row[tau + n]]]
                w[r, groups[row[tau]]] += alpha * (G - w[r, groups[row[tau]]])
        history.append(w.copy())
    return np.stack(history, axis=1)  # (run, episode + 1, group)


def test_n_step_td_sweep_equals_the_step_by_step_update():
    env = RandomWalk1000Env(n_states=40, max_jump=6)
    ns, alphas = (1, 3, 200), (0.0, 0.3, 1.0)
    result = ap.n_step_td_aggregation(env, ns, alphas, n_episodes=4, n_groups=4, n_runs=3, seed=5, progress=False)
    assert result.history.shape == (3, 3, 3, 5, 4) and result.rms_error.shape == (3, 3, 3, 4)
    for i, n in enumerate(ns):
        for j, alpha in enumerate(alphas):
            np.testing.assert_allclose(result.history[i, j], _n_step_td_loop(env, n, alpha, 4, 4, 3, 5), atol=1e-12)
    v = dp.solve_policy_exact(env, np.ones((42, 1)), 1.0)[1:41]
    estimate = result.history[..., 1:, ap.state_aggregation(40, 4)[1:41]]  # (n, alpha, run, episode, state)
    np.testing.assert_allclose(result.rms_error, np.sqrt(((estimate - v) ** 2).mean(axis=-1)), atol=1e-12)
    np.testing.assert_allclose(result.rms_error[:, 0], np.sqrt((v ** 2).mean()))  # alpha = 0 never learns


def test_n_step_td_spans_semi_gradient_td0_and_gradient_mc():
    env = RandomWalk1000Env(n_states=40, max_jump=6)
    result = ap.n_step_td_aggregation(env, (1, 10_000), 0.2, n_episodes=6, n_groups=4, n_runs=3, seed=3,
                                      progress=False)
    kw = dict(n_groups=4, n_runs=3, seed=3, record_every=6, progress=False)  # one block: the same episodes
    np.testing.assert_allclose(result.history[0, 0, :, -1], ap.semi_gradient_td0_aggregation(env, 6, 0.2, **kw).w,
                               atol=1e-12)  # n = 1 is TD(0)
    np.testing.assert_allclose(result.history[1, 0, :, -1], ap.gradient_mc_aggregation(env, 6, 0.2, **kw).w,
                               atol=1e-12)  # n beyond every episode's length is gradient Monte Carlo


@pytest.mark.parametrize("kwargs, match", [(dict(ns=(1, 0), alphas=0.1), "n must be a positive integer"),
                                           (dict(ns=2, alphas=(0.5, 1.5)), r"alphas must be step sizes in \[0, 1\]")])
def test_n_step_td_rejects_bad_n_and_alpha(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ap.n_step_td_aggregation(RandomWalk1000Env(n_states=40, max_jump=6), n_groups=4, **kwargs)

def test_exact_asymptotes_satisfy_their_defining_equations():
    env = RandomWalk1000Env(n_states=30, max_jump=5)
    groups = ap.state_aggregation(30, 3)
    X = ap.aggregation_features(groups)
    mu = ap.on_policy_distribution(env)
    v = dp.solve_policy_exact(env, np.ones((32, 1)), 1.0)
    w_mc = ap.ve_minimiser(X, mu, v)
    for g in range(3):
        members = groups == g
        assert w_mc[g] == pytest.approx((mu[members] * v[members]).sum() / mu[members].sum())
    w_td = ap.td_fixed_point(env, X, mu)
    model = dp.as_model(env)
    td_error = model.rewards[:, 0] + model.continuation[:, 0] @ X @ w_td - X @ w_td
    np.testing.assert_allclose(X.T @ (mu * td_error), 0.0, atol=1e-12)  # the expected TD update vanishes
    with pytest.raises(ValueError, match="divide"):
        ap.state_aggregation(30, 4)


# --------------------------------------------------------------------------- chapter 10: tile coding, Mountain Car


def test_tile_coder_one_tile_per_tiling_and_asymmetric_offsets():
    coder = TileCoder(LOW, HIGH, n_tilings=8, tiles_per_dim=8)
    assert coder.n_features == 8 * 9 * 9
    rng = np.random.default_rng(0)
    states = rng.uniform(LOW, HIGH, size=(500, 2))
    active = coder.active(states)
    assert active.shape == (500, 8) and active.min() >= 0 and active.max() < coder.n_features
    np.testing.assert_array_equal(active // 81, np.tile(np.arange(8), (500, 1)))  # tiling i's tile is in block i
    x = coder.features(states)
    np.testing.assert_array_equal(x.sum(1), 8)
    # generalisation: a state shares all 8 tiles with itself, more with a near neighbour than a far one
    near = (coder.active(states + (HIGH - LOW) / 80) == active).sum(1).mean()
    far = (coder.active(states + (HIGH - LOW) / 10) == active).sum(1).mean()
    assert 8 > near > far
    assert len({tuple(o) for o in coder.offsets}) == 8  # asymmetric: no two tilings displaced alike
    np.testing.assert_array_equal(coder.active(HIGH + 1), coder.active(HIGH))  # clipped onto the box
    with pytest.raises(ValueError, match="high > low"):
        TileCoder([0.0], [0.0])


def test_mountain_car_lanes_match_gymnasium_step_for_step():
    from gymnasium.envs.classic_control.mountain_car import MountainCarEnv

    rng = np.random.default_rng(0)
    lanes = MountainCarLanes(3, seed=0)
    idx = np.arange(3)
    lanes.reset(idx)
    envs = [MountainCarEnv() for _ in range(3)]
    for lane, env in enumerate(envs):
        env.reset(seed=lane)
        lanes.position[lane], lanes.velocity[lane] = env.state  # start both in the same state
    for _ in range(400):
        actions = rng.integers(0, 3, size=3)
        states, rewards, terminated, truncated = lanes.step(idx, actions)
        for lane, env in enumerate(envs):
            obs, reward, term, trunc, _ = env.step(int(actions[lane]))
            assert tuple(env.state) == tuple(states[lane])  # the same floats, bit for bit
            assert reward == rewards[lane] and term == terminated[lane] and not truncated[lane]
    assert lanes.reset(np.array([1]))[0, 1] == 0.0
    starts = MountainCarLanes(500, seed=1).reset(np.arange(500))[:, 0]
    assert -0.6 <= starts.min() and starts.max() < -0.4


def test_mountain_car_goal_and_time_limit():
    lanes = MountainCarLanes(2, seed=0, max_episode_steps=3)
    lanes.reset(np.arange(2))
    lanes.position[:] = [0.49, -0.5]
    lanes.velocity[:] = [0.05, 0.0]
    _, _, terminated, truncated = lanes.step(np.arange(2), np.array([2, 1]))
    assert terminated.tolist() == [True, False]
    lanes.step(np.array([1]), np.array([1]))
    _, _, terminated, truncated = lanes.step(np.array([1]), np.array([1]))
    assert truncated.tolist() == [True] and not terminated[0]


def test_semi_gradient_sarsa_is_seeded_and_learns():
    coder = TileCoder(LOW, HIGH, 8, 8)
    runs = [ap.semi_gradient_sarsa(MountainCarLanes(4, seed=3), coder, 0.5 / 8, 20, seed=3, snapshot_episodes=(1, 20))
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].steps, runs[1].steps)
    steps = runs[0].steps
    assert steps.shape == (4, 20) and steps[:, -5:].mean() < 0.5 * steps[:, 0].mean()
    assert sorted(runs[0].snapshots) == [1, 20]
    xs, ys, cost = ap.cost_to_go(runs[0].w[0], coder, resolution=10)
    assert cost.shape == (10, 10) and cost.max() > 0  # -max_a q: the learned steps to go are positive


# --------------------------------------------------------------------------- chapter 11: Baird's counterexample


def test_baird_semi_gradient_off_policy_td_diverges_and_the_triad_broken_converges():
    env = BairdEnv()
    sampled = ap.off_policy_td(env, FEATURES, BEHAVIOUR, TARGET, W0, 0.01, 0.99, 1000, seed=0)
    assert np.abs(sampled[-1]).max() > 10 * np.abs(W0).max()
    uniform = np.full(7, 1 / 7)
    largest = {}  # max_s |v(s, w)| after each sweep
    for name, kwargs in {
        "off-policy": dict(features=FEATURES, state_weights=uniform, target=TARGET, w0=W0),
        "on-policy": dict(features=FEATURES, state_weights=uniform, target=BEHAVIOUR, w0=W0),
        "no bootstrap": dict(features=FEATURES, state_weights=uniform, target=TARGET, w0=W0, bootstrap=False),
        "tabular": dict(features=np.eye(7), state_weights=uniform, target=TARGET, w0=FEATURES @ W0),
    }.items():
        history = ap.expected_update(env, alpha=0.01, gamma=0.99, n_sweeps=1000, **kwargs)
        largest[name] = np.abs(history @ kwargs["features"].T).max(axis=1)
    assert largest["off-policy"][-1] > 30 * largest["off-policy"][0]
    for name in ("on-policy", "no bootstrap", "tabular"):
        assert largest[name].max() <= largest[name][0] + 1e-9 and largest[name][-1] < largest[name][0], name


# --------------------------------------------------------------------------- the exercise checks


def _td_solution(r, q, term, trunc, g):
    return r + g * (1 - term) * q.detach().max(dim=1).values


def _sample_solution(storage, size, batch_size, generator):
    index = torch.randint(size, (batch_size,), generator=generator)
    return {name: value[index] for name, value in storage.items()}


def _double_solution(r, q_online, q_target, term, g):
    best = q_online.argmax(dim=1, keepdim=True)
    return (r + g * (1 - term) * q_target.gather(1, best).squeeze(1)).detach()


def _stub(*args):
    raise NotImplementedError("Exercise: write the body, then run the check cell below.")


def _pick(storage, index):
    return {name: value[index] for name, value in storage.items()}


WRONG = {
    "check_dqn_td_target": [
        ("terminated", lambda r, q, term, trunc, g: r + g * q.max(dim=1).values),
        ("time limit is not a terminal state", lambda r, q, term, trunc, g:
            r + g * (1 - torch.clamp(term + trunc, max=1.0)) * q.max(dim=1).values),
        ("average", lambda r, q, term, trunc, g: r + g * (1 - term) * q.mean(dim=1)),
        ("over the batch", lambda r, q, term, trunc, g: r + g * (1 - term) * q.max(dim=0).values),
        ("carries a gradient", lambda r, q, term, trunc, g: r + g * (1 - term) * q.max(dim=1).values),
    ],
    "check_replay_sample": [
        ("beyond `size`", lambda st, size, bs, gen: _pick(st, torch.randint(len(st["rewards"]), (bs,), generator=gen))),
        ("obs\\[i \\+ 1\\]", lambda st, size, bs, gen: (lambda i: {**_pick(st, i), "next_obs": st["obs"][i + 1]})(
            torch.randint(size, (bs,), generator=gen))),
        ("latest transitions", lambda st, size, bs, gen: {k: v[size - bs:size] for k, v in st.items()}),
        ("one index per sampled transition", lambda st, size, bs, gen:
            {k: v[torch.randint(size, (bs,), generator=gen)] for k, v in st.items()}),
    ],
    "check_double_dqn_target": [
        ("plain DQN's target", lambda r, qo, qt, term, g: r + g * (1 - term) * qt.max(dim=1).values),
        ("evaluate the chosen action with the online network", lambda r, qo, qt, term, g:
            r + g * (1 - term) * qo.max(dim=1).values),
        ("roles are swapped", lambda r, qo, qt, term, g:
            r + g * (1 - term) * qo.gather(1, qt.argmax(dim=1, keepdim=True)).squeeze(1)),
        ("terminated", lambda r, qo, qt, term, g: (r + g * qt.gather(1, qo.argmax(dim=1, keepdim=True)).squeeze(1))),
        ("carries a gradient", lambda r, qo, qt, term, g:
            r + g * (1 - term) * qt.gather(1, qo.argmax(dim=1, keepdim=True)).squeeze(1)),
    ],
}
SOLUTIONS = {"check_dqn_td_target": _td_solution, "check_replay_sample": _sample_solution,
             "check_double_dqn_target": _double_solution}


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_check_passes_on_the_solution_and_fails_on_the_stub(name, capsys):
    check = getattr(checks, name)
    for seed in range(5):
        check(SOLUTIONS[name], seed=seed)
    assert "✓" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="not done yet"):
        check(_stub)


@pytest.mark.parametrize("name, hint, wrong", [(n, h, w) for n, pairs in WRONG.items() for h, w in pairs],
                         ids=[f"{n}:{h}" for n, pairs in WRONG.items() for h, _ in pairs])
def test_check_names_the_mistake(name, hint, wrong):
    for seed in range(3):
        with pytest.raises(CheckFailed, match=hint):
            getattr(checks, name)(wrong, seed=seed)


def test_the_solutions_are_the_package_references():
    rng = np.random.default_rng(0)
    r, q, qo = t(rng.normal(size=6)), t(rng.normal(size=(6, 3))), t(rng.normal(size=(6, 3)))
    term = t([1, 0, 0, 1, 0, 0])
    torch.testing.assert_close(_td_solution(r, q, term, torch.zeros(6), 0.9), dqn.td_target(r, q, term, 0.9))
    torch.testing.assert_close(_double_solution(r, qo, q, term, 0.9), dqn.td_target(r, q, term, 0.9, qo))
    storage = {"rewards": torch.arange(10.0)}
    torch.testing.assert_close(_sample_solution(storage, 7, 5, torch.Generator().manual_seed(0))["rewards"],
                               dqn.sample_transitions(storage, 7, 5, torch.Generator().manual_seed(0))["rewards"])


# --------------------------------------------------------------------------- the benchmark


def test_benchmark_worker_smoke():
    """The course's side of ``benchmarks/dqn_vs_sb3.py`` in smoke mode (no Stable-Baselines3 needed)."""
    out = subprocess.run([sys.executable, "benchmarks/dqn_vs_sb3.py", "--smoke", "--worker", "ours", "--seed", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300, check=True).stdout
    record = json.loads(out.strip().splitlines()[-1])
    assert record["learner"] == "ours" and record["env_steps"] >= 2048
    assert [steps for steps, _ in record["evals"]][:2] == [1024, 2048]
    assert 0 < record["final_return"] <= 500


def test_benchmark_smoke_end_to_end():
    """The whole benchmark in smoke mode, where Stable-Baselines3 is installed (benchmarks/.venv-sb3)."""
    python = ROOT / "benchmarks" / ".venv-sb3" / "bin" / "python"
    if not python.exists():
        pytest.skip("benchmarks/.venv-sb3 does not exist (python benchmarks/dqn_vs_sb3.py creates it; it needs the network)")
    results = (ROOT / "benchmarks" / "RESULTS.md").read_text()
    out = subprocess.run([str(python), "benchmarks/dqn_vs_sb3.py", "--smoke"], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, check=True).stdout
    assert "## DQN vs Stable-Baselines3 on CartPole-v1" in out and "| **median** |" in out
    assert (ROOT / "benchmarks" / "RESULTS.md").read_text() == results  # smoke mode never writes
