/* The benchmark's message source: array-1.0 messages as fast as libzmq takes them.
 *
 * Written in C so that the sender is never the bottleneck of a receive benchmark.
 * Links against the libzmq that pyzmq ships; the few declarations needed are below, so
 * no zmq.h is required.
 *
 *   sender ENDPOINT SIZE COUNT   connect a PUSH socket to ENDPOINT (bind instead when it
 *                                starts with '@'), send COUNT messages, print the seconds
 *                                it took
 *
 * Then it keeps sending until the receiver has gone (or it is terminated): libzmq may
 * drop the last messages of an ipc connection that closes, and the receiver must get all
 * COUNT.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void *zmq_ctx_new(void);
int zmq_ctx_term(void *context);
void *zmq_socket(void *context, int type);
int zmq_close(void *socket);
int zmq_connect(void *socket, const char *endpoint);
int zmq_bind(void *socket, const char *endpoint);
int zmq_setsockopt(void *socket, int option, const void *value, size_t length);
int zmq_send(void *socket, const void *buffer, size_t length, int flags);

enum { ZMQ_PUSH = 8, ZMQ_SNDMORE = 2, ZMQ_SNDHWM = 23, ZMQ_LINGER = 17, ZMQ_SNDTIMEO = 28 };

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s ENDPOINT SIZE COUNT\n", argv[0]);
        return 2;
    }
    size_t size = strtoull(argv[2], NULL, 10);
    long count = strtol(argv[3], NULL, 10);
    char *payload = calloc(size ? size : 1, 1);
    char header[160];
    void *context = zmq_ctx_new();
    void *socket = zmq_socket(context, ZMQ_PUSH);
    int hwm = 1000, linger = 0, timeout = 1000;
    zmq_setsockopt(socket, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger);
    int bound = argv[1][0] == '@';
    if ((bound ? zmq_bind(socket, argv[1] + 1) : zmq_connect(socket, argv[1])) != 0) {
        perror(bound ? "zmq_bind" : "zmq_connect");
        return 1;
    }
    struct timespec start, stop;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long frame = 0; frame < count; frame++) {
        int n = snprintf(header, sizeof header,
                         "{\"htype\": \"array-1.0\", \"type\": \"uint8\", \"shape\": [%zu], "
                         "\"frame\": %ld}", size, frame);
        if (zmq_send(socket, header, (size_t)n, ZMQ_SNDMORE) < 0 ||
            zmq_send(socket, payload, size, 0) < 0) {
            perror("zmq_send");
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &stop);
    printf("%.6f\n", (stop.tv_sec - start.tv_sec) + (stop.tv_nsec - start.tv_nsec) / 1e9);
    fflush(stdout);
    zmq_setsockopt(socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout);
    while (zmq_send(socket, header, 0, ZMQ_SNDMORE) >= 0 && zmq_send(socket, payload, size, 0) >= 0)
        ;
    zmq_close(socket);
    zmq_ctx_term(context);
    free(payload);
    return 0;
}
