"""Multi-armed bandits: the update rules against their definitions, the agents on small seeded
problems, bad input, and the chapter's exercise checks against realistic wrong solutions.

Seeded and cheap (a few seconds in all). Statistical tolerances are standard errors over the
runs (4 SE unless stated), as in the notebook.
"""

import numpy as np
import pytest

from rl_basics import bandits, checks
from rl_basics.course.checking import CheckFailed
from rl_basics.course.exercise_notebooks import make_stub

Z = 4.0  # standard errors


def se(x, axis=0):
    x = np.asarray(x, dtype=float)
    return x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])


# ---------------------------------------------------------------- update rules


def test_sample_average_update_is_the_mean_of_the_rewards_so_far():
    rng = np.random.default_rng(0)
    rewards = rng.normal(size=(3, 20))
    Q, N = np.full((3, 2), 7.0), np.zeros((3, 2))  # the initial estimate is forgotten at the first pull
    for t in range(20):
        Q, N = bandits.incremental_update(Q, N, np.ones(3, dtype=int), rewards[:, t], None)
        np.testing.assert_allclose(Q[:, 1], rewards[:, : t + 1].mean(axis=1))
    np.testing.assert_array_equal(Q[:, 0], 7.0)  # arm 0 was never pulled
    np.testing.assert_array_equal(N, [[0, 20]] * 3)


def test_constant_step_is_an_exponential_recency_weighted_average():
    rng = np.random.default_rng(1)
    rewards, alpha, q1 = rng.normal(size=15), 0.3, 2.0
    Q, N = np.array([[q1, 0.0]]), np.zeros((1, 2))
    for r in rewards:
        Q, N = bandits.incremental_update(Q, N, np.array([0]), np.array([r]), alpha)
    n = rewards.size
    weights = alpha * (1 - alpha) ** (n - 1 - np.arange(n))  # (2.6): Q_{n+1} = (1-a)^n Q_1 + sum a (1-a)^(n-i) R_i
    assert np.isclose(Q[0, 0], (1 - alpha) ** n * q1 + weights @ rewards)


def test_incremental_update_accepts_one_step_size_per_run_and_leaves_inputs_alone():
    Q, N = np.zeros((2, 3)), np.ones((2, 3))
    Q2, N2 = bandits.incremental_update(Q, N, np.array([0, 2]), np.array([1.0, 1.0]), np.array([0.5, 0.1]))
    np.testing.assert_allclose(Q2, [[0.5, 0, 0], [0, 0, 0.1]])
    assert not Q.any() and (N == 1).all()


def test_ucb_scores_are_infinite_for_untried_arms_and_shrink_with_pulls():
    Q = np.array([[1.0, 1.0, 1.0, 0.0]])
    N = np.array([[1.0, 4.0, 16.0, 0.0]])
    s = bandits.ucb_scores(Q, N, t=22, c=2.0)
    np.testing.assert_allclose(s[0, :3], 1.0 + 2.0 * np.sqrt(np.log(22) / N[0, :3]))
    assert s[0, 3] == np.inf
    assert np.isinf(bandits.ucb_scores(np.zeros((1, 2)), np.zeros((1, 2)), 1, 0.0)).all()  # no NaN from 0 * inf
    np.testing.assert_allclose(bandits.ucb_scores(Q, N, 22, np.array([0.0]))[0, :3], 1.0)  # c per run


def _expected_step(H, q, baseline, entropy_coef=0.0):
    """E_A[update] for deterministic rewards q: the package's update averaged over A ~ softmax(H)."""
    k = H.size
    pi = np.exp(bandits.log_softmax(H))
    new = bandits.gradient_bandit_update(np.tile(H, (k, 1)), np.arange(k), q, baseline, 1.0, entropy_coef)
    return pi @ (new - H)


def test_gradient_bandit_update_is_an_unbiased_gradient_for_any_baseline():
    rng = np.random.default_rng(2)
    H, q = rng.normal(size=5), rng.normal(size=5)

    def objective(h):
        return np.exp(bandits.log_softmax(h)) @ q

    eps = 1e-6
    numeric = np.array([(objective(H + eps * e) - objective(H - eps * e)) / (2 * eps) for e in np.eye(5)])
    for baseline in (0.0, 0.7, -3.0):
        np.testing.assert_allclose(_expected_step(H, q, baseline), numeric, atol=1e-8)


