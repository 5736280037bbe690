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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
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
    "check_ppo_update",
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


def _terminal_trap():
    """A fixed 4-state, 2-action model where bootstrapping through a terminating transition changes the greedy action.

    State 1 is terminal (absorbing, no reward) and gets V = 10. From state 0, action 0 ends the episode with
    reward 1 and action 1 continues to state 2 (V = 2) with reward 0: greedy is 1, but through the termination
    0 looks better. From state 3 it is the other way round (greedy 0, reward 1 and continuing).
    """
    from rl_basics.mdp import TabularModel

    P = np.zeros((4, 2, 4))
    P[0, 0, 1] = P[0, 1, 2] = P[1, :, 1] = P[2, :, 1] = P[3, 0, 2] = P[3, 1, 1] = 1.0
    rewards = np.array([[1.0, 0.0], [0.0, 0.0], [0.5, 0.2], [1.0, 0.0]])
    ends = np.zeros_like(P)
    ends[:, :, 1] = P[:, :, 1]  # every transition into state 1 terminates
    return TabularModel(P, rewards, terminations=ends), np.array([0.0, 10.0, 2.0, 0.0])


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
    cases.append(Case("edge case: transitions that terminate in a state with V = 10 (which must not be used), gamma=0.9",
                      (*_terminal_trap(), 0.9)))
    supports, first_wrong = [], None  # the actions the learner gives probability in each case; its first wrong choice
    for case in cases:
        model, V, gamma = case.args
        where = f"\n  inputs: {case.name} (pass seed={seed} to reproduce)"
        pi, problem, cause = _learner_policy(fn, case)
        if problem is not None:
            if first_wrong is None:
                raise CheckFailed(f"policy improvement: {problem}{where}") from cause
            break  # a case no choice of actions explains: no hint about the wrong choices
        q = dp.q_from_v(model, V, gamma)
        best = q >= q.max(1, keepdims=True) - 1e-9
        wrong = (pi > 1e-9) & ~best
        supports.append(pi > 1e-9)
        if wrong.any() and first_wrong is None:
            s = int(np.argwhere(wrong)[0][0])
            chosen = np.flatnonzero(pi[s] > 1e-9).tolist()
            first_wrong = (f"policy improvement: in state {s} you choose action(s) {chosen} with "
                           f"Q(s, .) = {np.round(q[s], 4).tolist()}; the greedy actions are "
                           f"{np.flatnonzero(best[s]).tolist()}.", where)
    if first_wrong is not None:
        hint = _greedy_hint(cases, supports) if len(supports) == len(cases) else None
        raise CheckFailed(first_wrong[0] + (f" Hint: {hint}" if hint else
                                            " Compute Q(s, a) = r(s,a) + gamma * sum_s' C[s,a,s'] V(s') and put all "
                                            "probability on its argmax.") + first_wrong[1])
    print(f"✓ policy improvement: correct on all {len(cases)} test cases, random ones from seed {seed}.")


def _learner_policy(fn: Callable, case: Case) -> tuple[np.ndarray | None, str | None, BaseException | None]:
    """``(policy, None, None)`` from ``fn(*case.args)``, or ``(None, what is wrong, the error raised)``."""
    model = case.args[0]
    try:
        pi = fn(*case.args)
    except NotImplementedError:
        raise CheckFailed("policy improvement: not done yet — replace `raise NotImplementedError` in your "
                          "function with your code, then run this check again.") from None
    except Exception as exc:
        return None, f"your function raised {type(exc).__name__}: {exc}", exc
    if pi is None:
        return None, "your function returned None: did you forget `return`?", None
    pi = np.asarray(pi, dtype=float)
    if pi.shape != (model.n_states, model.n_actions):
        hint = " (one action per state? return the one-hot (S, A) probability matrix: np.eye(A)[actions])" \
            if pi.shape == (model.n_states,) else ""
        return None, f"wrong shape: expected {(model.n_states, model.n_actions)}, got {pi.shape}{hint}", None
    if not np.allclose(pi.sum(1), 1) or (pi < -1e-12).any():
        return None, "each row must be a probability distribution (non-negative, summing to 1)", None
    return pi, None, None


def _greedy_hint(cases: list[Case], supports: list[np.ndarray]) -> str | None:
    """The known mistake that explains the learner's choices in every state of *every* case, if one does.

    ``supports[i]`` ``(S, A)`` bool: the actions the learner gives probability in case ``i``.
    """
    from rl_basics import dp

    def picks(q_of) -> bool:
        for case, support in zip(cases, supports):
            q = q_of(*case.args)
            if (support & ~(q >= q.max(1, keepdims=True) - 1e-9)).any():
                return False
        return True

    if picks(lambda m, V, g: -dp.q_from_v(m, V, g)):
        return "you pick the worst action: use argmax, not argmin."
    if picks(lambda m, V, g: m.rewards):
        return "you maximise the immediate reward only; add gamma * sum_s' C[s,a,s'] V(s') (one-step lookahead)."
    if picks(lambda m, V, g: dp.q_from_v(_through_terminals(m), V, g)):
        return _TERMINAL_HINT
    if picks(lambda m, V, g: dp.q_from_v(m, V, 1.0)):
        return "the discount gamma is missing in the lookahead."
    return None


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
        Case("edge case: a state revisited at once (a self-loop)", ([2, 2, 0, 2], [1.0, 10.0, 100.0, 1000.0], 0.9)),
        Case("edge case: tuple states (Blackjack's (player sum, dealer card, usable ace)), one revisited",
             ([(13, 10, 0), (13, 10, 1), (17, 10, 1), (13, 10, 0)], [0.0, 1.0, 10.0, -1.0], 0.9)),
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
                lambda V, C, G, W: (V + np.divide(W, C, out=np.where(W > 0, np.nan, 0.0), where=C > 0) * (G - V),
                                    C + W), nan_means_any=True),  # W / 0 (C = 0): each learner's guard gives another number
        Mistake("that is the ordinary average (step 1/n): weighted importance sampling steps by W / C.",
                lambda V, C, G, W: (V + (G - V) / (C + 1), C + 1)),
        Mistake("the update moves V away from G: it is V + (W / C) (G - V).",
                lambda V, C, G, W: (V - np.divide(W, C + W, out=np.zeros_like(V), where=C + W > 0) * (G - V), C + W)),
    ]
    check_function(fn, weighted_importance_sampling_update, cases, exercise="the weighted importance-sampling update",
                   mistakes=mistakes, seed=seed)


# ---------------------------------------------------------------------------- loop exercises (chapters 3 and 4)
# A loop exercise hands the learner's function a real gymnasium env wrapped in a _RecordingEnv. It records every
# transition the loop makes, with a copy of the learner's tables (Q, N) at each env.reset and env.step call. The
# check then recomputes, from the experience the loop actually had, what each update should have made of the
# tables, whatever random numbers the learner's policy drew, and judges the policy from the tables it acted on.


class _LoopMisuse(Exception):
    """Raised by the recording env inside the learner's loop: the loop used the env wrongly (the message says how)."""


@dataclass
class _Step:
    """One transition of a learner's loop, with copies of its tables when it called ``env.step``."""

    obs: Any
    action: int
    reward: float
    next_obs: Any
    terminated: bool
    truncated: bool
    tables: tuple[np.ndarray, ...]


class _RecordingEnv(gym.Wrapper):
    """The env given to a learner's loop: records the episodes and the tables, and stops a loop that misuses it."""

    def __init__(self, env: gym.Env, tables: tuple[np.ndarray, ...]):
        super().__init__(env)
        self.tables = tables
        self.episodes: list[list[_Step]] = []
        self.starts: list[tuple[np.ndarray, ...]] = []  # the tables at each env.reset
        self.over = True  # the current episode has ended (or none started)
        self._obs = None

    def snapshot(self) -> tuple[np.ndarray, ...]:
        return tuple(table.copy() for table in self.tables)

    def reset(self, **kwargs):
        if self.episodes and not self.over:
            raise _LoopMisuse(f"env.reset() was called in the middle of episode {len(self.episodes)}: play each "
                              "episode until `terminated or truncated`, and only then reset")
        obs, info = self.env.reset(**kwargs)
        self.episodes.append([])
        self.starts.append(self.snapshot())
        self._obs, self.over = obs, False
        return obs, info

    def step(self, action):
        if not self.episodes:
            raise _LoopMisuse("env.step() was called before env.reset(): start each episode with `s, _ = env.reset()`")
        if self.over:
            why = "terminated" if self.episodes[-1][-1].terminated else "was truncated (it hit the time limit)"
            raise _LoopMisuse(f"env.step() was called after episode {len(self.episodes)} {why}: stop stepping as "
                              "soon as `terminated or truncated` is true")
        n = int(self.action_space.n)
        try:
            valid = np.ndim(action) == 0 and float(action) == int(action) and 0 <= int(action) < n
        except (TypeError, ValueError):
            valid = False
        if not valid:
            raise _LoopMisuse(f"env.step() got the action {action!r}: pass one int in 0..{n - 1}, e.g. "
                              "`int(policies.epsilon_greedy_action(Q[s], epsilon, rng))`")
        tables = self.snapshot()
        obs, reward, terminated, truncated, info = self.env.step(int(action))
        self.episodes[-1].append(_Step(self._obs, int(action), float(reward), obs, bool(terminated), bool(truncated),
                                       tables))
        self._obs, self.over = obs, bool(terminated or truncated)
        return obs, reward, terminated, truncated, info


