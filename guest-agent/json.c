/*
 * JSON for control messages. Input is at most one frame (64 KiB) and comes from the host, so
 * everything is bounds-checked and recursion is capped.
 */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 32

typedef struct {
    jdoc_t *doc;
    const char *p, *end;
} parser_t;

static int new_node(parser_t *ps, uint8_t type) {
    jdoc_t *d = ps->doc;
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        jnode_t *n = realloc(d->nodes, cap * sizeof(*n));
        if (!n) return -1;
        d->nodes = n;
        d->cap = cap;
    }
    memset(&d->nodes[d->n], 0, sizeof(jnode_t));
    d->nodes[d->n].type = type;
    return (int)d->n++;
}

static void skip_ws(parser_t *ps) {
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(char **o, unsigned cp) {
    char *q = *o;
    if (cp < 0x80) *q++ = (char)cp;
    else if (cp < 0x800) {
        *q++ = (char)(0xC0 | (cp >> 6));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *q++ = (char)(0xE0 | (cp >> 12));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *q++ = (char)(0xF0 | (cp >> 18));
        *q++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *q++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *q++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = q;
}

/* Decodes the string at ps->p (which is at the opening quote) into doc->strs. The decoded form
 * is never longer than the source, and scap >= source length + 1, so no bounds checks on o. */
static int parse_string(parser_t *ps, uint32_t *off, uint32_t *len) {
    jdoc_t *d = ps->doc;
    ps->p++;
    char *start = d->strs + d->slen, *o = start;
    while (ps->p < ps->end) {
        unsigned char c = (unsigned char)*ps->p++;
        if (c == '"') {
            *o = 0;
            *off = (uint32_t)d->slen;
            *len = (uint32_t)(o - start);
            d->slen += (size_t)(o - start) + 1;
            return 0;
        }
        if (c < 0x20) return -1;
        if (c != '\\') {
            *o++ = (char)c;
            continue;
        }
        if (ps->p >= ps->end) return -1;
        c = (unsigned char)*ps->p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (ps->end - ps->p < 4 || hex4(ps->p, &cp)) return -1;
            ps->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u' || hex4(ps->p + 2, &lo) ||
                    lo < 0xDC00 || lo >= 0xE000)
                    return -1;
                ps->p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                return -1;
            }
            put_utf8(&o, cp);
            break;
        }
        default: return -1;
        }
    }
    return -1;
}

static int parse_number(parser_t *ps, double *out) {
    const char *s = ps->p;
    if (ps->p < ps->end && *ps->p == '-') ps->p++;
    if (ps->p >= ps->end) return -1;
    if (*ps->p == '0') ps->p++;
    else if (*ps->p >= '1' && *ps->p <= '9')
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    else return -1;
    if (ps->p < ps->end && *ps->p == '.') {
        ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return -1;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        if (ps->p >= ps->end || *ps->p < '0' || *ps->p > '9') return -1;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    }
    char tmp[64];
    size_t n = (size_t)(ps->p - s);
    if (n >= sizeof(tmp)) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    return 0;
}

static int parse_literal(parser_t *ps, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0) return -1;
    ps->p += n;
    return 0;
}

static int parse_value(parser_t *ps, int depth);

/* Parses the members or elements of a container whose opening bracket was consumed. */
static int parse_container(parser_t *ps, int self, int depth, int is_obj) {
    char close = is_obj ? '}' : ']';
    uint32_t prev = 0;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
        return 0;
    }
    for (;;) {
        uint32_t koff = 0, klen = 0;
        skip_ws(ps);
        if (is_obj) {
            if (ps->p >= ps->end || *ps->p != '"' || parse_string(ps, &koff, &klen)) return -1;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') return -1;
            ps->p++;
        }
        int child = parse_value(ps, depth + 1);
        if (child < 0) return -1;
        jnode_t *nodes = ps->doc->nodes;
        nodes[child].key = koff;
        nodes[child].key_len = klen;
        if (prev) nodes[prev].next = (uint32_t)child;
        else nodes[self].child = (uint32_t)child;
        prev = (uint32_t)child;
        skip_ws(ps);
        if (ps->p >= ps->end) return -1;
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == close) {
            ps->p++;
            return 0;
        }
        return -1;
    }
}

static int parse_value(parser_t *ps, int depth) {
    if (depth > MAX_DEPTH) return -1;
    skip_ws(ps);
    if (ps->p >= ps->end) return -1;
    int idx;
    switch (*ps->p) {
    case '{':
    case '[': {
        int is_obj = *ps->p == '{';
        ps->p++;
        if ((idx = new_node(ps, is_obj ? JT_OBJECT : JT_ARRAY)) < 0) return -1;
        if (parse_container(ps, idx, depth, is_obj)) return -1;
        return idx;
    }
    case '"': {
        uint32_t off, len;
        if ((idx = new_node(ps, JT_STRING)) < 0) return -1;
        if (parse_string(ps, &off, &len)) return -1;
        ps->doc->nodes[idx].str = off;
        ps->doc->nodes[idx].str_len = len;
        return idx;
    }
    case 't':
        if (parse_literal(ps, "true")) return -1;
        return new_node(ps, JT_TRUE);
    case 'f':
        if (parse_literal(ps, "false")) return -1;
        return new_node(ps, JT_FALSE);
    case 'n':
        if (parse_literal(ps, "null")) return -1;
        return new_node(ps, JT_NULL);
    default: {
        double v;
        if (parse_number(ps, &v)) return -1;
        if ((idx = new_node(ps, JT_NUMBER)) < 0) return -1;
        ps->doc->nodes[idx].num = v;
        return idx;
    }
    }
}

