"""Policy, value and reference on ONE frozen base model: the memory layout of PPO-RLHF.

A PPO trainer for a language model needs four networks: the policy, a frozen reference
(the SFT model) for the KL penalty, a value function, and the reward model. TRL's design
keeps four full models; for phi-2 (2.8 B parameters, 5.6 GB in bf16) that does not fit on a
16 GB GPU once activations and optimizer state are added. Here the policy and the reference
share one copy of the base weights, which stay frozen, and the value function adds no model:

* **policy** = base + LoRA adapter ``"policy"``;
* **reference** = the same base with every adapter disabled (no second copy: at the start
  of training the policy *is* the reference, because a LoRA adapter starts as a no-op);
* **value** = a :class:`ValueHead` on a last hidden state, from one of two trunks
  (``value_model``):

  - ``"adapter"`` (the default): the shared base with its own LoRA adapter ``"value"``, and a
    linear head starting at 0;
  - ``"reward"``: the frozen reward model, whose hidden states at every prefix the rollout
    computes anyway when it scores the response; the head is the reward model's own
    normalised score of the prefix (fixed) plus a trained MLP correction that starts at 0.

Why not a head trained through the policy's hidden states (TRL's older
``AutoModelForCausalLMWithValueHead``): the value loss would then push the policy's own
weights around (its gradients are large and noisy at the start), coupling two objectives
that PPO treats separately (Huang et al. 2024 found separate policy and value networks more
stable). Both designs here keep the value loss away from the policy and differ in what the
critic can learn and what it costs:

* the **value adapter** learns its own features: it is the textbook separate critic. Its
  price is a second pass through the base for every scored and every trained minibatch
  (forward and backward), a second adapter with its Adam state, and that pass's activations.
  Its head starts at zero because the trainer normalises reward-model scores to mean 0 under
  the reference policy's samples and the KL penalty starts at 0: the expected return of the
  starting policy is 0 at every token, so a value of 0 is already right on average, and the
  adapter spends its capacity on how much each token changes the expected final score.
* the **reward-model critic** reads features made for judging text: the reward model's
  hidden state after "prompt + first t tokens" is what it would score that prefix from, so
  the critic starts at a sensible ``V(s_t)`` (the idea behind TRL initialising its value
  model from the reward model) and trains only the correction on top. The update then runs the base
  once per minibatch instead of twice; the critic cannot shape its features, and it needs
  the reward model to share the policy's tokenizer (its positions must line up with the
  policy's tokens).

Dropout is disabled everywhere (policy, value and reference must be deterministic functions
of their input, or the PPO ratio is not 1 before the first update).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.tuners_utils import BaseTunerLayer
from peft.utils.other import AuxiliaryTrainingWrapper
from torch import Tensor, nn
from transformers import PreTrainedModel

from rlhf.models import disable_dropout, fuse_gelu
from rlhf.tokens import log_probs, pack_rows, position_ids_from_mask, unpack

POLICY = "policy"
VALUE = "value"
VALUE_MODELS = ("adapter", "reward")
"""The value network's trunk: the base with the ``"value"`` adapter, or the frozen reward model."""


