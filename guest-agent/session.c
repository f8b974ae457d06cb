/*
 * Sessions: one per host connection (a Unix or vsock socket, or the virtio port while a host is
 * attached). A session dispatches the frames its transport decoded (transport.c) to operations,
 * and owns the streams they open and the output buffer all of them write into.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "session.h"

static jdoc_t g_doc;

/* ---------- output ---------- */

static uint8_t *obuf_reserve(session_t *s, size_t n) {
    if (s->olen + n <= s->ocap) return s->obuf + s->olen;
    if (s->ooff > 0) {
        memmove(s->obuf, s->obuf + s->ooff, s->olen - s->ooff);
        s->olen -= s->ooff;
        s->ooff = 0;
        if (s->olen + n <= s->ocap) return s->obuf + s->olen;
    }
    size_t cap = s->ocap ? s->ocap : 256 * 1024;
    while (cap < s->olen + n) cap *= 2;
    uint8_t *b = realloc(s->obuf, cap);
    if (!b) return NULL;
    s->obuf = b;
    s->ocap = cap;
    return s->obuf + s->olen;
}

static void send_frame(session_t *s, uint8_t type, uint8_t flags, uint32_t id, const void *p, size_t n) {
    if (!session_can_write(s)) return;
    uint8_t *dst = obuf_reserve(s, PROTO_HEADER_SIZE + n);
    if (!dst) {
        logmsg("out of memory queueing a frame: dropped");
        return;
    }
    proto_put_header(dst, type, flags, id, (uint32_t)n);
    if (n) memcpy(dst + PROTO_HEADER_SIZE, p, n);
    s->olen += PROTO_HEADER_SIZE + n;
}

void session_send_error(session_t *s, uint32_t id, uint32_t about, const char *code, const char *msg) {
    jw_t w;
    jw_init(&w);
    jw_raw(&w, "{");
    jw_key(&w, "code");
    jw_cstr(&w, code);
    jw_key(&w, "message");
    jw_cstr(&w, msg);
    if (about) {
        jw_key(&w, "stream");
        jw_int(&w, about);
    }
    jw_raw(&w, "}");
    if (!w.oom) send_frame(s, FT_ERROR, 0, id, w.buf, w.len);
    jw_free(&w);
}

/* A connection-level complaint about a frame on stream `about`: the stream itself goes on. */
static void conn_error(session_t *s, uint32_t about, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void conn_error(session_t *s, uint32_t about, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    session_send_error(s, 0, about, code, msg);
}

void reply_result(session_t *s, uint32_t id, const char *json) { send_frame(s, FT_RESULT, 0, id, json, strlen(json)); }

void reply_error(session_t *s, uint32_t id, const char *code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    session_send_error(s, id, 0, code, msg);
}

void reply_errno(session_t *s, uint32_t id, int err, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(msg)) snprintf(msg + n, sizeof(msg) - (size_t)n, ": %s", strerror(err));
    session_send_error(s, id, 0, errno_code(err), msg);
}

/* ---------- streams ---------- */

static stream_t **bucket(session_t *s, uint32_t id) { return &s->buckets[(id * 2654435761u) >> 24]; }

static stream_t *stream_find(session_t *s, uint32_t id) {
    for (stream_t *st = *bucket(s, id); st; st = st->hnext)
        if (st->id == id) return st;
    return NULL;
}

stream_t *stream_new(session_t *s, uint32_t id, size_t size, const struct stream_ops *ops) {
    stream_t *st = calloc(1, size);
    if (!st) return NULL;
    st->s = s;
    st->id = id;
    st->ops = ops;
    st->credit[CH_OUT] = st->credit[CH_ERR] = PROTO_INITIAL_WINDOW;
    st->in_allow = PROTO_INITIAL_WINDOW;
    stream_t **b = bucket(s, id);
    st->hnext = *b;
    *b = st;
    st->lnext = s->streams;
    if (s->streams) s->streams->lprev = st;
    s->streams = st;
    s->nstreams++;
    return st;
}

static void stream_remove(stream_t *st) {
    if (st->ended) return;
    session_t *s = st->s;
    st->ended = 1;
    for (stream_t **p = bucket(s, st->id); *p; p = &(*p)->hnext)
        if (*p == st) {
            *p = st->hnext;
            break;
        }
    if (st->lprev) st->lprev->lnext = st->lnext;
    else s->streams = st->lnext;
    if (st->lnext) st->lnext->lprev = st->lprev;
    s->nstreams--;
    st->ops->on_destroy(st);
    loop_defer_free(st);
}

void session_teardown_streams(session_t *s) {
    while (s->streams) stream_remove(s->streams);
}

static int has_room(const session_t *s) { return session_can_write(s) && !s->closing && session_pending(s) < OUT_HIGH; }

