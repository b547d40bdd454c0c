"""`mflow.jsonparse.parse_json`: orjson first, the standard library where they differ."""

from __future__ import annotations

import math

import pytest

from mflow.jsonparse import parse_json


def test_parses_json_and_what_only_the_standard_library_accepts():
    assert parse_json(b'{"htype": "raw-1.0", "frame": 3}') == {"htype": "raw-1.0", "frame": 3}
    assert math.isnan(parse_json(b'{"x": NaN}')["x"])


@pytest.mark.parametrize(
    "text", [b"[" * 3000, b'{"a":' * 3000, b"[" * 3000 + b"]" * 3000, b"not json", b"\xff\xfe", b""]
)
def test_everything_that_is_not_json_is_a_value_error(text):
    with pytest.raises(ValueError):
        parse_json(text)
