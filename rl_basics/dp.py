"""Dynamic programming on a known tabular model: policy evaluation, policy iteration, value iteration.

Every function takes the MDP as a :class:`~rl_basics.mdp.TabularModel`, a gymnasium env
exposing ``env.unwrapped.P`` (FrozenLake, CliffWalking, the ``rl_basics/`` grid worlds), or a
raw ``P[s][a] = [(prob, next_state, reward, terminated), ...]`` dict. Build the model once
with :func:`~rl_basics.mdp.as_model` when calling many functions on a large MDP.

Shapes: ``S`` states, ``A`` actions. Values ``V`` are ``(S,)``, action values ``Q`` are
``(S, A)``, and policies are ``(S, A)`` arrays of action probabilities (rows sum to 1; an
unavailable action has probability 0). A deterministic policy is a one-hot row,
e.g. ``np.eye(A)[actions]``.

The backups, with ``C = model.continuation`` (transitions that do not terminate)::

    Q(s, a)        = r(s, a) + gamma * sum_s' C[s, a, s'] V(s')          (q_from_v)
    (T_pi V)(s)    = sum_a pi(a|s) Q(s, a)                               (Bellman expectation)
    (T_* V)(s)     = max_a Q(s, a)                                       (Bellman optimality)
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from rl_basics.mdp import TabularModel, as_model
from rl_basics.validation import check_gamma

__all__ = [
    "bellman_expectation_backup",
    "bellman_optimality_backup",
    "finite_horizon_values",
    "greedy_policy",
    "policy_evaluation",
    "policy_iteration",
    "q_from_v",
    "solve_policy_exact",
    "uniform_random_policy",
    "value_iteration",
]


def uniform_random_policy(n_states: int, n_actions: int, action_mask: np.ndarray | None = None) -> np.ndarray:
    """The equiprobable policy ``(S, A)``: every available action (``action_mask``, default all) equally likely."""
    mask = np.ones((n_states, n_actions), dtype=bool) if action_mask is None else np.asarray(action_mask, dtype=bool)
    if mask.shape != (n_states, n_actions):
        raise ValueError(f"action_mask must have shape {(n_states, n_actions)}, got {mask.shape}")
    return mask / mask.sum(axis=1, keepdims=True)


def q_from_v(model, V: np.ndarray, gamma: float) -> np.ndarray:
    """One-step lookahead ``Q(s, a) = r(s, a) + gamma * sum_s' C[s, a, s'] V(s')``, shape ``(S, A)``.

    Unavailable actions get ``-inf``, so ``Q.max(axis=1)`` and ``Q.argmax(axis=1)`` ignore them.
    """
    model = as_model(model)
    q = _lookahead(model, _check_values(model, V), check_gamma(gamma))
    return np.where(model.action_mask, q, -np.inf)


def bellman_expectation_backup(model, V: np.ndarray, policy: np.ndarray, gamma: float) -> np.ndarray:
    """``(T_pi V)(s) = sum_a pi(a|s) [r(s, a) + gamma * sum_s' C[s, a, s'] V(s')]``, shape ``(S,)``."""
    model = as_model(model)
    policy = _check_policy(model, policy)
    return (policy * _lookahead(model, _check_values(model, V), check_gamma(gamma))).sum(axis=1)


def bellman_optimality_backup(model, V: np.ndarray, gamma: float) -> np.ndarray:
    """``(T_* V)(s) = max_a [r(s, a) + gamma * sum_s' C[s, a, s'] V(s')]``, shape ``(S,)``."""
    return q_from_v(model, V, gamma).max(axis=1)


def solve_policy_exact(model, policy: np.ndarray, gamma: float) -> np.ndarray:
    """``v_pi`` from the linear Bellman expectation equation ``(I - gamma C_pi) v = r_pi``, shape ``(S,)``.

    ``r_pi (S,)`` and ``C_pi (S, S)`` are the reward and non-terminating transition matrix
    averaged over the policy's actions. With ``gamma = 1`` a state that never reaches a
    terminating transition has an infinite return unless it collects no reward at all; the
    first case raises ``ValueError``, the second gives those states the value 0 (what
    iterative evaluation converges to).
    """
    model = as_model(model)
    gamma = check_gamma(gamma)
    r_pi, c_pi = _policy_matrices(model, _check_policy(model, policy))
    values = np.zeros(model.n_states)
    solve = np.ones(model.n_states, dtype=bool)
    if gamma == 1.0:
        stuck = _never_terminating(c_pi)
        if stuck.any() and np.abs(r_pi[stuck]).max() > 0:
            raise ValueError(_divergence_message(stuck, "the linear system (I - C_pi) v = r_pi is singular"))
        solve = ~stuck  # the stuck states form a closed set with zero reward: their value is 0
    system = np.eye(solve.sum()) - gamma * c_pi[np.ix_(solve, solve)]
    values[solve] = np.linalg.solve(system, r_pi[solve])
    return values


def policy_evaluation(
    mdp,
    policy: np.ndarray,
    gamma: float,
    theta: float = 1e-8,
    max_sweeps: int = 100_000,
    in_place: bool = False,
    V0: np.ndarray | None = None,
    history: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """Iterative policy evaluation: apply the Bellman expectation backup until ``max |V_k+1 - V_k| < theta``.

    Args:
        policy: ``(S, A)`` action probabilities.
        theta: stop once a sweep changes no value by ``theta`` or more.
        max_sweeps: give up after this many sweeps and raise ``ValueError`` (with ``gamma = 1``,
            a policy that never terminates from some state accumulates reward forever).
        in_place: update ``V(s)`` state by state within a sweep, so later states already use
            the new values (Gauss-Seidel, usually fewer sweeps); otherwise every state of a
            sweep is computed from the previous sweep's ``V`` (synchronous, Jacobi).
        V0: ``(S,)`` initial values, zeros by default.
        history: if a list is given, ``V_0, V_1, ...`` (copies, ``(S,)`` each) are appended to it.

    Returns:
        ``(V, n_sweeps)``: the values ``(S,)`` after the last sweep and how many sweeps it took.
    """
    model = as_model(mdp)
    gamma = check_gamma(gamma)
    theta, max_sweeps = _check_stopping(theta, max_sweeps)
    r_pi, c_pi = _policy_matrices(model, _check_policy(model, policy))
    V = np.zeros(model.n_states) if V0 is None else _check_values(model, V0).copy()
    if history is not None:
        history.append(V.copy())
    for sweep in range(1, max_sweeps + 1):
        V, delta = _expectation_sweep(r_pi, c_pi, V, gamma, in_place)
        if history is not None:
            history.append(V.copy())
        if delta < theta:
            return V, sweep
        if not np.isfinite(delta):
            break
    stuck = _never_terminating(c_pi) if gamma == 1.0 else np.zeros(model.n_states, dtype=bool)
    raise ValueError(_divergence_message(stuck, f"policy evaluation did not converge in {max_sweeps} sweeps "
                                                f"(last change {delta:.3g}, theta {theta:g}, gamma {gamma:g})"))


def finite_horizon_values(mdp, horizon: int, gamma: float = 1.0, policy: np.ndarray | None = None) -> np.ndarray:
    """Expected return of the first ``horizon`` steps, ``(S,)``: ``horizon`` synchronous backups from ``V = 0``.

    With a ``policy`` ``(S, A)`` this is the stationary policy's value under a time limit (for
    FrozenLake, reward 1 at the goal and ``gamma = 1``: the probability of reaching the goal
    within ``horizon`` steps). Without one it is the optimal finite-horizon value, reached by
    a policy that may choose differently as the deadline approaches.
    """
    model = as_model(mdp)
    gamma = check_gamma(gamma)
    if int(horizon) != horizon or horizon < 0:
        raise ValueError(f"horizon must be a non-negative integer, got {horizon!r}")
    V = np.zeros(model.n_states)
    if policy is not None:
        r_pi, c_pi = _policy_matrices(model, _check_policy(model, policy))
    for _ in range(int(horizon)):
        if policy is None:
            V, _ = _optimality_sweep(model, V, gamma, in_place=False)
        else:
            V, _ = _expectation_sweep(r_pi, c_pi, V, gamma, in_place=False)
    return V


def greedy_policy(
    model, V: np.ndarray, gamma: float, tol: float = 1e-9, ties: Literal["first", "uniform"] = "first"
) -> np.ndarray:
    """The policy ``(S, A)`` greedy with respect to ``V``: all probability on the actions tied for ``max_a Q(s, a)``.

    Args:
        tol: relative tolerance: action ``a`` counts as tied for the best when
            ``Q(s, a) >= max_b Q(s, b) - tol * |max_b Q(s, b)|``. It should exceed the relative
            error left in ``V`` (iterative methods stop at ``theta``, not at the exact fixed point);
            relative, so that it means the same for values of size 1e-8 and 1e2.
        ties: ``"first"`` puts probability 1 on the tied action with the smallest index (a
            deterministic policy; in the gambler's problem, the smallest stake), ``"uniform"``
            spreads it equally over all tied actions (what Sutton & Barto's Figure 4.1 draws).
    """
    model = as_model(model)
    return _greedy_from_q(q_from_v(model, V, gamma), tol, ties)


def policy_iteration(
    mdp,
    gamma: float,
    theta: float = 1e-8,
    eval_sweeps: int | None = None,
    initial_policy: np.ndarray | None = None,
    max_iterations: int = 10_000,
    tol: float = 1e-9,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Policy iteration: evaluate the policy, make it greedy, repeat until the policy is stable.

    With ``eval_sweeps=None`` each evaluation is exact (:func:`solve_policy_exact`). With an
    integer ``k`` it is truncated to ``k`` synchronous sweeps started from the previous values
    (generalized policy iteration; with ``k = 1`` every round after the first is a sweep of
    value iteration), and the loop also waits for the values to settle (a sweep changing them
    by less than ``theta``).

    Improvement keeps a state's current action when it is still among the greedy ones (within
    the relative tolerance ``tol``, see :func:`greedy_policy`), so ties cannot make the policy
    flip back and forth forever; otherwise it takes the greedy action of smallest index.

    Returns:
        ``(V, policy, info)``: values ``(S,)``, a deterministic policy ``(S, A)``, and ``info``
        with ``n_iterations`` (evaluation-improvement rounds), ``evaluation_sweeps`` (total
        sweeps, 0 with exact evaluation), and the lists ``values`` and ``policies`` of each
        round (the values of the policy evaluated in that round, the policy it improved to).
    """
    model = as_model(mdp)
    gamma = check_gamma(gamma)
    theta, max_iterations = _check_stopping(theta, max_iterations)
    if eval_sweeps is not None and (int(eval_sweeps) != eval_sweeps or eval_sweeps < 1):
        raise ValueError(f"eval_sweeps must be None (exact evaluation) or a positive integer, got {eval_sweeps!r}")
    policy = uniform_random_policy(model.n_states, model.n_actions, model.action_mask) if initial_policy is None \
        else _check_policy(model, initial_policy)
    V = np.zeros(model.n_states)
    info: dict = {"n_iterations": 0, "evaluation_sweeps": 0, "values": [], "policies": []}
    for iteration in range(1, max_iterations + 1):
        if eval_sweeps is None:
            V, settled = solve_policy_exact(model, policy, gamma), True
        else:
            r_pi, c_pi = _policy_matrices(model, policy)
            for _ in range(int(eval_sweeps)):
                V, delta = _expectation_sweep(r_pi, c_pi, V, gamma, in_place=False)
            info["evaluation_sweeps"] += int(eval_sweeps)
            settled = delta < theta
        q = q_from_v(model, V, gamma)
        greedy = _tied_for_best(q, tol)
        keep = (policy * ~greedy).sum(axis=1) < 1e-12  # the current action(s) are all greedy
        new_policy = np.where(keep[:, None], policy, _greedy_from_q(q, tol, "first"))
        info["n_iterations"] = iteration
        info["values"].append(V.copy())
        info["policies"].append(new_policy.copy())
        stable = np.array_equal(new_policy, policy)
        policy = new_policy
        if stable and settled:
            return V, np.eye(model.n_actions)[policy.argmax(axis=1)], info  # a tied row -> its first action
    raise ValueError(f"policy iteration did not converge in {max_iterations} iterations (gamma {gamma:g}); "
                     "with gamma = 1 make sure every policy it visits reaches a terminal state, or use gamma < 1")


def value_iteration(
    mdp,
    gamma: float,
    theta: float = 1e-8,
    max_sweeps: int = 100_000,
    tol: float = 1e-9,
    ties: Literal["first", "uniform"] = "first",
    in_place: bool = False,
    history: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Value iteration: ``V <- max_a Q(s, a)`` until a sweep changes no value by ``theta``, then act greedily.

    Args:
        tol, ties: how the greedy policy treats tied actions (see :func:`greedy_policy`).
        in_place: update state by state within a sweep, in state order (as in Sutton & Barto's
            pseudocode), instead of computing every state from the previous sweep's values.
        history: if a list is given, ``V_0 = 0, V_1, ...`` (copies) are appended to it.

    Returns:
        ``(V, policy, info)``: values ``(S,)``, the greedy policy ``(S, A)``, and ``info`` with
        ``n_sweeps`` and ``deltas`` (``(n_sweeps,)`` largest change of each sweep).
    """
    model = as_model(mdp)
    gamma = check_gamma(gamma)
    theta, max_sweeps = _check_stopping(theta, max_sweeps)
    V = np.zeros(model.n_states)
    if history is not None:
        history.append(V.copy())
    deltas = []
    for sweep in range(1, max_sweeps + 1):
        V, delta = _optimality_sweep(model, V, gamma, in_place)
        deltas.append(delta)
        if history is not None:
            history.append(V.copy())
        if delta < theta:
            policy = greedy_policy(model, V, gamma, tol=tol, ties=ties)
            return V, policy, {"n_sweeps": sweep, "deltas": np.array(deltas)}
        if not np.isfinite(delta):
            break
    raise ValueError(
        f"value iteration did not converge in {max_sweeps} sweeps (last change {delta:.3g}, gamma {gamma:g}); "
        "with gamma = 1 the optimal return must be finite (every good policy eventually terminates), else use gamma < 1"
    )


# --- building blocks --------------------------------------------------------------------------


def _lookahead(model: TabularModel, V: np.ndarray, gamma: float) -> np.ndarray:
    """``Q (S, A) = r(s, a) + gamma * C[s, a, :] @ V`` for every action, available or not."""
    return model.rewards + gamma * (model.continuation @ V)


def _policy_matrices(model: TabularModel, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The policy-averaged reward ``r_pi (S,)`` and non-terminating transitions ``C_pi (S, S)``."""
    r_pi = (policy * model.rewards).sum(axis=1)
    c_pi = np.einsum("sa,sat->st", policy, model.continuation)
    return r_pi, c_pi


def _expectation_sweep(
    r_pi: np.ndarray, c_pi: np.ndarray, V: np.ndarray, gamma: float, in_place: bool
) -> tuple[np.ndarray, float]:
    """One sweep of ``V <- r_pi + gamma C_pi V``; returns the new ``(S,)`` values and the largest change."""
    return _sweep(V, lambda states, V: r_pi[states] + gamma * (c_pi[states] @ V), in_place)


def _optimality_sweep(model: TabularModel, V: np.ndarray, gamma: float, in_place: bool) -> tuple[np.ndarray, float]:
    """One sweep of ``V <- max_a [r(s, a) + gamma C[s, a] V]`` (available actions); returns ``(V, largest change)``."""

    def backup(states, V):
        q = model.rewards[states] + gamma * (model.continuation[states] @ V)
        return np.where(model.action_mask[states], q, -np.inf).max(axis=-1)

    return _sweep(V, backup, in_place)


def _sweep(V: np.ndarray, backup, in_place: bool) -> tuple[np.ndarray, float]:
    """Apply ``backup(states, V) -> new values of states`` to every state: all at once, or one by one in place."""
    if not in_place:
        new_V = backup(slice(None), V)
        return new_V, float(np.abs(new_V - V).max())
    V = V.copy()
    delta = 0.0
    for s in range(V.size):
        old = V[s]
        V[s] = backup(s, V)
        delta = max(delta, abs(V[s] - old))
    return V, float(delta)


def _greedy_from_q(q: np.ndarray, tol: float, ties: str) -> np.ndarray:
    """Greedy policy ``(S, A)`` from ``q`` (``-inf`` for unavailable actions)."""
    if ties not in ("first", "uniform"):
        raise ValueError(f"ties must be 'first' or 'uniform', got {ties!r}")
    greedy = _tied_for_best(q, tol)
    if ties == "uniform":
        return greedy / greedy.sum(axis=1, keepdims=True)
    return np.eye(q.shape[1])[greedy.argmax(axis=1)]


def _tied_for_best(q: np.ndarray, tol: float) -> np.ndarray:
    """``(S, A)`` bool: the actions whose ``q`` is within the relative tolerance ``tol`` of the state's best."""
    best = q.max(axis=1, keepdims=True)
    return q >= best - tol * np.abs(best)


def _never_terminating(c_pi: np.ndarray) -> np.ndarray:
    """``(S,)`` bool: states from which the policy never reaches a terminating transition."""
    can_end = 1.0 - c_pi.sum(axis=1) > 1e-12
    edges = c_pi > 0
    while True:
        grown = can_end | (edges @ can_end)
        if np.array_equal(grown, can_end):
            return ~can_end
        can_end = grown


def _divergence_message(stuck: np.ndarray, problem: str) -> str:
    if stuck.any():
        return (f"{problem}: from states {np.flatnonzero(stuck).tolist()} the policy never reaches a terminal "
                "transition and keeps collecting reward, so with gamma = 1 their return is infinite. "
                "Use gamma < 1 or a policy that terminates (check that goal transitions are marked terminated=True).")
    return f"{problem}. Use a larger max_sweeps or theta, or a smaller gamma."


def _check_stopping(theta: float, max_steps: int) -> tuple[float, int]:
    if not theta > 0:
        raise ValueError(f"theta must be positive, got {theta!r}")
    if int(max_steps) != max_steps or max_steps < 1:
        raise ValueError(f"the maximum number of sweeps/iterations must be a positive integer, got {max_steps!r}")
    return float(theta), int(max_steps)


def _check_values(model: TabularModel, V: np.ndarray) -> np.ndarray:
    V = np.asarray(V, dtype=float)
    if V.shape != (model.n_states,):
        raise ValueError(f"V must have shape (S,) = ({model.n_states},), got {V.shape}")
    return V


def _check_policy(model: TabularModel, policy: np.ndarray) -> np.ndarray:
    policy = np.asarray(policy, dtype=float)
    if policy.shape != (model.n_states, model.n_actions):
        raise ValueError(
            f"policy must be an (S, A) = {(model.n_states, model.n_actions)} array of action probabilities, got shape "
            f"{policy.shape}; for deterministic actions a of shape (S,) pass np.eye({model.n_actions})[a]"
        )
    if (policy < 0).any() or not np.allclose(policy.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("policy rows must be probabilities: non-negative and summing to 1")
    if (policy[~model.action_mask] > 0).any():
        s, a = np.argwhere((policy > 0) & ~model.action_mask)[0]
        raise ValueError(f"policy gives probability to action {a} in state {s}, where the model does not offer it")
    return policy
