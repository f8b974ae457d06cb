/*
 * exec: one process per stream, in its own session and process group, with stdout and stderr
 * on pipes (or one PTY) read only while the host has granted credit, so a chatty process blocks
 * in write(2) instead of filling memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

/* After a timeout or cancel, stop waiting for pipes held open by escaped processes. */
#define LINGER_MS 1000

typedef struct exec_s exec_t;
struct exec_s {
    stream_t st;
    pid_t pid;
    int pty;
    handler_t hin, hout, herr;
    inq_t inq;
    int stdin_fin;
    int exited, status;
    int timed_out, finished;
    int64_t t0;
    atimer_t timeout, linger;
    exec_t *next, *prev;
};

static exec_t *g_execs;

/* ---------- environment ---------- */

typedef struct {
    char **v;
    size_t n, cap;
    int oom;
} envb_t;

static void env_put(envb_t *b, const char *name, const char *value) {
    size_t nl = strlen(name);
    for (size_t i = 0; i < b->n; i++)
        if (strncmp(b->v[i], name, nl) == 0 && b->v[i][nl] == '=') {
            free(b->v[i]);
            memmove(&b->v[i], &b->v[i + 1], (b->n - i - 1) * sizeof(char *));
            b->n--;
            break;
        }
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 32;
        char **v = realloc(b->v, cap * sizeof(char *));
        if (!v) {
            b->oom = 1;
            return;
        }
        b->v = v;
        b->cap = cap;
    }
    size_t vl = strlen(value);
    char *e = malloc(nl + vl + 2);
    if (!e) {
        b->oom = 1;
        return;
    }
    memcpy(e, name, nl);
    e[nl] = '=';
    memcpy(e + nl + 1, value, vl + 1);
    b->v[b->n++] = e;
    b->v[b->n] = NULL;
}

static void env_free(envb_t *b) {
    for (size_t i = 0; i < b->n; i++) free(b->v[i]);
    free(b->v);
}

/* ---------- stream plumbing ---------- */

static void exec_update(exec_t *x) {
    if (x->st.ended) return;
    if (x->hout.fd >= 0) loop_set(&x->hout, stream_can_send(&x->st, CH_OUT) ? EPOLLIN : 0);
    if (x->herr.fd >= 0) loop_set(&x->herr, stream_can_send(&x->st, CH_ERR) ? EPOLLIN : 0);
    if (x->hin.fd >= 0) loop_set(&x->hin, x->inq.bytes ? EPOLLOUT : 0);
}

static void exec_maybe_finish(exec_t *x) {
    if (x->st.ended || !x->exited || x->hout.fd >= 0 || x->herr.fd >= 0) return;
    char json[192], sig[16];
    int64_t dur = mono_ms() - x->t0;
    const char *to = x->timed_out ? "true" : "false";
    if (WIFSIGNALED(x->status))
        snprintf(json, sizeof(json), "{\"exitCode\":null,\"signal\":\"%s\",\"timedOut\":%s,\"durationMs\":%lld}",
                 signal_name(WTERMSIG(x->status), sig, sizeof(sig)), to, (long long)dur);
    else
        snprintf(json, sizeof(json), "{\"exitCode\":%d,\"signal\":null,\"timedOut\":%s,\"durationMs\":%lld}",
                 WEXITSTATUS(x->status), to, (long long)dur);
    x->finished = 1;
    stream_result(&x->st, json);
}

