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
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.value_head import position_ids_from_mask


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _check_texts(name: str, texts: Sequence[str]) -> None:
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")


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
    """Sample one response per prompt (pure sampling: top_k=0, top_p=1, divided by ``temperature``).

    Args:
        prompts: ``B`` prompt strings.
        max_new_tokens: length limit of a response in tokens; generation also stops at EOS.
        temperature: > 0; logits are divided by it before sampling. ``temperature=0`` is not
            sampling: use ``greedy=True`` of ``model.generate`` for that.
        seed: seeds torch's RNG before sampling (None leaves it alone).
        batch_size: prompts per ``generate`` call.

    Returns:
        ``B`` response strings (decoded new tokens, EOS and padding removed).
    """
    _check_texts("prompts", prompts)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    responses: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(list(prompts[start:start + batch_size]), return_tensors="pt", padding=True)
            batch = {k: v.to(_device(model)) for k, v in batch.items()}
            out = model.generate(
                **batch,
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
            new_tokens = out[:, batch["input_ids"].shape[1]:]
            responses += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)
    return responses


def _left_pad(rows: list[list[int]], masks: list[list[int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """Left-pad token rows and their 0/1 scoring masks to a ``(B, L)`` batch.

    Returns:
        input_ids ``(B, L)``, attention_mask ``(B, L)`` (0 on padding), mask ``(B, L)`` (0 on padding).
    """
    length = max(len(r) for r in rows)
    input_ids = torch.tensor([[pad_id] * (length - len(r)) + r for r in rows])
    attention = torch.tensor([[0] * (length - len(r)) + [1] * len(r) for r in rows])
    mask = torch.tensor([[0] * (length - len(m)) + m for m in masks])
    return input_ids, attention, mask


def _encode_pairs(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str],
                  add_eos: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded ``prompt + response (+ EOS)`` ids with a mask of the response tokens.

    The prompt and the response are tokenized separately and concatenated, so the response
    tokens are exactly the actions the policy would have taken.

    Returns:
        input_ids ``(B, L)``, attention_mask ``(B, L)``, response_mask ``(B, L)`` (1 on response tokens).
    """
    if len(prompts) != len(responses):
        raise ValueError(f"got {len(prompts)} prompts but {len(responses)} responses; they must pair up")
    rows, masks = [], []
    for prompt, response in zip(prompts, responses):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r = tokenizer(response, add_special_tokens=False)["input_ids"] + ([tokenizer.eos_token_id] if add_eos else [])
        if not p:
            raise ValueError(f"prompt {prompt!r} is empty after tokenization; every response needs a prompt")
        rows.append(p + r)
        masks.append([0] * len(p) + [1] * len(r))
    return _left_pad(rows, masks, tokenizer.pad_token_id)


def token_logprobs(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """Log-probability of each token given the tokens before it.

    Position ids come from the attention mask, so left padding does not shift positions.

    Args:
        input_ids: ``(B, L)`` token ids.
        attention_mask: ``(B, L)``, 0 on padding.
        temperature: logits are divided by it (match the sampling temperature).

    Returns:
        ``(B, L)`` tensor: entry ``[b, t]`` is ``log pi(x_t | x_<t)`` for ``t >= 1``; column 0 is 0.
    """
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids_from_mask(attention_mask)).logits
    logp = F.log_softmax(logits[:, :-1].float() / temperature, dim=-1)
    picked = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return F.pad(picked, (1, 0))


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
    _check_texts("prompts", prompts)
    _check_texts("responses", responses)
    input_ids, attention, response_mask = _encode_pairs(tokenizer, prompts, responses, add_eos)
    device = _device(model)
    logp = token_logprobs(model, input_ids.to(device), attention.to(device), temperature).cpu()
    return (logp * response_mask).sum(-1).double().numpy()


@torch.no_grad()
def per_token_kl(policy: PreTrainedModel, reference: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                 prompts: Sequence[str], responses: Sequence[str], *, estimator: str = "k1",
                 add_eos: bool = True) -> list[np.ndarray]:
    """Per-token KL(policy || reference) along responses sampled from ``policy``.

    With ``r_t = pi_ref(a_t|s_t) / pi(a_t|s_t)`` at the token ``a_t`` actually taken:

    - ``"k1"``: ``-log r_t`` — unbiased, can be negative on single tokens;
    - ``"k3"``: ``(r_t - 1) - log r_t`` — unbiased and never negative (Schulman's estimator);
    - ``"exact"``: ``sum_a pi(a|s_t) log(pi(a|s_t) / pi_ref(a|s_t))`` over the whole vocabulary.

    Both policies must share the tokenizer.

    Returns:
        ``B`` arrays, one per response, of shape ``(T_b,)`` (its response tokens, EOS included if ``add_eos``).
    """
    if estimator not in ("k1", "k3", "exact"):
        raise ValueError(f"estimator must be 'k1', 'k3' or 'exact', got {estimator!r}")
    input_ids, attention, response_mask = _encode_pairs(tokenizer, prompts, responses, add_eos)
    device = _device(policy)
    input_ids, attention = input_ids.to(device), attention.to(device)
    if estimator == "exact":
        position_ids = position_ids_from_mask(attention)
        logp = F.log_softmax(policy(input_ids=input_ids, attention_mask=attention,
                                    position_ids=position_ids).logits.float(), -1)
        logq = F.log_softmax(reference(input_ids=input_ids, attention_mask=attention,
                                       position_ids=position_ids).logits.float(), -1)
        kl = F.pad((logp.exp() * (logp - logq)).sum(-1)[:, :-1], (1, 0)).cpu().double()
    else:
        log_ratio = (token_logprobs(reference, input_ids, attention) - token_logprobs(policy, input_ids, attention))
        log_ratio = log_ratio.cpu().double()
        kl = -log_ratio if estimator == "k1" else log_ratio.exp() - 1 - log_ratio
    return [kl[b][response_mask[b].bool()].numpy() for b in range(len(prompts))]


@torch.no_grad()
def perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
               batch_size: int = 64) -> float:
    """Token-level perplexity of ``texts`` (each followed by EOS), first token excluded.

    The first token of a text has no context (no BOS token, as in phi-2), so every text
    contributes its tokens 2..n and the EOS that ends it; :func:`unigram_perplexity` scores
    the same tokens, so the two numbers are comparable.
    """
    _check_texts("texts", texts)
    nll, count = 0.0, 0
    for start in range(0, len(texts), batch_size):
        input_ids, attention, mask = _encode_texts(tokenizer, texts[start:start + batch_size])
        device = _device(model)
        logp = token_logprobs(model, input_ids.to(device), attention.to(device)).cpu()
        nll -= float((logp * mask).sum())
        count += int(mask.sum())
    return math.exp(nll / count)


def _encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Left-padded ``text + EOS`` ids and a mask of every token but the first."""
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    return _left_pad(rows, [[0] + [1] * (len(r) - 1) for r in rows], tokenizer.pad_token_id)


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
