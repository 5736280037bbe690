"""The training arguments every TRL trainer of the course shares (SFT, reward model, DPO, GRPO, RLOO).

One builder, so the course's rules for TRL are written once: seeded data order, nothing
reported or pushed anywhere, no checkpoints in TRL's scratch folder (the course keeps its own
stages), bf16 only on a GPU that computes it natively, the CPU when there is no GPU, and no
dataloader worker processes (a notebook kernel must not fork). Each trainer adds its own
fields (epochs, batch size, learning rate, ...) as keyword arguments.
"""

from __future__ import annotations

import os
from typing import Any

import torch


def trl_training_args(output_dir: str | os.PathLike, seed: int, *, bf16: bool | None = None, **fields: Any) -> dict:
    """Keyword arguments for a TRL ``*Config`` (``SFTConfig``, ``RewardConfig``, ``DPOConfig``, ...).

    Args:
        output_dir: TRL's scratch folder (nothing is saved there).
        seed: seeds the trainer and its data order.
        bf16: bf16 mixed precision; None: on when a CUDA GPU supports it natively, off on the CPU.
        fields: the trainer's own arguments; they override the shared ones.
    """
    on_gpu = torch.cuda.is_available()
    if bf16 is None:
        bf16 = on_gpu and torch.cuda.is_bf16_supported()
    shared = dict(output_dir=str(output_dir), seed=seed, data_seed=seed, report_to="none", push_to_hub=False,
                  save_strategy="no", bf16=bool(bf16), fp16=False, use_cpu=not on_gpu, dataloader_num_workers=0)
    return {**shared, **fields}
