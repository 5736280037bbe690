"""TD prediction and control: the book's published numbers, exact references, seeding, bad input.

Tolerances are standard errors over the runs averaged (4 SE unless stated), or exact.
"""

import gymnasium as gym
import numpy as np
import pytest

import rl_basics  # noqa: F401
from rl_basics import dp, mc, policies, td
from rl_basics.envs.maximization_bias import LEFT
from rl_basics.mdp import TabularModel

Z = 4.0  # standard errors


def se(x, axis=0):
    x = np.asarray(x, dtype=float)
    return x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])


# ---------------------------------------------------------------- policies


def test_epsilon_greedy_probs_ties_and_masks():
    q = np.array([[1.0, 3.0, 3.0, 0.0], [5.0, 0.0, 0.0, 9.0]])
    p = policies.epsilon_greedy_probs(q, 0.2)
    np.testing.assert_allclose(p[0], [0.05, 0.45, 0.45, 0.05])
    valid = np.array([[True] * 4, [True, True, True, False]])
    p = policies.epsilon_greedy_probs(q, 0.3, valid)
    np.testing.assert_allclose(p[1], [0.1 + 0.7, 0.1, 0.1, 0.0])
    np.testing.assert_allclose(policies.epsilon_greedy_probs(np.array([1.0, 2.0]), 0.0), [0, 1])


def test_epsilon_greedy_action_frequencies_and_random_tie_breaking():
    rng = np.random.default_rng(0)
    n = 40_000
    q = np.tile([2.0, 2.0, 0.0, 1.0], (n, 1))
    a = policies.epsilon_greedy_action(q, 0.2, rng)
    expected = policies.epsilon_greedy_probs(q[0], 0.2)  # 0.45, 0.45, 0.05, 0.05
    freq = np.bincount(a, minlength=4) / n
    assert np.all(np.abs(freq - expected) < Z * np.sqrt(expected * (1 - expected) / n))
    g = policies.greedy_action(np.zeros((n, 3)), rng)
    assert np.all(np.abs(np.bincount(g) / n - 1 / 3) < Z * np.sqrt(2 / 9 / n))


def test_schedules():
    glie = policies.glie_schedule(1.0)
    np.testing.assert_allclose(glie(np.array([1, 2, 10])), [1.0, 0.5, 0.1])
    lin = policies.linear_schedule(1.0, 0.1, 10)
    assert lin(1) == 1.0 and np.isclose(lin(10), 0.1) and np.isclose(lin(50), 0.1)
    assert policies.constant_schedule(0.3)(7) == 0.3
    with pytest.raises(ValueError, match="epsilon"):
        policies.as_schedule(1.5)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, name", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"epsilon": -0.1}, "epsilon"),
    ({"epsilon": 1.1}, "epsilon"), ({"n_episodes": 0}, "n_episodes"), ({"n_episodes": -3}, "n_episodes"),
    ({"gamma": 1.2}, "gamma"), ({"n_runs": 0}, "n_runs"),
])
def test_control_rejects_bad_arguments(kwargs, name):
    args = {"n_episodes": 5, "alpha": 0.5, "epsilon": 0.1, "gamma": 1.0} | kwargs
    with pytest.raises(ValueError, match=name):
        td.sarsa(gym.make("CliffWalking-v1"), **args)


@pytest.mark.parametrize("fn", [
    lambda env: td.q_learning(env, 5), lambda env: td.td0_prediction(env, 5, 0.1),
    lambda env: mc.mc_control_epsilon_greedy(env, 5),
])
def test_tabular_methods_reject_continuous_observations(fn):
    with pytest.raises(ValueError, match="observation_space"):
        fn(gym.make("CartPole-v1"))


def test_prediction_rejects_bad_arguments():
    env = gym.make("rl_basics/RandomWalk-v0")
    with pytest.raises(ValueError, match="alpha"):
        td.td0_prediction(env, 10, alpha=2.0)
    with pytest.raises(ValueError, match="n_episodes"):
        td.n_step_td_prediction(env, 2, 0, 0.1)
    with pytest.raises(ValueError, match="^n must"):
        td.n_step_td_prediction(env, 0, 10, 0.1)
    with pytest.raises(ValueError, match="policy"):
        td.td0_prediction(env, 10, 0.1, policy=np.ones((7, 2)))
    with pytest.raises(ValueError, match="method"):
        td.td_control(env, "sarsa_lambda", 10)


