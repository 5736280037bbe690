"""Temporal-difference learning (Sutton & Barto, chapters 6 and 7).

**The updates**, one function per method, each the line of the book's pseudocode:
:func:`td0_update`, :func:`n_step_td_update`, :func:`sarsa_update`, :func:`q_learning_update`,
:func:`expected_sarsa_update` (with :func:`expected_sarsa_target`), :func:`double_q_learning_update`.
They change the table in place, for one run (a table ``Q[s, a]`` and one transition) or for a
batch of runs at once (tables ``Q[run, s, a]`` and one transition per run, as arrays).

**The algorithms** run those updates on episodes:

- prediction: :func:`td0_prediction`, :func:`n_step_td_prediction`;
- control: :func:`sarsa`, :func:`expected_sarsa`, :func:`q_learning`, :func:`double_q_learning`
  (all through :func:`td_control`), with a constant step size or a Robbins–Monro schedule of each
  pair's visits (:func:`robbins_monro_step_size`).

Every algorithm takes an env, hyperparameters and a seed, and returns the learned
table(s) with per-episode statistics. ``n_runs`` independent runs are computed at
once along a leading *run axis* (one lane per run, see ``rl_basics.lanes``): with
``n_runs=1`` (the default) the env you pass is stepped; with more runs a vectorised
simulator of the same env is used (``simulator="vector"``), which is how the course
averages 100 or 10,000 runs in seconds. It is the same code either way: the updates
act on the runs that are still going, ``i``, with tables indexed ``[run, state, action]``.

Tables come back in the observation's shape with the run axis first, squeezed away
when ``n_runs == 1``: ``Q[s, a]`` for one run, ``Q[run, s, a]`` for many.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from rl_basics.policies import (as_schedule, epsilon_greedy_action, epsilon_greedy_probs, greedy_action,
                                sample_actions, uniform_policy)
from rl_basics.lanes import EpisodeLoop, make_lanes
from rl_basics.tabular import TabularSpec, check_alpha, check_alphas, check_gamma, check_positive_int


# ============================================================================ the updates, as in the book
# Each function is one line of Sutton & Barto's pseudocode. For one run, pass a table (``V[s]`` or
# ``Q[s, a]``) and one transition (numbers). For a batch, pass tables with a leading run axis
# (``V[run, s]``, ``Q[run, s, a]``) and one transition per run (arrays); ``runs`` says which run
# each transition belongs to (default: every run, in order). Either way the body is the book's line:
# ``_per_run`` (below the updates) lets ``Q[s, a]`` stand for ``Q[runs, s, a]``. The table is changed in
# place and returned.


def td0_update(V, s, r, s_next, terminated, alpha, gamma, runs=None):
    """TD(0) (section 6.1, equation 6.2)::

        V(S) <- V(S) + alpha [R + gamma V(S') - V(S)]

    ``V(S')`` of a terminal state is 0: after a ``terminated`` transition the target is ``R``
    alone (a *truncated* episode still bootstraps: its future is unknown, not zero).

    Shapes: ``V`` ``(n_states,)`` with numbers for one run; ``(n_runs, n_states)`` with ``s``,
    ``r``, ``s_next``, ``terminated`` (and ``alpha``, or a number) of shape ``(n,)`` for a batch.
    """
    table, V = V, _per_run(V, runs, 1)
    target = r + gamma * (1 - terminated) * V[s_next]
    V[s] += alpha * (target - V[s])
    return table


def n_step_td_update(V, s, G, alpha, runs=None):
    """n-step TD (section 7.1, equation 7.2), and constant-alpha Monte Carlo (section 6.1, equation 6.1)::

        V(S_tau) <- V(S_tau) + alpha [G - V(S_tau)]

    ``G`` is the n-step return ``G_{tau:tau+n} = R_{tau+1} + ... + gamma^{n-1} R_{tau+n} + gamma^n V(S_{tau+n})``
    (:func:`n_step_td_prediction` computes it); with n at least the episode length it is the full
    return ``G_t``, and this is constant-alpha MC (``rl_basics.mc.constant_alpha_mc_prediction``).
    Shapes as in :func:`td0_update`.
    """
    table, V = V, _per_run(V, runs, 1)
    V[s] += alpha * (G - V[s])
    return table


def sarsa_update(Q, s, a, r, s_next, a_next, terminated, alpha, gamma, runs=None):
    """SARSA (section 6.4), with ``A'`` the action the behaviour policy takes next::

        Q(S, A) <- Q(S, A) + alpha [R + gamma Q(S', A') - Q(S, A)]

    No bootstrapping after a ``terminated`` transition. Shapes: ``Q`` ``(n_states, n_actions)``
    with numbers for one run; ``(n_runs, n_states, n_actions)`` with ``(n,)`` arrays for a batch.
    """
    table, Q = Q, _per_run(Q, runs, 2)
    target = r + gamma * (1 - terminated) * Q[s_next, a_next]
    Q[s, a] += alpha * (target - Q[s, a])
    return table


def q_learning_update(Q, s, a, r, s_next, terminated, alpha, gamma, valid=None, runs=None):
    """Q-learning (section 6.5, equation 6.8)::

        Q(S, A) <- Q(S, A) + alpha [R + gamma max_a Q(S', a) - Q(S, A)]

    ``valid``: ``(n_states, n_actions)`` bool, the actions that exist in each state, the only ones
    the max runs over (``None``: all). Shapes as in :func:`sarsa_update`.
    """
    table, Q = Q, _per_run(Q, runs, 2)
    q_next = Q[s_next] if valid is None else np.where(valid[s_next], Q[s_next], -np.inf)
    target = r + gamma * (1 - terminated) * q_next.max(axis=-1)
    Q[s, a] += alpha * (target - Q[s, a])
    return table


def expected_sarsa_target(q_next, r, terminated, epsilon, gamma, valid_next=None):
    """The Expected SARSA target (section 6.6, equation 6.9), pi the epsilon-greedy policy of ``q_next``::

        R + gamma sum_a pi(a | S') Q(S', a)

    ``q_next``: ``Q(S', .)``, ``(n_actions,)`` or one row per transition ``(n, n_actions)``;
    ``epsilon`` a number or one per row; ``valid_next``: the actions that exist in ``S'`` (``q_next``'s
    shape; ``None``: all). Tied greedy actions share ``1 - epsilon``
    (``rl_basics.policies.epsilon_greedy_probs``).
    """
    pi = epsilon_greedy_probs(q_next, epsilon, valid_next)
    return r + gamma * (1 - terminated) * (pi * q_next).sum(axis=-1)


def expected_sarsa_update(Q, s, a, r, s_next, terminated, alpha, gamma, epsilon, valid=None, runs=None):
    """Expected SARSA (section 6.6), pi the epsilon-greedy policy of ``Q``::

        Q(S, A) <- Q(S, A) + alpha [R + gamma sum_a pi(a | S') Q(S', a) - Q(S, A)]

    ``valid`` as in :func:`q_learning_update`; shapes as in :func:`sarsa_update`.
    """
    table, Q = Q, _per_run(Q, runs, 2)
    target = expected_sarsa_target(Q[s_next], r, terminated, epsilon, gamma, None if valid is None else valid[s_next])
    Q[s, a] += alpha * (target - Q[s, a])
    return table


def double_q_learning_update(Q1, Q2, s, a, r, s_next, terminated, alpha, gamma, rng, valid=None, runs=None):
    """Double Q-learning (section 6.7): a fair coin per transition picks the table to update. Heads::

        Q1(S, A) <- Q1(S, A) + alpha [R + gamma Q2(S', argmax_a Q1(S', a)) - Q1(S, A)]

    tails: the same with Q1 and Q2 swapped. One table picks the action, the other evaluates it,
    which removes Q-learning's maximization bias. Ties in the argmax are broken at random (``rng``,
    which also flips the coins). Returns ``(Q1, Q2)``; ``valid`` as in :func:`q_learning_update`,
    shapes as in :func:`sarsa_update`.
    """
    heads = rng.random(np.shape(s)) < 0.5
    if runs is None and np.ndim(Q1) > 2:
        runs = np.arange(len(Q1))
    for Q_pick, Q_eval, side in ((Q1, Q2, heads), (Q2, Q1, ~heads)):  # heads: Q1 picks and learns
        S, A, R, S2, term, step = (np.broadcast_to(x, heads.shape)[side]
                                   for x in (s, a, r, s_next, terminated, alpha))
        j = None if runs is None else np.asarray(runs)[side]
        Q, Q_other = _per_run(Q_pick, j, 2), _per_run(Q_eval, j, 2)
        best = greedy_action(Q[S2], rng, None if valid is None else valid[S2])  # argmax_a Q1(S', a)
        target = R + gamma * (1 - term) * Q_other[S2, best]
        Q[S, A] += step * (target - Q[S, A])
    return Q1, Q2


# the run axis of the updates


class _RunTables:
    """Tables ``T[run, ...]`` seen through the runs of a batch of transitions: ``self[i] = T[runs, i]``."""

    def __init__(self, tables: np.ndarray, runs: np.ndarray):
        self.tables, self.runs = tables, runs

    def _index(self, index) -> tuple:
        return (self.runs, *(index if isinstance(index, tuple) else (index,)))

    def __getitem__(self, index):
        return self.tables[self._index(index)]

    def __setitem__(self, index, value):
        self.tables[self._index(index)] = value


def _per_run(table: np.ndarray, runs: np.ndarray | None, table_ndim: int):
    """``table`` itself for one run (``table.ndim == table_ndim``); for a batch (a leading run axis),
    a view that indexes each transition's own run: ``T[s, a]`` reads and writes ``table[runs, s, a]``."""
    if runs is None and np.ndim(table) == table_ndim:
        return table
    return _RunTables(table, np.arange(len(table)) if runs is None else np.asarray(runs))


# ============================================================================ the algorithms


@dataclass
class PredictionResult:
    """What a prediction method learned.

    Attributes:
        V: state values, ``(*state_shape)`` or ``(n_runs, *state_shape)``.
        history: ``V`` before the first episode and after each one,
            ``([n_runs,] n_episodes + 1, *state_shape)``.
        episode_returns, episode_lengths: ``([n_runs,] n_episodes)``.
    """

    V: np.ndarray
    history: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray


@dataclass
class ControlResult:
    """What a control method learned.

    Attributes:
        Q: action values ``([n_runs,] *state_shape, n_actions)``; for Double Q-learning
            the sum ``Q1 + Q2`` that its behaviour policy is greedy (epsilon-greedy) on.
        episode_returns: online sum of rewards of each episode, ``([n_runs,] n_episodes)``.
        episode_lengths: steps per episode.
        episode_end_steps: the run's total time-step count when each episode ended
            (Figure 6.3's x-axis: episodes completed vs time steps).
        first_actions: the first action of each episode (e.g. "left" from A in Example 6.7).
        tables: Double Q-learning's two tables ``(Q1, Q2)``; empty otherwise.
    """

    Q: np.ndarray
    episode_returns: np.ndarray
    episode_lengths: np.ndarray
    episode_end_steps: np.ndarray
    first_actions: np.ndarray
    tables: tuple[np.ndarray, ...] = field(default_factory=tuple)


def _squeeze(x: np.ndarray, n_runs: int) -> np.ndarray:
    return x[0] if n_runs == 1 else x


def _prediction_setup(env, n_episodes, alpha, gamma, policy, n_runs, seed, simulator):
    n_episodes = check_positive_int("n_episodes", n_episodes)
    n_runs = check_positive_int("n_runs", n_runs)
    alpha, gamma = check_alphas(alpha, n_runs), check_gamma(gamma)
    lanes = make_lanes(env, n_runs, seed, simulator)
    spec = lanes.spec
    pi = uniform_policy(spec.n_states, spec.n_actions, spec.valid) if policy is None else spec.flatten_policy(policy)
    return n_episodes, n_runs, alpha, gamma, lanes, spec, pi


def _prediction_result(spec: TabularSpec, V, history, loop, n_runs) -> PredictionResult:
    return PredictionResult(_squeeze(spec.unflatten(V), n_runs), _squeeze(spec.unflatten(history), n_runs),
                            _squeeze(loop.returns, n_runs), _squeeze(loop.lengths, n_runs))


def td0_prediction(env: gym.Env, n_episodes: int, alpha: float, gamma: float = 1.0, policy: np.ndarray | None = None,
                   v_init: float = 0.0, seed: int = 0, n_runs: int = 1, simulator: str | None = None
                   ) -> PredictionResult:
    """Tabular TD(0) evaluation of ``policy``: :func:`td0_update` after every step.

    Args:
        alpha: step size, or one per run (``(n_runs,)``) to sweep step sizes in one call.
        policy: ``(*state_shape, n_actions)`` action probabilities; ``None`` = uniform random.
        v_init: initial value of every non-terminal state (the model's terminal states start
            at 0; no state is ever bootstrapped from after a ``terminated`` transition).
    """
    n_episodes, n_runs, alpha, gamma, lanes, spec, pi = _prediction_setup(
        env, n_episodes, alpha, gamma, policy, n_runs, seed, simulator)
    rng = np.random.default_rng(seed)
    V = np.where(spec.terminal, 0.0, np.full((n_runs, spec.n_states), float(v_init)))
    history = np.empty((n_runs, n_episodes + 1, spec.n_states))
    history[:, 0] = V
    loop = EpisodeLoop(lanes, n_episodes)
    s = loop.start()
    while loop.active.size:
        i = loop.active
        a = sample_actions(pi[s[i]], rng)
        s2, r, term, trunc = loop.step(i, a)
        td0_update(V, s[i], r, s2, term, alpha[i], gamma, runs=i)
        s[i] = s2
        ended = i[term | trunc]
        history[ended, loop.episode[ended] + 1] = V[ended]
        restart, s0 = loop.end_episodes(ended)
        s[restart] = s0
    return _prediction_result(spec, V, history, loop, n_runs)


def n_step_td_prediction(env: gym.Env, n: int, n_episodes: int, alpha: float, gamma: float = 1.0,
                         policy: np.ndarray | None = None, v_init: float = 0.0, seed: int = 0, n_runs: int = 1,
                         simulator: str | None = None) -> PredictionResult:
    """n-step TD evaluation (Sutton & Barto, section 7.1): the link between TD(0) and Monte Carlo.

    :func:`n_step_td_update`, ``V(S_tau) <- V(S_tau) + alpha [G_{tau:tau+n} - V(S_tau)]``, with the n-step return
    ``G = R_{tau+1} + gamma R_{tau+2} + ... + gamma^{n-1} R_{tau+n} + gamma^n V(S_{tau+n})``
    (no bootstrap term when the episode ends first). ``n = 1`` is TD(0); ``n`` at least the
    episode length is constant-alpha every-visit Monte Carlo. The same lanes and seed
    give exactly the trajectories of :func:`td0_prediction` and
    ``rl_basics.mc.constant_alpha_mc_prediction``. ``alpha`` may hold one step size per run.
    Memory: ring buffers of shape ``(n_runs, n + 1)``; for MC-like behaviour an ``n`` a little
    above the longest episode is enough.
    """
    n = check_positive_int("n", n)
    n_episodes, n_runs, alpha, gamma, lanes, spec, pi = _prediction_setup(
        env, n_episodes, alpha, gamma, policy, n_runs, seed, simulator)
    rng = np.random.default_rng(seed)
    V = np.where(spec.terminal, 0.0, np.full((n_runs, spec.n_states), float(v_init)))
    history = np.empty((n_runs, n_episodes + 1, spec.n_states))
    history[:, 0] = V
    m = n + 1  # ring buffers hold S_t and R_t at index t mod (n + 1)
    S_buf = np.zeros((n_runs, m), dtype=np.int64)
    R_buf = np.zeros((n_runs, m))
    t = np.zeros(n_runs, dtype=np.int64)          # time step within the episode
    T = np.full(n_runs, np.iinfo(np.int64).max)   # episode length, once known
    cut = np.zeros(n_runs, dtype=bool)            # the episode was truncated, not terminated
    powers = gamma ** np.arange(n + 1)
    loop = EpisodeLoop(lanes, n_episodes)
    S_buf[:, 0] = loop.start()
    while loop.active.size:
        i = loop.active
        acting = i[t[i] < T[i]]
        if acting.size:
            s = S_buf[acting, t[acting] % m]
            s2, r, term, trunc = loop.step(acting, sample_actions(pi[s], rng))
            S_buf[acting, (t[acting] + 1) % m] = s2
            R_buf[acting, (t[acting] + 1) % m] = r
            T[acting[term | trunc]] = t[acting[term | trunc]] + 1
            cut[acting] = trunc & ~term
        flushing = i[t[i] >= T[i]]  # episode over: nothing happens until tau = 0, so skip ahead to it
        t[flushing] = np.maximum(t[flushing], n - 1)
        tau = t[i] - n + 1
        u = i[tau >= 0]
        if u.size:
            tau_u = t[u] - n + 1
            G = np.zeros(u.size)
            k_max = int(np.minimum(n, T[u] - tau_u).max())
            for k in range(1, k_max + 1):  # rewards R_{tau+1} .. R_{min(tau+n, T)}
                inside = tau_u + k <= T[u]
                G += np.where(inside, powers[k - 1] * R_buf[u, (tau_u + k) % m], 0.0)
            # bootstrap from S_{tau+n}; past the end only if a time limit cut the episode (from S_T)
            k_boot = np.minimum(n, T[u] - tau_u)
            boot = (tau_u + n < T[u]) | cut[u]
            G += np.where(boot, powers[k_boot] * V[u, S_buf[u, (tau_u + k_boot) % m]], 0.0)
            n_step_td_update(V, S_buf[u, tau_u % m], G, alpha[u], runs=u)
        t[i] += 1
        ended = u[(t[u] - n) == T[u] - 1] if u.size else u  # tau == T - 1 was just updated
        history[ended, loop.episode[ended] + 1] = V[ended]
        restart, s0 = loop.end_episodes(ended)
        S_buf[restart, 0] = s0
        t[restart] = 0
        T[restart] = np.iinfo(np.int64).max
        cut[restart] = False
    return _prediction_result(spec, V, history, loop, n_runs)


CONTROL_METHODS = ("sarsa", "expected_sarsa", "q_learning", "double_q_learning")

StepSize = Callable[[np.ndarray], np.ndarray]
"""A step-size schedule ``n -> alpha_n``: the step of the n-th update of a state-action pair (n = 1, 2, ...)."""


def robbins_monro_step_size(omega: float = 1.0) -> StepSize:
    """The step-size schedule ``alpha_n = 1 / n**omega`` for the n-th update of a pair (n = 1, 2, ...).

    The Robbins–Monro conditions ``sum_n alpha_n = inf`` (steps large enough to move any initial
    value all the way to the target) and ``sum_n alpha_n**2 < inf`` (steps small enough, eventually,
    to average the noise of the targets away) hold exactly for ``1/2 < omega <= 1``. ``omega = 1`` is
    the sample average ``1 / N(s, a)``; a smaller ``omega`` forgets early (stale) targets faster. A
    constant step size meets the first condition only: its estimates keep fluctuating forever.
    Pass the schedule as ``alpha`` to :func:`td_control`.

    The schedule maps an int array of visit counts ``n >= 1`` (any shape) to float steps in (0, 1].
    """
    try:
        omega = float(omega)
    except (TypeError, ValueError):
        raise ValueError(f"omega must be a number in (0.5, 1], got {omega!r}") from None
    if not 0.5 < omega <= 1.0:
        raise ValueError(f"omega must be in (0.5, 1] for the Robbins-Monro conditions (sum alpha_n = inf needs "
                         f"omega <= 1, sum alpha_n^2 < inf needs omega > 1/2), got {omega!r}")

    def step_size(n):
        n = np.asarray(n, dtype=float)
        if np.any(n < 1):
            raise ValueError(f"visit counts start at n = 1, got {n.min()!r}")
        return n ** -omega

    return step_size


def _step_sizes(alpha: float | StepSize, n_runs: int, n_states: int, n_actions: int):
    """``alpha`` as a function ``(runs, states, actions) -> steps`` of the transitions about to be learned from.

    A constant is checked (in (0, 1]) and returned for every transition; a schedule (a callable, e.g.
    :func:`robbins_monro_step_size`) is evaluated at each pair's visit count, which it first increments.
    """
    if not callable(alpha):
        constant = check_alpha(alpha)
        return lambda runs, s, a: constant
    visits = np.zeros((n_runs, n_states, n_actions), dtype=np.int64)

    def steps(runs, s, a):
        visits[runs, s, a] += 1  # one transition per run: the indices never repeat
        n = visits[runs, s, a]
        step = np.asarray(alpha(n), dtype=float)
        if step.size not in (1, n.size) or np.any(~(step > 0) | (step > 1)):
            raise ValueError("alpha: the step-size schedule must map visit counts n (an int array) to steps in "
                             f"(0, 1], one per count; got {step!r} for n = {n!r}")
        return np.broadcast_to(step.reshape(-1) if step.size > 1 else step.reshape(()), n.shape)

    return steps



def td_control(env: gym.Env, method: str, n_episodes: int, alpha: float | StepSize = 0.5, epsilon=0.1,
               gamma: float = 1.0, q_init: float = 0.0, seed: int = 0, n_runs: int = 1, simulator: str | None = None
               ) -> ControlResult:
    """One-step TD control with an epsilon-greedy behaviour policy; ``method`` picks the update:

    - ``"sarsa"``: :func:`sarsa_update`, target ``R + gamma Q(S', A')`` with ``A'`` the action
      actually taken next (on-policy);
    - ``"expected_sarsa"``: :func:`expected_sarsa_update`, target ``R + gamma sum_a pi(a|S') Q(S', a)``,
      pi the epsilon-greedy policy;
    - ``"q_learning"``: :func:`q_learning_update`, target ``R + gamma max_a Q(S', a)`` (off-policy:
      learns the greedy policy's values);
    - ``"double_q_learning"``: :func:`double_q_learning_update`: two tables; a coin picks the one to
      update, which chooses ``argmax_a Q1(S', a)`` while the other evaluates it (no maximization bias).

    Args:
        alpha: a constant step size in (0, 1], or a schedule ``n -> alpha_n`` of the number of times the
            pair (S, A) has been updated, this update included (:func:`robbins_monro_step_size`: with a
            GLIE ``epsilon`` schedule, SARSA then converges to q_*).
        epsilon: a constant in [0, 1] or a schedule ``k -> epsilon_k`` over episodes (see
            ``rl_basics.policies``; ``glie_schedule`` for GLIE).
        q_init: initial action value (terminal states keep 0 and are never bootstrapped from).
    Only the actions valid in a state (``env.unwrapped.action_mask``) are chosen or maximised over.
    """
    if method not in CONTROL_METHODS:
        raise ValueError(f"method must be one of {CONTROL_METHODS}, got {method!r}")
    n_episodes = check_positive_int("n_episodes", n_episodes)
    n_runs = check_positive_int("n_runs", n_runs)
    gamma = check_gamma(gamma)
    eps_fn = as_schedule(epsilon)
    lanes = make_lanes(env, n_runs, seed, simulator)
    spec = lanes.spec
    step_size = _step_sizes(alpha, n_runs, spec.n_states, spec.n_actions)
    valid = spec.valid
    rng = np.random.default_rng(seed)
    double = method == "double_q_learning"
    Q = np.full((n_runs, spec.n_states, spec.n_actions), float(q_init))
    Q2 = Q.copy() if double else None
    first_actions = np.full((n_runs, n_episodes), -1, dtype=np.int64)
    loop = EpisodeLoop(lanes, n_episodes)

    def behaviour(i, s):
        q = Q[i, s] if Q2 is None else Q[i, s] + Q2[i, s]
        return epsilon_greedy_action(q, eps_fn(loop.episode[i] + 1), rng, valid[s])

    s = loop.start()
    a = behaviour(np.arange(n_runs), s)
    first_actions[:, 0] = a
    while loop.active.size:
        i = loop.active
        si, ai = s[i], a[i]
        s2, r, term, trunc = loop.step(i, ai)
        alpha = step_size(i, si, ai)
        if method == "sarsa":
            a2 = behaviour(i, s2)  # A', chosen before the update, as in the book's algorithm
            sarsa_update(Q, si, ai, r, s2, a2, term, alpha, gamma, runs=i)
        elif method == "expected_sarsa":
            expected_sarsa_update(Q, si, ai, r, s2, term, alpha, gamma, eps_fn(loop.episode[i] + 1), valid, runs=i)
        elif method == "q_learning":
            q_learning_update(Q, si, ai, r, s2, term, alpha, gamma, valid, runs=i)
        else:
            double_q_learning_update(Q, Q2, si, ai, r, s2, term, alpha, gamma, rng, valid, runs=i)
        if method != "sarsa":
            a2 = behaviour(i, s2)  # chosen from the updated table
        s[i], a[i] = s2, a2
        ended = i[term | trunc]
        restart, s0 = loop.end_episodes(ended)
        if restart.size:
            s[restart] = s0
            a[restart] = behaviour(restart, s0)
            first_actions[restart, loop.episode[restart]] = a[restart]

    def out(table):
        return _squeeze(spec.unflatten(table, trailing=1), n_runs)

    return ControlResult(
        Q=out(Q if Q2 is None else Q + Q2), episode_returns=_squeeze(loop.returns, n_runs),
        episode_lengths=_squeeze(loop.lengths, n_runs), episode_end_steps=_squeeze(loop.end_steps, n_runs),
        first_actions=_squeeze(first_actions, n_runs), tables=() if Q2 is None else (out(Q), out(Q2)))


def sarsa(env: gym.Env, n_episodes: int, alpha: float | StepSize = 0.5, epsilon=0.1, gamma: float = 1.0,
          **kwargs) -> ControlResult:
    """SARSA (on-policy TD control). See :func:`td_control` for the arguments."""
    return td_control(env, "sarsa", n_episodes, alpha, epsilon, gamma, **kwargs)


def expected_sarsa(env: gym.Env, n_episodes: int, alpha: float | StepSize = 0.5, epsilon=0.1, gamma: float = 1.0,
                   **kwargs) -> ControlResult:
    """Expected SARSA. See :func:`td_control` for the arguments."""
    return td_control(env, "expected_sarsa", n_episodes, alpha, epsilon, gamma, **kwargs)


def q_learning(env: gym.Env, n_episodes: int, alpha: float | StepSize = 0.5, epsilon=0.1, gamma: float = 1.0,
               **kwargs) -> ControlResult:
    """Q-learning (off-policy TD control). See :func:`td_control` for the arguments."""
    return td_control(env, "q_learning", n_episodes, alpha, epsilon, gamma, **kwargs)


def double_q_learning(env: gym.Env, n_episodes: int, alpha: float | StepSize = 0.5, epsilon=0.1, gamma: float = 1.0,
                      **kwargs) -> ControlResult:
    """Double Q-learning (Sutton & Barto, section 6.7). See :func:`td_control` for the arguments."""
    return td_control(env, "double_q_learning", n_episodes, alpha, epsilon, gamma, **kwargs)


def greedy_path(env: gym.Env, Q: np.ndarray, max_steps: int = 1000, seed: int = 0) -> tuple[list, float, bool]:
    """Follow the greedy policy of ``Q`` (ties broken toward the lowest action) from a reset.

    Returns ``(observations, return, reached_terminal)``: the visited observations
    (start included), the sum of rewards, and whether a terminal state was reached
    within ``max_steps`` (a greedy policy can loop forever).
    """
    spec = TabularSpec.from_env(env)
    Qf = np.asarray(Q, dtype=float).reshape(spec.n_states, spec.n_actions)
    obs, _ = env.reset(seed=seed)
    path, total = [obs], 0.0
    for _ in range(max_steps):
        s = spec.encode(obs)
        q = np.where(spec.valid[s], Qf[s], -np.inf)
        obs, r, term, trunc, _ = env.step(int(np.argmax(q)))
        path.append(obs)
        total += r
        if term:
            return path, total, True
        if trunc:
            break
    return path, total, False
