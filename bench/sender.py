"""The benchmark's message source in Python, used when the C sender cannot be built.

    python sender.py ENDPOINT SIZE COUNT   (ENDPOINT starting with '@' binds)

Like sender.c, it then keeps sending until the receiver has gone: libzmq may drop the
last messages of an ipc connection that closes.
"""

import sys
import time

import zmq


def main() -> None:
    endpoint, size, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    socket = zmq.Context().socket(zmq.PUSH)
    socket.sndhwm = 1000
    if endpoint.startswith("@"):
        socket.bind(endpoint[1:])
    else:
        socket.connect(endpoint)
    payload = bytes(size)
    template = '{"htype": "array-1.0", "type": "uint8", "shape": [%d], "frame": %%d}' % size
    start = time.perf_counter()
    for frame in range(count):
        socket.send_multipart([(template % frame).encode(), payload])
    print(f"{time.perf_counter() - start:.6f}", flush=True)
    socket.sndtimeo = 1000
    try:
        while True:
            socket.send_multipart([b"", payload])
    except zmq.Again:
        socket.close(linger=0)


if __name__ == "__main__":
    main()
