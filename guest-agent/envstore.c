/*
 * The managed environment: variables set through the agent, given to every exec and persisted
 * as a shell fragment in /etc/profile.d so login shells and SSH sessions see them too. The file
 * is the source of truth across restarts; it is rewritten atomically on every change.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

/* The whole set must fit in one RESULT frame. */
#define ENV_MAX_BYTES 60000
#define HEADER "# Managed by smolvm-agent (smolvm env set/unset): edits here are overwritten.\n"

typedef struct {
    char *name, *value;
} var_t;

typedef struct {
    var_t *v;
    size_t n, cap;
} varset_t;

static varset_t g_env;

/* The env file as g_env last matched it. Another writer (the host's SSH channel rewrites the file
 * over SFTP) replaces it by rename; envstore_refresh notices and reloads before the next use. */
static struct {
    int exists;
    struct stat st;
} g_seen;

static void seen(const struct stat *st) {
    g_seen.exists = st != NULL;
    if (st) g_seen.st = *st;
}

size_t envstore_count(void) { return g_env.n; }
const char *envstore_name(size_t i) { return g_env.v[i].name; }
const char *envstore_value(size_t i) { return g_env.v[i].value; }

static int valid_name(const char *s, size_t n) {
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
    }
    return 1;
}

static void set_free(varset_t *vs) {
    for (size_t i = 0; i < vs->n; i++) {
        free(vs->v[i].name);
        free(vs->v[i].value);
    }
    free(vs->v);
    memset(vs, 0, sizeof(*vs));
}

/* Inserts or replaces, keeping the set sorted by name; takes ownership of name and value. */
static int set_put(varset_t *vs, char *name, char *value) {
    size_t i = 0;
    while (i < vs->n && strcmp(vs->v[i].name, name) < 0) i++;
    if (i < vs->n && strcmp(vs->v[i].name, name) == 0) {
        free(vs->v[i].value);
        free(name);
        vs->v[i].value = value;
        return 0;
    }
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? vs->cap * 2 : 16;
        var_t *v = realloc(vs->v, cap * sizeof(*v));
        if (!v) {
            free(name);
            free(value);
            return -1;
        }
        vs->v = v;
        vs->cap = cap;
    }
    memmove(&vs->v[i + 1], &vs->v[i], (vs->n - i) * sizeof(var_t));
    vs->v[i].name = name;
    vs->v[i].value = value;
    vs->n++;
    return 0;
}

static void set_del(varset_t *vs, const char *name) {
    for (size_t i = 0; i < vs->n; i++)
        if (strcmp(vs->v[i].name, name) == 0) {
            free(vs->v[i].name);
            free(vs->v[i].value);
            memmove(&vs->v[i], &vs->v[i + 1], (vs->n - i - 1) * sizeof(var_t));
            vs->n--;
            return;
        }
}

static int set_clone(const varset_t *src, varset_t *dst) {
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->n; i++) {
        char *n = strdup(src->v[i].name), *v = strdup(src->v[i].value);
        if (!n || !v || set_put(dst, n, v) != 0) {
            if (n && !v) free(n);
            else if (!n) free(v);
            set_free(dst);
            return -1;
        }
    }
    return 0;
}

/* ---------- the file format: export NAME='value' with ' written as '\'' ---------- */

static char *serialize(const varset_t *vs, size_t *len) {
    size_t cap = sizeof(HEADER);
    for (size_t i = 0; i < vs->n; i++) cap += strlen(vs->v[i].name) + strlen(vs->v[i].value) * 4 + 16;
    char *buf = malloc(cap), *o = buf;
    if (!buf) return NULL;
    o += sprintf(o, "%s", HEADER);
    for (size_t i = 0; i < vs->n; i++) {
        o += sprintf(o, "export %s='", vs->v[i].name);
        for (const char *p = vs->v[i].value; *p; p++) {
            if (*p == '\'') {
                memcpy(o, "'\\''", 4);
                o += 4;
            } else {
                *o++ = *p;
            }
        }
        *o++ = '\'';
        *o++ = '\n';
    }
    *o = 0;
    *len = (size_t)(o - buf);
    return buf;
}

/* Parses what serialize writes (and tolerates comments and blank lines); a malformed line is
 * skipped rather than failing the whole file. */
static void parse(const char *p, const char *end, varset_t *vs) {
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n')) p++;
        if (p >= end) break;
        const char *line = p;
        int ok = 0;
        if (end - p > 7 && memcmp(p, "export ", 7) == 0) {
            p += 7;
            const char *name = p;
            while (p < end && *p != '=' && *p != '\n') p++;
            size_t nl = (size_t)(p - name);
            char *value = malloc((size_t)(end - p) + 1);
            if (p < end && *p == '=' && valid_name(name, nl) && value) {
                p++;
                size_t vl = 0;
                ok = 1;
                while (p < end && *p != '\n' && *p != ' ' && *p != '\t') {
                    if (*p == '\'') {
                        const char *q = memchr(p + 1, '\'', (size_t)(end - p - 1));
                        if (!q) {
                            ok = 0;
                            break;
                        }
                        memcpy(value + vl, p + 1, (size_t)(q - p - 1));
                        vl += (size_t)(q - p - 1);
                        p = q + 1;
                    } else if (*p == '\\' && p + 1 < end) {
                        value[vl++] = p[1];
                        p += 2;
                    } else {
                        value[vl++] = *p++;
                    }
                }
                if (ok) {
                    value[vl] = 0;
                    char *n = strndup(name, nl);
                    if (n) set_put(vs, n, value);
                    else free(value);
                    value = NULL;
                }
            }
            free(value);
        }
        if (!ok) {
            p = line;
            while (p < end && *p != '\n') p++;
        }
    }
}

