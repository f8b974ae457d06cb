/*
 * smolvm-agent: the guest's PID 1 and the server of the agent protocol (PROTOCOL.md).
 *
 *   smolvm-agent                       as PID 1 in a guest: init duties, virtio port, vsock
 *   smolvm-agent --listen unix:PATH    test mode on the host: many connections, no init duties
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

#define VSOCK_PORT 1024
#define PORT_RETRY_MS 50

struct agent_config g_cfg = {.env_file = "/etc/profile.d/smolvm-env.sh"};

static const char *g_unix_path;
static handler_t g_sig;
static atimer_t g_port_timer;
static int g_announced;

static void usage(void) {
    fprintf(stderr, "usage: smolvm-agent [--listen unix:PATH] [--env-file PATH] [--hunt] [--verbose] [--version]\n");
}

static void announce_ready(void) {
    if (g_announced) return;
    g_announced = 1;
    logmsg("ready");
}

static void reap(void) {
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        if (!exec_child_exited(pid, status)) init_child_exited(pid, status);
}

static void cleanup_and_exit(void) {
    sessions_teardown_all();
    if (g_unix_path) unlink(g_unix_path);
    exit(0);
}

static void signal_cb(handler_t *h, uint32_t ev) {
    (void)ev;
    struct signalfd_siginfo si;
    while (read(h->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        /* As PID 1 the kernel only delivers signals we handle; SIGTERM/SIGINT are ignored there
         * (shutdown comes through the protocol). */
        if (!g_cfg.pid1 && si.ssi_signo != SIGCHLD) {
            logmsg("exiting on signal %u from pid %u", si.ssi_signo, si.ssi_pid);
            cleanup_and_exit();
        }
    }
    reap();
}

/* Looks for the virtio port once; 0 when it is being served. */
static int try_port(void) {
    char dev[300];
    if (init_find_agent_port(dev, sizeof(dev)) != 0 || serve_port(dev) != 0) return -1;
    logv("serving the virtio port %s", dev);
    return 0;
}

static void port_retry(atimer_t *t) {
    static int complained;
    if (try_port() == 0) {
        announce_ready();
        return;
    }
    if (!complained) {
        complained = 1;
        logmsg("no virtio port named org.smolvm.agent yet; still looking");
    }
    timer_arm(t, PORT_RETRY_MS);
}

/* Setup that must not fail as PID 1: retry forever rather than exit. */
static void must(int ok, const char *what) {
    if (ok) return;
    logmsg("cannot %s: %s%s", what, strerror(errno), g_cfg.pid1 ? " (retrying)" : "");
    if (!g_cfg.pid1) exit(1);
    sleep(1);
}

int main(int argc, char **argv) {
    const char *listen_spec = NULL;
    g_cfg.pid1 = getpid() == 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("smolvm-agent " AGENT_VERSION "\n");
            return 0;
        } else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_spec = argv[++i];
        } else if (strcmp(argv[i], "--env-file") == 0 && i + 1 < argc) {
            g_cfg.env_file = argv[++i];
        } else if (strcmp(argv[i], "--hunt") == 0) {
            g_cfg.socket_hunt = 1;
        } else if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            g_cfg.verbose = 1;
        } else if (!g_cfg.pid1) {
            usage();
            return 2;
        }
        /* As PID 1, unknown arguments come from the kernel command line: ignore them. */
    }
    if (!g_cfg.pid1 && (!listen_spec || strncmp(listen_spec, "unix:", 5) != 0)) {
        usage();
        return 2;
    }
    if (listen_spec && strncmp(listen_spec, "unix:", 5) == 0) g_unix_path = listen_spec + 5;

    if (g_cfg.pid1) init_setup();
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0) break;

    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);

    envstore_load();
    int ok;
    do {
        ok = loop_init() == 0;
        must(ok, "create the event loop");
    } while (!ok);
    do {
        g_sig.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
        ok = g_sig.fd >= 0;
        must(ok, "create a signalfd");
    } while (!ok);
    g_sig.cb = signal_cb;
    loop_set(&g_sig, EPOLLIN);

    if (g_unix_path) {
        if (listen_unix(g_unix_path) != 0) {
            logmsg("cannot listen on %s: %s", g_unix_path, strerror(errno));
            if (!g_cfg.pid1) return 1;
        } else {
            announce_ready();
        }
    }
    if (g_cfg.pid1) {
        /* Firecracker's channel. Without a vsock device the bind may still succeed (the
         * kernel's loopback transport); it is then merely unused. */
        int vsock_ok = listen_vsock(VSOCK_PORT) == 0;
        if (vsock_ok) logv("listening on vsock port %d", VSOCK_PORT);
        int port_ok = try_port() == 0;
        if (vsock_ok || port_ok) announce_ready();
        if (!port_ok) {
            g_port_timer.fire = port_retry;
            port_retry(&g_port_timer);
        }
    }
    loop_run();
    return 0;
}
