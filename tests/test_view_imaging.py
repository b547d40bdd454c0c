"""The viewer's image data path: binning, contrast, histogram, value lookup, mask."""

from __future__ import annotations

import numpy as np
import pytest

from mflow.view.imaging import (
    Region,
    bin_region,
    contrast_limits,
    full_region,
    histogram,
    mask_of,
    pixel_value,
)


def _reference(frame: np.ndarray, factor: int, reduce) -> np.ndarray:
    rows = -(-frame.shape[0] // factor)
    columns = -(-frame.shape[1] // factor)
    return np.array(
        [
            [
                reduce(frame[i * factor : (i + 1) * factor, j * factor : (j + 1) * factor])
                for j in range(columns)
            ]
            for i in range(rows)
        ],
        dtype=np.float32,
    )


@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32"])
@pytest.mark.parametrize("shape", [(40, 60), (37, 53), (5, 200)])
def test_max_and_mean_binning_match_a_per_block_reference(dtype: str, shape) -> None:
    frame = np.random.default_rng(1).integers(0, 1000, shape).astype(dtype)
    binned = bin_region(frame, full_region(shape), (10, 10), "max")
    factor = binned.factor
    assert factor == max(-(-shape[0] // 10), -(-shape[1] // 10))
    np.testing.assert_array_equal(binned.image, _reference(frame, factor, np.max))
    mean = bin_region(frame, full_region(shape), (10, 10), "mean")
    np.testing.assert_allclose(mean.image, _reference(frame, factor, np.mean), rtol=1e-6)


def test_a_single_hot_pixel_survives_max_binning_but_not_mean() -> None:
    frame = np.zeros((1000, 1000), np.uint16)
    frame[501, 733] = 60000
    maximum = bin_region(frame, full_region(frame.shape), (100, 100), "max")
    assert maximum.factor == 10 and maximum.image[50, 73] == 60000
    mean = bin_region(frame, full_region(frame.shape), (100, 100), "mean")
    assert mean.image[50, 73] == pytest.approx(600)


def test_a_frame_smaller_than_the_screen_is_not_binned() -> None:
    frame = np.arange(12, dtype=np.uint8).reshape(3, 4)
    binned = bin_region(frame, full_region(frame.shape), (800, 800))
    assert binned.factor == 1 and (binned.width, binned.height) == (4, 3)
    np.testing.assert_array_equal(binned.image, frame)


def test_a_region_is_binned_alone_and_clipped_to_the_frame() -> None:
    frame = np.arange(100 * 100, dtype=np.uint32).reshape(100, 100)
    binned = bin_region(frame, Region(10, 30, 90, 140), (100, 100))
    assert (binned.x0, binned.y0, binned.factor) == (90, 10, 1)
    np.testing.assert_array_equal(binned.image, frame[10:30, 90:100])


def test_masked_pixels_are_left_out_and_fully_masked_bins_are_nan() -> None:
    frame = np.ones((4, 4), np.uint16)
    frame[0, 0] = 9000  # a masked hot pixel must not show
    mask = np.zeros((4, 4), bool)
    mask[0, 0] = True
    mask[2:, 2:] = True
    for binning in ("max", "mean"):
        image = bin_region(frame, full_region(frame.shape), (2, 2), binning, mask).image
        assert image[0, 0] == 1
        assert np.isnan(image[1, 1]) and image[1, 0] == 1


def test_an_unknown_binning_is_refused() -> None:
    with pytest.raises(ValueError, match="binning"):
        bin_region(np.zeros((2, 2)), Region(0, 2, 0, 2), (1, 1), "median")


def test_contrast_limits_are_percentiles_of_the_finite_values() -> None:
    image = np.arange(1001, dtype=np.float32)
    image[:10] = np.nan
    assert contrast_limits(image, 0, 100) == (10.0, 1000.0)
    lower, upper = contrast_limits(image, 50, 50)
    assert upper > lower


def test_log_contrast_limits_are_positive() -> None:
    image = np.array([0, 0, 0, 5, 50, 500], np.float32)
    lower, upper = contrast_limits(image, 0, 100, log=True)
    assert (lower, upper) == (5.0, 500.0)
    assert contrast_limits(np.zeros(4, np.float32), log=True) == (1.0, 10.0)


def test_histogram_counts_values_in_and_out_of_the_limits() -> None:
    frame = np.array([[0, 1, 2, 3], [4, 5, 6, 100]], np.uint16)
    mask = np.zeros(frame.shape, bool)
    mask[0, 0] = True
    counts, edges, below, above = histogram(frame, (1, 6), bins=5, mask=mask)
    assert counts.sum() == 6 and below == 0 and above == 1
    assert edges[0] == 1 and edges[-1] == 6


def test_pixel_value_reads_the_full_resolution_frame() -> None:
    frame = np.arange(20, dtype=np.int16).reshape(4, 5)
    assert pixel_value(frame, 3.7, 2.2) == (3, 2, 13)
    assert pixel_value(frame, -0.1, 0) is None and pixel_value(frame, 5.0, 0) is None


def test_mask_of_takes_a_matching_nonzero_mask_only() -> None:
    pixel_mask = np.zeros((3, 3), np.uint32)
    assert mask_of(pixel_mask, (3, 3)) is None
    pixel_mask[1, 1] = 4
    assert mask_of(pixel_mask, (3, 3)).sum() == 1
    assert mask_of(pixel_mask, (4, 3)) is None and mask_of(None, (3, 3)) is None


def test_max_binning_keeps_the_frames_integer_type_and_mean_or_a_mask_gives_float32() -> None:
    frame = np.random.default_rng(2).integers(0, 60000, (90, 70)).astype(np.uint16)
    assert bin_region(frame, full_region(frame.shape), (10, 10)).image.dtype == np.uint16
    assert bin_region(frame, full_region(frame.shape), (10, 10), "mean").image.dtype == np.float32
    mask = np.zeros(frame.shape, bool)
    mask[:9, :9] = True
    masked = bin_region(frame, full_region(frame.shape), (10, 10), "max", mask).image
    assert masked.dtype == np.float32 and np.isnan(masked[0, 0])
    wide = frame.astype(np.int64)
    assert bin_region(wide, full_region(frame.shape), (10, 10)).image.dtype == np.float32
