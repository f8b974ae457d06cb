/*
 * forward: a TCP connection from the agent to a port inside the guest, spliced onto a stream.
 * Each direction half-closes on its own: the host's FIN becomes shutdown(SHUT_WR) once queued
 * bytes are written, the socket's EOF becomes a FIN on channel 1, and the stream ends when both
 * have happened.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"

typedef struct {
    stream_t st;
    handler_t h;
    int connecting;
    inq_t inq;
    int host_fin; /* the host has no more bytes for the socket */
    int wr_shut;  /* ...and they are all written, write side shut */
    int rd_eof;   /* the socket's EOF was passed on */
    int port;
} fwd_t;

static void fwd_update(fwd_t *f) {
    if (f->st.ended || f->h.fd < 0) return;
    uint32_t ev = 0;
    if (f->connecting) ev = EPOLLOUT;
    else {
        if (!f->rd_eof && stream_can_send(&f->st, CH_OUT)) ev |= EPOLLIN;
        if (f->inq.bytes) ev |= EPOLLOUT;
    }
    loop_set(&f->h, ev);
}

static void fwd_maybe_done(fwd_t *f) {
    if (!f->st.ended && f->rd_eof && f->wr_shut) stream_result(&f->st, "{}");
}

static void fwd_settle_write(fwd_t *f) {
    if (f->connecting || f->inq.bytes || !f->host_fin || f->wr_shut) return;
    shutdown(f->h.fd, SHUT_WR);
    f->wr_shut = 1;
    fwd_maybe_done(f);
}

static void fwd_write(fwd_t *f) {
    size_t before = f->inq.bytes;
    ssize_t r = inq_drain(&f->inq, f->h.fd);
    stream_consumed(&f->st, before - f->inq.bytes);
    if (r < 0) {
        int e = errno;
        stream_fail(&f->st, "IO_ERROR", "connection to port %d broke: %s", f->port, strerror(e));
        return;
    }
    fwd_settle_write(f);
}

static void fwd_read(fwd_t *f) {
    size_t max;
    uint8_t *p = stream_data_begin(&f->st, CH_OUT, &max);
    if (!p) return;
    ssize_t n = read(f->h.fd, p, max);
    if (n > 0) {
        stream_data_commit(&f->st, CH_OUT, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0) {
        int e = errno;
        stream_fail(&f->st, "IO_ERROR", "connection to port %d broke: %s", f->port, strerror(e));
        return;
    }
    f->rd_eof = 1;
    stream_send_fin(&f->st, CH_OUT);
    fwd_maybe_done(f);
}

static void fwd_cb(handler_t *h, uint32_t ev) {
    fwd_t *f = h->owner;
    if (f->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(h->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            stream_fail(&f->st, err == ECONNREFUSED ? "CONNECTION_REFUSED" : errno_code(err),
                        "cannot connect to port %d in the guest: %s", f->port, strerror(err));
            return;
        }
        f->connecting = 0;
        stream_event(&f->st, "{\"event\":\"connected\"}");
        fwd_settle_write(f);
    } else {
        if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) fwd_read(f);
        if (!f->st.ended && (ev & EPOLLOUT)) fwd_write(f);
    }
    fwd_update(f);
}

static void fwd_on_data(stream_t *st, const uint8_t *p, size_t n, int fin) {
    fwd_t *f = (fwd_t *)st;
    if (f->wr_shut || f->host_fin) {
        stream_consumed(st, n); /* bytes after the half-close have nowhere to go */
        return;
    }
    if (n && inq_push(&f->inq, p, n) != 0) {
        stream_fail(st, "INTERNAL", "out of memory buffering forward data");
        return;
    }
    if (fin) f->host_fin = 1;
    if (!f->connecting) fwd_write(f);
    fwd_update(f);
}

static void fwd_on_resume(stream_t *st) { fwd_update((fwd_t *)st); }

static void fwd_on_destroy(stream_t *st) {
    fwd_t *f = (fwd_t *)st;
    loop_close(&f->h);
    inq_clear(&f->inq);
}

static const struct stream_ops fwd_ops = {
    .on_data = fwd_on_data,
    .on_resume = fwd_on_resume,
    .on_destroy = fwd_on_destroy,
};

void op_forward(session_t *s, uint32_t id, const jdoc_t *doc) {
    int64_t port = 0;
    const char *host = NULL;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    if (json_opt_int(doc, 0, "port", 1, 65535, &port) != 1 || json_opt_str(doc, 0, "host", &host) < 0 ||
        inet_pton(AF_INET, host ? host : "127.0.0.1", &addr.sin_addr) != 1) {
        reply_error(s, id, "BAD_REQUEST", "forward needs a port from 1 to 65535 and an optional IPv4 host");
        return;
    }
    addr.sin_port = htons((uint16_t)port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        reply_errno(s, id, errno, "cannot create a socket");
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        reply_error(s, id, e == ECONNREFUSED ? "CONNECTION_REFUSED" : errno_code(e),
                    "cannot connect to port %d in the guest: %s", (int)port, strerror(e));
        return;
    }
    fwd_t *f = (fwd_t *)stream_new(s, id, sizeof(fwd_t), &fwd_ops);
    if (!f) {
        close(fd);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    f->h.fd = fd;
    f->h.cb = fwd_cb;
    f->h.owner = f;
    f->port = (int)port;
    if (rc == 0) stream_event(&f->st, "{\"event\":\"connected\"}");
    else f->connecting = 1;
    fwd_update(f);
}
