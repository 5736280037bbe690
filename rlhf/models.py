"""One loader for every language model of the course: the tiny Phi, phi-2, or any checkpoint.

``load_model(name)`` returns ``(model, tokenizer)`` ready for the RLHF chapters:

- ``name``: ``"auto"`` (default), ``"tiny"``, a local directory (e.g. ``sft_model_dir()``) or a
  hub id such as ``"microsoft/phi-2"``. ``"auto"`` reads ``$RL_COURSE_MODEL`` if set, and
  otherwise picks phi-2 on a CUDA GPU with at least 14 GiB of memory, the tiny model elsewhere —
  so one setting switches every notebook between the two.
- dtype policy: bf16 on GPUs with *native* bf16 (compute capability 8.0 or newer: A100, L4,
  H100, ...); on a GPU without it (a T4, a V100) a **4-bit base** (``bitsandbytes`` NF4, computing
  in fp32) under fp32 LoRA adapters, since phi-2 in fp32 would not fit 16 GB and bf16 there is
  emulated (slow); fp32 on the CPU. Never fp16 by default: phi-2's activations overflow in fp16
  (inf/NaN logits), a known problem of the model; ask for ``dtype=torch.float16`` explicitly
  and a warning repeats this. ``quantization="4bit"``/``"8bit"`` asks for a quantized base
  anywhere (CPU included, which is how the tests exercise the T4 path).
- the output layer (``lm_head``) computes in fp32 when the weights are half precision, so the
  log-probabilities PPO's ratios are made of are fp32 (:func:`fp32_output_layer`).
- for RL, :func:`disable_dropout` (the networks PPO samples from must be deterministic) and
  :func:`fuse_gelu` (phi-2's GELU as one kernel, same function).
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
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.activations import GELUTanh, NewGELUActivation

PHI2 = "microsoft/phi-2"
PHI2_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2")
"""phi-2's linear layers: attention query/key/value and output (``dense``), MLP ``fc1``/``fc2``."""
POLICY_LORA_TARGETS = (*PHI2_LORA_TARGETS, "lm_head")
"""What the PPO policy's LoRA adapter covers (chapter 11): every linear layer, the output layer (``lm_head``)
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


Quantization = Literal["auto", "4bit", "8bit"] | None
QUANTIZATIONS = ("auto", "4bit", "8bit", None)


def native_bf16(device: torch.device | str) -> bool:
    """Whether ``device`` is a CUDA GPU with bf16 in hardware (compute capability 8.0 or newer).

    ``torch.cuda.is_bf16_supported()`` also counts emulation (a T4 answers True on current torch)
    and would pick a slow path there.
    """
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8


def default_dtype(device: torch.device | str) -> torch.dtype:
    """bf16 on a GPU with native bf16, fp32 everywhere else (never fp16: phi-2 overflows)."""
    return torch.bfloat16 if native_bf16(device) else torch.float32


def default_quantization(device: torch.device | str) -> str | None:
    """``"4bit"`` on a CUDA GPU without native bf16 (T4, V100), where a bf16 base would be emulated
    and an fp32 one would not fit; None (no quantization) elsewhere."""
    device = torch.device(device)
    return "4bit" if device.type == "cuda" and not native_bf16(device) else None


def _quantization_config(quantization: str | None):
    """A ``BitsAndBytesConfig``: NF4 with double quantisation (or int8), computing in fp32, the output
    layer left unquantised; None for no quantization."""
    if quantization is None:
        return None
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as err:
        raise ImportError(f"quantization={quantization!r} needs bitsandbytes: `pip install bitsandbytes` "
                          "(or pass quantization=None and a dtype that fits your GPU)") from err
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=torch.float32, llm_int8_skip_modules=["lm_head", "score"])
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=["lm_head", "score"])


def is_quantized(model: torch.nn.Module) -> bool:
    """Whether ``model`` (or the base under its LoRA adapters) holds a bitsandbytes-quantized base."""
    return bool(getattr(model, "is_quantized", False) or getattr(getattr(model, "base_model", None), "is_quantized", False)
                or any(type(m).__name__ in ("Linear4bit", "Linear8bitLt") for m in model.modules()))


def fp32_output_layer(model: PreTrainedModel) -> None:
    """Compute a half-precision causal LM's output layer in fp32 (in place).

    The log-probabilities of PPO's ratio and KL are differences of log-softmaxes over 51,200
    logits; in bf16 (8 bits of mantissa) each logit is off by up to ~0.4 %, enough to move a
    ratio that should be exactly 1 at the first minibatch. The weight is kept in fp32 and the
    final hidden state cast up before it (phi-2: +0.25 GiB).
    """
    head = model.get_output_embeddings()
    if head is None or head.weight.dtype == torch.float32 or head.weight.dtype not in (torch.bfloat16, torch.float16):
        return
    head.float()
    head.register_forward_pre_hook(lambda module, args: tuple(a.float() if torch.is_tensor(a) else a for a in args))


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every ``torch.nn.Dropout`` in ``model`` to p=0 and put it in eval mode (attention dropout off)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    model.eval()


def fuse_gelu(model: torch.nn.Module) -> None:
    """Swap transformers' ``NewGELUActivation`` (phi-2's ``gelu_new``: five elementwise ops,
    each with its own backward) for :class:`~transformers.activations.GELUTanh`, the same
    function (tanh-approximated GELU) as one fused kernel. Outputs agree to float rounding
    (~1e-7); the MLP's activation is a tenth of the tiny model's training time otherwise."""
    for module in model.modules():
        for name, child in module.named_children():
            if type(child) is NewGELUActivation:
                setattr(module, name, GELUTanh())


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


def _prepare(name, dtype, device, quantization) -> tuple[str, torch.dtype, torch.device, dict]:
    """Resolve the model and the dtype policy; returns ``from_pretrained`` keyword arguments too."""
    resolved = resolve_model_name(name)
    _check_available(resolved)
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "auto":
        quantization = default_quantization(device)
    if quantization is not None:  # the unquantized parts (norms, embeddings, output layer) and LoRA stay fp32
        if dtype not in (None, torch.float32):
            raise ValueError(f"a {quantization} base computes in fp32; pass dtype=None (not {dtype})")
        return resolved, torch.float32, device, {"quantization_config": _quantization_config(quantization),
                                                  "device_map": {"": device}}
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
    return resolved, dtype, device, {}


def _from_pretrained(cls, resolved: str, **kwargs) -> PreTrainedModel:
    try:
        return cls.from_pretrained(resolved, trust_remote_code=False, **kwargs)
    except OSError as err:
        if Path(resolved).is_dir():
            raise
        raise _not_available(resolved, f"loading failed ({err})") from err


def default_lora_config(r: int = 16, alpha: float = 32, task_type: str | None = "CAUSAL_LM",
                        targets: Sequence[str] | None = None):
    """LoRA of rank ``r`` on ``targets`` (default: all of phi-2's linear layers, :data:`PHI2_LORA_TARGETS`),
    no dropout (RL needs deterministic networks). The one builder of the course's LoRA configurations."""
    from peft import LoraConfig

    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, bias="none",
                      target_modules=list(targets or PHI2_LORA_TARGETS), task_type=task_type)


