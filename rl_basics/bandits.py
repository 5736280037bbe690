"""Multi-armed bandits (Sutton & Barto, chapter 2), many independent runs at once.

A ``k``-armed bandit has one state and ``k`` actions ("arms"); pulling arm ``a`` pays a random
reward with mean ``q*(a)``. The learner does not know ``q*`` and must trade *exploiting* the arm
that looks best against *exploring* the others. Every object here works on ``n_runs``
independent bandit problems stepped together (a *run axis*, as in ``rl_basics.td``): arrays are
``(n_runs, k)`` for per-arm quantities and ``(n_runs,)`` for one number per run, so averaging
2,000 runs of 1,000 steps takes a fraction of a second.

Bandits (the environments):

- :class:`GaussianBandit`: ``R ~ N(q*(A), noise_std^2)``; with ``walk_std > 0`` every ``q*(a)``
  also takes an independent random-walk step ``N(0, walk_std^2)`` after each step (nonstationary).
  :func:`testbed` draws Sutton & Barto's 10-armed testbed, ``q*(a) ~ N(mean, 1)``.
- :class:`BernoulliBandit`: arm ``a`` pays ``payoffs[a]`` with probability ``probs[a]``, else 0.

Agents (the learners), each a small class with ``start``/``act``/``learn``:

- :class:`EpsilonGreedy`: action values by sample averages or a constant step size
  (:func:`incremental_update`), epsilon-greedy actions; optimistic initial values via ``q_init``.
- :class:`UCB`: ``argmax_a Q(a) + c sqrt(ln t / N(a))`` (:func:`ucb_scores`).
- :class:`GradientBandit`: a softmax policy over preferences ``H`` trained by stochastic gradient
  ascent on the expected reward (:func:`gradient_bandit_update`), optionally with an entropy bonus.
- :class:`BernoulliThompson`: Thompson sampling with Beta posteriors, for 0/1 rewards.

:func:`run` plays an agent against a bandit and returns a :class:`BanditResult` with the reward,
whether the action was optimal, and the regret of every step of every run. Parameters such as
``epsilon``, ``alpha``, ``c`` or ``q_init`` take one value for all runs or one per run
(``(n_runs,)``): a whole parameter study is one call.

Randomness: :func:`run` splits its seed into one stream for the bandit and one for the agent,
and a bandit draws the same numbers every step whatever arm is pulled (common random numbers):
two agents run with the same bandit and seed face the same problems and the same reward noise,
so their difference is measured with less noise.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from rl_basics.policies import greedy_action, sample_actions
from rl_basics.validation import check_positive_int

__all__ = [
    "Agent",
    "Bandit",
    "BanditResult",
    "BernoulliBandit",
    "BernoulliThompson",
    "EpsilonGreedy",
    "GaussianBandit",
    "GradientBandit",
    "UCB",
    "bernoulli_kl",
    "entropy",
    "gradient_bandit_update",
    "incremental_update",
    "lai_robbins_rate",
    "log_softmax",
    "run",
    "testbed",
    "ucb_scores",
]


# ---------------------------------------------------------------- the update rules (also the exercises' references)


def incremental_update(
    Q: np.ndarray, N: np.ndarray, actions: np.ndarray, rewards: np.ndarray, alpha: float | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Move the pulled arm's estimate towards its reward; returns new ``(Q, N)``, each ``(n_runs, k)``.

    Only the pulled arm ``A = actions[i]`` of each run ``i`` changes::

        N(A) <- N(A) + 1
        Q(A) <- Q(A) + step * (R - Q(A)),   step = 1 / N(A)  (alpha None: the sample average)
                                             step = alpha     (a constant step size)

    With ``step = 1 / N`` (after counting this reward) ``Q(A)`` is exactly the mean of the rewards
    received from ``A`` (section 2.4); a constant step weights recent rewards more,
    ``Q_{n+1} = (1 - alpha)^n Q_1 + sum_i alpha (1 - alpha)^(n - i) R_i`` (section 2.5), and keeps
    tracking a nonstationary ``q*``. ``actions`` and ``rewards`` are ``(n_runs,)``; ``alpha`` is
    ``None``, a number, or one per run ``(n_runs,)``. The inputs are not modified.
    """
    Q, N = np.array(Q, dtype=float), np.array(N, dtype=float)
    runs = np.arange(Q.shape[0])
    N[runs, actions] += 1
    step = 1.0 / N[runs, actions] if alpha is None else alpha
    Q[runs, actions] += step * (rewards - Q[runs, actions])
    return Q, N


