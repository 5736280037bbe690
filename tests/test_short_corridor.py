"""The short corridor of Example 13.1: dynamics, model, and the book's exact numbers."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rl_basics  # noqa: F401  (registers the environments)
from rl_basics.envs.short_corridor import (
    GOAL,
    LEFT,
    RIGHT,
    ShortCorridorEnv,
    corridor_state_values,
    optimal_right_probability,
)

# action sequences from the start that reach each non-terminal cell
PATH_TO = {0: [], 1: [RIGHT], 2: [RIGHT, LEFT]}


def test_passes_check_env_and_is_registered():
    check_env(ShortCorridorEnv(), skip_render_check=True)
    env = gym.make("rl_basics/ShortCorridor-v0")
    assert env.spec.max_episode_steps == 1000
    assert env.observation_space == gym.spaces.Discrete(1)
    assert env.action_space == gym.spaces.Discrete(2)


@pytest.mark.parametrize(
    "cell, action, expected",
    [(0, LEFT, 0), (0, RIGHT, 1), (1, LEFT, 2), (1, RIGHT, 0), (2, LEFT, 1), (2, RIGHT, GOAL)],
)
def test_dynamics_match_the_book_and_the_model(cell, action, expected):
    env = ShortCorridorEnv()
    obs, info = env.reset(seed=0)
    for a in PATH_TO[cell]:
        obs, *_ , info = env.step(a)
    assert info["cell"] == cell and obs == 0  # the agent sees the same observation everywhere
    obs, reward, terminated, truncated, info = env.step(action)
    assert (obs, reward, terminated, truncated, info["cell"]) == (0, -1.0, expected == GOAL, False, expected)
    assert env.P[cell][action] == [(1.0, expected, -1.0, expected == GOAL)]


def test_simulated_return_matches_the_exact_value():
    """A uniformly random policy: mean return of 4000 episodes vs the exact v(S) = -12."""
    env = gym.make("rl_basics/ShortCorridor-v0")
    rng = np.random.default_rng(0)
    returns = []
    for episode in range(4000):
        env.reset(seed=episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.random() < 0.5))
            total += reward
            done = terminated or truncated
        returns.append(total)
    returns = np.asarray(returns)
    exact = corridor_state_values(0.5)[0]
    assert exact == pytest.approx(-12.0)
    assert abs(returns.mean() - exact) < 4 * returns.std(ddof=1) / np.sqrt(len(returns))


def test_optimal_stochastic_policy_matches_the_book():
    """Example 13.1: the best policy goes right with probability ~0.59 and has value ~-11.6."""
    p_star, v_star = optimal_right_probability()
    assert round(p_star, 2) == 0.59
    # the book prints -11.6: the exact -11.657 truncated (not rounded) to one decimal
    assert -11.7 < v_star < -11.6
    # the closed forms derived in notebook 06
    assert p_star == pytest.approx(2 - np.sqrt(2), abs=1e-6)
    assert v_star == pytest.approx(-(6 + 4 * np.sqrt(2)), abs=1e-9)
    grid = np.linspace(0.01, 0.99, 99)
    assert corridor_state_values(grid)[:, 0].max() <= v_star


def test_epsilon_greedy_policies_match_the_book():
    """With epsilon = 0.1 the action-value methods' policies reach only about -44 or -82."""
    epsilon = 0.1
    right_biased = 1 - epsilon + epsilon / 2
    left_biased = epsilon / 2
    assert round(corridor_state_values(right_biased)[0]) == -44
    assert round(corridor_state_values(left_biased)[0]) == -82
    # deterministic policies never reach the goal
    assert np.all(np.isneginf(corridor_state_values([0.0, 1.0])))


def test_values_are_vectorised_and_validated():
    grid = np.array([[0.2, 0.5], [0.7, 0.9]])
    values = corridor_state_values(grid)
    assert values.shape == (2, 2, 3)
    assert values[0, 1] == pytest.approx([-12.0, -10.0, -6.0])
    with pytest.raises(ValueError, match="p_right"):
        corridor_state_values(1.5)
    with pytest.raises(ValueError, match="action"):
        ShortCorridorEnv().step(2)
