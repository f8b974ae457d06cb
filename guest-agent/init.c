/*
 * PID-1 duties: the mounts a userland expects, hostname and network from the kernel command
 * line, finding the agent's virtio port, and sshd once the host has said hello. Every step
 * logs and carries on when it fails: an init that exits panics the kernel.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define PORT_NAME "org.smolvm.agent"

static pid_t g_sshd_pid;

static void mount_one(const char *src, const char *target, const char *type, unsigned long flags, const char *opts) {
    mkdir(target, 0755);
    if (mount(src, target, type, flags, opts) != 0 && errno != EBUSY)
        logmsg("cannot mount %s on %s: %s", type, target, strerror(errno));
}

static size_t read_small(const char *path, char *buf, size_t cap) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n < 0) n = 0;
    buf[n] = 0;
    return (size_t)n;
}

/* Copies the value of `key=` from the kernel command line into out; 0 when found. */
static int cmdline_get(const char *cmdline, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    for (const char *p = cmdline; *p;) {
        while (*p == ' ' || *p == '\n') p++;
        const char *end = p;
        while (*end && *end != ' ' && *end != '\n') end++;
        if ((size_t)(end - p) > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = (size_t)(end - p) - kl - 1;
            if (vl >= cap) return -1;
            memcpy(out, p + kl + 1, vl);
            out[vl] = 0;
            return 0;
        }
        p = end;
    }
    return -1;
}

static int set_addr(struct sockaddr *sa, const char *ip) {
    struct sockaddr_in *sin = (struct sockaddr_in *)sa;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    return inet_pton(AF_INET, ip, &sin->sin_addr) == 1 ? 0 : -1;
}

/* Brings an interface up, with an IPv4 address when given one (ADDR/PREFIX). */
static void if_config(int sock, const char *ifname, const char *cidr) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (cidr) {
        char ip[64];
        int prefix = 32;
        snprintf(ip, sizeof(ip), "%s", cidr);
        char *slash = strchr(ip, '/');
        if (slash) {
            *slash = 0;
            prefix = atoi(slash + 1);
            if (prefix < 0 || prefix > 32) prefix = 32;
        }
        if (set_addr(&ifr.ifr_addr, ip) != 0 || ioctl(sock, SIOCSIFADDR, &ifr) != 0) {
            logmsg("cannot set address %s on %s: %s", cidr, ifname, strerror(errno));
        } else {
            struct sockaddr_in *m = (struct sockaddr_in *)&ifr.ifr_netmask;
            m->sin_family = AF_INET;
            m->sin_addr.s_addr = htonl(prefix ? 0xFFFFFFFFu << (32 - prefix) : 0);
            if (ioctl(sock, SIOCSIFNETMASK, &ifr) != 0) logmsg("cannot set netmask on %s: %s", ifname, strerror(errno));
        }
    }
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) {
        logmsg("no interface %s: %s", ifname, strerror(errno));
        return;
    }
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) logmsg("cannot bring %s up: %s", ifname, strerror(errno));
}

static void add_default_route(int sock, const char *gw) {
    struct rtentry rt;
    memset(&rt, 0, sizeof(rt));
    set_addr(&rt.rt_dst, "0.0.0.0");
    set_addr(&rt.rt_genmask, "0.0.0.0");
    if (set_addr(&rt.rt_gateway, gw) != 0) {
        logmsg("bad gateway address %s", gw);
        return;
    }
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = "eth0";
    if (ioctl(sock, SIOCADDRT, &rt) != 0 && errno != EEXIST) logmsg("cannot add route via %s: %s", gw, strerror(errno));
}

static void if_down(int sock, const char *ifname) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return;
    ifr.ifr_flags &= ~IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) logmsg("cannot take %s down: %s", ifname, strerror(errno));
}

/* Whether ifname has the IPv4 address of `cidr` (ADDR/PREFIX) now. */
static int has_address(int sock, const char *ifname, const char *cidr) {
    char ip[64];
    snprintf(ip, sizeof(ip), "%s", cidr);
    char *slash = strchr(ip, '/');
    if (slash) *slash = 0;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    struct sockaddr_in want;
    if (ioctl(sock, SIOCGIFADDR, &ifr) != 0 || set_addr((struct sockaddr *)&want, ip) != 0) return 0;
    return ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr == want.sin_addr.s_addr;
}

static void forget_neighbour(int sock, const char *ifname, const char *ip) {
    struct arpreq req;
    memset(&req, 0, sizeof(req));
    if (set_addr(&req.arp_pa, ip) != 0) return;
    snprintf(req.arp_dev, sizeof(req.arp_dev), "%s", ifname);
    if (ioctl(sock, SIOCDARP, &req) != 0 && errno != ENXIO) logmsg("cannot forget the neighbour %s: %s", ip, strerror(errno));
}

void init_configure_network(const char *ip, const char *gw, const char *dns, int restart) {
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        logmsg("cannot configure the network: %s", strerror(errno));
        return;
    }
    int same = ip && restart && has_address(sock, "eth0", ip);
    if (same) {
        if (gw) forget_neighbour(sock, "eth0", gw);
    } else {
        if (ip && restart) if_down(sock, "eth0");
        if (ip) if_config(sock, "eth0", ip);
    }
    if (ip && gw) add_default_route(sock, gw);
    close(sock);
    if (dns) {
        char text[96], now[128];
        int n = snprintf(text, sizeof(text), "nameserver %s\n", dns);
        struct stat st;
        if (lstat("/etc/resolv.conf", &st) == 0 && S_ISREG(st.st_mode) && read_small("/etc/resolv.conf", now, sizeof(now)) == (size_t)n &&
            memcmp(now, text, (size_t)n) == 0)
            return;
        /* /etc/resolv.conf may be a dangling symlink (systemd-resolved images): replace it. */
        unlink("/etc/resolv.conf");
        if (write_file_volatile("/etc/resolv.conf", text, (size_t)n, 0644) != 0)
            logmsg("cannot write /etc/resolv.conf: %s", strerror(errno));
    }
}

