/*
 * Seeded random-frame fuzzer for the frame decoder and the JSON reader (no libFuzzer here).
 * Built with ASan and UBSan by `make fuzz`; any memory error or UB aborts the run.
 *
 *   fuzz-frames [frames=1000000] [seed=1]
 *
 * Each round builds a byte stream from valid frames, corrupted headers, truncations, oversized
 * lengths and garbage, and feeds it to the decoder in random-sized chunks. Oracles:
 *  - clean rounds: frames come out exactly as they went in, whatever the chunking;
 *  - every round ends with the resync pad and a HELLO carrying a fresh nonce, which the decoder
 *    must find however broken the stream before it was;
 *  - every payload goes through json_parse, and parsed documents through the accessors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proto.h"

static uint64_t g_rng;

static uint64_t rnd(void) {
    g_rng ^= g_rng >> 12;
    g_rng ^= g_rng << 25;
    g_rng ^= g_rng >> 27;
    return g_rng * 2685821657736338717ULL;
}

static uint32_t below(uint32_t n) { return n ? (uint32_t)(rnd() % n) : 0; }

#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        fprintf(stderr, "fuzz-frames: " __VA_ARGS__);                                                                  \
        fprintf(stderr, " (seed %llu)\n", (unsigned long long)g_seed);                                                 \
        abort();                                                                                                       \
    } while (0)

static unsigned long long g_seed;

typedef struct {
    uint8_t *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static const char *g_templates[] = {
    "{\"op\":\"exec\",\"argv\":[\"sh\",\"-c\",\"echo hi\"],\"env\":{\"A\":\"1\"},\"cwd\":\"/root\",\"stdin\":true,"
    "\"timeoutMs\":1000,\"pty\":{\"rows\":24,\"cols\":80,\"term\":\"xterm\"}}",
    "{\"op\":\"writeFile\",\"path\":\"/tmp/a\",\"mode\":420,\"mkdirParents\":true}",
    "{\"op\":\"readFile\",\"path\":\"/etc/hostname\"}",
    "{\"op\":\"env.set\",\"vars\":{\"X\":\"a b'c$d\\n\\u00e9\\ud83d\\ude00\"}}",
    "{\"op\":\"env.unset\",\"names\":[\"X\",\"Y\"]}",
    "{\"op\":\"forward\",\"port\":8080,\"host\":\"127.0.0.1\"}",
    "{\"op\":\"ping\"}",
    "{\"op\":\"setTime\",\"timeMs\":1.7e12}",
    "{\"op\":\"reseed\",\"data\":\"aGVsbG8gd29ybGQ=\"}",
    "{\"op\":\"signal\",\"signal\":\"TERM\"}",
    "{\"op\":\"resize\",\"rows\":-1,\"cols\":1e400}",
    "{\"protocol\":1,\"nonce\":\"abc\",\"timeMs\":123}",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    "{\"a\":[1,2.5e-3,-0,true,false,null,\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]}",
};
#define NTEMPLATES (sizeof(g_templates) / sizeof(g_templates[0]))

/* A JSON-ish payload: a template, mutated a little or a lot. */
static size_t gen_json(uint8_t *out, size_t cap) {
    const char *t = g_templates[below(NTEMPLATES)];
    size_t n = strlen(t);
    if (n > cap) n = cap;
    memcpy(out, t, n);
    uint32_t muts = below(4) == 0 ? 0 : below(8);
    for (uint32_t i = 0; i < muts && n > 0; i++) {
        uint32_t at = below((uint32_t)n);
        switch (below(5)) {
        case 0: out[at] = (uint8_t)rnd(); break;
        case 1: out[at] ^= (uint8_t)(1u << below(8)); break;
        case 2: n = at; break; /* truncate */
        case 3:                /* duplicate a span */
            if (n * 2 < cap) {
                memcpy(out + n, out, n);
                n *= 2;
            }
            break;
        case 4: out[at] = "{}[]\",:\\u0"[below(11)]; break;
        }
    }
    return n;
}

