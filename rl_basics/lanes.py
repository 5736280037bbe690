"""Lanes: the simulators the tabular methods run on, and the loops that drive them.

A *lane* is an independent stream of episodes; a simulator steps many lanes together with
numpy arrays. A lane is one independent run of an algorithm (``rl_basics.td``, constant-alpha
Monte Carlo) or one of many episodes simulated in parallel for the same run (sample-average
Monte Carlo, ``rl_basics.mc``). The same algorithm code drives

- :class:`GymLanes`: the real gymnasium env(s), one per lane (the default with one run: the
  teaching path, the env you passed is stepped);
- :class:`ModelLanes`: a vectorised simulator sampled from the env's own model
  ``env.unwrapped.P`` (plus ``reward_std`` where rewards are noisy), for averages over
  hundreds or thousands of runs;
- :class:`BlackjackLanes`: a numpy Blackjack faithful to ``Blackjack-v1(sab=True)``, card for
  card, so Figure 5.1's 500,000 episodes take seconds instead of a minute (the rules and the
  exact values are in ``rl_basics.blackjack``).

:func:`make_lanes` picks the simulator for an env. Each lane of a simulator draws its
randomness from its own stream (:class:`LaneStreams`), so a lane's trajectory depends on its
seed and its actions only, not on how many lanes run or in which order they are stepped: the
same seed gives the same result.

Driving them: :class:`EpisodeLoop` keeps the books of lanes that each run many consecutive
episodes (the TD methods); :func:`rollout` plays one complete episode per lane and returns
them as :class:`Episodes` (the Monte-Carlo methods).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.toy_text.blackjack import BlackjackEnv
from scipy.special import ndtri

from rl_basics.blackjack import DECK, HIT, SHAPE, hand_for, set_state
from rl_basics.tabular import TabularSpec


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


def set_env_state(env: gym.Env, obs):
    """Put ``env`` (just reset) into the state with observation ``obs`` and return that observation.

    Works for envs that keep their state in ``unwrapped.s`` (gymnasium's toy-text envs and
    the rl_basics envs) and for Blackjack (``rl_basics.blackjack.set_state``).
    """
    u = env.unwrapped
    if isinstance(u, BlackjackEnv):
        return set_state(env, obs)
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


def blackjack_spec() -> TabularSpec:
    """The tabular view of ``Blackjack-v1``: ``Tuple(Discrete(32), Discrete(11), Discrete(2))``, 2 actions."""
    n = int(np.prod(SHAPE))
    return TabularSpec(SHAPE, 2, np.ones((n, 2), dtype=bool), np.zeros(n, dtype=bool), np.zeros(3, dtype=int))


def _sum_and_usable(hard: np.ndarray, ace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    usable = ace & (hard + 10 <= 21)
    return np.where(usable, hard + 10, hard), usable


class BlackjackLanes(Lanes):
    """Many independent ``Blackjack-v1(sab=True)`` games stepped together.

    Each lane draws its cards from its own random stream (:class:`LaneStreams`);
    ``card_source(idx) -> cards`` replaces that (the card-for-card test against gymnasium
    uses it). The deal follows gymnasium's order: dealer's two cards, then the player's two.
    """

    def __init__(self, n_lanes: int, seed: int, env: gym.Env | None = None, card_source=None):
        if env is not None:
            u = env.unwrapped
            if not getattr(u, "sab", False):
                raise ValueError("env: the numpy Blackjack simulator follows the book's rules; "
                                 "make the env with sab=True")
        self.spec = blackjack_spec()
        self.n_lanes = n_lanes
        self._streams = LaneStreams(n_lanes, seed)
        self._card_source = card_source
        z = np.zeros(n_lanes, dtype=np.int64)
        self.p_hard, self.p_cards, self.d_shown, self.d_hidden = z.copy(), z.copy(), z.copy(), z.copy()
        self.p_ace = np.zeros(n_lanes, dtype=bool)

    def _draw(self, idx: np.ndarray) -> np.ndarray:
        if self._card_source is not None:
            return np.asarray(self._card_source(idx), dtype=np.int64)
        return DECK[np.minimum((self._streams.draw(idx)[:, 0] * 13).astype(np.int64), 12)]

    def observations(self, idx: np.ndarray) -> np.ndarray:
        """Flat state index of each lane's current observation."""
        total, usable = _sum_and_usable(self.p_hard[idx], self.p_ace[idx])
        return np.ravel_multi_index((total, self.d_shown[idx], usable.astype(np.int64)), SHAPE)

    def reset(self, idx):
        self.d_shown[idx] = self._draw(idx)
        self.d_hidden[idx] = self._draw(idx)
        c1, c2 = self._draw(idx), self._draw(idx)
        self.p_hard[idx] = c1 + c2
        self.p_ace[idx] = (c1 == 1) | (c2 == 1)
        self.p_cards[idx] = 2
        return self.observations(idx)

    def reset_to(self, idx, states):
        total, shown, usable = np.unravel_index(np.asarray(states, dtype=np.int64), SHAPE)
        for t, u in zip(total, usable):
            hand_for(int(t), bool(u))  # validates
        self.d_shown[idx] = shown
        self.d_hidden[idx] = self._draw(idx)
        usable = usable.astype(bool)
        self.p_hard[idx] = np.where(usable, total - 10, total)
        self.p_ace[idx] = usable
        self.p_cards[idx] = np.array([len(hand_for(int(t), bool(u))) for t, u in zip(total, usable)], dtype=np.int64)
        return self.observations(idx)

    def step(self, idx, actions):
        actions = np.asarray(actions)
        n = len(idx)
        reward = np.zeros(n)
        terminated = np.ones(n, dtype=bool)
        hit = actions == HIT
        h = idx[hit]
        if h.size:
            card = self._draw(h)
            self.p_hard[h] += card
            self.p_ace[h] |= card == 1
            self.p_cards[h] += 1
            bust = self.p_hard[h] > 21
            reward[hit] = np.where(bust, -1.0, 0.0)
            terminated[hit] = bust
        st = idx[~hit]
        if st.size:
            reward[~hit] = self._dealer_plays(st)
        return self.observations(idx), reward, terminated, np.zeros(n, dtype=bool)

    def _dealer_plays(self, idx: np.ndarray) -> np.ndarray:
        shown, hidden = self.d_shown[idx], self.d_hidden[idx]
        d_hard = shown + hidden
        d_ace = (shown == 1) | (hidden == 1)
        d_natural = d_ace & (d_hard == 11)
        while True:
            d_sum, _ = _sum_and_usable(d_hard, d_ace)
            draw = np.flatnonzero(d_sum < 17)
            if not draw.size:
                break
            card = self._draw(idx[draw])
            d_hard[draw] += card
            d_ace[draw] |= card == 1
        d_sum, _ = _sum_and_usable(d_hard, d_ace)
        p_sum, _ = _sum_and_usable(self.p_hard[idx], self.p_ace[idx])
        p_score = np.where(p_sum > 21, 0, p_sum)
        d_score = np.where(d_sum > 21, 0, d_sum)
        reward = np.sign(p_score - d_score).astype(float)
        p_natural = (self.p_cards[idx] == 2) & (p_sum == 21)
        return np.where(p_natural & ~d_natural, 1.0, reward)


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
        if isinstance(env.unwrapped, BlackjackEnv):
            return BlackjackLanes(n_lanes, seed, env=env)
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
