"""``mflow generate`` and the 1.0 ``m_generate``: send a synthetic stream.

Messages come from `mflow.synthetic`, encoded by the library's handlers; they go out
whole (one multipart send each), at ``--rate`` or as fast as the peers take them; what
did not reach a peer is reported and makes the exit status 1.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, NoReturn

import click

import mflow
from mflow import synthetic

from ._legacy import ThroughputLines, legacy_command
from ._main import CONTEXT_SETTINGS, run
from ._options import (
    SenderOptions,
    address_option,
    rate_option,
    SocketOptions,
    Tool,
    parse_shape,
    sender_options,
    socket_options,
    tool_options,
)
from ._runtime import Pacer, Run
from ._sending import Sender

__all__ = ["command", "legacy", "main", "parse_size"]

HELP = """Send a synthetic stream of TYPE messages (default: raw) from ADDRESS.

\b
TYPE is one of
  raw      raw-1.0: a header and a payload of --size bytes
  array    array-1.0: one --dtype array of --shape per message
  dectris  DECTRIS Stream V1 series: dheader-1.0, --images dimage-1.0 compressed
           with --compression, dseries_end-1.0; series after series
  stream2  DECTRIS Stream V2 (CBOR) series: start, --images image messages, end
  bsread   bsread (bsr_m-1.1), one message per pulse, channels from --channel
  sls      SLS receiver (JUNGFRAU) frames; an end message after every --images

--count counts every message (series headers and ends included). Images look like
detector frames (Poisson counts), so compressed sizes are realistic. Messages that did
not reach a peer (nobody connected, or still queued when the --linger ran out) are
reported as undelivered and make the exit status 1.

\b
Examples:
  mflow generate                                  # 1 MiB raw messages on tcp://*:9999
  mflow generate -s 4KiB --rate 1000 -n 10000
  mflow generate array --dtype float32 --shape 256x256 -m pub
  mflow generate dectris --shape 2162x2068 --compression bslz4 --rate 100
  mflow generate bsread --channel X:float64 --channel IMG:uint16:64x64 -r 100
"""

LEGACY_HELP = """Stream generation utility (psi-mflow 1.0 compatible: same arguments, same output).

Without TYPE (or with raw) it sends what 1.0 sent: messages of -s SIZE MiB of zero int32
values, until Ctrl-C (or --count / --duration), printing 1.0's rate lines and summary; as
in 1.0, except that the header calls them array-1.0 (1.0 said raw-1.0) and their shape is
an integer. TYPE and every other option are those of `mflow generate` (see its --help):
array, dectris, stream2, bsread or sls streams with the same 1.0-style output.

\b
Examples:
  m_generate -a tcp://*:9999 -s 0.5 -m pub
  m_generate dectris --images 10 -n 12 -a tcp://*:9999
"""

_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in ``text``: a number of MiB as in 1.0 (``0.5``) or a size with a unit (``4KiB``)."""
    match = _SIZE.fullmatch(text)
    unit = match[2].lower() if match else ""
    if match is None or (unit and unit not in _UNITS):
        raise click.BadParameter(f"{text!r} is not a size (e.g. 1 for 1 MiB, 4KiB, 2MB, 100B)")
    return int(float(match[1]) * _UNITS.get(unit, 1024**2))


def parse_channel(text: str) -> tuple[str, str, tuple[int, ...]]:
    """A bsread channel ``NAME[:TYPE[:SHAPE]]`` (type float64, shape scalar by default)."""
    name, _, rest = text.partition(":")
    kind, _, shape = rest.partition(":")
    if not name:
        raise click.BadParameter(f"{text!r} is not a channel (NAME[:TYPE[:SHAPE]])")
    return name, kind or "float64", parse_shape(shape) if shape else (1,)


def _due(run: Run, pacer: Pacer, sent: int) -> bool:
    return not run.stopped(sent) and pacer.wait(run) and not run.stopped(sent)


def _send_all(
    sender: Sender,
    source: Iterator[list[Any]],
    rate: float | None,
    run: Run,
    lines: ThroughputLines | None,
) -> None:
    pacer = Pacer(rate)
    meter = sender.meter
    for parts in source:
        if not _due(run, pacer, meter.messages) or not sender.send(parts, run):
            return
        if lines is not None:
            lines.update(meter)
        elif run.report_due():
            sender.out.progress(sender.report())


