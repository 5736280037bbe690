"""Blackjack as in Sutton & Barto (Example 5.1; gymnasium's ``Blackjack-v1`` with ``sab=True``).

- :func:`exact_values` and :func:`exact_optimal`: v_pi, q_pi and q_* computed exactly by
  dynamic programming over the infinite-deck model (each card 1-9 with probability 1/13,
  a ten-valued card with 4/13), the reference the Monte-Carlo estimates are tested against.
- :func:`stick_on`, :func:`set_state`, :func:`book_states`: the book's policy, exploring
  starts in the gymnasium env, and the 200 states of Figures 5.1 and 5.2.

Its numpy simulator, ``rl_basics.lanes.BlackjackLanes``, plays many games at once with the
same cards in the same order and the same scoring as gymnasium's env, so Figure 5.1's 500,000
episodes take seconds instead of a minute; ``tests/test_blackjack.py`` checks it against the
env card for card (both dealt the same cards give the same observations and rewards) and
statistically.

Observations are gymnasium's ``(player_sum, dealer_card, usable_ace)``; tables are indexed
``[player_sum, dealer_card, usable_ace]`` (shape ``(32, 11, 2)``, ace = 1), actions
0 = stick, 1 = hit.

One subtlety of the ``sab`` rules: a *natural* (ace + ten-card as the first two cards)
wins outright unless the dealer also has one, so the observation (21, d, usable ace)
stands for two situations with different values: a natural (only ever a start state)
and a 21 reached by hitting. A Monte-Carlo estimate of that observation averages over
its visits; :func:`exact_values` returns that visit-weighted average too (``v_visit``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

STICK, HIT = 0, 1
DECK = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10])
CARDS = np.arange(1, 11)
CARD_PROBS = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 4]) / 13.0
SHAPE = (32, 11, 2)


def hand_for(total: int, usable: bool) -> list[int]:
    """A player hand with this observation, for exploring starts (:func:`set_state` and
    ``rl_basics.lanes.BlackjackLanes``): natural-free for 21."""
    if usable:
        if 12 <= total <= 20:
            return [1, total - 11]
        if total == 21:
            return [1, 5, 5]
    else:
        if 4 <= total <= 11:
            return [2, total - 2]
        if 12 <= total <= 20:
            return [10, total - 10]
        if total == 21:
            return [10, 5, 6]
    raise ValueError(f"state: no Blackjack hand has player sum {total} with usable_ace={int(usable)}")


def set_state(env: gym.Env, obs) -> tuple[int, int, int]:
    """Put gymnasium's Blackjack env (after ``reset``) into observation ``obs`` = (sum, dealer card, usable).

    The player gets a hand with that sum (:func:`hand_for`; a 21 is never a natural), the
    dealer shows the given card and gets a fresh hidden card from the env's random stream.
    """
    from gymnasium.envs.toy_text.blackjack import draw_card

    total, shown, usable = (int(x) for x in obs)
    if not 1 <= shown <= 10:
        raise ValueError(f"obs: the dealer's card must be 1..10, got {shown}")
    u = env.unwrapped
    u.player = hand_for(total, bool(usable))
    u.dealer = [shown, draw_card(u.np_random)]
    return u._get_obs()


def book_states() -> list[tuple[int, int, int]]:
    """The 200 states of Figures 5.1/5.2: player sum 12-21, dealer card 1-10, usable ace 0/1."""
    return [(s, d, u) for u in (0, 1) for s in range(12, 22) for d in range(1, 11)]


def stick_on(threshold: int = 20) -> np.ndarray:
    """``(32, 11, 2, 2)`` deterministic policy: stick on a sum >= ``threshold``, hit below."""
    policy = np.zeros(SHAPE + (2,))
    policy[threshold:, :, :, STICK] = 1.0
    policy[:threshold, :, :, HIT] = 1.0
    return policy


# ---------------------------------------------------------------- exact values (infinite deck)


def _dealer_distribution(shown: int) -> tuple[float, np.ndarray]:
    """``(p_natural, dist)``: P(dealer natural | shown card) and the distribution of the dealer's
    final score over ``[bust, 17, 18, 19, 20, 21]`` when it is not a natural."""
    dist = np.zeros(6)

    def play(hard: int, ace: bool, prob: float):
        total = hard + 10 if ace and hard + 10 <= 21 else hard
        if total >= 17:
            dist[0 if total > 21 else total - 16] += prob
            return
        for c, pc in zip(CARDS, CARD_PROBS):
            play(hard + c, ace or c == 1, prob * pc)

    p_natural = 0.0
    for c, pc in zip(CARDS, CARD_PROBS):
        if {shown, c} == {1, 10}:
            p_natural += pc
        else:
            play(shown + c, shown == 1 or c == 1, pc)
    return p_natural, dist / (1.0 - p_natural)


def _player_states():
    """(sum, usable) player states in an order where every hit leads to a later state."""
    return ([(s, 0) for s in range(4, 12)] + [(s, 1) for s in range(12, 22)] + [(s, 0) for s in range(12, 22)])


def _after_hit(total: int, usable: int, card: int) -> tuple[int, int] | None:
    """The (sum, usable) after drawing ``card``, or None for a bust."""
    # (sum, usable) is Markov for the future: a hand without a usable ace and sum >= 12 can never
    # count an ace as 11 again, and one with sum <= 11 holds no ace (it would be usable).
    hard = (total - 10 if usable else total) + card
    ace = bool(usable) or card == 1
    new_total = hard + 10 if ace and hard + 10 <= 21 else hard
    if new_total > 21:
        return None
    return new_total, int(ace and hard + 10 <= 21)


@dataclass
class BlackjackExact:
    """Exact values of a policy (infinite deck, ``sab`` rules), arrays over ``(32, 11, 2)`` (NaN where impossible).

    Attributes:
        v: v_pi of the observation reached by play (for (21, d, usable ace): a 21 reached by hitting).
        q: q_pi ``(32, 11, 2, 2)`` (stick, hit), same convention.
        v_natural: v_pi of a natural, ``(11,)`` by dealer card.
        visits: expected number of visits per episode to each observation (a probability: no
            observation is visited twice in an episode, so first-visit and every-visit MC coincide).
        v_visit: the visit-weighted value of each observation: what first-visit (= every-visit)
            Monte-Carlo estimates converge to; equal to ``v`` except for (21, d, usable ace).
        expected_return: the policy's expected return from the initial deal.
    """

    v: np.ndarray
    q: np.ndarray
    v_natural: np.ndarray
    visits: np.ndarray
    v_visit: np.ndarray
    expected_return: float


def _stick_values(total: int, shown: int) -> float:
    p_nat, dist = _dealer_distribution(shown)
    scores = np.array([0, 17, 18, 19, 20, 21])
    non_natural = float(dist @ np.sign(total - np.where(scores == 0, -1, scores)))
    return p_nat * (0.0 if total == 21 else -1.0) + (1 - p_nat) * non_natural


def exact_values(policy: np.ndarray) -> BlackjackExact:
    """v_pi, q_pi, visit probabilities and expected return of ``policy`` ``(32, 11, 2, 2)`` probabilities."""
    policy = np.asarray(policy, dtype=float)
    if policy.shape != SHAPE + (2,):
        raise ValueError(f"policy must have shape {SHAPE + (2,)}, got {policy.shape}")
    return _solve(policy)


def exact_optimal() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q_star (32, 11, 2, 2), pi_star (32, 11, 2) actions with ties to stick, v_star (32, 11, 2))``."""
    res = _solve(None)
    pi = np.where(np.isnan(res.v), -1, (res.q[..., HIT] > res.q[..., STICK]).astype(int))
    return res.q, pi, res.v


