"""Policy, value and reference on ONE frozen base model: the memory layout of PPO-RLHF.

A PPO trainer for a language model needs four networks: the policy, a frozen reference
(the SFT model) for the KL penalty, a value function, and the reward model. TRL's design
keeps four full models; for phi-2 (2.8 B parameters, 5.6 GB in bf16) that does not fit on a
16 GB GPU once activations and optimizer state are added. Here three of them share one
copy of the base weights, which stay frozen:

* **policy** = base + LoRA adapter ``"policy"``;
* **reference** = the same base with every adapter disabled (no second copy: at the start
  of training the policy *is* the reference, because a LoRA adapter starts as a no-op);
* **value** = base + its own LoRA adapter ``"value"`` + a linear :class:`ValueHead` on the
  last hidden state.

Why a separate value adapter rather than a head on the policy's hidden states: the value
loss would then push the policy's own weights around (its gradients are large and noisy at
the start), coupling two objectives that PPO treats separately (Huang et al. 2024 found
separate policy and value networks more stable). Why a zero-initialised head rather than
one copied from the reward model: the trainer normalises reward-model scores to mean 0 under
the reference policy's samples and the KL penalty starts at 0, so the expected return of the
starting policy is 0 at every token: a value of 0 is already right on average, and the value
adapter spends its capacity on what the reward model does not know (how much each token
changes the expected final score). Initialising from the reward model instead would need the
reward model to share the policy's base, which the course's reward model does not.

Dropout is disabled everywhere (policy, value and reference must be deterministic functions
of their input, or the PPO ratio is not 1 before the first update).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import Tensor, nn
from transformers import PreTrainedModel

POLICY = "policy"
VALUE = "value"


class ValueHead(nn.Module):
    """A linear map from a hidden state ``[..., hidden_size]`` to a scalar value ``[...]``.

    Weights and bias start at zero, so every value starts at 0 (see the module docstring).
    The head runs in float32 whatever the base model's dtype.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.linear(hidden.float()).squeeze(-1)


