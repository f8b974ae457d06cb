/*
 * A small JSON reader and writer for control messages. The reader builds an index-linked tree
 * in buffers it reuses between calls; strings are decoded (escapes, \u surrogates) and stored
 * NUL-terminated, with their real length kept so embedded NULs can be refused.
 */
#ifndef SMOLVM_JSON_H
#define SMOLVM_JSON_H

#include <stddef.h>
#include <stdint.h>

enum jtype { JT_NULL, JT_FALSE, JT_TRUE, JT_NUMBER, JT_STRING, JT_ARRAY, JT_OBJECT };

typedef struct {
    uint8_t type;
    uint32_t next;  /* next sibling, 0 = none (node 0 is the root, never a sibling) */
    uint32_t child; /* first element or member, 0 = none */
    uint32_t key, key_len;
    uint32_t str, str_len;
    double num;
} jnode_t;

typedef struct {
    jnode_t *nodes;
    size_t n, cap;
    char *strs;
    size_t slen, scap;
} jdoc_t;

/* Parses src[0..len) into doc (node 0 is the root). Returns 0, or -1 for invalid JSON, too
 * deep nesting (> 32) or out of memory. */
int json_parse(jdoc_t *doc, const char *src, size_t len);
void json_free(jdoc_t *doc);

/* Index of member `key` of object `obj`, or -1. */
int json_find(const jdoc_t *doc, int obj, const char *key);

/* Typed optional members: 0 = absent (or null), 1 = present and valid, -1 = wrong type.
 * Strings must not contain NUL. */
int json_opt_str(const jdoc_t *doc, int obj, const char *key, const char **out);
int json_opt_num(const jdoc_t *doc, int obj, const char *key, double *out);
int json_opt_bool(const jdoc_t *doc, int obj, const char *key, int *out);
/* An integer in [lo, hi]; -1 when present but not such an integer. */
int json_opt_int(const jdoc_t *doc, int obj, const char *key, int64_t lo, int64_t hi, int64_t *out);

static inline const char *json_str_at(const jdoc_t *doc, int idx) { return doc->strs + doc->nodes[idx].str; }
static inline const char *json_key_at(const jdoc_t *doc, int idx) { return doc->strs + doc->nodes[idx].key; }
/* A string node with no embedded NUL. */
int json_is_cstr(const jdoc_t *doc, int idx);

typedef struct {
    char *buf;
    size_t len, cap;
    int oom;
} jw_t;

void jw_init(jw_t *w);
void jw_free(jw_t *w);
void jw_raw(jw_t *w, const char *s);
void jw_str(jw_t *w, const char *s, size_t len); /* quoted and escaped */
void jw_cstr(jw_t *w, const char *s);
void jw_int(jw_t *w, int64_t v);
/* "key": (with a comma before it unless it follows '{') */
void jw_key(jw_t *w, const char *key);

#endif
