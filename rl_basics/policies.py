"""Epsilon-greedy action selection and exploration schedules: small reusable pieces.

Everything works on a batch: ``q`` has shape ``(..., n_actions)`` (one row of action
values per state, or per independent run), and ``valid`` (same shape, bool) marks
the actions that exist in each row (``None``: all of them). Ties between maximal
actions are broken uniformly at random, never toward the lowest index: with all
action values equal at the start, ``argmax`` would always pick action 0 and bias
early exploration.

Schedules map the episode number ``k = 1, 2, ...`` (a scalar or an array) to an
epsilon. GLIE ("greedy in the limit with infinite exploration") needs both

1. every state-action pair explored infinitely often (epsilon_k must not shrink so
   fast that some pair is tried only finitely often: ``sum_k epsilon_k = inf``), and
2. the policy greedy in the limit (``epsilon_k -> 0``).

``glie_schedule`` (epsilon_k = c / k) satisfies both; a constant epsilon satisfies
only the first, an exponential decay only the second.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Schedule = Callable[[np.ndarray | int], np.ndarray | float]


def check_probability(name: str, value: float, low_open: bool = False) -> float:
    """``value`` as a float in [0, 1] (or (0, 1] with ``low_open``); else ``ValueError`` naming ``name``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in {'(0' if low_open else '[0'}, 1], got {value!r}") from None
    if not (0.0 < v <= 1.0 if low_open else 0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in {'(0' if low_open else '[0'}, 1], got {value!r}")
    return v


def greedy_mask(q: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Bool array, ``q``'s shape: True for the (valid) actions with the maximal value in each row."""
    q = np.asarray(q, dtype=float)
    if valid is not None:
        q = np.where(valid, q, -np.inf)
    return q == q.max(axis=-1, keepdims=True)


def epsilon_greedy_probs(q: np.ndarray, epsilon: float | np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """pi(a|s) of the epsilon-greedy policy: ``epsilon / n_valid`` on every valid action,
    plus ``(1 - epsilon)`` shared equally by the maximal actions (random tie-breaking).

    ``epsilon`` is a scalar or has ``q``'s leading shape (one epsilon per row).
    """
    q = np.asarray(q, dtype=float)
    valid = np.ones(q.shape, dtype=bool) if valid is None else np.broadcast_to(np.asarray(valid, dtype=bool), q.shape)
    eps = np.asarray(epsilon, dtype=float)[..., None]
    best = greedy_mask(q, valid)
    return eps * valid / valid.sum(-1, keepdims=True) + (1.0 - eps) * best / best.sum(-1, keepdims=True)


def random_argmax(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Index of a uniformly chosen True entry in each row of the bool array ``mask`` (each row needs one)."""
    noise = rng.random(mask.shape)
    return np.argmax(np.where(mask, noise, -1.0), axis=-1)


def greedy_action(q: np.ndarray, rng: np.random.Generator, valid: np.ndarray | None = None) -> np.ndarray:
    """argmax over the last axis of ``q`` (restricted to ``valid``), ties broken at random."""
    return random_argmax(greedy_mask(q, valid), rng)


def epsilon_greedy_action(q: np.ndarray, epsilon: float | np.ndarray, rng: np.random.Generator,
                          valid: np.ndarray | None = None) -> np.ndarray:
    """Sample from the epsilon-greedy policy for each row of ``q``.

    With probability ``epsilon`` a uniformly random valid action, otherwise a greedy one
    (random tie-breaking). Returns an int array of shape ``q.shape[:-1]`` (a 0-d array
    for a single row: use ``int(...)``).
    """
    q = np.asarray(q, dtype=float)
    valid = np.ones(q.shape, dtype=bool) if valid is None else np.broadcast_to(np.asarray(valid, dtype=bool), q.shape)
    explore = rng.random(q.shape[:-1]) < epsilon
    return np.where(explore, random_argmax(valid, rng), greedy_action(q, rng, valid))


def sample_actions(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sample one action per row of the probability array ``probs`` ``(..., n_actions)``."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(probs.shape[:-1])[..., None] * cdf[..., -1:]
    return np.minimum((u >= cdf).sum(axis=-1), probs.shape[-1] - 1)


# ---------------------------------------------------------------- schedules

def constant_schedule(epsilon: float) -> Schedule:
    """epsilon_k = epsilon for every episode (explores forever; never greedy in the limit)."""
    epsilon = check_probability("epsilon", epsilon)

    def schedule(k):
        return np.full(np.shape(k), epsilon) if np.ndim(k) else epsilon

    return schedule


def glie_schedule(c: float = 1.0) -> Schedule:
    """epsilon_k = min(1, c / k) for episode k = 1, 2, ...: GLIE (sum diverges, limit 0)."""
    if not c > 0:
        raise ValueError(f"c must be > 0, got {c!r}")

    def schedule(k):
        return np.minimum(1.0, c / np.maximum(np.asarray(k, dtype=float), 1.0))

    return schedule


def linear_schedule(start: float, end: float, n_episodes: int) -> Schedule:
    """Linear from ``start`` at episode 1 to ``end`` at episode ``n_episodes``, then constant."""
    start, end = check_probability("start", start), check_probability("end", end)
    if not n_episodes >= 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes!r}")

    def schedule(k):
        frac = np.clip((np.asarray(k, dtype=float) - 1.0) / max(n_episodes - 1, 1), 0.0, 1.0)
        return start + (end - start) * frac

    return schedule


def as_schedule(epsilon: float | Schedule, name: str = "epsilon") -> Schedule:
    """A schedule from a constant (checked to lie in [0, 1]) or a callable (returned as is)."""
    if callable(epsilon):
        return epsilon
    check_probability(name, epsilon)
    return constant_schedule(epsilon)


def uniform_policy(n_states: int, n_actions: int, valid: np.ndarray | None = None) -> np.ndarray:
    """``(n_states, n_actions)`` equiprobable policy (over the valid actions of each state)."""
    valid = np.ones((n_states, n_actions), dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    return valid / valid.sum(axis=1, keepdims=True)


def deterministic_policy(actions: np.ndarray, n_actions: int) -> np.ndarray:
    """One-hot ``(..., n_actions)`` probabilities from an int array of actions ``(...)``."""
    actions = np.asarray(actions, dtype=int)
    return np.eye(n_actions)[actions]
