/* mflow._speedups: the compiled receive path.
 *
 * Profiles of the pure Python receive showed the interpreter, not the design, as the cost
 * of small messages: taking the parts off the socket, parsing the header, making the
 * numpy views and counting them took twice as long as pyzmq's bare recv_multipart. This
 * module does those steps in C for the common case and leaves everything else to the
 * Python path, which stays the reference (mflow/_fastpath.py wires the two together and
 * the tests run both):
 *
 * - Frame: a received ZeroMQ part, owned without a copy (it holds the zmq_msg_t), with
 *   the zmq.Frame interface mflow uses: len(), the buffer protocol (writable), .bytes,
 *   .buffer and .more.
 * - receive_frames(handle, flags): one whole multipart message as a list of Frames.
 * - receive_message(handle, flags, statistics): receive; decode array-1.0 into numpy
 *   views and account for it exactly as the Python path would; any other message is
 *   handed back, with its parsed header, for the Python path to finish.
 * - send_frames(handle, flags, parts): send Frames (shared, not copied) and small bytes.
 *
 * What this module re-implements has its Python twin, which names its C copy:
 * Statistics.message_succeeded (message_succeeded), Statistics.observe_sequence for a
 * source already tracked (observe_sequence; its key tables come from mflow.statistics),
 * SequenceGaps.observe (observe_number) and array-1.0's Handler.receive (decode_array).
 * tests/test_fastpath.py compares both paths field by field. Types: _speedups.pyi.
 *
 * libzmq is not linked at build time: configure() looks its functions up in the copy
 * pyzmq has loaded, so that sockets created by pyzmq can be used here (a handle is
 * pyzmq's Socket.underlying) and no libzmq headers are needed to build.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#ifndef _WIN32
#include <dlfcn.h>
#endif

/* libzmq >= 4.1 ABI */
typedef struct {
    unsigned char _[64] __attribute__((aligned(sizeof(void *))));
} zmq_msg_t;

enum { ZMQ_DONTWAIT = 1, ZMQ_SNDMORE = 2, ZMQ_EVENTS = 15 };

/* Larger bytes are left to pyzmq, which sends them without a copy. */
enum { COPY_THRESHOLD = 65536 };

static struct {
    int (*msg_init)(zmq_msg_t *);
    int (*msg_init_size)(zmq_msg_t *, size_t);
    int (*msg_close)(zmq_msg_t *);
    int (*msg_copy)(zmq_msg_t *, zmq_msg_t *);
    void *(*msg_data)(zmq_msg_t *);
    size_t (*msg_size)(const zmq_msg_t *);
    int (*msg_more)(const zmq_msg_t *);
    int (*msg_recv)(zmq_msg_t *, void *, int);
    int (*msg_send)(zmq_msg_t *, void *, int);
    int (*getsockopt)(void *, int, void *, size_t *);
    int (*errno_)(void);
} zmq;

/* The module's state: the Python objects of the mflow package it works with, set by
 * configure(). (The libzmq functions above are the process's one libzmq, shared.) */
typedef struct {
    PyObject *zmq_error;           /* errno -> the pyzmq exception to raise */
    PyObject *loads;               /* orjson.loads */
    PyObject *registry;            /* the live handler registry (dict htype -> registration) */
    PyObject *array_receive;       /* the built-in array-1.0 receive function */
    PyObject *layout;              /* (type, shape) -> (dtype, dims, nbytes) */
    PyObject *frombuffer;          /* numpy.frombuffer */
    PyObject *message_class;       /* mflow.Message */
    PyObject *statistics_class;    /* mflow.Statistics */
    PyObject *gaps_class;          /* mflow.statistics.SequenceGaps */
    /* the methods done here in C, as the classes had them */
    PyObject *message_succeeded, *observe_sequence, *observe;
    PyObject *number_keys, *source_keys;  /* statistics.NUMBER_KEYS, SOURCE_KEYS (tuples) */
    /* The array layout of the last array-1.0 header: consecutive messages repeat it. */
    struct {
        PyObject *type;
        PyObject *dims;
        PyObject *dtype;
        Py_ssize_t nbytes;
    } last_layout;
} State;

/* Every object State holds, for traverse and clear. */
#define STATE_OBJECTS(st)                                                                  \
    &(st)->zmq_error, &(st)->loads, &(st)->registry, &(st)->array_receive, &(st)->layout,  \
        &(st)->frombuffer, &(st)->message_class, &(st)->statistics_class, &(st)->gaps_class, \
        &(st)->message_succeeded, &(st)->observe_sequence, &(st)->observe,                  \
        &(st)->number_keys, &(st)->source_keys, &(st)->last_layout.type,                    \
        &(st)->last_layout.dims, &(st)->last_layout.dtype

