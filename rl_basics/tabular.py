"""What the tabular methods (``rl_basics.mc``, ``rl_basics.td``) share: argument checks and the table layout.

- **Validation**: ``check_alpha``, ``check_gamma``, ``check_positive_int`` raise a
  ``ValueError`` that names the argument; :class:`TabularSpec` rejects envs whose
  observation or action space is not tabular (a ``Box`` observation, say).
- **States**: a ``Discrete`` observation is its own index; a ``Tuple`` of ``Discrete``
  spaces (Blackjack's ``(player sum, dealer card, usable ace)``) is flattened with
  ``np.ravel_multi_index``. Tables are stored flat ``(n_states, ...)`` and returned in
  the observation's shape (``(32, 11, 2, n_actions)`` for Blackjack).

The simulators the methods run on, *lanes*, and the loops that drive them are in
``rl_basics.lanes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from rl_basics.validation import check_gamma, check_positive_int  # noqa: F401  (re-exported: mc, td use them)

# ---------------------------------------------------------------- validation


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """A step size in (0, 1]."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1], got {alpha!r}") from None
    if not 0.0 < a <= 1.0:
        raise ValueError(f"{name} must be in (0, 1], got {alpha!r}")
    return a


def check_alphas(alpha, n_runs: int) -> np.ndarray:
    """One step size per run, ``(n_runs,)``: a scalar is repeated; an array must have that shape
    (a sweep over step sizes in one call: each run its own alpha)."""
    a = np.asarray(alpha, dtype=float) if not isinstance(alpha, (str, bytes)) else None
    if a is None or a.ndim > 1 or (a.ndim == 1 and a.shape != (n_runs,)):
        raise ValueError(f"alpha must be a number in (0, 1] or an array of shape (n_runs,) = ({n_runs},), "
                         f"got {alpha!r}")
    for x in np.atleast_1d(alpha):
        check_alpha(x)
    return np.broadcast_to(a, (n_runs,)).copy()


# ---------------------------------------------------------------- spaces and states


@dataclass
class TabularSpec:
    """How a tabular method sees an env: flat state indices, actions, valid actions.

    Attributes:
        state_shape: the observation's table shape, ``(n,)`` or e.g. ``(32, 11, 2)``.
        n_states: ``prod(state_shape)``.
        n_actions: size of the ``Discrete`` action space.
        valid: ``(n_states, n_actions)`` bool, from ``env.unwrapped.action_mask(s)`` when
            the env has one (as Taxi and MaximizationBias do), else all True.
        terminal: ``(n_states,)`` bool, the absorbing terminal states of the model
            ``env.unwrapped.P`` (every action loops back with ``terminated=True``); all False
            for an env without a model. Their values are never learned and stay 0.
    """

    state_shape: tuple[int, ...]
    n_actions: int
    valid: np.ndarray
    terminal: np.ndarray
    _starts: np.ndarray

    def __post_init__(self):
        self.n_states = int(np.prod(self.state_shape))
        self._start_list = [int(x) for x in self._starts]

    @classmethod
    def from_env(cls, env: gym.Env) -> TabularSpec:
        obs_space, act_space = env.observation_space, env.action_space
        if isinstance(obs_space, spaces.Discrete):
            shape, starts = (int(obs_space.n),), np.array([int(obs_space.start)])
        elif isinstance(obs_space, spaces.Tuple) and all(isinstance(s, spaces.Discrete) for s in obs_space.spaces):
            shape = tuple(int(s.n) for s in obs_space.spaces)
            starts = np.array([int(s.start) for s in obs_space.spaces])
        else:
            raise ValueError(
                f"env.observation_space must be Discrete or a Tuple of Discrete spaces for a tabular method, "
                f"got {obs_space}; discretise the observations (or use function approximation)")
        if not isinstance(act_space, spaces.Discrete):
            raise ValueError(f"env.action_space must be Discrete for a tabular method, got {act_space}")
        n_states, n_actions = int(np.prod(shape)), int(act_space.n)
        valid = np.ones((n_states, n_actions), dtype=bool)
        mask_fn = getattr(env.unwrapped, "action_mask", None)
        if callable(mask_fn) and len(shape) == 1:
            valid = np.array([np.asarray(mask_fn(s), dtype=bool) for s in range(n_states)])
            valid[~valid.any(axis=1)] = True  # a state with no valid action (never acted in) keeps all
        terminal = np.zeros(n_states, dtype=bool)
        P = getattr(env.unwrapped, "P", None)
        if isinstance(P, dict) and len(shape) == 1:
            terminal = np.array([all(t[1] == s and t[3] for a in range(n_actions) for t in P[s][a])
                                 for s in range(n_states)])
        return cls(shape, n_actions, valid, terminal, starts)

    def encode(self, obs) -> int:
        """Flat state index of one observation."""
        if len(self.state_shape) == 1:
            return int(obs) - self._start_list[0]
        index = 0
        for o, start, n in zip(obs, self._start_list, self.state_shape):
            i = int(o) - start
            if not 0 <= i < n:
                raise ValueError(f"observation {obs!r} is outside the observation space")
            index = index * n + i
        return index

    def decode(self, state: int):
        """The observation of a flat state index."""
        if len(self.state_shape) == 1:
            return int(state) + int(self._starts[0])
        return tuple(int(i) for i in np.asarray(np.unravel_index(int(state), self.state_shape)) + self._starts)

    def unflatten(self, table: np.ndarray, trailing: int = 0) -> np.ndarray:
        """Reshape a ``(..., n_states, *rest)`` table (``trailing = len(rest)``) to the observation's shape."""
        table = np.asarray(table)
        axis = table.ndim - 1 - trailing
        return table.reshape(table.shape[:axis] + self.state_shape + table.shape[axis + 1:])

    def flatten_policy(self, policy: np.ndarray, name: str = "policy") -> np.ndarray:
        """A ``(n_states, n_actions)`` probability table from ``(*state_shape, n_actions)`` or flat input."""
        p = np.asarray(policy, dtype=float)
        if p.shape not in ((self.n_states, self.n_actions), self.state_shape + (self.n_actions,)):
            raise ValueError(f"{name} must have shape {self.state_shape + (self.n_actions,)} "
                             f"(action probabilities per state), got {p.shape}")
        p = p.reshape(self.n_states, self.n_actions)
        if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0):
            raise ValueError(f"{name} rows must be probability distributions (non-negative, summing to 1)")
        return p
