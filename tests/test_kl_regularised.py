"""rlhf.kl_regularised: the closed-form optimum of the KL-regularised objective and its frontier."""

from __future__ import annotations

import numpy as np
import pytest

from rlhf.kl_regularised import kl_divergence, kl_frontier, kl_regularised_policy

REF = np.array([0.4, 0.3, 0.2, 0.09, 0.01])
GOLD = np.array([0.5, 0.8, 0.2, 0.6, 0.0])
PROXY = GOLD + np.array([0.0, 0.0, 0.0, 0.0, 1.0])  # the reward model is badly wrong on one rare response


def objective(policy: np.ndarray, reward: np.ndarray, beta: float) -> np.ndarray:
    return policy @ reward - beta * kl_divergence(policy, REF)


@pytest.mark.parametrize("beta", [0.05, 0.3, 2.0])
def test_closed_form_is_the_optimum_and_its_value_is_beta_log_z(beta):
    pi = kl_regularised_policy(REF, PROXY, beta)
    assert pi.shape == REF.shape and np.isclose(pi.sum(), 1.0)
    best = objective(pi, PROXY, beta)
    assert np.isclose(best, beta * np.log(REF @ np.exp(PROXY / beta)))  # max = beta log Z
    others = np.random.default_rng(0).dirichlet(np.ones(REF.size), size=2000)
    others = np.vstack([others, REF, np.eye(REF.size), 0.9 * pi + 0.1 * others[:1]])
    assert objective(others, PROXY, beta).max() < best


def test_the_implicit_reward_recovers_the_reward_up_to_a_constant():
    """DPO's identity: beta log(pi_beta / pi_ref) = r - beta log Z, the same shift for every response."""
    beta = 0.2
    shift = beta * np.log(kl_regularised_policy(REF, PROXY, beta) / REF) - PROXY
    assert np.allclose(shift, -beta * np.log(REF @ np.exp(PROXY / beta)))


def test_limits_reference_for_large_beta_greedy_for_tiny_beta():
    assert np.allclose(kl_regularised_policy(REF, PROXY, 1e6), REF, atol=1e-6)
    greedy = kl_regularised_policy(REF, PROXY, 1e-6)  # exp(1500000) would overflow without log space
    assert np.array_equal(greedy, np.eye(REF.size)[PROXY.argmax()])


def test_array_of_betas_matches_one_at_a_time_and_zero_reference_mass_stays_zero():
    betas = np.array([0.01, 0.1, 1.0])
    ref = np.array([0.5, 0.0, 0.5])
    batch = kl_regularised_policy(ref, [0.0, 9.0, 1.0], betas)
    assert batch.shape == (3, 3) and np.all(batch[:, 1] == 0)
    for row, beta in zip(batch, betas):
        assert np.allclose(row, kl_regularised_policy(ref, [0.0, 9.0, 1.0], beta))
    assert np.allclose(batch[0], [0.0, 0.0, 1.0])


def test_kl_divergence():
    assert kl_divergence(REF, REF) == 0.0
    assert np.isclose(kl_divergence([1.0, 0.0], [0.5, 0.5]), np.log(2))
    assert kl_divergence([0.5, 0.5], [1.0, 0.0]) == np.inf
    assert kl_divergence(np.eye(2), [0.5, 0.5]).shape == (2,)


def test_frontier_proxy_and_kl_rise_as_beta_falls_while_gold_peaks_then_falls():
    betas = np.logspace(1, -2.5, 60)  # from weak to strong optimisation
    f = kl_frontier(REF, PROXY, GOLD, betas)
    assert f.policies.shape == (60, REF.size)
    # d E[r] / d(1/beta) = Var_beta(r) > 0; at the smallest betas pi_beta is one-hot to float precision
    assert np.all(np.diff(f.proxy) >= 0) and np.all(np.diff(f.kl) >= 0)
    assert np.all(np.diff(f.proxy[:40]) > 0) and np.all(np.diff(f.kl[:40]) > 0)
    peak = int(np.argmax(f.gold))
    assert 0 < peak < betas.size - 1
    assert f.gold[peak] > f.gold[0] + 0.1 and f.gold[-1] < f.gold[0] - 0.5  # gold falls below where it started
    assert np.isclose(f.gold[-1], GOLD[4], atol=1e-6)  # all mass on the exploited response


@pytest.mark.parametrize("kwargs, message", [
    (dict(ref_probs=[0.5, 0.6], reward=[0.0, 1.0], beta=1.0), "ref_probs must be non-negative and sum to 1"),
    (dict(ref_probs=[1.0], reward=[0.0], beta=1.0), "at least 2 responses"),
    (dict(ref_probs=[0.5, 0.5], reward=[0.0, 1.0, 2.0], beta=1.0), r"reward must hold one reward per response"),
    (dict(ref_probs=[0.5, 0.5], reward=[0.0, np.nan], beta=1.0), "reward must be finite"),
    (dict(ref_probs=[0.5, 0.5], reward=[0.0, 1.0], beta=0.0), "beta must be a positive number"),
    (dict(ref_probs=[0.5, 0.5], reward=[0.0, 1.0], beta=[[1.0]]), "beta must be a positive number"),
])
def test_bad_input_raises_value_error_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kl_regularised_policy(**kwargs)
    with pytest.raises(ValueError, match="gold must hold one reward per response"):
        kl_frontier(REF, PROXY, GOLD[:3], [1.0])
