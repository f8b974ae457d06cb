/*
 * Shared declarations of the smolvm guest agent: the event loop, sessions (one per host
 * connection), streams (one per operation) and the operations themselves. Everything runs on one
 * thread; nothing blocks except short disk writes and the final shutdown sequence.
 */
#ifndef SMOLVM_AGENT_H
#define SMOLVM_AGENT_H

#include <stdint.h>
#include <sys/types.h>

#include "json.h"
#include "proto.h"

#define AGENT_VERSION "0.1.0"
#define MAX_STREAMS 1024
/* Sources (pipes, files, sockets) pause while this much output waits for the channel... */
#define OUT_HIGH (1u << 20)
/* ...and the channel itself stops being read past this, so a host that never reads cannot
 * make the agent buffer replies forever. */
#define OUT_HARD (4u << 20)
/* Inbound credit is returned in batches of a quarter window. */
#define GRANT_BATCH (PROTO_INITIAL_WINDOW / 4)

/* ---- configuration (main.c) ---- */
struct agent_config {
    int pid1;
    int verbose;
    /* Test mode: sockets behave like a virtio port (hunt for HELLO, survive framing errors), so
     * the resync procedure can be tested without a VM. */
    int socket_hunt;
    const char *env_file;
};
extern struct agent_config g_cfg;

/* ---- event loop (loop.c) ---- */
typedef struct handler handler_t;
struct handler {
    int fd;
    uint32_t events; /* registered interest; 0 = not in the epoll set */
    void (*cb)(handler_t *h, uint32_t events);
    void *owner;
};

typedef struct atimer atimer_t;
struct atimer {
    int64_t due;
    void (*fire)(atimer_t *t);
    void *owner;
    atimer_t *next, *prev;
    int armed;
};

typedef struct idle idle_t;
struct idle {
    void (*run)(idle_t *i);
    void *owner;
    idle_t *next, *prev;
    int on;
};

int loop_init(void);
/* Sets the interest of h: adds, modifies or (events == 0) removes it from the epoll set. A
 * removed fd reports nothing, not even HUP, which is how a paused pipe stops waking us. */
void loop_set(handler_t *h, uint32_t events);
/* Removes h from the loop and closes its fd; its callback will not run again. */
void loop_close(handler_t *h);
void timer_arm(atimer_t *t, int64_t delay_ms);
void timer_cancel(atimer_t *t);
/* Idle work runs once per loop turn while on: used for regular files, which epoll cannot watch. */
void idle_on(idle_t *i);
void idle_off(idle_t *i);
/* Frees p after the current batch of events, so an event already fetched for it is harmless. */
void loop_defer_free(void *p);
void loop_add_flush(void (*fn)(void));
void loop_run(void);

/* ---- sessions and streams (session.c) ---- */
typedef struct session session_t;
typedef struct stream stream_t;

struct stream_ops {
    /* Bytes from the host on channel 0; fin = the host's half-close. */
    void (*on_data)(stream_t *st, const uint8_t *p, size_t n, int fin);
    void (*on_control)(stream_t *st, const jdoc_t *doc);
    /* Credit arrived or the channel drained: re-enable sources. */
    void (*on_resume)(stream_t *st);
    /* Release everything (kill, close, unlink). Sends no frames. */
    void (*on_destroy)(stream_t *st);
};

struct stream {
    session_t *s;
    uint32_t id;
    const struct stream_ops *ops;
    stream_t *hnext;
    stream_t *lnext, *lprev;
    uint32_t credit[3];  /* bytes we may still send on channels 1 and 2 */
    uint32_t in_allow;   /* bytes the host may still send on channel 0 */
    uint32_t in_pending; /* consumed on channel 0 but not yet granted back */
    int ended;
};

stream_t *stream_new(session_t *s, uint32_t id, size_t size, const struct stream_ops *ops);
/* Room for up to *max bytes of DATA on ch, read straight into the output buffer; NULL when
 * there is no credit or the channel is backed up (the caller then pauses its source). */
