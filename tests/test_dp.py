"""Dynamic programming (rl_basics.dp) against hand computations and Sutton & Barto's numbers."""

import math

import gymnasium as gym
import numpy as np
import pytest

import rl_basics  # noqa: F401  (registers rl_basics/GridWorld4x4-v0)
from rl_basics import dp
from rl_basics.gambler import gamblers_problem
from rl_basics.mdp import as_model

# Q by hand, with V = [2, 10] and gamma = 0.9 (terminated outcomes are not bootstrapped):
#   Q(0,0) = 0.5*1 + 0.9*(0.5*V0)        = 1.4     Q(0,1) = 2 + 0.9*V1         = 11.0
#   Q(1,0) = -1 + 0.9*V0                 = 0.8     Q(1,1) = 0.25*4 + 0.9*0.25*V1 = 3.25
HAND_P = {
    0: {0: [(0.5, 0, 1.0, False), (0.5, 1, 0.0, True)], 1: [(1.0, 1, 2.0, False)]},
    1: {0: [(1.0, 0, -1.0, False)], 1: [(0.25, 1, 4.0, False), (0.75, 0, 0.0, True)]},
}
HAND_V = np.array([2.0, 10.0])
HAND_Q = np.array([[1.4, 11.0], [0.8, 3.25]])

# Sutton & Barto, Figure 4.1: v_k of the equiprobable random policy on the 4x4 gridworld
# (printed to one decimal), and v_pi = v_infinity (integers).
FIGURE_4_1 = {
    1: [[0.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, -1.0], [-1.0, -1.0, -1.0, 0.0]],
    2: [[0.0, -1.7, -2.0, -2.0], [-1.7, -2.0, -2.0, -2.0], [-2.0, -2.0, -2.0, -1.7], [-2.0, -2.0, -1.7, 0.0]],
    3: [[0.0, -2.4, -2.9, -3.0], [-2.4, -2.9, -3.0, -2.9], [-2.9, -3.0, -2.9, -2.4], [-3.0, -2.9, -2.4, 0.0]],
    10: [[0.0, -6.1, -8.4, -9.0], [-6.1, -7.7, -8.4, -8.4], [-8.4, -8.4, -7.7, -6.1], [-9.0, -8.4, -6.1, 0.0]],
}
V_RANDOM = np.array([[0, -14, -20, -22], [-14, -18, -20, -20], [-20, -20, -18, -14], [-22, -20, -14, 0]], float)
V_OPTIMAL = np.array([[0, -1, -2, -3], [-1, -2, -3, -2], [-2, -3, -2, -1], [-3, -2, -1, 0]], float)


@pytest.fixture(scope="module")
def grid():
    return as_model(gym.make("rl_basics/GridWorld4x4-v0"))


@pytest.fixture(scope="module")
def gambler():
    return as_model(gamblers_problem(p_heads=0.4))


def test_bellman_backups_match_hand_computation():
    policy = np.array([[0.5, 0.5], [0.2, 0.8]])
    np.testing.assert_allclose(dp.q_from_v(HAND_P, HAND_V, 0.9), HAND_Q)
    np.testing.assert_allclose(dp.bellman_expectation_backup(HAND_P, HAND_V, policy, 0.9), [6.2, 2.76])
    np.testing.assert_allclose(dp.bellman_optimality_backup(HAND_P, HAND_V, 0.9), [11.0, 3.25])


def test_q_from_v_gives_unavailable_actions_minus_infinity(gambler):
    q = dp.q_from_v(gambler, np.zeros(101), 1.0)
    assert q.shape == (101, 51)
    assert np.isneginf(q[10, 11:]).all() and np.isfinite(q[10, 1:11]).all() and np.isneginf(q[10, 0])
    assert q[99, 1] == pytest.approx(0.4)


def test_figure_4_1_values(grid):
    """v_k for k = 1, 2, 3, 10 within the book's rounding, and v_infinity exactly."""
    random = dp.uniform_random_policy(16, 4)
    history = []
    V, n_sweeps = dp.policy_evaluation(grid, random, gamma=1.0, theta=1e-10, history=history)
    for k, table in FIGURE_4_1.items():
        np.testing.assert_allclose(history[k].reshape(4, 4), table, atol=0.05 + 1e-12, err_msg=f"k={k}")
    np.testing.assert_allclose(history[0], 0.0)
    np.testing.assert_allclose(V.reshape(4, 4), V_RANDOM, atol=1e-8)
    np.testing.assert_allclose(dp.solve_policy_exact(grid, random, 1.0).reshape(4, 4), V_RANDOM, atol=1e-9)
    assert len(history) == n_sweeps + 1
    for k in (1, 2, 3, 10):  # the same numbers from a k-step horizon
        np.testing.assert_allclose(dp.finite_horizon_values(grid, k, 1.0, random), history[k])


