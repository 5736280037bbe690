"""The course's own Sutton & Barto environments: API conformance, models, and their exact solutions."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rl_basics  # noqa: F401  (registers the envs)
from rl_basics import dp
from rl_basics.envs.maximization_bias import LEFT, RIGHT, STATE_A, STATE_B, TERMINAL, MaximizationBiasEnv
from rl_basics.envs.random_walk import RandomWalkEnv
from rl_basics.envs.windy_gridworld import WindyGridworldEnv
from rl_basics.lanes import ModelLanes
from rl_basics.mdp import TabularModel

ENV_IDS = ["rl_basics/RandomWalk-v0", "rl_basics/WindyGridworld-v0", "rl_basics/MaximizationBias-v0"]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_and_passes_env_checker(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    TabularModel.from_env(env)  # P is a valid model: probabilities sum to 1, states in range


def test_king_moves_variant_passes_env_checker():
    env = gym.make("rl_basics/WindyGridworld-v0", king_moves=True)
    check_env(env.unwrapped)
    assert env.action_space.n == 8


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_ansi_render(env_id):
    env = gym.make(env_id, render_mode="ansi")
    env.reset(seed=0)
    assert isinstance(env.render(), str)


def test_random_walk_true_values_from_dp():
    """Example 6.2: v(A..E) = 1/6 .. 5/6, from chapter 2's policy evaluation on the env's model."""
    env = gym.make("rl_basics/RandomWalk-v0")
    V, _ = dp.policy_evaluation(env, np.ones((7, 1)), gamma=1.0, theta=1e-12)
    np.testing.assert_allclose(V[1:6], np.arange(1, 6) / 6, atol=1e-9)
    assert V[0] == V[6] == 0
    np.testing.assert_allclose(env.unwrapped.true_values(), V, atol=1e-9)


def test_nineteen_state_walk_true_values():
    """Figure 7.2's walk: 19 states, -1 on the left, +1 on the right: v = -18/20 .. 18/20."""
    env = gym.make("rl_basics/RandomWalk-v0", n_states=19, left_reward=-1.0)
    V, _ = dp.policy_evaluation(env, np.ones((21, 1)), gamma=1.0, theta=1e-12)
    np.testing.assert_allclose(V[1:20], np.arange(-18, 19, 2) / 20, atol=1e-7)


def test_random_walk_dynamics():
    env = gym.make("rl_basics/RandomWalk-v0")
    s, _ = env.reset(seed=1)
    assert s == 3
    moves = []
    for _ in range(2000):
        s2, r, term, trunc, _ = env.step(0)
        moves.append(s2 - s)
        assert abs(s2 - s) == 1 and not trunc
        assert r == (1.0 if s2 == 6 else 0.0) and term == (s2 in (0, 6))
        s = env.reset()[0] if term else s2
    p_right = np.mean(np.array(moves) > 0)
    assert abs(p_right - 0.5) < 4 * np.sqrt(0.25 / len(moves))


def test_windy_gridworld_wind_and_edges():
    env = WindyGridworldEnv()
    P = env.P
    assert P[3 * 10 + 3][1] == [(1.0, 2 * 10 + 4, -1.0, False)]  # wind 1 in column 3: right goes up one
    assert P[3 * 10 + 6][1] == [(1.0, 1 * 10 + 7, -1.0, False)]  # wind 2 in column 6
    assert P[0 * 10 + 7][0] == [(1.0, 0 * 10 + 7, -1.0, False)]  # pushed against the top edge
    assert P[3 * 10 + 0][3] == [(1.0, 3 * 10 + 0, -1.0, False)]  # left edge
    assert P[4 * 10 + 7][0] == [(1.0, 1 * 10 + 7, -1.0, False)]  # up + wind 2 from row 4: row 1
    assert P[3 * 10 + 8][3][0][1:] == (2 * 10 + 7, -1.0, False)  # wind of the column moved *from* (1)
    assert P[5 * 10 + 7][0][0][1:] == (2 * 10 + 7, -1.0, False)


