"""The loop exercises of chapters 03 and 04 (the first-visit MC control loop, the SARSA and Q-learning episode
loops): each check passes the solution on many seeds, fails the stub with "not done yet", and names each
realistic mistake. Also the Robbins–Monro step sizes of ``rl_basics.td``.

``WRONG`` has the format of ``tests/test_dqn.py``'s: ``{check name: [(hint fragment, wrong solution)]}``.
"""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import rl_basics  # noqa: F401  (registers the course's envs)
from rl_basics import checks, policies, td
from rl_basics.course import exercise_notebooks as ex
from rl_basics.course.checking import CheckFailed
from rl_basics.course.notebook_files import NOTEBOOKS_DIR


def _act(Q, s, epsilon, rng):
    return int(policies.epsilon_greedy_action(Q[s], epsilon, rng))


# ----------------------------------------------------------------------------- first-visit MC control


def _mc(visits="pair", returns="backward", gamma_on=True, reset_G=True, average="sample", stop_at_truncation=True,
        explore=True, epsilon_from_0=False):
    """A first-visit MC control loop with one mistake switched on (the defaults are the right loop)."""

    def loop(env, Q, N, n_episodes, epsilon, gamma, rng):
        g = gamma if gamma_on else 1.0
        G = 0.0
        for k in range(1, n_episodes + 1):
            eps = epsilon(k - 1 if epsilon_from_0 else k)
            episode, s, done = [], env.reset()[0], False
            while not done:
                a = _act(Q, s, eps, rng) if explore else int(np.argmax(Q[s]))
                s_next, r, terminated, truncated, _ = env.step(a)
                episode.append((s, a, r))
                s, done = s_next, terminated or (truncated and stop_at_truncation)
            if reset_G:
                G = 0.0
            if returns == "forward":
                G_t, acc = [], 0.0
                for _, _, r in episode:
                    acc = g * acc + r
                    G_t.append(acc)
            for t in reversed(range(len(episode))):
                s, a, r = episode[t]
                G = r + g * G
                ret = G if returns == "backward" else G_t[t]
                earlier = [x[:2] for x in episode[:t]] if visits == "pair" else [x[0] for x in episode[:t]]
                if visits != "every" and ((s, a) if visits == "pair" else s) in earlier:
                    continue
                N[s][a] += 1
                if average == "sample":
                    Q[s][a] += (ret - Q[s][a]) / N[s][a]
                elif average == "overwrite":
                    Q[s][a] = ret
                elif average == "sum":
                    Q[s][a] += ret
                elif average == "n+1":
                    Q[s][a] += (ret - Q[s][a]) / (N[s][a] + 1)

    return loop


def _mc_updates_during_episode(env, Q, N, n_episodes, epsilon, gamma, rng):
    for k in range(1, n_episodes + 1):
        s, done = env.reset()[0], False
        while not done:
            a = _act(Q, s, epsilon(k), rng)
            s_next, r, terminated, truncated, _ = env.step(a)
            N[s][a] += 1
            Q[s][a] += (r - Q[s][a]) / N[s][a]  # learns from the immediate reward, step by step
            s, done = s_next, terminated or truncated


def _mc_on_a_copy(env, Q, N, n_episodes, epsilon, gamma, rng):
    _mc()(env, Q.copy(), N.copy(), n_episodes, epsilon, gamma, rng)


def _mc_divides_first(env, Q, N, n_episodes, epsilon, gamma, rng):
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(1, n_episodes + 1):
            episode, s, done = [], env.reset()[0], False
            while not done:
                a = _act(Q, s, epsilon(k), rng)
                s_next, r, terminated, truncated, _ = env.step(a)
                episode.append((s, a, r))
                s, done = s_next, terminated or truncated
            G = 0.0
            for t in reversed(range(len(episode))):
                s, a, r = episode[t]
                G = r + gamma * G
                if (s, a) not in [x[:2] for x in episode[:t]]:
                    Q[s][a] += (G - Q[s][a]) / N[s][a]
                    N[s][a] += 1


def _mc_inverted_epsilon(env, Q, N, n_episodes, epsilon, gamma, rng):
    _mc()(env, Q, N, n_episodes, lambda k: 1.0 - epsilon(k), gamma, rng)


# ----------------------------------------------------------------------------- SARSA and Q-learning episodes


