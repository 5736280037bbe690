"""The objective functions of policy-based RL, computed exactly on a small tabular MDP.

For a policy ``pi`` on a *continuing* MDP with transition tensor ``transitions[s, a, s']``
and expected rewards ``rewards[s, a]`` (rl_basics' tabular arrays, e.g.
``rl_basics.mdp.TabularModel.transitions`` / ``.rewards``):

- ``J_1``    the start value ``v_pi(s_0)`` (or its mean over a start distribution);
- ``J_avV``  the average value ``sum_s d(s) v_pi(s)``;
- ``J_avR``  the average reward per step ``sum_s d(s) sum_a pi(a|s) R(s, a)``,

where ``d`` is the stationary distribution of the chain ``P_pi`` (``d P_pi = d``).
Two identities tie them together (both follow from ``v = r_pi + gamma P_pi v``):

- ``J_avV = J_avR / (1 - gamma)``, because ``d`` is stationary;
- ``J_1 = sum_s d_gamma(s) r_pi(s) / (1 - gamma)`` with the *discounted* state
  distribution from the start, ``d_gamma = (1 - gamma) start (I - gamma P_pi)^-1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PolicyObjectives:
    """The three objectives of one policy, with the quantities they are built from."""

    j_start: float
    """``J_1``: the expected value of the start state(s)."""
    j_avg_value: float
    """``J_avV``: the state value averaged over the stationary distribution."""
    j_avg_reward: float
    """``J_avR``: the expected reward per step under the stationary distribution."""
    values: np.ndarray
    """``(S,)`` state values ``v_pi``."""
    stationary: np.ndarray
    """``(S,)`` stationary distribution ``d`` of ``P_pi``."""
    discounted_visitation: np.ndarray
    """``(S,)`` normalised discounted state distribution ``d_gamma`` from the start distribution."""
    expected_rewards: np.ndarray
    """``(S,)`` expected one-step reward ``r_pi(s) = sum_a pi(a|s) R(s, a)``."""


def stationary_distribution(p_pi: np.ndarray) -> np.ndarray:
    """The stationary distribution ``d`` of the ``(S, S)`` stochastic matrix ``p_pi`` (``d p_pi = d``, ``sum d = 1``).

    Raises ``ValueError`` when it is not unique (the chain has several closed classes).
    """
    n = p_pi.shape[0]
    # d (P - I) = 0 together with sum(d) = 1, as one least-squares system
    system = np.vstack([(p_pi - np.eye(n)).T, np.ones((1, n))])
    target = np.zeros(n + 1)
    target[-1] = 1.0
    d, _, rank, _ = np.linalg.lstsq(system, target, rcond=None)
    if rank < n:
        raise ValueError("the chain P_pi has no unique stationary distribution (several closed classes)")
    return d


def policy_objectives(
    transitions: np.ndarray,
    rewards: np.ndarray,
    policy: np.ndarray,
    gamma: float,
    start: int | np.ndarray = 0,
) -> PolicyObjectives:
    """Compute ``J_1``, ``J_avV`` and ``J_avR`` exactly for ``policy`` on a continuing MDP.

    Args:
        transitions: ``(S, A, S)`` transition probabilities, each ``transitions[s, a]`` summing to 1.
        rewards: ``(S, A)`` expected immediate rewards.
        policy: ``(S, A)`` action probabilities.
        gamma: discount factor in ``[0, 1)``.
        start: the start state, or an ``(S,)`` start distribution.
    """
    transitions = np.asarray(transitions, dtype=float)
    rewards = np.asarray(rewards, dtype=float)
    policy = np.asarray(policy, dtype=float)
    if transitions.ndim != 3 or transitions.shape[0] != transitions.shape[2]:
        raise ValueError(f"transitions must have shape (S, A, S), got {transitions.shape}")
    if not np.allclose(transitions.sum(axis=-1), 1.0):
        raise ValueError("transitions[s, a] must sum to 1 over next states (a continuing MDP has no terminal exits)")
    if rewards.shape != transitions.shape[:2]:
        raise ValueError(f"rewards must have shape (S, A) = {transitions.shape[:2]}, got {rewards.shape}")
    if policy.shape != transitions.shape[:2] or np.any(policy < 0) or not np.allclose(policy.sum(axis=-1), 1.0):
        raise ValueError(f"policy must be an (S, A) = {transitions.shape[:2]} array of probabilities summing to 1 per state")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1) for a continuing MDP, got {gamma}")
    n_states = transitions.shape[0]
    if np.ndim(start) == 0:
        start_dist = np.eye(n_states)[int(start)]
    else:
        start_dist = np.asarray(start, dtype=float)
        if start_dist.shape != (n_states,) or not np.isclose(start_dist.sum(), 1.0):
            raise ValueError(f"start must be a state index or an ({n_states},) distribution")

    p_pi = np.einsum("sa,sat->st", policy, transitions)
    r_pi = (policy * rewards).sum(axis=-1)
    values = np.linalg.solve(np.eye(n_states) - gamma * p_pi, r_pi)
    d = stationary_distribution(p_pi)
    d_gamma = (1 - gamma) * np.linalg.solve((np.eye(n_states) - gamma * p_pi).T, start_dist)
    return PolicyObjectives(
        j_start=float(start_dist @ values),
        j_avg_value=float(d @ values),
        j_avg_reward=float(d @ r_pi),
        values=values,
        stationary=d,
        discounted_visitation=d_gamma,
        expected_rewards=r_pi,
    )