def _again(seed: int) -> str:
    return f"\n  (random episodes from seed={seed}: pass seed={seed} to the check to reproduce)"


def _run_loop(fn: Callable, exercise: str, seed: int, *args):
    """Call the learner's loop; 'not done yet', a misused env and the learner's own errors become CheckFailed."""
    __tracebackhide__ = True
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(f"{exercise}: not done yet — replace `raise NotImplementedError` in your function with your "
                          "code, then run this check again.") from None
    except _LoopMisuse as exc:
        raise CheckFailed(f"{exercise}: {exc}.{_again(seed)}") from None
    except Exception as exc:
        raise CheckFailed(f"{exercise}: your function raised {type(exc).__name__}: {exc}{_again(seed)}") from exc


def _greedy_actions(row: np.ndarray) -> np.ndarray:
    """The actions whose value is maximal (within float noise) in a row of Q."""
    return np.flatnonzero(np.isclose(row, row.max(), rtol=0.0, atol=1e-9))


def _explores(picks: list[tuple[np.ndarray, int]], exercise: str) -> str | None:
    """A complaint when the actions taken with epsilon = 1 are not uniformly random (a policy that does not explore).

    ``picks``: (the row of Q the action was chosen from, the action). With a uniformly random action, each action,
    and the greedy one where it is unique, has probability 1/A; a greedy policy takes the greedy one every time
    (and, breaking ties like ``np.argmax``, the first action). Each count is tested 5 standard deviations out:
    a uniformly random policy fails with probability about 3e-7 per test.
    """
    n_actions = len(picks[0][0]) if picks else 0
    informative = [(row, a) for row, a in picks if len(_greedy_actions(row)) == 1]
    p = 1.0 / max(n_actions, 1)
    tests = [("the greedy action", sum(int(a == row.argmax()) for row, a in informative), len(informative))]
    tests += [(f"action {b}", sum(int(a == b) for _, a in picks), len(picks)) for b in range(n_actions)]
    for what, count, n in tests:
        if n >= 30 and count > n * p + 5 * np.sqrt(n * p * (1 - p)):
            return (f"your policy does not explore: in the episodes with epsilon = 1, where every action is equally "
                    f"likely, it took {what} in {count} of {n} steps (a uniformly random action: about {n * p:.0f}). "
                    "With probability epsilon take a uniformly random action, otherwise the greedy one "
                    "(`policies.epsilon_greedy_action(Q[s], epsilon, rng)` does both).")
    return None


def _judge_behaviour(epsilon: float, rows: Sequence[np.ndarray], step: _Step, t: int, episode: str,
                     explore: list[tuple[np.ndarray, int]], fail: Callable[[str], None]) -> None:
    """The behaviour policy at one step of a learner's loop: with ``epsilon = 0`` the action must be greedy in
    one of ``rows`` (the rows of Q it may have been chosen from; the first is the one reported), and with
    ``epsilon = 1`` the step joins ``explore``, the sample :func:`_explores` tests for uniform randomness."""
    if epsilon == 0.0 and not any(step.action in _greedy_actions(row) for row in rows):
        fail(f"{episode} has epsilon = 0, so it must act greedily in Q, but at its step {t}, in state {step.obs} "
             f"with Q[s] = {np.round(rows[0], 4)}, it took action {step.action}. With probability 1 - epsilon take "
             "argmax_a Q[s][a] (policies.epsilon_greedy_action(Q[s], epsilon, rng)).")
    if epsilon == 1.0:
        explore.append((rows[0], step.action))


def _mc_episode(spec, steps: list[_Step]):
    """One recorded episode as the MC code's ``rl_basics.lanes.Episodes`` (flat state indices)."""
    from rl_basics.lanes import Episodes

    T = len(steps)
    return Episodes(states=np.array([[spec.encode(x.obs) for x in steps]], dtype=np.int64),
                    actions=np.array([[x.action for x in steps]], dtype=np.int64),
                    rewards=np.array([[x.reward for x in steps]], dtype=float), lengths=np.array([T]))


def _mc_expected(Q, N, episode, gamma):
    """(Q, N) after first-visit sample-average updates from one episode (``rl_basics.mc``'s own update)."""
    from rl_basics.mc import add_first_visit_returns

    sums, counts = Q * N, N.copy()
    add_first_visit_returns(sums, counts, episode, gamma)
    return np.where(counts > N, sums / np.maximum(counts, 1), Q), counts


def _mc_replay(Q, N, episode, returns, use, step):
    """A wrong learner's update: walking the episode backward, at the steps ``use``, N += 1 and Q += step(G, Q, N)."""
    Q, N = Q.copy(), N.copy()
    for t in reversed(range(int(episode.lengths[0]))):
        if use[0, t]:
            s, a = episode.states[0, t], episode.actions[0, t]
            N[s, a] += 1
            Q[s, a] += step(returns[0, t], Q[s, a], N[s, a])
    return Q, N


def _forward_returns(rewards: np.ndarray, gamma: float) -> np.ndarray:
    out, G = np.zeros_like(rewards), 0.0
    for t in range(rewards.shape[1]):
        G = gamma * G + rewards[0, t]
        out[0, t] = G
    return out


def _mc_mistakes(Q, N, episode, gamma, carry):
    """(hint, (Q, N) the mistake makes of one episode) for the known wrong ways to write the MC control update."""
    G = episode.returns(gamma)
    first, average = episode.first_pair_visits(), (lambda g, q, n: (g - q) / n)
    T = int(episode.lengths[0])
    return [
        ("you update Q(s, a) at every visit of a pair (every-visit MC). First-visit MC uses only the first visit "
         "of each (s, a) in the episode: walking backward, skip a step if its pair also occurs earlier.",
         _mc_replay(Q, N, episode, G, episode.valid, average)),
        ("you use the first visit of each *state*, whatever the action. Control estimates Q(s, a): use the first "
         "visit of each state-action pair (s, a).", _mc_replay(Q, N, episode, G, episode.first_visits(), average)),
        ("your returns run forward in time: G_t must sum the rewards *after* step t, R_{t+1} + gamma R_{t+2} + ..., "
         "so walk the episode backward with G = R_{t+1} + gamma * G.",
         _mc_replay(Q, N, episode, _forward_returns(episode.rewards, gamma), first, average)),
        ("the discount gamma is missing from the returns: G = R_{t+1} + gamma * G.",
         _mc_replay(Q, N, episode, episode.returns(1.0), first, average)),
        ("G is not reset to 0 at the start of each episode: the previous episode's return leaks into this one.",
         _mc_replay(Q, N, episode, G + carry * gamma ** (T - np.arange(G.shape[1]))[None], first, average)),
        ("Q(s, a) is overwritten by the latest return; it must be the *average* of all the first-visit returns "
         "of (s, a) so far: N(s, a) += 1, then Q(s, a) += (G - Q(s, a)) / N(s, a).",
         _mc_replay(Q, N, episode, G, first, lambda g, q, n: g - q)),
        ("Q(s, a) adds up the returns: divide by the count, Q(s, a) += (G - Q(s, a)) / N(s, a).",
         _mc_replay(Q, N, episode, G, first, lambda g, q, n: g)),
        ("the step of the average is off by one: with N(s, a) already counting this return, "
         "Q(s, a) += (G - Q(s, a)) / N(s, a).", _mc_replay(Q, N, episode, G, first, lambda g, q, n: (g - q) / (n + 1))),
    ]


class _EpsilonSchedule:
    """The schedule handed to the learner's MC loop, k -> epsilon_k; remembers the episode numbers it was asked for."""

    def __init__(self, fn: Callable[[int], float]):
        self.fn, self.asked = fn, []

    def __call__(self, k):
        self.asked.append(float(np.min(k)))
        return self.fn(k)


