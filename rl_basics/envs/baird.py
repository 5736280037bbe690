"""Baird's counterexample (Sutton & Barto, Example 11.1, Figure 11.1): off-policy divergence with linear features.

Seven states, two actions, every reward 0, a continuing task (gamma = 0.99 in the book; no episode
ever ends). The *dashed* action (0) moves to one of the six upper states, each with probability 1/6;
the *solid* action (1) moves to the seventh, lower state. Observations ``0 .. 5`` are the upper
states (the book's 1-6), ``6`` the lower one (the book's 7).

The book's linear features (:data:`FEATURES`, 8 weights for 7 states): upper state ``i`` has
``x = 2 e_i + e_8``, the lower state ``x = e_7 + 2 e_8``. The behaviour policy :data:`BEHAVIOUR`
takes dashed with probability 6/7 and solid with 1/7, so the next state is uniform and so is the
stationary distribution; the target policy :data:`TARGET` always takes solid. Every true value is 0,
and ``w = 0`` represents it exactly; yet semi-gradient off-policy TD diverges from :data:`W0`.
"""

from __future__ import annotations

import numpy as np

from rl_basics.envs.model_env import TabularModelEnv

N_STATES, DASHED, SOLID = 7, 0, 1
FEATURES = np.zeros((N_STATES, 8))
FEATURES[np.arange(6), np.arange(6)] = 2.0
FEATURES[:6, 7] = 1.0
FEATURES[6, 6], FEATURES[6, 7] = 1.0, 2.0
BEHAVIOUR = np.tile([6 / 7, 1 / 7], (N_STATES, 1))
TARGET = np.tile([0.0, 1.0], (N_STATES, 1))
W0 = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 10.0, 1.0])
"""The book's initial weights (Figure 11.2)."""


class BairdEnv(TabularModelEnv):
    """The seven-state MDP of Baird's counterexample; episodes start in a uniformly random state and never end."""

    def __init__(self, render_mode: str | None = None):
        P = {s: {DASHED: [(1 / 6, upper, 0.0, False) for upper in range(6)],
                 SOLID: [(1.0, 6, 0.0, False)]} for s in range(N_STATES)}
        super().__init__(P, np.full(N_STATES, 1 / N_STATES), n_actions=2, render_mode=render_mode)

    def _render_text(self) -> str:
        return f"state {self.s + 1} of Baird's 7 ({'lower' if self.s == 6 else 'upper'})\n"