def test_entropy_bonus_climbs_the_entropy_and_its_optimum_is_a_softmax_with_temperature_beta():
    rng = np.random.default_rng(3)
    H, q, beta = rng.normal(size=4), np.array([2.0, 1.0, 0.0, 0.0]), 0.3

    def entropy_of(h):
        return float(bandits.entropy(bandits.log_softmax(h)))

    eps = 1e-6
    numeric = np.array([(entropy_of(H + eps * e) - entropy_of(H - eps * e)) / (2 * eps) for e in np.eye(4)])
    with_bonus = _expected_step(H, q, 0.0, beta) - _expected_step(H, q, 0.0)
    np.testing.assert_allclose(with_bonus, beta * numeric, atol=1e-8)
    # E[q] + beta * entropy is maximised by pi = softmax(q / beta): its expected step is zero there
    np.testing.assert_allclose(_expected_step(q / beta, q, 0.5, beta), 0.0, atol=1e-12)
    assert np.abs(_expected_step(np.zeros(4), q, 0.5, beta)).max() > 0.1


def test_log_softmax_and_entropy_are_stable():
    H = np.array([[1000.0, 999.0, -1000.0], [0.0, 0.0, 0.0]])
    lp = bandits.log_softmax(H)
    assert np.isfinite(lp).all()
    np.testing.assert_allclose(np.exp(lp).sum(axis=1), 1.0)
    np.testing.assert_allclose(bandits.entropy(lp)[1], np.log(3))
    assert bandits.entropy(np.array([0.0, -np.inf])) == 0.0  # 0 log 0 = 0


# ---------------------------------------------------------------- bandits and run


class Oracle(bandits.Agent):
    """Always pulls the arm with the largest *initial* mean (the best arm of a stationary bandit)."""

    def start(self, bandit, rng):
        self.best = bandit.means.argmax(axis=1)

    def act(self, t, rng):
        return self.best

    def learn(self, actions, rewards):
        pass


def test_run_records_rewards_optimality_and_regret():
    tb = bandits.testbed(50, seed=0)
    oracle = bandits.run(tb, Oracle(), 30, seed=0)
    assert oracle.rewards.shape == oracle.optimal.shape == oracle.regret.shape == (50, 30)
    assert oracle.optimal.all() and not oracle.regret.any()
    greedy = bandits.run(tb, bandits.EpsilonGreedy(epsilon=0.0), 30, seed=0)
    np.testing.assert_allclose(greedy.cumulative_regret[:, -1], greedy.regret.sum(axis=1, dtype=float), rtol=1e-6)
    assert (greedy.regret >= 0).all() and np.array_equal(greedy.optimal, greedy.regret == 0)


def test_same_seed_same_result_and_common_random_numbers():
    tb = bandits.testbed(20, seed=1)
    a = bandits.run(tb, bandits.UCB(c=1.0), 40, seed=5)
    b = bandits.run(tb, bandits.UCB(c=1.0), 40, seed=5)
    assert np.array_equal(a.rewards, b.rewards)
    # the reward noise does not depend on the arm pulled: R - q*(A) is the same sequence for any agent
    oracle = bandits.run(tb, Oracle(), 40, seed=5)
    noise_oracle = oracle.rewards - tb.q_star.max(axis=1, keepdims=True)
    noise_ucb = a.rewards - (tb.q_star.max(axis=1, keepdims=True) - a.regret)
    np.testing.assert_allclose(noise_ucb, noise_oracle, atol=1e-5)


def test_gaussian_rewards_and_bernoulli_frequencies():
    n = 20_000
    g = bandits.run(bandits.GaussianBandit(np.tile([0.0, 3.0], (n, 1)), noise_std=[1.0, 0.5]), Oracle(), 1, seed=0)
    assert abs(g.rewards.mean() - 3.0) < Z * 0.5 / np.sqrt(n) and abs(g.rewards.std() - 0.5) < 0.02
    bern = bandits.BernoulliBandit(np.tile([0.2, 0.3], (n, 1)), payoffs=[1.0, 10.0])
    np.testing.assert_allclose(bern.means[0], [0.2, 3.0])
    r = bandits.run(bern, Oracle(), 1, seed=0).rewards
    assert set(np.unique(r)) == {0.0, 10.0} and abs((r == 10).mean() - 0.3) < Z * np.sqrt(0.21 / n)