def _td_loop(method, target=None, carry_a=True, carry_s=True, terminal="terminated", stop_at_truncation=True,
             explore=True, give_return=True):
    """A SARSA (``method="sarsa"``) or Q-learning episode loop with one mistake switched on (the defaults are the
    right loop). ``target``: ``"taken"`` (SARSA's) or ``"max"`` (Q-learning's); None: the method's own. SARSA, or
    any loop bootstrapping from the action taken, chooses the next action before its update; Q-learning after."""
    target = target or ("taken" if method == "sarsa" else "max")
    choose_first = method == "sarsa" or target == "taken"

    def loop(env, Q, epsilon, alpha, gamma, rng):
        eps = epsilon if explore else 0.0
        s = s0 = env.reset()[0]
        a, total = _act(Q, s, eps, rng), 0.0
        while True:
            s_next, r, terminated, truncated, _ = env.step(a)
            if choose_first:
                a_next = _act(Q, s_next, eps, rng)
            done_flag = {"terminated": terminated, "ignored": False, "either": terminated or truncated}[terminal]
            if target == "taken":
                td.sarsa_update(Q, s, a, r, s_next, a_next, done_flag, alpha, gamma)
            else:
                td.q_learning_update(Q, s, a, r, s_next, done_flag, alpha, gamma)
            if not choose_first:
                a_next = _act(Q, s_next, eps, rng)
            total += r
            if terminated or (truncated and stop_at_truncation):
                return total if give_return else None
            s = s_next if carry_s else s0
            a = a_next if carry_a else _act(Q, s, eps, rng)  # not carried: a fresh action, chosen after the update

    return loop


def _sarsa(**mistake):
    return _td_loop("sarsa", **mistake)


def _q_learning(**mistake):
    return _td_loop("q_learning", **mistake)


def _returns_discounted(env, Q, epsilon, alpha, gamma, rng):
    s, a = env.reset()[0], None
    total, discount = 0.0, 1.0
    while True:
        a = _act(Q, s, epsilon, rng)
        s_next, r, terminated, truncated, _ = env.step(a)
        td.q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma)
        total, discount = total + discount * r, discount * gamma
        if terminated or truncated:
            return total
        s = s_next


WRONG = {
    "check_mc_control_loop": [
        ("every-visit MC", _mc(visits="every")),
        ("first visit of each *state*", _mc(visits="state")),
        ("returns run forward in time", _mc(returns="forward")),
        ("discount gamma is missing", _mc(gamma_on=False)),
        ("G is not reset to 0", _mc(reset_G=False)),
        ("overwritten by the latest return", _mc(average="overwrite")),
        ("adds up the returns", _mc(average="sum")),
        ("off by one", _mc(average="n+1")),
        ("was truncated", _mc(stop_at_truncation=False)),
        ("does not explore", _mc(explore=False)),
        ("numbered k = 1, 2", _mc(epsilon_from_0=True)),
        ("changed during episode", _mc_updates_during_episode),
        ("did not change", _mc_on_a_copy),
        ("NaN or inf", _mc_divides_first),
        ("must act greedily", _mc_inverted_epsilon),
    ],
    "check_sarsa_episode": [
        ("that is Q-learning's target", _sarsa(target="max")),
        ("is not the action your loop took next", _sarsa(carry_a=False)),
        ("carry the state forward", _sarsa(carry_s=False)),
        ("bootstrap past a terminal state", _sarsa(terminal="ignored")),
        ("a time limit is not a terminal state", _sarsa(terminal="either")),
        ("was truncated", _sarsa(stop_at_truncation=False)),
        ("does not explore", _sarsa(explore=False)),
        ("returned None", _sarsa(give_return=False)),
    ],
    "check_q_learning_episode": [
        ("that is SARSA's target", _q_learning(target="taken")),
        ("carry the state forward", _q_learning(carry_s=False)),
        ("bootstrap past a terminal state", _q_learning(terminal="ignored")),
        ("a time limit is not a terminal state", _q_learning(terminal="either")),
        ("was truncated", _q_learning(stop_at_truncation=False)),
        ("does not explore", _q_learning(explore=False)),
        ("undiscounted", _returns_discounted),
    ],
}

RIGHT = {"check_mc_control_loop": _mc(), "check_sarsa_episode": _sarsa(), "check_q_learning_episode": _q_learning()}


@pytest.mark.parametrize("name, hint, wrong", [(n, h, w) for n, pairs in WRONG.items() for h, w in pairs],
                         ids=[f"{n}:{h}" for n, pairs in WRONG.items() for h, _ in pairs])
def test_check_names_the_mistake(name, hint, wrong):
    for seed in range(3):
        with pytest.raises(CheckFailed, match=re.escape(hint)) as info:
            getattr(checks, name)(wrong, seed=seed)
        assert f"seed={seed}" in str(info.value)


@pytest.mark.parametrize("name", sorted(RIGHT))
def test_check_passes_a_right_loop_on_many_seeds(name, capsys):
    for seed in range(20):
        getattr(checks, name)(RIGHT[name], seed=seed)
    assert capsys.readouterr().out.count("✓") == 20


