"""The 1000-state random walk of Sutton & Barto, Example 9.1 (chapter 9's test bed for function approximation).

States ``1 .. 1000`` in a row; every episode starts in state 500. Each step jumps to one of the
100 states to the left or the 100 states to the right, all 200 equally likely. A jump past an
end terminates the episode there, so near an end the probability of the missing neighbours goes
to terminating: reward -1 at the left end, +1 at the right end, 0 for every other step. With
gamma = 1 the value of a state is the probability of leaving on the right minus that of leaving
on the left. Observations ``0`` and ``1001`` are the two terminal ends (as in
:class:`~rl_basics.envs.random_walk.RandomWalkEnv`).

The model ``P`` is exact, so dynamic programming gives the true values. :meth:`RandomWalk1000Env.simulate`
draws many episodes side by side with numpy (the same dynamics, a run axis for chapter 9's
many-episode experiments).
"""

from __future__ import annotations

import numpy as np

from rl_basics.envs.model_env import TabularModelEnv, absorbing


class RandomWalk1000Env(TabularModelEnv):
    """The random walk with jumps of up to ``max_jump`` states over ``n_states`` states, starting in the middle.

    ``n_states`` even (the book's 1000) starts in state ``n_states // 2`` (the book's 500).
    """

    def __init__(self, n_states: int = 1000, max_jump: int = 100, render_mode: str | None = None):
        if not isinstance(n_states, (int, np.integer)) or n_states < 2:
            raise ValueError(f"n_states must be an integer >= 2, got {n_states!r}")
        if not isinstance(max_jump, (int, np.integer)) or not 1 <= max_jump <= n_states:
            raise ValueError(f"max_jump must be an integer in [1, n_states], got {max_jump!r}")
        self.n_walk_states, self.max_jump = int(n_states), int(max_jump)
        last = n_states + 1
        P = {0: absorbing(0, 1), last: absorbing(last, 1)}
        p = 1.0 / (2 * max_jump)
        for s in range(1, last):
            outcomes = []
            left = sum(1 for j in range(1, max_jump + 1) if s - j < 1)  # jumps past the left end
            right = sum(1 for j in range(1, max_jump + 1) if s + j > n_states)
            if left:
                outcomes.append((left * p, 0, -1.0, True))
            outcomes += [(p, s2, 0.0, False) for s2 in range(max(1, s - max_jump), min(n_states, s + max_jump) + 1)
                         if s2 != s]
            if right:
                outcomes.append((right * p, last, 1.0, True))
            P[s] = {0: outcomes}
        start = np.zeros(n_states + 2)
        start[n_states // 2] = 1.0
        super().__init__(P, start, n_actions=1, render_mode=render_mode)

    def simulate(self, n_episodes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n_episodes`` episodes from the start state, simulated side by side with numpy.

        Returns ``(states, rewards)``: ``states (n_episodes, T)`` holds ``S_0, S_1, ...`` of each
        episode with its terminal end (0 or ``n_states + 1``) at ``S_T``, then ``-1`` as padding;
        ``rewards (n_episodes,)`` is each episode's final reward (-1 or +1), the only non-zero one.
        """
        n, last = self.n_walk_states, self.n_walk_states + 1
        position = np.full(n_episodes, n // 2, dtype=np.int64)
        columns = [position.astype(np.int16)]
        running = np.ones(n_episodes, dtype=bool)
        while running.any():
            jump = rng.integers(1, self.max_jump + 1, size=n_episodes) * rng.choice((-1, 1), size=n_episodes)
            position = np.where(running, np.clip(position + jump, 0, last), -1)
            running &= (position > 0) & (position < last)
            columns.append(position.astype(np.int16))
        states = np.stack(columns, axis=1)  # int16: small enough for 100,000 episodes at once
        ended = states[np.arange(n_episodes), (states >= 0).sum(axis=1) - 1]
        return states, np.where(ended == last, 1.0, -1.0)

    def _render_text(self) -> str:
        return f"state {self.s} of 1..{self.n_walk_states}\n"