int stream_can_send(stream_t *st, int ch) {
    if (st->ended || st->credit[ch] == 0) return 0;
    if (!has_room(st->s)) {
        st->s->data_paused = 1;
        return 0;
    }
    return 1;
}

uint8_t *stream_data_begin(stream_t *st, int ch, size_t *max) {
    if (!stream_can_send(st, ch)) return NULL;
    size_t n = st->credit[ch] < PROTO_MAX_PAYLOAD ? st->credit[ch] : PROTO_MAX_PAYLOAD;
    uint8_t *p = obuf_reserve(st->s, PROTO_HEADER_SIZE + n);
    if (!p) return NULL;
    *max = n;
    return p + PROTO_HEADER_SIZE;
}

void stream_data_commit(stream_t *st, int ch, size_t n) {
    if (n == 0) return;
    session_t *s = st->s;
    proto_put_header(s->obuf + s->olen, FT_DATA, (uint8_t)ch, st->id, (uint32_t)n);
    s->olen += PROTO_HEADER_SIZE + n;
    st->credit[ch] -= (uint32_t)n;
}

void stream_send_fin(stream_t *st, int ch) { send_frame(st->s, FT_DATA, (uint8_t)(ch | FLAG_FIN), st->id, NULL, 0); }

void stream_consumed(stream_t *st, size_t n) {
    st->in_pending += (uint32_t)n;
    if (st->in_pending >= GRANT_BATCH && !st->ended) {
        uint8_t p[4];
        proto_put_u32(p, st->in_pending);
        send_frame(st->s, FT_WINDOW, CH_IN, st->id, p, 4);
        st->in_allow += st->in_pending;
        st->in_pending = 0;
    }
}

void stream_event(stream_t *st, const char *json) { send_frame(st->s, FT_EVENT, 0, st->id, json, strlen(json)); }

void stream_result(stream_t *st, const char *json) {
    if (st->ended) return;
    reply_result(st->s, st->id, json);
    stream_remove(st);
}

void stream_fail(stream_t *st, const char *code, const char *fmt, ...) {
    if (st->ended) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    session_send_error(st->s, st->id, 0, code, msg);
    stream_remove(st);
}

void stream_complain(stream_t *st, const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    session_send_error(st->s, 0, st->id, code, msg);
}

/* ---------- dispatch ---------- */

static const struct {
    const char *name;
    op_fn fn;
    int opens_stream; /* counts against MAX_STREAMS */
} g_ops[] = {
    {"exec", op_exec, 1},
    {"writeFile", op_write_file, 1},
    {"readFile", op_read_file, 1},
    {"forward", op_forward, 1},
    {"env.set", op_env_set, 0},
    {"env.unset", op_env_unset, 0},
    {"env.list", op_env_list, 0},
    {"ping", op_ping, 0},
    {"setTime", op_set_time, 0},
    {"reseed", op_reseed, 0},
    {"identity", op_identity, 0},
    {"sync", op_sync, 0},
    {"shutdown", op_shutdown, 0},
};

static void on_hello(session_t *s, const frame_t *f) {
    const char *nonce = NULL;
    double t = 0;
    if (f->stream != 0) {
        conn_error(s, f->stream, "BAD_REQUEST", "HELLO must be sent on stream 0");
        return;
    }
    if (json_parse(&g_doc, (const char *)f->payload, f->length) != 0 || g_doc.nodes[0].type != JT_OBJECT ||
        json_opt_str(&g_doc, 0, "nonce", &nonce) != 1 || strlen(nonce) < 1 || strlen(nonce) > 128 ||
        json_opt_num(&g_doc, 0, "timeMs", &t) < 0) {
        session_send_error(s, 0, 0, "BAD_REQUEST", "HELLO needs a JSON object with a nonce of 1 to 128 characters");
        return;
    }
    if (s->helloed) {
        logmsg("a new HELLO on a live session: its streams ended");
        session_teardown_streams(s);
    }
    if (t > 0) agent_hello_time((int64_t)t);
    s->helloed = 1;

    jw_t w;
    jw_init(&w);
    jw_raw(&w, "{\"protocol\":1,\"agentVersion\":\"" AGENT_VERSION "\"");
    jw_key(&w, "nonce");
    jw_cstr(&w, nonce);
#if defined(__x86_64__)
    jw_raw(&w, ",\"arch\":\"x86_64\"");
#elif defined(__aarch64__)
    jw_raw(&w, ",\"arch\":\"aarch64\"");
#else
    jw_raw(&w, ",\"arch\":\"unknown\"");
#endif
    jw_raw(&w, g_cfg.pid1 ? ",\"pid1\":true" : ",\"pid1\":false");
    jw_key(&w, "bootTimeMs");
    jw_int(&w, boot_ms());
    jw_raw(&w, ",\"capabilities\":[\"exec\",\"pty\",\"files\",\"env\",\"forward\",\"time\",\"reseed\",\"identity\","
               "\"sync\",\"shutdown\"],\"limits\":{\"maxFrame\":65536,\"initialWindow\":262144,\"maxStreams\":1024}}");
    if (!w.oom) send_frame(s, FT_HELLO, 0, 0, w.buf, w.len);
    jw_free(&w);

    static int first = 1;
    if (first) {
        first = 0;
        if (g_cfg.pid1) init_after_first_hello();
    }
}