# ---------------------------------------------------------------- the updates, one run and a batch


def _transitions(rng, n, S=6, A=4):
    return dict(s=rng.integers(S, size=n), a=rng.integers(A, size=n), r=np.round(rng.normal(size=n), 3),
                s_next=rng.integers(S, size=n), a_next=rng.integers(A, size=n), terminated=rng.random(n) < 0.3)


@pytest.mark.parametrize("update", ["td0", "n_step", "sarsa", "q_learning", "expected_sarsa"])
def test_an_update_on_a_batch_of_runs_is_the_update_of_each_run(update):
    """One transition per run on tables with a run axis (some runs left out) gives bit for bit what the
    same update gives on each run's own table, one at a time; the runs left out are untouched."""
    rng = np.random.default_rng(0)
    n_runs, S, A = 5, 6, 4
    runs = np.array([3, 0, 4])
    t = _transitions(rng, runs.size, S, A)
    alpha, gamma, eps = np.array([0.1, 0.5, 0.9]), 0.9, np.array([0.0, 0.2, 1.0])
    valid = rng.random((S, A)) < 0.7
    valid[np.arange(S), rng.integers(A, size=S)] = True
    G = rng.normal(size=runs.size)

    def one(table, k, j):  # the update of transition j on a table (of one run, or the batch with `runs`)
        x = {key: (v[j] if k is None else v) for key, v in t.items()}
        al, ep, g_ = (alpha[j], eps[j], G[j]) if k is None else (alpha, eps, G)
        common = dict(runs=k) if k is not None else {}
        if update == "td0":
            return td.td0_update(table, x["s"], x["r"], x["s_next"], x["terminated"], al, gamma, **common)
        if update == "n_step":
            return td.n_step_td_update(table, x["s"], g_, al, **common)
        if update == "sarsa":
            return td.sarsa_update(table, x["s"], x["a"], x["r"], x["s_next"], x["a_next"], x["terminated"], al,
                                   gamma, **common)
        if update == "q_learning":
            return td.q_learning_update(table, x["s"], x["a"], x["r"], x["s_next"], x["terminated"], al, gamma,
                                        valid, **common)
        return td.expected_sarsa_update(table, x["s"], x["a"], x["r"], x["s_next"], x["terminated"], al, gamma, ep,
                                        valid, **common)

    shape = (n_runs, S) if update in ("td0", "n_step") else (n_runs, S, A)
    tables = rng.normal(size=shape)
    batch = tables.copy()
    assert one(batch, runs, None) is batch  # in place, and returned
    for j, run in enumerate(runs):
        single = tables[run].copy()
        assert one(single, None, j) is single
        np.testing.assert_array_equal(batch[run], single)
    untouched = np.setdiff1d(np.arange(n_runs), runs)
    np.testing.assert_array_equal(batch[untouched], tables[untouched])


