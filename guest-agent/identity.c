/*
 * A restored snapshot becomes a machine of its own: one operation, sent by the host right after
 * a restore and before anyone else is answered, sets the clock, rekeys the kernel's RNG from host
 * bytes, gives the guest a new hostname and boot id, and re-initialises eth0 for the network the
 * new VM was given. Two sandboxes restored from one snapshot share nothing of these afterwards.
 *
 * The boot id: the kernel makes /proc/sys/kernel/random/boot_id once per boot and refuses
 * writes, so a restored guest would keep the saved one. The agent bind-mounts a file of its own
 * (BOOT_ID_FILE, on the /run tmpfs) over it and rewrites that file in place on every later
 * restore; programs that read the path see the new id.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_FILE "/run/smolvm/boot_id"
#define UUID_LEN 36

static int set_boot_id(const char *uuid);

void identity_prepare(void) {
    char id[UUID_LEN + 2] = {0};
    int fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, id, UUID_LEN + 1);
    close(fd);
    if (n != UUID_LEN + 1) return;
    id[UUID_LEN] = 0;
    if (set_boot_id(id) != 0) logmsg("cannot prepare the boot id for restores: %s", strerror(errno));
}

/* A version-4 UUID from the (just reseeded) kernel RNG; 0 or -1 with errno. */
static int make_uuid(char out[UUID_LEN + 1]) {
    uint8_t b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) return -1;
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, UUID_LEN + 1, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
             b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return 0;
}

/* Puts `uuid` where BOOT_ID_PATH is read from; 0 or -1 with errno. */
static int set_boot_id(const char *uuid) {
    char line[UUID_LEN + 2];
    snprintf(line, sizeof(line), "%s\n", uuid);
    if (mkdir("/run/smolvm", 0755) != 0 && errno != EEXIST) return -1;
    /* Written in place, never replaced: once mounted, the mount holds this inode. */
    int fd = open(BOOT_ID_FILE, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0) return -1;
    int ok = pwrite(fd, line, UUID_LEN + 1, 0) == UUID_LEN + 1;
    int e = errno;
    close(fd);
    if (!ok) {
        errno = e;
        return -1;
    }
    /* Mounted already (an earlier restore, or identity_prepare) when the path is our file. */
    struct stat ours, seen;
    if (stat(BOOT_ID_FILE, &ours) == 0 && stat(BOOT_ID_PATH, &seen) == 0 && ours.st_dev == seen.st_dev && ours.st_ino == seen.st_ino)
        return 0;
    return mount(BOOT_ID_FILE, BOOT_ID_PATH, NULL, MS_BIND, NULL);
}

/*
 * {"op":"identity","timeMs":N,"seed":BASE64,"hostname"?:NAME,"ip"?:ADDR/PREFIX,"gw"?:ADDR,
 * "dns"?:ADDR} -> {"applied":true,"bootId":UUID,"reseeded":bool}. A test-mode agent checks the
 * request and applies nothing ({"applied":false}).
 */
void op_identity(session_t *s, uint32_t id, const jdoc_t *doc) {
    int64_t ms;
    const char *seed64 = NULL, *hostname = NULL, *ip = NULL, *gw = NULL, *dns = NULL;
    uint8_t seed[RESEED_MAX];
    int n = -1;
    if (json_opt_int(doc, 0, "timeMs", 1, INT64_C(1) << 50, &ms) != 1 || json_opt_str(doc, 0, "seed", &seed64) != 1 ||
        (n = b64decode(seed64, seed, sizeof(seed))) < 16 || json_opt_str(doc, 0, "hostname", &hostname) < 0 ||
        json_opt_str(doc, 0, "ip", &ip) < 0 || json_opt_str(doc, 0, "gw", &gw) < 0 || json_opt_str(doc, 0, "dns", &dns) < 0) {
        reply_error(s, id, "BAD_REQUEST", "identity needs timeMs, a seed of 16 to %d bytes in base64, and optional "
                    "hostname, ip, gw and dns strings", RESEED_MAX);
        return;
    }
    if (hostname && (strlen(hostname) < 1 || strlen(hostname) > 63)) {
        reply_error(s, id, "BAD_REQUEST", "a hostname has 1 to 63 characters");
        return;
    }
    if ((ip && strlen(ip) > 63) || (gw && strlen(gw) > 63) || (dns && strlen(dns) > 63)) {
        reply_error(s, id, "BAD_REQUEST", "ip, gw and dns are IPv4 addresses");
        return;
    }
    if (!g_cfg.pid1) {
        explicit_bzero(seed, sizeof(seed));
        reply_result(s, id, "{\"applied\":false}");
        return;
    }
    /* The clock first: everything after it (logs, file times) is stamped with the host's now. */
    if (agent_set_clock(ms) != 0) logmsg("identity: cannot set the clock: %s", strerror(errno));
    int credited = 0, reseeded = 0;
    if (rng_reseed(seed, n, &credited, &reseeded) != 0) logmsg("identity: cannot reseed: %s", strerror(errno));
    explicit_bzero(seed, sizeof(seed));
    char uuid[UUID_LEN + 1] = "";
    if (make_uuid(uuid) != 0 || set_boot_id(uuid) != 0) {
        logmsg("identity: cannot set the boot id: %s", strerror(errno));
        uuid[0] = 0;
    }
    if (hostname && init_set_hostname(hostname) != 0) logmsg("identity: cannot set the hostname: %s", strerror(errno));
    if (ip || dns) init_configure_network(ip, gw, dns, 1);

    jw_t w;
    jw_init(&w);
    jw_raw(&w, "{\"applied\":true,\"bootId\":");
    jw_cstr(&w, uuid);
    jw_raw(&w, reseeded ? ",\"reseeded\":true}" : ",\"reseeded\":false}");
    if (w.oom) reply_error(s, id, "INTERNAL", "out of memory");
    else reply_result(s, id, w.buf);
    jw_free(&w);
}
