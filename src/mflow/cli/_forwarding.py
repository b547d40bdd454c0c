"""What the commands that pass one input on to several outputs share (split, fanout).

`open_outputs` opens the outputs (closing those already open if one fails); `forward`
opens the input, says so, hands every message to the command until the run stops, with
progress reports, then closes the outputs (their queued messages leave, or are counted)
and prints the summary.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Protocol, Sequence, TypeVar

import mflow

from ._options import Tool
from ._output import Report
from ._runtime import Meter, Run
from ._sockets import Endpoint, message_size, open_stream

__all__ = ["Output", "open_outputs", "forward"]


class Output(Protocol):
    """An output of a forwarding command: what it sends through."""

    @property
    def stream(self) -> mflow.Stream: ...


_Spec = TypeVar("_Spec")
_Output = TypeVar("_Output", bound=Output)


def open_outputs(specs: Iterable[_Spec], open_output: Callable[[_Spec], _Output]) -> list[_Output]:
    """``open_output(spec)`` for every spec; if one fails, the outputs already open close."""
    outputs: list[_Output] = []
    try:
        for spec in specs:
            outputs.append(open_output(spec))
    except BaseException:
        _close(outputs)
        raise
    return outputs


def _close(outputs: Sequence[Output]) -> None:
    for output in outputs:  # the outputs' queued messages leave, or are counted
        output.stream.disconnect()


def forward(
    endpoint: Endpoint,
    outputs: Sequence[Output],
    deliver: Callable[[list[Any], int], None],
    report: Callable[[bool], Report],
    run: Run,
    tool: Tool,
    meter: Meter,
) -> None:
    """Receive from ``endpoint`` until ``run`` stops, each message counted in ``meter`` and
    handed to ``deliver(frames, size)``, with a progress ``report(False)`` when one is due.

    Then the outputs close, and the summary, ``report(True)``, is printed if the input
    opened.
    """
    started = False
    try:
        with open_stream(endpoint) as source:
            endpoint.announce(tool.out, source)
            started = True
            stopped, receive, report_due = run.stopped, source.receive_parts, run.report_due
            while not stopped(meter.messages):
                frames = receive()
                if frames is not None:
                    nbytes = message_size(frames)
                    meter.add(nbytes)
                    deliver(frames, nbytes)
                if report_due():
                    tool.out.progress(report(False))
    finally:
        _close(outputs)
        if started:
            tool.out.summary(report(True))