static void json_exercise(const uint8_t *p, size_t n) {
    static jdoc_t doc;
    if (json_parse(&doc, (const char *)p, n) != 0) return;
    const char *s;
    double d;
    int b;
    int64_t i;
    json_opt_str(&doc, 0, "op", &s);
    json_opt_str(&doc, 0, "nonce", &s);
    json_opt_num(&doc, 0, "timeMs", &d);
    json_opt_bool(&doc, 0, "stdin", &b);
    json_opt_int(&doc, 0, "mode", 0, 07777, &i);
    json_opt_int(&doc, 0, "timeoutMs", 0, INT64_C(1) << 40, &i);
    for (size_t k = 0; k < doc.n; k++) {
        if (doc.nodes[k].type == JT_STRING) {
            json_is_cstr(&doc, (int)k);
            jw_t w;
            jw_init(&w);
            jw_str(&w, json_str_at(&doc, (int)k), doc.nodes[k].str_len);
            /* What the writer escapes must parse back to the same bytes. */
            static jdoc_t back;
            if (!w.oom && json_parse(&back, w.buf, w.len) == 0) {
                if (back.nodes[0].type != JT_STRING || back.nodes[0].str_len != doc.nodes[k].str_len ||
                    memcmp(json_str_at(&back, 0), json_str_at(&doc, (int)k), doc.nodes[k].str_len) != 0)
                    FAIL("JSON string did not survive a write/parse round trip");
            } else if (!w.oom) {
                FAIL("JSON writer produced something the reader rejects");
            }
            jw_free(&w);
        }
    }
}

typedef struct {
    uint8_t type, flags;
    uint32_t stream, len;
    uint32_t sum;
} expect_t;