int json_parse(jdoc_t *doc, const char *src, size_t len) {
    doc->n = 0;
    doc->slen = 0;
    if (doc->scap < len + 1) {
        char *s = realloc(doc->strs, len + 1);
        if (!s) return -1;
        doc->strs = s;
        doc->scap = len + 1;
    }
    parser_t ps = {doc, src, src + len};
    if (parse_value(&ps, 0) != 0) return -1;
    skip_ws(&ps);
    return ps.p == ps.end ? 0 : -1;
}

void json_free(jdoc_t *doc) {
    free(doc->nodes);
    free(doc->strs);
    memset(doc, 0, sizeof(*doc));
}

int json_find(const jdoc_t *doc, int obj, const char *key) {
    if (obj < 0 || (size_t)obj >= doc->n || doc->nodes[obj].type != JT_OBJECT) return -1;
    size_t klen = strlen(key);
    for (uint32_t c = doc->nodes[obj].child; c; c = doc->nodes[c].next) {
        const jnode_t *n = &doc->nodes[c];
        if (n->key_len == klen && memcmp(doc->strs + n->key, key, klen) == 0) return (int)c;
    }
    return -1;
}

int json_is_cstr(const jdoc_t *doc, int idx) {
    const jnode_t *n = &doc->nodes[idx];
    return n->type == JT_STRING && strlen(doc->strs + n->str) == n->str_len;
}

int json_opt_str(const jdoc_t *doc, int obj, const char *key, const char **out) {
    int i = json_find(doc, obj, key);
    *out = NULL;
    if (i < 0 || doc->nodes[i].type == JT_NULL) return 0;
    if (!json_is_cstr(doc, i)) return -1;
    *out = json_str_at(doc, i);
    return 1;
}

int json_opt_num(const jdoc_t *doc, int obj, const char *key, double *out) {
    int i = json_find(doc, obj, key);
    if (i < 0 || doc->nodes[i].type == JT_NULL) return 0;
    if (doc->nodes[i].type != JT_NUMBER) return -1;
    *out = doc->nodes[i].num;
    return 1;
}

int json_opt_bool(const jdoc_t *doc, int obj, const char *key, int *out) {
    int i = json_find(doc, obj, key);
    if (i < 0 || doc->nodes[i].type == JT_NULL) return 0;
    if (doc->nodes[i].type != JT_TRUE && doc->nodes[i].type != JT_FALSE) return -1;
    *out = doc->nodes[i].type == JT_TRUE;
    return 1;
}

int json_opt_int(const jdoc_t *doc, int obj, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    double v;
    int r = json_opt_num(doc, obj, key, &v);
    if (r <= 0) return r;
    /* The range check comes first so the cast below is always defined. */
    if (!(v >= (double)lo && v <= (double)hi)) return -1;
    int64_t iv = (int64_t)v;
    if ((double)iv != v) return -1;
    *out = iv;
    return 1;
}

void jw_init(jw_t *w) { memset(w, 0, sizeof(*w)); }

void jw_free(jw_t *w) {
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

static int jw_reserve(jw_t *w, size_t n) {
    if (w->oom) return -1;
    if (w->len + n + 1 <= w->cap) return 0;
    size_t cap = w->cap ? w->cap : 256;
    while (cap < w->len + n + 1) cap *= 2;
    char *b = realloc(w->buf, cap);
    if (!b) {
        w->oom = 1;
        return -1;
    }
    w->buf = b;
    w->cap = cap;
    return 0;
}

static void jw_bytes(jw_t *w, const char *s, size_t n) {
    if (jw_reserve(w, n)) return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

void jw_raw(jw_t *w, const char *s) { jw_bytes(w, s, strlen(s)); }

void jw_str(jw_t *w, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    if (jw_reserve(w, len * 6 + 2)) return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c < 0x20 || c == 0x7f) {
            *o++ = '\\';
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = 0;
}

void jw_cstr(jw_t *w, const char *s) { jw_str(w, s, strlen(s)); }

void jw_int(jw_t *w, int64_t v) {
    char tmp[32];
    snprintf(tmp, sizeof(tmp), "%lld", (long long)v);
    jw_raw(w, tmp);
}

void jw_key(jw_t *w, const char *key) {
    if (w->len > 0 && w->buf[w->len - 1] != '{') jw_raw(w, ",");
    jw_cstr(w, key);
    jw_raw(w, ":");
}
