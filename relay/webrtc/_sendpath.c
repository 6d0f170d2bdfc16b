/* A viewer's frame, written, protected and sent in two calls (relay/webrtc/srtp.py).
 *
 * A FrameSender holds a viewer's frame buffer and address and does, for a frame of
 * payloads, what relay/webrtc/srtp.py and relay/webrtc/udp_batch.py do in Python: each
 * packet's header written before its payload in one buffer, each protected in
 * place (here, by _srtp_protect.c, for the profiles it knows; else by libsrtp 2,
 * the srtp_protect pylibsrtp's own binding exports, handed in by address with the
 * session it protects for), then every run of equal datagrams sent in one
 * sendmsg() with UDP_SEGMENT (plain sendto() for a run of one). And a frame's
 * H.264 RTP payloads, cut once for all its viewers (h264_payloads).
 * Nothing is allocated per packet or per frame.
 *
 * Built by setup.py (an optional extension); where it is not built, the same path runs in
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

#include "_srtp_protect.h"

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#define UDP_SEGMENT_OPT 103 /* linux/udp.h */
#define MAX_SEGMENTS 64     /* UDP_MAX_SEGMENTS */
#define MAX_RUN_BYTES 65000
#define MAX_TRAILER 20 /* SRTP_MAX_TRAILER_LEN: an AEAD tag and an MKI */
#define MAX_HEAD 256 /* an RTP header with its extensions */
#define KEPT 128     /* frames a group's viewer keeps to send again (NACK) */
#define MAX_JUMP_SECONDS 5

typedef int (*protect_fn)(void *ctx, void *rtp, int *len);

static PyTypeObject FrameSenderType;

typedef struct {
    PyObject_HEAD
    protect_fn protect;
    void *srtp;
    PyObject *session; /* the pylibsrtp session `srtp` belongs to, kept alive */
    srtp_sender here;  /* where SRTP is protected here, not by libsrtp: `srtp` */
    PyObject *to; /* the address `addr` was made from */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    unsigned char *buf;
    Py_ssize_t cap, length;
    int count;                /* datagrams of the last frame */
    int *sizes, sizes_cap;    /* and their sizes */
    int sent;                 /* of them sent */
    int error;                /* errno of the send that stopped, or 0 */
    unsigned long long calls; /* send system calls made */
    /* In a group (fan_out): what a viewer's RtpWriter and track do per frame. */
    PyObject *sock;             /* the socket to send from (its fileno, each frame) */
    int queued;                 /* True: its frames go the Python way (fan_out says) */
    unsigned char first, payload_type;
    unsigned char tail[MAX_HEAD]; /* the header after its timestamp: SSRC, extensions */
    Py_ssize_t tail_len, abs_at;  /* where abs-send-time's element is in it, or -1 */
    uint32_t origin;              /* RTP time's random start */
    unsigned int seq;             /* the next packet's */
    long long clock, frame_ticks, offset, last; /* the Retimer of relay/webrtc/track.py */
    int has_last;
    unsigned long long packets, octets, bytes; /* sent in the group: all, payload, SRTP */
    unsigned long long ntp;                    /* when the last frame went, and */
    uint32_t rtp;                              /* its RTP time */
    struct {
        unsigned int seq;
        int count;
        uint32_t timestamp;
        unsigned long long ntp;
        long long frame;
    } kept[KEPT]; /* the newest frames sent, for NACKs */
    int kept_next;
} FrameSender;

static int
sender_init(FrameSender *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"protect", "srtp", "session", "master", "profile", NULL};
    unsigned long long protect, srtp;
    PyObject *session;
    Py_buffer master = {0};
    int profile = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKO|y*i", names, &protect, &srtp, &session,
                                     &master, &profile))
        return -1;
    self->protect = (protect_fn)(uintptr_t)protect;
    self->srtp = (void *)(uintptr_t)srtp;
    if (master.buf != NULL) { /* the profile's master key and salt: protected here */
        int ok = srtp_sender_init(&self->here, profile, master.buf, (size_t)master.len) == 0;
        PyBuffer_Release(&master);
        if (!ok) {
            PyErr_Format(PyExc_ValueError,
                         "SRTP profile %d is not protected here, or not with that key", profile);
            return -1;
        }
        self->protect = srtp_sender_protect;
        self->srtp = &self->here;
    }
    Py_XSETREF(self->session, Py_NewRef(session));
    return 0;
}