def _solve(policy: np.ndarray | None) -> BlackjackExact:
    v = np.full(SHAPE, np.nan)
    q = np.full(SHAPE + (2,), np.nan)
    v_nat = np.full(11, np.nan)
    order = _player_states()
    for d in range(1, 11):
        p_nat, _ = _dealer_distribution(d)
        for total, usable in reversed(order):
            q_stick = _stick_values(total, d)
            q_hit = 0.0
            for c, pc in zip(CARDS, CARD_PROBS):
                nxt = _after_hit(total, usable, int(c))
                q_hit += pc * (-1.0 if nxt is None else v[nxt[0], d, nxt[1]])
            q[total, d, usable] = q_stick, q_hit
            if policy is None:
                v[total, d, usable] = max(q_stick, q_hit)
            else:
                v[total, d, usable] = policy[total, d, usable] @ q[total, d, usable]
        q_nat = np.array([1.0 - p_nat, q[21, d, 1, HIT]])
        v_nat[d] = q_nat.max() if policy is None else policy[21, d, 1] @ q_nat
    # forward pass: expected visits from the initial deal (player's two cards; dealer card d)
    visits = np.zeros(SHAPE)
    nat_visits = np.zeros(11)
    if policy is None:  # the optimal policy, ties to stick
        pol = np.stack([q[..., STICK] >= q[..., HIT], q[..., HIT] > q[..., STICK]], axis=-1).astype(float)
    else:
        pol = policy
    expected_return = 0.0
    for d, pd in zip(CARDS, CARD_PROBS):
        for c1, p1 in zip(CARDS, CARD_PROBS):
            for c2, p2 in zip(CARDS, CARD_PROBS):
                ace = c1 == 1 or c2 == 1
                total = c1 + c2 + (10 if ace else 0)
                if {c1, c2} == {1, 10}:
                    nat_visits[d] += pd * p1 * p2
                    expected_return += pd * p1 * p2 * v_nat[d]
                    continue
                visits[total, d, int(ace)] += pd * p1 * p2
                expected_return += pd * p1 * p2 * v[total, d, int(ace)]
        # natural hands that hit continue like a hit from (21, usable)
        for total, usable in order:
            m = visits[total, d, usable] + (nat_visits[d] * pol[21, d, 1, HIT] if (total, usable) == (21, 1) else 0.0)
            p_hit = pol[total, d, usable, HIT]
            for c, pc in zip(CARDS, CARD_PROBS):
                nxt = _after_hit(total, usable, int(c))
                if nxt is not None:
                    visits[nxt[0], d, nxt[1]] += m * p_hit * pc
    v_visit = v.copy()
    for d in range(1, 11):
        m_play, m_nat = visits[21, d, 1], nat_visits[d]
        visits[21, d, 1] += m_nat
        if m_play + m_nat > 0:
            v_visit[21, d, 1] = (m_play * v[21, d, 1] + m_nat * v_nat[d]) / (m_play + m_nat)
    return BlackjackExact(v, q, v_nat, visits, v_visit, float(expected_return))
