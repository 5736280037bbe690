"""The rollout half of PPO-RLHF: prompts in, scored responses out.

* :func:`tokenize_prompts` / :func:`left_pad` — prompts as token ids, checked against the
  context window, left-padded so every response starts in the same column.
* :func:`sampling_uniforms` / :func:`sample_tokens` — ancestral sampling at temperature
  ``T`` with top-k 0 and top-p 1 (the policy's own distribution, nothing cut off). The random
  numbers are a function of ``(seed, step, position in the batch)`` only, so a run samples the same
  responses on one process or on eight, and a resumed run continues the same stream.
* :func:`response_mask` — which response tokens are real: up to and including the first EOS.
* :class:`RewardScorer` — the reward model's score of prompt + response at its last real
  token, re-tokenising the text when the reward model's tokenizer differs from the policy's
  (and, for the reward-model critic, its hidden state after every prefix).
"""

from __future__ import annotations

import inspect

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlhf.value_head import position_ids_from_mask


def tokenize_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_length: int, truncate: bool
) -> list[list[int]]:
    """Token ids of each prompt, at most ``max_length`` long.

    A prompt that does not fit raises ``ValueError`` or, with ``truncate``, loses its first
    tokens (the end of a prompt is what the response continues) with a warning: never
    silently.
    """
    if not prompts:
        raise ValueError("prompts is empty: PPO needs at least one prompt to sample responses for")
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


def left_pad(sequences: Sequence[Sequence[int]], pad_token_id: int) -> tuple[Tensor, Tensor]:
    """``(input_ids, attention_mask)``, both ``[B, max_len]``, padded on the left."""
    length = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if len(seq):
            input_ids[row, length - len(seq) :] = torch.as_tensor(seq, dtype=torch.long)
            attention_mask[row, length - len(seq) :] = 1
    return input_ids, attention_mask


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
        logp = torch.log_softmax(out.logits[:, -1].float() / temperature, dim=-1)
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


def same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """Whether token ids mean the same thing to both tokenizers (vocabulary and EOS agree)."""
    return a.get_vocab() == b.get_vocab() and a.eos_token_id == b.eos_token_id


class RewardScorer:
    """The reward model's score of prompt + response, read at the last real token.

    A sequence-classification reward model pools its output at the last token that is not
    padding, so the scorer lays each prompt + response out right-padded with the reward
    model's own pad token. When the reward model's tokenizer is the policy's, the policy's
    token ids are used directly (the response's EOS included, as sampled); otherwise the text
    is decoded and re-tokenised with the reward model's tokenizer, with a warning, because
    ids from one vocabulary are gibberish in another.

    Args:
        reward_model: an ``AutoModelForSequenceClassification`` with one output (``num_labels=1``).
        reward_tokenizer: its tokenizer.
        policy_tokenizer: the tokenizer of the policy whose samples are scored.
    """

    def __init__(
        self,
        reward_model: PreTrainedModel,
        reward_tokenizer: PreTrainedTokenizerBase,
        policy_tokenizer: PreTrainedTokenizerBase,
    ):
        if getattr(reward_model.config, "num_labels", 1) != 1:
            raise ValueError(f"the reward model must output one score (num_labels=1), got {reward_model.config.num_labels}")
        if reward_tokenizer.pad_token_id is None or reward_model.config.pad_token_id != reward_tokenizer.pad_token_id:
            raise ValueError(
                "the reward model's config.pad_token_id must be its tokenizer's pad token id "
                f"(got {reward_model.config.pad_token_id} and {reward_tokenizer.pad_token_id}): it locates the last "
                "real token by it. Set tokenizer.pad_token and model.config.pad_token_id."
            )
        self.model = reward_model.eval()
        self.tokenizer = reward_tokenizer
        self.policy_tokenizer = policy_tokenizer
        self.retokenize = not same_tokenizer(reward_tokenizer, policy_tokenizer)
        if self.retokenize:
            warnings.warn(
                "the reward model's tokenizer differs from the policy's: responses are decoded and "
                "re-tokenised with the reward model's tokenizer before scoring",
                stacklevel=2,
            )

    def _inputs(self, query_ids: Tensor, query_mask: Tensor, responses: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        rows = [torch.cat([q[qm.bool()], r[m.bool()]]) for q, qm, r, m in zip(query_ids, query_mask, responses, mask)]
        if self.retokenize:
            eos = self.policy_tokenizer.eos_token_id
            texts = [
                self.policy_tokenizer.decode(row, skip_special_tokens=True)
                + (self.tokenizer.eos_token if row[-1] == eos else "")
                for row in rows
            ]
            encoded = self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt")
            return encoded["input_ids"], encoded["attention_mask"]
        input_ids = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True, padding_value=self.tokenizer.pad_token_id)
        attention_mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)
        return input_ids, attention_mask

    @torch.no_grad()
    def __call__(self, query_ids: Tensor, query_mask: Tensor, responses: Tensor, mask: Tensor) -> Tensor:
        """Scores ``[B]`` (float32) of left-padded prompts ``[B, P]`` + responses ``[B, R]``
        whose real tokens are marked by ``mask``."""
        input_ids, attention_mask = self._inputs(query_ids, query_mask, responses, mask)
        device = self.model.device
        logits = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device)).logits
        return logits[:, 0].float().to(query_ids.device)

    @torch.no_grad()
    def score_with_features(
        self, query_ids: Tensor, query_mask: Tensor, responses: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The scores ``[B]`` and, from the same forward pass, the reward model's last hidden
        states ``[B, R, H]`` at the state before each response token: ``features[b, t]`` is
        read at the last token of "prompt + first t response tokens" (0 on response padding).

        Causal attention makes that hidden state the one the reward model would score the
        prefix from (PPO's ``value_model="reward"`` critic reads it). Needs the policy's
        tokenizer: re-tokenised text has other positions.
        """
        if self.retokenize:
            raise ValueError("the reward model's hidden states line up with the policy's tokens only when both use "
                             "the same tokenizer; this reward model's differs (use PPOConfig(value_model='adapter'))")
        input_ids, attention_mask = self._inputs(query_ids, query_mask, responses, mask)
        device = self.model.device
        out = self.model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                         output_hidden_states=True)
        hidden = out.hidden_states[-1]  # [B, L, H], after the final norm: what the score layer reads
        # the state before response token t ends at column (prompt length + t - 1) of these left-aligned rows
        before = query_mask.sum(1, keepdim=True) + torch.arange(responses.shape[1], device=query_mask.device) - 1
        before = before.clamp(max=hidden.shape[1] - 1).to(device)
        features = hidden.gather(1, before[..., None].expand(-1, -1, hidden.shape[-1]))
        features = features * mask.to(device)[..., None]
        return out.logits[:, 0].float().to(query_ids.device), features.to(query_ids.device)
