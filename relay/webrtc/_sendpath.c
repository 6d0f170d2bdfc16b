/* A viewer's frame, written, protected and sent in two calls (relay/webrtc/srtp.py).
 *
 * A FrameSender holds a viewer's frame buffer and address and does, for a frame of
 * payloads, what relay/webrtc/srtp.py and relay/webrtc/udp_batch.py do in Python: each
 * packet's header written before its payload in one buffer, each protected in
 * place by libsrtp 2 (the srtp_protect pylibsrtp's own binding exports, handed in
 * by address with the session it protects for), then every run of equal datagrams
 * sent in one sendmsg() with UDP_SEGMENT (plain sendto() for a run of one).
 * Nothing is allocated per packet or per frame.
 *
 * Built by scripts/build_sendpath.py; where it is not built, the same path runs in
 * Python (tests run both ways).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#define UDP_SEGMENT_OPT 103 /* linux/udp.h */
#define MAX_SEGMENTS 64     /* UDP_MAX_SEGMENTS */
#define MAX_RUN_BYTES 65000
#define MAX_TRAILER 20 /* SRTP_MAX_TRAILER_LEN: an AEAD tag and an MKI */
#define MAX_PACKETS 4096
#define MAX_HEAD 256 /* an RTP header with its extensions */

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

typedef struct {
    PyObject_HEAD
    protect_fn protect;
    void *srtp;
    PyObject *session; /* the pylibsrtp session `srtp` belongs to, kept alive */
    PyObject *to; /* the address `addr` was made from */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    unsigned char *buf;
    Py_ssize_t cap, length;
    int count;                /* datagrams of the last frame */
    int sizes[MAX_PACKETS];   /* and their sizes */
    int sent;                 /* of them sent */
    int error;                /* errno of the send that stopped, or 0 */
    unsigned long long calls; /* send system calls made */
} FrameSender;

static int
sender_init(FrameSender *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"protect", "srtp", "session", NULL};
    unsigned long long protect, srtp;
    PyObject *session;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKO", names, &protect, &srtp, &session))
        return -1;
    self->protect = (protect_fn)(uintptr_t)protect;
    self->srtp = (void *)(uintptr_t)srtp;
    Py_XSETREF(self->session, Py_NewRef(session));
    return 0;
}