def test_figure_4_1_greedy_policies(grid):
    """The book's right column: greedy w.r.t. v_3 is already optimal, and equals greedy w.r.t. v_10 and v_inf."""
    random = dp.uniform_random_policy(16, 4)
    history = []
    dp.policy_evaluation(grid, random, gamma=1.0, theta=1e-10, history=history)
    greedy = {k: dp.greedy_policy(grid, history[k], 1.0, ties="uniform") for k in (3, 10, -1)}
    np.testing.assert_allclose(greedy[3], greedy[10])
    np.testing.assert_allclose(greedy[3], greedy[-1])
    np.testing.assert_allclose(dp.solve_policy_exact(grid, greedy[3], 1.0).reshape(4, 4), V_OPTIMAL, atol=1e-9)
    # State 1 (top row, next to the corner): only "left" is greedy; state 5: "up" and "left" tie.
    np.testing.assert_allclose(greedy[3][1], [0, 0, 0, 1])
    np.testing.assert_allclose(greedy[3][5], [0.5, 0, 0, 0.5])
    # After one sweep the greedy policy is still not optimal in the middle states (all tied).
    np.testing.assert_allclose(dp.greedy_policy(grid, history[1], 1.0, ties="uniform")[6], 0.25)


def test_in_place_evaluation_needs_fewer_sweeps(grid):
    random = dp.uniform_random_policy(16, 4)
    V_sync, n_sync = dp.policy_evaluation(grid, random, 1.0, theta=1e-6)
    V_inplace, n_inplace = dp.policy_evaluation(grid, random, 1.0, theta=1e-6, in_place=True)
    assert n_inplace < n_sync
    np.testing.assert_allclose(V_sync.reshape(4, 4), V_RANDOM, atol=1e-4)
    np.testing.assert_allclose(V_inplace.reshape(4, 4), V_RANDOM, atol=1e-4)


def test_in_place_value_iteration_agrees_and_needs_fewer_sweeps(gambler):
    V_sync, pi_sync, info_sync = dp.value_iteration(gambler, 1.0, theta=1e-12, tol=1e-9)
    V_inplace, pi_inplace, info_inplace = dp.value_iteration(gambler, 1.0, theta=1e-12, tol=1e-9, in_place=True)
    np.testing.assert_allclose(V_inplace, V_sync, atol=1e-10)
    np.testing.assert_array_equal(pi_inplace, pi_sync)
    assert info_inplace["n_sweeps"] < info_sync["n_sweeps"]


def _is_greedy(model, policy, V, gamma, tol=1e-6):
    q = dp.q_from_v(model, V, gamma)
    greedy = q >= q.max(axis=1, keepdims=True) - tol
    return bool((policy[~greedy] == 0).all())


@pytest.mark.parametrize(
    "name, gamma",
    [("gridworld", 1.0), ("frozenlake", 0.99), ("frozenlake8x8", 0.9), ("gambler", 1.0), ("cliffwalking", 0.95)],
)
def test_policy_iteration_and_value_iteration_agree(name, gamma, grid, gambler):
    model = {
        "gridworld": grid,
        "gambler": gambler,
        "frozenlake": as_model(gym.make("FrozenLake-v1")),
        "frozenlake8x8": as_model(gym.make("FrozenLake8x8-v1")),
        "cliffwalking": as_model(gym.make("CliffWalking-v1")),
    }[name]
    V_vi, pi_vi, info_vi = dp.value_iteration(model, gamma, theta=1e-12)
    V_pi, pi_pi, info_pi = dp.policy_iteration(model, gamma)
    np.testing.assert_allclose(V_vi, V_pi, atol=1e-8)
    for policy in (pi_vi, pi_pi):
        np.testing.assert_allclose(policy.sum(axis=1), 1.0)
        assert set(np.unique(policy)) <= {0.0, 1.0}  # deterministic
        assert _is_greedy(model, policy, V_pi, gamma)
    # The policy iteration policy is optimal: its own exact value is V*.
    np.testing.assert_allclose(dp.solve_policy_exact(model, pi_pi, gamma), V_pi, atol=1e-8)
    assert info_pi["n_iterations"] == len(info_pi["values"]) == len(info_pi["policies"])
    assert info_vi["n_sweeps"] == len(info_vi["deltas"])
    if name == "gridworld":
        np.testing.assert_allclose(V_vi.reshape(4, 4), V_OPTIMAL)


