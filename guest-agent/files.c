/*
 * writeFile and readFile. Writes go to a temporary file in the target's directory and are
 * renamed over the target only once complete and fsynced, so no reader ever sees a partial
 * file. Regular files cannot be watched with epoll, so reads are driven as idle work, one chunk
 * per loop turn, and only while the host has granted credit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define PATH_LIMIT 4096

typedef struct {
    stream_t st;
    int fd;
    char *tmp, *path;
    uint64_t size;
    mode_t mode;
    int done;
} wfile_t;

typedef struct {
    stream_t st;
    int fd;
    idle_t idle;
    uint64_t sent;
} rfile_t;

/* An absolute path without NUL, not ending in '/', or NULL after replying BAD_REQUEST. */
static const char *path_arg(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *path = NULL;
    if (json_opt_str(doc, 0, "path", &path) != 1 || path[0] != '/' || strlen(path) >= PATH_LIMIT) {
        reply_error(s, id, "BAD_REQUEST", "path must be an absolute path");
        return NULL;
    }
    return path;
}

static void wfile_on_data(stream_t *st, const uint8_t *p, size_t n, int fin) {
    wfile_t *w = (wfile_t *)st;
    if (n) {
        if (write_all(w->fd, p, n) != 0) {
            int e = errno;
            stream_fail(st, errno_code(e), "cannot write \"%s\": %s", w->path, strerror(e));
            return;
        }
        w->size += n;
        stream_consumed(st, n);
    }
    if (!fin) return;
    int rc = fchmod(w->fd, w->mode);
    if (rc == 0) rc = fsync(w->fd);
    int e = errno;
    close(w->fd);
    w->fd = -1;
    if (rc == 0 && rename(w->tmp, w->path) != 0) {
        rc = -1;
        e = errno;
    }
    if (rc != 0) {
        stream_fail(st, errno_code(e), "cannot write \"%s\": %s", w->path, strerror(e));
        return;
    }
    w->done = 1;
    char json[64];
    snprintf(json, sizeof(json), "{\"size\":%llu}", (unsigned long long)w->size);
    stream_result(st, json);
}

static void wfile_on_destroy(stream_t *st) {
    wfile_t *w = (wfile_t *)st;
    if (w->fd >= 0) close(w->fd);
    if (!w->done && w->tmp) unlink(w->tmp);
    free(w->tmp);
    free(w->path);
}

static const struct stream_ops wfile_ops = {.on_data = wfile_on_data, .on_destroy = wfile_on_destroy};

void op_write_file(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *path = path_arg(s, id, doc);
    int64_t mode = 0644;
    int mkdirs = 0;
    if (!path) return;
    if (json_opt_int(doc, 0, "mode", 0, 07777, &mode) < 0 || json_opt_bool(doc, 0, "mkdirParents", &mkdirs) < 0) {
        reply_error(s, id, "BAD_REQUEST", "mode must be an integer from 0 to 0o7777 and mkdirParents a boolean");
        return;
    }
    const char *slash = strrchr(path, '/');
    const char *base = slash + 1;
    if (!*base || strcmp(base, ".") == 0 || strcmp(base, "..") == 0) {
        reply_error(s, id, "BAD_REQUEST", "path \"%s\" does not name a file", path);
        return;
    }
    char dir[PATH_LIMIT];
    size_t dl = (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl ? dl : 1] = 0;
    if (!dl) dir[0] = '/';

    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            reply_error(s, id, "IS_DIRECTORY", "cannot write \"%s\": it is a directory", path);
            return;
        }
        if (!S_ISREG(sb.st_mode)) {
            reply_error(s, id, "NOT_REGULAR", "cannot write \"%s\": it is not a regular file", path);
            return;
        }
    } else if (errno != ENOENT) {
        reply_errno(s, id, errno, "cannot write \"%s\"", path);
        return;
    }
    if (stat(dir, &sb) != 0) {
        if (errno != ENOENT || !mkdirs) {
            reply_error(s, id, "NOT_FOUND", "cannot write \"%s\": directory \"%s\" does not exist%s", path, dir,
                        errno == ENOENT ? " (set mkdirParents to create it)" : "");
            return;
        }
        if (mkdir_parents(dir) != 0) {
            reply_errno(s, id, errno, "cannot create directory \"%s\"", dir);
            return;
        }
    } else if (!S_ISDIR(sb.st_mode)) {
        reply_error(s, id, "NOT_FOUND", "cannot write \"%s\": \"%s\" is not a directory", path, dir);
        return;
    }

    size_t tl = strlen(dir) + strlen(base) + 32;
    char *tmp = malloc(tl), *copy = strdup(path);
    if (!tmp || !copy) {
        free(tmp);
        free(copy);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    snprintf(tmp, tl, "%s%s.%s.smolvm-XXXXXX", dir, dl ? "/" : "", base);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        free(copy);
        reply_errno(s, id, e, "cannot create a temporary file next to \"%s\"", path);
        return;
    }
    wfile_t *w = (wfile_t *)stream_new(s, id, sizeof(wfile_t), &wfile_ops);
    if (!w) {
        close(fd);
        unlink(tmp);
        free(tmp);
        free(copy);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    w->fd = fd;
    w->tmp = tmp;
    w->path = copy;
    w->mode = (mode_t)mode;
}

