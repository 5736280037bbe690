"""Tabular models (rl_basics.mdp), the 4x4 gridworld env and the gambler's problem model."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import rl_basics  # noqa: F401  (registers rl_basics/GridWorld4x4-v0)
from rl_basics.gambler import gamblers_problem
from rl_basics.mdp import TabularModel, as_model

# Two states; an outcome listed twice must add up, terminated outcomes must not be bootstrapped.
SMALL_P = {
    0: {0: [(0.25, 1, 2.0, False), (0.25, 1, 2.0, False), (0.5, 0, -1.0, True)]},
    1: {0: [(1.0, 1, 0.0, True)], 1: [(1.0, 0, 3.0, False)]},
}


def test_from_P_builds_expected_arrays():
    model = TabularModel.from_P(SMALL_P)
    assert (model.n_states, model.n_actions) == (2, 2)
    np.testing.assert_allclose(model.transitions[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(model.terminations[0, 0], [0.5, 0.0])
    np.testing.assert_allclose(model.continuation[0, 0], [0.0, 0.5])
    np.testing.assert_allclose(model.rewards, [[0.5 * 2.0 + 0.5 * -1.0, 0.0], [0.0, 3.0]])
    assert model.action_mask.tolist() == [[True, False], [True, True]]
    np.testing.assert_allclose(model.transitions[0, 1], 0.0)  # unavailable action: no mass
    assert model.terminal_states.tolist() == []  # state 1 has a non-terminating action


def test_from_env_frozenlake():
    model = TabularModel.from_env(gym.make("FrozenLake-v1"))
    assert model.transitions.shape == (16, 4, 16) and model.rewards.shape == (16, 4)
    np.testing.assert_allclose(model.transitions.sum(axis=2), 1.0)
    assert model.terminal_states.tolist() == [5, 7, 11, 12, 15]  # the holes and the goal
    # Slipping: action 2 (right) from state 0 goes right, down or up (stays) with 1/3 each.
    np.testing.assert_allclose(model.transitions[0, 2, [0, 1, 4]], [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(model.rewards[14, 2], 1 / 3)  # reaching the goal pays 1
    assert model.continuation[14, 2, 15] == 0.0 and model.terminations[14, 2, 15] == pytest.approx(1 / 3)


def test_from_env_cliffwalking_goal_transitions_terminate():
    model = TabularModel.from_env(gym.make("CliffWalking-v1"))
    assert model.n_states == 48 and model.n_actions == 4
    assert model.terminations[35, 2, 47] == 1.0 and model.continuation[35, 2].sum() == 0.0
    assert model.rewards[36, 1] == -100.0  # stepping into the cliff


def test_as_model_accepts_model_env_and_P():
    model = TabularModel.from_P(SMALL_P)
    assert as_model(model) is model
    np.testing.assert_array_equal(as_model(SMALL_P).transitions, model.transitions)
    np.testing.assert_array_equal(as_model([SMALL_P[0], SMALL_P[1]]).rewards, model.rewards)
    assert as_model(gym.make("FrozenLake-v1")).n_states == 16
    with pytest.raises(TypeError, match="gym.make"):
        as_model("FrozenLake-v1")
    with pytest.raises(TypeError, match="TabularModel"):
        as_model(3.0)


@pytest.mark.parametrize(
    "P, message",
    [
        ({0: {0: [(0.7, 0, 0.0, False)]}}, "sum to 0.7"),
        ({0: {0: [(0.5, 0, 0.0, False), (0.6, 0, 0.0, True)]}}, "sum to 1.1"),
        ({0: {0: [(1.0, 3, 0.0, False)]}}, "outside 0..0"),
        ({0: {0: [(1.0, 0, 0.0)]}}, "prob, next_state, reward, terminated"),
        ({0: {"left": [(1.0, 0, 0.0, False)]}}, "integers"),
        ({1: {0: [(1.0, 1, 0.0, False)]}}, "indexed by the states 0..0"),
        ({0: {}}, "no available action"),
        ({}, "empty"),
    ],
)
def test_bad_P_raises_value_error_naming_the_problem(P, message):
    with pytest.raises(ValueError, match=message):
        TabularModel.from_P(P)


class _NoModelEnv(gym.Env):
    """A Discrete env without ``P``: only samples, no model."""

    observation_space = gym.spaces.Discrete(3)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return 0, {}

    def step(self, action):
        return 0, 0.0, True, False, {}


def test_from_env_rejects_non_tabular_envs():
    with pytest.raises(ValueError, match="Discrete"):
        TabularModel.from_env(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match=r"unwrapped\.P is missing.*from_P"):
        TabularModel.from_env(_NoModelEnv())


class _AliasedEnv(_NoModelEnv):
    """Two hidden states, one observation (like Sutton & Barto's short corridor): the observation is not the state."""

    observation_space = gym.spaces.Discrete(1)
    P = {
        0: {0: [(1.0, 1, 0.0, False)], 1: [(1.0, 0, 0.0, True)]},
        1: {0: [(1.0, 0, 0.0, True)], 1: [(1.0, 1, 0.0, False)]},
    }


def test_from_env_rejects_an_observation_that_is_not_the_state():
    with pytest.raises(ValueError, match="P has 2 states but the observation space has 1.*observation to be the state"):
        TabularModel.from_env(_AliasedEnv())


def test_model_validates_array_shapes():
    with pytest.raises(ValueError, match=r"rewards must have shape \(S, A\)"):
        TabularModel(np.full((2, 1, 2), 0.5), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="transitions must have shape"):
        TabularModel(np.ones((2, 2)), np.zeros((2, 2)))


def test_gridworld_passes_gymnasium_env_checker():
    env = gym.make("rl_basics/GridWorld4x4-v0")
    check_env(env.unwrapped)


def test_gridworld_dynamics_match_example_4_1():
    env = gym.make("rl_basics/GridWorld4x4-v0").unwrapped
    model = TabularModel.from_env(env)
    assert model.terminal_states.tolist() == [0, 15]
    np.testing.assert_array_equal(model.rewards[1:15], -1.0)
    # 0=up 1=right 2=down 3=left; off-grid moves stay put; entering a corner terminates.
    expected = {(5, 0): 1, (5, 1): 6, (5, 2): 9, (5, 3): 4, (3, 0): 3, (3, 1): 3, (7, 2): 11, (8, 3): 8}
    for (s, a), s_next in expected.items():
        assert model.transitions[s, a, s_next] == 1.0, (s, a)
    assert model.terminations[1, 3, 0] == 1.0 and model.terminations[14, 1, 15] == 1.0
    assert model.continuation[1, 3].sum() == 0.0 and model.continuation[2, 3, 1] == 1.0
    # The env's step follows its P for every state and action.
    for s in range(1, 15):
        for a in range(4):
            env.reset(options={"start_state": s})
            s_next, reward, terminated, truncated, _ = env.step(a)
            _, p_next, p_reward, p_terminated = env.P[s][a][0]
            assert (s_next, reward, terminated, truncated) == (p_next, p_reward, p_terminated, False)


def test_gridworld_reset_starts_in_a_non_terminal_state():
    env = gym.make("rl_basics/GridWorld4x4-v0")
    starts = {env.reset(seed=seed)[0] for seed in range(200)}
    assert starts == set(range(1, 15))
    assert env.reset(options={"start_state": 6})[0] == 6
    with pytest.raises(ValueError, match="start_state"):
        env.reset(options={"start_state": 16})


def test_gridworld_ansi_render_marks_the_agent():
    env = gym.make("rl_basics/GridWorld4x4-v0", render_mode="ansi")
    env.reset(options={"start_state": 5})
    assert env.render() == "T . . .\n. x . .\n. . . .\n. . . T\n"


def test_gamblers_problem_model():
    model = as_model(gamblers_problem(p_heads=0.4))
    assert (model.n_states, model.n_actions) == (101, 51)
    assert model.terminal_states.tolist() == [0, 100]
    stakes = model.action_mask.sum(axis=1)
    assert stakes[1] == 1 and stakes[50] == 50 and stakes[99] == 1 and stakes[37] == 37 and stakes[70] == 30
    np.testing.assert_allclose(model.transitions[30, 10, [40, 20]], [0.4, 0.6])
    np.testing.assert_allclose(model.rewards[99, 1], 0.4)  # only reaching the goal pays
    assert model.continuation[99, 1].sum() == pytest.approx(0.6)  # the win ends the episode
    with pytest.raises(ValueError, match="p_heads"):
        gamblers_problem(p_heads=1.5)
