"""The short corridor with switched actions (Sutton & Barto, Example 13.1).

Three non-terminal cells and a goal, laid out left to right::

    [ S ] [ 1: reversed ] [ 2 ] [ G ]

Every step costs -1. In cells ``S`` and ``2`` the actions do what they say; in cell
``1`` they are switched (``right`` moves left, ``left`` moves right). Moving left from
``S`` bumps into the wall and stays put.

The agent cannot tell the cells apart: the observation is always ``0`` (a
``Discrete(1)`` space). Every policy is therefore the same distribution over
``left``/``right`` in every cell, and the best such policy is *stochastic*: it
moves right with probability ``2 - sqrt(2) ~ 0.59`` (see :func:`optimal_right_probability`).
Deterministic and epsilon-greedy policies do much worse, which is the chapter's
argument for learning a policy directly.

``P`` holds the model of the *hidden* cells in gymnasium's tabular convention
(``P[s][a] = [(prob, next_state, reward, terminated)]``, states ``0, 1, 2`` and the
absorbing goal ``3``), so the value of any state-independent policy can be
computed exactly (:func:`corridor_state_values`).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

LEFT, RIGHT = 0, 1
"""Action numbers: 0 = left, 1 = right."""

GOAL = 3
"""The hidden index of the goal cell (terminal)."""

N_CELLS = 3
"""Number of non-terminal cells."""

# next cell for (cell, action); cell 1 switches the two actions
_NEXT_CELL = {
    0: {LEFT: 0, RIGHT: 1},
    1: {LEFT: 2, RIGHT: 0},
    2: {LEFT: 1, RIGHT: GOAL},
}


class ShortCorridorEnv(gym.Env):
    """Example 13.1: a corridor whose cells all look the same, with switched actions in cell 1.

    Observation: always ``0`` (``Discrete(1)``): the cells are aliased.
    Actions: ``0`` = left, ``1`` = right.
    Reward: -1 per step; the episode terminates on reaching the goal.
    ``info["cell"]`` reports the hidden cell (for inspection only; a policy must not use it).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(2)
        self.P = {
            cell: {a: [(1.0, nxt, -1.0, nxt == GOAL)] for a, nxt in moves.items()}
            for cell, moves in _NEXT_CELL.items()
        }
        self.P[GOAL] = {a: [(1.0, GOAL, 0.0, True)] for a in (LEFT, RIGHT)}
        self._cell = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._cell = 0
        return 0, {"cell": self._cell}

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (left) or 1 (right), got {action!r}")
        if self._cell == GOAL:
            raise RuntimeError("the episode has terminated; call reset() before step()")
        self._cell = _NEXT_CELL[self._cell][int(action)]
        terminated = self._cell == GOAL
        return 0, -1.0, terminated, False, {"cell": self._cell}

    def render(self):
        if self.render_mode == "ansi":
            cells = ["S", "<>", " ", "G"]
            return " ".join(f"[{'*' if i == self._cell else c:^2}]" for i, c in enumerate(cells))
        return None


def corridor_policy_model(p_right: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The corridor as a Markov reward process under "right with probability ``p_right``".

    Returns ``(p_pi, r_pi)``: ``p_pi[..., s, s']`` the probability of moving from cell
    ``s`` to non-terminal cell ``s'`` in one step (rows sum to less than 1 where the goal
    can be reached) and ``r_pi[..., s]`` the expected reward, both built from ``P``.
    ``p_right`` may be an array of any shape; the outputs have shapes
    ``p_right.shape + (3, 3)`` and ``p_right.shape + (3,)``.
    """
    p = np.asarray(p_right, dtype=float)
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"p_right must lie in [0, 1], got {p_right!r}")
    model = ShortCorridorEnv().P
    transitions = np.zeros((2, N_CELLS, N_CELLS))  # (action, cell, next non-terminal cell)
    rewards = np.zeros((2, N_CELLS))  # (action, cell)
    for cell in range(N_CELLS):
        for a in (LEFT, RIGHT):
            for prob, nxt, reward, _ in model[cell][a]:
                rewards[a, cell] += prob * reward
                if nxt != GOAL:
                    transitions[a, cell, nxt] += prob
    probs = np.stack([1 - p, p], axis=-1)  # (..., action)
    p_pi = np.einsum("...a,aij->...ij", probs, transitions)
    r_pi = np.einsum("...a,ai->...i", probs, rewards)
    return p_pi, r_pi


def corridor_state_values(p_right: float | np.ndarray) -> np.ndarray:
    """Exact values of the cells ``S, 1, 2`` under the policy "right with probability ``p_right``".

    Solves the Bellman expectation equations ``v = r_pi + P_pi v`` (undiscounted,
    the goal has value 0) for each probability. ``p_right`` may be an array of any
    shape; the result has shape ``p_right.shape + (3,)``. Both deterministic
    policies (``p_right`` 0 or 1) never reach the goal and get ``-inf``.
    """
    p = np.asarray(p_right, dtype=float)
    p_pi, r_pi = corridor_policy_model(p)
    values = np.full(p.shape + (N_CELLS,), -np.inf)
    proper = (p > 0) & (p < 1)  # the goal is reached with probability 1
    values[proper] = np.linalg.solve(np.eye(N_CELLS) - p_pi[proper], r_pi[proper][..., None])[..., 0]
    return values


def optimal_right_probability(tol: float = 1e-12) -> tuple[float, float]:
    """The best state-independent policy, found by maximising the exact start value.

    Golden-section search on ``p -> v(S)`` (unimodal on ``(0, 1)``). Returns
    ``(p_star, v_star)``; the closed form is ``p* = 2 - sqrt(2)``, ``v* = -(6 + 4 sqrt(2))``.
    """
    ratio = (np.sqrt(5) - 1) / 2
    low, high = 1e-6, 1 - 1e-6
    while high - low > tol:
        a = high - ratio * (high - low)
        b = low + ratio * (high - low)
        if corridor_state_values(a)[0] < corridor_state_values(b)[0]:
            low = a
        else:
            high = b
    p_star = (low + high) / 2
    return float(p_star), float(corridor_state_values(p_star)[0])
