"""Conformance of every registered message type, and the registry itself."""

from __future__ import annotations

import importlib
import pkgutil
import types
from collections.abc import MutableMapping

import numpy as np
import pytest

import mflow
from mflow.errors import CompressionError, MalformedMessageError, UnknownHtypeError

from .conformance import assert_same, decode, encode, load_golden, round_trip
from .fixtures.cases import CASES

pytestmark = pytest.mark.usefixtures("receive_path")


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoding_matches_the_golden_fixture(name):
    htype, message, _ = CASES[name]()
    assert encode(mflow.get_handler(htype), message) == load_golden(name)


@pytest.mark.parametrize("copy", [True, False], ids=["copy", "zero-copy"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_fixture_decodes_to_the_expected_data(name, copy):
    htype, _, expected = CASES[name]()
    assert_same(decode(mflow.get_handler(htype), load_golden(name), copy=copy), expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_through_real_sockets(name, stream_pair):
    htype, message, expected = CASES[name]()
    sender, receiver = stream_pair()
    assert_same(round_trip(sender, receiver, message, htype=htype), expected)


def test_every_handler_module_is_registered():
    package = importlib.import_module("mflow.handlers")
    modules = {
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    }
    registered = {module.__name__.rsplit(".", 1)[1] for module in mflow.handler_modules.values()}
    assert modules == registered


def test_register_and_get_handler():
    class Echo:
        @staticmethod
        def receive(receiver):
            return {"header": receiver.next(as_json=True)}

        @staticmethod
        def send(message, send, block=True):
            send(b'{"htype": "echo-1.0"}', block=block)

    mflow.register_handler("echo-1.0", Echo)
    try:
        assert mflow.get_handler("echo-1.0") is Echo
        assert mflow.receive_handlers["echo-1.0"] is Echo.receive
        assert mflow.send_handlers["echo-1.0"] is Echo.send
        assert mflow.handlers["echo-1.0"] is Echo
    finally:
        for table in (mflow.handlers, mflow.receive_handlers, mflow.send_handlers):
            table.pop("echo-1.0")
    with pytest.raises(UnknownHtypeError):
        mflow.get_handler("echo-1.0")


def test_handler_tables_have_the_1_0_shape():
    for htype in ("array-1.0", "raw-1.0", "dheader-1.0", "dimage-1.0", "dseries_end-1.0"):
        module = mflow.handler_modules[htype]
        assert mflow.handlers[htype] is module.Handler
        assert mflow.receive_handlers[htype] is module.Handler.receive
        assert mflow.send_handlers[htype] is module.Handler.send
    assert mflow.dheader_1_0.Handler.header_details == "all"


def test_handlers_dict_also_resolves_submodules():
    """Bug B20: the 1.0 dict shadowed the subpackage."""
    assert isinstance(mflow.handlers, MutableMapping)
    assert mflow.handlers.array_1_0 is mflow.array_1_0
    with pytest.raises(AttributeError):
        _ = mflow.handlers.no_such_module


# -- the 1.0 tables are views of the one registry -----------------------------------------


class Tagged:
    """A handler that marks what it received, and sends that mark in its header."""

    @staticmethod
    def receive(receiver):
        return {"header": receiver.next(as_json=True), "by": "tagged"}

    @staticmethod
    def send(message, send, block=True):
        send(b'{"htype": "array-1.0", "type": "uint8", "shape": [1], "sent_by": "tagged"}')


def tagged_module():
    module = types.ModuleType("tagged_handler")
    module.Handler = Tagged
    return module


REPLACEMENTS = {
    "register_handler": lambda: mflow.register_handler("array-1.0", Tagged),
    "handlers": lambda: mflow.handlers.__setitem__("array-1.0", Tagged),
    "handler_modules": lambda: mflow.handler_modules.__setitem__("array-1.0", tagged_module()),
}


@pytest.fixture
def restore_array_handler():
    yield
    mflow.handler_modules["array-1.0"] = mflow.array_1_0


@pytest.mark.parametrize("replace", sorted(REPLACEMENTS))
def test_a_handler_registered_through_any_table_is_seen_by_all_and_by_dispatch(
    replace, stream_pair, restore_array_handler
):
    sender, receiver = stream_pair()
    REPLACEMENTS[replace]()
    assert mflow.handlers["array-1.0"] is Tagged
    assert mflow.get_handler("array-1.0") is Tagged
    assert mflow.receive_handlers["array-1.0"] is Tagged.receive
    assert mflow.send_handlers["array-1.0"] is Tagged.send
    sender.forward({"header": {"htype": "array-1.0"}, "data": []})
    message = receiver.receive()  # the compiled path, too, leaves it to the new handler
    assert message.data["by"] == "tagged" and message.data["header"]["sent_by"] == "tagged"


def test_a_function_assigned_to_one_table_replaces_that_function_only(
    stream_pair, restore_array_handler
):
    sender, receiver = stream_pair()
    mflow.receive_handlers["array-1.0"] = Tagged.receive
    mflow.send_handlers["array-1.0"] = Tagged.send
    assert mflow.handlers["array-1.0"] is mflow.array_1_0.Handler
    assert mflow.handler_modules["array-1.0"] is mflow.array_1_0
    assert mflow.mflow.receive_handlers["array-1.0"] is Tagged.receive
    sender.forward({"header": {"htype": "array-1.0"}, "data": []})
    message = receiver.receive()
    assert message.data["by"] == "tagged" and message.data["header"]["sent_by"] == "tagged"


def test_deleting_from_a_table_is_seen_by_dispatch_and_the_other_tables(stream_pair):
    mflow.register_handler("echo-1.0", Tagged)
    del mflow.handlers["echo-1.0"]
    assert "echo-1.0" not in mflow.handlers and "echo-1.0" not in mflow.handler_modules
    with pytest.raises(UnknownHtypeError):
        mflow.get_handler("echo-1.0")
    assert "echo-1.0" in mflow.receive_handlers and "echo-1.0" in mflow.send_handlers
    sender, receiver = stream_pair()
    del mflow.send_handlers["echo-1.0"]
    sender.forward({"header": {"htype": "echo-1.0"}, "data": []})  # logged, nothing sent
    sender.send(b'{"htype": "echo-1.0"}')
    assert receiver.receive().data["by"] == "tagged"
    del mflow.receive_handlers["echo-1.0"]
    sender.send(b'{"htype": "echo-1.0"}')
    assert receiver.receive() is None
    assert receiver.statistics.skipped["unknown_htype"] == 1
    for table in (mflow.handlers, mflow.receive_handlers, mflow.send_handlers):
        assert "echo-1.0" not in table and "echo-1.0" not in list(table)
    with pytest.raises(KeyError):
        del mflow.receive_handlers["echo-1.0"]


def test_the_tables_read_as_dicts():
    tables = (mflow.handlers, mflow.receive_handlers, mflow.send_handlers, mflow.handler_modules)
    for table in tables:
        copy = table.copy()
        assert type(copy) is dict and copy == table and len(copy) == len(table)
        assert sorted(copy) == sorted(table.keys()) and "array-1.0" in copy
        assert repr(table) == repr(copy)
    assert mflow.handler_modules.get("no-such-1.0") is None
    with pytest.raises(TypeError):
        mflow.handler_modules["echo-1.0"] = types.ModuleType("no_handler_here")


def test_get_array_helper():
    raw = np.arange(6, dtype="int16").tobytes()
    assert mflow.array_1_0.get_array(raw, "int16", [2, 3]).shape == (2, 3)


# -- the fixed send bugs -----------------------------------------------------------------


def test_raw_send_keeps_all_segments_in_one_message(stream_pair):
    """Bug B1: 1.0 sent every segment after the first as a message of its own."""
    sender, receiver = stream_pair()
    sender.forward({"header": {"htype": "raw-1.0"}, "data": [b"a", b"b", b"c"]})
    sender.forward({"header": {"htype": "raw-1.0", "second": True}, "data": [b"d"]})
    assert receiver.receive().data["data"] == [b"a", b"b", b"c"]
    assert receiver.receive().data["header"]["second"] is True


@pytest.mark.parametrize("htype", ["array-1.0", "raw-1.0"])
def test_empty_data_list_is_a_complete_message(stream_pair, htype):
    """Bug B2: 1.0 left the header pending with SNDMORE, glued to the next message."""
    sender, receiver = stream_pair()
    sender.forward({"header": {"htype": htype, "type": "uint8", "shape": [1]}, "data": []})
    sender.forward({"header": {"htype": "raw-1.0", "next": 1}, "data": [b"x"]})
    first = receiver.receive().data
    assert first["data"] == [] and first["header"]["htype"] == htype
    assert receiver.receive().data["header"]["next"] == 1


def test_array_send_accepts_any_buffer(stream_pair):
    """(read) 1.0 called .tobytes() on a bytearray segment and failed."""
    sender, receiver = stream_pair()
    payload = bytearray(np.arange(3, dtype="uint8").tobytes())
    sender.forward(
        {
            "header": {"htype": "array-1.0", "type": "uint8", "shape": [3]},
            "data": [payload, memoryview(payload)],
        }
    )
    data = receiver.receive().data["data"]
    assert [a.tolist() for a in data] == [[0, 1, 2], [0, 1, 2]]


def test_array_send_fills_in_type_and_shape():
    parts = encode(
        mflow.get_handler("array-1.0"),
        {"header": {"htype": "array-1.0"}, "data": [np.zeros((2, 2), "<u2")]},
    )
    decoded = decode(mflow.get_handler("array-1.0"), parts)
    assert decoded["data"][0].shape == (2, 2) and decoded["data"][0].dtype == "<u2"


def test_dheader_none_sends_no_configuration_part():
    """Bug B11: 1.0 sent part_2 for header_detail none, which came back as appendix."""
    _, message, _ = CASES["dheader_none"]()
    parts = encode(mflow.get_handler("dheader-1.0"), {**message, "part_2": {"ignored": 1}})
    assert len(parts) == 1
    assert decode(mflow.get_handler("dheader-1.0"), parts) == message


def test_dimage_send_includes_the_appendix():
    """Bug B11: 1.0's dimage send dropped the appendix."""
    _, message, _ = CASES["dimage_uncompressed"]()
    parts = encode(mflow.get_handler("dimage-1.0"), message)
    assert len(parts) == 5 and parts[4] == b'"text appendix"'  # JSON, as 1.0 sends it


# -- tolerated producer deviations and error cases ---------------------------------------


def test_dheader_with_placeholder_blobs_keeps_raw_parts():
    _, message, _ = CASES["dheader_all_with_appendix"]()
    message = {**message, "part_4_raw": b"flatfield-blob"}
    decoded = decode(
        mflow.get_handler("dheader-1.0"), encode(mflow.get_handler("dheader-1.0"), message)
    )
    assert decoded["flatfield"] is None
    assert decoded["part_4_raw"] == b"flatfield-blob"
    assert decoded["pixel_mask"].shape == (2, 3)


def test_dheader_flatfield_htype_typo_is_tolerated():
    _, message, expected = CASES["dheader_all_with_appendix"]()
    message["part_3"] = {**message["part_3"], "htype": "flatfield-1.0"}
    decoded = decode(
        mflow.get_handler("dheader-1.0"), encode(mflow.get_handler("dheader-1.0"), message)
    )
    assert_same(decoded["flatfield"], expected["flatfield"])


def test_dheader_basic_without_configuration_part():
    """Some simulators send part 2 as a separate message."""
    parts = [b'{"htype": "dheader-1.0", "series": 1, "header_detail": "basic"}']
    decoded = decode(mflow.get_handler("dheader-1.0"), parts)
    assert decoded["part_2"] is None


def test_dheader_appendix_that_is_not_json_is_text_or_bytes():
    header = b'{"htype": "dheader-1.0", "header_detail": "none"}'
    handler = mflow.get_handler("dheader-1.0")
    assert decode(handler, [header, b"plain text"])["appendix"] == "plain text"
    assert decode(handler, [header, b"\xff\xfe"])["appendix"] == b"\xff\xfe"


@pytest.mark.parametrize(
    "htype, parts",
    [
        ("dimage-1.0", [b'{"htype": "dimage-1.0"}', b"{}"]),
        ("dimage-1.0", [b'{"htype": "dimage-1.0"}', b"not json", b"blob", b"{}"]),
        ("array-1.0", [b'{"htype": "array-1.0", "type": "int32", "shape": [-2]}', b"abcd"]),
        ("array-1.0", [b'{"htype": "array-1.0", "type": "int32", "shape": [-1, -1]}', b"abcd"]),
        ("array-1.0", [b'{"htype": "array-1.0", "type": "int32", "shape": [3, -1]}', b"abcd"]),
        ("array-1.0", [b'{"htype": "array-1.0", "type": "int32", "shape": [1e30]}', b"abcd"]),
        ("array-1.0", [b'{"htype": "array-1.0", "type": "V0", "shape": [1]}', b"abcd"]),
        ("raw-1.0", [b'"not an object"']),
    ],
)
def test_malformed_messages_raise_malformed(htype, parts):
    with pytest.raises(MalformedMessageError):
        decode(mflow.get_handler(htype), parts)


@pytest.mark.parametrize(
    "part_2, blob",
    [
        (b"{}", b"blob"),
        (b'{"shape": [2, 2], "type": "uint8", "encoding": "<"}', b"abc"),
        (b'{"shape": [2], "type": "uint8"}', b"abcd"),
        (b'{"shape": [2, 2], "type": "uint8", "encoding": "bs16-zstd<"}', b"abcd"),
        (b'{"shape": [4, 2], "type": "uint16", "encoding": "bs16-lz4<"}', b"\x01" * 16),
    ],
)
def test_dimage_that_cannot_be_decoded_keeps_its_parts(part_2, blob):
    """As in 1.0 the message arrives; ``image`` is None and ``image_error`` says why."""
    decoded = decode(mflow.get_handler("dimage-1.0"), [b'{"htype": "dimage-1.0"}', part_2, blob])
    assert decoded["image"] is None and decoded["image_error"]
    assert decoded["part_3_raw"] == blob and decoded["part_4"] is None


def test_dimage_with_a_subarray_type_is_delivered_with_the_error():
    part_2 = b'{"shape": [2, 2], "type": "(2,)u2", "encoding": "<"}'
    decoded = decode(
        mflow.get_handler("dimage-1.0"), [b'{"htype": "dimage-1.0"}', part_2, b"\x00" * 16, b"{}"]
    )
    assert decoded["image"] is None and "pixel type" in decoded["image_error"]
    assert decoded["payload_errors"] == {"image": decoded["image_error"]}


def dimage_parts(image: np.ndarray, encoding: str) -> list[bytes]:
    message = {
        "header": {"htype": "dimage-1.0", "series": 1, "frame": 0, "hash": ""},
        "part_2": {"encoding": encoding},
        "image": image,
        "part_4": {},
    }
    return encode(mflow.get_handler("dimage-1.0"), message)


def test_a_strict_stream_raises_for_an_image_that_cannot_be_decoded(stream_pair):
    sender, receiver = stream_pair(strict=True)
    parts = dimage_parts(np.zeros((2, 2), "<u2"), "lz4<")
    sender.send_multipart([*parts[:2], b"\xff", *parts[3:]])
    with pytest.raises(CompressionError):
        receiver.receive()
    assert receiver.statistics.skipped == {"compression_error": 1}


def test_max_decoded_bytes_refuses_a_bigger_image(stream_factory):
    sender = stream_factory("tcp://127.0.0.1:*", conn_type=mflow.BIND, mode=mflow.PUSH)
    receiver = stream_factory(sender.endpoint, max_decoded_bytes=1000)
    bomb = dimage_parts(np.zeros((1024, 1024), "<u2"), "lz4<")  # 2 MB in a few kB
    sender.send_multipart(bomb)
    sender.send_multipart(dimage_parts(np.ones((10, 50), "<u2"), "bs16-lz4<"))
    refused = receiver.receive().data
    assert refused["image"] is None and "DecodedSizeError" in refused["image_error"]
    assert refused["part_3_raw"] == bomb[2]
    assert receiver.receive().data["image"].sum() == 500
    assert receiver.statistics.payload_errors == {"decoded_size": 1}


def test_the_series_header_sets_the_default_budget(stream_pair):
    sender, receiver = stream_pair()
    config = {"x_pixels_in_detector": 50, "y_pixels_in_detector": 10, "bit_depth_image": 16}
    sender.forward(
        {
            "header": {"htype": "dheader-1.0", "series": 1, "header_detail": "basic"},
            "part_2": config,
        }
    )
    sender.send_multipart(dimage_parts(np.ones((10, 50), "<u2"), "lz4<"))
    sender.send_multipart(dimage_parts(np.ones((11, 50), "<u2"), "lz4<"))
    assert receiver.receive().data["part_2"] == config
    assert receiver.receive().data["image"].shape == (10, 50)
    assert receiver.receive().data["image"] is None
    assert receiver.statistics.payload_errors == {"decoded_size": 1}


def test_max_decoded_bytes_must_be_a_size():
    with pytest.raises(mflow.errors.ConfigurationError):
        mflow.connect("tcp://127.0.0.1:1", max_decoded_bytes=-1)


def test_dheader_with_fewer_parts_than_promised_keeps_what_came():
    parts = [b'{"htype": "dheader-1.0", "header_detail": "all"}', b'{"nimages": 1}', b"{}"]
    decoded = decode(mflow.get_handler("dheader-1.0"), parts)
    assert decoded["part_2"] == {"nimages": 1} and decoded["part_3"] == {}
    assert decoded["part_4_raw"] is None and decoded["flatfield"] is None


def test_array_shape_may_be_a_number_or_hold_minus_one():
    handler = mflow.get_handler("array-1.0")
    raw = np.arange(6, dtype="<i4").tobytes()
    for shape, expected in (("6", (6,)), ("[-1]", (6,)), ("[2, -1]", (2, 3))):
        header = b'{"htype": "array-1.0", "type": "<i4", "shape": %s}' % shape.encode()
        assert decode(handler, [header, raw])["data"][0].shape == expected


def test_dimage_decode_can_be_switched_off():
    _, message, _ = CASES["dimage_uncompressed"]()
    decoded = decode(
        mflow.get_handler("dimage-1.0"), load_golden("dimage_uncompressed"), decode=False
    )
    assert "image" not in decoded and decoded["part_3_raw"] == message["part_3_raw"]


def test_every_builtin_handler_module_has_a_docstring():
    for module in mflow.handler_modules.values():
        assert importlib.import_module(module.__name__).__doc__


def test_entry_point_plugins_are_loaded_on_first_miss(monkeypatch):
    import sys
    import types
    from importlib.metadata import EntryPoint

    handlers_module = importlib.import_module("mflow.handlers")
    plugin = types.ModuleType("mflow_test_plugin")

    class Plugin:
        @staticmethod
        def receive(receiver):
            return {"plugin": receiver.next(as_json=True)}

    plugin.Plugin = Plugin
    monkeypatch.setitem(sys.modules, "mflow_test_plugin", plugin)
    entry = EntryPoint("plugin-1.0", "mflow_test_plugin:Plugin", handlers_module.ENTRY_POINT_GROUP)
    monkeypatch.setattr(
        "importlib.metadata.entry_points",
        lambda group: [entry] if group == handlers_module.ENTRY_POINT_GROUP else [],
    )
    monkeypatch.setattr(handlers_module, "_plugins", None)
    try:
        assert mflow.get_handler("plugin-1.0") is Plugin
        assert decode(Plugin, [b'{"htype": "plugin-1.0"}']) == {"plugin": {"htype": "plugin-1.0"}}
        assert "plugin-1.0" not in mflow.send_handlers
    finally:
        for table in (mflow.handlers, mflow.receive_handlers):
            table.pop("plugin-1.0", None)


def test_entry_points_are_loaded_by_name_through_the_tables_and_not_when_read_whole(monkeypatch):
    import sys
    from importlib.metadata import EntryPoint

    handlers_module = importlib.import_module("mflow.handlers")
    plugin = types.ModuleType("mflow_test_plugin")
    plugin.Handler = Tagged
    monkeypatch.setitem(sys.modules, "mflow_test_plugin", plugin)
    group = handlers_module.ENTRY_POINT_GROUP
    entries = [
        EntryPoint("plugin-1.0", "mflow_test_plugin:Handler", group),
        EntryPoint("other-1.0", "mflow_test_never_imported:Handler", group),
    ]
    monkeypatch.setattr("importlib.metadata.entry_points", lambda group: entries)
    monkeypatch.setattr(handlers_module, "_plugins", None)
    try:
        assert "plugin-1.0" not in list(mflow.receive_handlers)
        assert "plugin-1.0" in mflow.send_handlers
        assert mflow.handler_modules["plugin-1.0"] is plugin
        assert mflow.receive_handlers["plugin-1.0"] is Tagged.receive
        assert "mflow_test_never_imported" not in sys.modules
    finally:
        del mflow.handlers["plugin-1.0"], mflow.receive_handlers["plugin-1.0"]
        del mflow.send_handlers["plugin-1.0"]
    assert "plugin-1.0" not in list(mflow.handler_modules)


def run_python(code: str) -> str:
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout


def test_import_mflow_imports_no_numpy_asyncio_or_entry_points():
    loaded = run_python(
        "import sys, mflow; print(sorted(m for m in ('numpy', 'asyncio', "
        "'importlib.metadata', 'mflow.handlers.array_1_0') if m in sys.modules))"
    )
    assert loaded.strip() == "[]"


def test_builtins_are_imported_on_first_use_only():
    loaded = run_python(
        "import sys, mflow\n"
        "assert mflow.get_handler('raw-1.0')\n"
        "print(sorted(m for m in sys.modules if m.startswith('mflow.handlers.')))"
    )
    assert loaded.strip() == "['mflow.handlers._parts', 'mflow.handlers.raw_1_0']"


def test_1_0_tables_and_module_attributes_are_complete_when_read():
    out = run_python(
        "import mflow, mflow.mflow\n"
        "mine = lambda receiver: None\n"
        "mflow.receive_handlers['array-1.0'] = mine\n"
        "assert mflow.receive_handlers['array-1.0'] is mine\n"
        "assert mflow.handlers['array-1.0'] is mflow.array_1_0.Handler\n"
        "assert mflow.mflow.dimage_1_0 is mflow.dimage_1_0\n"
        "print(sorted(mflow.handler_modules), 'raw-1.0' in mflow.send_handlers)"
    )
    assert out.split()[-1] == "True" and "'sls-receiver'" in out and "'bsr_m-1.1'" in out
