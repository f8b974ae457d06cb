/*
 * Frame codec for the smolvm agent protocol (see PROTOCOL.md). Pure code: no I/O, no
 * allocation after proto_decoder_init, so the fuzz harness can drive it directly.
 */
#ifndef SMOLVM_PROTO_H
#define SMOLVM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_MAGIC0 0x53
#define PROTO_MAGIC1 0x56
#define PROTO_VERSION 1
#define PROTO_HEADER_SIZE 16
#define PROTO_MAX_PAYLOAD 65536u
#define PROTO_INITIAL_WINDOW 262144u

enum frame_type {
    FT_HELLO = 0x01,
    FT_ERROR = 0x02,
    FT_OPEN = 0x03,
    FT_CONTROL = 0x04,
    FT_CANCEL = 0x05,
    FT_EVENT = 0x06,
    FT_RESULT = 0x07,
    FT_DATA = 0x10,
    FT_WINDOW = 0x11,
};

#define FLAG_CHANNEL_MASK 0x03
#define FLAG_FIN 0x80

enum channel { CH_IN = 0, CH_OUT = 1, CH_ERR = 2 };

typedef struct {
    uint8_t type;
    uint8_t flags;
    uint32_t stream;
    uint32_t length;
    const uint8_t *payload; /* valid until the next proto_decode call */
} frame_t;

enum decode_status { PD_NEED_MORE = 0, PD_FRAME = 1, PD_ERROR = 2 };

enum decode_error {
    PE_NONE = 0,
    PE_MAGIC,
    PE_VERSION,
    PE_RESERVED,
    PE_TOO_LARGE,
};

enum decoder_state { DS_HEADER, DS_PAYLOAD, DS_HUNT };

typedef struct {
    enum decoder_state state;
    uint8_t hdr[PROTO_HEADER_SIZE];
    size_t hlen;
    frame_t cur;
    uint8_t *payload; /* PROTO_MAX_PAYLOAD bytes, only used when a frame spans reads */
    size_t plen;
    enum decode_error error;
} decoder_t;

/* Prepares a decoder; `payload_buf` must hold PROTO_MAX_PAYLOAD bytes. `hunt` starts it in
 * hunting mode (discard until a HELLO header), which is how a virtio port begins. */
void proto_decoder_init(decoder_t *d, uint8_t *payload_buf, int hunt);

/* Resets to a clean frame boundary (hunt=0) or to hunting for a HELLO header (hunt=1). */
void proto_decoder_reset(decoder_t *d, int hunt);

/*
 * Consumes bytes from buf[0..len) and stops after at most one complete frame.
 * Returns PD_FRAME with *out filled (payload points into buf when the frame was contiguous
 * there, else into the decoder's buffer), PD_NEED_MORE when all input was consumed without
 * completing a frame, or PD_ERROR on a framing error (d->error says which; the decoder is then
 * hunting). *consumed is always set; the caller calls again with the remaining bytes.
 */
enum decode_status proto_decode(decoder_t *d, const uint8_t *buf, size_t len, size_t *consumed,
                                frame_t *out);

/* Writes a 16-byte header for a frame into dst. */
void proto_put_header(uint8_t *dst, uint8_t type, uint8_t flags, uint32_t stream, uint32_t length);

/* A short text for a decode_error, for log lines and ERROR messages. */
const char *proto_error_text(enum decode_error e);

static inline uint32_t proto_get_u32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void proto_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
