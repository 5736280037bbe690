"""The random walk of Sutton & Barto, Example 6.2 (and the 19-state walk of Figure 7.2).

States in a row, all episodes start in the centre and move left or right with equal
probability; there is nothing to choose, so the action space has one action (a
Markov reward process wrapped as an MDP). Observations number the states
``0 .. n_states + 1``: ``0`` and ``n_states + 1`` are the two terminal ends,
``1 .. n_states`` the non-terminal states (A..E for the 5-state walk, C = 3 the start).

Rewards: ``right_reward`` (+1) on reaching the right end, ``left_reward`` (0) on
reaching the left end, 0 otherwise. With the defaults and gamma = 1 the true values
are ``v(k) = k / (n_states + 1)``: 1/6 .. 5/6 for A..E. The 19-state walk of
Figure 7.2 uses ``n_states=19, left_reward=-1``.
"""

from __future__ import annotations

import numpy as np

from rl_basics.envs.model_env import TabularModelEnv, absorbing


class RandomWalkEnv(TabularModelEnv):
    """Random walk over ``n_states`` non-terminal states (odd, >= 3), starting in the centre."""

    def __init__(self, n_states: int = 5, left_reward: float = 0.0, right_reward: float = 1.0,
                 render_mode: str | None = None):
        if not isinstance(n_states, (int, np.integer)) or n_states < 3 or n_states % 2 == 0:
            raise ValueError(f"n_states must be an odd integer >= 3 (so there is a centre state), got {n_states!r}")
        self.n_walk_states = int(n_states)
        last = n_states + 1
        P = {0: absorbing(0, 1), last: absorbing(last, 1)}
        for s in range(1, last):
            left, right = s - 1, s + 1
            P[s] = {0: [
                (0.5, left, float(left_reward) if left == 0 else 0.0, left == 0),
                (0.5, right, float(right_reward) if right == last else 0.0, right == last),
            ]}
        start = np.zeros(n_states + 2)
        start[(n_states + 1) // 2] = 1.0
        super().__init__(P, start, n_actions=1, render_mode=render_mode)

    def true_values(self) -> np.ndarray:
        """v(s) for gamma = 1 (linear between the two end rewards; 0 at the terminal ends)."""
        n = self.n_walk_states
        left = self.P[1][0][0][2]
        right = self.P[n][0][1][2]
        v = left + (right - left) * np.arange(n + 2) / (n + 1)
        v[0] = v[-1] = 0.0
        return v

    def _render_text(self) -> str:
        names = ["T"] + [chr(ord("A") + i) if self.n_walk_states <= 26 else str(i + 1)
                         for i in range(self.n_walk_states)] + ["T"]
        return " ".join(f"[{n}]" if i == self.s else f" {n} " for i, n in enumerate(names)) + "\n"