def _judge_mc_control(rec: _RecordingEnv, final, n_episodes: int, schedule: _EpsilonSchedule, gamma: float,
                      case: str, exercise: str, seed: int) -> None:
    """Raise CheckFailed, with a hint, unless the recorded run is first-visit MC control with epsilon_k-greedy episodes."""
    __tracebackhide__ = True
    from rl_basics.tabular import TabularSpec

    def fail(message):
        __tracebackhide__ = True
        raise CheckFailed(f"{exercise}: {message}\n  on: {case}{_again(seed)}")

    played = len(rec.episodes)
    if played != n_episodes:
        fail(f"your function played {played} episodes; it must play n_episodes = {n_episodes} (one env.reset() each).")
    if not rec.over:
        fail("your function returned in the middle of the last episode: play it until `terminated or truncated`.")
    if not schedule.asked:
        fail("epsilon is a function of the episode number: episode k uses epsilon(k), e.g. 1/k for "
             "policies.glie_schedule(1.0). Your function never called it.")
    if min(schedule.asked) < 1 or max(schedule.asked) > n_episodes:
        fail(f"episodes are numbered k = 1, 2, ..., n_episodes = {n_episodes} and episode k uses epsilon(k); "
             f"your function asked for epsilon({min(schedule.asked):g}) .. epsilon({max(schedule.asked):g}).")
    spec = TabularSpec.from_env(rec.env)
    A = spec.n_actions
    flat = lambda tables: tuple(t.reshape(-1, A) for t in tables)  # noqa: E731
    carry, explore = 0.0, []
    for k, steps in enumerate(rec.episodes, 1):
        start = flat(rec.starts[k - 1])
        end = flat(rec.starts[k] if k < played else final)
        for t, step in enumerate(steps):
            if not all(np.array_equal(a, b) for a, b in zip(flat(step.tables), start)):
                fail(f"Q or N changed during episode {k} (before its step {t}). Monte Carlo learns from the complete "
                     "return, which is known only at the end: first play the whole episode, then update.")
        episode = _mc_episode(spec, steps)
        Q_want, N_want = _mc_expected(*start, episode, gamma)
        ok_Q = np.allclose(end[0], Q_want, rtol=1e-7, atol=1e-9)
        ok_N = np.array_equal(end[1], N_want)
        if not (ok_Q and ok_N):
            listing = ", ".join(f"({x.obs}, {x.action}, {x.reward:g})" for x in steps[:8]) + (" ..." if len(steps) > 8 else "")
            where = f"after episode {k} [(S_t, A_t, R_t+1): {listing}]"
            if not np.isfinite(end[0]).all():
                fail(f"Q holds NaN or inf {where}: divide by N(s, a) only after counting this return (N(s, a) += 1 "
                     "first), so N(s, a) >= 1.")
            if np.array_equal(end[0], start[0]) and np.array_equal(end[1], start[1]):
                fail(f"Q and N did not change {where}. Update the arrays Q and N you were given, in place "
                     "(Q[s][a] += ...), after each episode; the check reads those arrays.")
            for hint, (Q_bad, N_bad) in _mc_mistakes(*start, episode, gamma, carry):
                if (not np.allclose(Q_bad, Q_want, rtol=1e-7, atol=1e-9)
                        and np.allclose(end[0], Q_bad, rtol=1e-7, atol=1e-9)):
                    fail(f"wrong Q {where}. Hint: {hint}")
            if ok_Q:
                fail(f"Q is right but N is wrong {where}: N(s, a) counts the returns averaged into Q(s, a), one more "
                     "at each first visit of (s, a).")
            bad = np.argwhere(~np.isclose(end[0], Q_want, rtol=1e-7, atol=1e-9))[0]
            fail(f"wrong Q {where}: Q[{spec.decode(bad[0])}][{bad[1]}] should be {Q_want[tuple(bad)]:.6g}, "
                 f"yours is {end[0][tuple(bad)]:.6g}.")
        carry = float(episode.returns(gamma)[0, 0] + gamma ** len(steps) * carry)  # if G were never reset
        epsilon = float(schedule.fn(k))
        for t, step in enumerate(steps):
            _judge_behaviour(epsilon, [start[0][spec.encode(step.obs)]], step, t, f"episode {k}", explore, fail)
    complaint = _explores(explore, exercise)
    if complaint:
        fail(complaint)