static void on_open(session_t *s, const frame_t *f) {
    uint32_t id = f->stream;
    const char *op = NULL;
    if (id == 0) {
        session_send_error(s, 0, 0, "BAD_REQUEST", "OPEN needs a nonzero stream id");
        return;
    }
    if (stream_find(s, id)) {
        conn_error(s, id, "STREAM_IN_USE", "stream %u is still open", id);
        return;
    }
    if (json_parse(&g_doc, (const char *)f->payload, f->length) != 0 || g_doc.nodes[0].type != JT_OBJECT) {
        reply_error(s, id, "BAD_REQUEST", "the request is not a JSON object");
        return;
    }
    if (json_opt_str(&g_doc, 0, "op", &op) != 1) {
        reply_error(s, id, "BAD_REQUEST", "the request has no \"op\" string");
        return;
    }
    for (size_t i = 0; i < sizeof(g_ops) / sizeof(g_ops[0]); i++) {
        if (strcmp(g_ops[i].name, op) != 0) continue;
        if (g_ops[i].opens_stream && s->nstreams >= MAX_STREAMS) {
            reply_error(s, id, "TOO_MANY_STREAMS", "%d streams are open already", MAX_STREAMS);
            return;
        }
        g_ops[i].fn(s, id, &g_doc);
        return;
    }
    reply_error(s, id, "UNKNOWN_OP", "unknown operation \"%.64s\"", op);
}

static void on_data(session_t *s, const frame_t *f) {
    if ((f->flags & FLAG_CHANNEL_MASK) != CH_IN) {
        conn_error(s, f->stream, "BAD_REQUEST", "the host may only send DATA on channel 0");
        return;
    }
    stream_t *st = stream_find(s, f->stream);
    if (!st) return;
    if (f->length > st->in_allow) {
        stream_fail(st, "FLOW_CONTROL", "%u bytes sent with only %u bytes of credit", f->length, st->in_allow);
        return;
    }
    st->in_allow -= f->length;
    if (st->ops->on_data) st->ops->on_data(st, f->payload, f->length, (f->flags & FLAG_FIN) != 0);
    else stream_consumed(st, f->length);
}

static void on_window(session_t *s, const frame_t *f) {
    int ch = f->flags & FLAG_CHANNEL_MASK;
    if (f->length != 4 || (ch != CH_OUT && ch != CH_ERR)) {
        conn_error(s, f->stream, "BAD_REQUEST", "WINDOW needs a 4-byte payload and channel 1 or 2");
        return;
    }
    stream_t *st = stream_find(s, f->stream);
    if (!st) return;
    uint32_t add = proto_get_u32(f->payload);
    st->credit[ch] = add > UINT32_MAX - st->credit[ch] ? UINT32_MAX : st->credit[ch] + add;
    if (st->ops->on_resume) st->ops->on_resume(st);
}

static void on_control(session_t *s, const frame_t *f) {
    stream_t *st = stream_find(s, f->stream);
    if (!st) return;
    if (json_parse(&g_doc, (const char *)f->payload, f->length) != 0 || g_doc.nodes[0].type != JT_OBJECT) {
        conn_error(s, f->stream, "BAD_REQUEST", "the control message is not a JSON object");
        return;
    }
    if (!st->ops->on_control) {
        conn_error(s, f->stream, "BAD_REQUEST", "this stream takes no control messages");
        return;
    }
    st->ops->on_control(st, &g_doc);
}

void session_dispatch(session_t *s, const frame_t *f) {
    if (f->type == FT_HELLO) {
        on_hello(s, f);
        return;
    }
    if (!s->helloed) {
        session_send_error(s, f->type == FT_OPEN ? f->stream : 0, 0, "HELLO_REQUIRED", "the host must send HELLO first");
        return;
    }
    switch (f->type) {
    case FT_OPEN: on_open(s, f); break;
    case FT_DATA: on_data(s, f); break;
    case FT_WINDOW: on_window(s, f); break;
    case FT_CONTROL: on_control(s, f); break;
    case FT_CANCEL: {
        stream_t *st = stream_find(s, f->stream);
        if (st) stream_fail(st, "CANCELLED", "cancelled by the host");
        break;
    }
    case FT_ERROR:
    case FT_EVENT:
    case FT_RESULT:
        conn_error(s, f->stream, "BAD_REQUEST", "frame type 0x%02x only flows from the agent to the host", f->type);
        break;
    default: conn_error(s, f->stream, "UNKNOWN_TYPE", "unknown frame type 0x%02x", f->type); break;
    }
}
