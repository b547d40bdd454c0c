"""``mflow split`` and the 1.0 ``m_split``: one input stream to several outputs.

Messages are forwarded whole and untouched: received as ZeroMQ frames without copying and
sent on to every output (a frame can be sent to several sockets without a copy). An output
with ``modulo`` N gets every Nth message (the Nth, 2Nth, ...), each with all its parts
(1.0 forwarded only the first part of those: bug B8). A non-blocking output drops what it
cannot queue, and counts it, so one slow consumer cannot hold up the others. The outputs
close after the input, each with ``--linger`` seconds for its queued messages to leave;
what did not reach a peer is reported per output and makes the exit status 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn

import click

import mflow
from mflow.errors import ConfigurationError

from ._legacy import legacy_command
from ._main import CONTEXT_SETTINGS, run
from ._options import SocketOptions, Tool, linger_option, mode_choice, socket_options, tool_options
from ._output import Report, traffic_fields
from ._runtime import Meter, Run
from ._sending import delivery_exit_code
from ._forwarding import forward, open_outputs
from ._sockets import Endpoint, delivery_of, is_wildcard, open_stream, send_message

__all__ = ["command", "legacy", "main", "OutputSpec", "load_config"]

HELP = """Forward every message from SOURCE to each OUTPUT (or as --config says).

Each address decides whether it binds or connects: tcp://*:PORT binds, a host name
connects (--bind / --connect decide for SOURCE). Messages are forwarded untouched and
whole. With a --config file each output can take only every Nth message ("modulo") and
have its own mode, queue size and blocking. --no-block makes outputs drop (and count)
messages their peers cannot take instead of holding up the others. Messages that did not
reach an output's peer (nobody connected, or still queued when the --linger ran out) are
reported as undelivered and make the exit status 1.

\b
Config file (JSON; the psi-mflow 1.0 format, "block" and "conn_type" are new; "modulo"
is 1 or more, 1 = every message; unknown keys are errors):
  {"source": {"address": "tcp://detector:9999", "mode": "PULL", "queue_size": 100},
   "streams": [{"address": "tcp://*:9001", "mode": "PUSH"},
               {"address": "tcp://*:9002", "mode": "PUB", "modulo": 10, "block": false}]}

\b
Examples:
  mflow split tcp://detector:9999 tcp://*:9001 tcp://*:9002
  mflow split tcp://detector:9999 tcp://*:9001 --output-mode pub --no-block
  mflow split -c split.json --json -i 5
"""

LEGACY_HELP = """Stream split utility (psi-mflow 1.0 compatible: same arguments).

Forwards every message from SOURCE (connect, PULL) to each of STREAMS (bind, PUSH), or
as the --config file says (see "mflow split --help").

\b
Examples:
  m_split tcp://detector:9999 tcp://*:9001 tcp://*:9002
  m_split -c split.json
"""

_INPUT_MODES = ("pull", "sub")
_OUTPUT_MODES = ("push", "pub")
_SOURCE_KEYS = ("address", "mode", "queue_size", "conn_type")
_OUTPUT_KEYS = (*_SOURCE_KEYS, "modulo", "block")


@dataclass(frozen=True)
class OutputSpec:
    """One output: where, how, and which messages (every ``modulo``-th; 1 = all)."""

    endpoint: Endpoint
    modulo: int = 1
    block: bool = True


def _config_error(path: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"config '{path}': {problem}")


def _mode(entry: dict, allowed: tuple[str, ...], where: str, path: str) -> str:
    mode = entry.get("mode", allowed[0])
    if not isinstance(mode, str) or mode.lower() not in allowed:
        raise _config_error(
            path, f"{where}.mode {mode!r} is not {' or '.join(m.upper() for m in allowed)}"
        )
    return mode.lower()


def _int(entry: dict, key: str, default: int, where: str, path: str, least: int = 0) -> int:
    value = entry.get(key, default)
    if type(value) is not int or value < least:
        raise _config_error(path, f"{where}.{key} {value!r} is not a whole number >= {least}")
    return value


def _known_keys(entry: dict, known: tuple[str, ...], where: str, path: str) -> None:
    unknown = [key for key in entry if key not in known]
    if unknown:
        raise _config_error(
            path,
            f"{where} has unknown key(s) "
            f"{', '.join(map(repr, unknown))} (known: {', '.join(known)})",
        )


def _endpoint(entry: Any, allowed: tuple[str, ...], where: str, path: str) -> Endpoint:
    if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
        raise _config_error(path, f'{where} needs an "address"')
    _known_keys(entry, _SOURCE_KEYS if where == "source" else _OUTPUT_KEYS, where, path)
    address = entry["address"]
    conn_type = entry.get("conn_type", mflow.BIND if is_wildcard(address) else mflow.CONNECT)
    if conn_type not in (mflow.BIND, mflow.CONNECT):
        raise _config_error(path, f"{where}.conn_type {conn_type!r} is not bind or connect")
    return Endpoint(
        address,
        _mode(entry, allowed, where, path),
        conn_type,
        _int(entry, "queue_size", 100, where, path),
    )


def load_config(path: str, block: bool) -> tuple[Endpoint, list[OutputSpec]]:
    """The source and outputs of a split config file (1.0 format, see the command help)."""
    try:
        with open(path, encoding="utf-8") as file:
            config = json.load(file)
    except OSError as error:
        raise _config_error(path, error.strerror or str(error)) from error
    except ValueError as error:
        raise _config_error(path, f"not valid JSON: {error}") from error
    if not isinstance(config, dict) or not isinstance(config.get("streams"), list):
        raise _config_error(path, 'needs a "source" object and a "streams" list')
    _known_keys(config, ("source", "streams"), "the config", path)
    source = _endpoint(config.get("source"), _INPUT_MODES, "source", path)
    outputs = []
    for index, entry in enumerate(config["streams"]):
        where = f"streams[{index}]"
        endpoint = _endpoint(entry, _OUTPUT_MODES, where, path)
        blocking = entry.get("block", block)
        if not isinstance(blocking, bool):
            raise _config_error(path, f"{where}.block {blocking!r} is not true or false")
        modulo = _int(entry, "modulo", 1, where, path, least=1)
        outputs.append(OutputSpec(endpoint, modulo, blocking))
    if not outputs:
        raise _config_error(path, '"streams" is empty')
    return source, outputs


class _Output:
    """An output stream and its counters."""

    def __init__(self, spec: OutputSpec, linger: float) -> None:
        self.spec = spec
        self.stream = open_stream(spec.endpoint, linger=linger, blocking_send=spec.block)
        self.delivery = delivery_of(self.stream)
        self.sent = 0
        self.dropped = 0
        self.bytes = 0

    def offer(self, number: int, frames: list[Any], nbytes: int, run: Run) -> None:
        """Send message ``number`` (from 1) if this output takes it."""
        modulo = self.spec.modulo
        if modulo > 1 and number % modulo:
            return
        if send_message(self.stream, frames, run, self.spec.block):
            self.sent += 1
            self.bytes += nbytes
        else:
            self.dropped += 1

    def counts(self) -> dict[str, Any]:
        """The output's counters; once closed, also what did not reach a peer."""
        counts = {
            "address": self.spec.endpoint.address,
            "endpoint": self.stream.endpoint,
            "sent": self.sent,
            "dropped": self.dropped,
            "bytes": self.bytes,
            "modulo": self.spec.modulo,
            "block": self.spec.block,
        }
        if self.delivery.closed:
            counts.update(
                undelivered=self.delivery.undelivered, undelivered_max=self.delivery.undelivered_max
            )
        return counts

    def describe_counts(self) -> str:
        text = f"sent={self.sent} dropped={self.dropped}"
        if self.delivery.closed:
            text += f" undelivered={self.delivery.describe()}"
        return text


