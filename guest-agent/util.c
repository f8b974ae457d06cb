/* Small helpers shared by the agent's modules: logging, clocks, errno and signal names, the
 * inbound byte queue, atomic file writes. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

static int g_log_fd = 2;

void log_set_fd(int fd) { g_log_fd = fd; }

static void vlog(const char *fmt, va_list ap) {
    char buf[512];
    int n = snprintf(buf, sizeof(buf), "smolvm-agent: ");
    int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + ((size_t)m < sizeof(buf) - (size_t)n - 1 ? (size_t)m : sizeof(buf) - (size_t)n - 2);
    buf[len++] = '\n';
    if (write(g_log_fd, buf, len) < 0) { /* nowhere left to complain */
    }
}

void logmsg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

void logv(const char *fmt, ...) {
    if (!g_cfg.verbose) return;
    va_list ap;
    va_start(ap, fmt);
    vlog(fmt, ap);
    va_end(ap);
}

static int64_t clock_ms(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mono_ms(void) { return clock_ms(CLOCK_MONOTONIC); }
int64_t boot_ms(void) { return clock_ms(CLOCK_BOOTTIME); }
int64_t wall_ms(void) { return clock_ms(CLOCK_REALTIME); }

const char *errno_code(int err) {
    switch (err) {
    case ENOENT:
    case ENOTDIR: return "NOT_FOUND";
    case EACCES:
    case EPERM:
    case EROFS: return "PERMISSION_DENIED";
    case EISDIR: return "IS_DIRECTORY";
    case ENOSPC:
    case EDQUOT: return "NO_SPACE";
    case EMFILE:
    case ENFILE:
    case ENOMEM:
    case EAGAIN: return "RESOURCE_EXHAUSTED";
    case ECONNREFUSED: return "CONNECTION_REFUSED";
    default: return "IO_ERROR";
    }
}

static const struct {
    int sig;
    const char *name;
} g_signals[] = {
    {SIGHUP, "HUP"},   {SIGINT, "INT"},       {SIGQUIT, "QUIT"}, {SIGILL, "ILL"},   {SIGTRAP, "TRAP"},
    {SIGABRT, "ABRT"}, {SIGBUS, "BUS"},       {SIGFPE, "FPE"},   {SIGKILL, "KILL"}, {SIGUSR1, "USR1"},
    {SIGSEGV, "SEGV"}, {SIGUSR2, "USR2"},     {SIGPIPE, "PIPE"}, {SIGALRM, "ALRM"}, {SIGTERM, "TERM"},
    {SIGCHLD, "CHLD"}, {SIGCONT, "CONT"},     {SIGSTOP, "STOP"}, {SIGTSTP, "TSTP"}, {SIGTTIN, "TTIN"},
    {SIGTTOU, "TTOU"}, {SIGURG, "URG"},       {SIGXCPU, "XCPU"}, {SIGXFSZ, "XFSZ"}, {SIGVTALRM, "VTALRM"},
    {SIGPROF, "PROF"}, {SIGWINCH, "WINCH"},   {SIGIO, "IO"},     {SIGSYS, "SYS"},
};

const char *signal_name(int sig, char *buf, size_t n) {
    for (size_t i = 0; i < sizeof(g_signals) / sizeof(g_signals[0]); i++)
        if (g_signals[i].sig == sig) return g_signals[i].name;
    snprintf(buf, n, "%d", sig);
    return buf;
}

int signal_parse(const char *s) {
    if (!s || !*s) return -1;
    if (*s >= '0' && *s <= '9') {
        char *end;
        long v = strtol(s, &end, 10);
        return (*end || v < 1 || v > 64) ? -1 : (int)v;
    }
    if (strncmp(s, "SIG", 3) == 0) s += 3;
    for (size_t i = 0; i < sizeof(g_signals) / sizeof(g_signals[0]); i++)
        if (strcmp(g_signals[i].name, s) == 0) return g_signals[i].sig;
    return -1;
}

int mkdir_parents(const char *dir) {
    char buf[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != 0) continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        buf[i] = c;
    }
    struct stat st;
    if (stat(dir, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file_replacing(const char *path, const char *data, size_t n, mode_t mode, int durable) {
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.smolvm-XXXXXX", path) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return -1;
    if (write_all(fd, data, n) != 0 || fchmod(fd, mode) != 0 || (durable && fsync(fd) != 0)) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

int write_file_atomic(const char *path, const char *data, size_t n, mode_t mode) {
    return write_file_replacing(path, data, n, mode, 1);
}

int write_file_volatile(const char *path, const char *data, size_t n, mode_t mode) {
    return write_file_replacing(path, data, n, mode, 0);
}

struct inchunk {
    inchunk_t *next;
    size_t off, len;
    uint8_t data[];
};

int inq_push(inq_t *q, const uint8_t *p, size_t n) {
    if (n == 0) return 0;
    inchunk_t *c = malloc(sizeof(*c) + n);
    if (!c) return -1;
    c->next = NULL;
    c->off = 0;
    c->len = n;
    memcpy(c->data, p, n);
    if (q->tail) q->tail->next = c;
    else q->head = c;
    q->tail = c;
    q->bytes += n;
    return 0;
}

ssize_t inq_drain(inq_t *q, int fd) {
    size_t total = 0;
    while (q->head) {
        inchunk_t *c = q->head;
        ssize_t w = write(fd, c->data + c->off, c->len - c->off);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN) break;
            return -1;
        }
        c->off += (size_t)w;
        q->bytes -= (size_t)w;
        total += (size_t)w;
        if (c->off < c->len) break;
        q->head = c->next;
        if (!q->head) q->tail = NULL;
        free(c);
    }
    return (ssize_t)total;
}

void inq_clear(inq_t *q) {
    while (q->head) {
        inchunk_t *c = q->head;
        q->head = c->next;
        free(c);
    }
    q->tail = NULL;
    q->bytes = 0;
}
