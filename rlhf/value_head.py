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

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import Tensor, nn
from transformers import PreTrainedModel
from transformers.activations import GELUTanh, NewGELUActivation

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


def fuse_gelu(model: nn.Module) -> None:
    """Swap transformers' ``NewGELUActivation`` (phi-2's ``gelu_new``: five elementwise ops,
    each with its own backward) for :class:`~transformers.activations.GELUTanh`, the same
    function (tanh-approximated GELU) as one fused kernel. Outputs agree to float rounding
    (~1e-7); the MLP's activation is a tenth of the tiny model's training time otherwise."""
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is NewGELUActivation:
                setattr(module, name, GELUTanh())


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


def _unpack(packed: Tensor, mask: Tensor) -> Tensor:
    """Values ``[n]`` of the ``n`` true entries of ``mask`` ``[B, R]`` laid out as ``[B, R]``, 0 elsewhere."""
    return torch.zeros(mask.shape, dtype=packed.dtype, device=packed.device).masked_scatter(mask, packed)


def _without_output_layer(lora_config: LoraConfig, model: PreTrainedModel) -> LoraConfig:
    """``lora_config`` without the model's output layer among its target modules."""
    output = model.get_output_embeddings()
    name = next(n for n, m in model.named_modules() if m is output)
    targets = [t for t in lora_config.target_modules if not (name == t or name.endswith("." + t))]
    return dataclasses.replace(lora_config, target_modules=targets)


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
        lora_config: the LoRA configuration of both adapters (``task_type`` ignored). The value
            adapter leaves out the output layer (``lm_head``) if it is a target: the value
            head reads the last hidden state, so a LoRA there would never be trained.
    """

    def __init__(self, base: PreTrainedModel, lora_config: LoraConfig):
        super().__init__()
        for param in base.parameters():
            param.requires_grad_(False)
        self.model: PeftModel = get_peft_model(base, lora_config, adapter_name=POLICY)
        self.model.add_adapter(VALUE, _without_output_layer(lora_config, base))
        self.value_head = ValueHead(base.config.hidden_size).to(base.device)
        # peft switches requires_grad off for whichever adapter is inactive; both adapters are
        # trained (in one backward pass), so every adapter switch ends by switching them back on.
        trainable = [(n, p) for n, p in self.named_parameters() if "lora_" in n or n.startswith("value_head.")]
        self.trainable_names = [n for n, _ in trainable]
        self._trainable = [p for _, p in trainable]
        self._set_trainable()
        disable_dropout(self)
        fuse_gelu(self)

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
    ) -> tuple[Tensor, Tensor]:
        """Last hidden states ``[n, H]`` at the positions that predict the ``n`` real response
        tokens, and where those tokens are: a ``[B, R]`` mask (``attention_mask[:, -R:]``).

        The batch runs packed (see :func:`pack_rows`), so little compute goes to padding.
        """
        real = attention_mask.bool()
        where, n_bins, width = pack_rows(attention_mask)
        ids = input_ids.new_zeros(n_bins * width)  # padding: token 0, each one a sequence of its own
        ids[where[real]] = input_ids[real]
        positions = torch.zeros_like(ids)
        positions[where[real]] = position_ids_from_mask(attention_mask)[real]
        hidden = lm.get_decoder()(
            input_ids=ids.view(n_bins, width),
            position_ids=positions.view(n_bins, width),
            use_cache=False,  # with a cache, transformers does not look for packed sequences
        ).last_hidden_state.flatten(0, 1)
        predicts = real[:, -response_length:]  # response token t is predicted from column P + t - 1
        return hidden[where[:, -response_length - 1 : -1][predicts]], predicts

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
        and the entropy ``[B, R]`` of that distribution at each response position (both 0 on
        response padding, where ``attention_mask`` is 0).

        The logits are divided by the sampling ``temperature``: these are the probabilities
        the tokens were sampled with, so the PPO ratio is exactly 1 before the first update.
        """
        with self.adapter(adapter) as lm:
            hidden, predicts = self._response_hidden(lm, input_ids, attention_mask, response_length)
            logits = lm.get_output_embeddings()(hidden).float() / temperature
        logp_all = torch.log_softmax(logits, dim=-1)
        tokens = input_ids[:, -response_length:][predicts]
        logprobs = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return _unpack(logprobs, predicts), _unpack(entropy, predicts)

    def values(self, input_ids: Tensor, attention_mask: Tensor, response_length: int) -> Tensor:
        """``V(s_t)`` ``[B, R]``: the value of the state before each response token (0 on response padding)."""
        with self.adapter(VALUE) as lm:
            hidden, predicts = self._response_hidden(lm, input_ids, attention_mask, response_length)
        return _unpack(self.value_head(hidden), predicts)

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
