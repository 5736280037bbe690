"""A causal language model's token mechanics, written once for every chapter.

State = prompt + the tokens generated so far, action = the next token. Everything that turns
text into the tensors of that view, samples actions and reads their probabilities back lives
here, and the SFT samples (chapter 9), the PPO rollout and critic (chapter 11) and the shared
evaluation (chapter 12) all go through it:

* **layout** — :func:`tokenize_prompts` (prompts checked against the context window),
  :func:`left_pad` (every row's next token in the last column), :func:`encode_pairs` /
  :func:`encode_texts` (prompt + response with a mask of the tokens to score),
  :func:`position_ids_from_mask` (padding never shifts a position), :func:`pack_rows` /
  :func:`unpack` (real tokens end to end, no compute spent on padding);
* **probabilities** — :func:`log_probs` (``log softmax(logits / T)`` in float32, the one place
  it is computed), :func:`token_logprobs` (each token given the tokens before it);
* **sampling** — :func:`sampling_uniforms` and :func:`sample_tokens`, the course's one sampler
  (ancestral sampling at temperature ``T``, top-k 0, top-p 1), :func:`response_mask`;
* **decoding** — :func:`decode_texts`.

Shapes: ``B`` sequences, prompts ``[B, P]``, responses ``[B, R]``, whole rows ``[B, L]``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of ``model``'s parameters (where its inputs must go)."""
    return next(model.parameters()).device


# --------------------------------------------------------------------------- layout


def check_texts(name: str, texts: Sequence[str]) -> None:
    """Raise ``TypeError`` unless ``texts`` is a list of strings (a lone string is a common slip)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int, truncate: bool
) -> list[list[int]]:
    """Token ids of each prompt, at most ``max_length`` long.

    A prompt that does not fit raises ``ValueError`` or, with ``truncate``, loses its first
    tokens (the end of a prompt is what the response continues) with a warning: never
    silently.
    """
    check_texts("prompts", prompts)
    if not prompts:
        raise ValueError("prompts is empty: at least one prompt is needed to sample a response for")
    ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
    too_long = [(i, len(x)) for i, x in enumerate(ids) if len(x) > max_length]
    if too_long:
        i, n = too_long[0]
        what = f"{len(too_long)} prompt(s) exceed {max_length} tokens (e.g. prompt {i}: {n} tokens, {prompts[i][:60]!r}...)"
        if not truncate:
            raise ValueError(
                f"{what}; max_prompt_length + max_new_tokens must fit the model's context window. "
                "Shorten the prompts, lower max_new_tokens, or set truncate_prompts=True to keep their last tokens."
            )
        warnings.warn(f"{what}: truncated on the left to their last {max_length} tokens", stacklevel=2)
        ids = [x[-max_length:] for x in ids]
    if any(len(x) == 0 for x in ids):
        raise ValueError(f"prompt {next(i for i, x in enumerate(ids) if not x)} is empty after tokenisation")
    return ids


def left_pad(
    rows: Sequence[Sequence[int]], pad_token_id: int, masks: Sequence[Sequence[int]] | None = None
) -> tuple[Tensor, ...]:
    """Token rows padded on the left into one batch, so every row's next token is in the last column.

    Args:
        rows: ``B`` lists of token ids.
        masks: optional ``B`` lists of 0/1 flags, one per token (e.g. which tokens to score).

    Returns:
        ``(input_ids, attention_mask)``, both ``[B, L]`` (``L`` the longest row; the mask is 0 on
        padding), and the ``masks`` padded with 0 as a third ``[B, L]`` tensor when given.
    """
    length = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), length), dtype=torch.long)
    for b, row in enumerate(rows):
        if len(row):
            input_ids[b, length - len(row):] = torch.as_tensor(row, dtype=torch.long)
            attention_mask[b, length - len(row):] = 1
    if masks is None:
        return input_ids, attention_mask
    padded = torch.zeros_like(attention_mask)
    for b, flags in enumerate(masks):
        if len(flags):
            padded[b, length - len(flags):] = torch.as_tensor(flags, dtype=torch.long)
    return input_ids, attention_mask, padded


def encode_pairs(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str],
                 add_eos: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Left-padded ``prompt + response (+ EOS)`` ids with a mask of the response tokens.

    The prompt and the response are tokenised separately and concatenated, so the response
    tokens are exactly the actions the policy would have taken.

    Returns:
        input_ids ``[B, L]``, attention_mask ``[B, L]``, response_mask ``[B, L]`` (1 on response tokens).
    """
    check_texts("prompts", prompts)
    check_texts("responses", responses)
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
    return left_pad(rows, tokenizer.pad_token_id, masks)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> tuple[Tensor, Tensor, Tensor]:
    """Left-padded ``text + EOS`` ids ``[B, L]``, attention mask, and a mask of every token but the first
    (the first token of a text has no context to be predicted from)."""
    check_texts("texts", texts)
    rows = [tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for t in texts]
    return left_pad(rows, tokenizer.pad_token_id, [[0] + [1] * (len(r) - 1) for r in rows])


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Positions ``[B, L]`` that count only real tokens, so a left-padded prompt starts at 0.

    Without them a prompt padded with ``k`` tokens sees its tokens at positions ``k, k+1, ...``.
    Models with absolute position embeddings (GPT-2, OPT) then read a different input than
    the same prompt unpadded; with rotary embeddings (phi-2) a common offset cancels in exact
    arithmetic but not in floating point, and the sampler's positions must match anyway.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def pack_rows(attention_mask: Tensor) -> tuple[Tensor, int, int]:
    """Lay the real tokens of a padded batch ``[B, L]`` end to end in ``n_bins`` rows as wide
    as the longest sequence (first-fit decreasing). Returns ``(where, n_bins, width)``: where
    each token goes, an index ``[B, L]`` into the flattened ``[n_bins, width]`` layout
    (meaningless on padding), and that layout's shape.

    Padding costs compute in every linear layer; RLHF batches of short responses are about
    half padding. Packed, each sequence's position ids restart at 0, and transformers'
    attention masks keep the sequences of one row apart (a position id that does not follow
    its predecessor starts a new sequence), so every token sees exactly what it sees padded.
    """
    lengths = attention_mask.sum(1).tolist()
    width = max(lengths)
    free: list[int] = []  # space left in each bin
    starts = [0] * len(lengths)
    for row in sorted(range(len(lengths)), key=lambda r: -lengths[r]):
        bin_ = next((k for k, space in enumerate(free) if space >= lengths[row]), len(free))
        if bin_ == len(free):
            free.append(width)
        starts[row] = bin_ * width + width - free[bin_]
        free[bin_] -= lengths[row]
    where = torch.tensor(starts, device=attention_mask.device)[:, None] + position_ids_from_mask(attention_mask)
    return where, len(free), width


