"""A small base class for tabular environments whose model is known.

:class:`TabularModelEnv` keeps the model in gymnasium's toy-text convention,
``P[s][a] = [(prob, next_state, reward, terminated), ...]`` (what
``env.unwrapped.P`` holds for FrozenLake and CliffWalking), and samples ``reset``
and ``step`` from it, so the simulated dynamics and the model that dynamic
programming reads can never disagree. The current state is ``self.s`` and the
start distribution ``self.initial_state_distrib``, as in gymnasium's toy-text envs.

Terminal states are absorbing: every action leads back to the state with reward 0
and ``terminated=True`` (FrozenLake's convention for holes and the goal).
"""

from __future__ import annotations

import numpy as np
import gymnasium as gym
from gymnasium import spaces
from gymnasium.envs.toy_text.utils import categorical_sample

Transition = tuple[float, int, float, bool]


class TabularModelEnv(gym.Env):
    """``reset``/``step`` sampled from ``P``; subclasses build ``P`` and may override ``step``.

    Args:
        P: ``P[s][a]`` lists of ``(prob, next_state, reward, terminated)``.
        initial_state_distrib: ``(n_states,)`` probabilities of the start state.
        render_mode: ``None`` or ``"ansi"`` (``render()`` returns a text picture).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(self, P: dict[int, dict[int, list[Transition]]], initial_state_distrib: np.ndarray,
                 n_actions: int, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.P = P
        self.initial_state_distrib = np.asarray(initial_state_distrib, dtype=float)
        self.observation_space = spaces.Discrete(len(P))
        self.action_space = spaces.Discrete(n_actions)
        self.render_mode = render_mode
        self.s = int(np.argmax(self.initial_state_distrib))
        self.lastaction: int | None = None

    def _info(self, prob: float) -> dict:
        return {"prob": float(prob)}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.s = int(categorical_sample(self.initial_state_distrib, self.np_random))
        self.lastaction = None
        return self.s, self._info(1.0)

    def step(self, action):
        if not self.action_space.contains(action):
            raise ValueError(f"action must be in {self.action_space}, got {action!r}")
        transitions = self.P[self.s][int(action)]
        i = categorical_sample([t[0] for t in transitions], self.np_random)
        prob, next_state, reward, terminated = transitions[i]
        self.s = int(next_state)
        self.lastaction = int(action)
        return self.s, float(reward), bool(terminated), False, self._info(prob)

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; make the env with render_mode='ansi'.")
            return None
        return self._render_text()

    def _render_text(self) -> str:  # pragma: no cover - overridden
        return f"state {self.s}\n"


def absorbing(state: int, n_actions: int) -> dict[int, list[Transition]]:
    """The ``P[state]`` entry of an absorbing terminal state."""
    return {a: [(1.0, state, 0.0, True)] for a in range(n_actions)}
