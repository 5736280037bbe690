"""The maximization-bias MDP of Sutton & Barto, Example 6.7 (Figure 6.5).

Two non-terminal states. Every episode starts in ``A``:

- ``A``, action ``RIGHT`` (1): terminate with reward 0;
- ``A``, action ``LEFT`` (0): move to ``B`` with reward 0;
- ``B``, any of ``n_actions_b`` actions (10 by default): terminate with a reward drawn
  from N(-0.1, 1).

So going left is worse on average (-0.1), but the maximum of many noisy estimates of
B's action values is positive early on, and Q-learning prefers left.

Observations: 0 = A, 1 = B, 2 = terminal. The action space is ``Discrete(n_actions_b)``
(at least 2). In A only actions 0 and 1 exist: as in gymnasium's Taxi, the valid
actions come in ``info["action_mask"]`` (and ``env.unwrapped.action_mask(state)``),
and an invalid action in A is a no-op (stay in A, reward 0). The tabular methods of
``rl_basics.td`` read the mask, so epsilon-greedy in A picks between the two real
actions and explores left with probability epsilon / 2 (5% for epsilon = 0.1).

The model ``P`` holds the *expected* reward of B's actions (-0.1): exact for dynamic
programming, which only needs expectations; the noise is described by
``reward_std`` (``(n_states, n_actions)``, 1.0 for B's actions), which the vectorised
simulator ``rl_basics.lanes.ModelLanes`` uses to reproduce the env's reward distribution.
"""

from __future__ import annotations

import numpy as np

from rl_basics.envs.model_env import TabularModelEnv, absorbing

STATE_A, STATE_B, TERMINAL = 0, 1, 2
LEFT, RIGHT = 0, 1


class MaximizationBiasEnv(TabularModelEnv):
    """Example 6.7's MDP: A --left--> B --any of n_actions_b--> end with N(mean_b, std_b) reward."""

    def __init__(self, n_actions_b: int = 10, mean_b: float = -0.1, std_b: float = 1.0,
                 render_mode: str | None = None):
        if not isinstance(n_actions_b, (int, np.integer)) or n_actions_b < 2:
            raise ValueError(f"n_actions_b must be an integer >= 2, got {n_actions_b!r}")
        if not std_b >= 0:
            raise ValueError(f"std_b must be >= 0, got {std_b!r}")
        n = int(n_actions_b)
        self.mean_b, self.std_b = float(mean_b), float(std_b)
        P = {
            STATE_A: {a: [(1.0, STATE_A, 0.0, False)] for a in range(n)},  # invalid in A: no-op
            STATE_B: {a: [(1.0, TERMINAL, self.mean_b, True)] for a in range(n)},
            TERMINAL: absorbing(TERMINAL, n),
        }
        P[STATE_A][LEFT] = [(1.0, STATE_B, 0.0, False)]
        P[STATE_A][RIGHT] = [(1.0, TERMINAL, 0.0, True)]
        self._mask = np.ones((3, n), dtype=np.int8)
        self._mask[STATE_A, 2:] = 0
        self.reward_std = np.zeros((3, n))
        self.reward_std[STATE_B] = self.std_b
        super().__init__(P, np.array([1.0, 0.0, 0.0]), n_actions=n, render_mode=render_mode)

    def action_mask(self, state: int) -> np.ndarray:
        """``(n_actions,)`` int8: 1 for the actions that exist in ``state`` (a fresh array)."""
        return self._mask[int(state)].copy()

    def _info(self, prob: float) -> dict:
        return {"prob": float(prob), "action_mask": self.action_mask(self.s)}

    def step(self, action):
        was_b = self.s == STATE_B
        obs, reward, terminated, truncated, info = super().step(action)
        if was_b:  # the model holds the mean; the env draws the noisy reward
            reward = float(self.np_random.normal(self.mean_b, self.std_b))
        return obs, reward, terminated, truncated, info

    def _render_text(self) -> str:
        return {STATE_A: "end <-[A]-> B", STATE_B: "A -> [B] => end", TERMINAL: "[end]"}[self.s] + "\n"