def test_nonstationary_walk_drifts_a_copy_of_the_means():
    walk = bandits.GaussianBandit(np.zeros((400, 3)), walk_std=0.1)
    res = bandits.run(walk, Oracle(), 100, seed=0)  # Oracle pulls arm 0 (all means tie at 0)
    assert not walk.q_star.any() and not walk.stationary  # the bandit object is unchanged
    assert not res.optimal[:, -1].all() and res.regret[:, -1].mean() > 0  # arm 0 stopped being the best
    # after 99 steps each mean is N(0, 99 * 0.01); the regret is the gap max - arm 0
    gap = res.regret[:, -1]
    assert abs(gap.mean() - np.sqrt(0.99) * 0.846) < Z * se(gap)  # E[max(Z1, Z2, Z3) - Z1] = 3 / (2 sqrt(pi))


def test_thompson_counts_successes_and_failures():
    bern = bandits.BernoulliBandit(np.tile([0.1, 0.9], (200, 1)))
    agent = bandits.BernoulliThompson()
    res = bandits.run(bern, agent, 200, seed=0)
    np.testing.assert_allclose(agent.S.sum(axis=1), res.rewards.sum(axis=1))
    np.testing.assert_allclose((agent.S + agent.F).sum(axis=1), 200)
    assert res.optimal[:, -50:].mean() > 0.97


def test_lai_robbins_rate():
    kl = bandits.bernoulli_kl(0.3, 0.5)
    assert np.isclose(kl, 0.3 * np.log(0.6) + 0.7 * np.log(1.4))
    assert np.isclose(bandits.lai_robbins_rate([0.3, 0.5, 0.5]), 0.2 / kl)  # arms tied for best cost nothing
    assert bandits.lai_robbins_rate([0.3, 1.0]) == 0.0  # one failure rules an arm out


# ---------------------------------------------------------------- the book's qualitative results, small


def test_exploration_beats_greedy_and_constant_step_tracks_a_walk():
    tb = bandits.testbed(400, seed=2)
    greedy = bandits.run(tb, bandits.EpsilonGreedy(0.0), 300, seed=0).optimal[:, -100:].mean(axis=1)
    eps = bandits.run(tb, bandits.EpsilonGreedy(0.1), 300, seed=0).optimal[:, -100:].mean(axis=1)
    d = eps - greedy
    assert d.mean() > Z * se(d)
    walk = bandits.GaussianBandit(np.zeros((200, 10)), walk_std=0.05)
    avg = bandits.run(walk, bandits.EpsilonGreedy(0.1), 1500, seed=0).rewards[:, -500:].mean(axis=1)
    const = bandits.run(walk, bandits.EpsilonGreedy(0.1, alpha=0.1), 1500, seed=0).rewards[:, -500:].mean(axis=1)
    d = const - avg
    assert d.mean() > Z * se(d)


def test_gradient_bandit_baseline_matters_on_a_shifted_testbed():
    tb = bandits.testbed(300, mean=4.0, seed=3)
    with_b = bandits.run(tb, bandits.GradientBandit(0.1), 300, seed=0).optimal[:, -100:].mean(axis=1)
    without = bandits.run(tb, bandits.GradientBandit(0.1, baseline=False), 300, seed=0).optimal[:, -100:].mean(axis=1)
    d = with_b - without
    assert d.mean() > Z * se(d)


def test_parameter_sweeps_in_one_call_match_separate_calls_in_distribution():
    tb = bandits.testbed(300, seed=4)
    both = bandits.GaussianBandit(np.tile(tb.q_star, (2, 1)))
    res = bandits.run(both, bandits.UCB(c=np.repeat([0.0, 2.0], 300)), 200, seed=0)
    per_c = res.rewards.mean(axis=1).reshape(2, 300)
    alone = bandits.run(tb, bandits.UCB(c=2.0), 200, seed=9).rewards.mean(axis=1)
    assert abs(per_c[1].mean() - alone.mean()) < Z * np.hypot(se(per_c[1]), se(alone))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("make, match", [
    (lambda: bandits.EpsilonGreedy(epsilon=1.5), "epsilon must be in"),
    (lambda: bandits.EpsilonGreedy(epsilon=np.array([0.1, 0.2])), r"one value per run, shape \(4,\)"),
    (lambda: bandits.EpsilonGreedy(alpha=0.0), r"alpha must be in \(0, 1\]"),
    (lambda: bandits.EpsilonGreedy(q_init=np.nan), "q_init must be finite"),
    (lambda: bandits.UCB(c=-1.0), "c must be >= 0"),
    (lambda: bandits.GradientBandit(alpha=-0.1), "alpha must be > 0"),
    (lambda: bandits.GradientBandit(entropy_coef=-1.0), "entropy_coef must be a non-negative"),
    (lambda: bandits.BernoulliThompson(), "needs 0/1 rewards"),
    (lambda: bandits.BernoulliThompson(prior_a=0.0), "prior_a must be a positive"),
])
def test_agents_reject_bad_parameters_with_the_fix(make, match):
    bandit = bandits.BernoulliBandit(np.full((4, 3), 0.5)) if "prior" in match else bandits.testbed(4)
    with pytest.raises(ValueError, match=match):
        bandits.run(bandit, make(), 5)


