/*
 * The forked child of an exec: its own session and process group, its terminal or pipes as
 * descriptors 0-2, its working directory, and the PATH search execvp would do (with the
 * command's own environment, not the agent's). Exit status 126 or 127 on failure, as shells use.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

static void search_and_exec(const char *file, char **argv, char **envp) {
    if (strchr(file, '/')) {
        execve(file, argv, envp);
        return;
    }
    const char *path = DEFAULT_PATH;
    for (char **e = envp; *e; e++)
        if (strncmp(*e, "PATH=", 5) == 0) path = *e + 5;
    int eacces = 0;
    char buf[4096];
    for (const char *p = path;; p++) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        if (dl + strlen(file) + 2 < sizeof(buf)) {
            if (dl) memcpy(buf, p, dl);
            else buf[dl++] = '.';
            buf[dl] = '/';
            strcpy(buf + dl + 1, file);
            execve(buf, argv, envp);
            if (errno == EACCES) eacces = 1;
        }
        if (!colon) break;
        p = colon;
    }
    errno = eacces ? EACCES : ENOENT;
}

void exec_child(char **argv, char **envp, const char *cwd, int fd0, int fd1, int fd2, int slave) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    setsid();
    if (slave >= 0) {
        ioctl(slave, TIOCSCTTY, 0);
        fd0 = fd1 = fd2 = slave;
    }
    if (dup2(fd0, 0) < 0 || dup2(fd1, 1) < 0 || dup2(fd2, 2) < 0) _exit(126);
    if (chdir(cwd) != 0) {
        dprintf(2, "smolvm-agent: cannot enter \"%s\": %s\n", cwd, strerror(errno));
        _exit(126);
    }
    search_and_exec(argv[0], argv, envp);
    int e = errno;
    dprintf(2, "smolvm-agent: cannot run \"%s\": %s\n", argv[0], strerror(e));
    _exit(e == ENOENT || e == ENOTDIR ? 127 : 126);
}
