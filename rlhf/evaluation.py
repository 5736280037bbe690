"""One yardstick for every policy of chapters 11 and 12: gold reward, KL to the reference, proxy, length.

:func:`evaluate_policy` samples one response per held-out prompt with the course's sampler
(:func:`rlhf.tokens.sample_tokens`, with random numbers that depend on the seed and the prompt's
index only, so every policy is judged on the same random numbers) and measures the gold reward
(chapter 10's gold rater), the KL divergence to the reference (summed over the response, in
nats), the proxy reward-model score and the response length. Chapter 9 uses it for the SFT
policy, chapter 11 for PPO (:func:`ppo_policy`), chapter 12 for DPO, GRPO and RLOO.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

from rlhf.scoring import RewardScorer
from rlhf.tokens import (decode_texts, left_pad, model_device, response_mask, sample_tokens, sampling_uniforms,
                         token_logprobs, tokenize_prompts)

EVAL_STREAM = 101
"""Random stream of evaluation samples (disjoint from the PPO trainer's streams)."""


@dataclass
class PolicyEvaluation:
    """What :func:`evaluate_policy` measures on ``n`` held-out prompts (one sample each).

    The means are the table's numbers; the per-sample arrays are kept for plots and error bars.
    """

    gold: np.ndarray
    """``(n,)`` gold score of prompt + response (chapter 10's gold rater), in [0, 1]."""
    kl: np.ndarray
    """``(n,)`` ``sum_t log pi(a_t|s_t) - log pi_ref(a_t|s_t)`` over the response: an unbiased
    estimate of the sequence-level ``KL(pi || pi_ref)`` in nats (k1 estimator)."""
    length: np.ndarray
    """``(n,)`` response length in tokens (EOS included when emitted)."""
    eos: np.ndarray
    """``(n,)`` 1 where the response emitted EOS within the length limit."""
    proxy: np.ndarray | None
    """``(n,)`` raw reward-model score, or None when no reward model was given."""
    texts: list[str]
    """The whole texts (prompt + response) that were rated."""

    @property
    def n(self) -> int:
        return len(self.gold)

    def summary(self) -> dict[str, float]:
        """Means (and the gold reward's standard error) as a flat dict."""
        out = {
            "gold": float(self.gold.mean()),
            "gold_sem": float(self.gold.std(ddof=1) / math.sqrt(self.n)) if self.n > 1 else float("nan"),
            "kl": float(self.kl.mean()),
            "length": float(self.length.mean()),
            "eos_fraction": float(self.eos.mean()),
        }
        if self.proxy is not None:
            out["proxy"] = float(self.proxy.mean())
        return out

    def head(self, n: int) -> PolicyEvaluation:
        """The measurements of the first ``n`` prompts only.

        :func:`evaluate_policy`'s random numbers depend on the seed and the prompt's index, so this
        is what evaluating the same policy on ``prompts[:n]`` with the same seed gives, without
        sampling those prompts again (bit for bit when ``n`` is a multiple of the batch size).
        """
        if not 1 <= n <= self.n:
            raise ValueError(f"head(n) needs 1 <= n <= {self.n}, got {n}")
        return PolicyEvaluation(gold=self.gold[:n], kl=self.kl[:n], length=self.length[:n], eos=self.eos[:n],
                                proxy=None if self.proxy is None else self.proxy[:n], texts=self.texts[:n])


@contextmanager
def _reference_of(policy: torch.nn.Module, reference: torch.nn.Module | None):
    """The reference model: ``reference`` if given, else ``policy`` with its adapters disabled."""
    if reference is not None:
        yield reference
    elif isinstance(policy, PeftModel):
        with policy.disable_adapter():
            yield policy
    else:
        raise ValueError(
            "no reference model: pass reference= (e.g. the SFT model), or a peft policy whose "
            "adapter-disabled base is the reference"
        )


@torch.no_grad()
def sample_and_score(
    policy: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    reference: torch.nn.Module | None = None,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    stream: int = EVAL_STREAM,
    batch_size: int = 64,
) -> dict[str, Any]:
    """Sample one response per prompt and score it under the policy and the reference.

    Sampling uses the course's sampler with random numbers that depend on ``(seed, stream,
    prompt index)`` only, so two policies evaluated with the same seed see the same prompts
    *and* the same random numbers (common random numbers: their difference is measured with
    less noise than their values).

    Returns:
        dict with ``query_ids``/``query_mask`` (lists of per-batch tensors), ``responses``,
        ``mask``, ``logprobs``, ``ref_logprobs`` (lists of ``[b, R]`` tensors) and ``texts``.
    """
    context = getattr(getattr(policy, "config", None), "max_position_embeddings", None) or 10**9
    ids = tokenize_prompts(tokenizer, prompts, max(1, context - max_new_tokens), truncate=False)
    device = model_device(policy)
    was_training = policy.training
    policy.eval()
    out: dict[str, list] = {"query_ids": [], "query_mask": [], "responses": [], "mask": [], "logprobs": [],
                            "ref_logprobs": [], "texts": []}
    try:
        for start in range(0, len(ids), batch_size):
            rows = list(range(start, min(start + batch_size, len(ids))))
            query_ids, query_mask = left_pad([ids[i] for i in rows], tokenizer.pad_token_id)
            query_ids, query_mask = query_ids.to(device), query_mask.to(device)
            uniforms = sampling_uniforms(seed, stream, 0, rows, max_new_tokens)
            responses, logprobs = sample_tokens(policy, query_ids, query_mask, uniforms, temperature,
                                                tokenizer.eos_token_id, tokenizer.pad_token_id)
            mask = response_mask(responses, tokenizer.eos_token_id)
            input_ids = torch.cat([query_ids, responses], 1)
            attention = torch.cat([query_mask, mask], 1)
            with _reference_of(policy, reference) as ref:
                ref_device = model_device(ref)
                ref_logprobs = token_logprobs(ref, input_ids.to(ref_device), attention.to(ref_device), temperature,
                                              last=responses.shape[1]).to(device)
            out["query_ids"].append(query_ids)
            out["query_mask"].append(query_mask)
            out["responses"].append(responses)
            out["mask"].append(mask)
            out["logprobs"].append(logprobs * mask)
            out["ref_logprobs"].append(ref_logprobs * mask)
            out["texts"] += decode_texts(tokenizer, query_ids, query_mask, responses, mask)
    finally:
        policy.train(was_training)
    return out


@torch.no_grad()
def evaluate_policy(
    policy: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    reference: torch.nn.Module | None = None,
    gold: Callable[[list[str]], np.ndarray] | Any | None = None,
    reward_scorer: RewardScorer | None = None,
    max_new_tokens: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 64,
) -> PolicyEvaluation:
    """Gold reward, KL to the reference, proxy reward and length of a policy's samples.

    Args:
        policy: a causal LM (or a peft model; ``trainer.policy_value.model`` for chapter 11's
            PPO, see :func:`ppo_policy`).
        tokenizer: its tokenizer (pad distinct from EOS).
        prompts: held-out prompts, one sample each.
        reference: the reference policy (the SFT model). None: ``policy`` must be a peft
            model, and its base with the adapters disabled is the reference.
        gold: the gold rater (anything with ``score(texts)``) or a ``texts -> scores``
            function; None uses :class:`rlhf.gold.GoldRater` with its defaults.
        reward_scorer: optional :class:`rlhf.scoring.RewardScorer` for the proxy reward.
        max_new_tokens, temperature: the sampling settings of the methods being compared
            (chapter 11's PPO: 32 tokens at temperature 1).
        seed: seeds the sampler (same seed: same random numbers for every policy).
        batch_size: prompts per generation batch.
    """
    if gold is None:
        from rlhf.gold import GoldRater

        gold = GoldRater()
    score_fn = gold.score if hasattr(gold, "score") else gold
    s = sample_and_score(policy, tokenizer, prompts, reference=reference, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed, batch_size=batch_size)
    kl = torch.cat([(lp - rp).sum(1) for lp, rp in zip(s["logprobs"], s["ref_logprobs"])])
    length = torch.cat([m.sum(1) for m in s["mask"]])
    eos = torch.cat([(r == tokenizer.eos_token_id).any(1) for r in s["responses"]])
    proxy = None
    if reward_scorer is not None:
        proxy = torch.cat([reward_scorer(q, qm, r, m) for q, qm, r, m in
                           zip(s["query_ids"], s["query_mask"], s["responses"], s["mask"])]).cpu().numpy()
    gold_scores = np.asarray(score_fn(s["texts"]), dtype=np.float64)
    return PolicyEvaluation(gold=gold_scores, kl=kl.double().cpu().numpy(), length=length.double().cpu().numpy(),
                            eos=eos.double().cpu().numpy(), proxy=proxy, texts=s["texts"])


def ppo_policy(trainer) -> PeftModel:
    """Chapter 11's trained PPO policy as a peft model for :func:`evaluate_policy`.

    The course's PPO keeps policy, value and reference on one base: the ``"policy"`` LoRA
    adapter is made the active one, and with adapters disabled the same model is the
    reference (pass ``reference=None``).
    """
    from rlhf.policy_value import POLICY

    model = trainer.policy_value.model
    model.set_adapter(POLICY)
    return model


__all__ = ["EVAL_STREAM", "PolicyEvaluation", "evaluate_policy", "ppo_policy", "sample_and_score"]
