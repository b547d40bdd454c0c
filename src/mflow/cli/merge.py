"""``mflow merge``: several input streams into one output.

Inputs are served fairly in order of arrival (`mflow.merge.ArrivalMerge`: every input
that has a message gets one taken per round). Messages are forwarded whole and
untouched. With ``--align KEY`` (`mflow.merge.Aligner`) the messages of all inputs that
carry the same ``KEY`` (e.g. ``frame`` or ``pulse_id`` in their JSON header) go out
together, in input order, once every input delivered its own, or after ``--max-wait``
seconds with whatever came.
"""

from __future__ import annotations

from typing import Any

import click

import mflow
from mflow.merge import Aligner, ArrivalMerge

from ._main import CONTEXT_SETTINGS
from ._options import (
    SenderOptions,
    SocketOptions,
    Tool,
    mode_choice,
    sender_options,
    socket_options,
    tool_options,
)
from ._output import Report, traffic_fields
from ._runtime import Meter, Run
from ._sending import Sender, delivery_fields
from ._sockets import Endpoint, open_stream

__all__ = ["command"]

HELP = """Forward the messages of every INPUT to one --output stream.

Inputs are served fairly, in order of arrival; each INPUT address decides whether it
binds or connects (tcp://*:PORT binds, a host name connects), the output binds by
default. With --align KEY, messages carrying the same KEY in their JSON header (frame,
pulse_id, ...) are sent together, in the order of the inputs, as soon as every input
delivered one, or after --max-wait seconds with those that came; messages without KEY,
or arriving after their group left, are forwarded at once (and counted).

\b
Examples:
  mflow merge tcp://module1:9999 tcp://module2:9999 -o tcp://*:9000
  mflow merge tcp://a:9999 tcp://b:9999 -o tcp://*:9000 --align pulse_id --max-wait 0.5
"""


class _Merger:
    """Receives from the inputs fairly (`mflow.ArrivalMerge`) and sends to the output."""

    def __init__(self, inputs: list[mflow.Stream], sender: Sender, aligner: Aligner | None) -> None:
        self.inputs = inputs
        self.sender = sender
        self.aligner = aligner
        self.meter = Meter()
        self.arrivals = ArrivalMerge(inputs)

    def round(self, run: Run) -> bool:
        """Wait for inputs, take one message from each ready one; False once stopped."""
        for index, frames in self.arrivals.receive_round(
            run.poll_ms(), limit=run.remaining(self.meter.messages)
        ):
            if not self._take(index, frames, run):
                return False
        if self.aligner is not None:
            return self._send_all(self.aligner.expired(), run)
        return True

    def _take(self, index: int, frames: list[Any], run: Run) -> bool:
        self.meter.add(sum(len(frame) for frame in frames))
        if self.aligner is None:
            return self.sender.send(frames, run)
        return self._send_all(self.aligner.add(index, frames), run)

    def _send_all(self, messages: Any, run: Run) -> bool:
        return all(self.sender.send(frames, run) for frames in messages)

    def finish(self, run: Run) -> None:
        """Send what the aligner still holds."""
        if self.aligner is not None:
            self._send_all(self.aligner.expired(everything=True), run)

    def report(self, final: bool = False) -> Report:
        sample = self.meter.sample()
        sent = self.sender.meter.messages
        fields = traffic_fields(sample, final, verb="received")
        fields.append(("sent", str(sent)))
        received = self.arrivals.received
        fields += [
            (f"← {stream.address}", str(count))
            for stream, count in zip(self.inputs, received, strict=True)
        ]
        data = {
            **sample,
            "sent": sent,
            "inputs": [
                {"address": s.address, "received": n}
                for s, n in zip(self.inputs, received, strict=True)
            ],
        }
        if self.aligner is not None:
            data["groups"] = dict(self.aligner.counts)
            fields.append(("groups", " ".join(f"{k}={v}" for k, v in self.aligner.counts.items())))
        if final:
            data.update(self.sender.delivery.as_dict())
            fields += delivery_fields(self.sender.delivery)
        return Report(data, fields)


def _open_inputs(
    addresses: tuple[str, ...], mode: str, queue_size: int, tool: Tool
) -> list[mflow.Stream]:
    streams: list[mflow.Stream] = []
    try:
        for address in addresses:
            endpoint = Endpoint.choose(address, mode, None, mflow.CONNECT, queue_size)
            streams.append(open_stream(endpoint))
            tool.out.event(
                "input",
                endpoint.describe(streams[-1]),
                address=address,
                endpoint=streams[-1].endpoint,
            )
    except BaseException:
        for stream in streams:
            stream.disconnect()
        raise
    return streams


def _merge(
    inputs: tuple[str, ...],
    output: str,
    input_mode: str,
    align: str | None,
    max_wait: float,
    socket: SocketOptions,
    sender: SenderOptions,
    tool: Tool,
) -> int:
    streams = _open_inputs(inputs, input_mode.lower(), socket.queue_size, tool)
    try:
        with tool.run() as run, Sender(socket.endpoint(output, mflow.BIND), sender, tool) as out:
            aligner = None if align is None else Aligner(align, len(streams), max_wait)
            merger = _Merger(streams, out, aligner)
            try:
                if out.wait_for_peer(run):
                    while not run.stopped(merger.meter.messages) and merger.round(run):
                        if run.report_due():
                            tool.out.progress(merger.report())
                    merger.finish(run)
            finally:
                out.close()
                tool.out.summary(merger.report(final=True))
            return out.exit_code(run)
    finally:
        for stream in streams:
            stream.disconnect()


@click.command(
    "merge",
    help=HELP,
    short_help="Merge several streams into one.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option(
    "-o",
    "--output",
    default="tcp://*:9999",
    show_default=True,
    help="Where to send: tcp://*:PORT binds, tcp://HOST:PORT with --connect.",
)
@click.option(
    "--input-mode",
    type=mode_choice("pull", "sub"),
    default="pull",
    show_default=True,
    help="Socket type of the INPUTs.",
)
@click.option(
    "--align",
    metavar="KEY",
    default=None,
    help="Send messages with the same integer KEY (frame, pulse_id) together.",
)
@click.option(
    "--max-wait",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="With --align: longest wait, in seconds, for a group to be complete.",
)
@socket_options(("push", "pub"), "the output", "bind")
@sender_options
@tool_options()
def command(**options: Any) -> int:
    return _merge(**options)