static void pump(exec_t *x, handler_t *h, int ch) {
    size_t max;
    uint8_t *p = stream_data_begin(&x->st, ch, &max);
    if (!p) {
        loop_set(h, 0);
        return;
    }
    ssize_t n = read(h->fd, p, max);
    if (n > 0) {
        stream_data_commit(&x->st, ch, (size_t)n);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    /* EOF, or EIO from a PTY whose terminal side is gone. */
    loop_close(h);
    stream_send_fin(&x->st, ch);
    exec_maybe_finish(x);
}

static void out_cb(handler_t *h, uint32_t ev) {
    (void)ev;
    pump(h->owner, h, CH_OUT);
}

static void err_cb(handler_t *h, uint32_t ev) {
    (void)ev;
    pump(h->owner, h, CH_ERR);
}

/* The process will never read stdin again: drop what is queued but still grant its credit. */
static void stdin_broken(exec_t *x) {
    stream_consumed(&x->st, x->inq.bytes);
    inq_clear(&x->inq);
    loop_close(&x->hin);
}

static void stdin_settle(exec_t *x) {
    if (x->hin.fd < 0) return;
    if (x->inq.bytes == 0 && x->stdin_fin) loop_close(&x->hin);
    else loop_set(&x->hin, x->inq.bytes ? EPOLLOUT : 0);
}

static void in_cb(handler_t *h, uint32_t ev) {
    exec_t *x = h->owner;
    (void)ev;
    size_t before = x->inq.bytes;
    ssize_t r = inq_drain(&x->inq, h->fd);
    stream_consumed(&x->st, before - x->inq.bytes);
    if (r < 0) stdin_broken(x);
    else stdin_settle(x);
}

static void exec_on_data(stream_t *st, const uint8_t *p, size_t n, int fin) {
    exec_t *x = (exec_t *)st;
    if (x->hin.fd < 0) {
        stream_consumed(st, n);
        return;
    }
    if (n) {
        size_t done = 0;
        if (x->inq.bytes == 0) {
            ssize_t w = write(x->hin.fd, p, n);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                stream_consumed(st, n);
                stdin_broken(x);
                return;
            }
            if (w > 0) done = (size_t)w;
        }
        stream_consumed(st, done);
        if (done < n && inq_push(&x->inq, p + done, n - done) != 0) {
            stream_fail(st, "INTERNAL", "out of memory buffering stdin");
            return;
        }
    }
    /* A terminal has no half-close; the host sends the EOF character instead. */
    if (fin && !x->pty) x->stdin_fin = 1;
    stdin_settle(x);
}

static void exec_on_control(stream_t *st, const jdoc_t *doc) {
    exec_t *x = (exec_t *)st;
    const char *op = NULL, *sig = NULL;
    json_opt_str(doc, 0, "op", &op);
    if (op && strcmp(op, "signal") == 0) {
        int n = -1;
        int64_t num;
        if (json_opt_str(doc, 0, "signal", &sig) == 1) n = signal_parse(sig);
        else if (json_opt_int(doc, 0, "signal", 1, 64, &num) == 1) n = (int)num;
        if (n < 0) {
            stream_complain(st, "BAD_REQUEST", "unknown signal");
            return;
        }
        if (kill(-x->pid, n) != 0 && !x->exited) kill(x->pid, n);
    } else if (op && strcmp(op, "resize") == 0) {
        int64_t rows = 0, cols = 0;
        if (!x->pty || json_opt_int(doc, 0, "rows", 1, 65535, &rows) != 1 ||
            json_opt_int(doc, 0, "cols", 1, 65535, &cols) != 1) {
            stream_complain(st, "BAD_REQUEST", "resize needs a PTY exec and rows and cols from 1 to 65535");
            return;
        }
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        if (x->hout.fd >= 0) ioctl(x->hout.fd, TIOCSWINSZ, &ws);
    } else {
        stream_complain(st, "UNKNOWN_OP", "exec takes the control ops \"signal\" and \"resize\"");
    }
}

static void exec_on_resume(stream_t *st) { exec_update((exec_t *)st); }

static void kill_group(exec_t *x) {
    if (x->pid <= 0) return;
    kill(-x->pid, SIGKILL);
    if (!x->exited) kill(x->pid, SIGKILL);
}

static void exec_on_destroy(stream_t *st) {
    exec_t *x = (exec_t *)st;
    if (!x->finished) kill_group(x);
    loop_close(&x->hin);
    loop_close(&x->hout);
    loop_close(&x->herr);
    inq_clear(&x->inq);
    timer_cancel(&x->timeout);
    timer_cancel(&x->linger);
    if (x->prev) x->prev->next = x->next;
    else if (g_execs == x) g_execs = x->next;
    if (x->next) x->next->prev = x->prev;
    x->next = x->prev = NULL;
}

static const struct stream_ops exec_ops = {
    .on_data = exec_on_data,
    .on_control = exec_on_control,
    .on_resume = exec_on_resume,
    .on_destroy = exec_on_destroy,
};

static void linger_fire(atimer_t *t) {
    exec_t *x = t->owner;
    if (x->hout.fd >= 0) {
        loop_close(&x->hout);
        stream_send_fin(&x->st, CH_OUT);
    }
    if (x->herr.fd >= 0) {
        loop_close(&x->herr);
        stream_send_fin(&x->st, CH_ERR);
    }
    exec_maybe_finish(x);
}

