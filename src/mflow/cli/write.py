"""``mflow write``: a detector stream to NeXus/HDF5 files (`mflow.hdf5`).

Messages are received whole and undecoded (images stay compressed), handed to
`mflow.hdf5.StreamWriter` and counted; the live display and the summary say what was
written, what was discarded (and why) and which series and files were made.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

import mflow

from ._main import CONTEXT_SETTINGS
from ._options import SocketOptions, Tool, socket_options, tool_options
from ._output import Report, format_counts, traffic_fields
from ._runtime import Meter, Run
from ._sockets import open_stream

__all__ = ["command"]

HELP = """Write the detector stream at SOURCE to NeXus/HDF5 files in DIRECTORY.

DECTRIS Stream V1 and V2 series become DIRECTORY/NAME_master.h5 (NXmx: a virtual dataset
over all images plus data_000001... links, read by DIALS, XDS with neggia, silx and
ALBULA) and NAME_data_000001.h5, ... with --frames-per-file images each. Compressed
images are stored as they came (HDF5 direct chunk write, bitshuffle or LZ4 filter);
uncompressed ones are compressed with bitshuffle-LZ4 (--compression none: not). Data
files can be read while they are written (SWMR). Missing images are fill values, listed
in the master file; images of another series than the open one are discarded and
counted. bsread becomes DIRECTORY/NAME.h5 in the 'bs h5' layout (/CHANNEL/data,
timestamp, timestamp_offset, pulse_id and a global /pulse_id), array-1.0 DIRECTORY/NAME.h5
with /entry/data/data and /entry/data/frame ({series} counts restarts from 1). Existing
files are never replaced without --overwrite.

The master file exists from the first flush on and is brought up to date after every
flush (at most once a second): after a crash or kill -9 it maps every image flushed and
lists the others as missing (open it with SWMR, as DIALS does: h5py.File(..., swmr=True)).

With --part K/N, N writers (e.g. behind 'mflow fanout') share a series; writer 1 writes
the master. 'mflow write --master DIRECTORY' (no SOURCE) (re)writes the master file of
every series from the data files found in DIRECTORY, of all parts (each data file keeps
the series header): use it when the parts ran on other machines and their files were
gathered later, or when writer 1 died or ended before the others. The master maps every
image found, in image-number order, and lists the missing ones; an existing master is
replaced only with --overwrite.

\b
Examples:
  mflow write tcp://detector:9999 /data/run1
  mflow write tcp://detector:31001 /data/run1 --name 'lyso_{series}' -n 3602
  mflow write tcp://localhost:9999 out/ --frames-per-file 100 --json
  mflow write --master /data/run1 --overwrite
"""


class _Recorder:
    """Receives messages undecoded, counts them and hands them to the writer."""

    def __init__(self, stream: mflow.Stream, writer: Any) -> None:
        self.stream = stream
        self.writer = writer
        self.meter = Meter()

    def handle(self, receiver: Any) -> Any:
        self.meter.add(sum(map(len, receiver.frames)))
        return self.writer.handle(receiver)

    def receive(self, run: Run) -> None:
        """Take and write the next message, waiting up to the run's poll time."""
        message = self.stream.receive(handler=self.handle, block=False, decode=False)
        if message is None and self.stream.poll(run.poll_ms()):
            message = self.stream.receive(handler=self.handle, block=False, decode=False)
        if message is not None:
            self.writer.write(*message.data)

    def report(self, final: bool = False) -> Report:
        sample = self.meter.sample()
        dectris = self.writer.dectris
        open_series = dectris.current
        series = [
            {
                "series": s.series,
                "master": s.master,
                "images": s.images_written,
                "missing": len(s.missing),
                "ended": s.ended,
            }
            for s in dectris.series
        ]
        data = {
            **sample,
            "images_written": dectris.images_written,
            "other_parts": dectris.other_parts,
            "discarded": dict(dectris.discarded),
            "not_written": dict(self.writer.not_written),
            "series": series,
            "open_series": None if open_series is None else open_series.series,
        }
        fields = traffic_fields(sample, final) + [
            ("images written", str(dectris.images_written)),
            ("discarded", format_counts(data["discarded"]) if data["discarded"] else "0"),
        ]
        if dectris.part != (1, 1):
            fields.append(("left to other parts", str(dectris.other_parts)))
        if data["not_written"]:
            fields.append(("not written", format_counts(data["not_written"])))
        if open_series is not None:
            fields.append(("writing series", str(open_series.series)))
        for entry in series:
            ending = "" if entry["ended"] else ", no end message"
            text = (
                f"{entry['master']}: {entry['images']} images, {entry['missing']} missing{ending}"
            )
            fields.append((f"series {entry['series']}", text))
        return Report(data, fields)


def _part(value: str | None) -> tuple[int, int]:
    if value is None:
        return (1, 1)
    k, slash, n = value.partition("/")
    if not (slash and k.isdigit() and n.isdigit() and 1 <= int(k) <= int(n)):
        raise click.BadParameter(f"{value!r} is not K/N with 1 <= K <= N (e.g. 2/3)")
    return (int(k), int(n))