@pytest.mark.parametrize("make, match", [
    (lambda: bandits.testbed(10, k=1), "at least 2 arms"),
    (lambda: bandits.testbed(0), "n_runs must be a positive integer"),
    (lambda: bandits.GaussianBandit(np.zeros((2, 3, 4))), r"shape \(n_runs, k\)"),
    (lambda: bandits.GaussianBandit(np.zeros(3), noise_std=[1.0, 2.0]), "noise_std must be"),
    (lambda: bandits.GaussianBandit(np.zeros(3), walk_std=-0.01), "walk_std must be"),
    (lambda: bandits.GaussianBandit([0.0, np.inf]), "finite"),
    (lambda: bandits.BernoulliBandit([0.5, 1.5]), "probabilities in"),
    (lambda: bandits.lai_robbins_rate([0.5]), "at least 2 probabilities"),
])
def test_bandits_reject_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_run_rejects_wrong_objects_and_step_counts():
    with pytest.raises(TypeError, match="bandit must be"):
        bandits.run(np.zeros((2, 3)), bandits.UCB(), 5)
    with pytest.raises(TypeError, match="agent must be"):
        bandits.run(bandits.testbed(2), "ucb", 5)
    with pytest.raises(ValueError, match="n_steps"):
        bandits.run(bandits.testbed(2), bandits.UCB(), 0)


# ---------------------------------------------------------------- the exercise checks

SOLUTIONS = {
    "check_incremental_update": '''
def incremental_update(Q, N, actions, rewards, alpha):
    """doc"""
    Q, N = Q.copy(), N.copy()
    runs = np.arange(len(Q))
    N[runs, actions] += 1
    step = 1 / N[runs, actions] if alpha is None else alpha
    Q[runs, actions] += step * (rewards - Q[runs, actions])
    return Q, N
''',
    "check_ucb_scores": '''
def ucb_scores(Q, N, t, c):
    """doc"""
    safe = np.maximum(N, 1)
    return np.where(N > 0, Q + c * np.sqrt(np.log(t) / safe), np.inf)
''',
    "check_gradient_bandit_update": '''
def gradient_bandit_update(H, actions, rewards, baseline, alpha):
    """doc"""
    z = np.exp(H - H.max(axis=1, keepdims=True))
    pi = z / z.sum(axis=1, keepdims=True)
    onehot = np.eye(H.shape[1])[actions]
    return H + alpha * (rewards - baseline)[:, None] * (onehot - pi)
''',
}


def _function(source):
    ns = {"np": np}
    exec(source, ns)
    return next(v for k, v in ns.items() if callable(v) and k != "np")


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_check_passes_on_a_learners_solution_and_fails_on_the_stub(name, capsys):
    check = getattr(checks, name)
    for seed in range(5):
        check(_function(SOLUTIONS[name]), seed=seed)
    assert capsys.readouterr().out.count("✓") == 5
    with pytest.raises(CheckFailed, match="not done yet"):
        check(_function(make_stub(SOLUTIONS[name])))


def _inc_before_count(Q, N, a, r, alpha):
    Q, N = Q.copy(), N.copy()
    runs = np.arange(len(Q))
    step = 1 / N[runs, a] if alpha is None else alpha
    N[runs, a] += 1
    Q[runs, a] += step * (r - Q[runs, a])
    return Q, N


def _inc_every_arm(Q, N, a, r, alpha):
    Q, N = Q.copy(), N.copy()
    runs = np.arange(len(Q))
    N[runs, a] += 1
    step = 1 / N[runs, a] if alpha is None else np.full(len(Q), alpha)
    return Q + step[:, None] * (r[:, None] - Q), N


