"""Tile coding (Sutton & Barto, section 9.5.4): coarse coding with several offset grids.

Each of ``n_tilings`` grids ("tilings") partitions a box of the state space into tiles of equal
size; a state activates exactly one tile per tiling, so its feature vector is binary with
``n_tilings`` ones. The tilings are displaced from one another by a fraction of a tile: tiling
``i`` is shifted by ``i * d / n_tilings`` tile widths, with the *asymmetric* displacement vector
``d = (1, 3, 5, ...)`` the book recommends (uniform offsets ``d = (1, 1, ...)`` line all tilings
up along the diagonal and generalise in diagonal stripes).

The book's experiments use Sutton's ``tiles3`` software, which hashes tiles into a table of 4,096
entries. With 8 tilings of 9 x 9 tiles (8 x 8 over the box, plus one row and column for the
offsets) and 3 actions there are only 1,944 distinct tiles, so no two ever collide: indexing the
tiles directly, as here, gives the same features.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class TileCoder:
    """Active-tile indices of continuous states in a box ``[low, high]`` (one index per tiling).

    Args:
        low, high: ``(d,)`` the box the tiles cover; states outside it are clipped onto it.
        n_tilings: how many offset grids (each state activates one tile in each).
        tiles_per_dim: tiles per dimension covering the box in one tiling (each tile spans
            ``(high - low) / tiles_per_dim``); every tiling gets one more per dimension for its offset.
        displacement: ``(d,)`` odd integers; tiling ``i`` is shifted by ``i * displacement / n_tilings``
            tile widths (modulo one tile). The default ``(1, 3, 5, ...)`` is the book's asymmetric choice.

    ``n_features = n_tilings * (tiles_per_dim + 1) ** d``; :meth:`active` returns ``(B, n_tilings)``
    indices into ``range(n_features)``, tiling ``i``'s in block ``i``.
    """

    def __init__(self, low: Sequence[float], high: Sequence[float], n_tilings: int = 8, tiles_per_dim: int = 8,
                 displacement: Sequence[int] | None = None):
        self.low, self.high = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
        if self.low.ndim != 1 or self.low.shape != self.high.shape or not (self.high > self.low).all():
            raise ValueError(f"low and high must be (d,) arrays with high > low, got {low!r} and {high!r}")
        if not (isinstance(n_tilings, (int, np.integer)) and n_tilings >= 1):
            raise ValueError(f"n_tilings must be an integer >= 1, got {n_tilings!r}")
        if not (isinstance(tiles_per_dim, (int, np.integer)) and tiles_per_dim >= 1):
            raise ValueError(f"tiles_per_dim must be an integer >= 1, got {tiles_per_dim!r}")
        dims = self.low.size
        displacement = np.arange(1, 2 * dims, 2) if displacement is None else np.asarray(displacement)
        if displacement.shape != (dims,):
            raise ValueError(f"displacement must have one entry per dimension ({dims}), got {displacement!r}")
        self.n_tilings, self.tiles_per_dim, self.dims = int(n_tilings), int(tiles_per_dim), dims
        self.offsets = (np.arange(n_tilings)[:, None] * displacement / n_tilings) % 1.0  # (n_tilings, d) in tiles
        self.side = tiles_per_dim + 1  # tiles per dimension of one tiling, offset included
        self.tiles_per_tiling = self.side ** dims
        self.n_features = self.n_tilings * self.tiles_per_tiling
        self._strides = self.side ** np.arange(dims - 1, -1, -1)
        self._scale = self.tiles_per_dim / (self.high - self.low)
        self._tiling_base = np.arange(self.n_tilings) * self.tiles_per_tiling

    def active(self, states: np.ndarray) -> np.ndarray:
        """``(B, n_tilings)`` int indices of the active tiles of ``states (B, d)`` (or ``(n_tilings,)`` for one state)."""
        states = np.asarray(states, dtype=float)
        single = states.ndim == 1
        scaled = (np.minimum(np.maximum(np.atleast_2d(states), self.low), self.high) - self.low) * self._scale
        coords = (scaled[:, None, :] + self.offsets).astype(np.int64)  # (B, n_tilings, d): floor, as all are >= 0
        index = (coords * self._strides).sum(-1) + self._tiling_base
        return index[0] if single else index

    def features(self, states: np.ndarray) -> np.ndarray:
        """The binary feature vectors ``(B, n_features)`` (for plots and tests; learning uses :meth:`active`)."""
        index = np.atleast_2d(self.active(states))
        x = np.zeros((index.shape[0], self.n_features))
        np.put_along_axis(x, index, 1.0, axis=1)
        return x