def _notebook_pair(notebook: str, check: str) -> ex.ExercisePair:
    pairs = [p for p in ex.iter_exercises(NOTEBOOKS_DIR / notebook) if check in p.check]
    assert len(pairs) == 1, f"{notebook} must hold exactly one exercise checked by {check}"
    return pairs[0]


@pytest.mark.parametrize("notebook, name", [("03_monte_carlo.ipynb", "check_mc_control_loop"),
                                            ("04_temporal_difference.ipynb", "check_sarsa_episode"),
                                            ("04_temporal_difference.ipynb", "check_q_learning_episode")])
def test_notebook_solution_passes_on_many_seeds_and_the_stub_is_not_done(notebook, name):
    pair = _notebook_pair(notebook, name)
    solution, stub = ex.exercise_namespace(), ex.exercise_namespace()
    exec(pair.solution, solution)
    exec(pair.stub, stub)
    fn_name = ex._defined_names(pair.solution)[0]
    for seed in range(10):
        getattr(checks, name)(solution[fn_name], seed=seed)
    with pytest.raises(CheckFailed, match="not done yet"):
        getattr(checks, name)(stub[fn_name], seed=0)


def test_the_notebook_sarsa_loop_is_td_sarsa():
    """The solution's SARSA loop draws its random numbers like td.sarsa: same seed, the same table to the last digit."""
    ns = ex.exercise_namespace()
    exec(_notebook_pair("04_temporal_difference.ipynb", "check_sarsa_episode").solution, ns)
    env = gym.make("rl_basics/WindyGridworld-v0")
    Q, rng = np.zeros((70, 4)), np.random.default_rng(3)
    for _ in range(30):
        ns["sarsa_episode"](env, Q, 0.1, 0.5, 1.0, rng)
    assert np.array_equal(Q, td.sarsa(env, 30, alpha=0.5, epsilon=0.1, seed=3).Q)


# ----------------------------------------------------------------------------- Robbins–Monro step sizes


def test_robbins_monro_step_size_values_and_validation():
    step = td.robbins_monro_step_size()
    np.testing.assert_allclose(step(np.array([1, 2, 4])), [1.0, 0.5, 0.25])
    np.testing.assert_allclose(td.robbins_monro_step_size(0.6)(np.array([1, 32])), [1.0, 32 ** -0.6])
    for omega in (0.5, 0.2, 1.5, 0.0, "fast"):
        with pytest.raises(ValueError, match="omega"):
            td.robbins_monro_step_size(omega)
    with pytest.raises(ValueError, match="n = 1"):
        step(np.array([0]))


def test_td_control_with_a_step_size_schedule():
    """A schedule is evaluated at each pair's visit count, this update included: a constant schedule is the
    constant step size, and SARSA with alpha_n = n**-0.7 is the book's loop with per-pair counts N(s, a)."""
    env = gym.make("rl_basics/WindyGridworld-v0")
    for method in td.CONTROL_METHODS:
        const = td.td_control(env, method, 20, alpha=0.5, seed=1, n_runs=3)
        sched = td.td_control(env, method, 20, alpha=lambda n: np.full(np.shape(n), 0.5), seed=1, n_runs=3)
        assert np.array_equal(const.Q, sched.Q) and np.array_equal(const.episode_lengths, sched.episode_lengths)
    Q, N, rng = np.zeros((70, 4)), np.zeros((70, 4)), np.random.default_rng(2)
    for _ in range(15):  # SARSA as in the book, alpha = N(S, A)**-0.7
        s = env.reset()[0]
        a = _act(Q, s, 0.1, rng)
        while True:
            s_next, r, terminated, truncated, _ = env.step(a)
            a_next = _act(Q, s_next, 0.1, rng)
            N[s, a] += 1
            td.sarsa_update(Q, s, a, r, s_next, a_next, terminated, N[s, a] ** -0.7, 1.0)
            if terminated or truncated:
                break
            s, a = s_next, a_next
    got = td.sarsa(env, 15, alpha=td.robbins_monro_step_size(0.7), epsilon=0.1, seed=2)
    np.testing.assert_allclose(got.Q, Q, rtol=1e-12, atol=1e-12)
    for bad in (lambda n: n * 0 + 1.5, lambda n: np.zeros(np.shape(n)), lambda n: np.ones(3)):
        with pytest.raises(ValueError, match="step-size schedule"):
            td.sarsa(env, 2, alpha=bad, seed=0)
    with pytest.raises(ValueError, match="alpha"):
        td.sarsa(env, 2, alpha=0.0, seed=0)