static void
sender_dealloc(FrameSender *self)
{
    srtp_sender_wipe(&self->here);
    Py_XDECREF(self->session);
    Py_XDECREF(self->to);
    Py_XDECREF(self->sock);
    PyMem_Free(self->buf);
    PyMem_Free(self->sizes);
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

/* Each payload behind its header (`head`: `size` bytes, its marker and sequence
 * number set here), each protected, one after another in the buffer. 0, or -1
 * with an exception set. */
static int
protect_frame(FrameSender *self, unsigned char *head, Py_ssize_t size, int payload_type,
              PyObject *payloads, unsigned int seq)
{
    Py_ssize_t count = PyList_GET_SIZE(payloads), total = 0;
    self->count = self->sent = self->error = 0;
    self->length = 0;
    if (self->protect == NULL || self->srtp == NULL) {
        PyErr_SetString(PyExc_ValueError, "a FrameSender made without an SRTP session");
        return -1;
    }
    if (count > self->sizes_cap) {
        int *sizes = PyMem_Realloc(self->sizes, count * sizeof(int));
        if (sizes == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->sizes = sizes;
        self->sizes_cap = (int)count;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            return -1;
        }
        total += PyBytes_GET_SIZE(p) + size + MAX_TRAILER;
    }
    if (reserve(self, total) < 0)
        return -1;
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
            PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (%d)", status);
            return -1;
        }
        self->sizes[i] = protected;
        at += protected;
        seq = (seq + 1) & 0xFFFF;
    }
    self->length = at;
    self->count = (int)count;
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
    unsigned char head[MAX_HEAD];
    Py_ssize_t size = 4 + rest.len;
    if (size <= MAX_HEAD)
        memcpy(head + 4, rest.buf, rest.len);
    PyBuffer_Release(&rest);
    if (size > MAX_HEAD) {
        PyErr_SetString(PyExc_ValueError, "header too long");
        return NULL;
    }
    head[0] = (unsigned char)first;
    if (protect_frame(self, head, size, payload_type, payloads, seq) < 0)
        return NULL;
    return PyLong_FromSsize_t(self->length);
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

/* Sends the frame protected last, from its first datagram not sent, run by run:
 * 1 if all went, 0 if a send stopped (`error` says why). */
static int
send_runs(FrameSender *self, int fd)
{
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
            return 0;
        }
        self->calls++;
        self->sent = end;
        at += bytes;
    }
    return 1;
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
    return PyBool_FromLong(send_runs(self, fd));
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


/* join(sock, addr, first, payload_type, tail, abs_at, origin, seq, clock, frame_ticks,
 *      offset, last, has_last): what a viewer's writer and track hold, for fan_out. */
static PyObject *
sender_join(FrameSender *self, PyObject *args)
{
    PyObject *sock, *to;
    int first, payload_type, has_last;
    Py_buffer tail;
    Py_ssize_t abs_at;
    unsigned long origin;
    unsigned int seq;
    long long clock, frame_ticks, offset, last;
    if (!PyArg_ParseTuple(args, "OOiiy*nkILLLLp", &sock, &to, &first, &payload_type, &tail,
                          &abs_at, &origin, &seq, &clock, &frame_ticks, &offset, &last,
                          &has_last))
        return NULL;
    int bad = tail.len > MAX_HEAD - 8 || (abs_at >= 0 && abs_at + 4 > tail.len);
    unsigned char copy[MAX_HEAD];
    Py_ssize_t length = tail.len;
    if (!bad)
        memcpy(copy, tail.buf, length);
    PyBuffer_Release(&tail);
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "header too long, or abs-send-time outside it");
        return NULL;
    }
    if (set_address(self, to) < 0)
        return NULL; /* nothing changed: it joins nothing */
    memcpy(self->tail, copy, length);
    self->tail_len = length;
    memset(self->kept, 0, sizeof(self->kept)); /* frame numbers are its new group's */
    self->kept_next = 0;
    Py_XSETREF(self->sock, Py_NewRef(sock));
    self->first = (unsigned char)first;
    self->payload_type = (unsigned char)payload_type;
    self->abs_at = abs_at;
    self->origin = (uint32_t)origin;
    self->seq = seq & 0xFFFF;
    self->clock = clock, self->frame_ticks = frame_ticks;
    self->offset = offset, self->last = last, self->has_last = has_last;
    self->queued = 0;
    Py_RETURN_NONE;
}