static PyObject *s_htype, *s_array, *s_type, *s_shape, *s_header, *s_data, *s_reshape, *s_receive,
    *s_bytes_received, *s_total_bytes_received, *s_messages_received, *s_last_message_time,
    *s_messages_by_htype, *s_sequences, *s_last,
    *s_missed, *s_duplicated, *s_reverted, *s_observe, *s_observe_sequence,
    *s_message_succeeded, *zero, *one;

/* -- errors ------------------------------------------------------------------------- */

static void raise_zmq_error(State *st, int error) {
    PyObject *exception = PyObject_CallFunction(st->zmq_error, "i", error);
    if (exception != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exception), exception);
        Py_DECREF(exception);
    }
}

/* Run recv or send of one part the way pyzmq does: without the GIL while it waits,
 * retrying after signals (whose Python handlers may raise). A first attempt that does not
 * wait keeps the GIL, which is the common case on a busy stream. */
static int transfer(State *st, int (*operation)(zmq_msg_t *, void *, int), zmq_msg_t *msg,
                    void *socket, int flags) {
    int rc = operation(msg, socket, flags | ZMQ_DONTWAIT);
    if (rc >= 0) {
        return 0;
    }
    int error = zmq.errno_();
    for (;;) {
        if (error == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                return -1;
            }
        } else if (error != EAGAIN || (flags & ZMQ_DONTWAIT)) {
            raise_zmq_error(st, error);
            return -1;
        }
        Py_BEGIN_ALLOW_THREADS
        rc = operation(msg, socket, flags);
        error = rc < 0 ? zmq.errno_() : 0;
        Py_END_ALLOW_THREADS
        if (rc >= 0) {
            return 0;
        }
        if (error != EINTR) {
            raise_zmq_error(st, error);
            return -1;
        }
    }
}

/* -- Frame -------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    zmq_msg_t msg;
    int more;
} FrameObject;

static PyTypeObject FrameType;

static void Frame_dealloc(FrameObject *self) {
    zmq.msg_close(&self->msg);
    PyObject_Free(self);
}

static Py_ssize_t Frame_length(FrameObject *self) {
    return (Py_ssize_t)zmq.msg_size(&self->msg);
}

static int Frame_getbuffer(FrameObject *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, zmq.msg_data(&self->msg),
                             Frame_length(self), 0, flags);
}

static PyObject *Frame_bytes(FrameObject *self, void *closure) {
    return PyBytes_FromStringAndSize(zmq.msg_data(&self->msg), Frame_length(self));
}

static PyObject *Frame_buffer(FrameObject *self, void *closure) {
    return PyMemoryView_FromObject((PyObject *)self);
}

static PyObject *Frame_more(FrameObject *self, void *closure) {
    return PyBool_FromLong(self->more);
}

static PyObject *Frame_repr(FrameObject *self) {
    return PyUnicode_FromFormat("<mflow Frame: %zd bytes%s>", Frame_length(self),
                                self->more ? ", more" : "");
}

static PyGetSetDef Frame_getset[] = {
    {"bytes", (getter)Frame_bytes, NULL, "The part's content as bytes (a copy).", NULL},
    {"buffer", (getter)Frame_buffer, NULL, "A writable memoryview of the part (no copy).",
     NULL},
    {"more", (getter)Frame_more, NULL, "Whether more parts of the message follow.", NULL},
    {NULL},
};

static PySequenceMethods Frame_as_sequence = {.sq_length = (lenfunc)Frame_length};
static PyBufferProcs Frame_as_buffer = {.bf_getbuffer = (getbufferproc)Frame_getbuffer};

static PyTypeObject FrameType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mflow._speedups.Frame",
    .tp_doc = "A received ZeroMQ message part, held without a copy (like zmq.Frame).",
    .tp_basicsize = sizeof(FrameObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)Frame_dealloc,
    .tp_repr = (reprfunc)Frame_repr,
    .tp_as_sequence = &Frame_as_sequence,
    .tp_as_buffer = &Frame_as_buffer,
    .tp_getset = Frame_getset,
};

static FrameObject *receive_frame(State *st, void *socket, int flags) {
    FrameObject *frame = PyObject_New(FrameObject, &FrameType);
    if (frame == NULL) {
        return NULL;
    }
    zmq.msg_init(&frame->msg);
    frame->more = 0;
    if (transfer(st, zmq.msg_recv, &frame->msg, socket, flags) < 0) {
        Py_DECREF(frame);
        return NULL;
    }
    frame->more = zmq.msg_more(&frame->msg);
    return frame;
}

/* Discard the rest of a message whose first parts could not be kept, so that the next
 * receive starts at a message boundary. */
static void drain(void *socket) {
    int more = 1;
    while (more) {
        zmq_msg_t msg;
        zmq.msg_init(&msg);
        more = zmq.msg_recv(&msg, socket, ZMQ_DONTWAIT) >= 0 && zmq.msg_more(&msg);
        zmq.msg_close(&msg);
    }
}

