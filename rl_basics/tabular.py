"""Shared machinery of the tabular methods (``rl_basics.mc`` and ``rl_basics.td``).

- **Validation**: ``check_alpha``, ``check_gamma``, ``check_positive_int`` raise a
  ``ValueError`` that names the argument; :class:`TabularSpec` rejects envs whose
  observation or action space is not tabular (a ``Box`` observation, say).
- **States**: a ``Discrete`` observation is its own index; a ``Tuple`` of ``Discrete``
  spaces (Blackjack's ``(player sum, dealer card, usable ace)``) is flattened with
  ``np.ravel_multi_index``. Tables are stored flat ``(n_states, ...)`` and returned in
  the observation's shape (``(32, 11, 2, n_actions)`` for Blackjack).
- **Lanes**: every algorithm runs on *lanes*, independent episode streams stepped
  together with numpy arrays. A lane is one independent run of an algorithm (TD
  methods, constant-alpha MC) or one of many episodes simulated in parallel for
  the same run (sample-average MC). The same algorithm code drives

  * :class:`GymLanes`: the real gymnasium env(s), one per lane (the default with one
    run: the teaching path, the env you passed is stepped), and
  * :class:`ModelLanes`: a vectorised simulator sampled from the env's own model
    ``env.unwrapped.P`` (plus ``reward_std`` where rewards are noisy), for averages
    over hundreds or thousands of runs;
  * ``rl_basics.blackjack.BlackjackLanes``: a numpy Blackjack faithful to
    ``Blackjack-v1(sab=True)``.

  Each lane of a simulator draws its randomness from its own stream, so a lane's
  trajectory depends on its seed and its actions only, not on how many lanes run or
  in which order they are stepped: the same seed gives the same result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy.special import ndtri

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


def check_gamma(gamma: float) -> float:
    """A discount factor in [0, 1]."""
    try:
        g = float(gamma)
    except (TypeError, ValueError):
        raise ValueError(f"gamma must be a number in [0, 1], got {gamma!r}") from None
    if not 0.0 <= g <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    return g


def check_positive_int(name: str, value) -> int:
    """A positive integer (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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


# ---------------------------------------------------------------- lanes


class LaneStreams:
    """One random stream per lane: ``draw(idx)`` gives each lane in ``idx`` its next uniform(s).

    Streams come from ``SeedSequence(seed).spawn(n_lanes)`` and are buffered in blocks,
    so a lane's numbers do not depend on which other lanes draw at the same time.
    """

    def __init__(self, n_lanes: int, seed: int, width: int = 1, block: int = 256):
        self.width, self.block = width, block
        self._gens = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(n_lanes)]
        self._buf = np.stack([g.random((block, width)) for g in self._gens])
        self._pos = np.zeros(n_lanes, dtype=np.int64)

    def draw(self, idx: np.ndarray) -> np.ndarray:
        """``(len(idx), width)`` uniforms in [0, 1)."""
        for lane in idx[self._pos[idx] >= self.block]:
            self._buf[lane] = self._gens[lane].random((self.block, self.width))
            self._pos[lane] = 0
        u = self._buf[idx, self._pos[idx]]
        self._pos[idx] += 1
        return u


