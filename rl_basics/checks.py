"""Check functions for the classic-RL exercises (chapters 0-8).

Each ``check_*`` takes the learner's function, runs it and the course's reference on fresh
random inputs (a new seed every call, printed on failure so it can be reproduced with
``seed=...``) and on edge cases, and raises :class:`rl_basics.course.checking.CheckFailed` (an
``AssertionError``) with a hint that says *what* is wrong. In a notebook::

    from rl_basics import checks
    checks.check_bellman_expectation_backup(bellman_expectation_backup)

The docstring of each check states the signature the learner's function must have. The
references are the packages' own implementations (:mod:`rl_basics.dp`,
:mod:`rl_basics.agents.losses`, ...); the few pieces the packages do not need themselves live in
the *references* section at the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rl_basics.course.checking import Case, CheckFailed, Mistake, check_function, fresh_seed, learner_check
from rl_basics.td import expected_sarsa_target, q_learning_update, sarsa_update, td0_update

__all__ = [
    "check_discounted_return",
    "check_discounted_returns",
    "check_bellman_expectation_backup",
    "check_bellman_optimality_backup",
    "check_greedy_policy",
    "check_policy_evaluation",
    "check_first_visit_returns",
    "check_weighted_importance_sampling_update",
    "check_td0_update",
    "check_sarsa_update",
    "check_q_learning_update",
    "check_expected_sarsa_target",
    "check_reward_to_go",
    "check_reinforce_loss",
    "check_bootstrapped_returns",
    "check_gae",
    "check_ppo_policy_loss",
    "check_ppo_value_loss",
    "CheckFailed",
]


def _rng(seed: int | None) -> tuple[np.random.Generator, int]:
    seed = fresh_seed() if seed is None else int(seed)
    return np.random.default_rng(seed), seed


# ============================================================================ chapter 0: returns, Bellman


@learner_check
def check_discounted_return(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, gamma) -> float``: the return ``G_0 = sum_k gamma^k r_k`` of a reward sequence.

    ``rewards[k]`` is the reward received after the ``k``-th action (Sutton & Barto's ``R_{k+1}``).
    """
    rng, seed = _rng(seed)
    cases = [
        Case(f"random rewards, T={T}, gamma={g}", (list(np.round(rng.normal(size=T), 3)), g))
        for T, g in ((5, 0.9), (12, 0.5), (30, 0.99))
    ] + [
        Case("edge case: a single reward", ([2.0], 0.9)),
        Case("edge case: gamma = 0 (only the first reward counts)", ([1.0, 5.0, 7.0], 0.0)),
        Case("edge case: gamma = 1 (plain sum)", ([1.0, -2.0, 3.0, 4.0], 1.0)),
        Case("edge case: no rewards at all (an empty episode)", ([], 0.9)),
    ]
    mistakes = [
        Mistake("the discount is missing: weight reward k by gamma**k.", lambda r, g: discounted_return(r, 1.0)),
        Mistake("the exponents are off by one: the first reward is not discounted (gamma**0 = 1), "
                "the second gets gamma**1.", lambda r, g: g * discounted_return(r, g)),
        Mistake("the rewards are discounted in reverse order: the *first* reward gets weight 1, "
                "the last gamma**(T-1).", lambda r, g: discounted_return(list(r)[::-1], g)),
    ]
    check_function(fn, discounted_return, cases, exercise="the discounted return", mistakes=mistakes, seed=seed)


@learner_check
def check_discounted_returns(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, gamma) -> (T,)``: the return ``G_t`` of every step of one episode.

    ``G_t = rewards[t] + gamma * rewards[t+1] + ... = rewards[t] + gamma * G_{t+1}`` with
    ``G_T = 0``; ``rewards[t]`` is the reward after the action at step ``t`` (``R_{t+1}``).
    """
    rng, seed = _rng(seed)
    cases = [Case(f"random rewards, T={T}, gamma={g}", (np.round(rng.normal(size=T), 3), g))
             for T, g in ((6, 0.9), (15, 0.5), (40, 0.99))]
    cases += [
        Case("edge case: a single reward", (np.array([2.0]), 0.9)),
        Case("edge case: gamma = 0 (each G_t is its own reward)", (np.array([1.0, 5.0, 7.0]), 0.0)),
        Case("edge case: gamma = 1", (np.array([1.0, -2.0, 3.0, 4.0]), 1.0)),
    ]

    def reference(rewards, gamma):
        return _episode_returns(np.zeros(len(rewards)), rewards, gamma)[0]

    mistakes = [
        Mistake("the discount is missing: G_t = rewards[t] + gamma * G_{t+1}.", lambda r, g: reference(r, 1.0)),
        Mistake("you accumulate forwards (the discounted sum of the rewards *before* t); G_t sums the rewards "
                "from t to the end: loop backwards.", lambda r, g: reference(r[::-1], g)[::-1]),
        Mistake("you accumulate forwards (sum_{k <= t} gamma^k r_k, the discounted rewards *before* t); G_t sums "
                "the rewards from t to the end: loop backwards.", lambda r, g: np.cumsum(r * g ** np.arange(len(r)))),
        Mistake("off by one: G_t starts with rewards[t], the reward right after step t (you return G_{t+1}).",
                lambda r, g: np.append(reference(r, g)[1:], 0.0)),
        Mistake("each step's own reward is discounted once too often: G_t = rewards[t] + gamma * G_{t+1}, "
                "the first reward undiscounted.", lambda r, g: g * reference(r, g)),
    ]
    check_function(fn, reference, cases, exercise="the returns G_t", mistakes=mistakes, seed=seed,
                   arg_names=("rewards", "gamma"))


def random_model(rng: np.random.Generator, n_states: int = 5, n_actions: int = 3, terminal_share: float = 0.3):
    """A random :class:`~rl_basics.mdp.TabularModel` in which some transitions terminate.

    State ``n_states - 1`` is an absorbing terminal state; every transition into it terminates,
    and so does a random share of the others.
    """
    from rl_basics.mdp import TabularModel

    S, A = n_states, n_actions
    transitions = rng.dirichlet(np.ones(S), size=(S, A))
    ends = rng.random((S, A, S)) < terminal_share
    ends[:, :, -1] = True
    transitions[-1] = 0.0
    transitions[-1, :, -1] = 1.0  # the terminal state loops on itself...
    rewards = np.round(rng.normal(size=(S, A)), 3)
    rewards[-1] = 0.0  # ...with no reward
    return TabularModel(transitions, rewards, terminations=transitions * ends)


def _gridworld():
    import gymnasium as gym

    import rl_basics  # noqa: F401  (registers the env)
    from rl_basics.mdp import TabularModel

    return TabularModel.from_env(gym.make("rl_basics/GridWorld4x4-v0"))


def _dp_cases(rng: np.random.Generator, with_policy: bool) -> list[Case]:
    from rl_basics.dp import uniform_random_policy

    cases = []
    for S, A, g in ((5, 3, 0.9), (8, 2, 0.5), (4, 4, 1.0)):
        model = random_model(rng, S, A)
        V = np.round(rng.normal(size=S), 3)  # non-zero everywhere, terminal state included
        args = (model, V, rng.dirichlet(np.ones(A), size=S), g) if with_policy else (model, V, g)
        cases.append(Case(f"random MDP with {S} states, {A} actions (some transitions terminate), gamma={g}", args))
    grid = _gridworld()
    V = -np.arange(16, dtype=float)
    V[[0, 15]] = 5.0  # a value at the terminal states must never be used
    pi = uniform_random_policy(16, 4)
    cases.append(Case("the 4x4 gridworld of Example 4.1, V non-zero at the terminal states, gamma=1",
                      (grid, V, pi, 1.0) if with_policy else (grid, V, 1.0)))
    model = random_model(rng, 4, 2)
    cases.append(Case("edge case: gamma = 0 (only the immediate reward)",
                      (model, np.ones(4), rng.dirichlet(np.ones(2), size=4), 0.0) if with_policy else (model, np.ones(4), 0.0)))
    return cases


def _through_terminals(model):
    """The model with terminations ignored: what a backup that bootstraps through terminal transitions computes."""
    from rl_basics.mdp import TabularModel

    return TabularModel(model.transitions, model.rewards, None, model.action_mask)


_TERMINAL_HINT = (
    "you bootstrap from the value of the next state even when the transition terminates the episode: "
    "a terminated transition's return is its reward alone. Use model.continuation (the non-terminating part "
    "of model.transitions) for the gamma * V(s') term."
)


@learner_check
def check_bellman_expectation_backup(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(model, V, policy, gamma) -> (S,)``, one Bellman expectation backup.

    ``(T_pi V)(s) = sum_a pi(a|s) [ r(s,a) + gamma * sum_s' C[s,a,s'] V(s') ]`` with
    ``r = model.rewards (S, A)``, ``C = model.continuation (S, A, S)`` and ``policy (S, A)``.
    """
    from rl_basics import dp

    rng, seed = _rng(seed)
    uniform = lambda m, V, pi, g: dp.bellman_expectation_backup(m, V, np.full_like(pi, 1 / pi.shape[1]), g)  # noqa: E731
    mistakes = [
        Mistake(_TERMINAL_HINT, lambda m, V, pi, g: dp.bellman_expectation_backup(_through_terminals(m), V, pi, g)),
        Mistake("the discount gamma is missing in front of the next state's value.",
                lambda m, V, pi, g: dp.bellman_expectation_backup(m, V, pi, 1.0)),
        Mistake("you take the max over actions: that is the *optimality* backup. The expectation backup "
                "averages the action values with the policy's probabilities pi(a|s).",
                lambda m, V, pi, g: dp.bellman_optimality_backup(m, V, g)),
        Mistake("the actions are averaged uniformly: weight each action by the policy's probability pi(a|s).", uniform),
        Mistake("the immediate reward r(s, a) is missing.",
                lambda m, V, pi, g: dp.bellman_expectation_backup(m, V, pi, g) - (pi * m.rewards).sum(1)),
    ]
    check_function(fn, dp.bellman_expectation_backup, _dp_cases(rng, True), exercise="the Bellman expectation backup",
                   mistakes=mistakes, seed=seed)


