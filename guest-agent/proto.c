/*
 * Incremental frame decoder and header encoder. The decoder never trusts a length before the
 * rest of the header checked out, never copies more than PROTO_MAX_PAYLOAD, and after a framing
 * error hunts for a HELLO header so a virtio port can resynchronise (PROTOCOL.md, "Reconnecting
 * mid-stream").
 */
#include "proto.h"

#include <string.h>

void proto_decoder_init(decoder_t *d, uint8_t *payload_buf, int hunt) {
    memset(d, 0, sizeof(*d));
    d->payload = payload_buf;
    proto_decoder_reset(d, hunt);
}

void proto_decoder_reset(decoder_t *d, int hunt) {
    d->state = hunt ? DS_HUNT : DS_HEADER;
    d->hlen = 0;
    d->plen = 0;
    d->error = PE_NONE;
}

void proto_put_header(uint8_t *dst, uint8_t type, uint8_t flags, uint32_t stream, uint32_t length) {
    dst[0] = PROTO_MAGIC0;
    dst[1] = PROTO_MAGIC1;
    dst[2] = PROTO_VERSION;
    dst[3] = type;
    dst[4] = flags;
    dst[5] = dst[6] = dst[7] = 0;
    proto_put_u32(dst + 8, stream);
    proto_put_u32(dst + 12, length);
}

const char *proto_error_text(enum decode_error e) {
    switch (e) {
    case PE_MAGIC: return "bad magic";
    case PE_VERSION: return "unsupported frame version";
    case PE_RESERVED: return "reserved header bytes are not zero";
    case PE_TOO_LARGE: return "payload length exceeds 65536";
    case PE_NONE: break;
    }
    return "no error";
}

/* Checks a complete header and fills f; PE_NONE when it is acceptable. */
static enum decode_error parse_header(const uint8_t *h, frame_t *f) {
    if (h[0] != PROTO_MAGIC0 || h[1] != PROTO_MAGIC1) return PE_MAGIC;
    if (h[2] != PROTO_VERSION) return PE_VERSION;
    if (h[5] | h[6] | h[7]) return PE_RESERVED;
    f->type = h[3];
    f->flags = h[4];
    f->stream = proto_get_u32(h + 8);
    f->length = proto_get_u32(h + 12);
    if (f->length > PROTO_MAX_PAYLOAD) return PE_TOO_LARGE;
    return PE_NONE;
}

/* While hunting only a HELLO header on stream 0 is accepted: 12 fixed bytes, then a length
 * of at most PROTO_MAX_PAYLOAD. True when hdr[0..n) can still become one. */
static int hunt_prefix_ok(const uint8_t *h, size_t n) {
    static const uint8_t fixed[12] = {PROTO_MAGIC0, PROTO_MAGIC1, PROTO_VERSION, FT_HELLO, 0, 0, 0, 0,
                                      0, 0, 0, 0};
    for (size_t i = 0; i < n && i < 12; i++)
        if (h[i] != fixed[i]) return 0;
    if (n > 12 && h[12] != 0) return 0;
    if (n > 13 && h[13] > 1) return 0;
    if (n > 14 && h[13] == 1 && h[14] != 0) return 0;
    if (n > 15 && h[13] == 1 && h[15] != 0) return 0;
    return 1;
}

/* Drops leading bytes of the hunt buffer until what is left could start a HELLO header. */
static void hunt_shift(decoder_t *d) {
    do {
        memmove(d->hdr, d->hdr + 1, d->hlen - 1);
        d->hlen--;
    } while (d->hlen > 0 && !hunt_prefix_ok(d->hdr, d->hlen));
}

/* Starts collecting the payload of d->cur; returns PD_FRAME if it is already complete. */
static enum decode_status begin_payload(decoder_t *d, const uint8_t *buf, size_t len, size_t *i,
                                        frame_t *out) {
    size_t avail = len - *i;
    if (avail >= d->cur.length) {
        *out = d->cur;
        out->payload = buf + *i;
        *i += d->cur.length;
        d->state = DS_HEADER;
        d->hlen = 0;
        return PD_FRAME;
    }
    memcpy(d->payload, buf + *i, avail);
    d->plen = avail;
    *i = len;
    d->state = DS_PAYLOAD;
    return PD_NEED_MORE;
}

enum decode_status proto_decode(decoder_t *d, const uint8_t *buf, size_t len, size_t *consumed,
                                frame_t *out) {
    size_t i = 0;
    enum decode_status st;
    while (i < len) {
        switch (d->state) {
        case DS_HUNT:
            if (d->hlen == 0) {
                const uint8_t *p = memchr(buf + i, PROTO_MAGIC0, len - i);
                if (!p) {
                    i = len;
                    break;
                }
                i = (size_t)(p - buf);
            }
            d->hdr[d->hlen++] = buf[i++];
            if (!hunt_prefix_ok(d->hdr, d->hlen)) {
                hunt_shift(d);
                break;
            }
            if (d->hlen < PROTO_HEADER_SIZE) break;
            parse_header(d->hdr, &d->cur); /* cannot fail: the pattern implies a valid header */
            d->hlen = 0;
            st = begin_payload(d, buf, len, &i, out);
            if (st == PD_FRAME) {
                *consumed = i;
                return st;
            }
            break;
        case DS_HEADER:
            if (d->hlen == 0 && len - i >= PROTO_HEADER_SIZE) {
                enum decode_error e = parse_header(buf + i, &d->cur);
                if (e != PE_NONE) {
                    /* Consume only the first bad byte: hunting rescans the rest, so a HELLO
                     * that starts inside them is still found. */
                    d->error = e;
                    d->state = DS_HUNT;
                    *consumed = i + 1;
                    return PD_ERROR;
                }
                i += PROTO_HEADER_SIZE;
            } else {
                size_t n = PROTO_HEADER_SIZE - d->hlen;
                if (n > len - i) n = len - i;
                memcpy(d->hdr + d->hlen, buf + i, n);
                d->hlen += n;
                i += n;
                if (d->hlen < PROTO_HEADER_SIZE) break;
                enum decode_error e = parse_header(d->hdr, &d->cur);
                if (e != PE_NONE) {
                    d->error = e;
                    d->state = DS_HUNT;
                    hunt_shift(d);
                    *consumed = i;
                    return PD_ERROR;
                }
                d->hlen = 0;
            }
            st = begin_payload(d, buf, len, &i, out);
            if (st == PD_FRAME) {
                *consumed = i;
                return st;
            }
            break;
        case DS_PAYLOAD: {
            size_t n = d->cur.length - d->plen;
            if (n > len - i) n = len - i;
            memcpy(d->payload + d->plen, buf + i, n);
            d->plen += n;
            i += n;
            if (d->plen == d->cur.length) {
                *out = d->cur;
                out->payload = d->payload;
                d->state = DS_HEADER;
                d->hlen = 0;
                *consumed = i;
                return PD_FRAME;
            }
            break;
        }
        }
    }
    *consumed = i;
    return PD_NEED_MORE;
}
