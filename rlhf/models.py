"""One loader for every language model of the course: the tiny Phi, phi-2, or any checkpoint.

``load_model(name)`` returns ``(model, tokenizer)`` ready for the RLHF chapters:

- ``name``: ``"auto"`` (default), ``"tiny"``, a local directory (e.g. ``sft_model_dir()``) or a
  hub id such as ``"microsoft/phi-2"``. ``"auto"`` reads ``$RL_COURSE_MODEL`` if set, and
  otherwise picks phi-2 on a CUDA GPU with at least 14 GiB of memory, the tiny model elsewhere —
  so one setting switches every notebook between the two.
- dtype: bf16 on GPUs that support it, fp32 otherwise (CPU, or older GPUs). Never fp16 by
  default: phi-2's attention overflows in fp16 (inf/NaN logits) — a known problem of the
  model; ask for ``dtype=torch.float16`` explicitly and a warning repeats this.
- tokenizer: EOS required; a pad token distinct from EOS is added when missing (phi-2 has
  none; the embedding matrix already has spare rows, and is resized only if needed).
- LoRA through ``peft`` on phi-2's module names :data:`PHI2_LORA_TARGETS`.
- no remote code is ever run: phi-2 is supported natively by ``transformers``, so the loaders
  have no ``trust_remote_code`` argument and pass it as False to ``from_pretrained``.
- Offline (``HF_HUB_OFFLINE=1``) and not cached: a :class:`ModelNotAvailableError` naming the
  model and the fixes.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

PHI2 = "microsoft/phi-2"
PHI2_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2")
"""phi-2's linear layers: attention query/key/value and output (``dense``), MLP ``fc1``/``fc2``."""
POLICY_LORA_TARGETS = (*PHI2_LORA_TARGETS, "lm_head")
"""What the PPO policy's LoRA adapter covers (chapter 9): every linear layer, the output layer (``lm_head``)
included; on the tiny model it lifts the gold reward PPO reaches. (TRL's GRPO/RLOO refuse an adapter there.)"""
PAD_TOKEN = "<|pad|>"
AUTO_MIN_GPU_MEMORY_GIB = 14.0
"""``"auto"`` picks phi-2 only on a CUDA GPU with at least this much memory."""

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ModelNotAvailableError(FileNotFoundError):
    """A hub model was requested but is neither cached nor downloadable (offline)."""


def _offline() -> bool:
    return any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _not_available(name: str, reason: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"model {name!r} is not available: {reason}. Fixes: connect to the internet and run once with "
        f"HF_HUB_OFFLINE=0 so the model is downloaded into the Hugging Face cache "
        f"(e.g. `huggingface-cli download {name}`), or use the offline tiny model: load_model(\"tiny\") "
        f"(or set RL_COURSE_MODEL=tiny)."
    )


def resolve_model_name(name: str = "auto") -> str:
    """Turn a model setting into something ``from_pretrained`` accepts.

    Args:
        name: ``"auto"``, ``"tiny"``, a local directory, or a hub id ``"owner/model"``.

    Returns:
        a local directory path (as a string) or a hub id.

    Raises:
        TypeError: if ``name`` is not a string or path.
        ValueError: if ``name`` is none of the above.
    """
    if isinstance(name, Path):
        name = str(name)
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string or Path, got {type(name).__name__}")
    name = name.strip()
    if name == "auto":
        chosen = os.environ.get("RL_COURSE_MODEL", "").strip()
        if chosen and chosen != "auto":
            return resolve_model_name(chosen)
        if torch.cuda.is_available():
            memory_gib = torch.cuda.get_device_properties(0).total_memory / 2**30
            if memory_gib >= AUTO_MIN_GPU_MEMORY_GIB:
                return PHI2
        return resolve_model_name("tiny")
    if name == "tiny":
        from rlhf.tiny_world import base_model_dir

        return str(base_model_dir())
    path = Path(name).expanduser()
    if name and path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model directory {path} has no config.json; is it a save_pretrained() output?")
        return str(path)
    if _HUB_ID.match(name) and not name.startswith((".", "/", "~")):
        return name
    raise ValueError(
        f"unknown model name {name!r}: use 'auto', 'tiny', an existing local directory, "
        f"or a hub id like {PHI2!r}"
    )


def _check_available(resolved: str) -> None:
    """Fail early and clearly when a hub model cannot be loaded offline."""
    if Path(resolved).is_dir() or not _offline():
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(resolved, "config.json"), str):
        raise _not_available(resolved, "it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloads")


def default_device() -> torch.device:
    """CUDA if available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on a CUDA GPU that supports it, fp32 everywhere else (never fp16: phi-2 overflows)."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def _load_tokenizer(resolved: str, name: str) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(resolved, trust_remote_code=False)
    if tokenizer.eos_token is None:
        raise ValueError(
            f"the tokenizer of {name!r} has no EOS token; a policy must be able to end its response. "
            f"Set tokenizer.eos_token (and save it) before using this model."
        )
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        # RLHF masks padding; a pad equal to EOS would mask the real EOS actions too.
        tokenizer.add_special_tokens({"pad_token": PAD_TOKEN})
    return tokenizer


def _align_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make the model's embedding, pad and EOS ids agree with the tokenizer."""
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        if model.generation_config.eos_token_id is None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id