static PyObject *receive_all(State *st, void *socket, int flags) {
    PyObject *frames = PyList_New(0);
    if (frames == NULL) {
        return NULL;
    }
    int more = 0;
    for (;;) {
        FrameObject *frame = receive_frame(st, socket, flags);
        if (frame == NULL) {
            break;
        }
        more = frame->more;
        int appended = PyList_Append(frames, (PyObject *)frame);
        Py_DECREF(frame);
        if (appended < 0) {
            break;
        }
        if (!more) {
            return frames;
        }
    }
    if (more) {
        drain(socket);
    }
    Py_DECREF(frames);
    return NULL;
}

/* -- statistics --------------------------------------------------------------------- */

static int add_to_attribute(PyObject *object, PyObject *name, PyObject *amount) {
    PyObject *value = PyObject_GetAttr(object, name);
    if (value == NULL) {
        return -1;
    }
    PyObject *sum = PyNumber_Add(value, amount);
    Py_DECREF(value);
    if (sum == NULL) {
        return -1;
    }
    int rc = PyObject_SetAttr(object, name, sum);
    Py_DECREF(sum);
    return rc;
}

/* Whether cls.name is still the method this module does in C: a class patched at run
 * time (with mock.patch.object, say) has its own method called instead. */
static int is_original(PyObject *cls, PyObject *name, PyObject *original) {
    PyObject *current = PyObject_GetAttr(cls, name);
    if (current == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = current == original;
    Py_DECREF(current);
    return same;
}

/* SequenceGaps.observe (the Python twin in mflow/statistics.py) */
static int observe_number(State *st, PyObject *gaps, PyObject *number) {
    if ((PyObject *)Py_TYPE(gaps) != st->gaps_class ||
        !is_original(st->gaps_class, s_observe, st->observe)) {
        PyObject *result = PyObject_CallMethodOneArg(gaps, s_observe, number);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    PyObject *last = PyObject_GetAttr(gaps, s_last);
    if (last == NULL) {
        return -1;
    }
    int rc = 0;
    if (last != Py_None) {
        PyObject *next = PyNumber_Add(last, one);
        int equal = next ? PyObject_RichCompareBool(number, last, Py_EQ) : -1;
        int below = equal == 0 ? PyObject_RichCompareBool(number, last, Py_LT) : 0;
        int beyond = equal == 0 && below == 0 ? PyObject_RichCompareBool(number, next, Py_GT) : 0;
        if (equal < 0 || below < 0 || beyond < 0) {
            rc = -1;
        } else if (equal) {
            rc = add_to_attribute(gaps, s_duplicated, one);
        } else if (below) {
            rc = add_to_attribute(gaps, s_reverted, one);
        } else if (beyond) {
            PyObject *skipped = PyNumber_Subtract(number, next);
            rc = skipped ? add_to_attribute(gaps, s_missed, skipped) : -1;
            Py_XDECREF(skipped);
        }
        Py_XDECREF(next);
    }
    Py_DECREF(last);
    return rc < 0 ? -1 : PyObject_SetAttr(gaps, s_last, number);
}

static PyObject *header_get(PyObject *header, PyObject *key, int *failed) {
    PyObject *value = PyDict_GetItemWithError(header, key);
    if (value == NULL && PyErr_Occurred()) {
        *failed = 1;
    }
    return value;
}

/* The first of the Python key table ``keys`` (a tuple) present in header, borrowed, with
 * ``integer`` set: the first exact int. NULL without an exception if none is. */
static PyObject *first_of(PyObject *header, PyObject *keys, int integer, int *failed) {
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(keys) && !*failed; i++) {
        PyObject *value = header_get(header, PyTuple_GET_ITEM(keys, i), failed);
        if (value != NULL && (!integer || PyLong_CheckExact(value))) {
            return value;
        }
    }
    return NULL;
}

/* Statistics.observe_sequence for a source that already has its tracker; everything else
 * (a new source, one that cannot be a key, the cap) is left to the Python method. */
static int observe_sequence(State *st, PyObject *statistics, PyObject *header) {
    int failed = 0;
    PyObject *number = first_of(header, st->number_keys, 1, &failed);
    if (number == NULL) {
        return failed ? -1 : 0;
    }
    PyObject *source = first_of(header, st->source_keys, 0, &failed);
    if (failed) {
        return -1;
    }
    source = source == NULL ? Py_None : source;
    PyObject *gaps = NULL;
    if (source == Py_None || PyLong_CheckExact(source) || PyUnicode_CheckExact(source)) {
        PyObject *sequences = PyObject_GetAttr(statistics, s_sequences);
        if (sequences == NULL) {
            return -1;
        }
        if (PyDict_CheckExact(sequences) &&
            is_original(st->statistics_class, s_observe_sequence, st->observe_sequence)) {
            gaps = PyDict_GetItemWithError(sequences, source);
            Py_XINCREF(gaps);
        }
        Py_DECREF(sequences);
        if (gaps == NULL && PyErr_Occurred()) {
            return -1;
        }
    }
    if (gaps == NULL) {
        PyObject *result = PyObject_CallMethodOneArg(statistics, s_observe_sequence, header);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    int rc = observe_number(st, gaps, number);
    Py_DECREF(gaps);
    return rc;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The Python path's byte accounting (what receiver.next / rest add) followed by
 * Statistics.message_succeeded(htype, header). */
static int message_succeeded(State *st, PyObject *statistics, PyObject *htype,
                             PyObject *header, Py_ssize_t nbytes) {
    PyObject *size = PyLong_FromSsize_t(nbytes);
    if (size == NULL) {
        return -1;
    }
    int rc = add_to_attribute(statistics, s_bytes_received, size);
    Py_DECREF(size);
    if (rc < 0) {
        return -1;
    }
    if ((PyObject *)Py_TYPE(statistics) != st->statistics_class ||
        !is_original(st->statistics_class, s_message_succeeded, st->message_succeeded)) {
        PyObject *result = PyObject_CallMethodObjArgs(statistics, s_message_succeeded, htype,
                                                      header, NULL);
        Py_XDECREF(result);
        return result == NULL ? -1 : 0;
    }
    PyObject *received = PyObject_GetAttr(statistics, s_bytes_received);
    if (received == NULL) {
        return -1;
    }
    rc = add_to_attribute(statistics, s_total_bytes_received, received);
    Py_DECREF(received);
    if (rc < 0 || PyObject_SetAttr(statistics, s_bytes_received, zero) < 0 ||
        add_to_attribute(statistics, s_messages_received, one) < 0) {
        return -1;
    }
    PyObject *time = PyFloat_FromDouble(now());
    rc = time ? PyObject_SetAttr(statistics, s_last_message_time, time) : -1;
    Py_XDECREF(time);
    if (rc < 0) {
        return -1;
    }
    PyObject *by_htype = PyObject_GetAttr(statistics, s_messages_by_htype);
    if (by_htype == NULL) {
        return -1;
    }
    /* by_htype[htype] = by_htype.get(htype, 0) + 1, the get of a dict (Counter) inline */
    PyObject *count;
    if (PyDict_Check(by_htype)) {
        count = PyDict_GetItemWithError(by_htype, htype);
        count = count ? Py_NewRef(count) : PyErr_Occurred() ? NULL : Py_NewRef(zero);
    } else {
        count = PyObject_CallMethod(by_htype, "get", "OO", htype, zero);
    }
    PyObject *counted = count ? PyNumber_Add(count, one) : NULL;
    rc = counted ? PyObject_SetItem(by_htype, htype, counted) : -1;
    Py_XDECREF(count);
    Py_XDECREF(counted);
    Py_DECREF(by_htype);
    return rc < 0 ? -1 : observe_sequence(st, statistics, header);
}

/* -- array-1.0 ---------------------------------------------------------------------- */

static int shape_is(PyObject *shape, PyObject *dims) {
    Py_ssize_t ndim = PyTuple_GET_SIZE(dims);
    if (PyLong_CheckExact(shape)) {
        return ndim == 1 && PyObject_RichCompareBool(shape, PyTuple_GET_ITEM(dims, 0), Py_EQ) == 1;
    }
    if (!PyList_CheckExact(shape) || PyList_GET_SIZE(shape) != ndim) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < ndim; i++) {
        PyObject *size = PyList_GET_ITEM(shape, i);
        if (!PyLong_CheckExact(size) ||
            PyObject_RichCompareBool(size, PyTuple_GET_ITEM(dims, i), Py_EQ) != 1) {
            return 0;
        }
    }
    return 1;
}

/* Set last_layout for the header's type and shape; 0 when the Python path must decide
 * (a malformed or open-ended shape, an unknown type). */
static int find_layout(State *st, PyObject *type, PyObject *shape) {
    if (st->last_layout.type != NULL && PyUnicode_CheckExact(type) &&
        PyUnicode_Compare(type, st->last_layout.type) == 0 &&
        shape_is(shape, st->last_layout.dims)) {
        return 1;
    }
    PyObject *layout = PyObject_CallFunctionObjArgs(st->layout, type, shape, NULL);
    if (layout == NULL) {
        PyErr_Clear();
        return 0;
    }
    int usable = PyUnicode_CheckExact(type) && PyTuple_CheckExact(layout) &&
                 PyTuple_GET_SIZE(layout) == 3 && PyLong_CheckExact(PyTuple_GET_ITEM(layout, 2));
    if (usable) {
        Py_ssize_t nbytes = PyLong_AsSsize_t(PyTuple_GET_ITEM(layout, 2));
        if (nbytes < 0) {
            PyErr_Clear();
            usable = 0;
        } else {
            Py_INCREF(type);
            Py_XSETREF(st->last_layout.type, type);
            Py_XSETREF(st->last_layout.dtype, Py_NewRef(PyTuple_GET_ITEM(layout, 0)));
            Py_XSETREF(st->last_layout.dims, Py_NewRef(PyTuple_GET_ITEM(layout, 1)));
            st->last_layout.nbytes = nbytes;
        }
    }
    Py_DECREF(layout);
    return usable;
}

static PyObject *array_of(State *st, PyObject *frame, PyObject *dtype, PyObject *dims) {
    PyObject *args[3] = {NULL, frame, dtype};
    PyObject *array = PyObject_Vectorcall(st->frombuffer, args + 1,
                                          2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (array == NULL || PyTuple_GET_SIZE(dims) == 1) {
        return array;
    }
    PyObject *reshape_args[2] = {array, dims};
    PyObject *shaped = PyObject_VectorcallMethod(s_reshape, reshape_args, 2, NULL);
    Py_DECREF(array);
    return shaped;
}

/* Whether the registry's receive function for array-1.0 is still the built-in one. */
static int array_receive_is_builtin(State *st) {
    PyObject *registration = PyDict_GetItemWithError(st->registry, s_array);
    if (registration == NULL) {
        return 0;
    }
    PyObject *receive = PyObject_GetAttr(registration, s_receive);
    if (receive == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(receive);  /* compared by identity only: the registration keeps it alive */
    return receive == st->array_receive;
}

/* {"header": header, "data": [arrays]} as the array-1.0 handler returns it; NULL without
 * an exception when the message is not one the fast path decodes. */
static PyObject *decode_array(State *st, PyObject *frames, PyObject *header) {
    Py_ssize_t count = PyList_GET_SIZE(frames);
    PyObject *htype = PyDict_GetItemWithError(header, s_htype);
    if (htype == NULL || count < 2 || !PyUnicode_CheckExact(htype) ||
        PyUnicode_Compare(htype, s_array) != 0 || !array_receive_is_builtin(st)) {
        return NULL;
    }
    PyObject *type = PyDict_GetItemWithError(header, s_type);
    PyObject *shape = type ? PyDict_GetItemWithError(header, s_shape) : NULL;
    if (shape == NULL || !find_layout(st, type, shape)) {
        return NULL;
    }
    /* Own the layout: Python code run below (a garbage collection, say) may let another
     * thread's receive replace the last layout. */
    PyObject *dtype = Py_NewRef(st->last_layout.dtype);
    PyObject *dims = Py_NewRef(st->last_layout.dims);
    Py_ssize_t nbytes = st->last_layout.nbytes;
    PyObject *data = NULL, *arrays = PyList_New(count - 1);
    for (Py_ssize_t i = 1; arrays != NULL && i < count; i++) {
        PyObject *frame = PyList_GET_ITEM(frames, i);
        Py_ssize_t size = Frame_length((FrameObject *)frame);
        PyObject *array;
        if (size == 0) {
            array = Py_NewRef(Py_None);
        } else if (size != nbytes || (array = array_of(st, frame, dtype, dims)) == NULL) {
            Py_CLEAR(arrays);
            break;
        }
        PyList_SET_ITEM(arrays, i - 1, array);
    }
    if (arrays != NULL) {
        data = PyDict_New();
        if (data == NULL || PyDict_SetItem(data, s_header, header) < 0 ||
            PyDict_SetItem(data, s_data, arrays) < 0) {
            Py_CLEAR(data);
        }
    }
    Py_XDECREF(arrays);
    Py_DECREF(dtype);
    Py_DECREF(dims);
    return data;
}

/* The header of a message if frame 0 is a JSON object orjson parses; else NULL. */
static PyObject *parse_header(State *st, PyObject *frame, PyObject **raw) {
    FrameObject *first = (FrameObject *)frame;
    const char *text = zmq.msg_data(&first->msg);
    size_t size = zmq.msg_size(&first->msg), start = 0;
    while (start < size && (text[start] == ' ' || text[start] == '\n' || text[start] == '\r' ||
                            text[start] == '\t')) {
        start++;
    }
    if (start == size || text[start] != '{') {
        return NULL;
    }
    *raw = PyBytes_FromStringAndSize(text, (Py_ssize_t)size);
    if (*raw == NULL) {
        return NULL;
    }
    PyObject *header = PyObject_CallOneArg(st->loads, *raw);
    if (header == NULL || !PyDict_CheckExact(header)) {
        PyErr_Clear();
        Py_CLEAR(header);
        Py_CLEAR(*raw);
    }
    return header;
}

/* -- module functions --------------------------------------------------------------- */

static int check_configured(State *st) {
    if (zmq.msg_recv == NULL || st->loads == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "mflow._speedups is not configured");
        return -1;
    }
    return 0;
}

/* The (handle, flags, ...) that every call starts with; -1 with an exception if wrong. */
static int parse_call(State *st, const char *name, PyObject *const *args, Py_ssize_t nargs,
                      Py_ssize_t expected, void **socket, int *flags) {
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, expected,
                     nargs);
        return -1;
    }
    *socket = PyLong_AsVoidPtr(args[0]);
    *flags = PyLong_AsLong(args[1]);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (*socket == NULL) {
        PyErr_SetString(PyExc_ValueError, "no socket");
        return -1;
    }
    return check_configured(st);
}

PyDoc_STRVAR(receive_frames_doc,
"receive_frames(handle, flags) -> list[Frame]\n\n"
"Receive one whole message from the libzmq socket ``handle`` (pyzmq's\n"
"``Socket.underlying``); pyzmq's exceptions on failure (``zmq.Again`` on a timeout).");

static PyObject *receive_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    void *socket;
    int flags;
    State *st = PyModule_GetState(module);
    if (parse_call(st, "receive_frames", args, nargs, 2, &socket, &flags) < 0) {
        return NULL;
    }
    return receive_all(st, socket, flags);
}

