/*
 * smolvm floor init: the least a guest can do. Run as PID 1 on the same kernel and disk setup
 * as a real sandbox, it prints one line and reboots at once (`reboot=t` on the kernel command
 * line plus QEMU's -no-reboot turn that into a QEMU exit), so host-side timing of this image
 * is the boot floor that the agent's readiness is compared against.
 *
 * Build: cc -static -Os -s -o init init.c
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/reboot.h>

int main(void) {
    struct timespec up;
    char line[96];
    int n;

    clock_gettime(CLOCK_BOOTTIME, &up);
    n = snprintf(line, sizeof line, "smolvm-floor: init reached at %ld.%06ld s\n",
                 (long)up.tv_sec, up.tv_nsec / 1000L);
    if (n > 0) {
        /* The kernel gives PID 1 /dev/console as fds 0-2 when /dev exists (devtmpfs). */
        if (write(1, line, (size_t)n) < 0) { /* nothing to report to */ }
    }
    sync();
    reboot(RB_AUTOBOOT);
    /* Only reached if reboot failed: PID 1 must not exit (that panics, which also ends QEMU). */
    for (;;) pause();
}