void envstore_load(void) {
    int fd = open(g_cfg.env_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    seen(fstat(fd, &st) == 0 ? &st : NULL);
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            if (cap >= 4 * ENV_MAX_BYTES) break;
            char *b = realloc(buf, cap * 2);
            if (!b) break;
            buf = b;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf) return;
    set_free(&g_env);
    parse(buf, buf + len, &g_env);
    free(buf);
}

/* ---------- operations ---------- */

static void reply_vars(session_t *s, uint32_t id) {
    jw_t w;
    jw_init(&w);
    jw_raw(&w, "{\"vars\":{");
    for (size_t i = 0; i < g_env.n; i++) {
        if (i) jw_raw(&w, ",");
        jw_cstr(&w, g_env.v[i].name);
        jw_raw(&w, ":");
        jw_cstr(&w, g_env.v[i].value);
    }
    jw_raw(&w, "}}");
    if (w.oom || w.len > PROTO_MAX_PAYLOAD) reply_error(s, id, "RESOURCE_EXHAUSTED", "the managed env is too large to list");
    else reply_result(s, id, w.buf);
    jw_free(&w);
}

/* Persists next and makes it current, or replies with the error and leaves things as they were. */
static void commit(session_t *s, uint32_t id, varset_t *next) {
    size_t len = 0;
    char *text = serialize(next, &len);
    if (!text) {
        set_free(next);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    if (len > ENV_MAX_BYTES) {
        free(text);
        set_free(next);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "the managed env would exceed %d bytes", ENV_MAX_BYTES);
        return;
    }
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", g_cfg.env_file);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        mkdir_parents(dir);
    }
    if (write_file_atomic(g_cfg.env_file, text, len, 0644) != 0) {
        int e = errno;
        free(text);
        set_free(next);
        reply_errno(s, id, e, "cannot write \"%s\"", g_cfg.env_file);
        return;
    }
    free(text);
    struct stat st;
    seen(stat(g_cfg.env_file, &st) == 0 ? &st : NULL);
    set_free(&g_env);
    g_env = *next;
    reply_vars(s, id);
}

/* Reloads the set if the file changed (or vanished) since it was last read or written. */
void envstore_refresh(void) {
    struct stat st;
    int exists = stat(g_cfg.env_file, &st) == 0;
    if (exists == g_seen.exists &&
        (!exists || (st.st_dev == g_seen.st.st_dev && st.st_ino == g_seen.st.st_ino && st.st_size == g_seen.st.st_size &&
                     st.st_mtim.tv_sec == g_seen.st.st_mtim.tv_sec && st.st_mtim.tv_nsec == g_seen.st.st_mtim.tv_nsec)))
        return;
    if (!exists) {
        set_free(&g_env);
        seen(NULL);
        return;
    }
    envstore_load();
}

void op_env_set(session_t *s, uint32_t id, const jdoc_t *doc) {
    envstore_refresh();
    int iv = json_find(doc, 0, "vars");
    if (iv < 0 || doc->nodes[iv].type != JT_OBJECT) {
        reply_error(s, id, "BAD_REQUEST", "env.set needs a \"vars\" object");
        return;
    }
    for (uint32_t c = doc->nodes[iv].child; c; c = doc->nodes[c].next)
        if (!valid_name(json_key_at(doc, (int)c), doc->nodes[c].key_len) || !json_is_cstr(doc, (int)c)) {
            reply_error(s, id, "BAD_REQUEST", "env names must match [A-Za-z_][A-Za-z0-9_]* and values be strings without NUL");
            return;
        }
    varset_t next;
    if (set_clone(&g_env, &next) != 0) {
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    for (uint32_t c = doc->nodes[iv].child; c; c = doc->nodes[c].next) {
        char *n = strdup(json_key_at(doc, (int)c)), *v = strdup(json_str_at(doc, (int)c));
        if (!n || !v || set_put(&next, n, v) != 0) {
            if (n && !v) free(n);
            else if (!n) free(v);
            set_free(&next);
            reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
            return;
        }
    }
    commit(s, id, &next);
}

void op_env_unset(session_t *s, uint32_t id, const jdoc_t *doc) {
    envstore_refresh();
    int in = json_find(doc, 0, "names");
    if (in < 0 || doc->nodes[in].type != JT_ARRAY) {
        reply_error(s, id, "BAD_REQUEST", "env.unset needs a \"names\" array");
        return;
    }
    for (uint32_t c = doc->nodes[in].child; c; c = doc->nodes[c].next)
        if (!json_is_cstr(doc, (int)c)) {
            reply_error(s, id, "BAD_REQUEST", "env.unset names must be strings");
            return;
        }
    varset_t next;
    if (set_clone(&g_env, &next) != 0) {
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    for (uint32_t c = doc->nodes[in].child; c; c = doc->nodes[c].next) set_del(&next, json_str_at(doc, (int)c));
    commit(s, id, &next);
}

void op_env_list(session_t *s, uint32_t id, const jdoc_t *doc) {
    (void)doc;
    envstore_refresh();
    reply_vars(s, id);
}