@learner_check
def check_mc_control_loop(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(env, Q, N, n_episodes, epsilon, gamma, rng)``: on-policy first-visit Monte-Carlo control.

    ``fn`` plays ``n_episodes`` episodes of the gymnasium ``env``; episode k (k = 1, 2, ...) follows the
    ``epsilon(k)``-greedy policy of ``Q`` until it terminates or is truncated. After each episode it walks
    the episode backward, ``G = R_{t+1} + gamma G``, and at the first visit of each pair (S_t, A_t) adds one
    to ``N[S_t][A_t]`` and moves ``Q[S_t][A_t]`` to the sample average, ``Q += (G - Q) / N``. ``Q`` and
    ``N`` (shape ``(*observation shape, n_actions)``) are updated in place.

    The check runs ``fn`` on real envs (a short corridor whose observation never changes, so pairs repeat
    within an episode, with a time limit; Blackjack, whose observations are tuples), records every
    transition and the tables at each step, and recomputes each episode's update with
    ``rl_basics.mc.add_first_visit_returns`` from the experience ``fn`` actually had, so any correct way
    of drawing the random actions passes. Episodes with epsilon_k = 0 must be greedy, those with
    epsilon_k = 1 must explore.
    """
    __tracebackhide__ = True
    import gymnasium as gym

    _, seed = _rng(seed)
    exercise = "first-visit Monte-Carlo control"
    cases = [
        ("the short corridor (reward -1 per step; the observation is always 0, so pairs repeat within an episode), "
         "a 6-step time limit, gamma = 0.9, epsilon_k = 1 for k <= 30 then 0",
         lambda: gym.make("rl_basics/ShortCorridor-v0", max_episode_steps=6), 0.9, 50,
         lambda k: 1.0 if np.min(k) <= 30 else 0.0),
        ("Blackjack (observations are tuples (player sum, dealer card, usable ace)), gamma = 1, epsilon_k = min(1, 10 / k)",
         lambda: gym.make("Blackjack-v1", sab=True), 1.0, 60, lambda k: np.minimum(1.0, 10.0 / np.maximum(k, 1))),
    ]
    for case, make, gamma, n_episodes, eps in cases:
        env = make()
        env.reset(seed=seed)  # the episodes of fn's env.reset() calls now follow from the seed
        env.action_space.seed(seed)
        shape = tuple(s.n for s in getattr(env.observation_space, "spaces", (env.observation_space,)))
        Q, N = np.zeros(shape + (env.action_space.n,)), np.zeros(shape + (env.action_space.n,))
        rec, schedule = _RecordingEnv(env, (Q, N)), _EpsilonSchedule(eps)
        _run_loop(fn, exercise, seed, rec, Q, N, n_episodes, schedule, gamma, np.random.default_rng(seed))
        _judge_mc_control(rec, rec.snapshot(), n_episodes, schedule, gamma, case, exercise, seed)
    print(f"✓ {exercise}: the updates and the ε-greedy episodes of your loop are right on {len(cases)} envs "
          f"(random episodes from seed {seed}).")


__all__ += ["check_mc_control_loop"]


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
    Q = np.round(np.linspace(-1.0, 1.0, 24).reshape(6, 4), 3)
    Q[3], Q[4] = [0.5, 2.0, -1.0, 1.0], [0.3, -0.7, 1.1, 2.5]
    extra = ((1,), (0,)) if with_next_action else ((), ())
    cases += [  # fixed: on every seed
        Case(f"edge case: a self-loop, s_next == s = 3, a = 1 (the greedy action){', a_next = 1' if with_next_action else ''}",
             (Q, 3, 1, -1.0, 3, *extra[0], False, 0.5, 0.9)),
        Case(f"edge case: s=0, a=2, s_next=4{', a_next=0' if with_next_action else ''}: the taken, the next, the "
             "greedy (3) and the worst (1) next action all differ", (Q, 0, 2, 0.5, 4, *extra[1], False, 0.5, 0.9)),
    ]
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
        Mistake("you bootstrap from Q[s_next, a], with the action just taken: SARSA bootstraps from the action "
                "taken next, Q[s_next, a_next].",
                lambda Q, s, a, r, s2, a2, d, al, g: sarsa_update(Q, s, a, r, s2, a, d, al, g)),
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


# ---------------------------------------------------------------------------- the SARSA and Q-learning episode loops


def _td_loop_cases():
    """(description, env maker, Q shape) of the envs the TD loop checks run on."""
    import gymnasium as gym

    return [
        ("the short corridor (reward -1 per step; the observation is always 0, so S' = S at every step and the "
         "terminal state shares Q[0]), a 6-step time limit",
         lambda: gym.make("rl_basics/ShortCorridor-v0", max_episode_steps=6), (1, 2)),
        ("FrozenLake 4x4 (slippery; Q is non-zero at the holes and the goal, which are terminal), "
         "a 12-step time limit", lambda: gym.make("FrozenLake-v1", max_episode_steps=12), (16, 4)),
    ]


_TD_EPSILONS = (1.0,) * 25 + (0.0,) * 10 + (0.3,) * 10
"""epsilon of each episode the TD loop checks play on each env: random, then greedy, then in between."""


def _td_mistakes(method: str, Q, step: _Step, next_action: int | None, alpha: float, gamma: float):
    """(kind, hint, Q after the wrong update) for the known wrong ways to write one step of a SARSA or Q-learning
    loop, most telling first."""
    s, a, r, s2, term = step.obs, step.action, step.reward, step.next_obs, step.terminated
    n_actions = Q.shape[1]
    takes = range(n_actions) if next_action is None else (next_action,)  # the A' the loop may have used
    up = lambda fn, *args: fn(Q.copy(), s, a, r, s2, *args)  # noqa: E731
    mistakes = []
    if method == "sarsa":
        mistakes.append(("max", "you bootstrap from max_a Q(S', a): that is Q-learning's target (and the mistake in "
                         "the notes this course grew out of). SARSA's target uses A', the action the epsilon-greedy "
                         "policy actually takes next: that is what on-policy means.",
                         up(q_learning_update, term, alpha, gamma)))
        if next_action is not None:
            mistakes += [("not taken", f"the A' in your target (action {b}) is not the action your loop took next "
                          f"(action {next_action}). Choose A' once, from S', before the update; use it in the target "
                          "and take it at the next step (A <- A').", up(sarsa_update, b, term, alpha, gamma))
                         for b in range(n_actions) if b != next_action]
        wrong = {"terminal": [up(sarsa_update, b, False, alpha, gamma) for b in takes],
                 "truncated": [up(sarsa_update, b, True, alpha, gamma) for b in takes],
                 "gamma": [up(sarsa_update, b, term, alpha, 1.0) for b in takes],
                 "alpha": [up(sarsa_update, b, term, 1.0, gamma) for b in takes]}
    else:
        mistakes += [("taken", "you bootstrap from Q(S', A') with the action your loop took next: that is "
                      "SARSA's target. Q-learning bootstraps from max_a Q(S', a), whatever it does next "
                      "(off-policy).", up(sarsa_update, b, term, alpha, gamma)) for b in takes]
        wrong = {"terminal": [up(q_learning_update, False, alpha, gamma)],
                 "truncated": [up(q_learning_update, True, alpha, gamma)],
                 "gamma": [up(q_learning_update, term, alpha, 1.0)],
                 "alpha": [up(q_learning_update, term, 1.0, gamma)]}
    if term:
        mistakes += [("terminal", "you bootstrap past a terminal state: when `terminated` is true there is no next "
                      "state, the target is R alone (pass `terminated` to the update).", q) for q in wrong["terminal"]]
    elif step.truncated:
        mistakes += [("truncated", "you stop bootstrapping when the episode is truncated: a time limit is not a "
                      "terminal state, the future is unknown rather than zero, so keep `terminated=False` there.", q)
                     for q in wrong["truncated"]]
    mistakes += [("gamma", "the discount gamma is missing in the target.", q) for q in wrong["gamma"]]
    mistakes += [("alpha", "the step size alpha is missing: move Q(S, A) only a fraction alpha towards the target.", q)
                 for q in wrong["alpha"]]
    return mistakes


def _judge_td_step(method, before, after, step, next_action, alpha, gamma, where, fail):
    """None if ``after`` is ``before`` updated by one SARSA / Q-learning step; else ({kind: hint} of the known
    mistakes the learner's update matches, the expected and the learner's values); a change in the wrong place
    fails at once (through ``fail``)."""
    __tracebackhide__ = True
    s, a, r, s2, term = step.obs, step.action, step.reward, step.next_obs, step.terminated
    if method == "sarsa":  # after the last step A' is never taken: any A' is right (and unused if terminated)
        takes = range(before.shape[1]) if next_action is None else (next_action,)
        want = [sarsa_update(before.copy(), s, a, r, s2, b, term, alpha, gamma) for b in takes]
    else:
        want = [q_learning_update(before.copy(), s, a, r, s2, term, alpha, gamma)]
    close = lambda x, y: np.allclose(x, y, rtol=1e-7, atol=1e-9)  # noqa: E731
    if any(close(after, q) for q in want):
        return None
    changed = np.argwhere(~np.isclose(after, before, rtol=1e-7, atol=1e-9))
    if changed.size == 0:
        fail(f"Q did not change {where}. TD learns after every step: update Q[S, A] as soon as R and S' are known, "
             "before the next env.step (in place: the check reads the array Q you were given).")
    others = [tuple(int(i) for i in x) for x in changed if tuple(x) != (s, a)]
    if others and not np.isclose(after[s, a], before[s, a], rtol=1e-7, atol=1e-9):
        fail(f"besides Q[S, A] = Q[{s}, {a}], your update changed Q at {others[:4]} {where}: one step changes "
             "Q[S, A] only.")
    if others:
        carry = "S <- S' and A <- A'" if method == "sarsa" else "S <- S'"
        fail(f"your update {where} changed Q at {others[:4]}, but that step was taken from S = {s} with A = {a}: "
             f"update Q[S, A] of the step just taken, and carry the state forward ({carry}) before the next step.")
    matches = {}
    for kind, hint, q_bad in _td_mistakes(method, before, step, next_action, alpha, gamma):
        if kind not in matches and not any(close(q_bad, q) for q in want) and close(after, q_bad):
            matches[kind] = hint
    return matches, (f"Q[{s}, {a}] went from {before[s, a]:.6g} to {after[s, a]:.6g}; "
                     f"it should be {want[0][s, a]:.6g}.")


def _diagnose_td(wrong_steps: list[tuple[str, dict[str, str], str]], fail) -> None:
    """Fail with the hint of a mistake that explains every wrong step (the first such, in the order of
    ``_td_mistakes``); when none does, with the first wrong step's values."""
    __tracebackhide__ = True
    common = set.intersection(*(set(matches) for _, matches, _ in wrong_steps))
    where, matches, values = wrong_steps[0]
    best = next((kind for kind in matches if kind in common), None)
    if best is None:
        fail(f"wrong update {where}: {values}")
    fail(f"wrong update {where}. Hint: {matches[best]}")


def _check_td_episode_loop(fn: Callable, method: str, exercise: str, seed: int | None) -> None:
    """Run the learner's one-episode SARSA / Q-learning loop on the check envs and judge every step it made."""
    __tracebackhide__ = True
    rng, seed = _rng(seed)
    alpha, gamma = 0.5, 0.9
    cases = _td_loop_cases()
    for case, make, shape in cases:
        env = make()
        env.reset(seed=seed)
        env.action_space.seed(seed)
        Q = np.round(rng.normal(size=shape), 3)  # non-zero everywhere, terminal states included
        rec, ends, returns = _RecordingEnv(env, (Q,)), [], []
        policy_rng = np.random.default_rng(seed)

        def fail(message):
            __tracebackhide__ = True
            raise CheckFailed(f"{exercise}: {message}\n  on: {case}, alpha = {alpha}, gamma = {gamma}{_again(seed)}")

        explore, wrong_steps = [], []
        for e, epsilon in enumerate(_TD_EPSILONS):
            returns.append(_run_loop(fn, exercise, seed, rec, Q, epsilon, alpha, gamma, policy_rng))
            ends.append(Q.copy())
            if len(rec.episodes) != e + 1:
                fail(f"one call plays exactly one episode: call env.reset() once, at the start; call {e + 1} made "
                     f"{len(rec.episodes) - e} resets.")
            if not rec.over:
                fail(f"your function returned in the middle of episode {e + 1}: loop until `terminated or truncated`.")
            steps = rec.episodes[e]
            tables = [x.tables[0] for x in steps] + [ends[e]]  # tables[t]: Q when step t was taken; then the end
            for t, step in enumerate(steps):
                next_action = steps[t + 1].action if t + 1 < len(steps) else None  # none after the last step
                where = (f"after step {t} of episode {e + 1} (S={step.obs}, A={step.action}, R={step.reward:g}, "
                         f"S'={step.next_obs}, terminated={step.terminated}, truncated={step.truncated}"
                         f"{f', the next action A={steps[t + 1].action}' if t + 1 < len(steps) else ''})")
                wrong = _judge_td_step(method, tables[t], tables[t + 1], step, next_action, alpha, gamma, where, fail)
                if wrong is not None:
                    wrong_steps.append((where, *wrong))
            if len(wrong_steps) >= 10 or (wrong_steps and e + 1 == len(_TD_EPSILONS)):
                _diagnose_td(wrong_steps, fail)
            total = sum(x.reward for x in steps)
            if returns[e] is None:
                fail("your function returned None: return the sum of the rewards of the episode.")
            if not np.isclose(float(returns[e]), total):
                fail(f"episode {e + 1} earned {total:g} in rewards, your function returned {returns[e]}: return the "
                     "(undiscounted) sum of the rewards.")
            for t, step in enumerate(steps):
                # A_t was chosen from Q before step t-1's update (SARSA's A') or after it (Q-learning)
                seen = [tables[max(t - 1, 0)][step.obs], tables[t][step.obs]]
                _judge_behaviour(epsilon, seen if method == "sarsa" else seen[::-1], step, t, f"episode {e + 1}",
                                 explore, fail)
        complaint = _explores(explore, exercise)
        if complaint:
            fail(complaint)
    print(f"✓ {exercise}: every update, every action and every return of your loop is right on {len(cases)} envs "
          f"(random episodes from seed {seed}).")


@learner_check
def check_sarsa_episode(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(env, Q, epsilon, alpha, gamma, rng) -> float``: one episode of SARSA, Q updated in place.

    ``fn`` resets the gymnasium ``env``, chooses A from S epsilon-greedily in ``Q`` (``(n_states,
    n_actions)``), then at every step: takes A, observes R and S', chooses A' from S' (epsilon-greedy, before
    the update), applies ``Q[S, A] += alpha (R + gamma (1 - terminated) Q[S', A'] - Q[S, A])``
    (``rl_basics.td.sarsa_update``) and carries S, A <- S', A', until the episode terminates or is truncated.
    It returns the sum of the rewards.

    The check records every transition with the table at each step and recomputes each update from the
    experience the loop actually had, so any correct way of drawing the random actions passes; episodes
    with epsilon = 0 must be greedy, those with epsilon = 1 must explore.
    """
    __tracebackhide__ = True
    _check_td_episode_loop(fn, "sarsa", "the SARSA episode loop", seed)


@learner_check
def check_q_learning_episode(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(env, Q, epsilon, alpha, gamma, rng) -> float``: one episode of Q-learning, Q updated in place.

    ``fn`` resets the gymnasium ``env`` and at every step chooses A from S epsilon-greedily in the current
    ``Q`` (``(n_states, n_actions)``), takes it, observes R and S', applies
    ``Q[S, A] += alpha (R + gamma (1 - terminated) max_a Q[S', a] - Q[S, A])``
    (``rl_basics.td.q_learning_update``) and carries S <- S', until the episode terminates or is truncated.
    It returns the sum of the rewards. Checked like :func:`check_sarsa_episode`.
    """
    __tracebackhide__ = True
    _check_td_episode_loop(fn, "q_learning", "the Q-learning episode loop", seed)


__all__ += ["check_sarsa_episode", "check_q_learning_episode"]


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
        Case("edge case: a single step (T = 1)", (np.array([2.0]), np.array([True]), 0.9)),
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
    cases.append(Case("edge case: episodes of a single step (T = 1)", batch(1, 3, [1, 1, 1])))
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
        Mistake("you average over all T x N entries of the padded arrays: that divides by T * N; sum over each "
                "episode's steps (dim 0), then average over the N episodes.",
                lambda lp, G, b, v: -(v * (G - b) * lp).mean()),
    ]
    check_function(fn, reference, cases, exercise="the REINFORCE loss", mistakes=mistakes, seed=seed,
                   arg_names=("log_probs", "returns", "baseline", "valid"),
                   atol=1e-5, rtol=1e-4, grad_args=(0, 2))