def merged(model, base: str) -> PreTrainedModel:
    """``model`` (a ``PeftModel`` on ``base``) with its LoRA adapter merged into the weights, for saving.

    A quantized base cannot take a merge without rounding the adapter away, so then the adapter
    (and any trained head) is re-applied to a bf16 copy of ``base`` on the CPU and merged there:
    the saved stage is a full-precision model, quantized again when it is next loaded on a T4.
    """
    if not is_quantized(model):
        return model.merge_and_unload()
    from peft import PeftModel

    reward = type(model.get_base_model()).__name__.endswith("ForSequenceClassification")
    loader = load_reward_model if reward else load_model
    full, _ = loader(base, dtype=torch.bfloat16, device="cpu", quantization=None)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        full = PeftModel.from_pretrained(full, tmp)
    return full.merge_and_unload()


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
    quantization: Quantization = "auto",
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
        quantization: ``"auto"`` (a 4-bit base on a GPU without native bf16, see
            :func:`default_quantization`), ``"4bit"``, ``"8bit"`` (bitsandbytes, any device) or None.

    Returns:
        (model, tokenizer): an ``AutoModelForCausalLM`` (a ``peft.PeftModel`` with LoRA) on
        ``device``, and its tokenizer with distinct EOS and pad tokens.
    """
    resolved, dtype, device, extra = _prepare(name, dtype, device, quantization)
    tokenizer = _load_tokenizer(resolved, name)
    model = _from_pretrained(AutoModelForCausalLM, resolved, dtype=dtype, **extra)
    _align_model(model, tokenizer)
    if not extra:
        model.to(device)
    fp32_output_layer(model)
    return _finish(model, lora, for_training, "CAUSAL_LM"), tokenizer


def load_reward_model(
    name_or_dir: str,
    *,
    lora: bool | object = False,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    for_training: bool = False,
    quantization: Quantization = "auto",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a reward model: ``AutoModelForSequenceClassification`` with one output.

    Args:
        name_or_dir: a local directory (e.g. ``rlhf.stages.reward_model_dir()``, the tiny world's
            cached reward model) or a hub id. A causal LM checkpoint gets a new, randomly
            initialised scalar head (the starting point of reward modelling).
        lora, dtype, device, for_training, quantization: as in :func:`load_model`.

    Returns:
        (model, tokenizer); ``model(**batch).logits`` has shape ``(B, 1)``: the score read at
        each row's last non-pad token.
    """
    resolved, dtype, device, extra = _prepare(name_or_dir, dtype, device, quantization)
    tokenizer = _load_tokenizer(resolved, name_or_dir)
    model = _from_pretrained(AutoModelForSequenceClassification, resolved, dtype=dtype, num_labels=1, **extra)
    if model.config.num_labels != 1:
        raise ValueError(f"{name_or_dir!r} has num_labels={model.config.num_labels}; a reward model needs 1")
    _align_model(model, tokenizer)
    if not extra:
        model.to(device)
    return _finish(model, lora, for_training, "SEQ_CLS"), tokenizer
