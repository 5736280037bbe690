"""The gambler's problem (Sutton & Barto, Example 4.3) as a tabular model ``P``.

A gambler bets on a sequence of coin flips. With capital ``s`` in ``1..goal-1`` they stake
``a`` in ``1..min(s, goal - s)``: heads (probability ``p_heads``) wins the stake, tails loses
it. The episode ends at capital 0 (ruin) or ``goal``; reaching the goal pays +1, every other
transition 0, so with ``gamma = 1`` the value of a capital is the probability of reaching
the goal from it.

Action ``a`` is the stake itself. States 0 and ``goal`` are absorbing terminal states with a
single action 0 (stake nothing); in the other states only the legal stakes are listed, and
:class:`~rl_basics.mdp.TabularModel` masks out the rest.
"""

from __future__ import annotations


Outcome = tuple[float, int, float, bool]
"""``(prob, next_state, reward, terminated)``."""


def gamblers_problem(p_heads: float = 0.4, goal: int = 100) -> dict[int, dict[int, list[Outcome]]]:
    """The model ``P[s][a] = [(prob, next_state, reward, terminated), ...]`` for capitals ``0..goal``."""
    if not 0.0 <= p_heads <= 1.0:
        raise ValueError(f"p_heads must be a probability in [0, 1], got {p_heads!r}")
    if int(goal) != goal or goal < 2:
        raise ValueError(f"goal must be an integer >= 2, got {goal!r}")
    goal = int(goal)
    P: dict[int, dict[int, list[Outcome]]] = {
        0: {0: [(1.0, 0, 0.0, True)]},
        goal: {0: [(1.0, goal, 0.0, True)]},
    }
    for s in range(1, goal):
        P[s] = {
            stake: [
                (p_heads, s + stake, float(s + stake == goal), s + stake == goal),
                (1.0 - p_heads, s - stake, 0.0, s - stake == 0),
            ]
            for stake in range(1, min(s, goal - s) + 1)
        }
    return dict(sorted(P.items()))
