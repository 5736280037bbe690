"""Mountain Car (Sutton & Barto, Example 10.1) as numpy lanes: many independent cars stepped together.

The dynamics are gymnasium's ``MountainCar-v0`` (which are the book's), computed the same way::

    velocity <- clip(velocity + 0.001 * (action - 1) - 0.0025 * cos(3 * position), -0.07, 0.07)
    position <- clip(position + velocity, -1.2, 0.6)         (velocity <- 0 on hitting the left wall)

reward -1 per step; the episode terminates once ``position >= 0.5`` (moving forward); starts are uniform in
``[-0.6, -0.4)`` at rest. Actions: 0 full throttle reverse, 1 zero throttle, 2 full throttle forward.

One difference is deliberate: gymnasium's ``MountainCar-v0`` truncates every episode at 200 steps,
but the book's task has no time limit, and its first episodes take thousands of steps. The lanes
have no limit unless ``max_episode_steps`` is given. ``tests/test_dqn.py`` checks the lanes step
for step against gymnasium's ``MountainCarEnv``.

:class:`MountainCarLanes` has the lane interface of :mod:`rl_basics.lanes` (``reset(idx)``,
``step(idx, actions)`` over arrays of lane numbers), so :class:`rl_basics.lanes.EpisodeLoop`
keeps the books of its episodes; each lane draws its start states from its own random stream.
"""

from __future__ import annotations

import numpy as np

from rl_basics.lanes import LaneStreams

MIN_POSITION, MAX_POSITION, MAX_SPEED, GOAL_POSITION = -1.2, 0.6, 0.07, 0.5
FORCE, GRAVITY = 0.001, 0.0025
_THROTTLE = (np.arange(3) - 1) * FORCE  # (action - 1) * force, looked up
# the box (position, velocity) the book's tile coding covers: no state beyond the goal is ever acted in
LOW, HIGH = np.array([MIN_POSITION, -MAX_SPEED]), np.array([GOAL_POSITION, MAX_SPEED])


class MountainCarLanes:
    """``n_lanes`` Mountain Car tasks. States are ``(n, 2)`` float64 arrays ``(position, velocity)``; the
    current ones are in ``position`` and ``velocity`` ``(n_lanes,)``.

    Args:
        n_lanes: how many independent cars.
        seed: lane ``i``'s start states come from its own stream of ``SeedSequence(seed)``.
        max_episode_steps: truncate an episode after this many steps (``None``: never, as in the book).
    """

    def __init__(self, n_lanes: int, seed: int = 0, max_episode_steps: int | None = None):
        if not (isinstance(n_lanes, (int, np.integer)) and n_lanes >= 1):
            raise ValueError(f"n_lanes must be an integer >= 1, got {n_lanes!r}")
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps!r}")
        self.n_lanes = int(n_lanes)
        self.n_actions = 3
        self.max_episode_steps = max_episode_steps
        self._streams = LaneStreams(self.n_lanes, seed)
        self.position, self.velocity = np.zeros(self.n_lanes), np.zeros(self.n_lanes)
        self._t = np.zeros(self.n_lanes, dtype=np.int64)

    def reset(self, idx: np.ndarray) -> np.ndarray:
        """Start new episodes in lanes ``idx``; returns their states ``(len(idx), 2)``."""
        self.position[idx] = -0.6 + 0.2 * self._streams.draw(idx)[:, 0]
        self.velocity[idx] = 0.0
        self._t[idx] = 0
        return np.stack([self.position[idx], self.velocity[idx]], axis=1)

    def step(self, idx: np.ndarray, actions: np.ndarray):
        """Apply ``actions`` (0, 1, 2) in lanes ``idx``: ``(next_states, rewards, terminated, truncated)``.

        The floating-point operations are gymnasium's, in its order, so the numbers agree to the last bit.
        """
        actions = np.asarray(actions)
        if actions.shape != (len(idx),):
            raise ValueError(f"actions must hold one action (0, 1 or 2) per lane in idx ({len(idx)}), got {actions!r}")
        position = self.position[idx]
        velocity = self.velocity[idx] + (_THROTTLE[actions] + np.cos(3 * position) * (-GRAVITY))
        velocity = np.minimum(np.maximum(velocity, -MAX_SPEED), MAX_SPEED)
        position = np.minimum(np.maximum(position + velocity, MIN_POSITION), MAX_POSITION)
        velocity[(position == MIN_POSITION) & (velocity < 0)] = 0.0  # the left wall stops the car
        self.position[idx], self.velocity[idx] = position, velocity
        terminated = (position >= GOAL_POSITION) & (velocity >= 0.0)
        if self.max_episode_steps is None:
            truncated = np.zeros(len(idx), dtype=bool)
        else:
            self._t[idx] += 1
            truncated = (self._t[idx] >= self.max_episode_steps) & ~terminated
        return np.stack([position, velocity], axis=1), np.full(len(idx), -1.0), terminated, truncated