def disable_dropout(model: nn.Module) -> None:
    """Set every ``nn.Dropout`` in ``model`` to p=0 and put it in eval mode (attention dropout off)."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.eval()


def position_ids_from_mask(attention_mask: Tensor) -> Tensor:
    """Positions ``[B, L]`` that count only real tokens, so a left-padded prompt starts at 0.

    Without them a prompt padded with ``k`` tokens sees its tokens at positions ``k, k+1, ...``.
    Models with absolute position embeddings (GPT-2, OPT) then read a different input than
    the same prompt unpadded; with rotary embeddings (phi-2) a common offset cancels in exact
    arithmetic but not in floating point, and the sampler's positions must match anyway.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class PolicyValueModel(nn.Module):
    """Policy (LoRA ``"policy"``), value (LoRA ``"value"`` + :class:`ValueHead`) and reference
    (adapters disabled) on one frozen causal language model.

    Sequences are ``[B, L]`` = left-padded prompt ``[B, P]`` followed by a response
    ``[B, R]`` (``L = P + R``). The model scores the response tokens: the log-probability of
    response token ``t`` comes from the logits at position ``P + t - 1``, and the value
    ``V(s_t)`` of the state "prompt + first t response tokens" from the hidden state there.

    Args:
        base: a causal LM (``PhiForCausalLM`` or any ``AutoModelForCausalLM``); its weights
            are frozen.
        lora_config: the LoRA configuration used for both adapters (``task_type`` ignored).
    """

    def __init__(self, base: PreTrainedModel, lora_config: LoraConfig):
        super().__init__()
        for param in base.parameters():
            param.requires_grad_(False)
        self.model: PeftModel = get_peft_model(base, lora_config, adapter_name=POLICY)
        self.model.add_adapter(VALUE, lora_config)
        self.value_head = ValueHead(base.config.hidden_size).to(base.device)
        # peft switches requires_grad off for whichever adapter is inactive; both adapters are
        # trained (in one backward pass), so every adapter switch ends by switching them back on.
        trainable = [(n, p) for n, p in self.named_parameters() if "lora_" in n or n.startswith("value_head.")]
        self.trainable_names = [n for n, _ in trainable]
        self._trainable = [p for _, p in trainable]
        self._set_trainable()
        disable_dropout(self)

    def _set_trainable(self) -> None:
        for param in self._trainable:
            param.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Both LoRA adapters and the value head (the base stays frozen)."""
        return list(self._trainable)

    def train(self, mode: bool = True) -> PolicyValueModel:
        """Stays in eval mode: RL needs the dropout-free networks it samples from."""
        return super().train(False)

    @property
    def base(self) -> PreTrainedModel:
        """The causal LM with the LoRA layers injected (which adapter runs is set by :meth:`adapter`)."""
        return self.model.get_base_model()

    @contextmanager
    def adapter(self, name: str | None) -> Iterator[PreTrainedModel]:
        """Run the shared base as the policy (``"policy"``), the value network (``"value"``) or
        the reference (``None``: every adapter disabled). Yields the causal LM to call."""
        try:
            if name is None:
                with self.model.disable_adapter():
                    yield self.base
            else:
                self.model.set_adapter(name)
                yield self.base
        finally:
            self._set_trainable()

    @staticmethod
    def _response_hidden(
        lm: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, response_length: int
    ) -> Tensor:
        """Last hidden states at the positions that predict the response tokens: ``[B, R, H]``."""
        hidden = lm.get_decoder()(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids_from_mask(attention_mask),
        ).last_hidden_state
        return hidden[:, -response_length - 1 : -1]

    def response_logprobs(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        response_length: int,
        temperature: float,
        adapter: str | None = POLICY,
    ) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``[B, R]`` of the response tokens (the last ``R`` of ``input_ids``)
        under the temperature-scaled policy (``adapter="policy"``) or reference (``None``),
        and the entropy ``[B, R]`` of that distribution at each response position.

        The logits are divided by the sampling ``temperature``: these are the probabilities
        the tokens were sampled with, so the PPO ratio is exactly 1 before the first update.
        """
        with self.adapter(adapter) as lm:
            hidden = self._response_hidden(lm, input_ids, attention_mask, response_length)
            logits = lm.get_output_embeddings()(hidden).float() / temperature
        logp_all = torch.log_softmax(logits, dim=-1)
        tokens = input_ids[:, -response_length:]
        logprobs = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return logprobs, entropy

    def values(self, input_ids: Tensor, attention_mask: Tensor, response_length: int) -> Tensor:
        """``V(s_t)`` ``[B, R]``: the value of the state before each response token."""
        with self.adapter(VALUE) as lm:
            hidden = self._response_hidden(lm, input_ids, attention_mask, response_length)
        return self.value_head(hidden)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor, response_length: int, temperature: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Policy log-probs, policy entropy and values of the response tokens, each ``[B, R]``.

        The one call PPO's update makes (and the one ``DistributedDataParallel`` wraps): it
        uses every trainable parameter exactly once.
        """
        logprobs, entropy = self.response_logprobs(input_ids, attention_mask, response_length, temperature)
        return logprobs, entropy, self.values(input_ids, attention_mask, response_length)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The trained weights only (both LoRA adapters and the value head): what a checkpoint holds."""
        return {name: p.detach().clone() for name, p in zip(self.trainable_names, self._trainable)}

    def load_trainable_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load weights saved by :meth:`trainable_state_dict` (names must match exactly)."""
        if set(self.trainable_names) != set(state):
            missing = sorted(set(self.trainable_names) - set(state))
            unexpected = sorted(set(state) - set(self.trainable_names))
            raise ValueError(
                f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]} "
                "(was it saved with a different base model or LoRA configuration?)"
            )
        with torch.no_grad():
            for name, param in zip(self.trainable_names, self._trainable):
                param.copy_(state[name])