class Lanes:
    """Interface of the lane simulators (all indices are numpy int arrays of lane numbers).

    ``reset(idx)`` starts a new episode in each lane of ``idx`` and returns the flat start
    states; ``reset_to(idx, states)`` starts them in the given states instead (exploring
    starts); ``step(idx, actions)`` returns ``(next_states, rewards, terminated, truncated)``.
    """

    spec: TabularSpec
    n_lanes: int

    def reset(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset_to(self, idx: np.ndarray, states: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def step(self, idx: np.ndarray, actions: np.ndarray):
        raise NotImplementedError


class GymLanes(Lanes):
    """Steps real gymnasium envs, one per lane; lane ``i`` is first reset with ``seed + i``."""

    def __init__(self, envs: list[gym.Env], seed: int, spec: TabularSpec | None = None):
        self.envs = list(envs)
        self.n_lanes = len(self.envs)
        self.spec = spec or TabularSpec.from_env(self.envs[0])
        self._seed = seed
        self._seeded = np.zeros(self.n_lanes, dtype=bool)

    def _reset_env(self, lane: int):
        env = self.envs[lane]
        obs, _ = env.reset(seed=None if self._seeded[lane] else self._seed + int(lane))
        self._seeded[lane] = True
        return env, obs

    def reset(self, idx):
        return np.array([self.spec.encode(self._reset_env(i)[1]) for i in idx], dtype=np.int64)

    def reset_to(self, idx, states):
        out = []
        for i, s in zip(idx, states):
            env, _ = self._reset_env(i)
            out.append(self.spec.encode(set_env_state(env, self.spec.decode(s))))
        return np.array(out, dtype=np.int64)

    def step(self, idx, actions):
        out = []
        for i, a in zip(idx.tolist(), np.asarray(actions).tolist()):
            obs, r, term, trunc, _ = self.envs[i].step(a)
            out.append((self.spec.encode(obs), r, term, trunc))
        s2, r, term, trunc = zip(*out)
        return (np.array(s2, dtype=np.int64), np.array(r, dtype=float), np.array(term, dtype=bool),
                np.array(trunc, dtype=bool))


_SIMULATORS: dict[type, tuple[Callable[[gym.Env, int, int], Lanes], Callable[[gym.Env, object], object]]] = {}
"""Env classes with their own numpy simulator and state setter (see :func:`register_simulator`)."""


def register_simulator(env_class: type, make: Callable[[gym.Env, int, int], Lanes],
                       set_state: Callable[[gym.Env, object], object]) -> None:
    """Teach :func:`make_lanes` and :func:`set_env_state` an env whose state is not ``unwrapped.s``.

    ``make(env, n_lanes, seed)`` returns its vectorised simulator; ``set_state(env, obs)`` puts a
    freshly reset env into the state ``obs``. ``rl_basics.blackjack`` registers Blackjack this way
    (importing ``rl_basics`` does it), so this module never imports the simulators built on it.
    """
    _SIMULATORS[env_class] = (make, set_state)


def _registered(env: gym.Env):
    return next((entry for cls, entry in _SIMULATORS.items() if isinstance(env.unwrapped, cls)), None)


def set_env_state(env: gym.Env, obs):
    """Put ``env`` (just reset) into the state with observation ``obs`` and return that observation.

    Works for envs that keep their state in ``unwrapped.s`` (gymnasium's toy-text envs and
    the rl_basics envs) and for registered ones such as Blackjack (``rl_basics.blackjack.set_state``).
    """
    u = env.unwrapped
    registered = _registered(env)
    if registered is not None:
        return registered[1](env, obs)
    if hasattr(u, "s") and isinstance(env.observation_space, spaces.Discrete):
        u.s = int(obs)
        return int(obs)
    raise ValueError(f"env: cannot set the state of {u!r} for exploring starts "
                     "(it has no `s` attribute); pass an env whose state can be set")


class ModelLanes(Lanes):
    """A vectorised simulator of an env with a known model ``env.unwrapped.P``.

    Samples exactly the distribution ``P`` describes (and ``env.unwrapped.reward_std``
    Gaussian reward noise where present), starts from ``env.unwrapped.initial_state_distrib``,
    and truncates at ``env.spec.max_episode_steps`` like gymnasium's ``TimeLimit``.
    """

    def __init__(self, env: gym.Env, n_lanes: int, seed: int):
        u = env.unwrapped
        P = getattr(u, "P", None)
        if not isinstance(P, dict):
            raise ValueError(f"env: {u!r} has no model `unwrapped.P`; use simulator='env' to step it directly")
        self.spec = TabularSpec.from_env(env)
        if len(self.spec.state_shape) != 1:
            raise ValueError("env: ModelLanes needs a Discrete observation space")
        S, A = self.spec.n_states, self.spec.n_actions
        K = max(len(P[s][a]) for s in range(S) for a in range(A))
        self._cdf = np.ones((S, A, K))
        self._next = np.zeros((S, A, K), dtype=np.int64)
        self._reward = np.zeros((S, A, K))
        self._term = np.zeros((S, A, K), dtype=bool)
        for s in range(S):
            for a in range(A):
                outcomes = P[s][a]
                probs = np.array([o[0] for o in outcomes], dtype=float)
                self._cdf[s, a, :len(outcomes)] = np.cumsum(probs) / probs.sum()
                for k, (_, s2, r, t) in enumerate(outcomes):
                    self._next[s, a, k], self._reward[s, a, k], self._term[s, a, k] = s2, r, t
        start = getattr(u, "initial_state_distrib", None)
        if start is None:
            raise ValueError(f"env: {u!r} has no `initial_state_distrib`; ModelLanes cannot start episodes")
        self._start_cdf = np.cumsum(np.asarray(start, dtype=float))
        self._start_cdf /= self._start_cdf[-1]
        std = getattr(u, "reward_std", None)
        self._reward_std = None if std is None or not np.any(std) else np.asarray(std, dtype=float)
        self._max_steps = env.spec.max_episode_steps if env.spec is not None else None
        self.n_lanes = n_lanes
        self._streams = LaneStreams(n_lanes, seed, width=2)
        self.s = np.zeros(n_lanes, dtype=np.int64)
        self._t = np.zeros(n_lanes, dtype=np.int64)

    def reset(self, idx):
        u = self._streams.draw(idx)[:, 0]
        self.s[idx] = np.minimum(np.searchsorted(self._start_cdf, u, side="right"), len(self._start_cdf) - 1)
        self._t[idx] = 0
        return self.s[idx].copy()

    def reset_to(self, idx, states):
        self._streams.draw(idx)  # consume the start draw, as reset() does
        self.s[idx] = states
        self._t[idx] = 0
        return self.s[idx].copy()

    def step(self, idx, actions):
        u = self._streams.draw(idx)
        s, a = self.s[idx], np.asarray(actions, dtype=np.int64)
        k = np.minimum((u[:, :1] >= self._cdf[s, a]).sum(axis=1), self._cdf.shape[2] - 1)
        s2, r, term = self._next[s, a, k], self._reward[s, a, k].copy(), self._term[s, a, k]
        if self._reward_std is not None:
            r += self._reward_std[s, a] * ndtri(np.clip(u[:, 1], 1e-300, None))
        self.s[idx] = s2
        self._t[idx] += 1
        trunc = np.zeros(len(idx), dtype=bool) if self._max_steps is None else (self._t[idx] >= self._max_steps) & ~term
        return s2.copy(), r, term.copy(), trunc


def make_lanes(env: gym.Env, n_lanes: int, seed: int, simulator: str | None) -> Lanes:
    """The lanes an algorithm runs on.

    ``simulator``: ``"env"`` steps gymnasium envs (the given env for lane 0, copies made
    from its spec for further lanes); ``"vector"`` uses the numpy simulator of the same
    env (``BlackjackLanes`` for Blackjack, ``ModelLanes`` for envs with a model ``P``);
    ``None`` picks ``"env"`` for a single lane and ``"vector"`` otherwise.
    """
    if not isinstance(env, gym.Env):
        raise ValueError(f"env must be a gymnasium.Env, got {type(env).__name__}")
    spec = TabularSpec.from_env(env)  # validates the spaces first
    if simulator is None:
        simulator = "env" if n_lanes == 1 else "vector"
    if simulator == "env":
        envs = [env]
        if n_lanes > 1:
            if env.spec is None:
                raise ValueError("env: several lanes with simulator='env' need an env made with gym.make (a spec)")
            envs += [gym.make(env.spec) for _ in range(n_lanes - 1)]
        return GymLanes(envs, seed, spec)
    if simulator == "vector":
        registered = _registered(env)
        if registered is not None:
            return registered[0](env, n_lanes, seed)
        return ModelLanes(env, n_lanes, seed)
    raise ValueError(f"simulator must be 'env', 'vector' or None, got {simulator!r}")


class EpisodeLoop:
    """Bookkeeping for lanes that each run ``n_episodes`` consecutive episodes.

    ``start()`` resets every lane; ``step(idx, actions)`` steps the lanes ``idx`` and
    accumulates their online (undiscounted) returns; ``end_episodes(idx)`` records the
    finished episodes of lanes ``idx`` and restarts those with episodes left, returning
    ``(restarted_lanes, their_start_states)``. ``active`` lists the lanes still running.

    Per-episode statistics (``(n_lanes, n_episodes)`` arrays): ``returns`` (sum of rewards),
    ``lengths`` (steps), ``end_steps`` (the lane's total step count when the episode ended,
    for "episodes completed vs time steps" plots).
    """

    def __init__(self, lanes: Lanes, n_episodes: int):
        self.lanes, self.n_episodes = lanes, n_episodes
        L = lanes.n_lanes
        self.returns = np.zeros((L, n_episodes))
        self.lengths = np.zeros((L, n_episodes), dtype=np.int64)
        self.end_steps = np.zeros((L, n_episodes), dtype=np.int64)
        self.episode = np.zeros(L, dtype=np.int64)  # index of the current episode per lane
        self._ret = np.zeros(L)
        self._len = np.zeros(L, dtype=np.int64)
        self._steps = np.zeros(L, dtype=np.int64)
        self.active = np.arange(L)

    def start(self) -> np.ndarray:
        return self.lanes.reset(self.active)

    def step(self, idx, actions):
        s2, r, term, trunc = self.lanes.step(idx, actions)
        self._ret[idx] += r
        self._len[idx] += 1
        self._steps[idx] += 1
        return s2, r, term, trunc

    def end_episodes(self, idx):
        k = self.episode[idx]
        self.returns[idx, k] = self._ret[idx]
        self.lengths[idx, k] = self._len[idx]
        self.end_steps[idx, k] = self._steps[idx]
        self._ret[idx] = 0.0
        self._len[idx] = 0
        self.episode[idx] += 1
        self.active = np.flatnonzero(self.episode < self.n_episodes)
        restart = idx[self.episode[idx] < self.n_episodes]
        return restart, self.lanes.reset(restart)


@dataclass
class Episodes:
    """A batch of complete episodes, one per lane, padded to the longest.

    ``states``, ``actions``: ``(n_lanes, T)`` int (``S_t``, ``A_t``); ``rewards``: ``(n_lanes, T)``
    (``R_{t+1}``); ``lengths``: ``(n_lanes,)``; ``valid``: ``(n_lanes, T)`` bool, ``t < length``.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    lengths: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return np.arange(self.states.shape[1]) < self.lengths[:, None]

    def returns(self, gamma: float) -> np.ndarray:
        """``G_t`` for every step, ``(n_lanes, T)`` (0 past the end)."""
        G = np.zeros_like(self.rewards)
        acc = np.zeros(self.rewards.shape[0])
        for t in range(self.rewards.shape[1] - 1, -1, -1):
            acc = self.rewards[:, t] + gamma * acc
            G[:, t] = acc
        return np.where(self.valid, G, 0.0)

    def first_visits(self) -> np.ndarray:
        """``(n_lanes, T)`` bool: the step is the first visit to its state in its episode."""
        first = self.valid.copy()
        for t in range(1, self.states.shape[1]):
            seen = (self.states[:, :t] == self.states[:, t:t + 1]) & self.valid[:, :t]
            first[:, t] &= ~seen.any(axis=1)
        return first

    def first_pair_visits(self) -> np.ndarray:
        """``(n_lanes, T)`` bool: the step is the first visit to its state-action pair."""
        first = self.valid.copy()
        for t in range(1, self.states.shape[1]):
            seen = ((self.states[:, :t] == self.states[:, t:t + 1]) & (self.actions[:, :t] == self.actions[:, t:t + 1])
                    & self.valid[:, :t])
            first[:, t] &= ~seen.any(axis=1)
        return first


def rollout(lanes: Lanes, choose_actions, max_steps: int | None = None, start_states: np.ndarray | None = None,
            first_actions: np.ndarray | None = None, n: int | None = None) -> Episodes:
    """Run one complete episode in each of the first ``n`` lanes (all lanes by default).

    Args:
        choose_actions: ``(lane_idx, states) -> actions`` for the lanes still running.
        max_steps: stop (and raise) if an episode runs longer: a deterministic policy can
            loop forever in a grid world.
        start_states, first_actions: exploring starts: flat start state and first action per lane.
    """
    L = lanes.n_lanes if n is None else n
    run = np.arange(L)
    s = lanes.reset(run) if start_states is None else lanes.reset_to(run, np.asarray(start_states))
    cap = 16
    states, actions = np.zeros((L, cap), dtype=np.int64), np.zeros((L, cap), dtype=np.int64)
    rewards = np.zeros((L, cap))
    lengths = np.zeros(L, dtype=np.int64)
    t = 0
    while run.size:
        if max_steps is not None and t >= max_steps:
            raise RuntimeError(f"an episode ran past max_steps={max_steps}; the policy may never terminate")
        if t == cap:  # grow the buffers
            states, actions, rewards = (np.concatenate([x, np.zeros_like(x)], axis=1)
                                        for x in (states, actions, rewards))
            cap *= 2
        a = first_actions[run] if (t == 0 and first_actions is not None) else choose_actions(run, s)
        s2, r, term, trunc = lanes.step(run, a)
        states[run, t], actions[run, t], rewards[run, t] = s, a, r
        lengths[run] += 1
        going = ~(term | trunc)
        run, s = run[going], s2[going]
        t += 1
    return Episodes(states[:, :t], actions[:, :t], rewards[:, :t], lengths)