static void
sender_dealloc(FrameSender *self)
{
    Py_XDECREF(self->session);
    Py_XDECREF(self->to);
    PyMem_Free(self->buf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Makes `addr` from a (host, port) tuple, unless it was made from an equal one. */
static int
set_address(FrameSender *self, PyObject *to)
{
    if (self->to != NULL) {
        int same = to == self->to ? 1 : PyObject_RichCompareBool(to, self->to, Py_EQ);
        if (same != 0)
            return same < 0 ? -1 : 0;
    }
    if (!PyTuple_Check(to) || PyTuple_GET_SIZE(to) < 2) {
        PyErr_SetString(PyExc_TypeError, "the address must be a (host, port) tuple");
        return -1;
    }
    const char *host = PyUnicode_AsUTF8(PyTuple_GET_ITEM(to, 0));
    long port = host == NULL ? -1 : PyLong_AsLong(PyTuple_GET_ITEM(to, 1));
    if (host == NULL || port < 0 || port > 65535) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a port is from 0 to 65535");
        return -1;
    }
    memset(&self->addr, 0, sizeof(self->addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&self->addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self->addr;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        self->addr_len = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        self->addr_len = sizeof(*v6);
    } else {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
        return -1;
    }
    Py_XSETREF(self->to, Py_NewRef(to));
    return 0;
}

static int
reserve(FrameSender *self, Py_ssize_t size)
{
    if (size <= self->cap)
        return 0;
    Py_ssize_t cap = self->cap ? self->cap : 65536;
    while (cap < size)
        cap *= 2;
    unsigned char *buf = PyMem_Realloc(self->buf, cap);
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

/* protect(first, payload_type, rest, payloads, seq) -> length: each payload behind
 * its header (`first` byte, the marker on the last packet with `payload_type`,
 * sequence numbers from `seq`, then `rest`: timestamp, SSRC, extensions), each
 * protected, one after another in the buffer. As FrameBuffer.protect in srtp.py. */
static PyObject *
sender_protect(FrameSender *self, PyObject *args)
{
    int first, payload_type;
    Py_buffer rest;
    PyObject *payloads;
    unsigned int seq;
    if (!PyArg_ParseTuple(args, "iiy*O!I", &first, &payload_type, &rest, &PyList_Type, &payloads,
                          &seq))
        return NULL;
    if (self->protect == NULL || self->srtp == NULL) {
        PyBuffer_Release(&rest);
        PyErr_SetString(PyExc_ValueError, "a FrameSender made without an SRTP session");
        return NULL;
    }
    unsigned char head[MAX_HEAD];
    Py_ssize_t size = 4 + rest.len, count = PyList_GET_SIZE(payloads), total = 0;
    if (size <= MAX_HEAD) {
        memcpy(head + 4, rest.buf, rest.len);
    }
    PyBuffer_Release(&rest);
    if (size > MAX_HEAD || count > MAX_PACKETS) {
        PyErr_SetString(PyExc_ValueError, "header too long or too many packets in one frame");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            return NULL;
        }
        total += PyBytes_GET_SIZE(p) + size + MAX_TRAILER;
    }
    if (reserve(self, total) < 0)
        return NULL;
    head[0] = (unsigned char)first;
    self->count = self->sent = self->error = 0;
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        Py_ssize_t length = PyBytes_GET_SIZE(p);
        unsigned char *out = self->buf + at;
        head[1] = (unsigned char)(payload_type | (i == count - 1 ? 0x80 : 0));
        head[2] = (seq >> 8) & 0xFF, head[3] = seq & 0xFF;
        memcpy(out, head, size);
        memcpy(out + size, PyBytes_AS_STRING(p), length);
        int protected = (int)(size + length);
        int status = self->protect(self->srtp, out, &protected);
        if (status) {
            self->length = 0;
            PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (%d)", status);
            return NULL;
        }
        self->sizes[i] = protected;
        at += protected;
        seq = (seq + 1) & 0xFFFF;
    }
    self->length = at;
    self->count = (int)count;
    return PyLong_FromSsize_t(at);
}

/* The end of the run from datagram `start`: all of its size but the last, which
 * may be shorter (relay/webrtc/udp_batch.py run_end). */
static int
run_end(const int *sizes, int start, int stop)
{
    int size = sizes[start], end = start + 1, total = size;
    while (end < stop && end - start < MAX_SEGMENTS && sizes[end - 1] == size &&
           sizes[end] <= size && total + sizes[end] <= MAX_RUN_BYTES) {
        total += sizes[end];
        end++;
    }
    return end;
}

/* send(fd, addr) -> bool: the frame protected last, to `addr` (host, port), run by
 * run; False if a send stopped (`error` says why, `datagrams()` gives what is left). */
static PyObject *
sender_send(FrameSender *self, PyObject *args)
{
    int fd;
    PyObject *to;
    if (!PyArg_ParseTuple(args, "iO", &fd, &to))
        return NULL;
    if (set_address(self, to) < 0)
        return NULL;
    Py_ssize_t at = 0;
    for (int i = 0; i < self->sent; i++)
        at += self->sizes[i];
    while (self->sent < self->count) {
        int start = self->sent, end = run_end(self->sizes, start, self->count);
        Py_ssize_t bytes = 0;
        for (int i = start; i < end; i++)
            bytes += self->sizes[i];
        struct iovec iov = {self->buf + at, (size_t)bytes};
        union {
            char buf[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } control;
        struct msghdr msg = {0};
        msg.msg_name = &self->addr;
        msg.msg_namelen = self->addr_len;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        if (end - start > 1) {
            memset(&control, 0, sizeof(control));
            msg.msg_control = control.buf;
            msg.msg_controllen = sizeof(control.buf);
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT_OPT;
            cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t segment = (uint16_t)self->sizes[start];
            memcpy(CMSG_DATA(cm), &segment, sizeof(segment));
        }
        if (sendmsg(fd, &msg, MSG_DONTWAIT) < 0) {
            if (errno == EINTR)
                continue;
            self->error = errno;
            Py_RETURN_FALSE;
        }
        self->calls++;
        self->sent = end;
        at += bytes;
    }
    Py_RETURN_TRUE;
}

/* datagrams() -> list[bytes]: the last frame's datagrams not sent yet. */
static PyObject *
sender_datagrams(FrameSender *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(self->count - self->sent);
    if (out == NULL)
        return NULL;
    Py_ssize_t at = 0;
    for (int i = 0; i < self->sent; i++)
        at += self->sizes[i];
    for (int i = self->sent; i < self->count; i++) {
        PyObject *d = PyBytes_FromStringAndSize((const char *)self->buf + at, self->sizes[i]);
        if (d == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i - self->sent, d);
        at += self->sizes[i];
    }
    self->sent = self->count;
    return out;
}

/* frame() -> bytes: the frame protected last, as it lies in the buffer. */
static PyObject *
sender_frame(FrameSender *self, PyObject *Py_UNUSED(ignored))
{
    return PyBytes_FromStringAndSize((const char *)self->buf, self->length);
}

static PyObject *
sender_get_error(FrameSender *self, void *closure)
{
    return PyLong_FromLong(self->error);
}

static PyObject *
sender_get_calls(FrameSender *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->calls);
}

static PyObject *
sender_get_session(FrameSender *self, void *closure)
{
    return Py_NewRef(self->session ? self->session : Py_None);
}

static PyMethodDef sender_methods[] = {
    {"protect", (PyCFunction)sender_protect, METH_VARARGS,
     "protect(first, payload_type, rest, payloads, seq) -> length: a frame, in the buffer"},
    {"send", (PyCFunction)sender_send, METH_VARARGS,
     "send(fd, addr) -> bool: that frame, a call per run; False if a send stopped"},
    {"frame", (PyCFunction)sender_frame, METH_NOARGS, "frame() -> bytes: that frame"},
    {"datagrams", (PyCFunction)sender_datagrams, METH_NOARGS,
     "datagrams() -> list[bytes]: what send() left, to go another way"},
    {NULL},
};

static PyGetSetDef sender_getset[] = {
    {"error", (getter)sender_get_error, NULL, "errno of the send that stopped, or 0", NULL},
    {"calls", (getter)sender_get_calls, NULL, "send system calls made", NULL},
    {"session", (getter)sender_get_session, NULL, "the SRTP session it protects for", NULL},
    {NULL},
};

static PyTypeObject FrameSenderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "relay.webrtc._sendpath.FrameSender",
    .tp_basicsize = sizeof(FrameSender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A viewer's frames, protected and sent from one buffer.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)sender_init,
    .tp_dealloc = (destructor)sender_dealloc,
    .tp_methods = sender_methods,
    .tp_getset = sender_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sendpath", "A viewer's frames protected and sent (relay/webrtc/srtp.py).",
    -1, NULL,
};

PyMODINIT_FUNC
PyInit__sendpath(void)
{
    if (PyType_Ready(&FrameSenderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "FrameSender", (PyObject *)&FrameSenderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