def ucb_scores(Q: np.ndarray, N: np.ndarray, t: int, c: float | np.ndarray) -> np.ndarray:
    """Upper confidence bounds ``Q(a) + c sqrt(ln t / N(a))``, ``(n_runs, k)``; ``+inf`` where ``N(a) = 0``.

    ``t`` is the current step (1 for the first action), ``N(a)`` how often ``a`` was pulled before
    it. The bonus shrinks as an arm is tried (``N`` grows) and grows slowly for an arm left alone
    (``ln t`` grows); an untried arm counts as maximising (section 2.7). UCB acts greedily on these
    scores. ``c`` is a number or one per run ``(n_runs,)``.
    """
    Q, N = np.asarray(Q, dtype=float), np.asarray(N, dtype=float)
    c = np.asarray(c, dtype=float)
    c = c[:, None] if c.ndim == 1 else c
    bonus = c * np.sqrt(np.log(t) / np.maximum(N, 1.0))
    return np.where(N > 0, Q + bonus, np.inf)


def log_softmax(H: np.ndarray) -> np.ndarray:
    """``log pi(a) = H(a) - log sum_b exp H(b)`` along the last axis, stable for any size of ``H``."""
    H = np.asarray(H, dtype=float)
    shifted = H - H.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def entropy(log_pi: np.ndarray) -> np.ndarray:
    """``-sum_a pi(a) log pi(a)`` along the last axis, from log-probabilities (0 log 0 counts as 0)."""
    log_pi = np.asarray(log_pi, dtype=float)
    return -(np.exp(log_pi) * np.where(np.isfinite(log_pi), log_pi, 0.0)).sum(axis=-1)


def gradient_bandit_update(
    H: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    baseline: np.ndarray | float,
    alpha: float | np.ndarray,
    entropy_coef: float = 0.0,
) -> np.ndarray:
    """One stochastic gradient-ascent step on the preferences ``H`` ``(n_runs, k)``; returns the new ``H``.

    With ``pi = softmax(H)`` (per run) and ``A = actions``, ``R = rewards``, ``b = baseline``
    (``(n_runs,)`` each; ``baseline`` may be a number), equation (2.12)::

        H(a) <- H(a) + alpha (R - b) (1[a = A] - pi(a))        for every arm a

    ``(R - b)(1[a = A] - pi(a))`` is an unbiased sample of the gradient of the expected reward
    ``sum_a pi(a) q*(a)`` with respect to ``H(a)`` for any ``b`` that does not depend on ``A``; the
    baseline only changes its variance. With ``entropy_coef = beta > 0`` the step also climbs
    ``beta`` times the gradient of the policy's entropy ``-sum_a pi(a) log pi(a)`` (computed
    exactly, as PPO's entropy bonus is)::

        d entropy / d H(a) = -pi(a) (log pi(a) + entropy)

    ``alpha`` is a number or one per run ``(n_runs,)``. The input ``H`` is not modified.
    """
    H = np.asarray(H, dtype=float)
    return _gradient_step(H, log_softmax(H), actions, rewards, baseline, alpha, entropy_coef)


def _gradient_step(H, log_pi, actions, rewards, baseline, alpha, entropy_coef, pi=None) -> np.ndarray:
    """:func:`gradient_bandit_update` given ``log_pi = log_softmax(H)`` (and ``pi``), which the agent has already computed."""
    pi = np.exp(log_pi) if pi is None else pi
    advantage = np.asarray(rewards, dtype=float) - baseline
    grad = -pi * advantage[:, None]
    grad[np.arange(H.shape[0]), actions] += advantage
    if entropy_coef:
        grad += entropy_coef * -pi * (log_pi + entropy(log_pi)[:, None])
    alpha = np.asarray(alpha, dtype=float)
    return H + (alpha[:, None] if alpha.ndim == 1 else alpha) * grad