static void rfile_run(idle_t *i) {
    rfile_t *r = i->owner;
    size_t max;
    uint8_t *p = stream_data_begin(&r->st, CH_OUT, &max);
    if (!p) {
        idle_off(i); /* on_resume turns it back on */
        return;
    }
    ssize_t n = read(r->fd, p, max);
    if (n > 0) {
        stream_data_commit(&r->st, CH_OUT, (size_t)n);
        r->sent += (uint64_t)n;
        return;
    }
    if (n < 0 && errno == EINTR) return;
    if (n < 0) {
        int e = errno;
        stream_fail(&r->st, errno_code(e), "cannot read: %s", strerror(e));
        return;
    }
    stream_send_fin(&r->st, CH_OUT);
    char json[64];
    snprintf(json, sizeof(json), "{\"size\":%llu}", (unsigned long long)r->sent);
    stream_result(&r->st, json);
}

static void rfile_on_resume(stream_t *st) { idle_on(&((rfile_t *)st)->idle); }

static void rfile_on_destroy(stream_t *st) {
    rfile_t *r = (rfile_t *)st;
    idle_off(&r->idle);
    if (r->fd >= 0) close(r->fd);
}

static const struct stream_ops rfile_ops = {.on_resume = rfile_on_resume, .on_destroy = rfile_on_destroy};

void op_read_file(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *path = path_arg(s, id, doc);
    if (!path) return;
    /* O_NONBLOCK so that opening a FIFO cannot hang the agent; fstat refuses it next. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        reply_errno(s, id, errno, "cannot read \"%s\"", path);
        return;
    }
    struct stat sb = {0};
    if (fstat(fd, &sb) != 0 || S_ISDIR(sb.st_mode) || !S_ISREG(sb.st_mode)) {
        close(fd);
        if (S_ISDIR(sb.st_mode)) reply_error(s, id, "IS_DIRECTORY", "cannot read \"%s\": it is a directory", path);
        else reply_error(s, id, "NOT_REGULAR", "cannot read \"%s\": it is not a regular file", path);
        return;
    }
    rfile_t *r = (rfile_t *)stream_new(s, id, sizeof(rfile_t), &rfile_ops);
    if (!r) {
        close(fd);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    r->fd = fd;
    r->idle.run = rfile_run;
    r->idle.owner = r;
    char ev[96];
    snprintf(ev, sizeof(ev), "{\"event\":\"file\",\"size\":%llu,\"mode\":%u}", (unsigned long long)sb.st_size,
             (unsigned)(sb.st_mode & 07777));
    stream_event(&r->st, ev);
    idle_on(&r->idle);
}
