"""Value-function approximation with linear features (Sutton & Barto, chapters 9-11).

Prediction on the 1000-state random walk with state aggregation (section 9.3):
    :func:`state_aggregation`, :func:`gradient_mc_aggregation`, :func:`semi_gradient_td0_aggregation`,
    :func:`n_step_td_aggregation` (a sweep over n and alpha), and their exact asymptotes from the model:
    :func:`on_policy_distribution`, :func:`ve_minimiser` (where gradient Monte Carlo converges),
    :func:`td_fixed_point` (where semi-gradient TD converges).
Control on Mountain Car with tile coding (section 10.1):
    :func:`semi_gradient_sarsa` (episodic semi-gradient SARSA over many lanes at once), :func:`cost_to_go`.
Off-policy divergence on Baird's counterexample (section 11.2):
    :func:`off_policy_td`, :func:`expected_update`.

Linear approximation throughout: ``v(s, w) = x(s)^T w``, whose gradient is the feature vector
``x(s)``, so every semi-gradient update is ``w <- w + alpha * (target - x(s)^T w) * x(s)``. The
experiments average many independent runs at once on a leading run axis, as ``rl_basics.td`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rl_basics.lanes import EpisodeLoop
from rl_basics.mdp import as_model
from rl_basics.policies import epsilon_greedy_action, greedy_action
from rl_basics.tile_coding import TileCoder
from rl_basics.validation import check_gamma, check_positive_int

# ============================================================================ state aggregation


def state_aggregation(n_states: int, n_groups: int) -> np.ndarray:
    """The group of every observation ``0 .. n_states + 1`` of a random walk (terminal ends at 0 and ``n_states + 1``).

    States ``1 .. n_states`` fall into ``n_groups`` consecutive groups of equal size (the book's
    10 groups of 100); the two terminal ends get the extra index ``n_groups``, a group whose value
    is fixed at 0 (terminal states have no features).
    """
    n_states, n_groups = check_positive_int("n_states", n_states), check_positive_int("n_groups", n_groups)
    if n_states % n_groups:
        raise ValueError(f"n_groups ({n_groups}) must divide n_states ({n_states})")
    groups = np.full(n_states + 2, n_groups, dtype=np.int64)
    groups[1:-1] = np.arange(n_states) // (n_states // n_groups)
    return groups


def aggregation_features(groups: np.ndarray) -> np.ndarray:
    """One-hot features ``X (S, n_groups)`` of a grouping from :func:`state_aggregation` (terminal rows zero)."""
    n_groups = int(groups.max())
    return np.eye(n_groups + 1)[groups][:, :n_groups]


def on_policy_distribution(env: gym.Env) -> np.ndarray:
    """mu(s), the fraction of time spent in each state of an episodic task (Sutton & Barto, eq. 9.2-9.3).

    The expected number of visits ``eta`` solves ``eta(s) = h(s) + sum_s' eta(s') P(s | s')`` with ``h``
    the start distribution and ``P`` the non-terminating transitions under the env's (only) policy;
    ``mu = eta / sum(eta)``. For envs with one action (Markov reward processes such as the random walks).
    """
    model = as_model(env)
    if model.n_actions != 1:
        raise ValueError(f"on_policy_distribution needs a single-action env (a Markov reward process), "
                         f"got {model.n_actions} actions")
    start = np.asarray(env.unwrapped.initial_state_distrib, dtype=float)
    eta = np.linalg.solve(np.eye(model.n_states) - model.continuation[:, 0].T, start)
    return eta / eta.sum()


def ve_minimiser(features: np.ndarray, mu: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The weights minimising the value error ``VE(w) = sum_s mu(s) (v(s) - x(s)^T w)^2`` (weighted least squares).

    This is where gradient Monte Carlo converges (with step sizes decreasing appropriately): its
    target ``G_t`` is an unbiased sample of ``v(S_t)``. For state aggregation: each group's
    mu-weighted average of ``v``.
    """
    X, D = np.asarray(features, dtype=float), np.diag(mu)
    return np.linalg.solve(X.T @ D @ X, X.T @ D @ v)


def td_fixed_point(env: gym.Env, features: np.ndarray, mu: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """The TD fixed point ``w_TD = A^-1 b`` of linear semi-gradient TD(0) (Sutton & Barto, eq. 9.12).

    ``A = X^T D (X - gamma P X)`` and ``b = X^T D r`` with ``D = diag(mu)``, ``P`` the non-terminating
    transitions and ``r`` the expected reward of each state: the weights at which the expected TD
    update is zero. Its value error is at most ``1 / (1 - gamma)`` times the best possible (eq. 9.14);
    with gamma = 1 there is no such bound.
    """
    model = as_model(env)
    gamma = check_gamma(gamma)
    X, D = np.asarray(features, dtype=float), np.diag(mu)
    P, r = model.continuation[:, 0], model.rewards[:, 0]
    return np.linalg.solve(X.T @ D @ (X - gamma * P @ X), X.T @ D @ r)


@dataclass
class AggregationResult:
    """What a state-aggregation prediction run learned.

    Attributes:
        w: ``(n_runs, n_groups)`` the weights (one value per group) after the last episode.
        history: ``(n_runs, n_checkpoints + 1, n_groups)``: ``w`` at the start and after every
            ``record_every`` episodes.
        episodes: ``(n_checkpoints + 1,)`` the episode counts of ``history``.
    """

    w: np.ndarray
    history: np.ndarray
    episodes: np.ndarray


def _aggregation_runs(env, n_episodes, alpha, n_groups, n_runs, seed, record_every):
    walk = env.unwrapped
    n_episodes, n_runs = check_positive_int("n_episodes", n_episodes), check_positive_int("n_runs", n_runs)
    record_every = check_positive_int("record_every", record_every)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    groups = state_aggregation(walk.n_walk_states, n_groups)
    blocks = [min(record_every, n_episodes - start) for start in range(0, n_episodes, record_every)]
    return walk, groups, blocks, np.random.default_rng(seed)


def gradient_mc_aggregation(env: gym.Env, n_episodes: int, alpha: float, n_groups: int = 10, n_runs: int = 1,
                            seed: int = 0, record_every: int = 1000, progress: bool = True) -> AggregationResult:
    """Gradient Monte-Carlo prediction with state aggregation (Sutton & Barto, Example 9.1, Figure 9.1).

    After each episode, for every step ``t``: ``w_g <- w_g + alpha * (G_t - w_g)`` for the group ``g``
    of ``S_t``. On the random walk (gamma = 1, the only non-zero reward at the end) every ``G_t``
    of an episode is its final reward ``G``, so the ``k`` updates of a group within one episode
    combine exactly into ``w_g <- G + (1 - alpha)^k (w_g - G)``: one update per group and episode,
    the same numbers as the step-by-step loop (``tests/test_dqn.py`` checks it).

    Args:
        env: a :class:`~rl_basics.envs.random_walk_1000.RandomWalk1000Env` (the episodes are drawn
            with its vectorised ``simulate``).
        n_runs: independent runs, computed at once.
        record_every: store ``w`` every this many episodes (episodes are also simulated in blocks of this size).
        progress: show a progress bar over the episodes.
    """
    walk, groups, blocks, rng = _aggregation_runs(env, n_episodes, alpha, n_groups, n_runs, seed, record_every)
    w = np.zeros((n_runs, n_groups))
    history = [w.copy()]
    for block in _bar(blocks, progress, "gradient MC"):
        states, final_reward = walk.simulate(block * n_runs, rng)  # episode e of run r is row e * n_runs + r
        g = groups[np.maximum(states, 0)]
        counts = np.stack([((g == k) & (states >= 0)).sum(axis=1) for k in range(n_groups)], axis=1)
        keep = (1.0 - alpha) ** counts.reshape(block, n_runs, n_groups)  # (1 - alpha)^k per episode, run and group
        G = final_reward.reshape(block, n_runs, 1)
        for e in range(block):
            w = G[e] + keep[e] * (w - G[e])
        history.append(w.copy())
    return AggregationResult(w, np.stack(history, axis=1), _checkpoints(blocks))


def semi_gradient_td0_aggregation(env: gym.Env, n_episodes: int, alpha: float, n_groups: int = 10, n_runs: int = 1,
                                  seed: int = 0, record_every: int = 1000, progress: bool = True) -> AggregationResult:
    """Semi-gradient TD(0) prediction with state aggregation (Sutton & Barto, Figure 9.2, left).

    After every step: ``w_g <- w_g + alpha * (R + w_g' - w_g)`` with ``g`` the group of ``S_t`` and
    ``g'`` that of ``S_t+1`` (whose value is 0 when it is a terminal end; gamma = 1). A step that
    stays inside its group with reward 0 has TD error ``0 + w_g - w_g = 0``: it changes nothing.
    So only the steps that cross a group boundary or end the episode are replayed below, in
    order, which gives exactly the step-by-step result at about half the cost (``tests/test_dqn.py``
    checks it). Arguments as in :func:`gradient_mc_aggregation`.
    """
    walk, groups, blocks, rng = _aggregation_runs(env, n_episodes, alpha, n_groups, n_runs, seed, record_every)
    w = np.zeros((n_runs, n_groups + 1))  # the last column: the terminal group, always 0
    runs = np.arange(n_runs)
    history = [w[:, :n_groups].copy()]
    for block in _bar(blocks, progress, "semi-gradient TD(0)"):
        states, final_reward = walk.simulate(block * n_runs, rng)
        T = states.shape[1] - 1
        g, g_next = groups[np.maximum(states[:, :-1], 0)], groups[np.maximum(states[:, 1:], 0)]
        crossing = (states[:, 1:] >= 0) & (g != g_next)  # a real step into another group or a terminal end

        def per_run(x):  # (episode * run, T) -> (run, episode * T): each run's steps in time order
            return x.reshape(block, n_runs, T).transpose(1, 0, 2).reshape(n_runs, block * T)

        run, t = np.nonzero(per_run(crossing))  # row by row: each run's crossings in time order
        n_events = np.bincount(run, minlength=n_runs)
        k = np.arange(run.size) - np.repeat(np.cumsum(n_events) - n_events, n_events)  # position in its run's list
        # (event, run) arrays; runs with fewer crossings are padded with no-op steps (group 0 to 0, reward 0)
        g_seq, next_seq = (np.zeros((n_events.max(), n_runs), dtype=np.int64) for _ in range(2))
        r_seq = np.zeros((n_events.max(), n_runs))
        g_seq[k, run], next_seq[k, run] = per_run(g)[run, t], per_run(g_next)[run, t]
        episode_reward = final_reward[(t // T) * n_runs + run]  # the row of the episode the step belongs to
        r_seq[k, run] = np.where(next_seq[k, run] == n_groups, episode_reward, 0.0)
        for j in range(r_seq.shape[0]):  # the j-th crossing of every run, all runs at once
            s, s2 = g_seq[j], next_seq[j]
            w[runs, s] += alpha * (r_seq[j] + w[runs, s2] - w[runs, s])
        history.append(w[:, :n_groups].copy())
    return AggregationResult(w[:, :n_groups].copy(), np.stack(history, axis=1), _checkpoints(blocks))



@dataclass
class NStepSweepResult:
    """What :func:`n_step_td_aggregation` learned, for every ``(n, alpha)`` of the sweep.

    Attributes:
        ns: ``(N,)`` the values of n.
        alphas: ``(A,)`` the step sizes.
        history: ``(N, A, n_runs, n_episodes + 1, n_groups)``: the weights at the start (all 0) and
            after every episode.
        rms_error: ``(N, A, n_runs, n_episodes)``: after every episode, the RMS error over the walk's
            states, ``sqrt(mean_s (v_pi(s) - w_g(s))^2)``, every state weighted alike (Figure 9.2, right).
    """

    ns: np.ndarray
    alphas: np.ndarray
    history: np.ndarray
    rms_error: np.ndarray


def n_step_td_aggregation(env: gym.Env, ns: int | Sequence[int], alphas: float | Sequence[float], n_episodes: int = 10,
                          n_groups: int = 20, n_runs: int = 100, seed: int = 0,
                          progress: bool = True) -> NStepSweepResult:
    """n-step semi-gradient TD prediction with state aggregation, swept over n and alpha (Sutton & Barto,
    eq. 9.15, Figure 9.2, right)::

        w_g <- w_g + alpha * (G_t:t+n - w_g),      G_t:t+n = R_t+1 + ... + R_t+n + v(S_t+n, w)

    for ``t = 0 .. T-1`` of every episode in order, ``g`` the group of ``S_t`` (gamma = 1; the return
    stops at the end: ``G_t:t+n = G_t`` when ``t + n >= T``). On the random walk the only reward is the
    final one, so the target is the final reward when ``t + n >= T`` and ``w`` of the group of ``S_t+n``
    otherwise, read when the update is made: after the updates of ``S_0 .. S_t-1``, as in the book's
    online algorithm. n = 1 is semi-gradient TD(0) (:func:`semi_gradient_td0_aggregation`), n >= T gradient MC.

    The episodes do not depend on the values (this is prediction), so all ``n_runs * n_episodes`` of
    them are simulated once and every ``(n, alpha)`` learns from the same ones (common random numbers:
    the curves differ by the method, not by the luck of the draw). Every ``(n, alpha, run)`` is a lane
    of its own, all stepped at once: time step ``t`` of episode ``e`` for every lane together, with the
    runs' shorter episodes padded by steps that change nothing (``tests/test_dqn.py`` checks the result
    against the plain step-by-step loop).

    Args:
        env: a :class:`~rl_basics.envs.random_walk_1000.RandomWalk1000Env` (the episodes are drawn
            with its vectorised ``simulate``, episode ``e`` of run ``r`` in row ``e * n_runs + r``; the
            true values come from its model).
        ns: the values of n (positive integers).
        alphas: the step sizes, each in [0, 1] (alpha = 0 never moves the weights from 0).
        n_groups: groups of equal size (the book's 20 groups of 50 states for this panel).
        n_runs: independent runs, computed at once.
        progress: show a progress bar over the episodes.
    """
    from rl_basics.dp import solve_policy_exact

    walk = env.unwrapped
    ns = np.atleast_1d(np.asarray(ns))
    if ns.ndim != 1 or ns.size == 0:
        raise ValueError(f"ns must be a positive integer or a sequence of them, got {ns!r}")
    ns = np.array([check_positive_int("n", n) for n in ns.tolist()], dtype=np.int64)
    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    if alphas.ndim != 1 or alphas.size == 0 or not ((alphas >= 0) & (alphas <= 1)).all():
        raise ValueError(f"alphas must be step sizes in [0, 1], got {alphas!r}")
    n_episodes, n_runs = check_positive_int("n_episodes", n_episodes), check_positive_int("n_runs", n_runs)
    groups = state_aggregation(walk.n_walk_states, n_groups)
    states, final_reward = walk.simulate(n_episodes * n_runs, np.random.default_rng(seed))

    N, A, R, G = ns.size, alphas.size, n_runs, n_groups
    w = np.zeros(N * A * R * (G + 1))  # lane (n, alpha, run) owns G + 1 weights; the last: the terminal group, always 0
    base = (np.arange(N * A * R) * (G + 1)).reshape(N, A, R)
    alpha = alphas[None, :, None]
    history = np.zeros((N, A, R, n_episodes + 1, G))
    for e, _ in enumerate(_bar([1] * n_episodes, progress, "n-step semi-gradient TD")):
        rows = states[e * R:(e + 1) * R]  # (run, time) of episode e
        T = (rows >= 0).sum(axis=1) - 1  # (R,) the episodes' lengths
        g = np.concatenate([groups[np.maximum(rows, 0)], np.full((R, ns.max()), G)], axis=1)  # terminal, padding: G
        for t in range(T.max()):  # update S_t of every lane; runs whose episode has ended update group G by 0
            ahead = t + ns[:, None] >= T  # (N, R): the return ends at the terminal step
            target = np.where(ahead, G, g[:, t + ns].T)  # the group whose value the target bootstraps from
            reward = np.where(ahead & (t < T), final_reward[e * R:(e + 1) * R], 0.0)
            i, j = base + g[:, t], base + target[:, None, :]
            w[i] += alpha * (reward[:, None, :] + w[j] - w[i])
        history[:, :, :, e + 1] = w.reshape(N, A, R, G + 1)[..., :G]

    v = solve_policy_exact(walk, np.ones((walk.n_walk_states + 2, 1)), 1.0)[1:-1].reshape(G, -1)
    # equal group sizes: mean_s (v(s) - w_g(s))^2 = mean_g [(w_g - mean of v in g)^2 + variance of v in g]
    mse = ((history[..., 1:, :] - v.mean(axis=1)) ** 2 + v.var(axis=1)).mean(axis=-1)
    return NStepSweepResult(ns, alphas, history, np.sqrt(mse))


def _checkpoints(blocks: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(blocks)])


def _bar(blocks: list[int], progress: bool, desc: str):
    """Yield the block sizes while a progress bar counts the episodes."""
    from tqdm.auto import tqdm

    with tqdm(total=sum(blocks), disable=not progress, desc=desc, unit="episode", leave=False) as bar:
        for block in blocks:
            yield block
            bar.update(block)


# ============================================================================ semi-gradient SARSA with tile coding


@dataclass
class SarsaResult:
    """What :func:`semi_gradient_sarsa` learned.

    Attributes:
        steps: ``(n_lanes, n_episodes)`` the length of every episode (Figure 10.2's y-axis).
        w: ``(n_lanes, n_actions, n_features)`` the final weights.
        snapshots: ``{episode: w of lane snapshot_lane (n_actions, n_features)}`` after the listed episodes.
    """

    steps: np.ndarray
    w: np.ndarray
    snapshots: dict[int, np.ndarray]


def semi_gradient_sarsa(lanes, coder: TileCoder, alpha: float | np.ndarray, n_episodes: int, epsilon: float = 0.0,
                        gamma: float = 1.0, seed: int = 0, snapshot_episodes: Sequence[int] = (),
                        snapshot_lane: int = 0, progress: bool = True) -> SarsaResult:
    """Episodic semi-gradient SARSA with linear tile-coded ``q(s, a, w) = sum of w[a, active tiles of s]``
    (Sutton & Barto, section 10.1), on every lane of ``lanes`` at once::

        w[A, tiles(S)] += alpha * (R + gamma * q(S', A', w) - q(S, A, w))      (no q(S', A') after termination)

    ``A'`` is chosen epsilon-greedily (ties broken at random) before the update, as in the book's
    algorithm. With ``w = 0`` and rewards of -1 every untried action looks best, so even
    ``epsilon = 0`` explores (optimistic initial values). A truncated episode bootstraps.

    Args:
        lanes: e.g. :class:`rl_basics.envs.mountain_car.MountainCarLanes`; one lane per run.
        coder: the tile coder of the lanes' states.
        alpha: the step size per weight (the book's ``0.5 / 8`` with 8 tilings), or one per lane.
        n_episodes: episodes per lane.
        seed: the seed of the action choices (the lanes have their own).
        snapshot_episodes: keep a copy of lane ``snapshot_lane``'s weights after these episodes (Figure 10.1).
        progress: show a progress bar over the episodes of all lanes.
    """
    from tqdm.auto import tqdm

    n_episodes = check_positive_int("n_episodes", n_episodes)
    gamma = check_gamma(gamma)
    L, A = lanes.n_lanes, lanes.n_actions
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (L,)).copy()
    if not ((alpha > 0) & (alpha <= 1)).all():
        raise ValueError(f"alpha must be in (0, 1], got {alpha!r}")
    rng = np.random.default_rng(seed)
    F = coder.n_features
    w = np.zeros(L * A * F)  # w[(lane * A + a) * F + tile]: each lane's (A, F) weights, flat for fast indexing
    rows = (np.arange(L)[:, None] * A + np.arange(A)) * F  # (L, A): where each lane's weights of each action start

    def q_all(i, tiles):  # q(s, a, w) for every action: (len(i), A)
        return w[rows[i][:, :, None] + tiles[:, None, :]].sum(-1)

    def choose(q):
        return epsilon_greedy_action(q, epsilon, rng) if epsilon > 0 else greedy_action(q, rng)

    loop = EpisodeLoop(lanes, n_episodes)
    lane = np.arange(L)
    tiles = coder.active(loop.start())
    action = choose(q_all(lane, tiles))
    snapshots = {}
    bar = tqdm(total=L * n_episodes, disable=not progress, desc="semi-gradient SARSA", unit="episode", leave=False)
    while loop.active.size:
        i = loop.active
        s2, r, term, trunc = loop.step(i, action[i])
        tiles2 = coder.active(s2)
        q_next = q_all(i, tiles2)
        action2 = choose(q_next)  # A' is chosen before the update, as in the book
        active = rows[i, action[i]][:, None] + tiles[i]  # the weights of the tiles of (S, A)
        q = w[active].sum(-1)
        target = r + gamma * np.where(term, 0.0, q_next[np.arange(i.size), action2])
        w[active] += (alpha[i] * (target - q))[:, None]  # gradient of q(S, A, w): 1 on each active tile
        tiles[i], action[i] = tiles2, action2
        ended = i[term | trunc]
        if ended.size:
            bar.update(ended.size)
            if snapshot_lane in ended and loop.episode[snapshot_lane] + 1 in snapshot_episodes:
                snapshots[int(loop.episode[snapshot_lane]) + 1] = w.reshape(L, A, F)[snapshot_lane].copy()
            restart, s0 = loop.end_episodes(ended)
            if restart.size:
                tiles[restart] = coder.active(s0)
                action[restart] = choose(q_all(restart, tiles[restart]))
    bar.close()
    return SarsaResult(loop.lengths, w.reshape(L, A, F), snapshots)


def cost_to_go(w: np.ndarray, coder: TileCoder, resolution: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``-max_a q(s, a, w)`` on a ``resolution x resolution`` grid over the coder's box (Figure 10.1).

    Returns ``(xs, ys, cost)``: the grid's coordinates along each dimension and ``cost (resolution, resolution)``
    indexed ``[y, x]``, ready for ``plt.pcolormesh(xs, ys, cost)``.
    """
    xs = np.linspace(coder.low[0], coder.high[0], resolution)
    ys = np.linspace(coder.low[1], coder.high[1], resolution)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    q = w[:, coder.active(grid)].sum(-1)  # (A, resolution^2)
    return xs, ys, -q.max(axis=0).reshape(resolution, resolution)


# ============================================================================ Baird's counterexample


def off_policy_td(env: gym.Env, features: np.ndarray, behaviour: np.ndarray, target: np.ndarray, w0: np.ndarray,
                  alpha: float, gamma: float, n_steps: int, seed: int = 0) -> np.ndarray:
    """Semi-gradient off-policy TD(0) with per-step importance sampling (Sutton & Barto, eq. 11.2), for a continuing task::

        w <- w + alpha * rho * (R + gamma * x(S')^T w - x(S)^T w) * x(S),     rho = pi(A|S) / b(A|S)

    Args:
        env: a tabular env (``Discrete`` states, stepped ``n_steps`` times from one reset).
        features: ``X (S, d)``, one feature vector per state.
        behaviour, target: ``(S, A)`` action probabilities of ``b`` (which acts) and ``pi`` (evaluated).
        w0: ``(d,)`` the initial weights.

    Returns:
        ``(n_steps + 1, d)``: the weights before the first step and after each one.
    """
    gamma = check_gamma(gamma)
    n_steps = check_positive_int("n_steps", n_steps)
    X, b, pi = (np.asarray(a, dtype=float) for a in (features, behaviour, target))
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])  # not the env's stream: seed it apart
    w = np.array(w0, dtype=float)
    history = [w.copy()]
    s, _ = env.reset(seed=seed)
    for _ in range(n_steps):
        a = int(rng.choice(b.shape[1], p=b[s]))
        s2, r, terminated, truncated, _ = env.step(a)
        rho = pi[s, a] / b[s, a]
        w = w + alpha * rho * (r + gamma * (0.0 if terminated else X[s2] @ w) - X[s] @ w) * X[s]
        history.append(w.copy())
        s = env.reset()[0] if terminated or truncated else s2
    return np.array(history)


def expected_update(env: gym.Env, features: np.ndarray, state_weights: np.ndarray, target: np.ndarray,
                    w0: np.ndarray, alpha: float, gamma: float, n_sweeps: int, bootstrap: bool = True) -> np.ndarray:
    """Semi-gradient dynamic programming: the *expected* linear TD(0) update, all states at once (eq. 11.9)::

        w <- w + alpha * sum_s d(s) * (E_pi[R + gamma * x(S')^T w | S = s] - x(s)^T w) * x(s)

    ``d`` (``state_weights``) is the distribution the updates are spread over: the behaviour policy's for
    off-policy learning (uniform over Baird's 7 states gives the book's ``alpha / |S|``), the target policy's own
    for on-policy learning. With ``bootstrap=False`` the target is the true value ``v_pi(s)`` (from the model):
    what a Monte-Carlo return estimates, so the update is a gradient step on the value error instead.

    Returns:
        ``(n_sweeps + 1, d)``: the weights before the first sweep and after each one.
    """
    from rl_basics.dp import solve_policy_exact

    model = as_model(env)
    gamma = check_gamma(gamma)
    X, d, pi = (np.asarray(a, dtype=float) for a in (features, state_weights, target))
    r_pi = (pi * model.rewards).sum(axis=1)
    P_pi = np.einsum("sa,sat->st", pi, model.continuation)
    v_pi = None if bootstrap else solve_policy_exact(model, pi, gamma)
    w = np.array(w0, dtype=float)
    history = [w.copy()]
    for _ in range(check_positive_int("n_sweeps", n_sweeps)):
        targets = r_pi + gamma * P_pi @ X @ w if bootstrap else v_pi
        w = w + alpha * X.T @ (d * (targets - X @ w))
        history.append(w.copy())
    return np.array(history)
