"""Sutton & Barto's 4x4 gridworld (Example 4.1) as a gymnasium environment.

::

    T  1  2  3
    4  5  6  7
    8  9 10 11
   12 13 14  T

States are numbered row-major; 0 and 15 are terminal. Every step costs -1 (undiscounted,
episodic), actions are 0=up, 1=right, 2=down, 3=left, and a move off the grid leaves the
state unchanged. The model is exposed as ``env.unwrapped.P`` in gymnasium's convention, so
:mod:`rl_basics.dp` solves it like FrozenLake.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

# (row, column) change of each action: 0=up, 1=right, 2=down, 3=left.
_MOVES = {0: (-1, 0), 1: (0, 1), 2: (1, 0), 3: (0, -1)}


class GridWorld4x4Env(gym.Env):
    """The 4x4 gridworld of Sutton & Barto, Example 4.1 (reward -1 per step until a corner is reached).

    ``reset`` starts in a uniformly random non-terminal state, or in ``options["start_state"]``.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}
    shape = (4, 4)
    terminal_states = (0, 15)

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        n_states = self.shape[0] * self.shape[1]
        self.observation_space = gym.spaces.Discrete(n_states)
        self.action_space = gym.spaces.Discrete(len(_MOVES))
        self.P = {s: {a: [self._outcome(s, a)] for a in _MOVES} for s in range(n_states)}
        self._state = 1

    def _outcome(self, state: int, action: int) -> tuple[float, int, float, bool]:
        """The single (prob, next_state, reward, terminated) outcome of ``action`` in ``state``."""
        if state in self.terminal_states:
            return 1.0, state, 0.0, True
        rows, cols = self.shape
        r, c = divmod(state, cols)
        dr, dc = _MOVES[action]
        r2, c2 = r + dr, c + dc
        next_state = r2 * cols + c2 if 0 <= r2 < rows and 0 <= c2 < cols else state
        return 1.0, next_state, -1.0, next_state in self.terminal_states

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict]:
        super().reset(seed=seed)
        start = (options or {}).get("start_state")
        if start is None:
            starts = [s for s in range(self.observation_space.n) if s not in self.terminal_states]
            start = int(self.np_random.choice(starts))
        elif not self.observation_space.contains(start):
            raise ValueError(
                f"options['start_state'] must be a state in 0..{self.observation_space.n - 1}, got {start!r}"
            )
        self._state = int(start)
        return self._state, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict]:
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 (up), 1 (right), 2 (down) or 3 (left), got {action!r}")
        _, next_state, reward, terminated = self.P[self._state][int(action)][0]
        self._state = next_state
        return next_state, reward, terminated, False, {}

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        rows, cols = self.shape
        cells = ["T" if s in self.terminal_states else "." for s in range(rows * cols)]
        cells[self._state] = "x"
        return "\n".join(" ".join(cells[r * cols:(r + 1) * cols]) for r in range(rows)) + "\n"