/* The Retimer of relay/webrtc/track.py: a strictly rising RTP clock from the
 * source's (`has_raw` 0: a packet without a time). */
static long long
retime(FrameSender *self, int has_raw, long long raw)
{
    long long out;
    if (!self->has_last)
        out = has_raw ? raw : 0;
    else if (!has_raw)
        out = self->last + self->frame_ticks;
    else {
        out = raw + self->offset;
        if (out <= self->last || out - self->last > MAX_JUMP_SECONDS * self->clock) {
            self->offset = self->last + self->frame_ticks - raw; /* a new clock: carry on */
            out = raw + self->offset;
        }
    }
    self->last = out, self->has_last = 1;
    return out;
}

/* One viewer's part of fan_out: 0, or -1 with an exception set (its protect
 * failed). Sets `queued` where what was protected must go the Python way. */
static int
fan_out_one(FrameSender *self, PyObject *payloads, Py_ssize_t octets, int has_raw,
            long long raw, unsigned long long ntp, long long frame)
{
    uint32_t timestamp = (uint32_t)(self->origin + (uint32_t)retime(self, has_raw, raw));
    unsigned char head[MAX_HEAD];
    Py_ssize_t size = 8 + self->tail_len;
    head[0] = self->first;
    head[4] = timestamp >> 24, head[5] = timestamp >> 16, head[6] = timestamp >> 8;
    head[7] = timestamp;
    memcpy(head + 8, self->tail, self->tail_len);
    if (self->abs_at >= 0) { /* its element's header, then 6.18 fixed-point seconds */
        uint32_t abs = (uint32_t)(ntp >> 14) & 0x00FFFFFF;
        unsigned char *at = head + 8 + self->abs_at + 1;
        at[0] = abs >> 16, at[1] = abs >> 8, at[2] = abs;
    }
    unsigned int seq = self->seq;
    if (protect_frame(self, head, size, self->payload_type, payloads, seq) < 0)
        return -1;
    if (!self->queued) {
        int fd = self->sock == NULL ? -1 : PyObject_AsFileDescriptor(self->sock);
        if (fd < 0) {
            PyErr_Clear(); /* closed: the Python way says what to do */
            self->queued = 1;
        } else if (!send_runs(self, fd))
            self->queued = 1;
    }
    if (self->count) { /* kept, to be found again: an empty frame sent nothing */
        int k = self->kept_next;
        self->kept[k].seq = seq, self->kept[k].count = self->count;
        self->kept[k].timestamp = timestamp, self->kept[k].ntp = ntp;
        self->kept[k].frame = frame;
        self->kept_next = (k + 1) % KEPT;
    }
    self->seq = (seq + self->count) & 0xFFFF;
    self->packets += self->count;
    self->bytes += self->length;
    self->octets += octets; /* payload only, as the sender's reports count */
    self->ntp = ntp, self->rtp = timestamp;
    return 0;
}

/* lookup(seq) -> (frame, index, timestamp, ntp) | None: where a packet sent in the
 * group lies (`frame` as fan_out numbered it), to send it again. */
static PyObject *
sender_lookup(FrameSender *self, PyObject *args)
{
    unsigned int seq;
    if (!PyArg_ParseTuple(args, "I", &seq))
        return NULL;
    for (int n = 1; n <= KEPT; n++) {
        int k = (self->kept_next - n + KEPT) % KEPT;
        if (self->kept[k].count == 0)
            break; /* the ring is not full yet: no frame is kept empty */
        unsigned int i = (seq - self->kept[k].seq) & 0xFFFF;
        if (i < (unsigned int)self->kept[k].count)
            return Py_BuildValue("LIkK", self->kept[k].frame, i,
                                 (unsigned long)self->kept[k].timestamp, self->kept[k].ntp);
    }
    Py_RETURN_NONE;
}