@pytest.mark.parametrize("eval_sweeps", [1, 3, 20])
def test_generalized_policy_iteration_reaches_the_same_optimum(grid, eval_sweeps):
    V_star, _, _ = dp.policy_iteration(grid, 1.0)
    V, policy, info = dp.policy_iteration(grid, 1.0, eval_sweeps=eval_sweeps)
    np.testing.assert_allclose(V, V_star, atol=1e-8)
    np.testing.assert_allclose(dp.solve_policy_exact(grid, policy, 1.0), V_star, atol=1e-9)
    assert info["evaluation_sweeps"] == eval_sweeps * info["n_iterations"]


def test_gambler_values_match_figure_4_3(gambler):
    """p_h = 0.4: v(s) is the probability of reaching 100 (Figure 4.3, upper panel)."""
    V, policy, _ = dp.value_iteration(gambler, 1.0, theta=1e-12)
    p, q = 0.4, 0.6
    # Bet everything at 25 and 50, bet 25 at 75 (one or two flips decide).
    assert V[50] == pytest.approx(0.4, abs=1e-10)
    assert V[25] == pytest.approx(p * 0.4, abs=1e-10)  # 0.16
    assert V[75] == pytest.approx(p + q * 0.4, abs=1e-10)  # 0.64
    # Bold play cycles 20 -> 40 -> 80 -> 60 -> 20; solving the four equations by hand:
    v20 = p**3 * (1 + q) / (1 - p**2 * q**2)
    v60 = p + q * v20
    expected = {20: v20, 40: v20 / p, 60: v60, 80: p + q * v60}
    for capital, value in expected.items():
        assert V[capital] == pytest.approx(value, abs=1e-10), capital
    assert V[20] == pytest.approx(0.10865874, abs=1e-8)
    # Bold play (stake min(s, 100 - s)) is optimal at every capital for p_h < 0.5.
    bold = np.zeros((101, 51))
    bold[np.arange(101), np.minimum(np.arange(101), 100 - np.arange(101))] = 1.0
    np.testing.assert_allclose(dp.solve_policy_exact(gambler, bold, 1.0), V, atol=1e-9)
    assert V[0] == 0.0 and V[100] == 0.0  # terminal states: no future reward
    assert np.all(np.diff(V[:100]) > 0)  # more capital, better odds


def test_gambler_policy_breaks_ties_toward_the_smallest_stake(gambler):
    """Figure 4.3, lower panel: one of many optimal policies, the one with the smallest optimal stakes."""
    V, policy, _ = dp.value_iteration(gambler, 1.0, theta=1e-12, tol=1e-9)
    stakes = policy.argmax(axis=1)
    assert stakes[50] == 50 and stakes[25] == 25 and stakes[75] == 25
    assert stakes[51] == 1  # "for capital of 50 it bets it all on one flip, but for capital of 51 it does not"
    np.testing.assert_array_equal(stakes[1:13], np.arange(1, 13))
    q = dp.q_from_v(gambler, V, 1.0)
    tied = {s: set(np.flatnonzero(q[s] >= q[s].max() - 1e-9).tolist()) for s in (51, 64)}
    assert tied[51] == {1, 49} and tied[64] == {11, 14, 36}  # ties: many optimal policies


def test_frozenlake_simulation_matches_the_time_limited_success_probability():
    """Simulated success of the greedy policy vs DP's exact success probability within the 100-step limit."""
    env = gym.make("FrozenLake-v1")
    model = as_model(env)
    V_star, policy, _ = dp.value_iteration(model, 1.0, theta=1e-12)
    assert V_star[0] == pytest.approx(0.8235, abs=1e-4)  # the known infinite-horizon optimum
    horizon = env.spec.max_episode_steps
    p_limit = dp.finite_horizon_values(model, horizon, 1.0, policy)[0]
    p_forever = dp.solve_policy_exact(model, policy, 1.0)[0]
    assert p_forever == pytest.approx(V_star[0], abs=1e-8)
    assert p_limit < p_forever  # the time limit costs some successes
    assert p_limit <= dp.finite_horizon_values(model, horizon, 1.0)[0] + 1e-12  # cannot beat the best

    actions = policy.argmax(axis=1)
    n_episodes, successes = 2000, 0
    obs, _ = env.reset(seed=0)
    for _ in range(n_episodes):
        done = False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(int(actions[obs]))
            done = terminated or truncated
        successes += reward
        obs, _ = env.reset()
    rate = successes / n_episodes
    tolerance = 4 * math.sqrt(p_limit * (1 - p_limit) / n_episodes)  # 4 binomial standard errors
    assert abs(rate - p_limit) < tolerance
    assert abs(rate - p_forever) > tolerance  # the simulation does tell the two numbers apart


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "0.9"])
def test_gamma_outside_unit_interval_is_rejected(grid, gamma):
    random = dp.uniform_random_policy(16, 4)
    for call in (
        lambda: dp.policy_evaluation(grid, random, gamma),
        lambda: dp.value_iteration(grid, gamma),
        lambda: dp.policy_iteration(grid, gamma),
        lambda: dp.solve_policy_exact(grid, random, gamma),
        lambda: dp.q_from_v(grid, np.zeros(16), gamma),
    ):
        with pytest.raises(ValueError, match=r"gamma must be a number in \[0, 1\]"):
            call()