def _report(meter: Meter, outputs: list[_Output], final: bool) -> Report:
    sample = meter.sample()
    fields = traffic_fields(sample, final, verb="received")
    fields += [
        (f"→ {output.spec.endpoint.address}", output.describe_counts()) for output in outputs
    ]
    return Report({**sample, "outputs": [output.counts() for output in outputs]}, fields)


def _open_output(spec: OutputSpec, tool: Tool, linger: float) -> _Output:
    output = _Output(spec, linger)
    tool.out.event("output", spec.endpoint.describe(output.stream), **output.counts())
    return output


def _plan(
    source: str | None,
    streams: tuple[str, ...],
    config: str | None,
    output_mode: str,
    block: bool,
    socket: SocketOptions,
    legacy: bool,
) -> tuple[Endpoint, list[OutputSpec]]:
    if config is not None:
        if source is not None:
            raise click.UsageError("give either --config or SOURCE and OUTPUTs, not both")
        return load_config(config, block)
    if source is None or not streams:
        raise click.UsageError("give SOURCE and at least one OUTPUT, or --config FILE")
    default = mflow.BIND if legacy else None
    outputs = [
        OutputSpec(
            Endpoint.choose(address, output_mode, default, mflow.CONNECT, socket.queue_size),
            block=block,
        )
        for address in streams
    ]
    return socket.endpoint(source, mflow.CONNECT), outputs


def _split(
    source: str | None,
    streams: tuple[str, ...],
    config: str | None,
    output_mode: str,
    block: bool,
    linger: float,
    socket: SocketOptions,
    tool: Tool,
    legacy: bool = False,
) -> int:
    endpoint, specs = _plan(source, streams, config, output_mode.lower(), block, socket, legacy)
    if tool.legacy_output(legacy) and config is not None:
        print("config", flush=True)
    meter = Meter()
    with tool.run() as run:
        outputs = open_outputs(specs, lambda spec: _open_output(spec, tool, linger))

        def deliver(frames: list[Any], nbytes: int) -> None:
            for output in outputs:
                output.offer(meter.messages, frames, nbytes, run)

        forward(
            endpoint,
            outputs,
            deliver,
            lambda final: _report(meter, outputs, final),
            run,
            tool,
            meter,
        )
        return delivery_exit_code(run, *(output.delivery for output in outputs))


@click.command(
    "split",
    help=HELP,
    short_help="Forward one stream to several outputs.",
    context_settings=CONTEXT_SETTINGS,
)
@click.option(
    "-c",
    "--config",
    type=click.Path(dir_okay=False),
    default=None,
    help="JSON config file (see above) instead of SOURCE and OUTPUTs.",
)
@click.argument("source", required=False)
@click.argument("streams", nargs=-1, metavar="[OUTPUT]...")
@click.option(
    "--output-mode",
    type=mode_choice(*_OUTPUT_MODES),
    default="push",
    show_default=True,
    help="Socket type of the OUTPUTs.",
)
@click.option(
    "--block/--no-block",
    default=True,
    show_default=True,
    help="Outputs wait for slow peers, or drop (and count) what they cannot queue.",
)
@linger_option
@socket_options(_INPUT_MODES, "the source", "connect; tcp://*:PORT binds")
@tool_options()
def command(**options: Any) -> int:
    return _split(**options)


legacy = legacy_command(command, "m_split", LEGACY_HELP)


def main() -> NoReturn:
    """The 1.0 ``m_split`` entry point."""
    run(legacy, prog_name="m_split")


if __name__ == "__main__":
    main()
