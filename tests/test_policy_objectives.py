"""J_1, J_avV and J_avR computed exactly on a small continuing MDP, and how they relate."""

import numpy as np
import pytest

from rl_basics.policy_objectives import policy_objectives, stationary_distribution


def two_state_mdp():
    """Two states; action 0 stays, action 1 switches. Reward 1 for staying in state 1, else 0."""
    transitions = np.zeros((2, 2, 2))
    transitions[0, 0, 0] = transitions[1, 0, 1] = 1.0  # stay
    transitions[0, 1, 1] = transitions[1, 1, 0] = 1.0  # switch
    rewards = np.array([[0.0, 0.0], [1.0, 0.0]])
    return transitions, rewards


def test_hand_computed_two_state_example():
    """Policy: stay with probability 1/2 in state 0 and 3/4 in state 1; gamma = 1/2.

    Stationary distribution: d0 * 1/2 = d1 * 1/4 -> d = (1/3, 2/3); r_pi = (0, 3/4); J_avR = 1/2.
    Values: v0 = 1/2 (1/2 v0 + 1/2 v1) -> v1 = 3 v0; v1 = 3/4 + 1/2 (1/4 v0 + 3/4 v1)
    -> 7/4 v0 = 3/4 -> v = (3/7, 9/7); J_1 = v0 = 3/7; J_avV = 1/7 + 6/7 = 1 = J_avR / (1 - gamma).
    """
    transitions, rewards = two_state_mdp()
    policy = np.array([[0.5, 0.5], [0.75, 0.25]])
    out = policy_objectives(transitions, rewards, policy, gamma=0.5, start=0)
    assert out.stationary == pytest.approx([1 / 3, 2 / 3])
    assert out.expected_rewards == pytest.approx([0.0, 0.75])
    assert out.values == pytest.approx([3 / 7, 9 / 7])
    assert out.j_start == pytest.approx(3 / 7)
    assert out.j_avg_reward == pytest.approx(0.5)
    assert out.j_avg_value == pytest.approx(1.0)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9, 0.99])
def test_objectives_relations_on_a_three_state_chain(gamma):
    rng = np.random.default_rng(1)
    transitions = rng.dirichlet(np.ones(3), size=(3, 2))
    rewards = rng.normal(size=(3, 2))
    policy = rng.dirichlet(np.ones(2), size=3)
    out = policy_objectives(transitions, rewards, policy, gamma, start=0)
    p_pi = np.einsum("sa,sat->st", policy, transitions)
    assert out.stationary @ p_pi == pytest.approx(out.stationary)
    assert out.j_avg_reward == pytest.approx(float(out.stationary @ (policy * rewards).sum(axis=1)))
    assert out.j_avg_value == pytest.approx(out.j_avg_reward / (1 - gamma))
    assert out.j_start == pytest.approx(float(out.discounted_visitation @ out.expected_rewards) / (1 - gamma))
    assert out.discounted_visitation.sum() == pytest.approx(1.0)


def test_start_value_approaches_average_reward_as_gamma_tends_to_one():
    """(1 - gamma) J_1 -> J_avR: with an ergodic chain, the start state is forgotten."""
    rng = np.random.default_rng(2)
    transitions = rng.dirichlet(np.ones(3), size=(3, 2))
    rewards = rng.normal(size=(3, 2))
    policy = rng.dirichlet(np.ones(2), size=3)
    gaps = [abs((1 - g) * policy_objectives(transitions, rewards, policy, g).j_start
                - policy_objectives(transitions, rewards, policy, g).j_avg_reward) for g in (0.9, 0.99, 0.999)]
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2


def test_bad_input():
    transitions, rewards = two_state_mdp()
    policy = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match="gamma"):
        policy_objectives(transitions, rewards, policy, gamma=1.0)
    with pytest.raises(ValueError, match="policy"):
        policy_objectives(transitions, rewards, np.ones((2, 2)), gamma=0.5)
    with pytest.raises(ValueError, match="rewards"):
        policy_objectives(transitions, rewards[:1], policy, gamma=0.5)
    with pytest.raises(ValueError, match="stationary"):
        stationary_distribution(np.eye(2))  # two closed classes
