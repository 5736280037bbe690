"""The policy-gradient math: generalised advantage estimation, PPO's clipped losses, masked statistics.

One implementation serves the classic-control agents (``rl_basics.agents.reinforce``,
``a2c``, ``ppo``) and the language-model PPO trainer in ``rlhf``, so this module needs
torch only (no gymnasium, no numpy). Tensors are laid out time-first, ``(T, N)``
(CleanRL's layout); language-model code passes its ``(B, T)`` tensors transposed.

- :func:`compute_gae`: advantages and returns, cut at episode ends, bootstrapped on truncation
- :func:`masked_mean`, :func:`masked_var`, :func:`masked_whiten`: statistics over the valid
  entries only (whitening is PPO's advantage normalisation)
- :func:`explained_variance`: how much of the returns' variance the critic explains
- :func:`ppo_policy_loss`, :func:`ppo_value_loss`: PPO's clipped surrogate and (clipped) value loss
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from rl_basics.validation import check_unit_interval


def compute_gae(
    rewards: Tensor,
    values: Tensor,
    next_values: Tensor,
    terminated: Tensor,
    episode_end: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), time on axis 0.

    All inputs have the same shape ``(T, N)`` (or ``(T,)``)::

        delta_t = r_t + gamma * (1 - terminated_t) * next_values_t - values_t
        A_t     = delta_t + gamma * lam * (1 - episode_end_t) * A_{t+1},   A_T = 0
        returns = A + values

    Args:
        rewards: ``r_t``, the reward of the transition taken at step ``t``.
        values: ``V(s_t)``.
        next_values: ``V(s_{t+1})``; on a truncated step the caller passes V of the
            final observation, so the time limit does not look like a terminal state.
        terminated: 1 where ``s_{t+1}`` is a true terminal state (no bootstrap).
        episode_end: 1 where the episode ends at ``t`` (terminated or truncated, or the
            last real token): the lambda-recursion does not reach across it.
        gamma: discount factor in ``[0, 1]``.
        lam: GAE lambda in ``[0, 1]``: 0 gives the one-step TD error, 1 the Monte-Carlo
            return minus ``V`` (bootstrapped at the end of the rollout).

    Returns:
        ``(advantages, returns)``, both shaped like ``rewards``. Steps that are not real
        transitions (an autoreset step, padding) get numbers too; the caller masks them
        out of the losses. Because the episode end before such a step cuts the
        recursion, they never leak into the advantages of real steps.
    """
    check_unit_interval("gamma", gamma)
    check_unit_interval("lam", lam)
    shapes = {t.shape for t in (rewards, values, next_values, terminated, episode_end)}
    if len(shapes) != 1:
        raise ValueError(
            "compute_gae needs rewards, values, next_values, terminated and episode_end of one shape, got "
            f"{[tuple(t.shape) for t in (rewards, values, next_values, terminated, episode_end)]}"
        )
    dtype = values.dtype
    not_terminated = 1.0 - terminated.to(dtype)
    not_end = 1.0 - episode_end.to(dtype)
    deltas = rewards.to(dtype) + gamma * not_terminated * next_values - values
    advantages = torch.empty_like(deltas)
    running = torch.zeros_like(deltas[0])
    for t in range(deltas.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * not_end[t] * running
        advantages[t] = running
    return advantages, advantages + values


def masked_mean(x: Tensor, mask: Tensor | None = None, dim: int | Sequence[int] | None = None) -> Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1 (all entries when ``mask`` is None).

    ``dim`` as in ``Tensor.mean``; ``None`` averages everything. An all-zero mask gives 0.
    """
    if mask is None:
        return x.mean() if dim is None else x.mean(dim=dim)
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp_min(1.0)
    return (x * mask).sum(dim=dim) / mask.sum(dim=dim).clamp_min(1.0)


def masked_var(x: Tensor, mask: Tensor | None = None, unbiased: bool = True) -> Tensor:
    """Variance of ``x`` over the valid entries (Bessel-corrected when ``unbiased`` and more than one)."""
    if mask is None:
        if x.numel() < 2:
            return torch.zeros((), dtype=x.dtype, device=x.device)
        return torch.var(x, correction=1 if unbiased else 0)
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        var = torch.where(n > 1, var * n / (n - 1).clamp_min(1.0), var)
    return var


def masked_whiten(x: Tensor, mask: Tensor | None = None, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """Normalise ``x`` to unit variance (and zero mean when ``shift_mean``) using valid entries only.

    This is PPO's advantage normalisation. Invalid entries (``mask == 0``) are set to 0,
    so they cannot contribute even if a caller forgets to mask them later.
    """
    if mask is None and x.numel() > 1:
        var, mean = torch.var_mean(x)
    else:
        mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    if mask is not None:
        whitened = whitened * mask.to(x.dtype)
    return whitened


def explained_variance(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """``1 - Var(target - pred) / Var(target)`` over valid entries: 1 is a perfect critic,
    0 no better than predicting the mean, negative worse. NaN when ``target`` is constant."""
    pred, target = pred.detach(), target.detach()
    var_target = masked_var(target, mask).item()
    if var_target == 0.0:
        return float("nan")
    return 1.0 - masked_var(target - pred, mask).item() / var_target


def ppo_policy_loss(
    logp_new: Tensor,
    logp_old: Tensor,
    advantages: Tensor,
    clip_coef: float,
    mask: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO's clipped surrogate objective, as a loss to minimise.

    ``loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))`` with
    ``ratio = exp(logp_new - logp_old)``, averaged over the valid entries of ``mask``. Where the two
    terms are equal (every ratio inside ``[1 - eps, 1 + eps]``, including its edges) the gradient is
    the unclipped term's, ``-A * ratio * d log pi``: the objective's one-sided derivative from inside
    the trust region, the same on every torch release.

    Returns:
        ``(loss, stats)``; ``stats`` holds detached 0-dim tensors: ``approx_kl`` (the k3
        estimator ``mean((ratio - 1) - log ratio)`` of KL(old || new)), ``clip_frac``
        (the fraction of entries with ``|ratio - 1| > eps``) and ``ratio_mean``.
    """
    if clip_coef <= 0:
        raise ValueError(f"clip_coef must be > 0, got {clip_coef}")
    log_ratio = logp_new - logp_old
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_coef, 1.0 + clip_coef)
    # At a tie (inside the clip range, or exactly on its edge) take the unclipped term, so the gradient
    # is the policy gradient there on every torch: torch.maximum splits a tie's gradient in half, and
    # torch.clamp's gradient exactly on a bound is 1 on some releases and 0 on others.
    loss = masked_mean(torch.where(unclipped >= clipped, unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
            "clip_frac": masked_mean(((ratio - 1.0).abs() > clip_coef).to(ratio.dtype), mask),
            "ratio_mean": masked_mean(ratio, mask),
        }
    return loss, stats


def ppo_value_loss(
    values_new: Tensor,
    values_old: Tensor,
    returns: Tensor,
    clip_coef: float | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    """Half the mean squared error of the value prediction, optionally clipped around the old value.

    ``0.5 * mean(max((v - R)^2, (v_old + clip(v - v_old, -eps, eps) - R)^2))``; without
    clipping (``clip_coef=None``) simply ``0.5 * mean((v - R)^2)``.
    """
    unclipped = (values_new - returns) ** 2
    if clip_coef is None:
        return 0.5 * masked_mean(unclipped, mask)
    if clip_coef <= 0:
        raise ValueError(f"value clip_coef must be > 0 or None, got {clip_coef}")
    v_clipped = values_old + torch.clamp(values_new - values_old, -clip_coef, clip_coef)
    clipped = (v_clipped - returns) ** 2
    return 0.5 * masked_mean(torch.maximum(unclipped, clipped), mask)


__all__ = [
    "compute_gae",
    "explained_variance",
    "masked_mean",
    "masked_var",
    "masked_whiten",
    "ppo_policy_loss",
    "ppo_value_loss",
]
