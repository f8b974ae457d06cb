/* The small operations: ping, clock, RNG, sync and shutdown. In test mode nothing here touches
 * the host's clock, entropy accounting or power state. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"

#define RESEED_MAX 4096
#ifndef RNDADDENTROPY
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#endif

void op_ping(session_t *s, uint32_t id, const jdoc_t *doc) {
    (void)doc;
    char json[96];
    snprintf(json, sizeof(json), "{\"timeMs\":%lld,\"bootTimeMs\":%lld}", (long long)wall_ms(), (long long)boot_ms());
    reply_result(s, id, json);
}

static int set_clock(int64_t ms) {
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    return clock_settime(CLOCK_REALTIME, &ts);
}

void agent_hello_time(int64_t time_ms) {
    if (g_cfg.pid1 && set_clock(time_ms) != 0) logmsg("cannot set the clock: %s", strerror(errno));
}

void op_set_time(session_t *s, uint32_t id, const jdoc_t *doc) {
    int64_t ms;
    if (json_opt_int(doc, 0, "timeMs", 1, INT64_C(1) << 50, &ms) != 1) {
        reply_error(s, id, "BAD_REQUEST", "setTime needs timeMs, milliseconds since the epoch");
        return;
    }
    if (!g_cfg.pid1) {
        reply_result(s, id, "{\"applied\":false}");
        return;
    }
    if (set_clock(ms) != 0) {
        reply_errno(s, id, errno, "cannot set the clock");
        return;
    }
    reply_result(s, id, "{\"applied\":true}");
}

static int b64val(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* Decodes base64 (padding optional) into out; returns the byte count or -1. */
static int b64decode(const char *in, uint8_t *out, size_t cap) {
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *in && *in != '='; in++) {
        int v = b64val(*in);
        if (v < 0) return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap) return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return (int)n;
}

void op_reseed(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *data = NULL;
    struct {
        int entropy_count;
        int buf_size;
        uint8_t buf[RESEED_MAX];
    } pool;
    int n;
    if (json_opt_str(doc, 0, "data", &data) != 1 || (n = b64decode(data, pool.buf, sizeof(pool.buf))) <= 0) {
        reply_error(s, id, "BAD_REQUEST", "reseed needs data: 1 to %d bytes in base64", RESEED_MAX);
        return;
    }
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        reply_errno(s, id, errno, "cannot open /dev/urandom");
        return;
    }
    int credited = 0;
    if (write_all(fd, pool.buf, (size_t)n) != 0) {
        int e = errno;
        close(fd);
        reply_errno(s, id, e, "cannot write /dev/urandom");
        return;
    }
    if (g_cfg.pid1) {
        pool.entropy_count = n * 8;
        pool.buf_size = n;
        credited = ioctl(fd, RNDADDENTROPY, &pool) == 0;
    }
    close(fd);
    char json[64];
    snprintf(json, sizeof(json), "{\"bytes\":%d,\"credited\":%s}", n, credited ? "true" : "false");
    reply_result(s, id, json);
}

void op_sync(session_t *s, uint32_t id, const jdoc_t *doc) {
    (void)doc;
    sync();
    reply_result(s, id, "{}");
}

/*
 * "answer": "before" (the default) replies and then goes down. "synced" replies once every other
 * process is gone and the root filesystem is synced and read-only: from then on nothing in the
 * guest is left to save, so the host may end the VM at once instead of waiting for the emulated
 * kernel's reboot path.
 */
void op_shutdown(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *action = NULL;
    const char *answer = NULL;
    if (json_opt_str(doc, 0, "action", &action) < 0 ||
        (action && strcmp(action, "reboot") != 0 && strcmp(action, "poweroff") != 0)) {
        reply_error(s, id, "BAD_REQUEST", "shutdown action must be \"reboot\" or \"poweroff\"");
        return;
    }
    if (json_opt_str(doc, 0, "answer", &answer) < 0 ||
        (answer && strcmp(answer, "before") != 0 && strcmp(answer, "synced") != 0)) {
        reply_error(s, id, "BAD_REQUEST", "shutdown answer must be \"before\" or \"synced\"");
        return;
    }
    int poweroff = action && strcmp(action, "poweroff") == 0;
    if (answer && strcmp(answer, "synced") == 0) {
        agent_quiesce();
        reply_result(s, id, "{\"synced\":true}");
        session_flush_blocking(s, 500);
        agent_power_off(poweroff);
        return;
    }
    reply_result(s, id, "{}");
    session_flush_blocking(s, 500);
    agent_shutdown(poweroff);
}

/* Waits for children to exit, up to `ms`; returns early once there are none left. */
static void reap_for(int ms) {
    int64_t end = mono_ms() + ms;
    for (;;) {
        pid_t p;
        while ((p = waitpid(-1, NULL, WNOHANG)) > 0) {
        }
        if ((p < 0 && errno == ECHILD) || mono_ms() >= end) return;
        usleep(1000);
    }
}

void agent_quiesce(void) {
    sessions_teardown_all();
    if (!g_cfg.pid1) return;
    logmsg("shutting down");
    kill(-1, SIGTERM);
    reap_for(1000);
    kill(-1, SIGKILL);
    reap_for(200);
    sync();
    mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);
}

void agent_power_off(int poweroff) {
    if (!g_cfg.pid1) exit(0);
    if (poweroff) reboot(RB_POWER_OFF);
    reboot(RB_AUTOBOOT);
    logmsg("reboot failed: %s", strerror(errno));
}

void agent_shutdown(int poweroff) {
    agent_quiesce();
    agent_power_off(poweroff);
}
