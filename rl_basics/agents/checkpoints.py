"""Checkpoints: save and load training state, random number generators included.

- :func:`save_checkpoint` writes modules and optimizers (as state dicts), dataclasses (as
  dicts), numpy arrays (as tensors) and the python/numpy/torch RNG states, atomically;
- :func:`load_checkpoint` reads one back safely (``weights_only=True``), optionally
  restoring the RNGs so training continues exactly where it stopped.

Used by the agents (``TrainResult.save``, ``rl_basics.agents.networks.load_actor``) and by
``rlhf``'s PPO trainer; it needs torch and numpy only.
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }


def _restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def _saveable(value: Any) -> Any:
    """Convert to what ``torch.load(weights_only=True)`` can read back."""
    if isinstance(value, (nn.Module, torch.optim.Optimizer)):
        return value.state_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _saveable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _saveable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_saveable(v) for v in value)
    return value


def save_checkpoint(path: str | os.PathLike, **state: Any) -> Path:
    """Save ``state`` (modules and optimizers as state dicts, dataclasses as dicts, numpy
    arrays as tensors) plus the python/numpy/torch RNG states under ``"rng"``.

    The file is written to a temporary file in the same directory and atomically renamed
    over ``path``: an interrupted save never leaves a broken or half-written checkpoint,
    and the previous checkpoint at ``path`` stays intact until the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {key: _saveable(value) for key, value in state.items()}
    payload["rng"] = _rng_state()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike, restore_rng: bool = False, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (safely: ``weights_only=True``).

    With ``restore_rng`` the python, numpy and torch RNGs continue from where they were
    when it was saved.
    """
    state = torch.load(Path(path), map_location=map_location, weights_only=True)
    if restore_rng and "rng" in state:
        _restore_rng_state(state["rng"])
    return state


__all__ = ["load_checkpoint", "save_checkpoint"]