PyDoc_STRVAR(receive_message_doc,
"receive_message(handle, flags, statistics) -> Message | tuple\n\n"
"Receive one message. An array-1.0 message for the built-in handler is decoded and\n"
"counted in ``statistics`` and returned as a ``Message``; any other comes back as\n"
"``(frames, header, raw_header)`` (header and raw_header None if frame 0 is not a JSON\n"
"object) for the Python path to finish.");

static PyObject *receive_message(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    void *socket;
    int flags;
    State *st = PyModule_GetState(module);
    if (parse_call(st, "receive_message", args, nargs, 3, &socket, &flags) < 0) {
        return NULL;
    }
    PyObject *statistics = args[2];
    PyObject *frames = receive_all(st, socket, flags);
    if (frames == NULL) {
        return NULL;
    }
    PyObject *raw = NULL;
    PyObject *header = parse_header(st, PyList_GET_ITEM(frames, 0), &raw);
    PyObject *data = header ? decode_array(st, frames, header) : NULL;
    PyObject *result = NULL;
    if (data != NULL) {
        Py_ssize_t nbytes = 0;
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(frames); i++) {
            nbytes += Frame_length((FrameObject *)PyList_GET_ITEM(frames, i));
        }
        if (message_succeeded(st, statistics, s_array, header, nbytes) == 0) {
            PyObject *message_args[2] = {statistics, data};
            result = PyObject_Vectorcall(st->message_class, message_args, 2, NULL);
        }
    } else if (PyErr_Occurred()) {
        PyErr_Clear();  /* the Python path meets the same problem and reports it */
    }
    if (data == NULL) {
        result = PyTuple_Pack(3, frames, header ? header : Py_None, raw ? raw : Py_None);
    }
    Py_XDECREF(data);
    Py_XDECREF(header);
    Py_XDECREF(raw);
    Py_DECREF(frames);
    return result;
}

