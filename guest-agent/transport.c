/*
 * Transports: how host connections reach sessions and how their bytes move. A socket (a Unix
 * socket in test mode, AF_VSOCK on Firecracker) is accepted into a session that ends when the
 * host hangs up; the virtio-serial port is one session for the agent's life, which waits (polling
 * for POLLHUP to clear) for each next host. Reading decodes frames for session.c; writing flushes
 * the session's output buffer as the connection accepts it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "session.h"

#define RBUF_SIZE (128 * 1024)
#define PORT_POLL_MS 25

static session_t *g_sessions;
static uint8_t g_rbuf[RBUF_SIZE];
static int g_flush_registered;

/* ---------- connection life cycle ---------- */

static void update_interest(session_t *s) {
    if (s->h.fd < 0 || !s->connected) return;
    uint32_t ev = (s->read_paused || s->closing ? 0 : EPOLLIN) | (session_pending(s) ? EPOLLOUT : 0);
    /* A socket must stay registered to notice the peer going away. */
    if (ev == 0 && s->kind == SK_SOCKET) ev = EPOLLRDHUP;
    loop_set(&s->h, ev);
}

static void session_destroy(session_t *s) {
    session_teardown_streams(s);
    timer_cancel(&s->timer);
    loop_close(&s->h);
    if (s->prev) s->prev->next = s->next;
    else g_sessions = s->next;
    if (s->next) s->next->prev = s->prev;
    free(s->payload);
    free(s->obuf);
    s->payload = s->obuf = NULL;
    loop_defer_free(s);
}

/* The host went away: a socket session ends, a port waits for the next host. */
static void session_lost(session_t *s) {
    if (s->kind == SK_SOCKET) {
        session_destroy(s);
        return;
    }
    /* Always said: a port's host comes and goes only at boot, restore and supervisor changes, and
     * the console is the record of which side dropped a session. */
    logmsg("host disconnected from the port%s", s->helloed ? " (its session and streams ended)" : "");
    session_teardown_streams(s);
    s->helloed = 0;
    s->connected = 0;
    s->read_paused = s->data_paused = 0;
    s->ooff = s->olen = 0;
    proto_decoder_reset(&s->dec, 1);
    loop_set(&s->h, 0);
    timer_arm(&s->timer, PORT_POLL_MS);
}

static void session_flush(session_t *s) {
    if (!session_can_write(s)) return;
    while (session_pending(s) > 0) {
        ssize_t w = write(s->h.fd, s->obuf + s->ooff, session_pending(s));
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            logv("write to host: %s", strerror(errno));
            session_lost(s);
            return;
        }
        s->ooff += (size_t)w;
    }
    if (session_pending(s) == 0) {
        s->ooff = s->olen = 0;
        if (s->ocap > 8 * OUT_HARD) {
            free(s->obuf);
            s->obuf = NULL;
            s->ocap = 0;
        }
        if (s->closing) {
            session_destroy(s);
            return;
        }
    }
    if (s->read_paused && session_pending(s) < OUT_HARD / 2) s->read_paused = 0;
    update_interest(s);
    if (s->data_paused && session_pending(s) < OUT_HIGH / 2) {
        s->data_paused = 0;
        for (stream_t *st = s->streams; st; st = st->lnext)
            if (st->ops->on_resume) st->ops->on_resume(st);
    }
}

static void sessions_flush_all(void) {
    session_t *next;
    for (session_t *s = g_sessions; s; s = next) {
        next = s->next;
        if (session_pending(s) > 0 && !(s->h.events & EPOLLOUT)) session_flush(s);
    }
}

void session_flush_blocking(session_t *s, int timeout_ms) {
    int64_t end = mono_ms() + timeout_ms;
    while (session_can_write(s) && session_pending(s) > 0 && mono_ms() < end) {
        struct pollfd p = {.fd = s->h.fd, .events = POLLOUT};
        poll(&p, 1, 20);
        session_flush(s);
    }
}

static void framing_error(session_t *s) {
    if (s->kind == SK_PORT) logmsg("framing error from host: %s (hunting for the next HELLO)", proto_error_text(s->dec.error));
    else logv("framing error from host: %s", proto_error_text(s->dec.error));
    session_send_error(s, 0, 0, "BAD_FRAME", proto_error_text(s->dec.error));
    session_teardown_streams(s);
    s->helloed = 0;
    if (s->kind == SK_SOCKET && !g_cfg.socket_hunt) {
        s->closing = 1;
        timer_arm(&s->timer, 1000);
    }
    /* A port keeps hunting for the next HELLO (the decoder is already hunting). */
}

