"""The bookkeeping every agent's ``train`` shares: results, seeds, threads, progress, optimizer, sanity checks.

- :class:`TrainResult`: what ``train`` returns (networks, per-episode and per-update history),
  with :meth:`TrainResult.save`
- :data:`Callback`: the type of ``train``'s ``callback`` argument
- :func:`torch_threads`: run training or evaluation with a given number of torch threads
- :func:`set_seed`: seed python's, numpy's and torch's global RNGs
- :func:`progress_bar`: a tqdm bar (a widget in notebooks)
- :func:`make_adam`: Adam, fused where torch supports it
- :func:`history_arrays`: the history's lists as numpy arrays
- :func:`check_finite`: stop training with a clear message when a loss or reward is NaN or inf

It needs torch and numpy only (``rlhf`` uses :func:`progress_bar` and :func:`check_finite` too).
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from rl_basics.agents.checkpoints import save_checkpoint

Callback = Callable[[dict[str, Any]], bool | None]
"""``train``'s ``callback``: called after every update with a dict of the update's state (``update``,
``env_steps``, the networks, ``stats``); returning True stops training."""


@dataclass
class TrainResult:
    """What an agent's ``train`` returns.

    ``history`` maps names to numpy arrays: per episode ``episode_returns``,
    ``episode_lengths`` and ``episode_steps`` (the global env step at which the episode
    ended), and per update the agent's diagnostics (``update_steps`` holds the global
    env step of each update; loss terms, entropy, approx-KL, ...).
    """

    actor: nn.Module  # the trained policy: an Actor, or DQN's Q-network
    history: dict[str, np.ndarray]
    critic: nn.Module | None = None
    config: Any = None
    seed: int | None = None

    def save(self, path: str | os.PathLike) -> Path:
        """Save the networks, config, seed and history (see :func:`~rl_basics.agents.checkpoints.save_checkpoint`)."""
        return save_checkpoint(
            path,
            actor=self.actor,
            critic=self.critic,
            config=self.config,
            seed=self.seed,
            history=self.history,
        )


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run the body with ``n`` torch intra-op threads (``None``: leave torch's setting alone).

    The course's networks are tiny: with more than one thread each operation costs more
    in synchronisation than it saves, and on a busy machine far more. Training and
    evaluation therefore run single-threaded by default; the previous setting is restored.
    """
    previous = torch.get_num_threads()
    if n is not None and n != previous:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n is not None and n != previous:
            torch.set_num_threads(previous)


def set_seed(seed: int) -> None:
    """Seed python's, numpy's and torch's global random number generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def progress_bar(total: int, enabled: bool = True, desc: str | None = None):
    """A tqdm progress bar (``tqdm.auto``: a widget in notebooks, text in a terminal)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, desc=desc, unit="step", dynamic_ncols=True, leave=False)


def make_adam(params: list[nn.Parameter], lr: float, eps: float) -> torch.optim.Adam:
    """Adam, fused into one kernel where this torch build supports it (much less per-step overhead on CPU)."""
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr, eps=eps)


def history_arrays(history: dict[str, list], dtypes: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Lists of numbers -> numpy arrays (float64 unless ``dtypes`` says otherwise)."""
    dtypes = dtypes or {}
    return {key: np.asarray(values, dtype=dtypes.get(key, np.float64)) for key, values in history.items()}


def check_finite(name: str, value: Any, step: int) -> None:
    """Raise ``FloatingPointError`` naming ``name`` and the update ``step`` if ``value`` has a NaN or inf."""
    array = value.detach().cpu().double().numpy() if isinstance(value, Tensor) else np.asarray(value, dtype=float)
    bad = ~np.isfinite(array)
    if bad.any():
        shown = f"{array.item()}" if array.size == 1 else f"{int(bad.sum())} of {array.size} entries NaN or inf"
        raise FloatingPointError(
            f"{name} is not finite ({shown}) at update {step}; training stopped. "
            "Common causes: a learning rate too high, unnormalised rewards or observations, "
            "or a log-probability of an impossible action."
        )


__all__ = [
    "Callback",
    "TrainResult",
    "check_finite",
    "history_arrays",
    "make_adam",
    "progress_bar",
    "set_seed",
    "torch_threads",
]
