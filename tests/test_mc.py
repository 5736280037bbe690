"""Monte-Carlo methods on Blackjack: Figures 5.1-5.3 against exact dynamic-programming references.

Tolerances come from the per-state visit counts and the runs averaged (standard errors).
With 200 states tested at once, 4.6 standard errors keeps the chance of any false alarm
below 0.1% (Bonferroni).
"""

import gymnasium as gym
import numpy as np
import pytest

from rl_basics import blackjack as bj
from rl_basics import mc, policies

Z_FAMILY = 4.6  # 200 simultaneous comparisons
Z = 4.0
BOOK = np.zeros((32, 11, 2), dtype=bool)
BOOK[12:22, 1:, :] = True  # the 200 states of Figures 5.1 and 5.2


@pytest.fixture(scope="module")
def blackjack():
    return gym.make("Blackjack-v1", sab=True)


@pytest.fixture(scope="module")
def exact_stick20():
    return bj.exact_values(bj.stick_on(20))


def assert_close_to_exact(result, reference):
    se = result.std / np.sqrt(result.counts)
    z = np.abs(result.V - reference) / se
    assert np.all(result.counts[BOOK] > 30)
    assert np.nanmax(z[BOOK]) < Z_FAMILY, np.nanmax(z[BOOK])


def test_figure_5_1_after_500k_episodes(blackjack, exact_stick20):
    res = mc.mc_prediction(blackjack, bj.stick_on(20), 500_000, simulator="vector", snapshots=(10_000,), seed=0)
    assert_close_to_exact(res, exact_stick20.v_visit)
    # the book's landmarks: near +1 at 21 (except against an ace), strongly negative below 20 against an ace
    assert np.all(res.V[21, 2:, :] > 0.85)
    assert np.all((res.V[12:20, 1, 0] > -0.8) & (res.V[12:20, 1, 0] < -0.6))
    assert np.all((exact_stick20.v[12:20, 1, 0] > -0.8) & (exact_stick20.v[12:20, 1, 0] < -0.6))
    # after 10,000 episodes the usable-ace estimates are still rough (few visits), as in the figure
    early = res.snapshots[10_000]
    error = {k: np.abs(v - exact_stick20.v_visit)[12:22, 1:, 1].max() for k, v in ((10_000, early), (500_000, res.V))}
    assert error[10_000] > error[500_000]


def test_first_and_every_visit_coincide_on_blackjack(blackjack):
    """No state repeats within a Blackjack episode, so both estimators are identical."""
    a = mc.mc_prediction(blackjack, bj.stick_on(20), 20_000, first_visit=True, simulator="vector", seed=3)
    b = mc.mc_prediction(blackjack, bj.stick_on(20), 20_000, first_visit=False, simulator="vector", seed=3)
    np.testing.assert_array_equal(a.V, b.V)


def test_every_visit_differs_where_states_repeat():
    """On the random walk states repeat: every-visit MC averages more (correlated) returns per state.
    First-visit MC averages independent returns, one per episode, so its standard error is exact."""
    env = gym.make("rl_basics/RandomWalk-v0")
    pi = np.ones((7, 1))
    a = mc.mc_prediction(env, pi, 300, first_visit=True, seed=0)
    b = mc.mc_prediction(env, pi, 300, first_visit=False, seed=0)
    assert (b.counts > a.counts).any() and (a.counts <= 300).all()
    truth = np.arange(1, 6) / 6
    assert np.all(np.abs(a.V[1:6] - truth) < Z * a.std[1:6] / np.sqrt(a.counts[1:6]))


def test_gym_path_agrees_with_exact_values(blackjack, exact_stick20):
    res = mc.mc_prediction(blackjack, bj.stick_on(20), 3000, seed=0)  # through gymnasium, one episode at a time
    ok = BOOK & (res.counts > 5)
    z = np.abs(res.V - exact_stick20.v_visit) / np.maximum(res.std, 0.3) * np.sqrt(res.counts)
    assert np.nanmax(z[ok]) < Z_FAMILY


def test_seeding(blackjack):
    a = mc.mc_prediction(blackjack, bj.stick_on(20), 500, seed=7)
    b = mc.mc_prediction(blackjack, bj.stick_on(20), 500, seed=7)
    np.testing.assert_array_equal(a.V, b.V)


def policy_matches_optimum_where_clear(policy, Q, counts, min_clear):
    """States where pi_* is decided by more than Z_FAMILY standard errors must agree with pi_*."""
    q_star, pi_star, _ = bj.exact_optimal()
    gap = np.abs(q_star[..., 0] - q_star[..., 1])
    se = np.sqrt(1.0 / np.maximum(counts[..., 0], 1) + 1.0 / np.maximum(counts[..., 1], 1))  # |G| <= 1
    clear = BOOK & (gap > Z_FAMILY * se)
    assert clear.sum() >= min_clear
    np.testing.assert_array_equal(policy[clear], pi_star[clear])
    return (policy[BOOK] != pi_star[BOOK]).sum()