static void setup_network(const char *cmdline) {
    char ip[64], gw[64], dns[64];
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock >= 0) {
        if_config(sock, "lo", "127.0.0.1/8");
        close(sock);
    }
    int has_ip = cmdline_get(cmdline, "smolvm.ip", ip, sizeof(ip)) == 0;
    int has_gw = has_ip && cmdline_get(cmdline, "smolvm.gw", gw, sizeof(gw)) == 0;
    int has_dns = cmdline_get(cmdline, "smolvm.dns", dns, sizeof(dns)) == 0;
    init_configure_network(has_ip ? ip : NULL, has_gw ? gw : NULL, has_dns ? dns : NULL, 0);
}

int init_set_hostname(const char *name) {
    if (sethostname(name, strlen(name)) != 0) return -1;
    /* /etc/hosts keeps every line but the one smolvm owns: 127.0.1.1 and the hostname. */
    char hosts[8192], out[8192 + 80];
    size_t n = read_small("/etc/hosts", hosts, sizeof(hosts)), o = 0;
    if (n == 0) n = (size_t)snprintf(hosts, sizeof(hosts), "127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    int found = 0;
    for (char *line = hosts, *end; *line; line = end) {
        end = strchr(line, '\n');
        end = end ? end + 1 : line + strlen(line);
        size_t len = (size_t)(end - line);
        if (strncmp(line, "127.0.1.1", 9) == 0 && (line[9] == ' ' || line[9] == '\t')) {
            char want[96];
            int wl = snprintf(want, sizeof(want), "127.0.1.1\t%s\n", name);
            if ((size_t)wl == len && memcmp(line, want, len) == 0) found = 1;
            continue;
        }
        memcpy(out + o, line, len);
        o += len;
        if (len > 0 && line[len - 1] != '\n') out[o++] = '\n';
    }
    if (found) return 0;
    o += (size_t)snprintf(out + o, sizeof(out) - o, "127.0.1.1\t%s\n", name);
    return write_file_volatile("/etc/hosts", out, o, 0644);
}

static void setup_hostname(const char *cmdline) {
    char name[65];
    if (cmdline_get(cmdline, "smolvm.hostname", name, sizeof(name)) != 0) return;
    if (init_set_hostname(name) != 0) logmsg("cannot set hostname: %s", strerror(errno));
}

void init_setup(void) {
    umask(022);
    if (chdir("/") != 0) {
    }
    mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    mount_one("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_one("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_one("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");

    int con = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (con >= 0) log_set_fd(con);
    /* Children are given explicit fds, but keep 0-2 open so no pipe of ours lands there. */
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0) open(fd == 0 ? "/dev/null" : "/dev/console", fd == 0 ? O_RDONLY : O_WRONLY | O_NOCTTY);

    char cmdline[4096], flag[8];
    read_small("/proc/cmdline", cmdline, sizeof(cmdline));
    if (cmdline_get(cmdline, "smolvm.verbose", flag, sizeof(flag)) == 0 && flag[0] == '1') g_cfg.verbose = 1;
    setup_hostname(cmdline);
    setup_network(cmdline);
}

int init_find_agent_port(char *dev, size_t n) {
    DIR *d = opendir("/sys/class/virtio-ports");
    if (!d) return -1;
    struct dirent *e;
    int found = -1;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[512], name[128];
        snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
        read_small(path, name, sizeof(name));
        name[strcspn(name, "\n")] = 0;
        if (strcmp(name, PORT_NAME) == 0) {
            snprintf(dev, n, "/dev/%s", e->d_name);
            found = 0;
            break;
        }
    }
    closedir(d);
    return found;
}

static int has_host_key(void) {
    DIR *d = opendir("/etc/ssh");
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        found = strncmp(e->d_name, "ssh_host_", 9) == 0 && l > 13 && strcmp(e->d_name + l - 4, "_key") == 0;
    }
    closedir(d);
    return found;
}

/* Starts argv in its own session with /dev/null for stdio; returns the pid or -1. */
static pid_t spawn_detached(char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        setsid();
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        char *envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", NULL};
        execve(argv[0], argv, envp);
        _exit(127);
    }
    return pid;
}

void init_after_first_hello(void) {
    /* The first exec in a fresh guest pays for a cold page cache, dynamic loader and (under
     * emulation) translation cache: ~150 ms against ~35 ms warm under TCG. Pay it now, off the
     * readiness path, so the host's first command finds the shell and libc warm. The reaper
     * collects it like any orphan. */
    static int warmed;
    if (!warmed) {
        warmed = 1;
        identity_prepare();
        char *warm[] = {"/bin/sh", "-c", "true", NULL};
        if (access(warm[0], X_OK) == 0 && spawn_detached(warm) < 0) logmsg("cannot warm up: %s", strerror(errno));
    }
    if (g_sshd_pid > 0 || access("/usr/sbin/sshd", X_OK) != 0 || !has_host_key()) return;
    mkdir("/run/sshd", 0755);
    char *argv[] = {"/usr/sbin/sshd", "-D", NULL};
    pid_t pid = spawn_detached(argv);
    if (pid < 0) logmsg("cannot start sshd: %s", strerror(errno));
    else g_sshd_pid = pid;
}

int init_child_exited(pid_t pid, int status) {
    if (pid != g_sshd_pid) return 0;
    logmsg("sshd exited (status %d)", status);
    g_sshd_pid = 0;
    return 1;
}