@pytest.mark.parametrize("king_moves, length", [(False, 15), (True, 7)])
def test_windy_gridworld_optimal_path_length_by_value_iteration(king_moves, length):
    """Example 6.5: the shortest path takes 15 steps (7 with king's moves, Exercise 6.9)."""
    env = gym.make("rl_basics/WindyGridworld-v0", king_moves=king_moves)
    V, policy, _ = dp.value_iteration(env, gamma=1.0)
    start = env.unwrapped.start_state
    assert V[start] == -length
    s, _ = env.reset(seed=0)
    for step in range(1, 100):
        s, r, term, _, _ = env.step(int(np.argmax(policy[s])))
        if term:
            break
    assert term and step == length


def test_maximization_bias_model_and_dp():
    env = gym.make("rl_basics/MaximizationBias-v0")
    V, policy, _ = dp.value_iteration(env, gamma=1.0)
    np.testing.assert_allclose(V, [0.0, -0.1, 0.0], atol=1e-9)
    assert np.argmax(policy[STATE_A]) == RIGHT  # right is optimal: left is worth -0.1


def test_maximization_bias_dynamics_mask_and_reward_distribution():
    env = gym.make("rl_basics/MaximizationBias-v0")
    s, info = env.reset(seed=0)
    assert s == STATE_A and info["action_mask"].tolist() == [1, 1] + [0] * 8
    s, r, term, _, info = env.step(5)  # not an action of A: a no-op, flagged by the mask
    assert (s, r, term) == (STATE_A, 0.0, False)
    assert env.step(RIGHT)[:3] == (TERMINAL, 0.0, True)
    rewards = []
    for _ in range(4000):
        env.reset()
        s, r, term, _, info = env.step(LEFT)
        assert (s, r, term) == (STATE_B, 0.0, False) and info["action_mask"].all()
        s, r, term, _, _ = env.step(int(env.unwrapped.np_random.integers(10)))
        assert s == TERMINAL and term
        rewards.append(r)
    n = len(rewards)
    assert abs(np.mean(rewards) + 0.1) < 4 / np.sqrt(n)  # N(-0.1, 1): standard error 1/sqrt(n)
    assert abs(np.std(rewards) - 1.0) < 4 * np.sqrt(0.5 / n)  # SE of a normal sample's std ~ sigma/sqrt(2n)


def test_vector_simulator_reproduces_the_env_distribution():
    """ModelLanes samples P plus reward_std: same reward mean and spread as the env itself."""
    env = gym.make("rl_basics/MaximizationBias-v0")
    lanes = ModelLanes(env, 5000, seed=3)
    idx = np.arange(5000)
    assert (lanes.reset(idx) == STATE_A).all()
    s, r, term, _ = lanes.step(idx, np.full(5000, LEFT))
    assert (s == STATE_B).all() and (r == 0).all() and not term.any()
    s, r, term, _ = lanes.step(idx, np.arange(5000) % 10)
    assert (s == TERMINAL).all() and term.all()
    assert abs(r.mean() + 0.1) < 4 / np.sqrt(5000) and abs(r.std() - 1.0) < 4 * np.sqrt(0.5 / 5000)


def test_vector_simulator_matches_env_step_for_step_on_a_deterministic_env():
    env = gym.make("rl_basics/WindyGridworld-v0")
    lanes = ModelLanes(env, 1, seed=0)
    rng = np.random.default_rng(0)
    s_env, _ = env.reset(seed=0)
    s_vec = lanes.reset(np.arange(1))[0]
    for _ in range(500):
        a = int(rng.integers(4))
        s_env, r_env, t_env, _, _ = env.step(a)
        s_vec, r_vec, t_vec, _ = (x[0] for x in lanes.step(np.arange(1), np.array([a])))
        assert (s_env, r_env, t_env) == (s_vec, r_vec, t_vec)
        if t_env:
            s_env, _ = env.reset()
            s_vec = lanes.reset(np.arange(1))[0]


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="n_states"):
        RandomWalkEnv(n_states=4)
    with pytest.raises(ValueError, match="n_actions_b"):
        MaximizationBiasEnv(n_actions_b=1)
    with pytest.raises(ValueError, match="action"):
        RandomWalkEnv().step(3)
