/*
 * The inside of a session, shared by the multiplexer (session.c) and the transports that read
 * and write its connection (transport.c). Nothing else includes this.
 */
#ifndef SMOLVM_SESSION_H
#define SMOLVM_SESSION_H

#include "agent.h"

#define NBUCKETS 256

struct session {
    handler_t h;
    enum session_kind kind;
    int connected; /* a port has a host attached; sockets always do */
    int helloed;
    int closing;     /* socket: close as soon as the output is flushed */
    int read_paused; /* our own output is backed up past OUT_HARD */
    int data_paused; /* a source was refused for room; resume them all once drained */
    decoder_t dec;
    uint8_t *payload;
    uint8_t *obuf;
    size_t ooff, olen, ocap;
    stream_t *buckets[NBUCKETS];
    stream_t *streams;
    unsigned nstreams;
    atimer_t timer; /* port: reconnect polling; socket: deadline for a closing flush */
    session_t *next, *prev;
};

/* Bytes queued for the host and not written yet. */
static inline size_t session_pending(const session_t *s) { return s->olen - s->ooff; }
/* A host is there to write to (a socket always; a port once a host attached). */
static inline int session_can_write(const session_t *s) { return s->h.fd >= 0 && s->connected; }

/* An ERROR frame on stream `id` (0: about the connection, naming stream `about`). */
void session_send_error(session_t *s, uint32_t id, uint32_t about, const char *code, const char *msg);
/* Ends every stream of the session (the host went away, or started over with a new HELLO). */
void session_teardown_streams(session_t *s);
/* Hands one decoded frame to its handler. */
void session_dispatch(session_t *s, const frame_t *f);

#endif
