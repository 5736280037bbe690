"""The reward of a sampled response: the reward model's score, and the score made into PPO's reward.

* :class:`RewardScorer` — the reward model's score of prompt + response at its last real
  token, re-tokenising the text when the reward model's tokenizer differs from the policy's
  (and, for the reward-model critic, its hidden state after every prefix);
* :class:`ScoreNormalizer` — ``(score - mean) / std`` with the statistics of the reference
  policy's samples, minus a penalty for a response that never emitted EOS: the reward every
  method of chapters 11 and 12 optimises (PPO, and GRPO/RLOO through TRL).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedModel, PreTrainedTokenizerBase


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


@dataclass
class ScoreNormalizer:
    """Raw reward-model scores ``[B]`` into the reward of the RL methods.

    ``reward = (score - mean) / std``, minus ``missing_eos_penalty`` for a response that never
    emitted EOS (it ran into the length limit: a penalty keeps the policy from learning to ramble).
    ``mean`` and ``std`` come from :meth:`fit` on the scores of the reference (SFT) policy's
    samples, once before training: the reference's expected reward is then 0, which is what lets
    a critic start at 0 (``rlhf.policy_value``).
    """

    mean: float = 0.0
    """Mean raw score of the reference policy's samples."""
    std: float = 1.0
    """Their standard deviation (ddof=1, at least 1e-6)."""
    missing_eos_penalty: float | None = 1.0
    """Subtracted from the normalised score of a response without EOS; None disables."""

    def fit(self, raw: Tensor) -> ScoreNormalizer:
        """Set ``mean`` and ``std`` from raw scores ``[n]`` (n >= 2); returns self."""
        raw = torch.as_tensor(raw)
        if raw.numel() < 2:
            raise ValueError(f"fitting the score normalisation needs at least 2 scores, got {raw.numel()}")
        self.mean, self.std = raw.mean().item(), raw.std().clamp_min(1e-6).item()
        return self

    def normalize(self, raw: Tensor) -> Tensor:
        """``(raw - mean) / std``, no penalty."""
        return (raw - self.mean) / self.std

    def __call__(self, raw: Tensor, has_eos: Tensor) -> Tensor:
        """The rewards ``[B]`` of raw scores ``[B]``; ``has_eos`` ``[B]`` (bool) marks the finished responses."""
        scores = self.normalize(raw)
        if self.missing_eos_penalty is None:
            return scores
        return torch.where(torch.as_tensor(has_eos, dtype=torch.bool, device=scores.device), scores,
                           scores - self.missing_eos_penalty)
