"""Gathering and scattering whole rows of byte matrices, the memory traffic of KKRT-PSI.

NumPy's fancy indexing of a 2-D ``uint8`` array moves a row byte by byte; :func:`numpy.take` and
:func:`numpy.put` on a view with one opaque ``V<width>`` item per row move it as one block. Measured
with NumPy 2.4 on the 2-core AMD EPYC: gathering 73,000 rows of 16 bytes from 1M, 13.4 ms by
``a[idx]`` against 0.63 ms by :func:`take_rows`; scattering 11-byte rows, 7.6 ms against 0.6 ms.
"""

from __future__ import annotations

import numpy as np

__all__ = ["put_rows", "take_rows"]


def _items(a: np.ndarray) -> np.ndarray:
    """``a`` (2-D, rows contiguous) as a 1-D array of one opaque item per row; shares memory."""
    if a.ndim != 2 or a.strides[1] != 1 or a.strides[0] != a.shape[1]:
        a = np.ascontiguousarray(a)
    return a.view(f"V{a.shape[1]}").reshape(-1)


def take_rows(a: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``a[index]`` for a 2-D uint8 array: a new ``(len(index), a.shape[1])`` array."""
    if a.shape[1] == 0:
        return np.empty((len(index), 0), dtype=a.dtype)
    return np.take(_items(a), index).view(a.dtype).reshape(len(index), a.shape[1])


def put_rows(a: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """``a[index] = rows`` for a C-contiguous 2-D uint8 array ``a`` (written in place)."""
    if not a.flags.c_contiguous:
        raise ValueError("put_rows writes into a C-contiguous array")
    if a.shape[1]:
        np.put(_items(a), index, _items(np.ascontiguousarray(rows, dtype=a.dtype)))