def _describe(kind: str, first: list[Any]) -> str:
    size = sum(len(part) for part in first)
    if kind == "raw":
        payload = len(first[-1])
        return (
            f"Sending raw messages: payload {payload} bytes "
            f"({payload / 1024**2:.6f} MiB), {size} bytes with the header"
        )
    return f"Sending {kind} messages (first message: {len(first)} parts, {size} bytes)"


def _legacy_start(first: list[Any], sender: Sender) -> ThroughputLines:
    payload = len(first[-1])
    print(
        f"Sending messages of size {payload / 1024**2:f} MiB ({payload} bytes) "
        f"on {sender.stream.endpoint}",
        flush=True,
    )
    return ThroughputLines(0.2)


def _generate(
    kind: str,
    address: str,
    spec: synthetic.Spec,
    rate: float | None,
    socket: SocketOptions,
    sender: SenderOptions,
    tool: Tool,
    legacy: bool = False,
) -> int:
    first, source = synthetic.make_source(kind, spec)
    endpoint = socket.endpoint(address, mflow.BIND)
    legacy_lines = tool.legacy_output(legacy)
    with tool.run() as run, Sender(endpoint, sender, tool) as out_stream:
        tool.out.event(
            "generate",
            _describe(kind, first),
            type=kind,
            first_message_bytes=sum(len(p) for p in first),
        )
        lines = _legacy_start(first, out_stream) if legacy_lines else None
        try:
            if out_stream.wait_for_peer(run):
                _send_all(out_stream, source, rate, run, lines)
        finally:
            out_stream.close()
            if lines is not None:
                if run.interrupted:
                    print("Terminated by user.")
                lines.close(out_stream.meter)
            tool.out.summary(out_stream.report(final=True))
        return out_stream.exit_code(run)


@click.command(
    "generate",
    help=HELP,
    short_help="Send a synthetic stream of any message type.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument(
    "kind",
    metavar="[TYPE]",
    default="raw",
    type=click.Choice(list(synthetic.SOURCES), case_sensitive=False),
)
@address_option
@click.option(
    "-s",
    "--size",
    "size",
    default="1",
    show_default=True,
    help="raw: payload size; a plain number is MiB (as in 1.0), or give a unit: 100B, 4KiB, 2MB.",
)
@click.option(
    "--dtype", default="uint16", show_default=True, help="Element type of arrays and images."
)
@click.option("--shape", default=None, help="array/image shape, rows first: 512x1024.")
@click.option(
    "--compression",
    type=click.Choice(synthetic.COMPRESSIONS),
    default=None,
    help="Image / value compression [default: bslz4 for dectris and stream2, none for bsread].",
)
@click.option(
    "--images",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Images per series (dectris, stream2, sls).",
)
@click.option(
    "--header-detail",
    type=click.Choice(("all", "basic", "none")),
    default="basic",
    show_default=True,
    help="dectris: parts of the dheader-1.0 message.",
)
@click.option(
    "--channel",
    "channels",
    multiple=True,
    metavar="NAME[:TYPE[:SHAPE]]",
    help="bsread channel (repeatable), e.g. X:float64, IMG:uint16:64x64.",
)
@rate_option
@socket_options(("push", "pub"), "the output", "bind")
@sender_options
@tool_options()
def command(
    kind: str,
    size: str,
    dtype: str,
    shape: str | None,
    compression: str | None,
    images: int,
    header_detail: str,
    channels: tuple[str, ...],
    legacy: bool = False,
    **options: Any,
) -> int:
    spec = synthetic.Spec(
        size=parse_size(size),
        dtype=dtype,
        shape=parse_shape(shape) if shape else None,
        compression=compression,
        images=images,
        header_detail=header_detail,
        channels=tuple(parse_channel(c) for c in channels),
        legacy=legacy,
    )
    return _generate(kind.lower(), spec=spec, legacy=legacy, **options)


legacy = legacy_command(command, "m_generate", LEGACY_HELP)


def main() -> NoReturn:
    """The 1.0 ``m_generate`` entry point."""
    run(legacy, prog_name="m_generate")


if __name__ == "__main__":
    main()