def test_double_q_learning_update_moves_one_table_per_transition():
    """A coin per transition: exactly one of Q1, Q2 changes at (S, A), by the book's rule with the other
    table evaluating the first one's argmax; every other entry stays."""
    rng = np.random.default_rng(1)
    n, S, A, alpha, gamma = 200, 6, 4, 0.5, 0.9
    t = _transitions(rng, n, S, A)
    Q1, Q2 = rng.normal(size=(n, S, A)), rng.normal(size=(n, S, A))  # no ties: the argmax is unique
    new1, new2 = td.double_q_learning_update(Q1.copy(), Q2.copy(), t["s"], t["a"], t["r"], t["s_next"],
                                             t["terminated"], alpha, gamma, np.random.default_rng(0))
    run = np.arange(n)
    at = (run, t["s"], t["a"])
    moved1, moved2 = new1[at] != Q1[at], new2[at] != Q2[at]
    assert (moved1 ^ moved2).all() and 0.3 < moved1.mean() < 0.7
    cont = gamma * (1 - t["terminated"])
    want1 = Q1[at] + alpha * (t["r"] + cont * Q2[run, t["s_next"], Q1[run, t["s_next"]].argmax(1)] - Q1[at])
    want2 = Q2[at] + alpha * (t["r"] + cont * Q1[run, t["s_next"], Q2[run, t["s_next"]].argmax(1)] - Q2[at])
    np.testing.assert_allclose(new1[at][moved1], want1[moved1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(new2[at][moved2], want2[moved2], rtol=0, atol=1e-15)
    for new, old in ((new1, Q1), (new2, Q2)):
        new, old = new.copy(), old.copy()
        new[at] = old[at] = 0.0
        np.testing.assert_array_equal(new, old)
    one1, one2 = td.double_q_learning_update(Q1[0].copy(), Q2[0].copy(), 1, 2, 1.0, 3, False, alpha, gamma,
                                             np.random.default_rng(0))  # one run: one table each, numbers
    assert (one1 != Q1[0]).sum() + (one2 != Q2[0]).sum() == 1


def test_the_exercise_checks_compare_with_these_updates():
    """The reference of each TD exercise check is rl_basics.td's update itself, not a copy."""
    from rl_basics import checks

    for name in ("td0_update", "sarsa_update", "q_learning_update", "expected_sarsa_target"):
        assert getattr(checks, name) is getattr(td, name)
    checks.check_td0_update(td.td0_update, seed=0)
    checks.check_sarsa_update(td.sarsa_update, seed=0)
    checks.check_q_learning_update(td.q_learning_update, seed=0)
    checks.check_expected_sarsa_target(td.expected_sarsa_target, seed=0)


# ---------------------------------------------------------------- seeding and the run axis


def test_same_seed_same_result_and_different_seed_differs():
    env = gym.make("CliffWalking-v1")
    a = td.q_learning(env, 30, seed=4)
    b = td.q_learning(env, 30, seed=4)
    c = td.q_learning(env, 30, seed=5)
    np.testing.assert_array_equal(a.Q, b.Q)
    np.testing.assert_array_equal(a.episode_returns, b.episode_returns)
    assert not np.array_equal(a.Q, c.Q)


@pytest.mark.parametrize("method", td.CONTROL_METHODS)
def test_gym_env_and_vector_simulator_give_identical_learning(method):
    """On a deterministic env the only randomness is the agent's: stepping gymnasium's CliffWalking
    (one env per run) and the numpy simulator of its model must produce the same tables."""
    env = gym.make("CliffWalking-v1")
    for n_runs in (1, 3):
        a = td.td_control(env, method, 20, seed=2, n_runs=n_runs, simulator="env")
        b = td.td_control(env, method, 20, seed=2, n_runs=n_runs, simulator="vector")
        np.testing.assert_array_equal(a.Q, b.Q)
        np.testing.assert_array_equal(a.episode_end_steps, b.episode_end_steps)


def test_n_step_td_links_td0_and_constant_alpha_mc():
    """n = 1 is TD(0); n >= episode length is constant-alpha (every-visit) MC: exactly, on the same episodes."""
    env = gym.make("rl_basics/RandomWalk-v0")
    for simulator, n_runs in (("env", 1), ("vector", 8)):
        kw = dict(v_init=0.5, seed=3, n_runs=n_runs, simulator=simulator)
        td0 = td.td0_prediction(env, 40, 0.1, **kw)
        n1 = td.n_step_td_prediction(env, 1, 40, 0.1, **kw)
        np.testing.assert_allclose(td0.history, n1.history, atol=1e-12)
        const_mc = mc.constant_alpha_mc_prediction(env, 40, 0.1, **kw)
        n_inf = td.n_step_td_prediction(env, 100_000, 40, 0.1, **kw)
        np.testing.assert_allclose(const_mc.history, n_inf.history, atol=1e-12)
        np.testing.assert_array_equal(const_mc.episode_lengths, td0.episode_lengths)


def test_one_step_size_per_run_equals_separate_calls():
    """alpha of shape (n_runs,): run r uses alpha[r]; with per-lane random streams each run is exactly the
    run a separate call with that alpha (and the same lane) would produce."""
    env = gym.make("rl_basics/RandomWalk-v0")
    alphas = np.array([0.05, 0.1, 0.3])
    for fn in (td.td0_prediction, mc.constant_alpha_mc_prediction,
               lambda *a, **k: td.n_step_td_prediction(env, 3, *a[1:], **k)):
        swept = fn(env, 20, alphas, v_init=0.5, n_runs=3, seed=0, simulator="vector").history
        for r, a in enumerate(alphas):
            single = fn(env, 20, a, v_init=0.5, n_runs=3, seed=0, simulator="vector").history
            np.testing.assert_allclose(swept[r], single[r], atol=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        td.td0_prediction(env, 5, np.array([0.1, 0.2]), n_runs=3)
    with pytest.raises(ValueError, match="alpha"):
        td.td0_prediction(env, 5, np.array([0.1, 0.0, 0.2]), n_runs=3)


def test_truncated_episodes_still_bootstrap():
    """A time limit is not a terminal state: TD(0) and 1-step TD both bootstrap from the last state."""
    env = gym.make("rl_basics/RandomWalk-v0", max_episode_steps=3)
    kw = dict(v_init=0.5, seed=0, n_runs=6)
    a = td.td0_prediction(env, 30, 0.1, **kw)
    b = td.n_step_td_prediction(env, 1, 30, 0.1, **kw)
    np.testing.assert_allclose(a.history, b.history, atol=1e-12)
    assert (a.episode_lengths <= 3).all()
    # episodes cut in C/B/D keep their value estimates away from 0 (no false "terminal" target)
    assert (a.V[:, 3] > 0.3).all()


# ---------------------------------------------------------------- Example 6.2: random walk


def rms(history, true):
    return np.sqrt(((history[..., 1:-1] - true[1:-1]) ** 2).mean(-1))


def test_random_walk_td_beats_constant_alpha_mc():
    """Example 6.2 (right panel, 100 runs): RMS error starts at sqrt(1/18) (V = 0.5 everywhere); after
    100 episodes TD(0) (alpha = 0.05) is far below the best constant-alpha MC curve. The comparison is
    paired: with the same seed both methods see the same episodes."""
    env = gym.make("rl_basics/RandomWalk-v0")
    true = env.unwrapped.true_values()
    kw = dict(v_init=0.5, n_runs=100, seed=0)
    td_err = {a: rms(td.td0_prediction(env, 100, a, **kw).history, true) for a in (0.05, 0.1, 0.15)}
    mc_err = {a: rms(mc.constant_alpha_mc_prediction(env, 100, a, **kw).history, true)
              for a in (0.01, 0.02, 0.03, 0.04)}
    for err in (*td_err.values(), *mc_err.values()):
        np.testing.assert_allclose(err[:, 0], np.sqrt(1 / 18))
    best_mc = min(mc_err.values(), key=lambda e: e[:, 100].mean())
    diff = best_mc[:, 100] - td_err[0.05][:, 100]
    assert diff.mean() > Z * se(diff)
    for a, err in td_err.items():  # every TD curve ends below every MC curve (the figure's message)
        assert err[:, 100].mean() < min(e[:, 100].mean() for e in mc_err.values())


def test_random_walk_large_alpha_td_error_goes_down_then_up():
    """With alpha = 0.15 the TD error falls below its final level and rises again (Exercise 6.5)."""
    env = gym.make("rl_basics/RandomWalk-v0")
    err = rms(td.td0_prediction(env, 100, 0.15, v_init=0.5, n_runs=1000, seed=1).history, env.unwrapped.true_values())
    low = int(err.mean(0).argmin())
    assert 10 <= low <= 50
    rise = err[:, 100] - err[:, low]
    assert rise.mean() > Z * se(rise)


def test_td0_single_run_estimates_approach_true_values():
    """Example 6.2 (left panel): after 100 episodes with alpha = 0.1 the estimates are near 1/6..5/6."""
    env = gym.make("rl_basics/RandomWalk-v0")
    res = td.td0_prediction(env, 100, 0.1, v_init=0.5, seed=0)
    np.testing.assert_allclose(res.history[0, 1:6], 0.5)
    # constant-alpha TD keeps fluctuating: its stationary spread (about 0.1 at alpha = 0.1) bounds the error
    assert np.abs(res.V[1:6] - np.arange(1, 6) / 6).max() < 0.25


# ---------------------------------------------------------------- Example 6.5: windy gridworld


def test_windy_gridworld_sarsa_learning_rate_matches_the_book():
    """Figure 6.3 (one run in the book): 170 episodes take about 8000 time steps with SARSA
    (epsilon = 0.1, alpha = 0.5). 8000 must lie within the central 95% of our runs' totals."""
    env = gym.make("rl_basics/WindyGridworld-v0")
    res = td.sarsa(env, 170, alpha=0.5, epsilon=0.1, n_runs=200, seed=0)
    totals = res.episode_end_steps[:, -1]
    low, high = np.percentile(totals, [2.5, 97.5])
    assert low <= 8000 <= high
    # late episodes: close to the 15-step optimum plus exploration detours (the slope of Figure 6.3)
    assert 15 < res.episode_lengths[:, -20:].mean() < 25


@pytest.mark.parametrize("method, n_episodes", [("q_learning", 170), ("expected_sarsa", 500)])
def test_windy_gridworld_greedy_path_is_optimal(method, n_episodes):
    """The greedy path of the learned Q takes the optimal 15 steps (value iteration's length)."""
    env = gym.make("rl_basics/WindyGridworld-v0")
    res = td.td_control(env, method, n_episodes, alpha=0.5, epsilon=0.1, n_runs=20, seed=0)
    for Q in res.Q:
        path, ret, reached = td.greedy_path(env, Q)
        assert reached and len(path) - 1 == 15 and ret == -15


# ---------------------------------------------------------------- Example 6.6: cliff walking


def epsilon_greedy_value(env, Q, epsilon):
    """Exact expected return from the start of the epsilon-greedy policy of Q (policy evaluation)."""
    V, _ = dp.policy_evaluation(env, policies.epsilon_greedy_probs(Q, epsilon), gamma=1.0, theta=1e-10)
    return V[36]


@pytest.fixture(scope="module")
def cliff_runs():
    env = gym.make("CliffWalking-v1")
    return env, {m: td.td_control(env, m, 500, alpha=0.5, epsilon=0.1, n_runs=100, seed=0)
                 for m in ("sarsa", "q_learning", "expected_sarsa")}


def test_cliff_walking_online_returns_match_the_book(cliff_runs):
    """Figure 6.4 levels (epsilon = 0.1, alpha = 0.5; mean online return over episodes 200-500, 100 runs):
    Sarsa about -25, Q-learning about -50. Tolerance: 4 standard errors over the runs plus 3 for
    reading a level off the book's plot (its y-axis is ticked every 25)."""
    _, runs = cliff_runs
    level = {m: r.episode_returns[:, 200:].mean(axis=1) for m, r in runs.items()}
    for method, book in (("sarsa", -25.0), ("q_learning", -50.0)):
        assert abs(level[method].mean() - book) < Z * se(level[method]) + 3.0, (method, level[method].mean())
    diff = level["sarsa"] - level["q_learning"]
    assert diff.mean() > 20 and diff.mean() > Z * se(diff)  # the safe path pays off online
    diff = level["expected_sarsa"] - level["sarsa"]
    assert diff.mean() > Z * se(diff)  # Figure 6.3: Expected Sarsa beats Sarsa at alpha = 0.5


def test_cliff_walking_online_returns_equal_exact_values_of_the_behaviour(cliff_runs):
    """Q-learning and Expected Sarsa converge (deterministic env): their online returns must equal the
    exact value (by DP) of the epsilon-greedy policy they end up following, within 4 SE over runs."""
    env, runs = cliff_runs
    for method in ("q_learning", "expected_sarsa"):
        res = runs[method]
        online = res.episode_returns[:, 300:].mean(axis=1)
        exact = np.array([epsilon_greedy_value(env, Q, 0.1) for Q in res.Q])
        diff = online - exact
        assert abs(diff.mean()) < Z * se(diff), (method, online.mean(), exact.mean())


def test_cliff_walking_exact_levels():
    """The exact asymptotes: epsilon-greedy on q* (Q-learning's target) is worth about -50.8 online; the
    best epsilon-soft policy (Expected Sarsa's fixed point) about -20.7; the greedy optimum is -13."""
    env = gym.make("CliffWalking-v1")
    model = TabularModel.from_env(env)
    V, _, _ = dp.value_iteration(env, gamma=1.0)
    assert V[36] == -13
    q_star = dp.q_from_v(model, V, 1.0)
    assert abs(epsilon_greedy_value(env, q_star, 0.1) + 50.8) < 0.05
    Q = np.zeros((48, 4))
    for _ in range(2000):
        v = (policies.epsilon_greedy_probs(Q, 0.1) * Q).sum(axis=1)
        Q = model.rewards + model.continuation @ v
    assert abs(epsilon_greedy_value(env, Q, 0.1) + 20.7) < 0.05


def test_cliff_walking_learned_paths():
    """Q-learning's greedy path runs along the cliff edge (13 steps); Sarsa's takes a safer, longer route."""
    env = gym.make("CliffWalking-v1")
    q = td.q_learning(env, 500, seed=0)
    path, ret, reached = td.greedy_path(env, q.Q)
    assert reached and ret == -13 and all(s // 12 >= 2 for s in path)
    s = td.sarsa(env, 500, seed=0)
    path, ret, reached = td.greedy_path(env, s.Q)
    assert reached and ret < -13 and min(st // 12 for st in path) <= 1


# ---------------------------------------------------------------- Example 6.7: maximization bias


@pytest.fixture(scope="module")
def max_bias_runs():
    env = gym.make("rl_basics/MaximizationBias-v0")
    return {m: td.td_control(env, m, 300, alpha=0.1, epsilon=0.1, n_runs=10_000, seed=0)
            for m in ("q_learning", "double_q_learning")}


def test_maximization_bias_percentages(max_bias_runs):
    """Figure 6.5 (10,000 runs): Q-learning goes left far more than the optimal 5% early on; Double
    Q-learning stays much closer to 5% (epsilon/2: the optimal epsilon-greedy rate)."""
    left = {m: (r.first_actions == LEFT).astype(float) for m, r in max_bias_runs.items()}
    n = 10_000
    for frac in left.values():  # episode 1: Q = 0, ties broken at random: left half the time
        assert abs(frac[:, 0].mean() - 0.5) < Z * np.sqrt(0.25 / n)
    q_early = left["q_learning"][:, 5:50].mean(axis=1)
    assert q_early.mean() - 0.05 > 0.5  # the peak of the book's curve is far above 5%
    d_late = left["double_q_learning"][:, 200:].mean(axis=1)
    q_late = left["q_learning"][:, 200:].mean(axis=1)
    assert d_late.mean() > 0.05 - Z * se(d_late)  # cannot beat epsilon-greedy's 5% floor
    # Double Q's excess over 5% is less than half of Q-learning's, early and late
    d_early = left["double_q_learning"][:, 5:50].mean(axis=1)
    assert (d_early.mean() - 0.05) < 0.5 * (q_early.mean() - 0.05) - Z * (se(d_early) + se(q_early))
    assert (d_late.mean() - 0.05) < 0.5 * (q_late.mean() - 0.05) - Z * (se(d_late) + se(q_late))
    assert d_late.mean() < 0.05 + 0.03


def test_double_q_learning_keeps_two_tables(max_bias_runs):
    res = max_bias_runs["double_q_learning"]
    q1, q2 = res.tables
    np.testing.assert_allclose(res.Q, q1 + q2)
    assert not np.allclose(q1, q2)
