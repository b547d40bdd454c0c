"""The viewer's image data path: pure functions on numpy arrays, no web, no sockets.

A detector frame is far larger than a screen (a 16M EIGER is 4148 × 4362 pixels), so the
page shows it binned: each screen pixel is the maximum (hot pixels stay visible) or the
mean of a square block of frame pixels. Masked pixels (the header's pixel mask) are left
out of every bin; a bin with only masked pixels is NaN, which the colour mapper draws in
the mask colour. Contrast comes from percentiles of what is shown, and the value under
the cursor is looked up in the full-resolution frame, never in the binned image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "Region",
    "Binned",
    "BINNINGS",
    "full_region",
    "bin_region",
    "contrast_limits",
    "histogram",
    "pixel_value",
    "mask_of",
]

#: Ways a block of pixels becomes one screen pixel.
BINNINGS = ("max", "mean")

#: At most this many values feed the percentiles and the histogram (a regular sample).
SAMPLE_SIZE = 1 << 19


@dataclass(frozen=True)
class Region:
    """A rectangle of a frame in pixel coordinates: rows ``y0:y1``, columns ``x0:x1``."""

    y0: int
    y1: int
    x0: int
    x1: int


@dataclass(frozen=True)
class Binned:
    """A region binned for the screen: ``image[i, j]`` covers rows ``y0 + i*factor`` and
    columns ``x0 + j*factor`` (``factor`` pixels each way; the last bins may be cut by
    the region's edge). ``width`` and ``height`` are the bins' extent in frame pixels."""

    image: np.ndarray
    factor: int
    x0: int
    y0: int

    @property
    def width(self) -> int:
        """Frame columns the bins span (a whole number of bins)."""
        return self.image.shape[1] * self.factor

    @property
    def height(self) -> int:
        """Frame rows the bins span (a whole number of bins)."""
        return self.image.shape[0] * self.factor


def full_region(shape: tuple[int, ...]) -> Region:
    """The region of a whole frame of ``shape`` (rows, columns)."""
    return Region(0, shape[0], 0, shape[1])


def _clip(region: Region, shape: tuple[int, ...]) -> Region:
    y0 = min(max(0, region.y0), shape[0] - 1)
    x0 = min(max(0, region.x0), shape[1] - 1)
    return Region(
        y0, min(max(y0 + 1, region.y1), shape[0]), x0, min(max(x0 + 1, region.x1), shape[1])
    )


def _lowest(dtype: np.dtype) -> Any:
    if dtype.kind in "iu":
        return np.iinfo(dtype).min
    return -np.inf


def _reduce_rows(array: np.ndarray, factor: int, ufunc: np.ufunc, dtype: Any) -> np.ndarray:
    """``ufunc`` over blocks of ``factor`` rows; the last block may be short.

    Whole blocks are reduced through a reshaped view, which streams through the
    contiguous rows; the short one on its own.
    """
    whole = array.shape[0] // factor * factor
    pieces = []
    if whole:
        blocks = array[:whole].reshape(whole // factor, factor, array.shape[1])
        pieces.append(ufunc.reduce(blocks, axis=1, dtype=dtype))
    if whole < array.shape[0]:
        pieces.append(ufunc.reduce(array[whole:], axis=0, dtype=dtype, keepdims=True))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=0)


def _reduce_columns(array: np.ndarray, factor: int, ufunc: np.ufunc, dtype: Any) -> np.ndarray:
    """``ufunc`` over blocks of ``factor`` columns; the last block may be short.

    Whole blocks are combined as ``factor`` strided slices, one element-wise ``ufunc``
    each: a reduction over a short innermost axis is ten times slower.
    """
    columns = array.shape[1]
    whole = columns // factor * factor
    pieces = []
    if whole:
        out = array[:, 0:whole:factor].astype(dtype or array.dtype)
        for offset in range(1, factor):
            ufunc(out, array[:, offset:whole:factor], out=out)
        pieces.append(out)
    if whole < columns:
        pieces.append(ufunc.reduce(array[:, whole:], axis=1, dtype=dtype, keepdims=True))
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)


def _reduce_2d(array: np.ndarray, factor: int, ufunc: np.ufunc, dtype: Any = None) -> np.ndarray:
    # Rows first: that shrinks the array by ``factor`` in one streaming pass.
    return _reduce_columns(_reduce_rows(array, factor, ufunc, dtype), factor, ufunc, dtype)


def bin_region(
    frame: np.ndarray,
    region: Region,
    screen: tuple[int, int],
    binning: str = "max",
    mask: np.ndarray | None = None,
) -> Binned:
    """``region`` of the 2-D ``frame`` binned to fit ``screen`` (rows, columns) pixels.

    The factor is the smallest whole number that makes the region fit (1 when it already
    does). ``binning`` is ``"max"`` or ``"mean"``; ``mask`` (same shape as the frame, true =
    masked) leaves pixels out. The result is as small as the display allows: the frame's
    own integer type (at most 32 bits) for the maximum of unmasked pixels, else float32
    with NaN for bins without an unmasked pixel.
    """
    if binning not in BINNINGS:
        raise ValueError(f"binning must be one of {', '.join(BINNINGS)}, not {binning!r}")
    region = _clip(region, frame.shape)
    rows, columns = region.y1 - region.y0, region.x1 - region.x0
    factor = max(1, math.ceil(max(rows / max(1, screen[0]), columns / max(1, screen[1]))))
    window = frame[region.y0 : region.y1, region.x0 : region.x1]
    masked = None if mask is None else mask[region.y0 : region.y1, region.x0 : region.x1]
    if masked is not None and not masked.any():
        masked = None
    if binning == "max":
        if masked is not None:
            window = np.where(masked, _lowest(window.dtype), window)
        ufunc = np.fmax if window.dtype.kind == "f" else np.maximum
        image = _reduce_2d(window, factor, ufunc)
        if masked is not None:
            image = image.astype(np.float32)
            image[_reduce_2d(masked, factor, np.logical_and)] = np.nan
        elif image.dtype.kind not in "iu" or image.dtype.itemsize > 4:
            image = image.astype(np.float32)
    else:
        total = np.float64 if window.dtype.kind in "fc" or window.dtype.itemsize > 2 else np.uint32
        if masked is not None:
            window = np.where(masked, 0, window)
            counts = _reduce_2d(~masked, factor, np.add, np.uint32)
        else:
            counts = _reduce_2d(np.ones((rows, 1), np.uint32), factor, np.add) * _reduce_2d(
                np.ones((1, columns), np.uint32), factor, np.add
            )
        sums = _reduce_2d(window, factor, np.add, total)
        with np.errstate(invalid="ignore", divide="ignore"):
            image = (sums / counts).astype(np.float32)
    return Binned(image, factor, region.x0, region.y0)


def _sample(values: np.ndarray) -> np.ndarray:
    """The finite values of ``values`` (any shape), a regular sample if there are many."""
    flat = values.reshape(-1)
    step = max(1, flat.size // SAMPLE_SIZE)
    flat = flat[::step]
    if flat.dtype.kind == "f":
        flat = flat[np.isfinite(flat)]
    return flat


def contrast_limits(
    image: np.ndarray, low: float = 1.0, high: float = 99.9, log: bool = False
) -> tuple[float, float]:
    """Colour-map limits: the ``low`` and ``high`` percentiles of the finite values shown.

    The upper limit is always above the lower one; with ``log`` both are positive (the
    lower at least the smallest positive value), so a log colour map can use them.
    """
    values = _sample(image)
    if log:
        values = values[values > 0]
    if values.size == 0:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lower, upper = (float(v) for v in np.percentile(values, [low, high]))
    if log:
        lower = max(lower, float(values.min()))
    if upper <= lower:
        upper = lower * 10 if log else lower + 1
    return lower, upper


def histogram(
    frame: np.ndarray, limits: tuple[float, float], bins: int = 100, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Counts of the frame's unmasked values in ``bins`` equal bins between ``limits``.

    Returns ``(counts, edges, below, above)``: values outside the limits are counted in
    ``below`` / ``above``. Large frames are sampled regularly (`SAMPLE_SIZE` values).
    """
    values = frame if mask is None else frame[~mask]
    sample = _sample(values)
    lower, upper = limits
    counts, edges = np.histogram(sample, bins=bins, range=(lower, upper))
    below = int(np.count_nonzero(sample < lower))
    above = int(np.count_nonzero(sample > upper))
    return counts, edges, below, above


def pixel_value(frame: np.ndarray, x: float, y: float) -> tuple[int, int, Any] | None:
    """``(column, row, value)`` of the frame pixel at ``(x, y)`` (frame pixel coordinates,
    the pixel's corner at whole numbers); ``None`` outside the frame."""
    column, row = math.floor(x), math.floor(y)
    if not (0 <= row < frame.shape[0] and 0 <= column < frame.shape[1]):
        return None
    return column, row, frame[row, column].item()


def mask_of(pixel_mask: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    """The boolean mask (true = masked: any bit set) of a header's pixel mask for frames of
    ``shape``; ``None`` without a mask, or when it does not match the frames."""
    if not isinstance(pixel_mask, np.ndarray) or pixel_mask.shape != tuple(shape):
        return None
    mask = pixel_mask != 0
    return mask if mask.any() else None