# ============================================================================ chapter 2: dynamic programming


@learner_check
def check_bellman_optimality_backup(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(model, V, gamma) -> (S,)``, one Bellman optimality backup (a value-iteration sweep).

    ``(T_* V)(s) = max_a [ r(s,a) + gamma * sum_s' C[s,a,s'] V(s') ]`` with ``C = model.continuation``.
    """
    from rl_basics import dp

    rng, seed = _rng(seed)
    mistakes = [
        Mistake(_TERMINAL_HINT, lambda m, V, g: dp.bellman_optimality_backup(_through_terminals(m), V, g)),
        Mistake("the discount gamma is missing in front of the next state's value.",
                lambda m, V, g: dp.bellman_optimality_backup(m, V, 1.0)),
        Mistake("you take the min over actions; the optimal value takes the max.",
                lambda m, V, g: dp.q_from_v(m, V, g).min(axis=1)),
        Mistake("you average over actions (that evaluates the uniform random policy); the optimality backup "
                "takes the max.", lambda m, V, g: dp.q_from_v(m, V, g).mean(axis=1)),
        Mistake("you take the max of the reward alone and add the next-state value afterwards: the max must be "
                "over the whole action value r(s,a) + gamma * E[V(s')].",
                lambda m, V, g: m.rewards.max(1) + g * (m.continuation @ V).mean(1)),
    ]
    check_function(fn, dp.bellman_optimality_backup, _dp_cases(rng, False), exercise="the Bellman optimality backup",
                   mistakes=mistakes, seed=seed)


@learner_check
def check_greedy_policy(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(model, V, gamma) -> (S, A)``: policy improvement, the policy greedy with respect to ``V``.

    Each row must be a probability distribution over the actions that maximise
    ``Q(s, a) = r(s,a) + gamma * sum_s' C[s,a,s'] V(s')``; with ties, any split among the tied
    actions is accepted.
    """
    from rl_basics import dp

    rng, seed = _rng(seed)
    cases = _dp_cases(rng, False)
    grid = _gridworld()
    cases.append(Case("edge case: ties (the 4x4 gridworld with V = 0: every action is as good)", (grid, np.zeros(16), 1.0)))
    for case in cases:
        model, V, gamma = case.args
        where = f"\n  inputs: {case.name} (pass seed={seed} to reproduce)"
        try:
            pi = fn(*case.args)
        except NotImplementedError:
            raise CheckFailed("policy improvement: not done yet — replace `raise NotImplementedError` in your "
                              "function with your code, then run this check again.") from None
        except Exception as exc:
            raise CheckFailed(f"policy improvement: your function raised {type(exc).__name__}: {exc}" + where) from exc
        pi = np.asarray(pi, dtype=float) if pi is not None else None
        if pi is None:
            raise CheckFailed("policy improvement: your function returned None: did you forget `return`?" + where)
        if pi.shape != (model.n_states, model.n_actions):
            hint = " (one action per state? return the one-hot (S, A) probability matrix: np.eye(A)[actions])" \
                if pi.shape == (model.n_states,) else ""
            raise CheckFailed(f"policy improvement: wrong shape: expected {(model.n_states, model.n_actions)}, "
                              f"got {pi.shape}{hint}" + where)
        if not np.allclose(pi.sum(1), 1) or (pi < -1e-12).any():
            raise CheckFailed("policy improvement: each row must be a probability distribution (non-negative, "
                              "summing to 1)" + where)
        q = dp.q_from_v(model, V, gamma)
        best = q >= q.max(1, keepdims=True) - 1e-9
        wrong = (pi > 1e-9) & ~best
        if wrong.any():
            s = int(np.argwhere(wrong)[0][0])
            chosen = np.flatnonzero(pi[s] > 1e-9).tolist()
            hint = _greedy_hint(model, V, gamma, pi > 1e-9)
            raise CheckFailed(f"policy improvement: in state {s} you choose action(s) {chosen} with "
                              f"Q(s, .) = {np.round(q[s], 4).tolist()}; the greedy actions are "
                              f"{np.flatnonzero(best[s]).tolist()}. Hint: {hint}" + where)
    print(f"✓ policy improvement: correct on all {len(cases)} test cases, random ones from seed {seed}.")


def _greedy_hint(model, V, gamma, support) -> str:
    """Which known mistake explains the learner's choices in *every* state (support: (S, A) bool)."""
    from rl_basics import dp

    def picks(q):
        return not (support & ~(q >= q.max(1, keepdims=True) - 1e-9)).any()

    if picks(-dp.q_from_v(model, V, gamma)):
        return "you pick the worst action: use argmax, not argmin."
    if picks(model.rewards):
        return "you maximise the immediate reward only; add gamma * sum_s' C[s,a,s'] V(s') (one-step lookahead)."
    if picks(dp.q_from_v(_through_terminals(model), V, gamma)):
        return _TERMINAL_HINT
    if picks(dp.q_from_v(model, V, 1.0)):
        return "the discount gamma is missing in the lookahead."
    return "compute Q(s, a) = r(s,a) + gamma * sum_s' C[s,a,s'] V(s') and put all probability on its argmax."


@learner_check
def check_policy_evaluation(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(model, policy, gamma, theta) -> V (S,)``: iterative policy evaluation to convergence.

    Sweep ``V <- T_pi V`` (synchronously or in place) until the largest change is below ``theta``;
    the result must match the exact ``v_pi`` (:func:`rl_basics.dp.solve_policy_exact`).
    """
    from rl_basics import dp

    rng, seed = _rng(seed)
    theta = 1e-10
    cases = []
    for S, A, g in ((5, 3, 0.9), (7, 2, 0.8)):
        cases.append(Case(f"random MDP with {S} states, {A} actions, gamma={g}",
                          (random_model(rng, S, A), rng.dirichlet(np.ones(A), size=S), g, theta)))
    cases.append(Case("the 4x4 gridworld, equiprobable policy, gamma=1 (Figure 4.1: v(1) = -14)",
                      (_gridworld(), dp.uniform_random_policy(16, 4), 1.0, theta)))
    reference = lambda m, pi, g, th: dp.solve_policy_exact(m, pi, g)  # noqa: E731
    mistakes = [
        Mistake("you stop after one sweep: repeat the backup until the largest change is below theta.",
                lambda m, pi, g, th: dp.bellman_expectation_backup(m, np.zeros(m.n_states), pi, g)),
        Mistake(_TERMINAL_HINT, lambda m, pi, g, th: dp.policy_evaluation(_through_terminals(m), pi, g, theta=th)[0]
                if g < 1 else np.full(m.n_states, np.nan)),
    ]
    check_function(fn, reference, cases, exercise="iterative policy evaluation", mistakes=mistakes, seed=seed,
                   arg_names=("model", "policy", "gamma", "theta"),
                   atol=1e-6, rtol=1e-6)


# ============================================================================ chapter 3: Monte-Carlo


@learner_check
def check_first_visit_returns(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(states, rewards, gamma) -> dict``: the return following the *first* visit of each state.

    One episode: ``states[t]`` is ``S_t`` and ``rewards[t]`` the reward received after the action
    in ``S_t`` (Sutton & Barto's ``R_{t+1}``). The result maps every visited state to
    ``G_t = sum_k gamma^k rewards[t + k]`` for the first ``t`` with ``states[t] == s``.
    """
    rng, seed = _rng(seed)
    cases = []
    for T, nS, g in ((8, 3, 0.9), (15, 4, 1.0), (20, 6, 0.7)):
        states = [int(s) for s in rng.integers(0, nS, size=T)]
        cases.append(Case(f"random episode of {T} steps over {nS} states (states repeat), gamma={g}",
                          (states, list(np.round(rng.normal(size=T), 3)), g)))
    cases += [
        Case("edge case: one step", ([4], [1.5], 0.9)),
        Case("edge case: every state visited once", ([0, 1, 2], [1.0, 2.0, 3.0], 0.5)),
        Case("edge case: a state revisited at the very end", ([0, 1, 0], [1.0, 10.0, 100.0], 0.9)),
    ]
    mistakes = [
        Mistake("you return the return after the *last* visit of each state (every visit overwrites the "
                "previous one going forward): first-visit MC keeps the first.", _last_visit_returns),
        Mistake("the rewards are misaligned by one step: G_t starts with rewards[t] (the reward after the "
                "action taken in states[t]), not rewards[t + 1].",
                lambda s, r, g: first_visit_returns(s, list(r[1:]) + [0.0], g)),
        Mistake("the discount is missing.", lambda s, r, g: first_visit_returns(s, r, 1.0)),
        Mistake("you average the returns of all visits (every-visit MC); this exercise asks for the return "
                "after the first visit only.", _every_visit_mean),
    ]
    check_function(fn, first_visit_returns, cases, exercise="first-visit Monte-Carlo returns", mistakes=mistakes, seed=seed)


@learner_check
def check_weighted_importance_sampling_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(V, C, G, W) -> (V_new, C_new)``: one incremental weighted importance-sampling update.

    ``C_new = C + W`` and ``V_new = V + (W / C_new) (G - V)`` (Sutton & Barto, section 5.6);
    when ``C_new == 0`` (no weight yet) ``V`` stays unchanged. Works elementwise on arrays.
    """
    rng, seed = _rng(seed)
    cases = []
    for n in (5, 12):
        C = np.round(rng.uniform(0, 5, size=n), 3)
        W = np.round(rng.choice([0.0, 0.5, 1.0, 2.0, 4.0], size=n) * rng.uniform(0.5, 1.5, size=n), 3)
        cases.append(Case(f"random arrays of {n} values (some W = 0)",
                          (np.round(rng.normal(size=n), 3), C, np.round(rng.normal(size=n) * 3, 3), W)))
    cases += [
        Case("edge case: the first weighted return (C = 0, W = 2): V becomes G",
             (np.array([0.5]), np.array([0.0]), np.array([3.0]), np.array([2.0]))),
        Case("edge case: W = 0 and C = 0 (no weight yet): nothing changes, no division by zero",
             (np.array([0.5]), np.array([0.0]), np.array([3.0]), np.array([0.0]))),
    ]
    mistakes = [
        Mistake("the step size must be W / C_new with C_new = C + W (add the weight first, then divide).",
                lambda V, C, G, W: (V + np.divide(W, C, out=np.zeros_like(V), where=C > 0) * (G - V), C + W)),
        Mistake("that is the ordinary average (step 1/n): weighted importance sampling steps by W / C.",
                lambda V, C, G, W: (V + (G - V) / (C + 1), C + 1)),
        Mistake("the update moves V away from G: it is V + (W / C) (G - V).",
                lambda V, C, G, W: (V - np.divide(W, C + W, out=np.zeros_like(V), where=C + W > 0) * (G - V), C + W)),
    ]
    check_function(fn, weighted_importance_sampling_update, cases, exercise="the weighted importance-sampling update",
                   mistakes=mistakes, seed=seed)


# ============================================================================ chapter 4: temporal difference


def _td_case_args(rng, nS, nA=None):
    table = np.round(rng.normal(size=(nS,) if nA is None else (nS, nA)), 3)
    return table


@learner_check
def check_td0_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(V, s, r, s_next, terminated, alpha, gamma) -> V``: one TD(0) update of a value table.

    ``V[s] += alpha * (r + gamma * (1 - terminated) * V[s_next] - V[s])``. Return the updated
    table (updating ``V`` in place and returning it is fine). Reference: :func:`rl_basics.td.td0_update`.
    """
    rng, seed = _rng(seed)
    cases = []
    for i in range(4):
        V = _td_case_args(rng, 6)
        s, s2 = (int(x) for x in rng.integers(0, 6, size=2))
        cases.append(Case(f"random table, s={s}, s_next={s2}, not terminal",
                          (V, s, float(np.round(rng.normal(), 3)), s2, False, 0.1 * (i + 1), 0.9)))
    V = _td_case_args(rng, 6)
    cases.append(Case("edge case: terminated (V[s_next] is non-zero but must not be used)", (V, 2, 1.0, 5, True, 0.5, 0.9)))
    cases.append(Case("edge case: s_next == s", (_td_case_args(rng, 4), 1, -1.0, 1, False, 0.5, 0.9)))
    mistakes = [
        Mistake("you bootstrap from V[s_next] even when the episode terminated: the target is just r then "
                "(multiply the bootstrap term by (1 - terminated)).",
                lambda V, s, r, s2, d, a, g: td0_update(V, s, r, s2, False, a, g)),
        Mistake("the discount gamma is missing in the target.", lambda V, s, r, s2, d, a, g: td0_update(V, s, r, s2, d, a, 1.0)),
        Mistake("the step size alpha is missing: move V[s] only a fraction alpha towards the target.",
                lambda V, s, r, s2, d, a, g: td0_update(V, s, r, s2, d, 1.0, g)),
        Mistake("the TD error has the wrong sign: it is target - V[s], and V[s] moves towards the target.",
                lambda V, s, r, s2, d, a, g: td0_update(V, s, r, s2, d, -a, g)),
    ]
    check_function(fn, td0_update, cases, exercise="the TD(0) update", mistakes=mistakes, seed=seed, allow_inplace=True)


def _control_cases(rng, with_next_action: bool) -> list[Case]:
    cases = []
    for i in range(4):
        Q = _td_case_args(rng, 6, 4)
        s, s2 = (int(x) for x in rng.integers(0, 6, size=2))
        a = int(rng.integers(4))
        a2 = int(np.argmin(Q[s2])) if i % 2 == 0 else int(rng.integers(4))  # an exploratory next action too
        extra = (a2,) if with_next_action else ()
        cases.append(Case(f"random table, s={s}, a={a}, s_next={s2}{f', a_next={a2}' if with_next_action else ''}",
                          (Q, s, a, float(np.round(rng.normal(), 3)), s2, *extra, False, 0.2 * (i + 1), 0.9)))
    Q = _td_case_args(rng, 6, 4)
    Q[5] += 3.0  # large values at the terminal next state: using them is a visible mistake
    extra = (1,) if with_next_action else ()
    cases.append(Case("edge case: terminated (Q[s_next] is non-zero but must not be used)",
                      (Q, 2, 0, 1.0, 5, *extra, True, 0.5, 0.9)))
    return cases


@learner_check
def check_sarsa_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(Q, s, a, r, s_next, a_next, terminated, alpha, gamma) -> Q``: one SARSA update.

    ``Q[s, a] += alpha * (r + gamma * (1 - terminated) * Q[s_next, a_next] - Q[s, a])``.
    Reference: :func:`rl_basics.td.sarsa_update`.
    """
    rng, seed = _rng(seed)
    mistakes = [
        Mistake("you bootstrap from Q[s_next, a_next] even when the episode terminated: the target is just r.",
                lambda Q, s, a, r, s2, a2, d, al, g: sarsa_update(Q, s, a, r, s2, a2, False, al, g)),
        Mistake("you bootstrap from max_a Q[s_next, a]: that is Q-learning. SARSA uses the action actually "
                "taken next, a_next (on-policy).",
                lambda Q, s, a, r, s2, a2, d, al, g: q_learning_update(Q, s, a, r, s2, d, al, g)),
        Mistake("the discount gamma is missing in the target.",
                lambda Q, s, a, r, s2, a2, d, al, g: sarsa_update(Q, s, a, r, s2, a2, d, al, 1.0)),
        Mistake("the step size alpha is missing.", lambda Q, s, a, r, s2, a2, d, al, g: sarsa_update(Q, s, a, r, s2, a2, d, 1.0, g)),
        Mistake("the TD error has the wrong sign: Q[s, a] moves towards the target.",
                lambda Q, s, a, r, s2, a2, d, al, g: sarsa_update(Q, s, a, r, s2, a2, d, -al, g)),
    ]
    check_function(fn, sarsa_update, _control_cases(rng, True), exercise="the SARSA update", mistakes=mistakes,
                   seed=seed, allow_inplace=True)


@learner_check
def check_q_learning_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(Q, s, a, r, s_next, terminated, alpha, gamma) -> Q``: one Q-learning update.

    ``Q[s, a] += alpha * (r + gamma * (1 - terminated) * max_a' Q[s_next, a'] - Q[s, a])``.
    Reference: :func:`rl_basics.td.q_learning_update`.
    """
    rng, seed = _rng(seed)
    mistakes = [
        Mistake("you bootstrap from max Q[s_next] even when the episode terminated: the target is just r "
                "(this is the classic bug that makes the cliff look safe).",
                lambda Q, s, a, r, s2, d, al, g: q_learning_update(Q, s, a, r, s2, False, al, g)),
        Mistake("you bootstrap from Q[s_next, a] (the same action index) instead of the max over next actions.",
                lambda Q, s, a, r, s2, d, al, g: sarsa_update(Q, s, a, r, s2, a, d, al, g)),
        Mistake("you take the min over next actions; Q-learning takes the max.",
                lambda Q, s, a, r, s2, d, al, g: sarsa_update(Q, s, a, r, s2, int(np.argmin(Q[s2])), d, al, g)),
        Mistake("the discount gamma is missing in the target.",
                lambda Q, s, a, r, s2, d, al, g: q_learning_update(Q, s, a, r, s2, d, al, 1.0)),
        Mistake("the step size alpha is missing.", lambda Q, s, a, r, s2, d, al, g: q_learning_update(Q, s, a, r, s2, d, 1.0, g)),
        Mistake("the TD error has the wrong sign: Q[s, a] moves towards the target.",
                lambda Q, s, a, r, s2, d, al, g: q_learning_update(Q, s, a, r, s2, d, -al, g)),
    ]
    check_function(fn, q_learning_update, _control_cases(rng, False), exercise="the Q-learning update",
                   mistakes=mistakes, seed=seed, allow_inplace=True)


@learner_check
def check_expected_sarsa_target(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(q_next, r, terminated, epsilon, gamma) -> float``: the Expected SARSA target.

    ``q_next`` is the row ``Q[s_next]`` ``(A,)``; the policy is ε-greedy with respect to it
    (probability ``ε / A`` for every action plus ``1 - ε`` for the greedy one). The target is
    ``r + gamma * (1 - terminated) * sum_a pi(a | s_next) q_next[a]``. Tied greedy actions share
    the ``1 - ε`` equally (:func:`rl_basics.policies.epsilon_greedy_probs`); the random cases have none.
    Reference: :func:`rl_basics.td.expected_sarsa_target`.
    """
    rng, seed = _rng(seed)
    cases = []
    for A, eps in ((4, 0.1), (2, 0.5), (6, 0.3)):
        cases.append(Case(f"random q_next with {A} actions, epsilon={eps}",
                          (np.round(rng.normal(size=A), 3), float(np.round(rng.normal(), 3)), False, eps, 0.9)))
    cases += [
        Case("edge case: terminated (q_next is non-zero but must not be used)", (np.array([1.0, 3.0, 2.0]), 1.0, True, 0.1, 0.9)),
        Case("edge case: epsilon = 0 (greedy: the Q-learning target)", (np.array([1.0, 3.0, 2.0]), 0.5, False, 0.0, 0.9)),
        Case("edge case: epsilon = 1 (uniformly random)", (np.array([1.0, 3.0, 2.0]), 0.5, False, 1.0, 0.9)),
        Case("edge case: two greedy actions tie (they share 1 - epsilon)", (np.array([3.0, 3.0, 1.0]), 0.5, False, 0.3, 0.9)),
    ]
    mistakes = [
        Mistake("you bootstrap even though the episode terminated: the target is just r.",
                lambda q, r, d, e, g: expected_sarsa_target(q, r, False, e, g)),
        Mistake("the greedy action gets only 1 - epsilon: under ε-greedy it also gets its share epsilon / A "
                "of the random choice (probability 1 - epsilon + epsilon / A).",
                lambda q, r, d, e, g: r + g * (1 - d) * ((1 - e) * q.max() + e / q.size * (q.sum() - q.max()))),
        Mistake("you use max_a Q[s_next, a] (the Q-learning target): Expected SARSA averages over the "
                "ε-greedy policy.", lambda q, r, d, e, g: expected_sarsa_target(q, r, d, 0.0, g)),
        Mistake("you average Q[s_next] uniformly: weight by the ε-greedy probabilities.",
                lambda q, r, d, e, g: expected_sarsa_target(q, r, d, 1.0, g)),
        Mistake("the discount gamma is missing.", lambda q, r, d, e, g: expected_sarsa_target(q, r, d, e, 1.0)),
    ]
    check_function(fn, expected_sarsa_target, cases, exercise="the Expected SARSA target", mistakes=mistakes, seed=seed)


# ============================================================================ chapter 6: policy gradients


@learner_check
def check_reward_to_go(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, dones, gamma) -> (T,)``: discounted reward-to-go over consecutive episodes.

    ``rewards (T,)`` and ``dones (T,)`` (bool, True at the *last* step of each episode) hold one
    or more whole episodes one after another. ``G_t = rewards[t] + gamma * G_{t+1}``, except that
    the sum stops at the end of the episode: ``G_t = rewards[t]`` where ``dones[t]``.
    """
    rng, seed = _rng(seed)
    cases = []
    for T, g in ((10, 0.9), (25, 0.99), (6, 0.5)):
        dones = rng.random(T) < 0.25
        dones[-1] = True
        cases.append(Case(f"{int(dones.sum())} random episodes in {T} steps, gamma={g}",
                          (np.round(rng.normal(size=T), 3), dones, g)))
    cases += [
        Case("edge case: one episode", (np.array([1.0, 2.0, 3.0]), np.array([False, False, True]), 0.5)),
        Case("edge case: episodes of one step each", (np.array([1.0, 2.0, 3.0]), np.array([True, True, True]), 0.9)),
        Case("edge case: gamma = 1", (np.array([1.0, 1.0, 1.0, 1.0]), np.array([False, True, False, True]), 1.0)),
    ]
    mistakes = [
        Mistake("the sum runs across episode boundaries: reset the running return where dones[t] is True "
                "(G_t = rewards[t] at the last step of an episode).",
                lambda r, d, g: reward_to_go(r, np.zeros_like(d), g)),
        Mistake("off by one at the episode ends: the reset must happen *at* the last step of an episode "
                "(dones[t]), so that step still keeps its own reward; check whether you test dones[t] or dones[t+1].",
                lambda r, d, g: reward_to_go(r, np.concatenate([d[1:], [True]]), g)),
        Mistake("you sum the rewards *before* t (a forward cumulative sum): the reward-to-go sums the rewards "
                "from t to the end of the episode.", _reward_so_far),
        Mistake("the discount is missing.", lambda r, d, g: reward_to_go(r, d, 1.0)),
        Mistake("each step's own reward is missing: G_t starts with rewards[t].",
                lambda r, d, g: reward_to_go(r, d, g) - r),
    ]
    check_function(fn, reward_to_go, cases, exercise="the reward-to-go", mistakes=mistakes, seed=seed)


@learner_check
def check_reinforce_loss(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(log_probs, returns, baseline, valid) -> loss``: the REINFORCE loss with a baseline.

    All inputs are ``(T, N)`` torch tensors for ``N`` episodes padded to ``T`` steps (time on
    axis 0): ``log_probs`` are ``log pi(a_t | s_t)`` (with gradient), ``returns`` the
    reward-to-go ``G_t``, ``baseline`` a learned ``b(s_t)`` (with gradient, but it must get none
    from this loss), ``valid`` 1 on real steps and 0 on padding. The loss is minus the policy
    gradient surrogate, summed over each episode's steps and averaged over the episodes:
    ``-mean_i sum_t valid * (G_t - b_t) * log_probs``. Reference:
    :func:`rl_basics.agents.reinforce.reinforce_loss`.
    """
    import torch

    from rl_basics.agents.reinforce import reinforce_loss

    rng, seed = _rng(seed)
    f = lambda x: torch.tensor(np.asarray(x), dtype=torch.float32)  # noqa: E731

    def batch(T, N, lengths=None):
        lengths = rng.integers(1, T + 1, size=N) if lengths is None else np.asarray(lengths)
        valid = f(np.arange(T)[:, None] < lengths[None, :])
        return (f(-rng.exponential(size=(T, N))), f(rng.normal(size=(T, N)) * 5), f(rng.normal(size=(T, N))), valid)

    def reference(lp, G, b, valid):
        return reinforce_loss(lp, G - b.detach(), valid)

    cases = [Case(f"{N} random episodes of up to {T} steps (padded)", batch(T, N)) for T, N in ((9, 4), (20, 3))]
    cases.append(Case("edge case: one episode without padding", batch(5, 1, [5])))
    mistakes = [
        Mistake("the baseline is missing: weight each log-probability by (returns - baseline).",
                lambda lp, G, b, v: reinforce_loss(lp, G, v)),
        Mistake("the minus sign is missing: the optimizer *minimises* the loss, so the loss is minus the objective.",
                lambda lp, G, b, v: -reference(lp, G, b, v)),
        Mistake("the baseline is added instead of subtracted: the advantage is returns - baseline.",
                lambda lp, G, b, v: reference(lp, G, -b, v)),
        Mistake("padding is counted: multiply by valid so that steps after an episode's end contribute nothing.",
                lambda lp, G, b, v: reference(lp, G, b, torch.ones_like(v))),
        Mistake("you average over all steps; sum over each episode's steps (the policy gradient of one episode "
                "is a sum over its time steps), then average over the episodes.",
                lambda lp, G, b, v: -(v * (G - b) * lp).sum() / v.sum()),
    ]
    check_function(fn, reference, cases, exercise="the REINFORCE loss", mistakes=mistakes, seed=seed,
                   arg_names=("log_probs", "returns", "baseline", "valid"),
                   atol=1e-5, rtol=1e-4, grad_args=(0, 2))


# ============================================================================ chapter 7: actor-critic


def _rollout(rng, T, N, truncation=True):
    """Random ``(T, N)`` rollout tensors with some terminated and some truncated episode ends."""
    import torch

    terminated = rng.random((T, N)) < 0.15
    truncated = (rng.random((T, N)) < 0.1) & ~terminated if truncation else np.zeros((T, N), bool)
    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    return (f(np.round(rng.normal(size=(T, N)), 3)), f(np.round(rng.normal(size=(T, N)), 3)),
            f(np.round(rng.normal(size=(T, N)), 3)), f(terminated), f(terminated | truncated))


@learner_check
def check_bootstrapped_returns(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, dones, last_value, gamma) -> (T, N)``: A2C's n-step (rollout) returns.

    ``rewards, dones`` are ``(T, N)`` torch tensors (time on axis 0, ``dones`` 1 where the
    episode terminated at that step), ``last_value (N,)`` is ``V(s_T)`` of the state after the
    rollout. ``G_{T-1} = r_{T-1} + gamma (1 - d_{T-1}) last_value`` and
    ``G_t = r_t + gamma (1 - d_t) G_{t+1}``.
    """
    import torch

    rng, seed = _rng(seed)
    cases = []
    for T, N, g in ((7, 3, 0.99), (12, 2, 0.9), (5, 4, 0.5)):
        r, _, _, term, _ = _rollout(rng, T, N, truncation=False)
        cases.append(Case(f"random rollout, T={T} steps x N={N} envs, gamma={g}",
                          (r, term, torch.tensor(rng.normal(size=N), dtype=torch.float32), g)))
    cases.append(Case("edge case: every env terminates at the last step (last_value must not be used)",
                      (torch.ones(3, 2), torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]]), torch.tensor([10.0, -10.0]), 0.9)))
    mistakes = [
        Mistake("the sum runs across episode ends: where dones[t] is 1 the return is just r_t "
                "(multiply the bootstrap term by (1 - dones[t])).",
                lambda r, d, v, g: bootstrapped_returns(r, torch.zeros_like(d), v, g)),
        Mistake("last_value is missing: the rollout is cut mid-episode, so the last return bootstraps from V(s_T).",
                lambda r, d, v, g: bootstrapped_returns(r, d, torch.zeros_like(v), g)),
        Mistake("off by one at the episode ends: the step where dones[t] is 1 keeps its own reward and stops "
                "there; check whether you use dones[t] or dones[t+1].",
                lambda r, d, v, g: bootstrapped_returns(r, torch.cat([d[1:], torch.zeros_like(d[:1])]), v, g)),
        Mistake("the discount is missing.", lambda r, d, v, g: bootstrapped_returns(r, d, v, 1.0)),
    ]
    check_function(fn, bootstrapped_returns, cases, exercise="the bootstrapped n-step returns", mistakes=mistakes,
                   seed=seed, atol=1e-5, rtol=1e-4)


@learner_check
def check_gae(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, values, next_values, terminated, episode_end, gamma, lam) -> advantages``: GAE(λ).

    All inputs are ``(T, N)`` torch tensors, time on axis 0 (see
    :func:`rl_basics.agents.losses.compute_gae`, whose first output is the reference)::

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * (1 - episode_end_t) * A_{t+1},    A_T = 0

    ``terminated`` stops bootstrapping (a true terminal state); ``episode_end`` (terminated or
    truncated) stops the recursion, since the next step belongs to another episode.
    """
    import torch

    from rl_basics.agents.losses import compute_gae

    rng, seed = _rng(seed)
    cases = []
    for T, N, g, lam in ((9, 3, 0.99, 0.95), (14, 2, 0.9, 0.8), (6, 5, 0.97, 0.5)):
        cases.append(Case(f"random rollout with terminated and truncated episodes, T={T} x N={N}, gamma={g}, lam={lam}",
                          (*_rollout(rng, T, N), g, lam)))
    r, v, nv, _, _ = _rollout(rng, 4, 2)
    last = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    truncated_end = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    cases += [
        Case("edge case: env 0 terminates at the last step, env 1 is truncated at step 1", (r, v, nv, last, last + truncated_end, 0.9, 0.9)),
        Case("edge case: lam = 0 (the one-step TD error)", (*_rollout(rng, 5, 2), 0.9, 0.0)),
        Case("edge case: lam = 1 (Monte-Carlo return minus V)", (*_rollout(rng, 5, 2), 0.9, 1.0)),
        Case("edge case: a single step", (*_rollout(rng, 1, 3), 0.9, 0.95)),
    ]

    def reference(r, v, nv, term, end, g, lam):
        return compute_gae(r, v, nv, term, end, g, lam)[0]

    def recursion(deltas, end, coef):
        zero = torch.zeros_like(deltas)
        return compute_gae(deltas, zero, zero, zero, end, 1.0, coef)[0]

    def forward_in_time(r, v, nv, term, end, g, lam):
        flip = lambda x: torch.flip(x, dims=[0])  # noqa: E731
        return flip(recursion(flip(r + g * (1 - term) * nv - v), flip(torch.roll(end, 1, 0)), g * lam))

    mistakes = [
        Mistake("you bootstrap from next_values at terminated steps: multiply gamma * next_values by (1 - terminated).",
                lambda r, v, nv, term, end, g, lam: reference(r, v, nv, torch.zeros_like(term), end, g, lam)),
        Mistake("the recursion runs across episode ends: multiply gamma * lam * A_{t+1} by (1 - episode_end_t).",
                lambda r, v, nv, term, end, g, lam: reference(r, v, nv, term, torch.zeros_like(end), g, lam)),
        Mistake("the recursion is cut only at terminations: a truncated episode ends too (use episode_end, "
                "not terminated, for the recursion).",
                lambda r, v, nv, term, end, g, lam: reference(r, v, nv, term, term, g, lam)),
        Mistake("you cut the bootstrap at every episode end, truncations included: on a truncated step "
                "(time limit) you must still bootstrap from next_values (use terminated for delta).",
                lambda r, v, nv, term, end, g, lam: reference(r, v, nv, end, end, g, lam)),
        Mistake("off by one at the episode ends: use episode_end[t] (not episode_end[t+1]) to stop A_{t+1} "
                "from flowing into A_t.",
                lambda r, v, nv, term, end, g, lam: reference(r, v, nv, term, torch.cat([end[1:], torch.zeros_like(end[:1])]), g, lam)),
        Mistake("lam is missing in the recursion (that is lam = 1).",
                lambda r, v, nv, term, end, g, lam: reference(r, v, nv, term, end, g, 1.0)),
        Mistake("gamma is missing in the recursion: A_t = delta_t + gamma * lam * (1 - end_t) * A_{t+1}.",
                lambda r, v, nv, term, end, g, lam: recursion(r + g * (1 - term) * nv - v, end, lam)),
        Mistake("gamma is missing in the TD error: delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t).",
                lambda r, v, nv, term, end, g, lam: recursion(r + (1 - term) * nv - v, end, g * lam)),
        Mistake("the recursion runs forward in time: GAE accumulates future TD errors, so loop from the last "
                "step back to the first.", forward_in_time),
        Mistake("you return the returns (advantages + values); this exercise returns the advantages.",
                lambda r, v, nv, term, end, g, lam: compute_gae(r, v, nv, term, end, g, lam)[1]),
    ]
    check_function(fn, reference, cases, exercise="GAE", mistakes=mistakes, seed=seed, atol=1e-5, rtol=1e-4,
                   arg_names=("rewards", "values", "next_values", "terminated", "episode_end", "gamma", "lam"))


# ============================================================================ chapter 8: PPO


def _ppo_cases(rng) -> list[Case]:
    import torch

    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    cases = []
    for N, eps in ((16, 0.2), (40, 0.1)):
        old = -rng.exponential(size=N)
        new = old + rng.normal(scale=0.4, size=N)  # ratios from about 0.3 to 3: many clipped
        cases.append(Case(f"random batch of {N}, clip_coef={eps}", (f(new), f(old), f(rng.normal(size=N)), eps)))
    cases += [
        Case("edge case: ratio exactly 1 (the first minibatch of an epoch)", (f([-1.0, -2.0, -0.5]), f([-1.0, -2.0, -0.5]), f([1.0, -2.0, 0.5]), 0.2)),
        Case("edge case: ratio 2 with positive advantages, ratio 0.5 with negative (both clipped)",
             (f([np.log(2.0), np.log(0.5)]), f([0.0, 0.0]), f([1.0, -1.0]), 0.2)),
        Case("edge case: ratio 2 with a negative advantage, ratio 0.5 with a positive one (never clipped)",
             (f([np.log(2.0), np.log(0.5)]), f([0.0, 0.0]), f([-1.0, 1.0]), 0.2)),
    ]
    return cases


@learner_check
def check_ppo_policy_loss(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(logp_new, logp_old, advantages, clip_coef) -> loss``: PPO's clipped surrogate loss.

    ``ratio = exp(logp_new - logp_old)``;
    ``loss = mean(max(-A * ratio, -A * clip(ratio, 1 - clip_coef, 1 + clip_coef)))`` — minus the
    pessimistic (min) of the unclipped and clipped objectives. Reference:
    :func:`rl_basics.agents.losses.ppo_policy_loss`.
    """
    import torch

    from rl_basics.agents.losses import ppo_policy_loss

    rng, seed = _rng(seed)

    def reference(new, old, adv, eps):
        return ppo_policy_loss(new, old, adv, eps)[0]

    def loss_from(new, old, adv, eps, combine, ratio_fn=lambda n, o: torch.exp(n - o)):
        ratio = ratio_fn(new, old)
        return combine(-adv * ratio, -adv * torch.clamp(ratio, 1 - eps, 1 + eps)).mean()

    mistakes = [
        Mistake("you take the min of the two losses (the optimistic bound): PPO takes the max of -A*ratio and "
                "-A*clip(ratio), i.e. the min of the two objectives, so clipping can only make the update more cautious.",
                lambda n, o, a, e: loss_from(n, o, a, e, torch.minimum)),
        Mistake("clipping is missing: include the clipped term -A * clip(ratio, 1 - eps, 1 + eps) and take the max.",
                lambda n, o, a, e: (-a * torch.exp(n - o)).mean()),
        Mistake("the ratio is inverted: ratio = exp(logp_new - logp_old) = pi_new / pi_old.",
                lambda n, o, a, e: loss_from(n, o, a, e, torch.maximum, lambda n_, o_: torch.exp(o_ - n_))),
        Mistake("the ratio is a ratio of probabilities, exp(logp_new - logp_old), not logp_new / logp_old.",
                lambda n, o, a, e: loss_from(n, o, a, e, torch.maximum, lambda n_, o_: n_ / o_)),
        Mistake("you clip the advantages; PPO clips the probability ratio.",
                lambda n, o, a, e: torch.maximum(-a * torch.exp(n - o), -torch.clamp(a, 1 - e, 1 + e) * torch.exp(n - o)).mean()),
        Mistake("the minus sign is missing: the loss is minus the surrogate objective.",
                lambda n, o, a, e: -loss_from(n, o, a, e, torch.minimum)),
    ]
    check_function(fn, reference, _ppo_cases(rng), exercise="the clipped PPO policy loss", mistakes=mistakes,
                   arg_names=("logp_new", "logp_old", "advantages", "clip_coef"),
                   seed=seed, atol=1e-5, rtol=1e-4, grad_args=(0,))


@learner_check
def check_ppo_value_loss(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(values_new, values_old, returns, clip_coef) -> loss``: PPO's clipped value loss.

    ``v_clip = values_old + clip(values_new - values_old, -clip_coef, clip_coef)``;
    ``loss = 0.5 * mean(max((values_new - returns)^2, (v_clip - returns)^2))``. Reference:
    :func:`rl_basics.agents.losses.ppo_value_loss`.
    """
    import torch

    from rl_basics.agents.losses import ppo_value_loss

    rng, seed = _rng(seed)
    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    cases = []
    for N, eps in ((16, 0.2), (30, 0.5)):
        old = rng.normal(size=N)
        change = rng.normal(scale=0.5, size=N)
        # half the returns lie beyond the new value in the direction it moved: there clipping binds
        returns = old + np.where(np.arange(N) % 2 == 0, change * rng.uniform(1.2, 3.0, size=N), rng.normal(size=N))
        cases.append(Case(f"random batch of {N}, clip_coef={eps}", (f(old + change), f(old), f(returns), eps)))
    cases.append(Case("edge case: the new values moved far from the old ones (clipped)",
                      (f([2.0, -2.0]), f([0.0, 0.0]), f([3.0, -3.0]), 0.2)))
    cases.append(Case("edge case: values_new == values_old (no clipping effect)", (f([1.0, 2.0]), f([1.0, 2.0]), f([0.0, 4.0]), 0.2)))

    def clipped(vn, vo, R, e, combine=torch.maximum, centre=None):
        centre = vo if centre is None else centre
        v_clip = centre + torch.clamp(vn - centre, -e, e)
        return 0.5 * combine((vn - R) ** 2, (v_clip - R) ** 2).mean()

    mistakes = [
        Mistake("you take the min of the clipped and unclipped squared errors; PPO takes the max (pessimistic).",
                lambda vn, vo, R, e: clipped(vn, vo, R, e, torch.minimum)),
        Mistake("clipping is missing: add the clipped term and take the max.",
                lambda vn, vo, R, e: ppo_value_loss(vn, vo, R, None)),
        Mistake("you clip around the returns; the new value is clipped around values_old.",
                lambda vn, vo, R, e: clipped(vn, vo, R, e, centre=R)),
        Mistake("you clip the values themselves to [-clip_coef, clip_coef]; clip the *change* values_new - values_old.",
                lambda vn, vo, R, e: 0.5 * torch.maximum((vn - R) ** 2, (torch.clamp(vn, -e, e) - R) ** 2).mean()),
    ]
    check_function(fn, ppo_value_loss, cases, exercise="the clipped PPO value loss", mistakes=mistakes, seed=seed,
                   atol=1e-5, rtol=1e-4, grad_args=(0,))


# ============================================================================ references
# Small formulas the packages do not need elsewhere; the checks compare against them.


def _episode_returns(states, rewards, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(G_t, first_visit_t)`` of one episode, through the MC code's :class:`rl_basics.lanes.Episodes`."""
    from rl_basics.lanes import Episodes

    T = len(rewards)
    episode = Episodes(states=np.asarray(states, dtype=np.int64).reshape(1, T), actions=np.zeros((1, T), dtype=np.int64),
                       rewards=np.asarray(rewards, dtype=float).reshape(1, T), lengths=np.array([T]))
    return episode.returns(gamma)[0], episode.first_visits()[0]


def discounted_return(rewards, gamma: float) -> float:
    """``sum_k gamma^k rewards[k]`` (``G_0``; 0 for an empty episode)."""
    return float(_episode_returns(np.zeros(len(rewards)), rewards, gamma)[0][0]) if len(rewards) else 0.0


def first_visit_returns(states, rewards, gamma: float) -> dict:
    """``{s: G_t}`` for the first ``t`` with ``states[t] == s`` (one episode)."""
    G, first = _episode_returns(states, rewards, gamma)
    return {s: float(G[t]) for t, s in enumerate(states) if first[t]}


def _last_visit_returns(states, rewards, gamma):
    G, _ = _episode_returns(states, rewards, gamma)
    return {s: float(G[t]) for t, s in enumerate(states)}


def _every_visit_mean(states, rewards, gamma):
    G, _ = _episode_returns(states, rewards, gamma)
    return {s: float(np.mean([G[t] for t, x in enumerate(states) if x == s])) for s in dict.fromkeys(states)}


def weighted_importance_sampling_update(V, C, G, W):
    """``C += W``; ``V += (W / C) (G - V)`` where ``C > 0`` (Sutton & Barto, section 5.6)."""
    V, C, G, W = (np.asarray(x, dtype=float) for x in (V, C, G, W))
    C_new = C + W
    step = np.divide(W, C_new, out=np.zeros_like(C_new), where=C_new > 0)
    return V + step * (G - V), C_new


def reward_to_go(rewards, dones, gamma):
    """``G_t = r_t + gamma (1 - done_t) G_{t+1}`` over consecutive episodes (numpy in and out).

    The same computation as :func:`rl_basics.agents.reinforce.returns_to_go`: GAE with
    ``lambda = 1`` and zero values, which stops at every episode end.
    """
    import torch

    r = torch.as_tensor(np.asarray(rewards, dtype=float))
    d = torch.as_tensor(np.asarray(dones, dtype=float))
    return bootstrapped_returns(r, d, torch.tensor(0.0, dtype=r.dtype), gamma).numpy()


def _reward_so_far(rewards, dones, gamma):
    out, G = np.zeros(len(rewards)), 0.0
    for t in range(len(rewards)):
        G = rewards[t] + gamma * G
        out[t] = G
        G = 0.0 if dones[t] else G
    return out


def bootstrapped_returns(rewards, dones, last_value, gamma):
    """n-step rollout returns through :func:`~rl_basics.agents.losses.compute_gae` with ``lam = 1``.

    With zero values and ``V(s_T)`` as the only next value, GAE(1)'s advantages are exactly
    the bootstrapped returns ``G_t = r_t + gamma (1 - d_t) G_{t+1}``, ``G_T = V(s_T)``.
    """
    import torch

    from rl_basics.agents.losses import compute_gae

    zeros = torch.zeros_like(rewards)
    next_values = zeros.clone()
    next_values[-1] = last_value
    return compute_gae(rewards, zeros, next_values, dones, dones, gamma, 1.0)[0]


# ============================================================================ exploration and multi-armed bandits
# (the chapter notebooks/01_exploration_and_bandits.ipynb; the references are rl_basics.bandits' own functions)

__all__ += ["check_incremental_update", "check_ucb_scores", "check_gradient_bandit_update"]


def _bandit_batch(rng: np.random.Generator, n_runs: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Random ``(actions (n_runs,), rewards (n_runs,))``: one pulled arm and its reward per run."""
    return rng.integers(0, k, size=n_runs), np.round(rng.normal(1.0, 1.5, size=n_runs), 3)


@learner_check
def check_incremental_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(Q, N, actions, rewards, alpha) -> (Q, N)``: the incremental action-value update of every run.

    ``Q``, ``N`` are ``(n_runs, k)`` estimates and pull counts, ``actions``, ``rewards`` ``(n_runs,)``.
    In each run only the pulled arm ``A`` changes: ``N(A) += 1``, then ``Q(A) += step * (R - Q(A))``
    with ``step = 1 / N(A)`` (the new count) when ``alpha is None`` (sample averages), else
    ``step = alpha``. Reference: :func:`rl_basics.bandits.incremental_update`.
    """
    from rl_basics.bandits import incremental_update

    rng, seed = _rng(seed)
    cases = []
    for n_runs, k, alpha in ((5, 4, None), (6, 3, 0.1), (4, 5, None), (5, 4, 0.5)):
        Q = np.round(rng.normal(size=(n_runs, k)), 3)
        N = rng.integers(1, 8, size=(n_runs, k)).astype(float)  # every arm pulled before
        cases.append(Case(f"{n_runs} runs, {k} arms, alpha={alpha} ({'sample averages' if alpha is None else 'constant step'})",
                          (Q, N, *_bandit_batch(rng, n_runs, k), alpha)))
    Q, N = np.zeros((3, 4)), np.array([[0.0, 2, 1, 0], [3, 0, 0, 1], [0, 0, 0, 0]])
    cases += [
        Case("edge case: the first pull of an arm (N = 0) with sample averages: Q(A) becomes R",
             (Q, N, np.array([0, 1, 3]), np.array([2.0, -1.0, 0.5]), None)),
        Case("edge case: alpha = 1 (Q(A) becomes the latest reward)",
             (np.ones((2, 3)), np.ones((2, 3)), np.array([2, 0]), np.array([5.0, -5.0]), 1.0)),
    ]

    def with_step(Q, N, actions, rewards, step_of):
        Q, N = np.array(Q, dtype=float), np.array(N, dtype=float)
        runs = np.arange(len(Q))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = step_of(N[runs, actions])
            N[runs, actions] += 1
            Q[runs, actions] += step * (rewards - Q[runs, actions])
        return Q, N

    mistakes = [
        Mistake("the step uses the count *before* this pull: 1 / N(A) must come after N(A) += 1 (the n-th reward "
                "gets weight 1/n; otherwise the first reward of an arm divides by zero).",
                lambda Q, N, a, r, alpha: with_step(Q, N, a, r, lambda n: 1.0 / n) if alpha is None
                else incremental_update(Q, N, a, r, alpha)),
        Mistake("the counts N are not updated: N(A) += 1 for the pulled arm, and return the new N.",
                lambda Q, N, a, r, alpha: (incremental_update(Q, N, a, r, alpha)[0], np.array(N, dtype=float))),
        Mistake("alpha is ignored: with a number alpha the step is that constant (recency-weighted average), "
                "1 / N(A) only when alpha is None.",
                lambda Q, N, a, r, alpha: incremental_update(Q, N, a, r, None)),
        Mistake("the estimate moves away from the reward: Q(A) + step * (R - Q(A)), not (Q(A) - R).",
                lambda Q, N, a, r, alpha: with_step(Q, N, a, r, lambda n: -(1.0 / (n + 1)) if alpha is None else -alpha)),
    ]
    try:
        check_function(fn, incremental_update, cases, exercise="the incremental update", mistakes=mistakes, seed=seed,
                       arg_names=("Q", "N", "actions", "rewards", "alpha"), allow_inplace=True)
    except CheckFailed as exc:  # one mistake no single wrong variant describes: arms that were not pulled change
        if "Hint:" not in str(exc) and any(_changes_other_arms(fn, case) for case in cases):
            raise CheckFailed(f"{exc}\n  Hint: arms that were not pulled changed: only the pulled arm of each run, "
                              "Q[run, actions[run]] and N[run, actions[run]], may change (index with "
                              "Q[np.arange(n_runs), actions]).") from None
        raise


def _changes_other_arms(fn: Callable, case: Case) -> bool:
    """Whether ``fn(Q, N, actions, rewards, alpha)`` changes an entry of ``Q`` or ``N`` of an arm that was not pulled."""
    Q, N, actions, rewards, alpha = case.args
    try:
        with np.errstate(all="ignore"):
            out = [np.asarray(x, dtype=float) for x in fn(Q.copy(), N.copy(), actions.copy(), rewards.copy(), alpha)]
    except Exception:
        return False
    others = np.ones(Q.shape, dtype=bool)
    others[np.arange(len(Q)), actions] = False
    return any(x.shape == Q.shape and not np.array_equal(x[others], y[others]) for x, y in zip(out, (Q, N)))


@learner_check
def check_ucb_scores(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(Q, N, t, c) -> (n_runs, k)``: the upper confidence bound of every arm of every run.

    ``Q(a) + c * sqrt(ln t / N(a))`` with the natural log, ``t`` the current step (1 for the first
    action) and ``N(a)`` the pulls of ``a`` so far; ``+inf`` where ``N(a) = 0`` (an untried arm counts as
    maximising). Reference: :func:`rl_basics.bandits.ucb_scores`.
    """
    from rl_basics.bandits import ucb_scores

    rng, seed = _rng(seed)
    cases = []
    for n_runs, k, t, c in ((4, 5, 40, 2.0), (6, 3, 12, 0.5), (3, 10, 200, 1.0)):
        N = rng.multinomial(t - 1, np.full(k, 1.0 / k), size=n_runs).astype(float)  # t - 1 pulls so far in each run
        N[N == 0] = 1.0
        cases.append(Case(f"{n_runs} runs, {k} arms, every arm tried, t={t}, c={c}",
                          (np.round(rng.normal(size=(n_runs, k)), 3), N, t, c)))
    Q = np.round(rng.normal(size=(2, 4)), 3)
    cases += [
        Case("edge case: some arms never tried (N = 0): their score is +inf",
             (Q, np.array([[3.0, 0, 2, 1], [0.0, 0, 5, 1]]), 7, 2.0)),
        Case("edge case: t = 1, no arm tried yet (ln 1 = 0, yet every score is +inf)", (np.zeros((2, 3)), np.zeros((2, 3)), 1, 2.0)),
        Case("edge case: c = 0 with an untried arm (greedy on Q, untried arms still first)",
             (Q, np.array([[3.0, 0, 2, 1], [1.0, 2, 5, 1]]), 12, 0.0)),
    ]

    def scores(Q, N, t, c, bonus, untried=np.inf):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(N > 0, Q + bonus(N, t, c), untried)

    mistakes = [
        Mistake("the square root is missing: the bonus is c * sqrt(ln t / N(a)).",
                lambda Q, N, t, c: scores(Q, N, t, c, lambda n, t_, c_: c_ * np.log(t_) / n)),
        Mistake("the log must be the natural log, ln t (np.log), not log10 or log2.",
                lambda Q, N, t, c: scores(Q, N, t, c, lambda n, t_, c_: c_ * np.sqrt(np.log10(t_) / n))),
        Mistake("c multiplies the square root; it is not inside it: c * sqrt(ln t / N), not sqrt(c ln t / N).",
                lambda Q, N, t, c: scores(Q, N, t, c, lambda n, t_, c_: np.sqrt(c_ * np.log(t_) / n))),
        Mistake("the bonus is subtracted: that is a *lower* confidence bound. UCB is optimistic: Q + bonus.",
                lambda Q, N, t, c: scores(Q, N, t, c, lambda n, t_, c_: -c_ * np.sqrt(np.log(t_) / n))),
        Mistake("an untried arm (N(a) = 0) must score +inf; dividing by N = 0 gives NaN here (0/0 at t = 1, or "
                "0 * inf with c = 0): handle N = 0 separately, e.g. np.where(N > 0, ..., np.inf).",
                lambda Q, N, t, c: scores(Q, N, t, c, lambda n, t_, c_: c_ * np.sqrt(np.log(t_) / n), untried=np.nan)),
    ]
    try:
        check_function(fn, ucb_scores, cases, exercise="the UCB scores", mistakes=mistakes, seed=seed,
                       arg_names=("Q", "N", "t", "c"), allow_inplace=True)
    except CheckFailed as exc:  # one mistake no single wrong variant describes: any finite score for N = 0
        if "Hint:" not in str(exc) and any(_finite_when_untried(fn, case) for case in cases):
            raise CheckFailed(f"{exc}\n  Hint: an untried arm (N(a) = 0) must score +inf, so that every arm is "
                              "tried once before any bonus counts; yours gets a finite score.") from None
        raise


def _finite_when_untried(fn: Callable, case: Case) -> bool:
    """Whether ``fn`` gives some arm with ``N = 0`` a finite UCB score on ``case``."""
    Q, N, t, c = case.args
    try:
        with np.errstate(all="ignore"):
            out = np.asarray(fn(Q.copy(), N.copy(), t, c), dtype=float)
    except Exception:
        return False
    return out.shape == N.shape and bool(np.isfinite(out[N == 0]).any())


@learner_check
def check_gradient_bandit_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(H, actions, rewards, baseline, alpha) -> H_new``: one gradient-bandit step for every run.

    With ``pi = softmax(H)`` over each run's arms (the last axis):
    ``H(a) += alpha * (R - baseline) * (1[a = A] - pi(a))`` for every arm ``a`` (equation 2.12);
    ``H`` is ``(n_runs, k)``, ``actions``, ``rewards`` and ``baseline`` ``(n_runs,)``. Reference:
    :func:`rl_basics.bandits.gradient_bandit_update`.
    """
    from rl_basics.bandits import gradient_bandit_update, log_softmax

    rng, seed = _rng(seed)
    cases = []
    for n_runs, k, alpha in ((5, 4, 0.1), (4, 6, 0.4), (6, 3, 1.0)):
        cases.append(Case(f"{n_runs} runs, {k} arms, alpha={alpha}",
                          (np.round(rng.normal(size=(n_runs, k)), 3), *_bandit_batch(rng, n_runs, k),
                           np.round(rng.normal(1.0, 0.5, size=n_runs), 3), alpha)))
    cases += [
        Case("edge case: large preferences (H ~ 1000: exp(H) overflows unless you subtract the max first)",
             (np.array([[1000.0, 998.0, 999.5], [-1000.0, -1001.0, -1000.5]]), np.array([1, 0]),
              np.array([2.0, 0.5]), np.array([1.0, 1.0]), 0.1)),
        Case("edge case: reward equal to the baseline (nothing changes)",
             (np.array([[0.5, -0.5, 0.0]]), np.array([2]), np.array([1.5]), np.array([1.5]), 0.1)),
    ]

    def step(H, a, r, b, alpha, direction):
        pi = np.exp(log_softmax(H))
        onehot = np.eye(H.shape[1])[a]
        return H + alpha * (np.asarray(r) - b)[:, None] * direction(onehot, pi)

    def softmax_over_runs(H, a, r, b, alpha):
        pi = np.exp(log_softmax(np.asarray(H).T)).T
        return H + alpha * (np.asarray(r) - b)[:, None] * (np.eye(H.shape[1])[a] - pi)

    mistakes = [
        Mistake("only the pulled arm is updated: every other arm a moves too, by -alpha (R - b) pi(a) "
                "(the (1[a = A] - pi(a)) factor).", lambda H, a, r, b, al: step(H, a, r, b, al, lambda o, p: o * (1 - p))),
        Mistake("the other arms move the same way as the pulled one: their factor is -pi(a), so they go down "
                "when R > baseline.", lambda H, a, r, b, al: step(H, a, r, b, al, lambda o, p: o * (1 - p) + (1 - o) * p)),
        Mistake("the baseline is missing: use (R - baseline), not R.",
                lambda H, a, r, b, al: gradient_bandit_update(H, a, r, 0.0, al)),
        Mistake("the softmax is taken over the runs (axis 0); each run has its own policy: normalise over the "
                "arms, the last axis (axis=-1 or axis=1, keepdims=True).", softmax_over_runs),
        Mistake("the update goes down the gradient: H + alpha (R - b)(1[a = A] - pi), with a plus sign.",
                lambda H, a, r, b, al: 2 * np.asarray(H) - gradient_bandit_update(H, a, r, b, al)),
    ]
    check_function(fn, gradient_bandit_update, cases, exercise="the gradient-bandit update", mistakes=mistakes,
                   seed=seed, arg_names=("H", "actions", "rewards", "baseline", "alpha"), allow_inplace=True)


# ============================================================================ value-function approximation and DQN
# (the chapter notebooks/05_function_approximation_and_dqn.ipynb; the references are rl_basics.agents.dqn's own)

__all__ += ["check_dqn_td_target", "check_replay_sample", "check_double_dqn_target"]


def _q_batch(rng: np.random.Generator, B: int, A: int):
    """Random ``(B, A)`` next-state action values, as float32 tensors (distinct values: no ties)."""
    import torch

    return torch.tensor(np.round(rng.normal(2.0, 3.0, size=(B, A)), 3), dtype=torch.float32)


def _flags(rng: np.random.Generator, B: int) -> tuple:
    """``(terminated, truncated)`` float tensors ``(B,)``: some of each, never both on one transition."""
    import torch

    terminated = rng.random(B) < 0.3
    truncated = (rng.random(B) < 0.3) & ~terminated
    terminated[0], truncated[0], terminated[1], truncated[1] = True, False, False, True  # at least one of each
    return torch.tensor(terminated, dtype=torch.float32), torch.tensor(truncated, dtype=torch.float32)


def _no_gradient_through_target(fn: Callable, case: Case, grad_args: tuple[int, ...], exercise: str, seed) -> None:
    """The target of a TD regression is a constant: no gradient may flow back into the next-state values."""
    __tracebackhide__ = True
    args = list(case.args)
    for i in grad_args:
        args[i] = args[i].detach().clone().requires_grad_(True)
    out = fn(*args)
    if getattr(out, "requires_grad", False):
        raise CheckFailed(
            f"{exercise}: the value is right, but your target carries a gradient back into the next-state Q-values. "
            "The target is a fixed regression target (that is what makes the method *semi*-gradient): compute it "
            "from next_q.detach() or inside `with torch.no_grad():`.\n"
            f"  inputs: {case.name} (random inputs from seed={seed}: pass seed={seed} to the check to reproduce)"
        )


@learner_check
def check_dqn_td_target(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, next_q_target, terminated, truncated, gamma) -> (B,)``: DQN's TD target.

    ``rewards``, ``terminated``, ``truncated`` are ``(B,)`` float tensors (flags 0/1), ``next_q_target``
    ``(B, A)`` the target network's ``Q(s', .)``. The target is
    ``r + gamma * (1 - terminated) * max_a' next_q_target[:, a']``, with no gradient: a truncated
    transition (a time limit) still bootstraps. Reference: :func:`rl_basics.agents.dqn.td_target`.
    """
    import torch

    from rl_basics.agents.dqn import td_target

    rng, seed = _rng(seed)
    cases = []
    for B, A, g in ((6, 6, 0.99), (12, 2, 0.9), (8, 3, 0.5)):  # B == A first: a max over the batch has the right shape
        terminated, truncated = _flags(rng, B)
        rewards = torch.tensor(np.round(rng.normal(size=B), 3), dtype=torch.float32)
        cases.append(Case(f"random batch of {B} transitions, {A} actions, gamma={g}, some terminated and some truncated",
                          (rewards, _q_batch(rng, B, A), terminated, truncated, g)))
    ones, zeros = torch.ones(3), torch.zeros(3)
    cases += [
        Case("edge case: every transition terminated (the target is the reward alone)",
             (ones, _q_batch(rng, 3, 2), ones, zeros, 0.99)),
        Case("edge case: every transition truncated by a time limit (all bootstrap)",
             (ones, _q_batch(rng, 3, 2), zeros, ones, 0.99)),
    ]

    def reference(r, q, term, trunc, g):
        return td_target(r, q, term, g)

    mistakes = [
        Mistake("you bootstrap from the next state even when the episode terminated there: a terminal state has "
                "value 0, so multiply the bootstrap term by (1 - terminated).",
                lambda r, q, term, trunc, g: td_target(r, q, torch.zeros_like(term), g)),
        Mistake("you stop bootstrapping on truncated transitions too: a time limit is not a terminal state (the "
                "state still has a future), so only `terminated` zeroes the bootstrap; a truncated transition keeps "
                "gamma * max_a' Q_target(s', a').",
                lambda r, q, term, trunc, g: td_target(r, q, torch.clamp(term + trunc, max=1.0), g)),
        Mistake("you average Q_target(s', .) over the actions: DQN's target takes the max (the greedy policy's value).",
                lambda r, q, term, trunc, g: r + g * (1 - term) * q.mean(dim=1)),
        Mistake("you take the min over the actions; the target uses the max.",
                lambda r, q, term, trunc, g: r + g * (1 - term) * q.min(dim=1).values),
        Mistake("you take the max over the batch (dim 0) instead of over the actions (dim 1).",
                lambda r, q, term, trunc, g: r + g * (1 - term) * q.max(dim=0).values),
        Mistake("the discount gamma is missing.", lambda r, q, term, trunc, g: td_target(r, q, term, 1.0)),
    ]
    exercise = "the DQN TD target"
    check_function(fn, reference, cases, exercise=exercise, mistakes=mistakes, seed=seed, atol=1e-5, rtol=1e-5,
                   arg_names=("rewards", "next_q_target", "terminated", "truncated", "gamma"), quiet=True)
    _no_gradient_through_target(fn, cases[0], (1,), exercise, seed)
    print(f"✓ {exercise}: correct on all {len(cases)} test cases, random ones from seed {seed}.")


@learner_check
def check_replay_sample(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(storage, size, batch_size, generator) -> dict``: a uniform minibatch from a replay buffer.

    ``storage`` maps ``"obs"``, ``"actions"``, ``"rewards"``, ``"next_obs"``, ``"terminated"`` to tensors of
    ``capacity`` rows, of which the first ``size`` hold transitions. The result has the same keys, each
    with ``batch_size`` rows: transitions drawn uniformly with replacement from rows ``0 .. size - 1``,
    one row index per sampled transition for every field. ``generator`` is a ``torch.Generator`` to draw
    with. Reference: :func:`rl_basics.agents.dqn.sample_transitions`.

    Every stored field encodes its row (``rewards[i] = 1000 + i``, ``next_obs[i]`` differs from
    ``obs[i + 1]``), so the check can tell which rows you returned.
    """
    import torch

    rng, seed = _rng(seed)
    exercise = "the replay sample"
    again = f" (random inputs from seed={seed}: pass seed={seed} to the check to reproduce)"

    def fail(message: str, inputs: str) -> None:
        __tracebackhide__ = True
        raise CheckFailed(f"{exercise}: {message}\n  inputs: {inputs}{again}")

    def make_storage(capacity: int) -> dict:
        rows = torch.arange(capacity, dtype=torch.float32)
        return {
            "obs": torch.stack([rows, rows + 0.25], dim=1),
            "actions": torch.arange(capacity) % 3,
            "rewards": 1000.0 + rows,
            "next_obs": torch.stack([rows + 0.5, rows + 0.75], dim=1),  # not obs[i + 1]: episodes end, rows wrap
            "terminated": (torch.arange(capacity) % 7 == 0).float(),
        }

    # a filling buffer first (its next row exists, so obs[i + 1] mistakes show as such), then a full one, then one row
    cases = [(48, int(rng.integers(24, 40)), 16), (25, 25, 16), (50, 1, 8)]
    for capacity, size, batch_size in cases:
        inputs = f"a buffer of capacity {capacity} holding {size} transitions, batch_size={batch_size}"
        storage = make_storage(capacity)
        original = {k: v.clone() for k, v in storage.items()}
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        draws = []
        for _ in range(max(1, 4000 // batch_size)):
            try:
                out = fn(storage, size, batch_size, generator)
            except NotImplementedError:
                raise CheckFailed(f"{exercise}: not done yet — replace `raise NotImplementedError` in your function "
                                  "with your code, then run this check again.") from None
            except Exception as exc:
                raise CheckFailed(f"{exercise}: your function raised {type(exc).__name__}: {exc}\n  inputs: {inputs}"
                                  f"{again}") from exc
            if out is None:
                fail("your function returned None: did you forget the `return` statement?", inputs)
            if not isinstance(out, dict) or set(out) != set(storage):
                fail(f"return a dict with the storage's keys {sorted(storage)}; you returned "
                     f"{sorted(out) if isinstance(out, dict) else type(out).__name__}.", inputs)
            if any(not torch.equal(storage[k], original[k]) for k in storage):
                fail("your function changed the buffer's storage in place; sampling must only read it.", inputs)
            for key, value in out.items():
                expected = (batch_size, *storage[key].shape[1:])
                if tuple(torch.as_tensor(value).shape) != expected:
                    fail(f"out[{key!r}] has shape {tuple(torch.as_tensor(value).shape)}, expected {expected}: "
                         "one row per sampled transition.", inputs)
            index = torch.as_tensor(out["rewards"]).double() - 1000.0
            if not torch.equal(index, index.round()) or (index < 0).any() or (index >= capacity).any():
                fail("out['rewards'] holds values that are not in the buffer: return the stored rows "
                     "(storage[key][index]) unchanged.", inputs)
            index = index.long()
            if (index >= size).any():
                fail(f"you sampled rows at or beyond `size` ({size}): only the first `size` rows hold transitions, the "
                     f"rest of the {capacity} rows are still empty (zeros in a real buffer). Draw indices in "
                     "[0, size), not [0, capacity).", inputs)
            if not torch.allclose(torch.as_tensor(out["next_obs"]).float(), storage["next_obs"][index]):
                if torch.allclose(torch.as_tensor(out["next_obs"]).float(), storage["obs"][(index + 1) % capacity]):
                    fail("your next_obs is obs[i + 1], the next row of the buffer: that is not the successor of "
                         "transition i when its episode ended there (the next row starts another episode) or when the "
                         "ring wrapped around. Return the stored next_obs[i].", inputs)
                fail("out['next_obs'] does not belong to the same transitions as out['rewards']: use one index "
                     "per sampled transition for every field.", inputs)
            for key in ("obs", "actions", "terminated"):
                if not torch.equal(torch.as_tensor(out[key]).to(storage[key].dtype), storage[key][index]):
                    fail(f"out[{key!r}] does not belong to the same transitions as out['rewards']: draw the row "
                         "indices once and use them for every field (separate draws per field tear the transitions "
                         "apart).", inputs)
            draws.append(index)
        count = torch.bincount(torch.cat(draws), minlength=size)[:size]
        expected = count.sum().item() / size
        if size > 1 and (count.min() < 0.5 * expected or count.max() > 1.6 * expected):
            never = int((count == 0).sum())
            fail(f"the rows are not drawn uniformly: over {int(count.sum())} samples some rows came "
                 f"{int(count.max())} times and some {int(count.min())} (about {expected:.0f} each expected"
                 f"{f'; {never} rows never' if never else ''}). Replay draws every stored transition with equal "
                 "probability (e.g. torch.randint(size, (batch_size,), generator=generator)); returning the latest "
                 "transitions brings back the correlated, recent data the buffer exists to break up.", inputs)
    print(f"✓ {exercise}: correct on all {len(cases)} test cases (4,000 samples each), random ones from seed {seed}.")


@learner_check
def check_double_dqn_target(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(rewards, next_q_online, next_q_target, terminated, gamma) -> (B,)``: the Double DQN target.

    ``r + gamma * (1 - terminated) * next_q_target[b, argmax_a next_q_online[b, a]]``: the online network
    chooses the next action, the target network evaluates it; no gradient. ``rewards``, ``terminated``
    ``(B,)``; ``next_q_online``, ``next_q_target`` ``(B, A)``. Reference:
    :func:`rl_basics.agents.dqn.td_target` with ``next_q_online``.
    """
    import torch

    from rl_basics.agents.dqn import td_target

    rng, seed = _rng(seed)
    cases = []
    for B, A, g in ((10, 4, 0.99), (8, 2, 0.9), (6, 6, 0.5)):
        terminated, _ = _flags(rng, B)
        rewards = torch.tensor(np.round(rng.normal(size=B), 3), dtype=torch.float32)
        cases.append(Case(f"random batch of {B} transitions, {A} actions, gamma={g}, some terminated",
                          (rewards, _q_batch(rng, B, A), _q_batch(rng, B, A), terminated, g)))
    cases += [
        Case("edge case: the two networks prefer different actions in every row",
             (torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 5.0], [5.0, 0.0]]),
              torch.zeros(2), 1.0)),
        Case("edge case: every transition terminated",
             (torch.ones(3), _q_batch(rng, 3, 2), _q_batch(rng, 3, 2), torch.ones(3), 0.99)),
    ]

    def reference(r, q_online, q_target, term, g):
        return td_target(r, q_target, term, g, q_online)

    def evaluate(q_choose, q_value):
        return q_value.gather(1, q_choose.argmax(dim=1, keepdim=True)).squeeze(1)

    mistakes = [
        Mistake("you take max_a' Q_target(s', a'): that is plain DQN's target, which overestimates. Double DQN "
                "picks the action with the *online* network, a* = argmax_a' Q_online(s', a'), and evaluates it "
                "with the target network, Q_target(s', a*).",
                lambda r, qo, qt, term, g: td_target(r, qt, term, g)),
        Mistake("you evaluate the chosen action with the online network (max_a' Q_online(s', a')): the same "
                "network picks and evaluates, so the max bias is back. Evaluate a* with the target network.",
                lambda r, qo, qt, term, g: td_target(r, qo, term, g)),
        Mistake("the roles are swapped: the online network chooses (argmax), the target network evaluates.",
                lambda r, qo, qt, term, g: r + g * (1 - term) * evaluate(qt, qo)),
        Mistake("you bootstrap even when the episode terminated: multiply the bootstrap term by (1 - terminated).",
                lambda r, qo, qt, term, g: td_target(r, qt, torch.zeros_like(term), g, qo)),
        Mistake("the discount gamma is missing.", lambda r, qo, qt, term, g: td_target(r, qt, term, 1.0, qo)),
    ]
    exercise = "the Double DQN target"
    check_function(fn, reference, cases, exercise=exercise, mistakes=mistakes, seed=seed, atol=1e-5, rtol=1e-5,
                   arg_names=("rewards", "next_q_online", "next_q_target", "terminated", "gamma"), quiet=True)
    _no_gradient_through_target(fn, cases[0], (1, 2), exercise, seed)
    print(f"✓ {exercise}: correct on all {len(cases)} test cases, random ones from seed {seed}.")
