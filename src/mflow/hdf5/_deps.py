"""h5py and hdf5plugin, or a clear error saying how to get them."""

from __future__ import annotations

from ..errors import ConfigurationError

try:
    import h5py  # type: ignore[import-untyped]
    import hdf5plugin
except ImportError as error:  # pragma: no cover - depends on the installation
    raise ConfigurationError(
        f"writing HDF5 files needs h5py and hdf5plugin ({error}): "
        "install mflow[hdf5], e.g. pip install 'mflow[hdf5]'"
    ) from None

__all__ = ["h5py", "hdf5plugin"]