# ---------------------------------------------------------------- bandits


class Bandit(ABC):
    """What :func:`run` needs from a bandit: the initial means, one reward per run, and a drift."""

    @property
    @abstractmethod
    def means(self) -> np.ndarray:
        """``q*(a)`` at the first step, ``(n_runs, k)``."""

    @property
    def n_runs(self) -> int:
        return self.means.shape[0]

    @property
    def k(self) -> int:
        return self.means.shape[1]

    @abstractmethod
    def pay(self, means: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Rewards ``(n_runs,)`` for pulling ``actions`` when the true means are ``means`` (the current
        ones, which :func:`run` keeps; a stationary bandit may pay from its own parameters instead)."""

    @property
    def stationary(self) -> bool:
        """Whether the means stay what they are (otherwise :meth:`drift` changes them after every step)."""
        return True

    def drift(self, means: np.ndarray, rng: np.random.Generator) -> None:
        """Change ``means`` in place after a step (a nonstationary bandit); stationary: nothing."""


@dataclass(frozen=True)
class GaussianBandit(Bandit):
    """``n_runs`` Gaussian bandits: ``R = q*(A) + noise_std * N(0, 1)``.

    Attributes:
        q_star: true action values ``(n_runs, k)`` (or ``(k,)``: one problem, ``n_runs = 1``).
        noise_std: the reward noise's standard deviation, a number or one per arm ``(k,)``.
        walk_std: if positive, after every step each ``q*(a)`` of every run adds an independent
            ``N(0, walk_std^2)`` increment (Sutton & Barto's Exercise 2.5 uses 0.01).
    """

    q_star: np.ndarray
    noise_std: float | np.ndarray = 1.0
    walk_std: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "q_star", _check_means("q_star", self.q_star))
        noise = np.asarray(self.noise_std, dtype=float)
        if noise.shape not in ((), (self.k,)) or not np.all(np.isfinite(noise)) or np.any(noise < 0):
            raise ValueError(f"noise_std must be a non-negative number or one per arm (shape ({self.k},)), "
                             f"got {self.noise_std!r}")
        object.__setattr__(self, "noise_std", noise)
        if not (np.isfinite(self.walk_std) and self.walk_std >= 0):
            raise ValueError(f"walk_std must be a non-negative number (0: a stationary bandit), got {self.walk_std!r}")

    @property
    def means(self) -> np.ndarray:
        return self.q_star

    @property
    def stationary(self) -> bool:
        return self.walk_std == 0

    def pay(self, means: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        noise = rng.standard_normal(means.shape[0])  # drawn whatever the actions: common random numbers
        scale = self.noise_std[actions] if self.noise_std.ndim else self.noise_std
        return means[np.arange(means.shape[0]), actions] + scale * noise

    def drift(self, means: np.ndarray, rng: np.random.Generator) -> None:
        if self.walk_std > 0:
            means += self.walk_std * rng.standard_normal(means.shape)


@dataclass(frozen=True)
class BernoulliBandit(Bandit):
    """``n_runs`` Bernoulli bandits: arm ``a`` pays ``payoffs[a]`` with probability ``probs[a]``, else 0.

    Attributes:
        probs: success probabilities ``(n_runs, k)`` (or ``(k,)``: one problem), in [0, 1].
        payoffs: the reward of a success, a number or one per arm ``(k,)`` (default 1: 0/1 rewards,
            what :class:`BernoulliThompson` needs). The mean of arm ``a`` is ``probs[a] * payoffs[a]``.
    """

    probs: np.ndarray
    payoffs: float | np.ndarray = 1.0

    def __post_init__(self):
        probs = _check_means("probs", self.probs)
        if np.any((probs < 0) | (probs > 1)):
            raise ValueError("probs must be probabilities in [0, 1]; for rewards other than 0/1 set payoffs")
        object.__setattr__(self, "probs", probs)
        payoffs = np.asarray(self.payoffs, dtype=float)
        if payoffs.shape not in ((), (self.k,)) or not np.all(np.isfinite(payoffs)):
            raise ValueError(f"payoffs must be a number or one per arm (shape ({self.k},)), got {self.payoffs!r}")
        object.__setattr__(self, "payoffs", payoffs)

    @property
    def means(self) -> np.ndarray:
        return self.probs * self.payoffs

    @property
    def binary(self) -> bool:
        """Whether every reward is 0 or 1."""
        return bool(np.all(self.payoffs == 1.0))

    def pay(self, means: np.ndarray, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        u = rng.random(means.shape[0])  # drawn whatever the actions: common random numbers
        runs = np.arange(means.shape[0])
        payoff = self.payoffs[actions] if self.payoffs.ndim else self.payoffs
        return (u < self.probs[runs, actions]) * payoff


def testbed(n_runs: int, k: int = 10, mean: float = 0.0, seed: int = 0) -> GaussianBandit:
    """Sutton & Barto's ``k``-armed testbed (section 2.3): ``q*(a) ~ N(mean, 1)``, ``R ~ N(q*(A), 1)``.

    ``n_runs`` independent problems ``(n_runs, k)``, drawn from ``seed`` (the same seed gives the
    same problems, so methods can be compared on them). Figure 2.5 uses ``mean = 4``.
    """
    n_runs, k = check_positive_int("n_runs", n_runs), check_positive_int("k", k)
    if k < 2:
        raise ValueError(f"a bandit needs at least 2 arms to choose between, got k={k}")
    return GaussianBandit(np.random.default_rng(seed).normal(float(mean), 1.0, size=(n_runs, k)))


def _check_means(name: str, values) -> np.ndarray:
    x = np.array(values, dtype=float)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] < 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n_runs, k) or (k,) with k >= 2 arms, got shape {np.shape(values)}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return x


# ---------------------------------------------------------------- agents


class Agent(ABC):
    """A bandit learner for ``n_runs`` problems at once; :func:`run` calls these three methods.

    ``start(bandit, rng)`` sets up its state (and checks its per-run parameters against
    ``bandit.n_runs``), then for ``t = 1, 2, ...``: ``act(t, rng) -> (n_runs,)`` arms, and
    ``learn(actions, rewards)`` with the ``(n_runs,)`` rewards they paid.
    """

    @abstractmethod
    def start(self, bandit: Bandit, rng: np.random.Generator) -> None: ...

    @abstractmethod
    def act(self, t: int, rng: np.random.Generator) -> np.ndarray: ...

    @abstractmethod
    def learn(self, actions: np.ndarray, rewards: np.ndarray) -> None: ...


@dataclass
class EpsilonGreedy(Agent):
    """Action-value method with epsilon-greedy actions (sections 2.2-2.6).

    Acts greedily on ``Q`` (ties broken at random) except with probability ``epsilon``, when it
    pulls an arm uniformly at random; learns with :func:`incremental_update`.

    Attributes:
        epsilon: exploration probability in [0, 1] (0: greedy); a number or one per run.
        alpha: ``None`` for sample averages, or a constant step size in (0, 1]; a number or one per run.
        q_init: the initial estimate ``Q_1(a)`` of every arm (5 with ``epsilon = 0`` and ``alpha = 0.1``:
            Figure 2.3's optimistic initial values); a number or one per run.
        Q, N: after :meth:`start`, the estimates and pull counts ``(n_runs, k)``.
    """

    epsilon: float | np.ndarray = 0.1
    alpha: float | np.ndarray | None = None
    q_init: float | np.ndarray = 0.0
    Q: np.ndarray = field(init=False, repr=False)
    N: np.ndarray = field(init=False, repr=False)

    def start(self, bandit: Bandit, rng: np.random.Generator) -> None:
        n = bandit.n_runs
        self._epsilon, self._alpha = _epsilons(self.epsilon, n), _step_sizes(self.alpha, n)
        q_init = _per_run("q_init", self.q_init, n, lambda x: np.ones_like(x, dtype=bool), "finite")
        self.Q = np.repeat(q_init[:, None], bandit.k, axis=1)
        self.N = np.zeros((n, bandit.k))

    def act(self, t: int, rng: np.random.Generator) -> np.ndarray:
        # policies.epsilon_greedy_action, specialised to "every arm valid" (a third faster here)
        explore = rng.random(self.Q.shape[0]) < self._epsilon
        return np.where(explore, rng.integers(0, self.Q.shape[1], self.Q.shape[0]), greedy_action(self.Q, rng))

    def learn(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.Q, self.N = incremental_update(self.Q, self.N, actions, rewards, self._alpha)


@dataclass
class UCB(Agent):
    """Upper-confidence-bound action selection (section 2.7): greedy on :func:`ucb_scores`.

    Attributes:
        c: the width of the confidence bonus, ``c >= 0`` (the book uses 2 on the testbed; UCB1 for
            rewards in [0, 1] is ``c = sqrt(2)``); a number or one per run.
        alpha: ``None`` for sample averages, or a constant step size; a number or one per run.
        Q, N: after :meth:`start`, the estimates and pull counts ``(n_runs, k)``.
    """

    c: float | np.ndarray = 2.0
    alpha: float | np.ndarray | None = None
    Q: np.ndarray = field(init=False, repr=False)
    N: np.ndarray = field(init=False, repr=False)

    def start(self, bandit: Bandit, rng: np.random.Generator) -> None:
        n = bandit.n_runs
        self._c = _per_run("c", self.c, n, lambda x: x >= 0, ">= 0 (0: greedy on Q after trying every arm once)")
        self._alpha = _step_sizes(self.alpha, n)
        self.Q, self.N = np.zeros((n, bandit.k)), np.zeros((n, bandit.k))

    def act(self, t: int, rng: np.random.Generator) -> np.ndarray:
        return greedy_action(ucb_scores(self.Q, self.N, t, self._c), rng)  # untried arms first, at random

    def learn(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self.Q, self.N = incremental_update(self.Q, self.N, actions, rewards, self._alpha)


@dataclass
class GradientBandit(Agent):
    """Gradient bandit (section 2.8): a softmax policy ``pi = softmax(H)`` trained by :func:`gradient_bandit_update`.

    Attributes:
        alpha: step size ``> 0``; a number or one per run.
        baseline: subtract ``R_bar``, the average of the rewards before this step (``R_bar_1 = R_1``),
            as in the book; ``False``: the baseline is 0.
        entropy_coef: weight ``beta >= 0`` of the entropy bonus (0: the book's algorithm).
        H: after :meth:`start`, the preferences ``(n_runs, k)``, all 0 at first (uniform policy).
    """

    alpha: float | np.ndarray = 0.1
    baseline: bool = True
    entropy_coef: float = 0.0
    H: np.ndarray = field(init=False, repr=False)

    def start(self, bandit: Bandit, rng: np.random.Generator) -> None:
        n = bandit.n_runs
        self._alpha = _per_run("alpha", self.alpha, n, lambda x: x > 0, "> 0 (the step size)")
        if not (np.isfinite(self.entropy_coef) and self.entropy_coef >= 0):
            raise ValueError(f"entropy_coef must be a non-negative number (0: no entropy bonus), got {self.entropy_coef!r}")
        self.H = np.zeros((n, bandit.k))
        self._average, self._t = np.zeros(n), 0

    def policy(self) -> np.ndarray:
        """The current action probabilities ``softmax(H)``, ``(n_runs, k)``."""
        return np.exp(log_softmax(self.H))

    def act(self, t: int, rng: np.random.Generator) -> np.ndarray:
        self._log_pi = log_softmax(self.H)  # kept for learn: the update needs the policy that acted
        self._pi = np.exp(self._log_pi)
        return sample_actions(self._pi, rng)

    def learn(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        self._t += 1
        if not self.baseline:
            b = 0.0
        else:
            b = rewards if self._t == 1 else self._average
        self.H = _gradient_step(self.H, self._log_pi, actions, rewards, b, self._alpha, self.entropy_coef, self._pi)
        self._average = self._average + (rewards - self._average) / self._t


@dataclass
class BernoulliThompson(Agent):
    """Thompson sampling for 0/1 rewards: sample ``theta(a) ~ Beta(a0 + S(a), b0 + F(a))``, pull ``argmax theta``.

    ``S(a)``, ``F(a)`` count the successes and failures seen from arm ``a``; ``Beta(a0 + S, b0 + F)`` is
    the posterior of its success probability under a ``Beta(a0, b0)`` prior (``a0 = b0 = 1``: uniform).
    Each arm is pulled with the posterior probability that it is the best one: arms that might
    still be best keep being tried, and arms that are surely worse fade out.

    Attributes:
        prior_a, prior_b: the Beta prior's parameters, ``> 0``.
        S, F: after :meth:`start`, success and failure counts ``(n_runs, k)``.
    """

    prior_a: float = 1.0
    prior_b: float = 1.0
    S: np.ndarray = field(init=False, repr=False)
    F: np.ndarray = field(init=False, repr=False)

    def start(self, bandit: Bandit, rng: np.random.Generator) -> None:
        if not (isinstance(bandit, BernoulliBandit) and bandit.binary):
            raise ValueError("Thompson sampling with Beta posteriors needs 0/1 rewards: use a BernoulliBandit "
                             "with payoffs=1 (for Gaussian rewards use a Gaussian posterior instead)")
        for name, value in (("prior_a", self.prior_a), ("prior_b", self.prior_b)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number (1 and 1: a uniform prior), got {value!r}")
        self.S, self.F = np.zeros((bandit.n_runs, bandit.k)), np.zeros((bandit.n_runs, bandit.k))

    def act(self, t: int, rng: np.random.Generator) -> np.ndarray:
        return np.argmax(rng.beta(self.prior_a + self.S, self.prior_b + self.F), axis=1)

    def learn(self, actions: np.ndarray, rewards: np.ndarray) -> None:
        runs = np.arange(self.S.shape[0])
        self.S[runs, actions] += rewards
        self.F[runs, actions] += 1.0 - rewards


def _per_run(name: str, value, n_runs: int, ok, what: str) -> np.ndarray:
    """``value`` as ``(n_runs,)`` floats (a number is repeated); ``ValueError`` naming ``name`` and the fix
    unless every entry is finite and passes ``ok`` (described by ``what``, e.g. ``"in [0, 1]"``)."""
    try:
        x = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or one number per run, got {value!r}") from None
    if x.ndim > 1 or (x.ndim == 1 and x.shape != (n_runs,)):
        raise ValueError(f"{name} must be a number or an array of one value per run, shape ({n_runs},); got shape "
                         f"{x.shape}. For a sweep, repeat each value once per run: np.repeat(values, runs_per_value)")
    bad = ~(np.isfinite(x) & ok(x))
    if np.any(bad):
        raise ValueError(f"{name} must be {what}, got {np.atleast_1d(x)[np.atleast_1d(bad)][0]!r}")
    return np.broadcast_to(x, (n_runs,)).copy()


def _epsilons(value, n_runs: int) -> np.ndarray:
    return _per_run("epsilon", value, n_runs, lambda x: (x >= 0) & (x <= 1), "in [0, 1] (0: greedy)")


def _step_sizes(value, n_runs: int) -> np.ndarray | None:
    """``None`` (sample averages) or constant step sizes in (0, 1]."""
    if value is None:
        return None
    return _per_run("alpha", value, n_runs, lambda x: (x > 0) & (x <= 1),
                    "in (0, 1] (a constant step size), or None for sample averages")


# ---------------------------------------------------------------- running


@dataclass
class BanditResult:
    """What happened at every step of every run; each array is ``(n_runs, n_steps)``.

    Attributes:
        rewards: the reward received (float32).
        optimal: whether the pulled arm had the largest true mean at that step.
        regret: ``max_a q*(a) - q*(A_t)``, the expected reward lost by not pulling the best arm
            (float32; its cumulative sum is the *pseudo-regret* the bandit literature bounds).
    """

    rewards: np.ndarray
    optimal: np.ndarray
    regret: np.ndarray

    @property
    def cumulative_regret(self) -> np.ndarray:
        """``sum_{s <= t} regret_s``, ``(n_runs, n_steps)``."""
        return np.cumsum(self.regret, axis=1, dtype=float)


def run(bandit: Bandit, agent: Agent, n_steps: int, seed: int = 0) -> BanditResult:
    """Play ``agent`` on every problem of ``bandit`` for ``n_steps`` steps (all runs at once).

    Step ``t = 1 .. n_steps``: the agent picks one arm per run, the bandit pays, the agent
    learns, and a nonstationary bandit's means drift. The bandit object is not changed (a drift
    acts on a copy of its means), so the same bandit can be given to several agents; with the
    same ``seed`` they see the same reward noise (common random numbers).
    """
    if not isinstance(bandit, Bandit):
        raise TypeError(f"bandit must be a GaussianBandit or BernoulliBandit (e.g. bandits.testbed(2000)), "
                        f"got {type(bandit).__name__}")
    if not isinstance(agent, Agent):
        raise TypeError(f"agent must be an Agent (EpsilonGreedy, UCB, GradientBandit, BernoulliThompson), "
                        f"got {type(agent).__name__}")
    n_steps = check_positive_int("n_steps", n_steps)
    bandit_rng, agent_rng = np.random.default_rng(seed).spawn(2)
    means = bandit.means.copy()
    n_runs = means.shape[0]
    runs = np.arange(n_runs)
    rewards = np.empty((n_runs, n_steps), dtype=np.float32)
    optimal = np.empty((n_runs, n_steps), dtype=bool)
    regret = np.empty((n_runs, n_steps), dtype=np.float32)
    agent.start(bandit, agent_rng)
    best = means.max(axis=1)
    for t in range(1, n_steps + 1):
        actions = agent.act(t, agent_rng)
        r = bandit.pay(means, actions, bandit_rng)
        agent.learn(actions, r)
        gap = best - means[runs, actions]
        rewards[:, t - 1], optimal[:, t - 1], regret[:, t - 1] = r, gap <= 0, gap
        bandit.drift(means, bandit_rng)
        if not bandit.stationary:
            best = means.max(axis=1)
    return BanditResult(rewards, optimal, regret)


# ---------------------------------------------------------------- regret theory


def bernoulli_kl(p: np.ndarray | float, q: np.ndarray | float) -> np.ndarray:
    """``KL(Bernoulli(p) || Bernoulli(q)) = p log(p/q) + (1-p) log((1-p)/(1-q))`` (0 log 0 = 0), elementwise."""
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / q), 0.0)
        b = np.where(p < 1, (1 - p) * np.log((1 - p) / (1 - q)), 0.0)
    return a + b


def lai_robbins_rate(probs: np.ndarray) -> float:
    """The constant of Lai and Robbins' lower bound for Bernoulli arms ``probs`` ``(k,)``.

    Any algorithm that is good on every Bernoulli problem (regret ``o(t^a)`` for all ``a > 0``) has
    ``liminf regret(t) / ln t >= sum_{a: p_a < p*} (p* - p_a) / KL(p_a || p*)``: each worse arm must be
    tried about ``ln t / KL`` times to tell it from the best. Thompson sampling attains it. (With
    ``p* = 1`` every KL is infinite and the bound is 0: one failure rules an arm out.)
    """
    p = np.asarray(probs, dtype=float)
    if p.ndim != 1 or p.size < 2 or np.any((p < 0) | (p > 1)):
        raise ValueError(f"probs must be a 1-d array of at least 2 probabilities in [0, 1], got {probs!r}")
    best = p.max()
    worse = p < best
    return float(((best - p[worse]) / bernoulli_kl(p[worse], best)).sum())