def _inc_own_count_every_arm(Q, N, a, r, alpha):
    N = N + np.eye(Q.shape[1])[a]
    step = 1 / N if alpha is None else alpha
    return Q + step * (r[:, None] - Q), N


def _inc_ignores_alpha(Q, N, a, r, alpha):
    Q, N = Q.copy(), N.copy()
    runs = np.arange(len(Q))
    N[runs, a] += 1
    Q[runs, a] += (r - Q[runs, a]) / N[runs, a]
    return Q, N


def _inc_forgets_counts(Q, N, a, r, alpha):
    Q = Q.copy()
    runs = np.arange(len(Q))
    step = 1 / (N[runs, a] + 1) if alpha is None else alpha
    Q[runs, a] += step * (r - Q[runs, a])
    return Q, N


def _ucb(bonus, untried=np.inf):
    def scores(Q, N, t, c):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(N > 0, Q + bonus(N, t, c), untried)
    return scores


def _ucb_plain_division(Q, N, t, c):
    with np.errstate(divide="ignore", invalid="ignore"):
        return Q + c * np.sqrt(np.log(t) / N)  # inf for N = 0, except 0/0 at t = 1 and 0 * inf at c = 0


def _softmax(H, axis=1):
    z = np.exp(H - H.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def _grad_only_chosen(H, a, r, b, alpha):
    H = H.copy()
    runs = np.arange(len(H))
    pi = _softmax(H)
    H[runs, a] += alpha * (r - b) * (1 - pi[runs, a])
    return H


def _grad_no_baseline(H, a, r, b, alpha):
    return H + alpha * r[:, None] * (np.eye(H.shape[1])[a] - _softmax(H))


def _grad_axis0(H, a, r, b, alpha):
    return H + alpha * (r - b)[:, None] * (np.eye(H.shape[1])[a] - _softmax(H, axis=0))


def _grad_naive_softmax(H, a, r, b, alpha):
    with np.errstate(over="ignore", invalid="ignore"):
        pi = np.exp(H) / np.exp(H).sum(axis=1, keepdims=True)
    return H + alpha * (r - b)[:, None] * (np.eye(H.shape[1])[a] - pi)


WRONG = [
    ("check_incremental_update", _inc_before_count, "count *before* this pull"),
    ("check_incremental_update", _inc_every_arm, "only the pulled arm of each run"),
    ("check_incremental_update", _inc_own_count_every_arm, "only the pulled arm of each run"),
    ("check_incremental_update", _inc_ignores_alpha, "alpha is ignored"),
    ("check_incremental_update", _inc_forgets_counts, "counts N are not updated"),
    ("check_ucb_scores", _ucb(lambda n, t, c: c * np.log(t) / n), "square root is missing"),
    ("check_ucb_scores", _ucb(lambda n, t, c: c * np.sqrt(np.log10(t) / n)), "natural log"),
    ("check_ucb_scores", _ucb(lambda n, t, c: np.sqrt(c * np.log(t) / n)), "not inside it"),
    ("check_ucb_scores", _ucb(lambda n, t, c: c * np.sqrt(np.log(t) / n), untried=0.0), "must score +inf"),
    ("check_ucb_scores", lambda Q, N, t, c: Q + c * np.sqrt(np.log(t) / np.maximum(N, 1)), "must score +inf"),
    ("check_ucb_scores", _ucb_plain_division, "handle N = 0 separately"),
    ("check_gradient_bandit_update", _grad_only_chosen, "only the pulled arm is updated"),
    ("check_gradient_bandit_update", _grad_no_baseline, "baseline is missing"),
    ("check_gradient_bandit_update", _grad_axis0, "taken over the runs"),
    ("check_gradient_bandit_update", _grad_naive_softmax, "NaN or inf"),
]


@pytest.mark.parametrize("name,wrong,hint", WRONG, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(WRONG)])
def test_check_names_the_mistake_of_a_wrong_solution(name, wrong, hint):
    for seed in (0, 1):
        with pytest.raises(CheckFailed) as info:
            getattr(checks, name)(wrong, seed=seed)
        assert hint in str(info.value), f"{name} (seed {seed}) should hint {hint!r}; it said:\n{info.value}"


def test_each_new_check_catches_at_least_two_wrong_solutions_and_is_exported():
    for name in SOLUTIONS:
        assert sum(n == name for n, _, _ in WRONG) >= 2
        assert name in checks.__all__