PyDoc_STRVAR(send_frames_doc,
"send_frames(handle, flags, parts) -> bool\n\n"
"Send ``parts`` as one message if each is a received Frame (shared, not copied) or bytes\n"
"under 64 KiB; False, sending nothing, if any is something else. pyzmq's exceptions on\n"
"failure.");

static PyObject *send_frames(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    void *socket;
    int flags;
    State *st = PyModule_GetState(module);
    if (parse_call(st, "send_frames", args, nargs, 3, &socket, &flags) < 0) {
        return NULL;
    }
    /* a snapshot: signal handlers run while sending may change a list passed in */
    PyObject *parts = PySequence_Tuple(args[2]);
    if (parts == NULL) {
        return NULL;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(parts);
    PyObject **items = PySequence_Fast_ITEMS(parts);
    if (count == 0) {  /* pyzmq's error for an empty message */
        Py_DECREF(parts);
        Py_RETURN_FALSE;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (Py_TYPE(items[i]) != &FrameType &&
            !(PyBytes_CheckExact(items[i]) && PyBytes_GET_SIZE(items[i]) < COPY_THRESHOLD)) {
            Py_DECREF(parts);
            Py_RETURN_FALSE;
        }
    }
    /* Every part is made before the first is sent: a failure then sends nothing, and no
     * SNDMORE is left dangling. Sending stops at the first part libzmq refuses; libzmq
     * itself then discards the parts already queued with SNDMORE. */
    zmq_msg_t *msgs = PyMem_New(zmq_msg_t, count);
    if (msgs == NULL) {
        Py_DECREF(parts);
        return PyErr_NoMemory();
    }
    Py_ssize_t made = 0, sent = 0;
    for (; made < count; made++) {
        PyObject *part = items[made];
        zmq_msg_t *msg = &msgs[made];
        if (Py_TYPE(part) == &FrameType) {
            zmq.msg_init(msg);
            if (zmq.msg_copy(msg, &((FrameObject *)part)->msg) < 0) {
                zmq.msg_close(msg);
                raise_zmq_error(st, zmq.errno_());
                break;
            }
        } else {
            Py_ssize_t size = PyBytes_GET_SIZE(part);
            if (zmq.msg_init_size(msg, (size_t)size) < 0) {
                PyErr_NoMemory();
                break;
            }
            memcpy(zmq.msg_data(msg), PyBytes_AS_STRING(part), (size_t)size);
        }
    }
    if (made == count) {
        for (; sent < count; sent++) {
            int more = sent + 1 < count ? ZMQ_SNDMORE : 0;
            if (transfer(st, zmq.msg_send, &msgs[sent], socket, flags | more) < 0) {
                break;
            }
        }
    }
    for (Py_ssize_t i = sent; i < made; i++) {  /* a sent message belongs to libzmq */
        zmq.msg_close(&msgs[i]);
    }
    PyMem_Free(msgs);
    if (sent < count) {
        Py_DECREF(parts);
        return NULL;
    }
    Py_DECREF(parts);
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(events_doc,
"events(handle) -> int\n\n"
"The socket's ``ZMQ_EVENTS`` (POLLIN 1, POLLOUT 2), as ``getsockopt(zmq.EVENTS)`` reads\n"
"them but without its Python layers: an event loop reads them at every wait.");

static PyObject *events(PyObject *module, PyObject *handle) {
    State *st = PyModule_GetState(module);
    void *socket = PyLong_AsVoidPtr(handle);
    if (socket == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "no socket");
        }
        return NULL;
    }
    if (check_configured(st) < 0) {
        return NULL;
    }
    int value = 0;
    size_t size = sizeof(value);
    while (zmq.getsockopt(socket, ZMQ_EVENTS, &value, &size) < 0) {
        int error = zmq.errno_();
        if (error != EINTR) {
            raise_zmq_error(st, error);
            return NULL;
        }
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
        size = sizeof(value);
    }
    return PyLong_FromLong(value);
}