/* fan_out(senders, payloads, raw, ntp, frame) -> list: one frame to every viewer of
 * a group (relay/webrtc/fanout.py): `raw` its time in their clock's units, or None;
 * `ntp` now; `frame` its number. Each sender retimes it, writes, protects and
 * sends it, keeps where it lies and counts it. What it returns: the senders whose
 * frame must go the Python way (`queued`: its datagrams are in datagrams()), or
 * whose protect failed (`error` -1: they sent nothing, and are to leave). */
static PyObject *
fan_out(PyObject *module, PyObject *args)
{
    PyObject *senders, *payloads, *raw_obj;
    unsigned long long ntp;
    long long frame;
    if (!PyArg_ParseTuple(args, "O!O!OKL", &PyList_Type, &senders, &PyList_Type, &payloads,
                          &raw_obj, &ntp, &frame))
        return NULL;
    int has_raw = raw_obj != Py_None;
    long long raw = has_raw ? PyLong_AsLongLong(raw_obj) : 0;
    if (raw == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t octets = 0; /* the frame's payload bytes, the same for every viewer */
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(payloads); i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        if (!PyBytes_Check(p)) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes");
            return NULL;
        }
        octets += PyBytes_GET_SIZE(p);
    }
    PyObject *left = PyList_New(0);
    if (left == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(senders); i++) {
        FrameSender *one = (FrameSender *)PyList_GET_ITEM(senders, i);
        if (!PyObject_TypeCheck((PyObject *)one, &FrameSenderType)) {
            Py_DECREF(left);
            PyErr_SetString(PyExc_TypeError, "fan_out sends to FrameSenders");
            return NULL;
        }
        if (fan_out_one(one, payloads, octets, has_raw, raw, ntp, frame) < 0) {
            PyErr_Clear();
            one->error = -1;
            one->queued = 1;
        }
        if (one->queued && PyList_Append(left, (PyObject *)one) < 0) {
            Py_DECREF(left);
            return NULL;
        }
    }
    return left;
}

/* protect_again(packet) -> bytes: a packet sent before, protected as it was (a
 * retransmission without RTX); only where SRTP is protected here. */