def _write_masters(directory: str, overwrite: bool, tool: Tool) -> int:
    """``--master DIRECTORY``: the master files from the data files alone."""
    from mflow.hdf5 import write_masters

    summaries = write_masters(directory, overwrite)
    masters = [
        {
            "master": s.master,
            "images": s.images,
            "missing": s.missing,
            "data_files": s.data_files,
            "unreadable": s.unreadable,
        }
        for s in summaries
    ]
    fields = []
    for s in summaries:
        text = f"{s.images} images from {len(s.data_files)} data files, {len(s.missing)} missing"
        if s.missing:
            text += f" ({_ranges(s.missing)})"
        if s.unreadable:
            text += (
                f", left out (unreadable, or still marked open for writing: `h5clear -s FILE`"
                f" makes a killed writer's file readable): {', '.join(s.unreadable)}"
            )
        fields.append((s.master, text))
    tool.out.summary(Report({"masters": masters}, fields))
    return 0


def _ranges(numbers: list[int]) -> str:
    """``1-3, 7`` for [1, 2, 3, 7]."""
    spans: list[list[int]] = []
    for number in numbers:
        if spans and number == spans[-1][1] + 1:
            spans[-1][1] = number
        else:
            spans.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def _write(
    source: str,
    directory: str,
    name: str,
    frames_per_file: int,
    overwrite: bool,
    compression: str,
    instrument: str | None,
    source_name: str | None,
    sample: str | None,
    part: tuple[int, int],
    parts_wait: float,
    socket: SocketOptions,
    tool: Tool,
) -> int:
    from mflow.hdf5 import HDF5WriteError, StreamWriter

    endpoint = socket.endpoint(source, mflow.CONNECT)
    out = tool.out
    names = {"instrument": instrument, "source": source_name, "sample": sample}
    writer = StreamWriter(
        directory,
        name=name,
        frames_per_file=frames_per_file,
        compression=compression,
        overwrite=overwrite,
        names={k: v for k, v in names.items() if v},
        part=part,
    )
    writer.dectris.other_parts_wait = parts_wait
    failed = False
    with open_stream(endpoint) as stream, tool.run() as run:
        endpoint.announce(out, stream, f"writing to {directory}", directory=directory)
        recorder = _Recorder(stream, writer)
        try:
            while not run.stopped(recorder.meter.messages):
                recorder.receive(run)
                writer.flush_if_due()
                if run.report_due():
                    out.progress(recorder.report())
            writer.close()
        except HDF5WriteError as error:
            out.summary(recorder.report(final=True))
            # HDF5 (2.0) crashes when a file whose write failed is closed, even at exit;
            # the files hold what the last flush wrote, so end here with the one error line.
            print(f"Error: {error}", file=sys.stderr, flush=True)
            sys.stdout.flush()
            os._exit(1)
        except BaseException:
            failed = True
            raise
        finally:
            if failed:
                writer.close()
                out.summary(recorder.report(final=True))
        out.summary(recorder.report(final=True))
        return run.exit_code


@click.command(
    "write",
    help=HELP,
    short_help="Write a detector stream to NeXus/HDF5 files.",
    context_settings=CONTEXT_SETTINGS,
)
@click.argument("source", required=False)
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option(
    "--name",
    default="series_{series}",
    show_default=True,
    help="File name pattern ({series}: the series number); _master.h5 and "
    "_data_NNNNNN.h5 are added.",
)
@click.option(
    "--frames-per-file",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Images per data file.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing files.")
@click.option(
    "--compression",
    type=click.Choice(("bslz4", "none")),
    default="bslz4",
    show_default=True,
    help="For images that arrive uncompressed.",
)
@click.option(
    "--instrument",
    default=None,
    help="Instrument (beamline) name for the master file (NXmx requires it).",
)
@click.option(
    "--source-name",
    default=None,
    help="Source (facility) name for the master file (NXmx requires it).",
)
@click.option("--sample", default=None, help="Sample name for the master file (NXmx requires it).")
@click.option(
    "--part",
    default=None,
    metavar="K/N",
    callback=lambda ctx, param, value: _part(value),
    help="Be writer K of N writers of the same series (images divided by a fan-out): "
    "write data files K, K+N, ...; writer 1 also writes the master file over "
    "all parts' data files in DIRECTORY when its series ends.",
)
@click.option(
    "--master",
    "master_directory",
    default=None,
    metavar="DIRECTORY",
    type=click.Path(file_okay=False, exists=True),
    help="Receive nothing: (re)write the master file of every series in DIRECTORY from "
    "its data files (of all parts); give no SOURCE.",
)
@click.option(
    "--parts-wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="With --part 1/N: how long to wait at a series end for the other parts to have "
    "written every image and closed their data files; images not in a closed file by then "
    "are listed as missing.",
)
@socket_options(("pull", "sub"), "the source", "connect; tcp://*:PORT binds")
@tool_options()
def command(master_directory: str | None, **options: Any) -> int:
    source, directory = options["source"], options["directory"]
    if master_directory is not None:
        if source is not None:
            raise click.UsageError("--master DIRECTORY takes no SOURCE or DIRECTORY")
        return _write_masters(master_directory, options["overwrite"], options["tool"])
    if source is None or directory is None:
        raise click.UsageError(f"Missing argument '{'SOURCE' if source is None else 'DIRECTORY'}'.")
    return _write(**options)
