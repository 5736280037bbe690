"""A causal language model seen as a policy: sampling, log-probabilities, KL, perplexity.

State = prompt + the tokens generated so far, action = the next token, episode = one
response (it ends at EOS or at a length limit). These helpers work for any
``AutoModelForCausalLM`` (the tiny Phi or phi-2) and its tokenizer.

Batches of prompts are **left**-padded for generation (so every row's next token is at the
last position) and position ids are computed from the attention mask, so padding never
changes a row's log-probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.tokens import (check_texts, decode_texts, encode_pairs, encode_texts, left_pad, log_probs, model_device,
                         position_ids_from_mask, response_mask, sample_tokens, sampling_uniforms, token_logprobs,
                         tokenize_prompts)

SAMPLE_STREAM = 200
"""The random stream of :func:`sample_responses` (see :func:`rlhf.tokens.sampling_uniforms`)."""


@torch.no_grad()
def sample_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 48,
    temperature: float = 1.0,
    seed: int | None = 0,
    batch_size: int = 64,
) -> list[str]:
    """Sample one response per prompt with the course's sampler (:func:`rlhf.tokens.sample_tokens`:
    pure sampling, top_k=0, top_p=1, logits divided by ``temperature``).

    Args:
        prompts: ``B`` prompt strings.
        max_new_tokens: length limit of a response in tokens; generation also stops at EOS.
        temperature: > 0; logits are divided by it before sampling (0 would be greedy decoding,
            which is not sampling).
        seed: the random numbers of prompt ``i`` depend on ``(seed, i)`` only, so the same seed gives
            the same responses in any batch size; None draws them from torch's global generator.
        batch_size: prompts per batch.

    Returns:
        ``B`` response strings (decoded new tokens, EOS and padding removed).
    """
    ids = tokenize_prompts(tokenizer, prompts, getattr(model.config, "max_position_embeddings", 10**9)
                           - max_new_tokens, truncate=False)
    device = model_device(model)
    was_training = model.training
    model.eval()
    responses: list[str] = []
    try:
        for start in range(0, len(ids), batch_size):
            rows = list(range(start, min(start + batch_size, len(ids))))
            query_ids, query_mask = left_pad([ids[i] for i in rows], tokenizer.pad_token_id)
            uniforms = (sampling_uniforms(seed, SAMPLE_STREAM, 0, rows, max_new_tokens) if seed is not None
                        else torch.rand(len(rows), max_new_tokens, dtype=torch.float64))
            tokens, _ = sample_tokens(model, query_ids.to(device), query_mask.to(device), uniforms, temperature,
                                      tokenizer.eos_token_id, tokenizer.pad_token_id)
            responses += decode_texts(tokenizer, query_ids, query_mask, tokens,
                                      response_mask(tokens, tokenizer.eos_token_id), with_prompt=False)
    finally:
        model.train(was_training)
    return responses


@torch.no_grad()
def response_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                      responses: Sequence[str], *, add_eos: bool = True, temperature: float = 1.0) -> np.ndarray:
    """``log pi(response | prompt)``: the sum of the response tokens' log-probabilities.

    Args:
        prompts, responses: ``B`` strings each.
        add_eos: count the EOS action that ends the episode (True for finished responses).
        temperature: the policy's sampling temperature.

    Returns:
        ``(B,)`` float array.
    """
    input_ids, attention, scored = encode_pairs(tokenizer, prompts, responses, add_eos)
    device = model_device(model)
    logp = token_logprobs(model, input_ids.to(device), attention.to(device), temperature).cpu()
    return (logp * scored).sum(-1).double().numpy()


def kl_per_token(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of ``KL(pi || pi_ref)`` at sampled tokens, from their log-probs (any shape).

    With ``rho = pi_ref(a|s) / pi(a|s)`` at the token ``a`` actually taken:
    ``k1 = -log rho = log pi - log pi_ref`` is unbiased but can be negative on a single token;
    ``k3 = (rho - 1) - log rho`` is unbiased too and never negative (Schulman, "Approximating
    KL divergence", 2020).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"estimator must be 'k1' or 'k3', got {estimator!r}")


@torch.no_grad()
def per_token_kl(policy: PreTrainedModel, reference: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 prompts: Sequence[str], responses: Sequence[str], *, estimator: str = "k1",
                 add_eos: bool = True) -> list[np.ndarray]:
    """Per-token KL(policy || reference) along responses sampled from ``policy``.

    - ``"k1"``, ``"k3"``: the estimators of :func:`kl_per_token` at the tokens actually taken;
    - ``"exact"``: ``sum_a pi(a|s_t) log(pi(a|s_t) / pi_ref(a|s_t))`` over the whole vocabulary.

    Both policies must share the tokenizer.

    Returns:
        ``B`` arrays, one per response, of shape ``(T_b,)`` (its response tokens, EOS included if ``add_eos``).
    """
    if estimator not in ("k1", "k3", "exact"):
        raise ValueError(f"estimator must be 'k1', 'k3' or 'exact', got {estimator!r}")
    input_ids, attention, scored = encode_pairs(tokenizer, prompts, responses, add_eos)
    device = model_device(policy)
    input_ids, attention = input_ids.to(device), attention.to(device)
    if estimator == "exact":
        position_ids = position_ids_from_mask(attention)
        logp = log_probs(policy(input_ids=input_ids, attention_mask=attention, position_ids=position_ids).logits)
        logq = log_probs(reference(input_ids=input_ids, attention_mask=attention, position_ids=position_ids).logits)
        kl = torch.nn.functional.pad((logp.exp() * (logp - logq)).sum(-1)[:, :-1], (1, 0)).cpu().double()
    else:
        kl = kl_per_token(token_logprobs(policy, input_ids, attention).cpu().double(),
                          token_logprobs(reference, input_ids, attention).cpu().double(), estimator)
    return [kl[b][scored[b].bool()].numpy() for b in range(len(prompts))]


@torch.no_grad()
def perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
               batch_size: int = 64) -> float:
    """Token-level perplexity of ``texts`` (each followed by EOS), first token excluded.

    The first token of a text has no context (no BOS token, as in phi-2), so every text
    contributes its tokens 2..n and the EOS that ends it; :func:`unigram_perplexity` scores
    the same tokens, so the two numbers are comparable.
    """
    check_texts("texts", texts)
    nll, count = 0.0, 0
    device = model_device(model)
    for start in range(0, len(texts), batch_size):
        input_ids, attention, scored = encode_texts(tokenizer, texts[start:start + batch_size])
        logp = token_logprobs(model, input_ids.to(device), attention.to(device)).cpu()
        nll -= float((logp * scored).sum())
        count += int(scored.sum())
    return math.exp(nll / count)


def unigram_perplexity(tokenizer: PreTrainedTokenizerBase, train_texts: Sequence[str],
                       eval_texts: Sequence[str]) -> float:
    """Perplexity of an add-one-smoothed unigram model of the training tokens on ``eval_texts``.

    Scores the same tokens as :func:`perplexity` (each text's tokens after the first, plus EOS),
    so it is the baseline a language model must beat by using context.
    """
    vocab = len(tokenizer)
    counts = np.ones(vocab)
    for text in train_texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        np.add.at(counts, ids, 1)
    logp = np.log(counts / counts.sum())
    nll, count = 0.0, 0
    for text in eval_texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        nll -= logp[ids[1:]].sum()
        count += len(ids) - 1
    return float(math.exp(nll / count))