def unpack(packed: Tensor, mask: Tensor) -> Tensor:
    """Values ``[n]`` of the ``n`` true entries of ``mask`` ``[B, R]`` laid out as ``[B, R]``, 0 elsewhere."""
    return torch.zeros(mask.shape, dtype=packed.dtype, device=packed.device).masked_scatter(mask, packed)


# --------------------------------------------------------------------------- probabilities


def log_probs(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``log softmax(logits / temperature)`` over the last axis, in float32 whatever the model's dtype.

    Every log-probability of the course goes through here: in bf16 the log-softmax of a 51k-token
    vocabulary loses about two decimal digits, and PPO's ratio ``exp(logp_new - logp_old)`` must be
    exactly 1 before the first update, so sampler and trainer must compute it alike.
    """
    return torch.log_softmax(logits.float() / temperature, dim=-1)


def token_logprobs(model: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor,
                   temperature: float = 1.0, last: int | None = None) -> Tensor:
    """Log-probability of each token given the tokens before it (one forward pass).

    Position ids come from the attention mask, so left padding does not shift positions.

    Args:
        input_ids: ``[B, L]`` token ids.
        attention_mask: ``[B, L]``, 0 on padding.
        temperature: logits are divided by it (match the sampling temperature).
        last: only the last ``last`` tokens (e.g. a response of that length): the model computes
            just the logits that predict them.

    Returns:
        ``[B, L]``: entry ``[b, t]`` is ``log pi(x_t | x_<t)`` for ``t >= 1``, column 0 is 0; with
        ``last``, ``[B, last]`` for the last tokens.
    """
    keep = 0 if last is None else last + 1  # logits_to_keep=0 keeps every position
    logits = model(input_ids=input_ids, attention_mask=attention_mask,
                   position_ids=position_ids_from_mask(attention_mask), logits_to_keep=keep).logits
    targets = input_ids[:, 1:] if last is None else input_ids[:, -last:]
    picked = log_probs(logits[:, :-1], temperature).gather(-1, targets[..., None]).squeeze(-1)
    return picked if last is not None else torch.nn.functional.pad(picked, (1, 0))


# --------------------------------------------------------------------------- sampling


def sampling_uniforms(seed: int, stream: int, step: int, positions: Sequence[int], length: int) -> Tensor:
    """Uniform random numbers ``[B, length]`` (float64) for the rows ``positions`` of a global
    batch: row ``b`` is seeded by ``(seed, stream, step, positions[b])`` alone, so it does not
    matter which process samples it or in which local batch."""
    return torch.from_numpy(np.stack([np.random.default_rng([seed, stream, step, int(i)]).random(length) for i in positions]))


def kv_cache_argument(lm: torch.nn.Module) -> str:
    """The name under which ``lm``'s forward takes and returns its KV cache: ``cache`` from
    transformers 5.2x (where ``past_key_values`` is deprecated), ``past_key_values`` before."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


@torch.no_grad()
def sample_tokens(
    lm: PreTrainedModel,
    input_ids: Tensor,
    attention_mask: Tensor,
    uniforms: Tensor,
    temperature: float,
    eos_token_id: int,
    pad_token_id: int,
) -> tuple[Tensor, Tensor]:
    """Sample one response per left-padded prompt, token by token with a KV cache.

    At each step the next token is drawn from ``softmax(logits / temperature)`` by inverting
    its cumulative distribution at ``uniforms[:, t]`` (top-k 0, top-p 1: the whole
    distribution). A sequence stops at its first EOS; later columns hold ``pad_token_id``.

    Args:
        lm: the causal LM to sample from (the policy adapter active, or none for the reference).
        input_ids, attention_mask: prompts ``[B, P]``, left-padded.
        uniforms: ``[B, R]`` numbers in [0, 1); ``R`` is the maximum response length.

    Returns:
        ``(responses, logprobs)``, both ``[B, R]``: the token ids, and their log-probabilities
        under the temperature-scaled distribution (0 after EOS).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature} (a temperature of 0 is greedy decoding, "
                         "not sampling)")
    batch, max_new_tokens = uniforms.shape
    device = input_ids.device
    uniforms = uniforms.to(device)
    responses = torch.full((batch, max_new_tokens), pad_token_id, dtype=torch.long, device=device)
    logprobs = torch.zeros((batch, max_new_tokens), device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    position_ids = position_ids_from_mask(attention_mask)
    step_ids, cache = input_ids, None
    cache_name = kv_cache_argument(lm)
    for t in range(max_new_tokens):
        out = lm(
            input_ids=step_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{cache_name: cache},
        )
        cache = getattr(out, cache_name)
        logp = log_probs(out.logits[:, -1], temperature)
        cdf = logp.double().exp().cumsum(-1)
        token = torch.searchsorted(cdf, uniforms[:, t : t + 1] * cdf[:, -1:], right=True).squeeze(-1)
        token = token.clamp(max=cdf.shape[-1] - 1)
        responses[:, t] = torch.where(finished, pad_token_id, token)
        logprobs[:, t] = torch.where(finished, 0.0, logp.gather(-1, token[:, None]).squeeze(-1))
        finished |= token == eos_token_id
        if finished.all():
            break
        step_ids = token[:, None]
        attention_mask = torch.cat([attention_mask, torch.ones_like(attention_mask[:, :1])], dim=1)
        position_ids = position_ids[:, -1:] + 1
    return responses, logprobs


def response_mask(responses: Tensor, eos_token_id: int) -> Tensor:
    """1 for the real tokens of each response ``[B, R]``: everything up to and including the first EOS."""
    is_eos = (responses == eos_token_id).long()
    eos_before = is_eos.cumsum(-1) - is_eos
    return (eos_before == 0).long()


# --------------------------------------------------------------------------- decoding


def decode_texts(tokenizer: PreTrainedTokenizerBase, query_ids: Tensor, query_mask: Tensor, responses: Tensor,
                 mask: Tensor, with_prompt: bool = True) -> list[str]:
    """Texts of the real tokens (special tokens dropped), as a reader sees them: prompt + response
    (or the response alone without ``with_prompt``) of prompts ``[B, P]`` and responses ``[B, R]``."""
    return [
        tokenizer.decode(torch.cat([q[qm.bool()], r[m.bool()]]) if with_prompt else r[m.bool()],
                         skip_special_tokens=True)
        for q, qm, r, m in zip(query_ids, query_mask, responses, mask)
    ]