def test_non_terminating_policy_with_gamma_one_is_detected(grid):
    """Always pushing up: every column but the first ends in the top row, bumping into the wall forever at -1 a step."""
    up = np.eye(4)[np.zeros(16, dtype=int)]
    stuck = r"states \[1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14\]"
    with pytest.raises(ValueError, match=r"did not converge in 500 sweeps.*" + stuck + ".*never reaches"):
        dp.policy_evaluation(grid, up, 1.0, max_sweeps=500)
    with pytest.raises(ValueError, match=r"singular.*" + stuck):
        dp.solve_policy_exact(grid, up, 1.0)
    # Discounting makes the same policy's values finite: -1/(1-gamma) on the top row.
    V, _ = dp.policy_evaluation(grid, up, 0.9, theta=1e-10)
    np.testing.assert_allclose(V[1:4], -10.0, atol=1e-8)
    np.testing.assert_allclose(dp.solve_policy_exact(grid, up, 0.9), V, atol=1e-8)


def test_value_iteration_with_unbounded_optimal_return_is_detected():
    forever = {0: {0: [(1.0, 0, 1.0, False)]}}  # +1 per step, never ends
    with pytest.raises(ValueError, match="value iteration did not converge in 300 sweeps"):
        dp.value_iteration(forever, 1.0, max_sweeps=300)
    V, _, _ = dp.value_iteration(forever, 0.5)
    assert V[0] == pytest.approx(2.0, abs=1e-7)


def test_zero_reward_loop_has_value_zero_with_gamma_one():
    P = {
        0: {0: [(0.5, 1, 1.0, True), (0.5, 2, 0.0, False)]},
        1: {0: [(1.0, 1, 0.0, True)]},
        2: {0: [(1.0, 2, 0.0, False)]},  # forgets to terminate but pays nothing: value 0
    }
    policy = np.ones((3, 1))
    np.testing.assert_allclose(dp.solve_policy_exact(P, policy, 1.0), [0.5, 0.0, 0.0])
    np.testing.assert_allclose(dp.policy_evaluation(P, policy, 1.0)[0], [0.5, 0.0, 0.0])


def test_bad_policies_and_values_are_rejected(grid, gambler):
    with pytest.raises(ValueError, match=r"np\.eye\(4\)\[a\]"):
        dp.policy_evaluation(grid, np.zeros(16, dtype=int), 0.9)
    with pytest.raises(ValueError, match="summing to 1"):
        dp.policy_evaluation(grid, np.full((16, 4), 0.3), 0.9)
    with pytest.raises(ValueError, match="action 1 in state 0"):
        dp.solve_policy_exact(gambler, np.full((101, 51), 1 / 51), 1.0)
    with pytest.raises(ValueError, match=r"V must have shape \(S,\) = \(16,\)"):
        dp.q_from_v(grid, np.zeros(15), 0.9)
    with pytest.raises(ValueError, match="theta must be positive"):
        dp.value_iteration(grid, 0.9, theta=0)
    with pytest.raises(ValueError, match="ties must be"):
        dp.greedy_policy(grid, np.zeros(16), 0.9, ties="random")
    with pytest.raises(ValueError, match="eval_sweeps"):
        dp.policy_iteration(grid, 0.9, eval_sweeps=0)
    with pytest.raises(ValueError, match="horizon"):
        dp.finite_horizon_values(grid, -1)


def test_uniform_random_policy_respects_the_action_mask(gambler):
    policy = dp.uniform_random_policy(101, 51, gambler.action_mask)
    np.testing.assert_allclose(policy.sum(axis=1), 1.0)
    np.testing.assert_allclose(policy[10, 1:11], 0.1)
    assert policy[10, 0] == 0 and policy[10, 11:].sum() == 0
    np.testing.assert_allclose(dp.uniform_random_policy(2, 4), 0.25)


def test_every_function_accepts_an_env_a_P_dict_or_a_model():
    env = gym.make("FrozenLake-v1")
    model = as_model(env)
    policy = dp.uniform_random_policy(16, 4)
    results = [dp.solve_policy_exact(mdp, policy, 0.9) for mdp in (env, env.unwrapped.P, model)]
    np.testing.assert_allclose(results[0], results[1])
    np.testing.assert_allclose(results[0], results[2])
    V_env, _, _ = dp.value_iteration(env, 0.9)
    V_P, _, _ = dp.value_iteration(env.unwrapped.P, 0.9)
    np.testing.assert_allclose(V_env, V_P)