static void timeout_fire(atimer_t *t) {
    exec_t *x = t->owner;
    x->timed_out = 1;
    kill_group(x);
    if (x->exited) timer_arm(&x->linger, LINGER_MS);
}

int exec_child_exited(pid_t pid, int status) {
    for (exec_t *x = g_execs; x; x = x->next) {
        if (x->pid != pid || x->exited) continue;
        x->exited = 1;
        x->status = status;
        if (x->timed_out) timer_arm(&x->linger, LINGER_MS);
        exec_maybe_finish(x);
        return 1;
    }
    return 0;
}

/* ---------- the operation ---------- */

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fds(int *fds, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0) close(fds[i]);
}

void op_exec(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *shell = NULL, *cwd = NULL, *term = "xterm-256color";
    int want_stdin = 0, r_shell, r_cwd, r_stdin;
    int64_t timeout = 0, rows = 24, cols = 80;
    int ia = json_find(doc, 0, "argv"), ie = json_find(doc, 0, "env"), ip = json_find(doc, 0, "pty");
    if (ia >= 0 && doc->nodes[ia].type == JT_NULL) ia = -1;
    if (ie >= 0 && doc->nodes[ie].type == JT_NULL) ie = -1;
    if (ip >= 0 && doc->nodes[ip].type == JT_NULL) ip = -1;
    r_shell = json_opt_str(doc, 0, "shell", &shell);
    r_cwd = json_opt_str(doc, 0, "cwd", &cwd);
    r_stdin = json_opt_bool(doc, 0, "stdin", &want_stdin);
    if (r_shell < 0 || r_cwd < 0 || r_stdin < 0 || json_opt_int(doc, 0, "timeoutMs", 0, INT64_C(1) << 40, &timeout) < 0 ||
        (ia >= 0) == (r_shell == 1)) {
        reply_error(s, id, "BAD_REQUEST", "exec needs either argv (array of strings) or shell (string), "
                                          "and cwd, stdin and timeoutMs of the right types");
        return;
    }
    if (ip >= 0 && (doc->nodes[ip].type != JT_OBJECT || json_opt_int(doc, ip, "rows", 1, 65535, &rows) < 0 ||
                    json_opt_int(doc, ip, "cols", 1, 65535, &cols) < 0 || json_opt_str(doc, ip, "term", &term) < 0)) {
        reply_error(s, id, "BAD_REQUEST", "pty must be an object with rows and cols from 1 to 65535 and a term string");
        return;
    }
    if (!term) term = "xterm-256color";

    /* argv: the strings stay inside doc, which outlives the fork below. */
    size_t argc = 0;
    if (ia >= 0) {
        if (doc->nodes[ia].type != JT_ARRAY || !doc->nodes[ia].child) {
            reply_error(s, id, "BAD_REQUEST", "argv must be a non-empty array of strings");
            return;
        }
        for (uint32_t c = doc->nodes[ia].child; c; c = doc->nodes[c].next) {
            if (!json_is_cstr(doc, (int)c)) {
                reply_error(s, id, "BAD_REQUEST", "argv must contain only strings without NUL");
                return;
            }
            argc++;
        }
    }
    char **argv = calloc(argc + 4, sizeof(char *));
    if (!argv) {
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        return;
    }
    if (ia >= 0) {
        size_t k = 0;
        for (uint32_t c = doc->nodes[ia].child; c; c = doc->nodes[c].next) argv[k++] = (char *)json_str_at(doc, (int)c);
    } else {
        argv[0] = "/bin/sh";
        argv[1] = "-c";
        argv[2] = (char *)shell;
    }

    envb_t env = {0};
    env_put(&env, "PATH", DEFAULT_PATH);
    env_put(&env, "HOME", "/root");
    env_put(&env, "USER", "root");
    env_put(&env, "LOGNAME", "root");
    env_put(&env, "SHELL", "/bin/sh");
    env_put(&env, "LANG", "C.UTF-8");
    if (ip >= 0) env_put(&env, "TERM", term);
    envstore_refresh();
    for (size_t i = 0; i < envstore_count(); i++) env_put(&env, envstore_name(i), envstore_value(i));
    if (ie >= 0) {
        int bad = doc->nodes[ie].type != JT_OBJECT;
        for (uint32_t c = bad ? 0 : doc->nodes[ie].child; c; c = doc->nodes[c].next) {
            const char *k = json_key_at(doc, (int)c);
            if (!json_is_cstr(doc, (int)c) || !*k || strchr(k, '=') || strlen(k) != doc->nodes[c].key_len) {
                bad = 1;
                break;
            }
            env_put(&env, k, json_str_at(doc, (int)c));
        }
        if (bad) {
            reply_error(s, id, "BAD_REQUEST", "env must map names (no '=' or NUL) to strings");
            goto out;
        }
    }
    if (env.oom) {
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        goto out;
    }

    struct stat sb;
    if (cwd) {
        if (stat(cwd, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            reply_error(s, id, "NOT_FOUND", "working directory \"%s\" does not exist", cwd);
            goto out;
        }
    } else {
        cwd = stat("/root", &sb) == 0 && S_ISDIR(sb.st_mode) ? "/root" : "/";
    }

    /* fds: [0] child stdin, [1] our stdin end, [2] our stdout, [3] child stdout,
     * [4] our stderr, [5] child stderr, [6] pty master, [7] pty slave, [8] master dup */
    int fds[9];
    for (int i = 0; i < 9; i++) fds[i] = -1;
    int ok = 1;
    if (ip >= 0) {
        struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
        ok = openpty(&fds[6], &fds[7], NULL, NULL, &ws) == 0 && fcntl(fds[6], F_SETFD, FD_CLOEXEC) == 0 &&
             fcntl(fds[7], F_SETFD, FD_CLOEXEC) == 0 && set_nonblock(fds[6]) == 0 &&
             (fds[8] = fcntl(fds[6], F_DUPFD_CLOEXEC, 3)) >= 0;
    } else {
        int p[2];
        if (want_stdin) {
            ok = pipe2(p, O_CLOEXEC) == 0;
            if (ok) fds[0] = p[0], fds[1] = p[1];
        } else {
            ok = (fds[0] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0;
        }
        if (ok && (ok = pipe2(p, O_CLOEXEC) == 0)) fds[2] = p[0], fds[3] = p[1];
        if (ok && (ok = pipe2(p, O_CLOEXEC) == 0)) fds[4] = p[0], fds[5] = p[1];
        if (ok) ok = (fds[1] < 0 || set_nonblock(fds[1]) == 0) && set_nonblock(fds[2]) == 0 && set_nonblock(fds[4]) == 0;
    }
    if (!ok) {
        int e = errno;
        close_fds(fds, 9);
        reply_errno(s, id, e, "cannot create pipes for the process");
        goto out;
    }

    exec_t *x = (exec_t *)stream_new(s, id, sizeof(exec_t), &exec_ops);
    if (!x) {
        close_fds(fds, 9);
        reply_error(s, id, "RESOURCE_EXHAUSTED", "out of memory");
        goto out;
    }
    x->pty = ip >= 0;
    x->t0 = mono_ms();
    x->hin.fd = x->pty ? fds[8] : fds[1];
    x->hout.fd = x->pty ? fds[6] : fds[2];
    x->herr.fd = fds[4];
    x->hin.cb = in_cb;
    x->hout.cb = out_cb;
    x->herr.cb = err_cb;
    x->hin.owner = x->hout.owner = x->herr.owner = x;
    x->timeout.fire = timeout_fire;
    x->linger.fire = linger_fire;
    x->timeout.owner = x->linger.owner = x;
    x->next = g_execs;
    if (g_execs) g_execs->prev = x;
    g_execs = x;

    pid_t pid = fork();
    if (pid == 0) exec_child(argv, env.v, cwd, fds[0], fds[3], fds[5], fds[7]);
    int fork_errno = errno;
    int child_ends[] = {fds[0], fds[3], fds[5], fds[7]};
    close_fds(child_ends, 4);
    if (pid < 0) {
        stream_fail(&x->st, errno_code(fork_errno), "cannot start the process: %s", strerror(fork_errno));
        goto out;
    }
    x->pid = pid;
    char ev[64];
    snprintf(ev, sizeof(ev), "{\"event\":\"started\",\"pid\":%d}", (int)pid);
    stream_event(&x->st, ev);
    if (timeout > 0) timer_arm(&x->timeout, timeout);
    exec_update(x);
out:
    free(argv);
    env_free(&env);
}
