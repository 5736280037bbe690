"""Monte-Carlo prediction and control (Sutton & Barto, chapter 5; constant-alpha MC of chapter 6).

- :func:`mc_prediction`: first-visit or every-visit sample-average evaluation of a policy.
- :func:`constant_alpha_mc_prediction`: ``V(S_t) <- V(S_t) + alpha [G_t - V(S_t)]`` (Example 6.2; the update is
  ``rl_basics.td.n_step_td_update``, n-step TD with n at least the episode length).
- :func:`mc_control_exploring_starts`: Monte-Carlo ES (Figure 5.2).
- :func:`mc_control_epsilon_greedy`: on-policy first-visit control with epsilon-soft policies
  and a GLIE schedule (``rl_basics.policies.glie_schedule``).
- :func:`off_policy_mc_prediction`: ordinary and weighted importance sampling (Figure 5.3).
- :func:`add_first_visit_returns`: the first-visit sample-average update both control methods share.

Episodes are generated on *lanes* (``rl_basics.lanes``). ``batch_size`` episodes are
simulated at once; the default is one episode at a time through the env you pass
(``simulator="env"``), exactly the book's algorithms. For prediction the batch size only
changes speed (sample averages do not depend on the order of episodes). For control, a
batch of B episodes is played with the policy of the previous batch and the policy is
improved after it: generalized policy iteration with B episodes of evaluation per
improvement; B = 1 is the book's episode-by-episode algorithm. ``simulator="vector"``
uses the numpy simulator of the same env (``rl_basics.lanes.BlackjackLanes`` for
Blackjack, a model-based simulator for envs with ``P``).

Tables come back in the observation's shape: ``V[player_sum, dealer_card, usable_ace]``
for Blackjack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from rl_basics.policies import as_schedule, epsilon_greedy_action, glie_schedule, greedy_action, sample_actions
from rl_basics.lanes import Episodes, Lanes, make_lanes, rollout
from rl_basics.tabular import TabularSpec, check_alphas, check_gamma, check_positive_int
from rl_basics.td import PredictionResult, _squeeze, n_step_td_update

DEFAULT_VECTOR_BATCH = 10_000


@dataclass
class MCPredictionResult:
    """Sample-average Monte-Carlo estimates.

    Attributes:
        V: estimated values ``(*state_shape)`` (NaN for never-visited states).
        counts: number of returns averaged per state.
        std: sample standard deviation of those returns (for standard errors ``std / sqrt(counts)``).
        snapshots: ``{n_episodes: V}`` after the requested numbers of episodes.
    """

    V: np.ndarray
    counts: np.ndarray
    std: np.ndarray
    snapshots: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class MCControlResult:
    """What a Monte-Carlo control method learned.

    Attributes:
        Q: sample-average action values ``(*state_shape, n_actions)`` (0 where never tried).
        policy: the greedy action of every state ``(*state_shape)`` (for ES: the policy it
            followed, updated only in visited states).
        counts: returns averaged per state-action pair.
        episode_returns: ``(n_episodes,)`` return of each episode.
        epsilons: ``(n_episodes,)`` epsilon used in each episode (on-policy control).
    """

    Q: np.ndarray
    policy: np.ndarray
    counts: np.ndarray
    episode_returns: np.ndarray
    epsilons: np.ndarray | None = None


@dataclass
class OffPolicyPredictionResult:
    """Off-policy MC estimates from one set of behaviour episodes, both estimators.

    Attributes:
        V_ordinary, V_weighted: ``([n_runs,] *state_shape)`` estimates of v_target.
        history_ordinary, history_weighted: ``([n_runs,] n_episodes)`` estimates of the tracked
            state after each episode (Figure 5.3); ``None`` without a tracked state.
        counts: first visits per state.
    """

    V_ordinary: np.ndarray
    V_weighted: np.ndarray
    history_ordinary: np.ndarray | None
    history_weighted: np.ndarray | None
    counts: np.ndarray


def _lanes(env: gym.Env, batch_size: int | None, simulator: str | None, seed: int) -> tuple[Lanes, int]:
    if batch_size is None:
        batch_size = DEFAULT_VECTOR_BATCH if simulator == "vector" else 1
    batch_size = check_positive_int("batch_size", batch_size)
    return make_lanes(env, batch_size, seed, simulator), batch_size


def _state_index(spec: TabularSpec, state, name: str) -> int:
    try:
        return spec.encode(state)
    except (ValueError, TypeError, IndexError):
        raise ValueError(f"{name}: {state!r} is not an observation of this env") from None


def _policy_sampler(pi: np.ndarray, rng: np.random.Generator):
    return lambda idx, s: sample_actions(pi[s], rng)


def mc_prediction(env: gym.Env, policy: np.ndarray, n_episodes: int, gamma: float = 1.0, first_visit: bool = True,
                  seed: int = 0, batch_size: int | None = None, simulator: str | None = None,
                  snapshots: tuple[int, ...] = (), max_steps: int | None = 100_000) -> MCPredictionResult:
    """First-visit (or every-visit) Monte-Carlo prediction: V(s) = average of the returns following visits to s.

    Args:
        policy: ``(*state_shape, n_actions)`` action probabilities.
        snapshots: episode counts after which to store a copy of V (e.g. ``(10_000,)``).
        max_steps: raise if an episode runs longer (a policy that never terminates).
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    gamma = check_gamma(gamma)
    for k in snapshots:
        if not 1 <= k <= n_episodes:
            raise ValueError(f"snapshots must lie in 1..n_episodes={n_episodes}, got {k}")
    lanes, batch_size = _lanes(env, batch_size, simulator, seed)
    spec = lanes.spec
    pi = spec.flatten_policy(policy)
    choose = _policy_sampler(pi, np.random.default_rng(seed))
    sums, sq, counts = np.zeros(spec.n_states), np.zeros(spec.n_states), np.zeros(spec.n_states)
    stops = sorted(set(snapshots) | {n_episodes})
    saved, done = {}, 0
    for stop in stops:
        while done < stop:
            n = min(batch_size, stop - done)
            ep = rollout(lanes, choose, max_steps=max_steps, n=n)
            G = ep.returns(gamma)
            use = ep.first_visits() if first_visit else ep.valid
            s, g = ep.states[use], G[use]
            sums += np.bincount(s, g, spec.n_states)
            sq += np.bincount(s, g * g, spec.n_states)
            counts += np.bincount(s, minlength=spec.n_states)
            done += n
        with np.errstate(invalid="ignore", divide="ignore"):
            saved[stop] = spec.unflatten(np.where(counts > 0, sums / counts, np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts
        var = np.where(counts > 1, (sq - counts * mean ** 2) / (counts - 1), np.nan)
    return MCPredictionResult(saved[n_episodes], spec.unflatten(counts), spec.unflatten(np.sqrt(np.maximum(var, 0))),
                              {k: saved[k] for k in snapshots})


def constant_alpha_mc_prediction(env: gym.Env, n_episodes: int, alpha: float, gamma: float = 1.0,
                                 policy: np.ndarray | None = None, v_init: float = 0.0, first_visit: bool = False,
                                 seed: int = 0, n_runs: int = 1, simulator: str | None = None) -> PredictionResult:
    """Constant-alpha Monte Carlo: after each episode, ``V(S_t) += alpha (G_t - V(S_t))`` for t = 0, 1, ...

    Every-visit by default (``first_visit=False``), which makes it exactly n-step TD with n at
    least the episode length (``rl_basics.td.n_step_td_prediction``) on the same seed.
    ``n_runs`` independent runs are computed at once (one lane each; ``alpha`` may hold one step
    size per run). Returns the same
    :class:`rl_basics.td.PredictionResult` as the TD methods.
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    n_runs = check_positive_int("n_runs", n_runs)
    alpha, gamma = check_alphas(alpha, n_runs), check_gamma(gamma)
    lanes = make_lanes(env, n_runs, seed, simulator)
    spec = lanes.spec
    pi = (np.asarray(spec.valid, dtype=float) / spec.valid.sum(1, keepdims=True) if policy is None
          else spec.flatten_policy(policy))
    choose = _policy_sampler(pi, np.random.default_rng(seed))
    V = np.where(spec.terminal, 0.0, np.full((n_runs, spec.n_states), float(v_init)))
    history = np.empty((n_runs, n_episodes + 1, spec.n_states))
    history[:, 0] = V
    returns = np.zeros((n_runs, n_episodes))
    lengths = np.zeros((n_runs, n_episodes), dtype=np.int64)
    runs = np.arange(n_runs)
    for k in range(n_episodes):
        ep = rollout(lanes, choose)
        G = ep.returns(gamma)
        use = ep.first_visits() if first_visit else ep.valid
        for t in range(ep.states.shape[1]):  # in time order: a state visited twice is updated twice
            r = runs[use[:, t]]
            # V(S_t) <- V(S_t) + alpha [G_t - V(S_t)]: n-step TD's update with n = infinity
            n_step_td_update(V, ep.states[r, t], G[r, t], alpha[r], runs=r)
        history[:, k + 1] = V
        returns[:, k] = ep.rewards.sum(axis=1)
        lengths[:, k] = ep.lengths
    return PredictionResult(_squeeze(spec.unflatten(V), n_runs), _squeeze(spec.unflatten(history), n_runs),
                            _squeeze(returns, n_runs), _squeeze(lengths, n_runs))


def _default_start_states(env: gym.Env, spec: TabularSpec) -> np.ndarray:
    from gymnasium.envs.toy_text.blackjack import BlackjackEnv

    if isinstance(env.unwrapped, BlackjackEnv):
        from rl_basics.blackjack import book_states
        return np.array([spec.encode(s) for s in book_states()])
    if isinstance(getattr(env.unwrapped, "P", None), dict):
        return np.flatnonzero(~spec.terminal)
    raise ValueError("start_states must be given for an env without a model (the states exploring starts pick from)")


def add_first_visit_returns(sums: np.ndarray, counts: np.ndarray, ep: Episodes, gamma: float) -> np.ndarray:
    """Add the return after the first visit of each state-action pair in each episode of ``ep`` to the per-pair
    ``sums`` and ``counts`` ``(n_states, n_actions)``, in place; ``sums / counts`` is then the sample average
    Q(s, a). Returns the states visited (flat indices), the ones whose greedy action may change.
    """
    S, A = sums.shape
    G = ep.returns(gamma)
    use = ep.first_pair_visits()
    pair = ep.states[use] * A + ep.actions[use]
    sums += np.bincount(pair, G[use], S * A).reshape(S, A)
    counts += np.bincount(pair, minlength=S * A).reshape(S, A)
    return np.unique(ep.states[ep.valid])


def mc_control_exploring_starts(env: gym.Env, n_episodes: int, gamma: float = 1.0,
                                initial_policy: np.ndarray | None = None, start_states=None, seed: int = 0,
                                batch_size: int = 1, simulator: str | None = None,
                                max_steps: int | None = 10_000) -> MCControlResult:
    """Monte-Carlo ES: every episode starts from a random state-action pair, then follows the greedy policy.

    Q(s, a) is the average of the first-visit returns after (s, a); after each batch the
    policy of every visited state becomes greedy in Q (ties broken at random).

    Args:
        initial_policy: ``(*state_shape)`` initial actions (the book starts Blackjack from
            "stick on 20 or 21", ``rl_basics.blackjack.stick_on(20).argmax(-1)``); default all 0.
        start_states: observations to start from (uniformly); default: Blackjack's 200 states
            of Figure 5.2, or all non-terminal states of an env with a model ``P``.
        max_steps: a deterministic policy can loop forever in a grid world: raise after this many steps.
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    gamma = check_gamma(gamma)
    lanes, batch_size = _lanes(env, batch_size, simulator, seed)
    spec = lanes.spec
    S, A = spec.n_states, spec.n_actions
    rng = np.random.default_rng(seed)
    starts = (_default_start_states(env, spec) if start_states is None
              else np.array([_state_index(spec, s, "start_states") for s in start_states]))
    if initial_policy is None:
        policy = np.zeros(S, dtype=np.int64)
    else:
        policy = np.asarray(initial_policy, dtype=np.int64).reshape(-1)
        if policy.size != S:
            raise ValueError(f"initial_policy must have shape {spec.state_shape}, got {np.shape(initial_policy)}")
    sums, counts = np.zeros((S, A)), np.zeros((S, A))
    episode_returns = np.zeros(n_episodes)
    done = 0
    while done < n_episodes:
        n = min(batch_size, n_episodes - done)
        s0 = starts[rng.integers(len(starts), size=n)]
        a0 = random_valid_actions(spec.valid[s0], rng)
        ep = rollout(lanes, lambda idx, s: policy[s], max_steps=max_steps, start_states=s0, first_actions=a0, n=n)
        visited = add_first_visit_returns(sums, counts, ep, gamma)
        with np.errstate(invalid="ignore", divide="ignore"):
            q = np.where(counts[visited] > 0, sums[visited] / counts[visited], 0.0)
        policy[visited] = greedy_action(q, rng, spec.valid[visited])
        episode_returns[done:done + n] = ep.rewards.sum(axis=1)
        done += n
    with np.errstate(invalid="ignore", divide="ignore"):
        Q = np.where(counts > 0, sums / counts, 0.0)
    return MCControlResult(spec.unflatten(Q, 1), spec.unflatten(policy), spec.unflatten(counts, 1), episode_returns)


def random_valid_actions(valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random valid action per row of the bool array ``valid``."""
    return np.argmax(np.where(valid, rng.random(valid.shape), -1.0), axis=-1)


def mc_control_epsilon_greedy(env: gym.Env, n_episodes: int, epsilon=None, gamma: float = 1.0, seed: int = 0,
                              batch_size: int = 1, simulator: str | None = None,
                              max_steps: int | None = 100_000) -> MCControlResult:
    """On-policy first-visit Monte-Carlo control with epsilon-greedy (epsilon-soft) policies.

    Episode k is played with the epsilon_k-greedy policy of the current Q (ties broken at
    random); Q(s, a) is the average of the first-visit returns. With a GLIE schedule
    (default ``glie_schedule(1.0)``: epsilon_k = 1/k) every pair keeps being explored
    (sum of epsilon_k diverges) while the policy becomes greedy (epsilon_k -> 0), so Q
    converges to q_*; with a constant epsilon it converges to the best epsilon-soft policy.
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    gamma = check_gamma(gamma)
    eps_fn = glie_schedule(1.0) if epsilon is None else as_schedule(epsilon)
    lanes, batch_size = _lanes(env, batch_size, simulator, seed)
    spec = lanes.spec
    S, A = spec.n_states, spec.n_actions
    rng = np.random.default_rng(seed)
    sums, counts = np.zeros((S, A)), np.zeros((S, A))
    Q = np.zeros((S, A))
    episode_returns, epsilons = np.zeros(n_episodes), np.zeros(n_episodes)
    done = 0
    while done < n_episodes:
        n = min(batch_size, n_episodes - done)
        eps = np.broadcast_to(np.asarray(eps_fn(np.arange(done + 1, done + n + 1)), dtype=float), (n,))
        if np.any((eps < 0) | (eps > 1)):
            raise ValueError(f"epsilon: the schedule returned values outside [0, 1]: {eps.min()}..{eps.max()}")
        ep = rollout(lanes, lambda idx, s: epsilon_greedy_action(Q[s], eps[idx], rng, spec.valid[s]),
                     max_steps=max_steps, n=n)
        visited = add_first_visit_returns(sums, counts, ep, gamma)
        with np.errstate(invalid="ignore", divide="ignore"):
            Q[visited] = np.where(counts[visited] > 0, sums[visited] / counts[visited], 0.0)
        episode_returns[done:done + n] = ep.rewards.sum(axis=1)
        epsilons[done:done + n] = eps
        done += n
    policy = greedy_action(Q, rng, spec.valid)
    return MCControlResult(spec.unflatten(Q, 1), spec.unflatten(policy), spec.unflatten(counts, 1),
                           episode_returns, epsilons)


def off_policy_mc_prediction(env: gym.Env, target_policy: np.ndarray, n_episodes: int,
                             behaviour_policy: np.ndarray | None = None, gamma: float = 1.0, start_state=None,
                             track_state=None, seed: int = 0, n_runs: int = 1, batch_size: int | None = None,
                             simulator: str | None = None, max_steps: int | None = 100_000
                             ) -> OffPolicyPredictionResult:
    """Off-policy first-visit MC prediction of v_target from episodes of the behaviour policy.

    With ``rho = prod_{k=t}^{T-1} pi(A_k|S_k) / b(A_k|S_k)`` for the first visit at time t,
    the ordinary importance-sampling estimate is ``sum(rho G) / n_visits`` (unbiased,
    possibly huge variance) and the weighted one ``sum(rho G) / sum(rho)`` (biased,
    much lower variance; 0 while ``sum(rho) = 0``). Both come from the same episodes.

    Args:
        behaviour_policy: ``(*state_shape, n_actions)`` probabilities; default uniformly random.
            It must cover the target: b(a|s) > 0 wherever pi(a|s) > 0.
        start_state: start every episode here (e.g. Example 5.4's (13, 2, 1)); default the env's reset.
        track_state: record both estimates of this state after every episode (default ``start_state``).
        n_runs: independent runs computed at once (Figure 5.3 averages 100).
    """
    n_episodes = check_positive_int("n_episodes", n_episodes)
    n_runs = check_positive_int("n_runs", n_runs)
    gamma = check_gamma(gamma)
    if batch_size is None:  # episodes per run simulated at once
        batch_size = max(1, min(n_episodes, DEFAULT_VECTOR_BATCH // n_runs)) if simulator == "vector" else 1
    chunk = check_positive_int("batch_size", batch_size)
    lanes = make_lanes(env, n_runs * chunk, seed, simulator)
    spec = lanes.spec
    S = spec.n_states
    pi = spec.flatten_policy(target_policy, "target_policy")
    b = (np.asarray(spec.valid, dtype=float) / spec.valid.sum(1, keepdims=True) if behaviour_policy is None
         else spec.flatten_policy(behaviour_policy, "behaviour_policy"))
    if np.any((pi > 0) & (b == 0)):
        raise ValueError("behaviour_policy must cover target_policy: b(a|s) > 0 wherever pi(a|s) > 0")
    start = None if start_state is None else _state_index(spec, start_state, "start_state")
    track = start if track_state is None else _state_index(spec, track_state, "track_state")
    choose = _policy_sampler(b, np.random.default_rng(seed))
    sum_rho_g, sum_rho, visits = np.zeros((n_runs, S)), np.zeros((n_runs, S)), np.zeros((n_runs, S))
    hist = np.zeros((3, n_runs, n_episodes)) if track is not None else None
    run_of_lane = np.repeat(np.arange(n_runs), chunk)
    done = 0
    while done < n_episodes:
        n = min(chunk, n_episodes - done)
        lanes_used = (np.arange(n_runs)[:, None] * chunk + np.arange(n)).ravel()
        ep = rollout(_Subset(lanes, lanes_used), choose, max_steps=max_steps,
                     start_states=None if start is None else np.full(lanes_used.size, start))
        G = ep.returns(gamma)
        ratio = np.where(ep.valid, pi[ep.states, ep.actions] / b[ep.states, ep.actions], 1.0)
        rho = np.flip(np.cumprod(np.flip(ratio, 1), 1), 1)  # rho[:, t] = prod_{k >= t} ratio[:, k]
        first = ep.first_visits()
        runs = run_of_lane[lanes_used]
        for stat, val in ((sum_rho_g, rho * G), (sum_rho, rho), (visits, np.ones_like(rho))):
            np.add.at(stat, (np.broadcast_to(runs[:, None], first.shape)[first], ep.states[first]), val[first])
        if hist is not None:
            at = first & (ep.states == track)
            for j, val in enumerate((rho * G, rho, np.ones_like(rho))):
                hist[j, :, done:done + n] = (val * at).sum(axis=1).reshape(n_runs, n)
        done += n
    with np.errstate(invalid="ignore", divide="ignore"):
        V_ord = np.where(visits > 0, sum_rho_g / visits, 0.0)
        V_w = np.where(sum_rho > 0, sum_rho_g / sum_rho, 0.0)
        h_ord = h_w = None
        if hist is not None:
            c = np.cumsum(hist, axis=2)
            h_ord = np.where(c[2] > 0, c[0] / c[2], 0.0)
            h_w = np.where(c[1] > 0, c[0] / c[1], 0.0)
    un = lambda x: _squeeze(spec.unflatten(x), n_runs)  # noqa: E731
    return OffPolicyPredictionResult(un(V_ord), un(V_w), None if h_ord is None else _squeeze(h_ord, n_runs),
                                     None if h_w is None else _squeeze(h_w, n_runs), un(visits))


class _Subset(Lanes):
    """A view of some lanes of a simulator as lanes ``0 .. len(idx) - 1``."""

    def __init__(self, lanes: Lanes, idx: np.ndarray):
        self.lanes, self.idx, self.spec, self.n_lanes = lanes, np.asarray(idx), lanes.spec, len(idx)

    def reset(self, idx):
        return self.lanes.reset(self.idx[idx])

    def reset_to(self, idx, states):
        return self.lanes.reset_to(self.idx[idx], states)

    def step(self, idx, actions):
        return self.lanes.step(self.idx[idx], actions)