def test_exploring_starts_finds_figure_5_2(blackjack):
    res = mc.mc_control_exploring_starts(blackjack, 500_000, initial_policy=bj.stick_on(20).argmax(-1),
                                         batch_size=500, simulator="vector", seed=0)
    mismatches = policy_matches_optimum_where_clear(res.policy, res.Q, res.counts, min_clear=100)
    assert mismatches <= 4  # only near-ties may differ
    _, _, v_star = bj.exact_optimal()
    v = res.Q.max(axis=-1)
    se = 1.0 / np.sqrt(np.maximum(res.counts.max(axis=-1), 1))
    assert np.all(np.abs(v - v_star)[BOOK] < Z_FAMILY * se[BOOK] + 0.02)


def test_exploring_starts_gym_path_runs_the_book_algorithm(blackjack):
    res = mc.mc_control_exploring_starts(blackjack, 300, initial_policy=bj.stick_on(20).argmax(-1), seed=0)
    assert res.counts.sum() >= 300 and res.policy.shape == (32, 11, 2)


def test_on_policy_glie_control(blackjack):
    """epsilon_k = c/k (GLIE): where the optimum is clear, the greedy policy is pi_*; and it plays far
    better than the starting policy. (Sample averages still remember the early, nearly random
    episodes, so rarely visited states converge slowly: the notebook discusses this.)"""
    res = mc.mc_control_epsilon_greedy(blackjack, 300_000, epsilon=policies.glie_schedule(10_000.0),
                                       batch_size=500, simulator="vector", seed=0)
    assert res.epsilons[0] == 1.0 and np.isclose(res.epsilons[-1], 10_000 / 300_000)
    policy_matches_optimum_where_clear(res.policy, res.Q, res.counts, min_clear=40)
    learned = bj.exact_values(np.eye(2)[np.where(res.policy < 0, 0, res.policy)]).expected_return
    optimal = bj.exact_values(np.eye(2)[np.maximum(bj.exact_optimal()[1], 0)]).expected_return
    assert learned <= optimal + 1e-12
    assert learned > bj.exact_values(bj.stick_on(20)).expected_return + 0.25


def test_figure_5_3_ordinary_vs_weighted_importance_sampling(blackjack):
    """Example 5.4: 100 runs of 10,000 behaviour (uniform random) episodes from (13, 2, usable ace)."""
    true = -0.27726
    res = mc.off_policy_mc_prediction(blackjack, bj.stick_on(20), 10_000, start_state=(13, 2, 1), n_runs=100,
                                      simulator="vector", seed=0)
    for h in (res.history_ordinary, res.history_weighted):  # both converge: MSE after 10,000 episodes is small
        assert ((h[:, -1] - true) ** 2).mean() < 0.01
    # ordinary IS is unbiased at every episode count: its mean over runs is within 4 SE of the true value
    for k in (10, 100, 1000, 9999):
        x = res.history_ordinary[:, k]
        assert abs(x.mean() - true) < Z * x.std(ddof=1) / 10
    np.testing.assert_allclose(res.V_weighted[:, 13, 2, 1], res.history_weighted[:, -1])


def test_weighted_importance_sampling_has_lower_early_error(blackjack):
    """The point of Figure 5.3: over the first 10 episodes weighted IS has the lower squared error.
    Ordinary IS's errors are heavy-tailed (a ratio of 2^k now and then), so 2,000 paired runs."""
    true = -0.27726
    res = mc.off_policy_mc_prediction(blackjack, bj.stick_on(20), 10, start_state=(13, 2, 1), n_runs=2000,
                                      simulator="vector", seed=1)
    diff = ((res.history_ordinary - true) ** 2).mean(axis=1) - ((res.history_weighted - true) ** 2).mean(axis=1)
    assert diff.mean() > Z * diff.std(ddof=1) / np.sqrt(diff.size)


def test_off_policy_rejects_a_behaviour_that_does_not_cover_the_target(blackjack):
    with pytest.raises(ValueError, match="behaviour_policy"):
        mc.off_policy_mc_prediction(blackjack, bj.stick_on(20), 10, behaviour_policy=bj.stick_on(18))


@pytest.mark.parametrize("call, name", [
    (lambda env: mc.mc_prediction(env, bj.stick_on(20), 0), "n_episodes"),
    (lambda env: mc.mc_prediction(env, bj.stick_on(20), 10, gamma=-0.5), "gamma"),
    (lambda env: mc.mc_prediction(env, np.ones((32, 11, 2, 2)), 10), "policy"),
    (lambda env: mc.mc_control_epsilon_greedy(env, 10, epsilon=1.5), "epsilon"),
    (lambda env: mc.constant_alpha_mc_prediction(env, 10, alpha=0), "alpha"),
    (lambda env: mc.mc_control_exploring_starts(env, 10, batch_size=0), "batch_size"),
    (lambda env: mc.off_policy_mc_prediction(env, bj.stick_on(20), 10, start_state=(40, 2, 1)), "start_state"),
])
def test_bad_input(blackjack, call, name):
    with pytest.raises(ValueError, match=name):
        call(blackjack)