class ValueHead(nn.Module):
    """A map from a hidden state ``[..., hidden_size]`` to a scalar value ``[...]``.

    ``V(h) = net(h) + prior(h)``: ``net`` is trained, a linear map or, with ``mlp_width``, a
    one-hidden-layer MLP ``hidden_size -> mlp_width -> 1`` (GELU); its last layer starts at
    zero. ``prior`` is a fixed linear map, zero unless :meth:`start_from` sets it to a reward
    model's normalised score layer; it is a buffer, never trained. So every value starts at 0,
    or at the reward model's normalised score of the state (see the module docstring). The
    head runs in float32 whatever the trunk's dtype.
    """

    def __init__(self, hidden_size: int, mlp_width: int | None = None):
        super().__init__()
        if mlp_width is None:
            self.net: nn.Module = nn.Linear(hidden_size, 1)
        else:
            self.net = nn.Sequential(nn.Linear(hidden_size, mlp_width), nn.GELU(), nn.Linear(mlp_width, 1))
        last = self.net if mlp_width is None else self.net[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.register_buffer("prior_weight", torch.zeros(hidden_size))
        self.register_buffer("prior_bias", torch.zeros(()))

    def forward(self, hidden: Tensor) -> Tensor:
        hidden = hidden.float()
        return self.net(hidden).squeeze(-1) + hidden @ self.prior_weight + self.prior_bias

    @torch.no_grad()
    def start_from(self, score: nn.Linear, mean: float, std: float) -> None:
        """Set the prior to ``(score(h) - mean) / std``: a reward model's score layer, normalised
        as the trainer normalises its scores."""
        self.prior_weight.copy_(score.weight[0].float() / std)
        bias = 0.0 if score.bias is None else score.bias[0].float()
        self.prior_bias.copy_((bias - mean) / std)


def _without_output_layer(lora_config: LoraConfig, model: PreTrainedModel) -> LoraConfig:
    """``lora_config`` without the model's output layer among its target modules."""
    output = model.get_output_embeddings()
    name = next(n for n, m in model.named_modules() if m is output)
    targets = [t for t in lora_config.target_modules if not (name == t or name.endswith("." + t))]
    return dataclasses.replace(lora_config, target_modules=targets)


class PolicyValueModel(nn.Module):
    """Policy (LoRA ``"policy"``), value (:class:`ValueHead` on the base with LoRA ``"value"``,
    or on the reward model's hidden states) and reference (adapters disabled) on one frozen
    causal language model.

    Sequences are ``[B, L]`` = left-padded prompt ``[B, P]`` followed by a response
    ``[B, R]`` (``L = P + R``). The model scores the response tokens: the log-probability of
    response token ``t`` comes from the logits at position ``P + t - 1``, and the value
    ``V(s_t)`` of the state "prompt + first t response tokens" from the hidden state there.

    Args:
        base: a causal LM (``PhiForCausalLM`` or any ``AutoModelForCausalLM``); its weights
            are frozen.
        lora_config: the LoRA configuration of the adapters (``task_type`` ignored). The value
            adapter leaves out the output layer (``lm_head``) if it is a target: the value
            head reads the last hidden state, so a LoRA there would never be trained.
        value_model: the critic's trunk (module docstring): ``"adapter"`` (a linear head on
            the base run with the ``"value"`` adapter) or ``"reward"`` (an MLP head on the reward
            model's hidden states, passed to :meth:`forward` as ``value_features``, plus the
            prior that :meth:`ValueHead.start_from` sets).
        value_features_size: the width of those hidden states (the reward model's
            ``hidden_size``); ``"reward"`` only.
    """

    def __init__(
        self,
        base: PreTrainedModel,
        lora_config: LoraConfig,
        value_model: str = "adapter",
        value_features_size: int | None = None,
    ):
        super().__init__()
        if value_model not in VALUE_MODELS:
            raise ValueError(f"value_model must be one of {VALUE_MODELS}, got {value_model!r}")
        if (value_model == "reward") != (value_features_size is not None):
            raise ValueError("value_features_size (the reward model's hidden size) goes with value_model='reward' only")
        for param in base.parameters():
            param.requires_grad_(False)
        self.value_model = value_model
        self.model: PeftModel = get_peft_model(base, lora_config, adapter_name=POLICY)
        if value_model == "adapter":
            self.model.add_adapter(VALUE, _without_output_layer(lora_config, base))
            self.value_head = ValueHead(base.config.hidden_size)
        else:
            self.value_head = ValueHead(value_features_size, mlp_width=value_features_size)
        self.value_head.to(base.device)
        # peft switches requires_grad off for whichever adapter is inactive; every adapter is
        # trained (in one backward pass), so every adapter switch ends by switching them back on.
        trainable = [(n, p) for n, p in self.named_parameters() if "lora_" in n or n.startswith("value_head.")]
        self.trainable_names = [n for n, _ in trainable]
        self._trainable = [p for _, p in trainable]
        self._set_trainable()
        disable_dropout(self)
        fuse_gelu(self)
        # The LoRA layers, found once. peft's model-wide switches (set_adapter, disable_adapter) walk every module
        # on each call, and disable_adapter also collects every layer's status first: a few ms a switch, and the
        # update switches twice per minibatch. :meth:`adapter` makes the same per-layer calls on these layers
        # directly (a model with peft's auxiliary modules, e.g. modules_to_save, takes peft's own switches).
        self._lora_layers = [m for m in self.model.modules() if isinstance(m, BaseTunerLayer)]
        self._direct_switch = not any(isinstance(m, AuxiliaryTrainingWrapper) for m in self.model.modules())

    def _set_trainable(self) -> None:
        for param in self._trainable:
            param.requires_grad_(True)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA adapter(s) and the value head (the base stays frozen)."""
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
            if name is None and not self._direct_switch:
                with self.model.disable_adapter():
                    yield self.base
            elif name is None:
                enabled = [layer for layer in self._lora_layers if not layer.disable_adapters]
                for layer in enabled:
                    layer.enable_adapters(False)
                try:
                    yield self.base
                finally:
                    for layer in enabled:
                        layer.enable_adapters(True)
            else:
                if self.model.active_adapter != name:  # skip the switch when it changes nothing
                    self._set_adapter(name)
                yield self.base
        finally:
            self._set_trainable()

    def _set_adapter(self, name: str) -> None:
        """Make ``name`` the active adapter: what ``PeftModel.set_adapter`` does, on the LoRA layers found once."""
        if not self._direct_switch:
            self.model.set_adapter(name)
            return
        if name not in self.model.peft_config:
            raise ValueError(f"Adapter {name} not found.")
        for layer in self._lora_layers:
            layer.set_adapter(name)
        self.model.active_adapter = self.model.base_model.active_adapter = name

    @staticmethod
    def _response_hidden(
        lm: PreTrainedModel, input_ids: Tensor, attention_mask: Tensor, response_length: int
    ) -> tuple[Tensor, Tensor]:
        """Last hidden states ``[n, H]`` at the positions that predict the ``n`` real response
        tokens, and where those tokens are: a ``[B, R]`` mask (``attention_mask[:, -R:]``).

        The batch runs packed (see :func:`rlhf.tokens.pack_rows`), so little compute goes to padding.
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
            logp_all = log_probs(lm.get_output_embeddings()(hidden), temperature)
        tokens = input_ids[:, -response_length:][predicts]
        logprobs = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
        return unpack(logprobs, predicts), unpack(entropy, predicts)

    def values(
        self, input_ids: Tensor, attention_mask: Tensor, response_length: int, value_features: Tensor | None = None
    ) -> Tensor:
        """``V(s_t)`` ``[B, R]``: the value of the state before each response token (0 on response padding).

        ``value_features`` ``[B, R, H]``: with ``value_model="reward"``, the reward model's
        hidden states at those states (:meth:`rlhf.scoring.RewardScorer.score_with_features`);
        with ``"adapter"``, None (the value adapter's pass computes its own).
        """
        if self.value_model == "adapter":
            if value_features is not None:
                raise ValueError("value_model='adapter' computes its own features; pass value_features=None")
            with self.adapter(VALUE) as lm:
                hidden, predicts = self._response_hidden(lm, input_ids, attention_mask, response_length)
            return unpack(self.value_head(hidden), predicts)
        if value_features is None:
            raise ValueError("value_model='reward' reads the reward model's hidden states: pass value_features "
                             "[B, R, H] (RewardScorer.score_with_features)")
        return self.value_head(value_features) * attention_mask[:, -response_length:]

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        response_length: int,
        temperature: float,
        value_features: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Policy log-probs, policy entropy and values (see :meth:`values`) of the response
        tokens, each ``[B, R]``.

        The one call PPO's update makes (and the one ``DistributedDataParallel`` wraps): it
        uses every trainable parameter exactly once. With the value adapter that is two passes
        through the base (policy, then value); with the reward-model critic one pass and the head.
        """
        logprobs, entropy = self.response_logprobs(input_ids, attention_mask, response_length, temperature)
        return logprobs, entropy, self.values(input_ids, attention_mask, response_length, value_features)

    def trainable_state_dict(self) -> dict[str, Tensor]:
        """The trained weights only (the LoRA adapter(s) and the value head): what a checkpoint holds."""
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
