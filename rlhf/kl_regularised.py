"""The KL-regularised objective of RLHF, solved exactly on a finite set of responses.

For one prompt with finitely many responses ``y``, reference probabilities ``pi_ref(y)`` and a
reward ``r(y)``, the objective that PPO-RLHF optimises (chapter 11) and DPO reparametrises
(chapter 12),

.. math:: \\max_\\pi \\; \\mathbb{E}_{y \\sim \\pi}[r(y)] - \\beta\\, \\mathrm{KL}(\\pi \\,\\|\\, \\pi_\\text{ref}),

has the closed-form optimum

.. math:: \\pi_\\beta(y) = \\pi_\\text{ref}(y)\\, e^{r(y)/\\beta} / Z(\\beta).

Large ``beta`` keeps ``pi_beta`` at the reference; ``beta -> 0`` puts all mass on the
responses with the largest reward. Optimising a *proxy* reward (a reward model) and
measuring a *gold* reward along the way traces the reward–KL frontier on which Gao et al.
(2022) observed over-optimisation: the proxy keeps rising as ``beta`` falls while the gold
reward peaks and falls.

- :func:`kl_regularised_policy` — ``pi_beta`` for one ``beta`` or many;
- :func:`kl_divergence` — ``KL(p || q)`` over the last axis;
- :func:`kl_frontier` — ``pi_beta`` and its expected proxy and gold reward and KL, per ``beta``
  (:class:`KLFrontier`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["KLFrontier", "kl_divergence", "kl_frontier", "kl_regularised_policy"]


def _check_distribution(name: str, p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    if p.ndim != 1 or p.size < 2:
        raise ValueError(f"{name} must be a 1-D array of probabilities over at least 2 responses, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-6):
        raise ValueError(f"{name} must be non-negative and sum to 1 (got sum {p.sum():.6g}); normalise it first")
    return p


def _check_reward(name: str, reward: np.ndarray, n: int) -> np.ndarray:
    reward = np.asarray(reward, dtype=float)
    if reward.shape != (n,):
        raise ValueError(f"{name} must hold one reward per response, shape ({n},), got {reward.shape}")
    if not np.all(np.isfinite(reward)):
        raise ValueError(f"{name} must be finite")
    return reward


def _check_betas(beta: float | np.ndarray) -> np.ndarray:
    betas = np.asarray(beta, dtype=float)
    if betas.ndim > 1 or not np.all(np.isfinite(betas)) or np.any(betas <= 0):
        raise ValueError(f"beta must be a positive number or a 1-D array of them, got {beta!r}; "
                         "beta = 0 is plain reward maximisation, which has no KL-regularised solution to return")
    return betas


def kl_regularised_policy(ref_probs: np.ndarray, reward: np.ndarray, beta: float | np.ndarray) -> np.ndarray:
    """The optimum ``pi_beta(y) ∝ pi_ref(y) exp(r(y) / beta)`` of the KL-regularised objective.

    Args:
        ref_probs: ``(N,)`` reference probabilities of the N responses (summing to 1; a
            response with probability 0 stays at 0 for every ``beta``).
        reward: ``(N,)`` reward of each response.
        beta: the KL coefficient, a positive number, or ``(B,)`` of them.

    Returns:
        ``(N,)`` probabilities for a scalar ``beta``, ``(B, N)`` for an array. Computed in log
        space, so tiny ``beta`` (a near-greedy policy) does not overflow.
    """
    ref_probs = _check_distribution("ref_probs", ref_probs)
    reward = _check_reward("reward", reward, ref_probs.size)
    betas = _check_betas(beta)
    with np.errstate(divide="ignore"):
        logits = np.log(ref_probs) + reward / betas[..., None]  # (B, N) or (N,)
    logits -= logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=-1, keepdims=True)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``KL(p || q) = sum_y p(y) log(p(y) / q(y))`` in nats over the last axis (``0 log 0 = 0``).

    ``p`` and ``q`` broadcast against each other, e.g. ``(B, N)`` policies against one ``(N,)``
    reference give ``(B,)``. Infinite where ``p`` puts mass on a response that ``q`` excludes.
    """
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


@dataclass
class KLFrontier:
    """The KL-regularised optima of a proxy reward, measured with the proxy and a gold reward.

    Attributes:
        betas: ``(B,)`` KL coefficients.
        policies: ``(B, N)`` the optimum ``pi_beta`` of the *proxy* reward for each ``beta``.
        proxy: ``(B,)`` expected proxy reward ``E_{pi_beta}[proxy]`` (what the optimiser sees).
        gold: ``(B,)`` expected gold reward ``E_{pi_beta}[gold]`` (what we actually want).
        kl: ``(B,)`` ``KL(pi_beta || pi_ref)`` in nats.
    """

    betas: np.ndarray
    policies: np.ndarray
    proxy: np.ndarray
    gold: np.ndarray
    kl: np.ndarray


def kl_frontier(ref_probs: np.ndarray, proxy: np.ndarray, gold: np.ndarray, betas: np.ndarray) -> KLFrontier:
    """Optimise ``proxy`` under a KL penalty for each ``beta``; measure proxy, gold and KL.

    Args:
        ref_probs: ``(N,)`` reference probabilities.
        proxy: ``(N,)`` the reward being optimised (a reward model's score).
        gold: ``(N,)`` the reward we care about (the gold rater's score), never optimised.
        betas: ``(B,)`` positive KL coefficients.
    """
    ref_probs = _check_distribution("ref_probs", ref_probs)
    proxy = _check_reward("proxy", proxy, ref_probs.size)
    gold = _check_reward("gold", gold, ref_probs.size)
    betas = np.atleast_1d(_check_betas(betas))
    policies = kl_regularised_policy(ref_probs, proxy, betas)
    return KLFrontier(betas=betas, policies=policies, proxy=policies @ proxy, gold=policies @ gold,
                      kl=kl_divergence(policies, ref_probs))
