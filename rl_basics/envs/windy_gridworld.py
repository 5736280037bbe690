"""The windy gridworld of Sutton & Barto, Example 6.5 (and the king's-moves variant of Exercise 6.9).

A 7 x 10 grid; states are numbered row-major (``state = row * 10 + col``, row 0 at
the top). Start (3, 0), goal (3, 7). A crosswind pushes the agent up by the strength
of the column it moves *from*: ``WIND = 0 0 0 1 1 1 2 2 1 0``. Moves and wind are
clipped at the edges. Reward -1 on every step until the goal is reached (gamma = 1,
undiscounted). The shortest path takes 15 steps (value iteration confirms it).

Actions: 0 = up, 1 = right, 2 = down, 3 = left (``rl_basics.plotting.COURSE_GRID_ARROWS``).
With ``king_moves=True`` four diagonals follow: 4 = up-right, 5 = down-right,
6 = down-left, 7 = up-left.
"""

from __future__ import annotations

import numpy as np

from rl_basics.envs.model_env import TabularModelEnv, absorbing

ROWS, COLS = 7, 10
WIND = (0, 0, 0, 1, 1, 1, 2, 2, 1, 0)
START = (3, 0)
GOAL = (3, 7)
# (d_row, d_col) per action; row 0 is the top, so "up" is d_row = -1.
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))
KING_MOVES = MOVES + ((-1, 1), (1, 1), (1, -1), (-1, -1))


class WindyGridworldEnv(TabularModelEnv):
    """Windy gridworld with 4 moves (or 8 with ``king_moves=True``); deterministic, -1 per step."""

    shape = (ROWS, COLS)

    def __init__(self, king_moves: bool = False, render_mode: str | None = None):
        self.king_moves = bool(king_moves)
        moves = KING_MOVES if self.king_moves else MOVES
        self.start_state = START[0] * COLS + START[1]
        self.goal_state = GOAL[0] * COLS + GOAL[1]
        P = {}
        for s in range(ROWS * COLS):
            if s == self.goal_state:
                P[s] = absorbing(s, len(moves))
                continue
            row, col = divmod(s, COLS)
            P[s] = {}
            for a, (d_row, d_col) in enumerate(moves):
                new_row = min(max(row + d_row - WIND[col], 0), ROWS - 1)
                new_col = min(max(col + d_col, 0), COLS - 1)
                s2 = new_row * COLS + new_col
                P[s][a] = [(1.0, s2, -1.0, s2 == self.goal_state)]
        start = np.zeros(ROWS * COLS)
        start[self.start_state] = 1.0
        super().__init__(P, start, n_actions=len(moves), render_mode=render_mode)

    def _render_text(self) -> str:
        lines = []
        for r in range(ROWS):
            cells = []
            for c in range(COLS):
                s = r * COLS + c
                mark = {self.s: "x", self.goal_state: "G"}.get(s, "S" if s == self.start_state else ".")
                cells.append(mark)
            lines.append(" ".join(cells))
        lines.append(" ".join(str(w) for w in WIND))
        return "\n".join(lines) + "\n"