static PyObject *
sender_protect_again(FrameSender *self, PyObject *args)
{
    Py_buffer packet;
    if (!PyArg_ParseTuple(args, "y*", &packet))
        return NULL;
    if (self->srtp != &self->here || packet.len > INT_MAX - SRTP_MAX_TAG) {
        PyBuffer_Release(&packet);
        PyErr_SetString(PyExc_ValueError, "protect_again is for SRTP protected here");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, packet.len + SRTP_MAX_TAG);
    if (out == NULL) {
        PyBuffer_Release(&packet);
        return NULL;
    }
    int length = (int)packet.len;
    memcpy(PyBytes_AS_STRING(out), packet.buf, packet.len);
    PyBuffer_Release(&packet);
    int status = srtp_sender_protect_again(&self->here, PyBytes_AS_STRING(out), &length);
    if (status) {
        Py_DECREF(out);
        PyErr_Format(PyExc_RuntimeError, "srtp_protect failed (%d)", status);
        return NULL;
    }
    if (_PyBytes_Resize(&out, length) < 0)
        return NULL;
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
sender_get_cipher(FrameSender *self, void *closure)
{
    if (self->srtp != &self->here)
        return PyUnicode_FromString("libsrtp");
    return PyUnicode_FromString(self->here.profile == SRTP_AES128_CM_SHA1_80 ? "aes-cm-hmac-sha1"
                                                                             : "aes-gcm");
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
    {"protect_again", (PyCFunction)sender_protect_again, METH_VARARGS,
     "protect_again(packet) -> bytes: a packet sent before, protected as then (SRTP here)"},
    {"join", (PyCFunction)sender_join, METH_VARARGS,
     "join(sock, addr, first, payload_type, tail, abs_at, origin, seq, clock, frame_ticks,"
     " offset, last, has_last): what fan_out needs of the viewer"},
    {"lookup", (PyCFunction)sender_lookup, METH_VARARGS,
     "lookup(seq) -> (frame, index, timestamp, ntp) | None: a packet fan_out sent"},
    {"datagrams", (PyCFunction)sender_datagrams, METH_NOARGS,
     "datagrams() -> list[bytes]: what send() left, to go another way"},
    {NULL},
};

static PyObject *
sender_get_queued(FrameSender *self, void *closure)
{
    return PyBool_FromLong(self->queued);
}

static int
sender_set_queued(FrameSender *self, PyObject *value, void *closure)
{
    int truth = value == NULL ? 0 : PyObject_IsTrue(value);
    if (truth < 0)
        return -1;
    self->queued = truth;
    return 0;
}

static PyObject *
sender_get_state(FrameSender *self, void *closure)
{
    return Py_BuildValue("ILLNKKKKk", self->seq, self->offset, self->last,
                         PyBool_FromLong(self->has_last), self->packets, self->octets,
                         self->bytes, self->ntp, (unsigned long)self->rtp);
}

static PyGetSetDef sender_getset[] = {
    {"queued", (getter)sender_get_queued, (setter)sender_set_queued,
     "True: in fan_out, its frames are protected but left to the Python way", NULL},
    {"state", (getter)sender_get_state, NULL,
     "(seq, offset, last, has_last, packets, octets, bytes, ntp, rtp) in fan_out", NULL},
    {"error", (getter)sender_get_error, NULL, "errno of the send that stopped, or 0", NULL},
    {"calls", (getter)sender_get_calls, NULL, "send system calls made", NULL},
    {"session", (getter)sender_get_session, NULL, "the SRTP session it protects for", NULL},
    {"cipher", (getter)sender_get_cipher, NULL,
     "'aes-gcm' or 'aes-cm-hmac-sha1': protected here (_srtp_protect.c); 'libsrtp'", NULL},
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

/* --- a frame's H.264 RTP payloads (relay/webrtc/codecs.py rtp_payloads) --------- */

#define NAL_AUD 9
#define NAL_STAP_A 24
#define NAL_FU_A 28
#define STAP_A_MOST 9 /* NAL units in one, as aiortc packs them */

/* Where "00 00 01" is in data[from:length], or -1. */
static Py_ssize_t
start_code(const unsigned char *data, Py_ssize_t length, Py_ssize_t from)
{
    for (Py_ssize_t i = from; i + 3 <= length;) {
        const unsigned char *one = memchr(data + i + 2, 1, (size_t)(length - i - 2));
        if (one == NULL)
            return -1;
        Py_ssize_t at = one - data - 2;
        if (one[-1] == 0 && one[-2] == 0)
            return at;
        i = at + 1;
    }
    return -1;
}

static int
append_bytes(PyObject *list, const unsigned char *head, Py_ssize_t head_length,
             const unsigned char *data, Py_ssize_t length)
{
    PyObject *item = PyBytes_FromStringAndSize(NULL, head_length + length);
    if (item == NULL)
        return -1;
    if (head_length)
        memcpy(PyBytes_AS_STRING(item), head, head_length);
    memcpy(PyBytes_AS_STRING(item) + head_length, data, length);
    int failed = PyList_Append(list, item);
    Py_DECREF(item);
    return failed;
}

/* h264_payloads(frame, packet_max) -> list[bytes]: an Annex-B frame's NAL units
 * (access unit delimiters left out) as RTP payloads, exactly as codecs.py's Python
 * way (aiortc's packetization, FU-A fragments of equal size but the last). */
static PyObject *
h264_payloads(PyObject *module, PyObject *args)
{
    Py_buffer frame;
    Py_ssize_t packet_max;
    if (!PyArg_ParseTuple(args, "y*n", &frame, &packet_max))
        return NULL;
    const unsigned char *data = frame.buf;
    Py_ssize_t length = frame.len, count = 0, cap = 0;
    Py_ssize_t(*nals)[2] = NULL; /* each NAL unit's start and end */
    PyObject *out = PyList_New(0);
    if (out == NULL || packet_max < 8)
        goto fail;
    /* The NAL units, as aiortc's _split_bitstream finds them. */
    for (Py_ssize_t i = start_code(data, length, 0); i >= 0;) {
        Py_ssize_t begin = i + 3, next = start_code(data, length, begin), end = length;
        if (next >= 0)
            end = data[next - 1] == 0 ? next - 1 : next; /* a 4-byte start code */
        if (end > begin && (data[begin] & 0x1f) != NAL_AUD) {
            if (count == cap) {
                cap = cap ? 2 * cap : 16;
                Py_ssize_t(*more)[2] = PyMem_Realloc(nals, cap * sizeof(*nals));
                if (more == NULL) {
                    PyErr_NoMemory();
                    goto fail;
                }
                nals = more;
            }
            nals[count][0] = begin, nals[count][1] = end;
            count++;
        }
        i = next;
    }
    /* aiortc's _packetize: FU-A for a unit too big for a packet, else STAP-A of up
     * to 9 that fit together, else the unit alone. */
    for (Py_ssize_t n = 0; n < count;) {
        const unsigned char *nal = data + nals[n][0];
        Py_ssize_t size = nals[n][1] - nals[n][0];
        if (size > packet_max) {
            Py_ssize_t piece = packet_max - 2, last = (size - 2) / piece;
            for (Py_ssize_t k = 0; k <= last; k++) {
                Py_ssize_t from = 1 + k * piece, to = from + piece < size ? from + piece : size;
                unsigned char head[2] = {(unsigned char)((nal[0] & 0xe0) | NAL_FU_A),
                                         (unsigned char)((nal[0] & 0x1f) | (k == 0 ? 0x80 : 0) |
                                                         (k == last ? 0x40 : 0))};
                if (append_bytes(out, head, 2, nal + from, to - from) < 0)
                    goto fail;
            }
            n++;
            continue;
        }
        Py_ssize_t available = packet_max - 3, taken = 0, total = 1;
        unsigned char header = (unsigned char)(NAL_STAP_A | (nal[0] & 0xe0));
        while (n + taken < count && taken < STAP_A_MOST) {
            const unsigned char *unit = data + nals[n + taken][0];
            Py_ssize_t unit_size = nals[n + taken][1] - nals[n + taken][0];
            if (unit_size > available)
                break;
            header |= unit[0] & 0x80;
            if ((header & 0x60) < (unit[0] & 0x60))
                header = (unsigned char)((header & 0x9f) | (unit[0] & 0x60));
            available -= 2 + unit_size;
            total += 2 + unit_size;
            taken++;
        }
        if (taken <= 1) { /* alone */
            if (append_bytes(out, NULL, 0, nal, size) < 0)
                goto fail;
            n++;
            continue;
        }
        PyObject *item = PyBytes_FromStringAndSize(NULL, total);
        if (item == NULL)
            goto fail;
        unsigned char *at = (unsigned char *)PyBytes_AS_STRING(item);
        *at++ = header;
        for (Py_ssize_t k = n; k < n + taken; k++) {
            Py_ssize_t unit_size = nals[k][1] - nals[k][0];
            *at++ = (unsigned char)(unit_size >> 8), *at++ = (unsigned char)unit_size;
            memcpy(at, data + nals[k][0], unit_size);
            at += unit_size;
        }
        int failed = PyList_Append(out, item);
        Py_DECREF(item);
        if (failed < 0)
            goto fail;
        n += taken;
    }
    PyMem_Free(nals);
    PyBuffer_Release(&frame);
    return out;
fail:
    if (out != NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "packet_max too small");
    PyMem_Free(nals);
    PyBuffer_Release(&frame);
    Py_XDECREF(out);
    return NULL;
}

static PyObject *
protects_here(PyObject *module, PyObject *args)
{
    int profile;
    if (!PyArg_ParseTuple(args, "i", &profile))
        return NULL;
    return PyBool_FromLong(srtp_sender_available(profile));
}

static PyMethodDef module_methods[] = {
    {"h264_payloads", h264_payloads, METH_VARARGS,
     "h264_payloads(frame, packet_max) -> list[bytes]: an Annex-B frame's RTP payloads"},
    {"protects_here", protects_here, METH_VARARGS,
     "protects_here(profile) -> bool: whether this CPU protects that SRTP profile here"
     " (_srtp_protect.c)"},
    {"fan_out", fan_out, METH_VARARGS,
     "fan_out(senders, payloads, raw, ntp, frame) -> list: a frame to a group's viewers"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sendpath", "A viewer's frames protected and sent (relay/webrtc/srtp.py).",
    -1, module_methods,
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
