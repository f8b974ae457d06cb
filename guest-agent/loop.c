/*
 * The single epoll loop. Objects that may be freed while events for them are still queued in
 * the current batch are freed late (loop_defer_free) and have their handler fd set to -1, which
 * the dispatcher checks before every callback.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "agent.h"

#define MAX_EVENTS 64
#define MAX_FLUSH 4

static int g_epfd = -1;
static atimer_t *g_timers;
static idle_t *g_idle;
static void **g_graveyard;
static size_t g_grave_n, g_grave_cap;
static void (*g_flush[MAX_FLUSH])(void);
static int g_nflush;

int loop_init(void) {
    g_epfd = epoll_create1(EPOLL_CLOEXEC);
    return g_epfd < 0 ? -1 : 0;
}

void loop_set(handler_t *h, uint32_t events) {
    if (h->fd < 0 || h->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = h};
    int op = h->events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(g_epfd, op, h->fd, &ev) == 0) {
        h->events = events;
    } else if (op == EPOLL_CTL_MOD && errno == ENOENT) {
        if (epoll_ctl(g_epfd, EPOLL_CTL_ADD, h->fd, &ev) == 0) h->events = events;
    } else if (op == EPOLL_CTL_ADD && errno == EEXIST) {
        if (epoll_ctl(g_epfd, EPOLL_CTL_MOD, h->fd, &ev) == 0) h->events = events;
    } else if (op == EPOLL_CTL_DEL) {
        h->events = 0;
    } else {
        logmsg("epoll_ctl(fd %d): %s", h->fd, strerror(errno));
    }
}

void loop_close(handler_t *h) {
    if (h->fd < 0) return;
    if (h->events) epoll_ctl(g_epfd, EPOLL_CTL_DEL, h->fd, NULL);
    close(h->fd);
    h->fd = -1;
    h->events = 0;
}

void timer_arm(atimer_t *t, int64_t delay_ms) {
    t->due = mono_ms() + delay_ms;
    if (t->armed) return;
    t->armed = 1;
    t->prev = NULL;
    t->next = g_timers;
    if (g_timers) g_timers->prev = t;
    g_timers = t;
}

void timer_cancel(atimer_t *t) {
    if (!t->armed) return;
    if (t->prev) t->prev->next = t->next;
    else g_timers = t->next;
    if (t->next) t->next->prev = t->prev;
    t->armed = 0;
    t->next = t->prev = NULL;
}

void idle_on(idle_t *i) {
    if (i->on) return;
    i->on = 1;
    i->prev = NULL;
    i->next = g_idle;
    if (g_idle) g_idle->prev = i;
    g_idle = i;
}

void idle_off(idle_t *i) {
    if (!i->on) return;
    if (i->prev) i->prev->next = i->next;
    else g_idle = i->next;
    if (i->next) i->next->prev = i->prev;
    i->on = 0;
    i->next = i->prev = NULL;
}

void loop_defer_free(void *p) {
    if (g_grave_n == g_grave_cap) {
        size_t cap = g_grave_cap ? g_grave_cap * 2 : 64;
        void **g = realloc(g_graveyard, cap * sizeof(*g));
        if (!g) {
            /* Leaking one object beats a use-after-free. */
            return;
        }
        g_graveyard = g;
        g_grave_cap = cap;
    }
    g_graveyard[g_grave_n++] = p;
}

void loop_add_flush(void (*fn)(void)) {
    if (g_nflush < MAX_FLUSH) g_flush[g_nflush++] = fn;
}

static int next_timeout(void) {
    if (g_idle) return 0;
    if (!g_timers) return -1;
    int64_t now = mono_ms(), min = INT64_MAX;
    for (atimer_t *t = g_timers; t; t = t->next)
        if (t->due < min) min = t->due;
    int64_t d = min - now;
    if (d < 0) d = 0;
    if (d > 60000) d = 60000;
    return (int)d;
}

static void run_timers(void) {
    int64_t now = mono_ms();
    /* A fired timer may arm or cancel others: restart the scan after each one. */
    for (;;) {
        atimer_t *due = NULL;
        for (atimer_t *t = g_timers; t; t = t->next)
            if (t->due <= now) {
                due = t;
                break;
            }
        if (!due) return;
        timer_cancel(due);
        due->fire(due);
    }
}

static void run_idle(void) {
    /* Each idle item may switch itself or others off; walk a snapshot of the first pointers. */
    idle_t *i = g_idle;
    int budget = 4096;
    while (i && budget-- > 0) {
        idle_t *next = i->next;
        i->run(i);
        i = next;
        if (i && !i->on) i = g_idle; /* list changed under us: restart (bounded by budget) */
    }
}

void loop_run(void) {
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        for (int f = 0; f < g_nflush; f++) g_flush[f]();
        int n = epoll_wait(g_epfd, evs, MAX_EVENTS, next_timeout());
        if (n < 0) {
            if (errno != EINTR) {
                logmsg("epoll_wait: %s", strerror(errno));
                usleep(10000);
            }
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            handler_t *h = evs[i].data.ptr;
            if (h->fd >= 0) h->cb(h, evs[i].events);
        }
        run_timers();
        run_idle();
        for (size_t i = 0; i < g_grave_n; i++) free(g_graveyard[i]);
        g_grave_n = 0;
    }
}