# ---------------------------------------------------------------------------- the REINFORCE training loop
# A loop exercise. The check hands the learner's loop the short corridor, a policy and an optimizer, records
# every episode the loop plays and every optimizer step it takes, and compares the gradient of each step with
# REINFORCE's (rl_basics.agents.reinforce.episode_gradients) on the very episode the loop just played. So it
# needs no shared random numbers, and it names the first update that goes wrong.

__all__ += ["check_train_reinforce"]

_LOOP_START_P = 0.2
"""pi(right) the checked loop starts from on the short corridor (episodes of about 22 steps)."""
_LOOP_LEARNING_RATE = 1e-3
"""The checked loop's SGD step size: theta <- theta + alpha * sum_t G_t grad log pi(a_t|s_t), the book's update."""


class _StopLoop(BaseException):
    """Raised inside the learner's loop once it has played far more steps than REINFORCE would
    (a BaseException, so that an ``except Exception`` in the learner's code does not swallow it)."""


class _WatchedEnv:
    """The env handed to a learner's loop: it passes every call on and records each episode.

    ``episodes[k]`` holds episode ``k``'s observations (those the actions were chosen in), actions
    (ints) and rewards, and whether (and how) it ended. Other attributes (``action_space``, ...) are
    the wrapped env's. After ``max_steps`` steps in all, ``step`` raises :class:`_StopLoop`.
    """

    def __init__(self, env, max_steps: int):
        self.env = env
        self.max_steps = max_steps
        self.steps = 0
        self.episodes: list[dict] = []
        self._obs = None

    def __getattr__(self, name: str):
        return getattr(self.env, name)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.episodes.append({"obs": [], "actions": [], "rewards": [], "ended": False, "terminated": False})
        self._obs = obs
        return obs, info

    def step(self, action):
        if not self.episodes or self.episodes[-1]["ended"]:
            raise CheckFailed("your loop called env.step() after an episode had ended (or before the first "
                              "env.reset()): start every episode with `obs, _ = env.reset()` and play it until "
                              "`terminated or truncated`.")
        self.steps += 1
        if self.steps > self.max_steps:
            raise _StopLoop
        action = int(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        episode = self.episodes[-1]
        episode["obs"].append(self._obs)
        episode["actions"].append(action)
        episode["rewards"].append(float(reward))
        episode["ended"], episode["terminated"] = bool(terminated or truncated), bool(terminated)
        self._obs = obs
        return obs, reward, terminated, truncated, info


def _corridor_actor(p_right: float):
    """Notebook 06's linear corridor policy (``make_actor(..., hidden_sizes=())``) set to pi(right) = p_right."""
    import torch
    from gymnasium import spaces

    from rl_basics.agents.networks import make_actor

    with torch.random.fork_rng(devices=[]):  # the initialisation's random draws are overwritten: leave torch's state alone
        actor = make_actor(spaces.Discrete(1), spaces.Discrete(2), hidden_sizes=())
    with torch.no_grad():
        actor.net[0].weight.zero_()
        actor.net[0].bias.copy_(torch.tensor([0.0, np.log(p_right / (1 - p_right))]))
    return actor


def _p_right(actor) -> float:
    """The corridor policy's pi(right) (the same at every observation: there is only one)."""
    import torch

    with torch.no_grad():
        return actor.distribution(torch.zeros(1, dtype=torch.long)).probs[0, 1].item()


def _run_watched_loop(fn: Callable, gamma: float, n_episodes: int, seed: int, max_steps: int):
    """Run ``fn(env, policy, optimizer, n_episodes, gamma)`` on the watched short corridor.

    Returns ``(returned, episodes, updates, stopped, actor)``: what ``fn`` returned, the episodes it
    played (:class:`_WatchedEnv`), one dict per optimizer step (``episodes``: how many episodes had
    started, ``ended``: whether the last one had ended, ``params`` and ``grads``: the parameters and
    their ``.grad`` just before the step, None where there was none), whether the run was cut after
    ``max_steps`` environment steps, and the trained policy. Torch's and numpy's global random states
    are seeded with ``seed`` for the run and restored afterwards.
    """
    import gymnasium as gym
    import torch
    from torch.distributions import Categorical

    import rl_basics  # noqa: F401  (registers the short corridor)

    actor = _corridor_actor(_LOOP_START_P)

    def policy(obs):
        """pi(. | obs): a Categorical over the actions 0 (left) and 1 (right)."""
        return Categorical(logits=actor.net(actor.encoder(torch.as_tensor(obs).reshape(1)))[0], validate_args=False)

    optimizer = torch.optim.SGD(actor.parameters(), lr=_LOOP_LEARNING_RATE)
    env = _WatchedEnv(gym.make("rl_basics/ShortCorridor-v0"), max_steps)
    updates: list[dict] = []

    def before_step(*_):
        updates.append({
            "episodes": len(env.episodes), "ended": bool(env.episodes) and env.episodes[-1]["ended"],
            "params": [p.detach().clone() for p in actor.parameters()],
            "grads": [None if p.grad is None else p.grad.detach().clone() for p in actor.parameters()],
        })

    optimizer.register_step_pre_hook(before_step)
    numpy_state = np.random.get_state()
    returned, stopped = None, False
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            np.random.seed(seed)
            returned = fn(env, policy, optimizer, n_episodes, gamma)
    except _StopLoop:
        stopped = True
    finally:
        np.random.set_state(numpy_state)
        env.close()
    return returned, env.episodes, updates, stopped, actor


def _episode_tensors(episode: dict):
    """A recorded episode as ``(obs (T,), actions (T,))`` tensors and ``(rewards (T,), dones (T,))`` arrays."""
    import torch

    dones = np.zeros(len(episode["actions"]), dtype=bool)
    dones[-1] = True
    return (torch.as_tensor(np.asarray(episode["obs"])), torch.as_tensor(episode["actions"]),
            np.asarray(episode["rewards"]), dones)


def _reinforce_step_gradient(actor, episode: dict, gamma: float):
    """REINFORCE's loss gradient for one recorded episode, flattened over ``actor``'s parameters:
    minus :func:`rl_basics.agents.reinforce.episode_gradients`, whose rows are ascent directions."""
    import torch

    from rl_basics.agents.reinforce import episode_gradients
    from rl_basics.agents.rollout import VectorRollout

    obs, actions, rewards, dones = _episode_tensors(episode)
    column = lambda x: torch.as_tensor(x, dtype=torch.float32).reshape(-1, 1)  # noqa: E731
    terminated = column(dones & episode["terminated"])
    rollout = VectorRollout(obs=obs.reshape(-1, 1), actions=actions.reshape(-1, 1), log_probs=column(0 * rewards),
                            rewards=column(rewards), terminated=terminated, truncated=column(dones) - terminated,
                            valid=torch.ones_like(terminated))
    return -episode_gradients(actor, rollout, gamma)[0]


def _loop_mistakes(gamma: float) -> list[Mistake]:
    """Known wrong REINFORCE loops as ``Mistake(hint, fn(actor, episode, earlier))``: ``fn`` gives the loss
    gradient that loop steps along after ``episode`` (``earlier``: the right gradients of the episodes before)."""
    import torch

    def weighted(weights_of):
        # the loss -sum_t w_t log pi(a_t|s_t), weights_of(rewards, dones, pi(a_t|s_t)) -> w
        def gradient(actor, episode, earlier):
            obs, actions, rewards, dones = _episode_tensors(episode)
            log_probs = actor.distribution(obs).log_prob(actions)
            weights = torch.as_tensor(weights_of(rewards, dones, log_probs.detach().exp().numpy()), dtype=torch.float32)
            grads = torch.autograd.grad(-(weights * log_probs).sum(), list(actor.parameters()))
            return torch.cat([g.reshape(-1) for g in grads])
        return gradient

    G = lambda r, d, g=gamma: reward_to_go(r, d, g)  # noqa: E731
    return [
        Mistake("the loss has the wrong sign, so your loop does gradient *descent* on the return: the optimizer "
                "minimises, so the loss is minus the objective, loss = -sum_t G_t * log pi(a_t|s_t).",
                lambda actor, episode, earlier: -_reinforce_step_gradient(actor, episode, gamma)),
        Mistake("the gradients of earlier episodes are still in `.grad`: every backward() adds to what is there, "
                "so call optimizer.zero_grad() before loss.backward() in every episode.",
                lambda actor, episode, earlier: _reinforce_step_gradient(actor, episode, gamma) + sum(earlier)),
        Mistake("the returns are computed forwards (each G_t sums the rewards up to step t): G_t sums the rewards "
                "from step t to the end of the episode, G_t = r_t + gamma * G_{t+1}, so loop over the rewards "
                "backwards (reversed(...)).", weighted(lambda r, d, p: _reward_so_far(r, d, gamma))),
        Mistake("the discount is missing: G_t = r_t + gamma * G_{t+1}.", weighted(lambda r, d, p: G(r, d, 1.0))),
        Mistake("every step is weighted by the whole episode's return G_0; weight log pi(a_t|s_t) by the return "
                "from step t on, G_t (an action cannot change the rewards that came before it).",
                weighted(lambda r, d, p: np.full(len(r), G(r, d)[0]))),
        Mistake("each log pi(a_t|s_t) is weighted by its own reward r_t alone; weight it by the return G_t.",
                weighted(lambda r, d, p: r)),
        Mistake("the returns are missing: -sum_t log pi(a_t|s_t) makes the actions taken more likely whatever "
                "they earned; weight each term by G_t.", weighted(lambda r, d, p: np.ones(len(r)))),
        Mistake("you average over the episode's steps; the REINFORCE loss sums over them.",
                weighted(lambda r, d, p: G(r, d) / len(r))),
        Mistake("each term carries a factor gamma**t (the book's pseudocode): this course's REINFORCE, like "
                "rl_basics.agents.reinforce, leaves it out: loss = -sum_t G_t * log pi(a_t|s_t).",
                weighted(lambda r, d, p: gamma ** np.arange(len(r)) * G(r, d))),
        Mistake("you differentiate pi(a_t|s_t) instead of its logarithm: use dist.log_prob(action).",
                weighted(lambda r, d, p: G(r, d) * p)),
    ]


def _close(got, expected, scale: float) -> bool:
    """Two gradient vectors agree up to float32 rounding. ``scale`` is the episode's sum of ``|G_t|``: the
    gradient sums terms of about that size, which can cancel to a far smaller result."""
    return float((got - expected).norm()) <= 1e-4 * float(expected.norm()) + 1e-5 * scale + 1e-6


def _with_params(actor, params: list):
    """``actor`` with its parameters set to ``params`` (a list of tensors in ``actor.parameters()`` order)."""
    import torch

    with torch.no_grad():
        for p, value in zip(actor.parameters(), params):
            p.copy_(value)
    return actor


def _loop_mistake_hint(steps: range, got: list, expected: list, scales: list, updates: list, episodes: list,
                       gamma: float) -> str:
    """The hint of the first known wrong loop whose gradients are the learner's on every update in ``steps``."""
    actor = _corridor_actor(_LOOP_START_P)
    for mistake in _loop_mistakes(gamma):
        if all(_close(got[k], mistake.fn(_with_params(actor, updates[k]["params"]), episodes[k], expected[:k]), scales[k])
               for k in steps):
            return mistake.hint
    return "check the returns (backwards, discounted, within the episode) and the loss -sum_t G_t * log pi(a_t|s_t)."


@learner_check
def check_train_reinforce(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(env, policy, optimizer, n_episodes, gamma) -> list``: REINFORCE's training loop.

    The loop plays ``n_episodes`` episodes of ``env``, sampling each action from ``policy(obs)`` (a
    ``torch.distributions.Categorical``), and after each episode takes one ``optimizer`` step on the
    loss ``-sum_t G_t log pi(a_t|s_t)``, ``G_t = r_t + gamma G_{t+1}`` computed backwards within the
    episode; it returns the list of the episodes' undiscounted returns. The check runs it on the
    short corridor of notebook 06 from pi(right) = 0.2 with ``torch.optim.SGD``, records every
    episode and every optimizer step, and compares each step's gradient with
    :func:`rl_basics.agents.reinforce.episode_gradients` on the episode the loop just played; it
    also tests that the actions are samples of the policy. Two runs: ``gamma = 0.9`` over 15
    episodes (where a missing or misplaced discount shows), then ``gamma = 1`` over 100 episodes,
    whose learning it reports.
    """
    import torch

    rng, seed = _rng(seed)
    exercise = "the REINFORCE training loop"
    again = f" (seed={seed}: pass seed={seed} to the check to reproduce)"
    n_updates = 0
    for n_episodes, gamma in ((15, 0.9), (100, 1.0)):
        inputs = f"the short corridor from pi(right) = {_LOOP_START_P}, n_episodes={n_episodes}, gamma={gamma}"

        def fail(message: str, cause: BaseException | None = None) -> None:
            __tracebackhide__ = True
            raise CheckFailed(f"{exercise}: {message}\n  inputs: {inputs}{again}") from cause

        max_steps = 100 * n_episodes  # REINFORCE's episodes here last about 20 steps
        try:
            returned, episodes, updates, stopped, trained = _run_watched_loop(
                fn, gamma, n_episodes, int(rng.integers(2**31)), max_steps)
        except NotImplementedError:
            raise CheckFailed(f"{exercise}: not done yet — replace `raise NotImplementedError` in your function "
                              "with your code, then run this check again.") from None
        except CheckFailed as exc:
            fail(str(exc))
        except Exception as exc:
            fail(f"your function raised {type(exc).__name__}: {exc}", exc)
        if not stopped and (len(episodes) != n_episodes or not all(e["ended"] for e in episodes)):
            fail(f"asked for {n_episodes} episodes, your loop started {len(episodes)} and played "
                 f"{sum(e['ended'] for e in episodes)} to their end: reset the env once per episode and play each "
                 "one until `terminated or truncated`.")
        if not stopped and len(updates) != n_episodes:
            fail(f"your loop took {len(updates)} optimizer steps in {n_episodes} episodes; REINFORCE takes one "
                 "after each episode has ended.")
        # the actions of episode k were drawn with the parameters of update k: are they samples of pi?
        actor = _corridor_actor(_LOOP_START_P)
        rights = expected_rights = variance = 0.0
        for k, update in enumerate(updates):
            if update["episodes"] != k + 1 or not update["ended"]:
                fail(f"optimizer step {k + 1} came before episode {k + 1} had ended (or after the next one had "
                     "started): play the whole episode, then take one step.")
            p_right, actions = _p_right(_with_params(actor, update["params"])), episodes[k]["actions"]
            rights += sum(actions)
            expected_rights += len(actions) * p_right
            variance += len(actions) * p_right * (1 - p_right)
        z = (rights - expected_rights) / max(variance, 1e-12) ** 0.5
        if abs(z) > 5:
            n_steps = sum(len(episodes[k]["actions"]) for k in range(len(updates)))
            fail(f"the actions are not samples of the policy: over {n_steps} steps your loop went right "
                 f"{rights:.0f} times where pi(right) expects {expected_rights:.0f} ± {variance ** 0.5:.0f}. Draw "
                 "each action with `action = dist.sample()` from `dist = policy(obs)` (not its most likely action).")
        for k, update in enumerate(updates):
            if all(g is None or not g.any() for g in update["grads"]):
                fail(f"at optimizer step {k + 1} the policy had no gradient: call loss.backward() before "
                     "optimizer.step(), and optimizer.zero_grad() before loss.backward() (not between backward "
                     "and step).")
        got = [torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for g, p in zip(update["grads"], update["params"])]) for update in updates]
        expected = [_reinforce_step_gradient(_with_params(actor, update["params"]), episodes[k], gamma)
                    for k, update in enumerate(updates)]
        scales = [float(np.abs(reward_to_go(*_episode_tensors(episodes[k])[2:], gamma)).sum()) for k in range(len(updates))]
        wrong = [k for k in range(len(updates)) if not _close(got[k], expected[k], scales[k])]
        if wrong:
            k = wrong[0]  # a known mistake is named only if it explains this update and the next four
            hint = _loop_mistake_hint(range(k, min(k + 5, len(updates))), got, expected, scales, updates, episodes,
                                      gamma)
            fail(f"optimizer step {k + 1} (after an episode of {len(episodes[k]['actions'])} steps) does not "
                 f"follow REINFORCE's gradient. Hint: {hint}\n"
                 f"  expected d loss / d parameters: {np.round(expected[k].numpy(), 4)}\n"
                 f"  got (the .grad at the step):    {np.round(got[k].numpy(), 4)}")
        if stopped:
            fail(f"your loop played more than {max_steps} steps in {len(episodes)} episodes, where REINFORCE's "
                 "episodes last about 20 steps here; every update it took was right, so look at how it plays: "
                 "end each episode at `terminated or truncated`, and update after every episode.")
        if returned is None:
            fail("your function returned None: return the list of the episodes' returns.")
        undiscounted = [sum(e["rewards"]) for e in episodes]
        try:
            values = np.asarray(returned, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            values = np.full(1, np.nan)
        if values.shape != (n_episodes,) or not np.allclose(values, undiscounted):
            fail(f"return the list of the {n_episodes} episodes' undiscounted returns (each one's sum of rewards), "
                 f"in order: the first ones are {undiscounted[:5]}, yours start {values[:5].tolist()}.")
        n_updates += len(updates)
    print(f"✓ {exercise}: all {n_updates} updates followed REINFORCE's gradient on the episodes your loop played, "
          f"and its actions were samples of the policy (seed {seed}). In the last run it moved pi(right) on the "
          f"short corridor from {_LOOP_START_P} to {_p_right(trained):.2f} in {n_episodes} episodes "
          f"(the best policy: p* = 2 - sqrt(2) = 0.586).")


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
    cases.append(Case("edge case: a single step (T = 1), not terminated: G = r + gamma * last_value",
                      (torch.tensor([[1.0, -2.0]]), torch.zeros(1, 2), torch.tensor([3.0, 0.5]), 0.9)))
    cases.append(Case("edge case: one env (N = 1) that terminates at step 1 of 3",
                      (torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([5.0]), 0.9)))
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
        Case("edge case: one env (N = 1) that terminates at step 1 of 3",
             (torch.tensor([[1.0], [0.5], [-1.0]]), torch.tensor([[0.2], [0.4], [0.1]]), torch.tensor([[0.4], [9.0], [0.3]]),
              torch.tensor([[0.0], [1.0], [0.0]]), torch.tensor([[0.0], [1.0], [0.0]]), 0.9, 0.95)),
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
        Case("edge case: a batch of one (ratio 1.5 with a positive advantage: clipped)", (f([np.log(1.5)]), f([0.0]), f([2.0]), 0.2)),
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
    cases.append(Case("edge case: a batch of one (clipped)", (f([1.5]), f([1.0]), f([3.0]), 0.2)))

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


# -- the loop exercise: one whole PPO update from a rollout


def _ppo_update_cases(rng: np.random.Generator) -> list[Case]:
    """Specs of the update check's cases; :func:`_ppo_update_setup` builds the same inputs from one for every run."""
    seeds = rng.integers(0, 2**31, size=4)
    base = dict(T=16, N=4, continuous=False, minibatch_size=16, update_epochs=3, lr=1e-2, clip_coef=0.1, ent_coef=0.01,
                vf_coef=0.25, max_grad_norm=0.5, target_kl=None)
    spec = lambda i, **changes: {**base, "seed": int(seeds[i]), **changes}  # noqa: E731
    return [
        Case("a rollout of T=16 steps x N=4 envs (categorical policy; terminations, truncations and autoreset "
             "steps), 4 minibatches x 3 epochs, clip_coef=0.1, ent_coef=0.01, vf_coef=0.25", (spec(0),)),
        Case("a Gaussian policy (2-d Box actions), T=12 x N=4, 2 minibatches x 2 epochs",
             (spec(1, T=12, continuous=True, minibatch_size=24, update_epochs=2, ent_coef=0.0, vf_coef=1.0),)),
        Case("edge case: target_kl=1e-4 with a learning rate of 0.01 (the epochs stop early), 2 minibatches x 4 epochs",
             (spec(2, minibatch_size=32, update_epochs=4, lr=1e-2, target_kl=1e-4),)),
        Case("edge case: one minibatch (minibatch_size = T * N = 64), 2 epochs",
             (spec(3, minibatch_size=64, update_epochs=2),)),
    ]


def _ppo_update_setup(spec: dict) -> tuple:
    """``(actor, critic, optimizer, rollout, config, generator)`` for one case, rebuilt identically from ``spec``.

    The rollout is synthetic (random observations and rewards, the networks' own actions, log-probs
    and values) with the structure of a real one: episodes that terminate or are truncated, each
    followed by a NEXT_STEP autoreset step (``valid`` 0, reward 0).
    """
    import torch
    from gymnasium import spaces

    from rl_basics.agents.networks import make_actor, make_critic
    from rl_basics.agents.ppo import PPOConfig
    from rl_basics.agents.rollout import VectorRollout

    rng = np.random.default_rng(spec["seed"])
    T, N = spec["T"], spec["N"]
    obs_space = spaces.Box(-np.inf, np.inf, (3,), np.float32)
    action_space = spaces.Box(-1.0, 1.0, (2,), np.float32) if spec["continuous"] else spaces.Discrete(3)
    torch.manual_seed(spec["seed"])  # the caller forks the RNG: the learner's global RNG is left alone
    actor, critic = make_actor(obs_space, action_space, (16,)), make_critic(obs_space, (16,))
    obs = torch.tensor(rng.normal(size=(T + 1, N, 3)), dtype=torch.float32)
    with torch.no_grad():
        actions, log_probs = actor.sample(obs[:-1].reshape(T * N, 3))
        all_values = critic(obs.reshape((T + 1) * N, 3)).reshape(T + 1, N)
    terminated, truncated, valid = np.zeros((T, N)), np.zeros((T, N)), np.ones((T, N))
    for t in range(T):
        if t > 0:
            valid[t] = 1 - np.maximum(terminated[t - 1], truncated[t - 1])
        u = rng.random(N)
        terminated[t] = valid[t] * (u < 0.12)
        truncated[t] = valid[t] * ((u >= 0.12) & (u < 0.22))
    f = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    rollout = VectorRollout(
        obs=obs[:-1], actions=actions.reshape(T, N, *actions.shape[1:]), log_probs=log_probs.reshape(T, N),
        rewards=f(np.round(rng.normal(size=(T, N)), 3) * valid), terminated=f(terminated), truncated=f(truncated),
        valid=f(valid), values=all_values[:-1], next_values=all_values[1:], last_obs=obs[-1],
    )
    config = PPOConfig(num_envs=N, n_steps=T, minibatch_size=spec["minibatch_size"],
                       update_epochs=spec["update_epochs"], gamma=0.95, gae_lambda=0.9, ent_coef=spec["ent_coef"],
                       vf_coef=spec["vf_coef"], max_grad_norm=spec["max_grad_norm"], target_kl=spec["target_kl"],
                       clip_coef=spec["clip_coef"])
    optimizer = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=spec["lr"], eps=1e-5)
    return actor, critic, optimizer, rollout, config, torch.Generator().manual_seed(spec["seed"])


def _run_ppo_update(fn: Callable, spec: dict) -> tuple[np.ndarray, object, list[float], list[str]]:
    """Run ``fn`` on a fresh copy of the case's inputs; return what it did: the actor's and the critic's
    parameters after it (flattened, float64), what it returned, the global gradient norm at each
    ``optimizer.step()`` and the rollout fields it changed in place."""
    import torch

    from rl_basics.agents.training import torch_threads

    # one torch thread: far faster for these tiny networks (ten times on a busy machine); the learner's RNG is kept
    with torch_threads(1), torch.random.fork_rng(devices=[]):
        actor, critic, optimizer, rollout, config, generator = _ppo_update_setup(spec)
        params = [*actor.parameters(), *critic.parameters()]
        before = {name: value.clone() for name, value in vars(rollout).items() if isinstance(value, torch.Tensor)}
        norms = []

        def record_norm(*_):
            grads = [p.grad.norm() for p in params if p.grad is not None]
            norms.append(float(torch.linalg.vector_norm(torch.stack(grads))))

        handle = optimizer.register_step_pre_hook(record_norm)
        try:
            epochs = fn(actor, critic, optimizer, rollout, config, generator)
        finally:
            handle.remove()
    changed = [name for name, value in before.items() if not torch.equal(value, getattr(rollout, name))]
    flat = torch.cat([p.detach().reshape(-1) for p in params]).double().numpy()
    return flat, epochs, norms, changed


def _ppo_update_reference(actor, critic, optimizer, rollout, config, generator, batch=None):
    """The course's update as the exercise's signature: make_batch (GAE, real steps) + ppo.ppo_update."""
    from rl_basics.agents import ppo
    from rl_basics.agents.on_policy import make_batch

    batch = make_batch(rollout, config.gamma, config.gae_lambda) if batch is None else batch
    n_minibatches = rollout.rewards.numel() // config.minibatch_size
    return ppo.ppo_update(actor, critic, optimizer, batch, config, n_minibatches, generator=generator)["epochs"]


def _ppo_config_replaced(config, **changes):
    """A copy of ``config`` with ``changes``, not validated (a mistake may break a rule on purpose)."""
    import copy

    config = copy.copy(config)
    for name, value in changes.items():
        setattr(config, name, value)
    return config


def _ppo_update_mistakes() -> list[Mistake]:
    """The known wrong updates, each the course's update with one input or setting changed."""
    import dataclasses

    import torch

    from rl_basics.agents import ppo
    from rl_basics.agents.losses import masked_whiten
    from rl_basics.agents.on_policy import make_batch

    def with_config(**changes):  # a value may be a function of the config (e.g. the entropy weight's sign flipped)
        def variant(actor, critic, optimizer, rollout, config, generator):
            config = _ppo_config_replaced(config, **{name: value(config) if callable(value) else value
                                          for name, value in changes.items()})
            return _ppo_update_reference(actor, critic, optimizer, rollout, config, generator)
        return variant

    def with_rollout(**changes):
        def variant(actor, critic, optimizer, rollout, config, generator):
            rollout = dataclasses.replace(rollout, **{name: value(rollout) for name, value in changes.items()})
            return _ppo_update_reference(actor, critic, optimizer, rollout, config, generator)
        return variant

    def swapped(actor, critic, optimizer, rollout, config, generator):
        batch = make_batch(rollout, config.gamma, config.gae_lambda)
        batch.advantages, batch.returns = batch.returns, batch.advantages
        return _ppo_update_reference(actor, critic, optimizer, rollout, config, generator, batch)

    def whitened_over_batch(actor, critic, optimizer, rollout, config, generator):
        batch = make_batch(rollout, config.gamma, config.gae_lambda)
        batch.advantages = masked_whiten(batch.advantages)
        config = _ppo_config_replaced(config, normalize_advantages=False)
        return _ppo_update_reference(actor, critic, optimizer, rollout, config, generator, batch)

    def epoch_by_epoch(actor, critic, optimizer, rollout, config, generator, order=None, per_minibatch=False):
        """One epoch (or minibatch) at a time; ``order`` fixes the minibatches; ``per_minibatch`` recomputes
        the old log-probs for every minibatch (else for every epoch)."""
        batch = make_batch(rollout, config.gamma, config.gae_lambda)
        n_minibatches = rollout.rewards.numel() // config.minibatch_size
        one = _ppo_config_replaced(config, update_epochs=1)
        for epoch in range(config.update_epochs):
            if order is None and not per_minibatch:
                with torch.no_grad():
                    batch.log_probs = actor.log_prob(batch.obs, batch.actions)
                stats = ppo.ppo_update(actor, critic, optimizer, batch, one, n_minibatches, generator=generator)
            else:
                perm = torch.arange(len(batch)) if order == "fixed" else torch.randperm(len(batch), generator=generator)
                for index in torch.tensor_split(perm, n_minibatches):
                    mb = batch[index]
                    if per_minibatch:
                        with torch.no_grad():
                            mb.log_probs = actor.log_prob(mb.obs, mb.actions)
                    stats = ppo.ppo_update(actor, critic, optimizer, mb, one, 1)
            if config.target_kl is not None and stats["approx_kl"] > config.target_kl:
                break
        return epoch + 1

    return [
        Mistake("you never shuffle: draw a new order every epoch, order = torch.randperm(n, generator=generator), and "
                "cut the minibatches from it with torch.tensor_split(order, n_minibatches); fixed minibatches repeat "
                "the same gradient steps every epoch.",
                lambda *args: epoch_by_epoch(*args, order="fixed")),
        Mistake("you whiten the advantages once over the whole batch; whiten each minibatch's advantages instead "
                "(mean 0, std 1 within the minibatch), as this chapter's loss does.", whitened_over_batch),
        Mistake("the advantages are not whitened: normalise each minibatch's, (A - A.mean()) / (A.std() + 1e-8).",
                with_config(normalize_advantages=False)),
        Mistake("you recompute the old log-probabilities at the start of every epoch: logp_old must stay "
                "rollout.log_probs (pi_old, recorded when the actions were sampled), or the ratio restarts at 1 each "
                "epoch and the clipping no longer bounds the update as a whole.", epoch_by_epoch),
        Mistake("the ratio is always 1: you take logp_old from the current actor for every minibatch; use "
                "rollout.log_probs, recorded when the actions were sampled.",
                lambda *args: epoch_by_epoch(*args, per_minibatch=True)),
        Mistake("advantages and returns are swapped: the policy loss weighs the ratio by the advantages A, the critic "
                "regresses V(s) on the returns R = A + V.", swapped),
        Mistake("the autoreset steps are still in the batch: after GAE keep only the real transitions "
                "(rollout.valid == 1).", with_rollout(valid=lambda r: torch.ones_like(r.valid))),
        Mistake("a truncated episode is treated as terminated: pass rollout.terminated (no bootstrap) and "
                "rollout.episode_end (the recursion stops) to GAE, two different arguments.",
                with_rollout(terminated=lambda r: r.episode_end)),
        Mistake("the gradient is not clipped: call torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm) "
                "between loss.backward() and optimizer.step().", with_config(max_grad_norm=float("inf"))),
        Mistake("the epochs never stop early: after each epoch, stop when config.target_kl is set and the last "
                "minibatch's approx KL, mean((ratio - 1) - log ratio), exceeds it.", with_config(target_kl=None)),
        Mistake("the ratio is never clipped: the policy loss is "
                "mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))) with eps = config.clip_coef.",
                with_config(clip_coef=1e9)),
        Mistake("the entropy bonus has the wrong sign: the loss subtracts ent_coef * mean(entropy).",
                with_config(ent_coef=lambda c: -c.ent_coef)),
        Mistake("vf_coef is missing: the value loss enters as config.vf_coef * 0.5 * mean((V(s) - R)^2).",
                with_config(vf_coef=1.0)),
        Mistake("the value loss lacks its 0.5: config.vf_coef * 0.5 * mean((V(s) - R)^2).",
                with_config(vf_coef=lambda c: 2 * c.vf_coef)),
    ]


@learner_check
def check_ppo_update(fn: Callable, *, seed: int | None = None) -> None:
    """Check ``fn(actor, critic, optimizer, rollout, config, generator) -> epochs``: one whole PPO update.

    ``fn`` computes GAE on the ``VectorRollout`` (time-first ``(T, N)``), keeps the real transitions,
    then runs ``config.update_epochs`` epochs; each draws ``torch.randperm(n, generator=generator)``,
    splits it into ``T * N // config.minibatch_size`` minibatches (``torch.tensor_split``) and takes one
    clipped-gradient step per minibatch on ``clipped policy loss + vf_coef * 0.5 * mean((V - R)^2)
    - ent_coef * mean(entropy)``, the minibatch's advantages whitened; it stops after an epoch whose
    last minibatch's approx KL exceeds ``config.target_kl`` and returns the number of epochs run.
    Reference: :func:`rl_basics.agents.on_policy.make_batch` then :func:`rl_basics.agents.ppo.ppo_update`,
    run on the same inputs and the same permutations: the networks must end up the same. A wrong
    update is compared with the known mistakes (each the reference with one thing changed), then
    with the reference's number of optimizer steps and its gradient clipping.
    """
    rng, seed = _rng(seed)
    exercise = "the PPO update"
    again = f" (random inputs from seed={seed}: pass seed={seed} to the check to reproduce)"
    cases = _ppo_update_cases(rng)
    close = lambda a, b: np.allclose(a, b, atol=1e-5, rtol=1e-4)  # noqa: E731
    for case in cases:
        spec = case.args[0]

        def fail(message: str, cause: BaseException | None = None) -> None:
            raise CheckFailed(f"{exercise}: {message}\n  inputs: {case.name}{again}") from cause

        try:
            params, returned, norms, changed = _run_ppo_update(fn, spec)
        except NotImplementedError:
            raise CheckFailed(f"{exercise}: not done yet — replace `raise NotImplementedError` in your function "
                              "with your code, then run this check again.") from None
        except Exception as exc:
            fail(f"your function raised {type(exc).__name__}: {exc}", exc)
        if changed:
            fail(f"your function changed rollout.{changed[0]} in place; leave the rollout as it is and build new "
                 "tensors (advantages = ..., not rollout.rewards *= ...).")
        if not norms:
            fail("your function never called optimizer.step(): the networks did not change.")
        expected, epochs, expected_norms, _ = _run_ppo_update(_ppo_update_reference, spec)
        if close(params, expected):
            try:
                same_epochs = int(returned) == epochs
            except (TypeError, ValueError):
                same_epochs = False
            if not same_epochs:
                fail(f"the networks are right, but you returned {returned!r}: return the number of epochs run "
                     f"({epochs} here).")
            continue
        summary = ("after your update the networks differ from the course's update on the same rollout and the same "
                   f"permutations (largest parameter difference {np.max(np.abs(params - expected)):.3g})")
        for mistake in _ppo_update_mistakes():
            variant = _run_ppo_update(mistake.fn, spec)[0]
            if not close(variant, expected) and close(variant, params):
                fail(f"{summary}. Hint: {mistake.hint}")
        if len(norms) != len(expected_norms):
            fail(f"{summary}. You took {len(norms)} optimizer steps where the course takes {len(expected_norms)}: one "
                 f"per minibatch, T * N // minibatch_size = {spec['T'] * spec['N'] // spec['minibatch_size']} "
                 f"minibatches per epoch (torch.tensor_split of the epoch's permutation), {spec['update_epochs']} "
                 "epochs unless target_kl stops them after an epoch.")
        if max(norms) > spec["max_grad_norm"] * (1 + 1e-3):
            fail(f"{summary}. The gradient norm at optimizer.step() reached {max(norms):.3g}, above max_grad_norm = "
                 f"{spec['max_grad_norm']}: clip it with torch.nn.utils.clip_grad_norm_ after loss.backward().")
        fail(f"{summary}. Check: GAE with compute_gae(rewards, values, next_values, terminated, episode_end, gamma, "
             "gae_lambda), then the valid steps only; one torch.randperm(n, generator=generator) per epoch; "
             "optimizer.zero_grad() before loss.backward(); each minibatch's advantages whitened with "
             "(A - A.mean()) / (A.std() + 1e-8); loss = policy loss + vf_coef * 0.5 * mean((V - R)^2) - "
             "ent_coef * mean(entropy).")
    print(f"✓ {exercise}: the networks match the course's update on all {len(cases)} test cases, random ones from "
          f"seed {seed}.")


# ============================================================================ references
# Small formulas the packages do not need elsewhere; the checks compare against them.


def _episode_returns(states, rewards, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """``(G_t, first_visit_t)`` of one episode, through the MC code's :class:`rl_basics.lanes.Episodes`.

    ``states`` may be any hashable values (e.g. Blackjack's tuples): each distinct one gets an integer code.
    """
    from rl_basics.lanes import Episodes

    T = len(rewards)
    codes: dict = {}
    ids = [codes.setdefault(s, len(codes)) for s in states]
    episode = Episodes(states=np.asarray(ids, dtype=np.int64).reshape(1, T), actions=np.zeros((1, T), dtype=np.int64),
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
        Case("edge case: a batch of one", (torch.tensor([0.5]), torch.tensor([[1.0, 3.0, 2.0]]), torch.zeros(1), torch.zeros(1), 0.9)),
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
        Case("edge case: a batch of one (the networks prefer different actions)",
             (torch.tensor([0.5]), torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([[4.0, 0.0, 2.0]]), torch.zeros(1), 0.9)),
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
