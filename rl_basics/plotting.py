"""Plotting helpers shared by every chapter.

- :func:`plot_value_grid`   a heatmap of a state-value function laid out on a grid world
- :func:`plot_policy_arrows` the greedy action of each grid cell drawn as an arrow
- :func:`smooth`             a trailing moving average
- :func:`plot_learning_curves` mean over seeds with a shaded band, one line per method

All functions draw on a matplotlib ``Axes`` (a new one when ``ax`` is None) and
return it, so a notebook can compose them into figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

# FrozenLake numbers its actions 0=left, 1=down, 2=right, 3=up.
# Arrows are (dx, dy) in plot coordinates with row 0 at the top.
GYM_GRID_ARROWS: dict[int, tuple[float, float]] = {0: (-1, 0), 1: (0, -1), 2: (1, 0), 3: (0, 1)}
"""Arrow directions for FrozenLake's action order: left, down, right, up."""

# CliffWalking and the course's own grid worlds (rl_basics.envs) number actions 0=up, 1=right, 2=down, 3=left.
COURSE_GRID_ARROWS: dict[int, tuple[float, float]] = {0: (0, 1), 1: (1, 0), 2: (0, -1), 3: (-1, 0)}
"""Arrow directions for CliffWalking's and the rl_basics grid worlds' action order: up, right, down, left."""


def _axes(ax: Axes | None, figsize: tuple[float, float] = (4, 4)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_value_grid(
    values: np.ndarray,
    shape: tuple[int, int],
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool = True,
    fmt: str = "{:.1f}",
    cmap: str = "viridis",
    colorbar: bool = True,
) -> Axes:
    """Draw ``values`` (shape ``(n_states,)``, row-major states) as a ``shape = (rows, cols)`` heatmap.

    With ``annotate`` each cell shows its number, formatted with ``fmt``.
    """
    values = np.asarray(values, dtype=float)
    rows, cols = shape
    if values.size != rows * cols:
        raise ValueError(f"values has {values.size} entries but the grid {shape} has {rows * cols} cells")
    grid = values.reshape(rows, cols)
    ax = _axes(ax, (cols * 0.6 + 1, rows * 0.6 + 0.5))
    image = ax.imshow(grid, cmap=cmap)
    if annotate:
        mid = (np.nanmax(grid) + np.nanmin(grid)) / 2
        for r in range(rows):
            for c in range(cols):
                color = "black" if grid[r, c] > mid else "white"
                ax.text(c, r, fmt.format(grid[r, c]), ha="center", va="center", fontsize=8, color=color)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


def plot_policy_arrows(
    policy: np.ndarray,
    shape: tuple[int, int],
    ax: Axes | None = None,
    arrows: Mapping[int, tuple[float, float]] = GYM_GRID_ARROWS,
    title: str | None = None,
    skip: Sequence[int] = (),
    labels: Mapping[int, str] | None = None,
    background: np.ndarray | None = None,
    tol: float = 1e-9,
) -> Axes:
    """Draw a grid-world policy as arrows.

    Args:
        policy: ``(n_states,)`` greedy action per state, or ``(n_states, n_actions)``
            action probabilities; every action within ``tol`` of a state's maximum gets
            an arrow, so ties (as in Sutton & Barto's Figure 4.1) show as several arrows.
        shape: ``(rows, cols)`` of the grid, states numbered row-major.
        arrows: action -> ``(dx, dy)`` direction (``GYM_GRID_ARROWS`` for FrozenLake,
            ``COURSE_GRID_ARROWS`` for CliffWalking and the rl_basics grid worlds).
        skip: states drawn without arrows (terminal states, holes, walls).
        labels: state -> text drawn in the cell instead (e.g. ``{0: "T", 15: "G"}``).
        background: optional ``(n_states,)`` values shaded behind the arrows.
    """
    rows, cols = shape
    policy = np.asarray(policy)
    if policy.ndim == 1:
        probs = np.zeros((policy.size, max(arrows) + 1))
        probs[np.arange(policy.size), policy.astype(int)] = 1.0
    else:
        probs = policy.astype(float)
    if probs.shape[0] != rows * cols:
        raise ValueError(f"policy has {probs.shape[0]} states but the grid {shape} has {rows * cols} cells")
    ax = _axes(ax, (cols * 0.6 + 0.5, rows * 0.6 + 0.5))
    if background is not None:
        ax.imshow(np.asarray(background, dtype=float).reshape(rows, cols), cmap="Greys", alpha=0.35)
    skip_set = set(int(s) for s in skip)
    labels = dict(labels or {})
    for s in range(rows * cols):
        r, c = divmod(s, cols)
        if s in labels:
            ax.text(c, r, labels[s], ha="center", va="center", fontsize=10, fontweight="bold")
            continue
        if s in skip_set:
            continue
        best = probs[s].max()
        for a, (dx, dy) in arrows.items():
            if a < probs.shape[1] and probs[s, a] >= best - tol:
                ax.arrow(c, r, 0.3 * dx, -0.3 * dy, head_width=0.15, head_length=0.1, fc="k", ec="k",
                         length_includes_head=True)
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
    ax.grid(which="minor", color="0.7", linewidth=0.5)
    ax.tick_params(which="both", bottom=False, left=False, labelbottom=False, labelleft=False)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def smooth(values: Sequence[float] | np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis: entry ``t`` is the mean of the last ``window`` values up to ``t``.

    The first ``window - 1`` entries average over what exists so far, so the output
    has the input's shape (no edge effects from zero padding).
    """
    values = np.asarray(values, dtype=float)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if window == 1:
        return values.copy()
    cumsum = np.cumsum(values, axis=-1)
    out = np.empty_like(cumsum)
    out[..., :window] = cumsum[..., :window] / np.arange(1, min(window, values.shape[-1]) + 1)
    if values.shape[-1] > window:
        out[..., window:] = (cumsum[..., window:] - cumsum[..., :-window]) / window
    return out


def plot_learning_curves(
    curves: Mapping[str, np.ndarray],
    x: np.ndarray | None = None,
    ax: Axes | None = None,
    window: int = 1,
    band: str = "std",
    xlabel: str = "episode",
    ylabel: str = "return",
    title: str | None = None,
    ylim: tuple[float, float] | None = None,
) -> Axes:
    """One line per method: the mean over seeds, with a shaded band.

    Args:
        curves: method name -> array ``(n_seeds, n_points)`` (or ``(n_points,)`` for one seed).
        x: ``(n_points,)`` x-coordinates; defaults to ``1 .. n_points``.
        window: moving-average window applied to each seed's curve before averaging.
        band: ``"std"`` (mean ± one standard deviation over seeds), ``"sem"`` (± standard
            error of the mean) or ``"minmax"``.
    """
    if band not in ("std", "sem", "minmax"):
        raise ValueError(f"band must be 'std', 'sem' or 'minmax', got {band!r}")
    ax = _axes(ax, (6, 4))
    for name, curve in curves.items():
        curve = np.atleast_2d(np.asarray(curve, dtype=float))
        curve = smooth(curve, window)
        xs = np.arange(1, curve.shape[1] + 1) if x is None else np.asarray(x)
        mean = curve.mean(axis=0)
        (line,) = ax.plot(xs, mean, label=name)
        if curve.shape[0] > 1:
            if band == "minmax":
                low, high = curve.min(axis=0), curve.max(axis=0)
            else:
                spread = curve.std(axis=0)
                if band == "sem":
                    spread = spread / np.sqrt(curve.shape[0])
                low, high = mean - spread, mean + spread
            ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend()
    return ax
