"""One receiver of the benchmark (runs under any interpreter with pyzmq, and mflow for
the ``mflow`` variant — ours or psi-mflow 1.0).

Binds a PULL socket, prints its endpoint, receives ``--warmup`` then ``--count`` messages,
and prints one JSON line: wall and CPU seconds of the timed part, and checks of what
arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

import zmq

ZERO_COPY_MIN = 64 * 1024
#: The variants that receive with `mflow.asyncio`, and the event loop each runs on.
EVENT_LOOPS = {"mflow-async": "asyncio", "mflow-uvloop": "uvloop"}


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def raw_receiver(address: str, copy: bool):
    socket = zmq.Context.instance().socket(zmq.PULL)
    socket.rcvhwm = 1000
    socket.rcvtimeo = 30_000
    socket.bind(address)
    return socket.last_endpoint.decode(), lambda: socket.recv_multipart(copy=copy)


def mflow_receiver(address: str):
    import mflow

    stream = mflow.connect(
        address, conn_type="bind", mode=mflow.PULL, receive_timeout=30_000, queue_size=1000
    )  # the raw receiver's high-water mark too
    return stream.socket.last_endpoint.decode(), stream.receive


def mflow_async_receiver(address: str, event_loop: str):
    """`mflow.asyncio`'s receive, one awaited call per message in one event loop of the
    module ``event_loop`` (asyncio or uvloop)."""
    import atexit
    import importlib

    import mflow
    import mflow.asyncio as amflow

    stream = amflow.connect(
        address, conn_type="bind", mode=mflow.PULL, receive_timeout=30_000, queue_size=1000
    )
    loop = importlib.import_module(event_loop).new_event_loop()
    atexit.register(loop.close)  # not left to the garbage collector at interpreter exit

    async def receive_many(count: int):
        message = None
        for _ in range(count):
            message = await stream.receive()
        return message

    return stream.sync.socket.last_endpoint.decode(), lambda count=1: loop.run_until_complete(
        receive_many(count)
    )


def payload_is_a_view_on_the_zmq_frame(array) -> bool:
    try:
        from mflow._fastpath import FRAME_TYPES
    except ImportError:  # psi-mflow 1.0
        FRAME_TYPES = (zmq.Frame,)
    base = getattr(array, "base", None)
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, FRAME_TYPES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--variant",
        required=True,
        choices=["raw-copy", "raw-nocopy", "mflow", *EVENT_LOOPS],
    )
    parser.add_argument("--address", required=True, help="where to bind, e.g. tcp://127.0.0.1:*")
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--rss-samples",
        type=int,
        default=0,
        help="sample the resident size this many times during the run",
    )
    args = parser.parse_args()

    if args.variant == "mflow":
        endpoint, receive = mflow_receiver(args.address)
    elif args.variant in EVENT_LOOPS:
        endpoint, receive = mflow_async_receiver(args.address, EVENT_LOOPS[args.variant])
    else:
        endpoint, receive = raw_receiver(args.address, copy=args.variant == "raw-copy")
    print(endpoint, flush=True)

    for _ in range(args.warmup):
        if receive() is None:
            sys.exit("warm-up message lost")
    every = args.count // args.rss_samples if args.rss_samples else 0
    rss = []
    message = None
    wall, cpu = time.perf_counter(), time.process_time()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    in_a_loop = args.variant in EVENT_LOOPS
    if in_a_loop:
        message = receive(args.count)  # the whole run inside one event loop
    for index in range(0 if in_a_loop else args.count):
        message = receive()
        if every and index % every == 0:
            rss.append(rss_bytes())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    if every:
        rss.append(rss_bytes())

    result = {"wall": wall, "cpu": cpu, "page_faults": faults, "messages": args.count, "rss": rss}
    if args.variant.startswith("mflow"):
        array = message.data["data"][0]
        result["decoded_ok"] = array.nbytes == args.size and array.shape == (args.size,)
        result["zero_copy"] = payload_is_a_view_on_the_zmq_frame(array)
        statistics = message.statistics
        result["messages_counted"] = statistics.messages_received
        result["bytes_counted"] = statistics.total_bytes_received
    else:
        result["decoded_ok"] = len(message[1]) == args.size
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