static int bind_libzmq(const char *path) {
#ifdef _WIN32
    PyErr_SetString(PyExc_ImportError, "the compiled receive path needs dlopen");
    return -1;
#else
    void *library = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (library == NULL) {
        PyErr_Format(PyExc_ImportError, "pyzmq's libzmq is not loaded: %s", dlerror());
        return -1;
    }
    struct { void **slot; const char *name; } symbols[] = {
        {(void **)&zmq.msg_init, "zmq_msg_init"},
        {(void **)&zmq.msg_init_size, "zmq_msg_init_size"},
        {(void **)&zmq.msg_close, "zmq_msg_close"},
        {(void **)&zmq.msg_copy, "zmq_msg_copy"},
        {(void **)&zmq.msg_data, "zmq_msg_data"},
        {(void **)&zmq.msg_size, "zmq_msg_size"},
        {(void **)&zmq.msg_more, "zmq_msg_more"},
        {(void **)&zmq.msg_send, "zmq_msg_send"},
        {(void **)&zmq.getsockopt, "zmq_getsockopt"},
        {(void **)&zmq.errno_, "zmq_errno"},
        {(void **)&zmq.msg_recv, "zmq_msg_recv"},  /* last: it marks success */
    };
    size_t count = sizeof(symbols) / sizeof(symbols[0]);
    void *found[sizeof(symbols) / sizeof(symbols[0])];
    for (size_t i = 0; i < count; i++) {
        found[i] = dlsym(library, symbols[i].name);
        if (found[i] == NULL) {
            PyErr_Format(PyExc_ImportError, "libzmq has no %s", symbols[i].name);
            return -1;
        }
    }
    for (size_t i = 0; i < count; i++) {
        *symbols[i].slot = found[i];
    }
    return 0;
#endif
}

