"""Deprecated alias of `mflow.utils`: every attribute access warns and forwards."""

import warnings
from typing import Any

from . import utils as _utils

_MESSAGE = "the `mflow.tools` alias is deprecated; use `mflow.utils` instead"


def __getattr__(name: str) -> Any:
    warnings.warn(_MESSAGE, DeprecationWarning, stacklevel=2)
    return getattr(_utils, name)


def __dir__() -> list[str]:
    return dir(_utils)