uint8_t *stream_data_begin(stream_t *st, int ch, size_t *max);
void stream_data_commit(stream_t *st, int ch, size_t n);
void stream_send_fin(stream_t *st, int ch);
/* Whether a source for ch may be read now. */
int stream_can_send(stream_t *st, int ch);
void stream_consumed(stream_t *st, size_t n);
void stream_event(stream_t *st, const char *json);
/* End the stream with a RESULT or an ERROR; both destroy it. */
void stream_result(stream_t *st, const char *json);
void stream_fail(stream_t *st, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A connection-level ERROR about a frame for st (bad CONTROL); the stream goes on. */
void stream_complain(stream_t *st, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Answers for operations that finish at once, without a stream object. */
void reply_result(session_t *s, uint32_t id, const char *json);
void reply_error(session_t *s, uint32_t id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void reply_errno(session_t *s, uint32_t id, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Pushes pending output out synchronously for up to timeout_ms (used before shutdown). */
void session_flush_blocking(session_t *s, int timeout_ms);

enum session_kind { SK_SOCKET, SK_PORT };
session_t *session_new(int fd, enum session_kind kind);
void sessions_teardown_all(void);
/* Starts listening on a Unix socket path (test mode). */
int listen_unix(const char *path);
int listen_vsock(unsigned port);
/* Watches a virtio-serial port; the host may come and go. */
int serve_port(const char *dev);

/* ---- operations ---- */
typedef void (*op_fn)(session_t *s, uint32_t id, const jdoc_t *doc);
void op_exec(session_t *s, uint32_t id, const jdoc_t *doc);
/* The PATH a command gets unless its environment says otherwise. */
#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* In the forked child of an exec (child.c): set up descriptors, session, cwd and run argv; never returns. */
void exec_child(char **argv, char **envp, const char *cwd, int fd0, int fd1, int fd2, int slave) __attribute__((noreturn));
void op_write_file(session_t *s, uint32_t id, const jdoc_t *doc);
void op_read_file(session_t *s, uint32_t id, const jdoc_t *doc);
void op_env_set(session_t *s, uint32_t id, const jdoc_t *doc);
void op_env_unset(session_t *s, uint32_t id, const jdoc_t *doc);
void op_env_list(session_t *s, uint32_t id, const jdoc_t *doc);
void op_forward(session_t *s, uint32_t id, const jdoc_t *doc);
void op_ping(session_t *s, uint32_t id, const jdoc_t *doc);
void op_set_time(session_t *s, uint32_t id, const jdoc_t *doc);
void op_reseed(session_t *s, uint32_t id, const jdoc_t *doc);
void op_identity(session_t *s, uint32_t id, const jdoc_t *doc);
void op_sync(session_t *s, uint32_t id, const jdoc_t *doc);
void op_shutdown(session_t *s, uint32_t id, const jdoc_t *doc);

/* exec.c: returns 1 when pid belonged to an exec. */
int exec_child_exited(pid_t pid, int status);

/* envstore.c */
void envstore_load(void);
void envstore_refresh(void);
size_t envstore_count(void);
const char *envstore_name(size_t i);
const char *envstore_value(size_t i);

/* sysops.c */
#define RESEED_MAX 4096
void agent_hello_time(int64_t time_ms);
/* Sets CLOCK_REALTIME; 0 or -1 with errno. */
int agent_set_clock(int64_t time_ms);
/* Decodes base64 (either alphabet, padding optional) into out; the byte count, or -1. */
int b64decode(const char *in, uint8_t *out, size_t cap);
/* Mixes n (1..RESEED_MAX) bytes into the kernel's pool; as PID 1 also credits them and rekeys
 * the CRNG at once. 0, or -1 with errno. */
int rng_reseed(const uint8_t *seed, int n, int *credited, int *reseeded);
/* Ends every other process, syncs and remounts / read-only (PID 1); in test mode only ends streams. */
void agent_quiesce(void);
/* Reboots (or powers off) the VM, in test mode exits; returns only if the kernel refused. */
void agent_power_off(int poweroff);
/* Both of the above. */
void agent_shutdown(int poweroff);

/* init.c (PID-1 duties) */
void init_setup(void);
void init_after_first_hello(void);
int init_child_exited(pid_t pid, int status);
/* Finds /dev/<port> for org.smolvm.agent; 0 on success. */
int init_find_agent_port(char *dev, size_t n);
/* Sets the hostname and its 127.0.1.1 line in /etc/hosts; 0 or -1 with errno. */
int init_set_hostname(const char *name);
/* Configures eth0 (ADDR/PREFIX), the default route and /etc/resolv.conf. With `restart` (a
 * restored guest) what it learned on the network it was saved on goes: eth0 is taken down and
 * configured again when its address changes, else the gateway's neighbour entry is dropped.
 * Any argument may be NULL. */
void init_configure_network(const char *ip, const char *gw, const char *dns, int restart);
/* Puts a file of the agent's own over the kernel's read-only boot id, so a restore can renew it
 * (identity.c); done after the first HELLO, off the readiness path. */
void identity_prepare(void);

/* ---- inbound byte queue (util.c) ---- */
typedef struct inchunk inchunk_t;
typedef struct {
    inchunk_t *head, *tail;
    size_t bytes;
} inq_t;
int inq_push(inq_t *q, const uint8_t *p, size_t n);
/* Writes queued bytes to fd until it would block: bytes written, or -1 with errno. */
ssize_t inq_drain(inq_t *q, int fd);
void inq_clear(inq_t *q);

/* ---- small helpers (util.c) ---- */
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void logv(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_set_fd(int fd);
int64_t mono_ms(void);
int64_t boot_ms(void);
int64_t wall_ms(void);
/* Protocol error code for an errno value (NOT_FOUND, PERMISSION_DENIED, ...). */
const char *errno_code(int err);
const char *signal_name(int sig, char *buf, size_t n);
/* A signal given as "TERM", "SIGTERM" or "15"; -1 when unknown. */
int signal_parse(const char *s);
/* mkdir -p with mode 0755; 0 or -1 with errno. */
int mkdir_parents(const char *dir);
/* Writes all of buf to fd, retrying on EINTR; 0 or -1 with errno. */
int write_all(int fd, const void *buf, size_t n);
/* Writes data to path atomically (temp file in the same directory, fsync, rename). */
int write_file_atomic(const char *path, const char *data, size_t n, mode_t mode);
/* The same without the fsync, for files the agent writes again on every boot (/etc/hosts,
 * /etc/resolv.conf): under emulation each fsync is a journal commit of ~10 ms. */
int write_file_volatile(const char *path, const char *data, size_t n, mode_t mode);

#endif