PyDoc_STRVAR(configure_doc,
"configure(libzmq_path, zmq_error, loads, registry, array_receive, layout, frombuffer,\n"
"          message_class, statistics_class, gaps_class, number_keys, source_keys)\n\n"
"Bind the libzmq functions of the already loaded library at ``libzmq_path`` (pyzmq's\n"
"backend module, which links it) and the Python objects the fast path works with.");

static PyObject *configure(PyObject *module, PyObject *args) {
    State *st = PyModule_GetState(module);
    const char *path;
    PyObject *zmq_error, *loads, *registry, *array_receive, *layout, *frombuffer, *message_class,
        *statistics_class, *gaps_class, *number_keys, *source_keys;
    if (!PyArg_ParseTuple(args, "sOOO!OOOOO!O!O!O!:configure", &path, &zmq_error, &loads,
                          &PyDict_Type, &registry, &array_receive, &layout, &frombuffer,
                          &message_class, &PyType_Type, &statistics_class, &PyType_Type,
                          &gaps_class, &PyTuple_Type, &number_keys, &PyTuple_Type,
                          &source_keys)) {
        return NULL;
    }
    PyObject *originals[3] = {
        PyObject_GetAttr(statistics_class, s_message_succeeded),
        PyObject_GetAttr(statistics_class, s_observe_sequence),
        PyObject_GetAttr(gaps_class, s_observe),
    };
    if (!originals[0] || !originals[1] || !originals[2] || bind_libzmq(path) < 0) {
        for (int i = 0; i < 3; i++) {
            Py_XDECREF(originals[i]);
        }
        return NULL;
    }
    Py_XSETREF(st->message_succeeded, originals[0]);
    Py_XSETREF(st->observe_sequence, originals[1]);
    Py_XSETREF(st->observe, originals[2]);
    Py_XSETREF(st->number_keys, Py_NewRef(number_keys));
    Py_XSETREF(st->source_keys, Py_NewRef(source_keys));
    Py_XSETREF(st->zmq_error, Py_NewRef(zmq_error));
    Py_XSETREF(st->loads, Py_NewRef(loads));
    Py_XSETREF(st->registry, Py_NewRef(registry));
    Py_XSETREF(st->array_receive, Py_NewRef(array_receive));
    Py_XSETREF(st->layout, Py_NewRef(layout));
    Py_XSETREF(st->frombuffer, Py_NewRef(frombuffer));
    Py_XSETREF(st->message_class, Py_NewRef(message_class));
    Py_XSETREF(st->statistics_class, Py_NewRef(statistics_class));
    Py_XSETREF(st->gaps_class, Py_NewRef(gaps_class));
    Py_CLEAR(st->last_layout.type);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"receive_frames", (PyCFunction)(void (*)(void))receive_frames, METH_FASTCALL,
     receive_frames_doc},
    {"receive_message", (PyCFunction)(void (*)(void))receive_message, METH_FASTCALL,
     receive_message_doc},
    {"send_frames", (PyCFunction)(void (*)(void))send_frames, METH_FASTCALL, send_frames_doc},
    {"events", events, METH_O, events_doc},
    {NULL},
};

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    State *st = PyModule_GetState(module);
    PyObject **objects[] = {STATE_OBJECTS(st)};
    for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
        Py_VISIT(*objects[i]);
    }
    return 0;
}

