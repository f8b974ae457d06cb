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

#ifndef RNDADDENTROPY
#define RNDADDENTROPY _IOW('R', 0x03, int[2])
#endif
#ifndef RNDRESEEDCRNG
#define RNDRESEEDCRNG _IO('R', 0x07)
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

int agent_set_clock(int64_t time_ms) { return set_clock(time_ms); }

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

int b64decode(const char *in, uint8_t *out, size_t cap) {
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

int rng_reseed(const uint8_t *seed, int n, int *credited, int *reseeded) {
    struct {
        int entropy_count;
        int buf_size;
        uint8_t buf[RESEED_MAX];
    } pool;
    *credited = *reseeded = 0;
    if (n <= 0 || n > RESEED_MAX) {
        errno = EINVAL;
        return -1;
    }
    int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    if (g_cfg.pid1) {
        /* Mixes the bytes in and credits them; then the CRNG is rekeyed from the pool now, not at
         * its next scheduled reseed (up to a minute away), so no read after this returns bytes of
         * the state a snapshot saved. */
        pool.entropy_count = n * 8;
        pool.buf_size = n;
        memcpy(pool.buf, seed, (size_t)n);
        *credited = ioctl(fd, RNDADDENTROPY, &pool) == 0;
        *reseeded = *credited && ioctl(fd, RNDRESEEDCRNG) == 0;
        explicit_bzero(pool.buf, sizeof(pool.buf));
    }
    /* Without the ioctls (test mode, or refused) the bytes are still mixed in, uncredited. */
    if (!*credited && write_all(fd, seed, (size_t)n) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    close(fd);
    return 0;
}

void op_reseed(session_t *s, uint32_t id, const jdoc_t *doc) {
    const char *data = NULL;
    uint8_t seed[RESEED_MAX];
    int n, credited, reseeded;
    if (json_opt_str(doc, 0, "data", &data) != 1 || (n = b64decode(data, seed, sizeof(seed))) <= 0) {
        reply_error(s, id, "BAD_REQUEST", "reseed needs data: 1 to %d bytes in base64", RESEED_MAX);
        return;
    }
    if (rng_reseed(seed, n, &credited, &reseeded) != 0) {
        reply_errno(s, id, errno, "cannot write /dev/urandom");
        return;
    }
    char json[80];
    snprintf(json, sizeof(json), "{\"bytes\":%d,\"credited\":%s,\"reseeded\":%s}", n, credited ? "true" : "false",
             reseeded ? "true" : "false");
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
