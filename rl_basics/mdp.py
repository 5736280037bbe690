"""Tabular Markov decision processes in gymnasium's ``P[s][a]`` convention, as numpy tensors.

Gymnasium's toy-text environments (FrozenLake, CliffWalking, Taxi) and the course's own
grid worlds expose their model as ``env.unwrapped.P``::

    P[s][a] = [(prob, next_state, reward, terminated), ...]

one tuple per possible outcome of taking action ``a`` in state ``s``. :class:`TabularModel`
turns that dictionary into dense arrays once, so dynamic programming (:mod:`rl_basics.dp`)
is a handful of vectorised numpy operations:

- ``transitions[s, a, s']``  the probability of landing in ``s'``              shape ``(S, A, S)``
- ``rewards[s, a]``          the expected immediate reward                     shape ``(S, A)``
- ``terminations[s, a, s']`` the part of that probability that ends the episode shape ``(S, A, S)``
- ``continuation``           ``transitions - terminations``: the transitions to bootstrap from
- ``action_mask[s, a]``      whether ``a`` is available in ``s``                shape ``(S, A)``

A ``terminated=True`` transition ends the episode: its return is the reward alone, so the
value of the state it lands in is never added (``continuation`` leaves it out). A state that
lists only some actions (the gambler's problem: stakes up to ``min(s, goal - s)``) gets
``action_mask`` False for the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

PROB_ATOL = 1e-6
"""How far from 1 the outcome probabilities of a state-action pair may sum (float round-off)."""


@dataclass
class TabularModel:
    """A finite MDP as dense arrays (states ``0..S-1``, actions ``0..A-1``).

    Build one from a ``P`` dictionary (:meth:`from_P`), from a gymnasium env that exposes
    ``env.unwrapped.P`` (:meth:`from_env`), or from arrays directly.
    """

    transitions: np.ndarray
    """``(S, A, S)`` ``P(s' | s, a)``; each available action's row sums to 1, an unavailable action's to 0."""
    rewards: np.ndarray
    """``(S, A)`` expected immediate reward ``r(s, a) = sum_{s', r} p(s', r | s, a) r``."""
    terminations: np.ndarray | None = None
    """``(S, A, S)`` probability of landing in ``s'`` through a ``terminated=True`` transition
    (at most ``transitions``); ``None`` means no transition terminates (a continuing task)."""
    action_mask: np.ndarray | None = None
    """``(S, A)`` bool, True where the action is available; ``None`` means every action everywhere."""
    continuation: np.ndarray = field(init=False, repr=False)
    """``(S, A, S)`` ``transitions - terminations``: the mass a Bellman backup bootstraps from."""

    def __post_init__(self) -> None:
        self.transitions = np.asarray(self.transitions, dtype=float)
        if self.transitions.ndim != 3 or self.transitions.shape[0] != self.transitions.shape[2]:
            raise ValueError(f"transitions must have shape (S, A, S), got {self.transitions.shape}")
        n_states, n_actions, _ = self.transitions.shape
        self.rewards = np.asarray(self.rewards, dtype=float)
        if self.rewards.shape != (n_states, n_actions):
            raise ValueError(f"rewards must have shape (S, A) = {(n_states, n_actions)}, got {self.rewards.shape}")
        if self.terminations is None:
            self.terminations = np.zeros_like(self.transitions)
        self.terminations = np.asarray(self.terminations, dtype=float)
        if self.terminations.shape != self.transitions.shape:
            raise ValueError(
                f"terminations must have the shape of transitions {self.transitions.shape}, "
                f"got {self.terminations.shape}"
            )
        if self.action_mask is None:
            self.action_mask = np.ones((n_states, n_actions), dtype=bool)
        self.action_mask = np.asarray(self.action_mask, dtype=bool)
        if self.action_mask.shape != (n_states, n_actions):
            raise ValueError(
                f"action_mask must have shape (S, A) = {(n_states, n_actions)}, got {self.action_mask.shape}"
            )
        if not self.action_mask.any(axis=1).all():
            empty = np.flatnonzero(~self.action_mask.any(axis=1)).tolist()
            raise ValueError(f"states {empty} have no available action; give a terminal state a self-loop action")
        if (self.transitions < 0).any() or not np.isfinite(self.transitions).all():
            raise ValueError("transition probabilities must be finite and non-negative")
        if not np.isfinite(self.rewards).all():
            raise ValueError("rewards must be finite")
        if (self.terminations < -PROB_ATOL).any() or (self.terminations > self.transitions + PROB_ATOL).any():
            raise ValueError("terminations must lie between 0 and transitions (they are the terminating part of it)")
        totals = self.transitions.sum(axis=2)
        wrong = np.abs(totals - self.action_mask) > PROB_ATOL
        if wrong.any():
            s, a = np.argwhere(wrong)[0]
            raise ValueError(
                f"transition probabilities of state {s}, action {a} sum to {totals[s, a]:.6g}; they must sum to 1 "
                f"for an available action (and 0 for an unavailable one); {int(wrong.sum())} (state, action) "
                "pairs are wrong"
            )
        self.continuation = np.clip(self.transitions - self.terminations, 0.0, None)

    def __repr__(self) -> str:
        return (f"TabularModel(n_states={self.n_states}, n_actions={self.n_actions}, "
                f"terminal_states={self.terminal_states.tolist()})")

    @property
    def n_states(self) -> int:
        """Number of states ``S``."""
        return self.transitions.shape[0]

    @property
    def n_actions(self) -> int:
        """Number of actions ``A`` (some may be unavailable in some states, see ``action_mask``)."""
        return self.transitions.shape[1]

    @property
    def terminal_states(self) -> np.ndarray:
        """Indices of the absorbing terminal states: every available action terminates and stays put.

        This is how gymnasium's toy-text envs write a terminal state: ``P[s][a] = [(1.0, s, 0, True)]``.
        """
        stays = np.diagonal(self.terminations, axis1=0, axis2=2).T  # (S, A): terminations[s, a, s]
        absorbing = np.where(self.action_mask, stays > 1 - PROB_ATOL, True).all(axis=1)
        return np.flatnonzero(absorbing)

    @classmethod
    def from_P(cls, P: Mapping | Sequence, n_actions: int | None = None) -> TabularModel:
        """Build the arrays from ``P[s][a] = [(prob, next_state, reward, terminated), ...]``.

        Args:
            P: a dict (or list) over states ``0..S-1`` of dicts (or lists) over actions. A state
                may list only the actions available in it; the others are masked out.
            n_actions: the size of the action space; defaults to the largest action listed plus one.

        Raises:
            ValueError: missing states, malformed outcome tuples, next states out of range, or
                probabilities that do not sum to 1.
        """
        states = _items(P, "P")
        n_states = len(states)
        if n_states == 0:
            raise ValueError("P is empty; it needs one entry per state")
        if sorted(states) != list(range(n_states)):
            raise ValueError(f"P must be indexed by the states 0..{n_states - 1}; got keys {sorted(states)[:10]}...")
        actions = {s: _items(states[s], f"P[{s}]") for s in range(n_states)}
        for s, acts in actions.items():
            bad = [a for a in acts if not isinstance(a, (int, np.integer)) or a < 0]
            if bad:
                raise ValueError(f"P[{s}] has action keys {bad}; actions must be integers 0..A-1")
        listed = max((max(acts) for acts in actions.values() if acts), default=-1) + 1
        n_actions = listed if n_actions is None else int(n_actions)
        if listed > n_actions:
            raise ValueError(f"P lists action {listed - 1} but n_actions is {n_actions}")
        transitions = np.zeros((n_states, n_actions, n_states))
        terminations = np.zeros_like(transitions)
        rewards = np.zeros((n_states, n_actions))
        action_mask = np.zeros((n_states, n_actions), dtype=bool)
        for s, acts in actions.items():
            for a, outcomes in acts.items():
                action_mask[s, a] = True
                for outcome in outcomes:
                    if len(outcome) != 4:
                        raise ValueError(
                            f"P[{s}][{a}] holds {outcome!r}; "
                            "each outcome must be (prob, next_state, reward, terminated)"
                        )
                    prob, next_state, reward, terminated = outcome
                    if not 0 <= int(next_state) < n_states or int(next_state) != next_state:
                        raise ValueError(f"P[{s}][{a}] leads to state {next_state!r}, outside 0..{n_states - 1}")
                    if prob < 0:
                        raise ValueError(f"P[{s}][{a}] has a negative probability {prob}")
                    transitions[s, a, int(next_state)] += prob
                    rewards[s, a] += prob * reward
                    if terminated:
                        terminations[s, a, int(next_state)] += prob
        return cls(transitions, rewards, terminations, action_mask)

    @classmethod
    def from_env(cls, env: gym.Env) -> TabularModel:
        """Build the model of a gymnasium env that exposes ``env.unwrapped.P`` (FrozenLake, CliffWalking, ...).

        Raises:
            ValueError: the observation or action space is not ``Discrete`` (states and
                actions must be numbered ``0..n-1``), or the env has no model ``P``.
        """
        for name in ("observation_space", "action_space"):
            space = getattr(env, name, None)
            if not isinstance(space, gym.spaces.Discrete) or space.start != 0:
                raise ValueError(
                    f"{env} has {name} {space}; tabular dynamic programming needs a Discrete space numbered from 0. "
                    "For continuous or vector observations use function approximation (rl_basics.agents)."
                )
        P = getattr(env.unwrapped, "P", None)
        if P is None:
            raise ValueError(
                f"{env} exposes no tabular model (env.unwrapped.P is missing). Dynamic programming needs "
                "P[s][a] = [(prob, next_state, reward, terminated), ...]: write it as a dict and pass it to "
                "TabularModel.from_P, or learn from samples instead (rl_basics.mc, rl_basics.td)."
            )
        model = cls.from_P(P, n_actions=int(env.action_space.n))
        if model.n_states != env.observation_space.n:
            raise ValueError(
                f"{env}: P has {model.n_states} states but the observation space has {env.observation_space.n}; "
                "tabular DP needs the observation to be the state (an aliased or partial observation is not)"
            )
        return model


def as_model(mdp: TabularModel | gym.Env | Mapping | Sequence) -> TabularModel:
    """Return ``mdp`` as a :class:`TabularModel`.

    A model is returned as is, an env is read through ``env.unwrapped.P`` (:meth:`TabularModel.from_env`),
    a ``P`` dict (or list) through :meth:`TabularModel.from_P`.
    """
    if isinstance(mdp, TabularModel):
        return mdp
    if isinstance(mdp, gym.Env):
        return TabularModel.from_env(mdp)
    if isinstance(mdp, str):
        raise TypeError(f"got the string {mdp!r}; pass an environment (gym.make({mdp!r})), a P dict or a TabularModel")
    if isinstance(mdp, (Mapping, Sequence)):
        return TabularModel.from_P(mdp)
    raise TypeError(
        f"expected a TabularModel, a gymnasium env exposing unwrapped.P, or a P dict, got {type(mdp).__name__}"
    )


def _items(container: Any, name: str) -> dict[int, Any]:
    """``container`` (a dict or a list) as a dict from index to entry."""
    if isinstance(container, Mapping):
        return dict(container)
    if isinstance(container, Sequence) and not isinstance(container, str):
        return dict(enumerate(container))
    raise ValueError(f"{name} must be a dict or a list, got {type(container).__name__}")