static int module_clear(PyObject *module) {
    State *st = PyModule_GetState(module);
    if (st == NULL) {
        return 0;
    }
    PyObject **objects[] = {STATE_OBJECTS(st)};
    for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
        Py_CLEAR(*objects[i]);
    }
    return 0;
}

static void module_free(void *module) {
    module_clear((PyObject *)module);
}

static struct PyModuleDef module_definition = {
    PyModuleDef_HEAD_INIT,
    .m_name = "mflow._speedups",
    .m_doc = "The compiled receive path of mflow (see mflow._fastpath).",
    .m_size = sizeof(State),
    .m_methods = methods,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

static int intern_all(void) {
    struct { PyObject **slot; const char *text; } names[] = {
        {&s_htype, "htype"}, {&s_array, "array-1.0"}, {&s_type, "type"}, {&s_shape, "shape"},
        {&s_header, "header"}, {&s_data, "data"}, {&s_reshape, "reshape"},
        {&s_receive, "receive"},
        {&s_bytes_received, "bytes_received"},
        {&s_total_bytes_received, "total_bytes_received"},
        {&s_messages_received, "messages_received"},
        {&s_last_message_time, "last_message_time"},
        {&s_messages_by_htype, "messages_by_htype"}, {&s_sequences, "sequences"},
        {&s_last, "last"}, {&s_missed, "missed"}, {&s_duplicated, "duplicated"},
        {&s_reverted, "reverted"}, {&s_observe, "observe"},
        {&s_observe_sequence, "observe_sequence"},
        {&s_message_succeeded, "message_succeeded"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        *names[i].slot = PyUnicode_InternFromString(names[i].text);
        if (*names[i].slot == NULL) {
            return -1;
        }
    }
    zero = PyLong_FromLong(0);
    one = PyLong_FromLong(1);
    return zero && one ? 0 : -1;
}

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&FrameType) < 0 || intern_all() < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&module_definition);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "Frame", (PyObject *)&FrameType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