def _prepare(name, dtype, device) -> tuple[str, torch.dtype, torch.device]:
    resolved = resolve_model_name(name)
    _check_available(resolved)
    device = torch.device(device) if device is not None else default_device()
    if dtype is None:
        dtype = default_dtype(device)
    elif not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype such as torch.bfloat16, got {dtype!r}")
    if dtype == torch.float16:
        warnings.warn(
            "fp16 weights: phi-2's attention is known to overflow in fp16 (inf/NaN logits). "
            "Prefer torch.bfloat16 (Ampere or newer GPUs) or torch.float32; on GPUs without bf16, "
            "a 4/8-bit base (bitsandbytes) with fp32 LoRA adapters is the safer choice.",
            stacklevel=3,
        )
    return resolved, dtype, device


def _from_pretrained(cls, resolved: str, **kwargs) -> PreTrainedModel:
    try:
        return cls.from_pretrained(resolved, trust_remote_code=False, **kwargs)
    except OSError as err:
        if Path(resolved).is_dir():
            raise
        raise _not_available(resolved, f"loading failed ({err})") from err


def default_lora_config(r: int = 16, alpha: int = 32, task_type: str = "CAUSAL_LM"):
    """LoRA on all of phi-2's linear layers (:data:`PHI2_LORA_TARGETS`), no dropout (RL needs it off)."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(PHI2_LORA_TARGETS), task_type=task_type)


def _finish(model: PreTrainedModel, lora, for_training: bool, task_type: str) -> PreTrainedModel:
    if lora is not False and lora is not None:
        from peft import LoraConfig, get_peft_model

        if lora is True:
            lora = default_lora_config(task_type=task_type)
        elif not isinstance(lora, LoraConfig):
            raise TypeError(f"lora must be a bool or a peft.LoraConfig, got {type(lora).__name__}")
        model = get_peft_model(model, lora)
    if for_training:
        model.train()
    else:
        model.eval()
        model.requires_grad_(False)
    return model


def load_model(
    name: str = "auto",
    *,
    lora: bool | object = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    for_training: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal language model and its tokenizer.

    Args:
        name: ``"auto"``, ``"tiny"``, a local directory or a hub id (see :func:`resolve_model_name`).
        lora: False, True (LoRA r=16 on :data:`PHI2_LORA_TARGETS`) or a ``peft.LoraConfig``;
            with LoRA, only the adapter is trainable.
        dtype: weight dtype; None picks :func:`default_dtype` for the device.
        device: None picks CUDA if available, else CPU.
        for_training: True leaves the model in train mode with its trainable parameters
            requiring gradients; False returns a frozen model in eval mode (dropout off).

    Returns:
        (model, tokenizer): an ``AutoModelForCausalLM`` (a ``peft.PeftModel`` with LoRA) on
        ``device``, and its tokenizer with distinct EOS and pad tokens.
    """
    resolved, dtype, device = _prepare(name, dtype, device)
    tokenizer = _load_tokenizer(resolved, name)
    model = _from_pretrained(AutoModelForCausalLM, resolved, dtype=dtype)
    _align_model(model, tokenizer)
    model.to(device)
    return _finish(model, lora, for_training, "CAUSAL_LM"), tokenizer


def load_reward_model(
    name_or_dir: str = "tiny",
    *,
    lora: bool | object = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    for_training: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a reward model: ``AutoModelForSequenceClassification`` with one output.

    Args:
        name_or_dir: ``"tiny"`` (the tiny world's cached reward model, built on first use), a
            local directory or a hub id. A causal LM checkpoint gets a new, randomly initialised
            scalar head (the starting point of reward modelling).
        lora, dtype, device, for_training: as in :func:`load_model`.

    Returns:
        (model, tokenizer); ``model(**batch).logits`` has shape ``(B, 1)``: the score read at
        each row's last non-pad token.
    """
    if name_or_dir == "tiny":
        from rlhf.tiny_world import reward_model_dir

        name_or_dir = str(reward_model_dir())
    resolved, dtype, device = _prepare(name_or_dir, dtype, device)
    tokenizer = _load_tokenizer(resolved, name_or_dir)
    model = _from_pretrained(AutoModelForSequenceClassification, resolved, dtype=dtype, num_labels=1)
    if model.config.num_labels != 1:
        raise ValueError(f"{name_or_dir!r} has num_labels={model.config.num_labels}; a reward model needs 1")
    _align_model(model, tokenizer)
    model.to(device)
    return _finish(model, lora, for_training, "SEQ_CLS"), tokenizer