static uint32_t checksum(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static uint8_t g_payload[PROTO_MAX_PAYLOAD + 64];

/* Appends one valid frame; returns its expectation. */
static expect_t gen_valid(buf_t *b) {
    expect_t e;
    static const uint8_t types[] = {FT_HELLO, FT_ERROR, FT_OPEN, FT_CONTROL, FT_CANCEL, FT_EVENT, FT_RESULT,
                                    FT_DATA,  FT_WINDOW, 0x00, 0x7f, 0x80, 0xff};
    e.type = types[below(sizeof(types))];
    e.flags = (uint8_t)(below(2) ? below(3) | (below(2) ? FLAG_FIN : 0) : rnd());
    e.stream = below(4) ? below(64) : (uint32_t)rnd();
    uint32_t kind = below(100);
    if (kind < 45) e.len = (uint32_t)gen_json(g_payload, sizeof(g_payload));
    else if (kind < 90) e.len = below(256);
    else if (kind < 98) e.len = below(8192);
    else e.len = below(PROTO_MAX_PAYLOAD + 1);
    if (kind >= 45)
        for (uint32_t i = 0; i < e.len; i++) g_payload[i] = (uint8_t)rnd();
    uint8_t h[PROTO_HEADER_SIZE];
    proto_put_header(h, e.type, e.flags, e.stream, e.len);
    put(b, h, sizeof(h));
    put(b, g_payload, e.len);
    e.sum = checksum(g_payload, e.len);
    return e;
}

/* Appends something broken. */
static void gen_broken(buf_t *b) {
    uint8_t h[PROTO_HEADER_SIZE];
    proto_put_header(h, (uint8_t)rnd(), 0, below(16), below(64));
    switch (below(6)) {
    case 0: h[below(3)] ^= (uint8_t)(1 + below(255)); break;         /* magic or version */
    case 1: h[5 + below(3)] = (uint8_t)(1 + below(255)); break;      /* reserved */
    case 2: proto_put_u32(h + 12, PROTO_MAX_PAYLOAD + 1 + below(1u << 30)); break; /* oversized */
    case 3: put(b, h, below(PROTO_HEADER_SIZE)); return;              /* truncated header */
    case 4: {                                                         /* garbage */
        uint32_t n = below(512);
        for (uint32_t i = 0; i < n; i++) {
            uint8_t c = below(4) ? (uint8_t)rnd() : (uint8_t)"SV\x01\x01"[below(4)];
            put(b, &c, 1);
        }
        return;
    }
    case 5: /* a HELLO-looking header with a bad length, the hunter's trap */
        proto_put_header(h, FT_HELLO, 0, 0, PROTO_MAX_PAYLOAD + 1 + below(1000));
        break;
    }
    put(b, h, sizeof(h));
}

int main(int argc, char **argv) {
    unsigned long long frames = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000ULL;
    g_seed = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    g_rng = g_seed * 0x9E3779B97F4A7C15ULL + 1;

    static uint8_t dec_payload[PROTO_MAX_PAYLOAD];
    decoder_t d;
    buf_t stream = {0};
    expect_t *expect = malloc(sizeof(expect_t) * 256);
    unsigned long long done = 0, rounds = 0, decoded = 0, errors = 0;
    if (!expect) abort();

    while (done < frames) {
        int clean = below(2) == 0;
        stream.len = 0;
        size_t nexp = 0;
        uint32_t count = 1 + below(200);
        for (uint32_t i = 0; i < count; i++) {
            if (!clean && below(5) == 0) {
                gen_broken(&stream);
                if (below(2)) { /* give the hunter something to find, so decoding resumes */
                    uint8_t hh[PROTO_HEADER_SIZE];
                    size_t n = gen_json(g_payload, 256);
                    proto_put_header(hh, FT_HELLO, 0, 0, (uint32_t)n);
                    put(&stream, hh, sizeof(hh));
                    put(&stream, g_payload, n);
                }
            } else {
                expect[nexp++] = gen_valid(&stream);
            }
        }
        done += count;
        /* Resync oracle: pad, then a HELLO with this round's nonce. */
        static uint8_t pad[PROTO_MAX_PAYLOAD + PROTO_HEADER_SIZE];
        put(&stream, pad, sizeof(pad));
        char hello[64];
        int hl = snprintf(hello, sizeof(hello), "{\"nonce\":\"round-%llu\"}", rounds);
        uint8_t h[PROTO_HEADER_SIZE];
        proto_put_header(h, FT_HELLO, 0, 0, (uint32_t)hl);
        put(&stream, h, sizeof(h));
        put(&stream, hello, (size_t)hl);

        proto_decoder_init(&d, dec_payload, below(2));
        if (clean) d.state = DS_HEADER;
        size_t off = 0, got = 0;
        int saw_hello = 0;
        while (off < stream.len) {
            size_t chunk = below(4) ? 1 + below(64) : 1 + below(70000);
            if (chunk > stream.len - off) chunk = stream.len - off;
            size_t coff = 0;
            while (coff < chunk) {
                frame_t f;
                size_t used = 0;
                enum decode_status st = proto_decode(&d, stream.p + off + coff, chunk - coff, &used, &f);
                if (used > chunk - coff) FAIL("decoder consumed more than it was given");
                if (used == 0 && st == PD_NEED_MORE) FAIL("decoder made no progress");
                coff += used;
                if (st == PD_ERROR) {
                    errors++;
                    /* The pad itself is a framing error; anything before it is not. */
                    if (clean && got < nexp) FAIL("framing error in a clean stream");
                    continue;
                }
                if (st != PD_FRAME) continue;
                decoded++;
                if (f.length > PROTO_MAX_PAYLOAD) FAIL("frame longer than the maximum");
                json_exercise(f.payload, f.length);
                if (f.type == FT_HELLO && f.stream == 0 && f.length == (uint32_t)hl &&
                    memcmp(f.payload, hello, (size_t)hl) == 0)
                    saw_hello = 1;
                if (clean && got < nexp) {
                    expect_t *e = &expect[got++];
                    if (e->type != f.type || e->flags != f.flags || e->stream != f.stream || e->len != f.length ||
                        e->sum != checksum(f.payload, f.length))
                        FAIL("clean frame %zu came out different", got - 1);
                }
            }
            off += chunk;
        }
        if (clean && got != nexp) FAIL("clean round decoded %zu of %zu frames", got, nexp);
        if (!saw_hello) FAIL("decoder did not resynchronise on the HELLO after the pad (round %llu)", rounds);
        rounds++;
    }
    printf("fuzz-frames: %llu frames in %llu rounds, %llu decoded, %llu framing errors, seed %llu: ok\n", done, rounds,
           decoded, errors, g_seed);
    free(stream.p);
    free(expect);
    return 0;
}