static void session_read(session_t *s) {
    if (s->read_paused || s->closing) return;
    ssize_t n = read(s->h.fd, g_rbuf, sizeof(g_rbuf));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        session_lost(s);
        return;
    }
    if (n < 0) return;
    size_t off = 0;
    while (off < (size_t)n && s->h.fd >= 0 && !s->closing && s->connected) {
        frame_t f;
        size_t used = 0;
        enum decode_status st = proto_decode(&s->dec, g_rbuf + off, (size_t)n - off, &used, &f);
        off += used;
        if (st == PD_FRAME) session_dispatch(s, &f);
        else if (st == PD_ERROR) framing_error(s);
    }
    if (session_pending(s) > OUT_HARD) s->read_paused = 1;
    update_interest(s);
}

static void session_cb(handler_t *h, uint32_t ev) {
    session_t *s = h->owner;
    if (s->kind == SK_PORT && (ev & EPOLLHUP)) {
        session_lost(s);
        return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        if (s->closing || s->read_paused) {
            if (ev & (EPOLLHUP | EPOLLERR)) session_lost(s);
        } else {
            session_read(s);
        }
    }
    if (h->fd >= 0 && (ev & EPOLLOUT)) session_flush(s);
}

static void session_timer(atimer_t *t) {
    session_t *s = t->owner;
    if (s->kind == SK_SOCKET) {
        session_destroy(s); /* a closing flush that never finished */
        return;
    }
    struct pollfd p = {.fd = s->h.fd, .events = POLLIN | POLLOUT};
    if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLNVAL))) {
        timer_arm(&s->timer, PORT_POLL_MS);
        return;
    }
    logmsg("host connected to the port");
    s->connected = 1;
    update_interest(s);
}

session_t *session_new(int fd, enum session_kind kind) {
    session_t *s = calloc(1, sizeof(*s));
    uint8_t *payload = malloc(PROTO_MAX_PAYLOAD);
    if (!s || !payload) {
        free(s);
        free(payload);
        close(fd);
        return NULL;
    }
    if (!g_flush_registered) {
        g_flush_registered = 1;
        loop_add_flush(sessions_flush_all);
    }
    s->kind = kind;
    s->payload = payload;
    proto_decoder_init(&s->dec, payload, kind == SK_PORT || g_cfg.socket_hunt);
    s->h.fd = fd;
    s->h.cb = session_cb;
    s->h.owner = s;
    s->timer.fire = session_timer;
    s->timer.owner = s;
    s->next = g_sessions;
    if (g_sessions) g_sessions->prev = s;
    g_sessions = s;
    if (kind == SK_PORT) {
        timer_arm(&s->timer, 0);
    } else {
        s->connected = 1;
        update_interest(s);
    }
    return s;
}

void sessions_teardown_all(void) {
    for (session_t *s = g_sessions; s; s = s->next) session_teardown_streams(s);
}

/* ---------- listeners ---------- */

typedef struct {
    handler_t h;
    atimer_t retry;
} listener_t;

static void listener_retry(atimer_t *t) {
    listener_t *l = t->owner;
    loop_set(&l->h, EPOLLIN);
}

static void listener_cb(handler_t *h, uint32_t ev) {
    listener_t *l = h->owner;
    (void)ev;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of spinning. */
                logmsg("accept: %s", strerror(errno));
                loop_set(h, 0);
                timer_arm(&l->retry, 100);
            }
            return;
        }
        session_new(fd, SK_SOCKET);
    }
}

static int add_listener(int fd) {
    listener_t *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return -1;
    }
    l->h.fd = fd;
    l->h.cb = listener_cb;
    l->h.owner = l;
    l->retry.fire = listener_retry;
    l->retry.owner = l;
    loop_set(&l->h, EPOLLIN);
    return 0;
}

int listen_unix(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return add_listener(fd);
}

/* The kernel's sockaddr_vm; musl ships no linux/vm_sockets.h. */
struct vsock_addr {
    sa_family_t family;
    unsigned short reserved1;
    unsigned int port;
    unsigned int cid;
    unsigned char flags;
    unsigned char zero[3];
};

int listen_vsock(unsigned port) {
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
    struct vsock_addr addr = {.family = AF_VSOCK, .port = port, .cid = 0xFFFFFFFFu /* VMADDR_CID_ANY */};
    int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(fd, 16) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return add_listener(fd);
}

int serve_port(const char *dev) {
    int fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return -1;
    return session_new(fd, SK_PORT) ? 0 : -1;
}
