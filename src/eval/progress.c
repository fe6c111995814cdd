/* progress.c - one-line progress bar with rate and ETA on stderr. */
#include "eval.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

double pare_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_time(char *buf, size_t n, double s) {
    if (s < 0 || s > 1e7) { snprintf(buf, n, "--:--"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static int g_quiet;
void progress_set_quiet(int quiet) { g_quiet = quiet; }

/* enabled: 0 silent, 1 the bar (stderr a terminal), 2 a plain line every PROGRESS_LINE_S
 * seconds (stderr a file or pipe); PARE_PROGRESS=0/1/2 overrides, --quiet silences */
#define PROGRESS_LINE_S 10.0
void progress_start(pare_progress *p, const char *label, int64_t total) {
    const char *e = getenv("PARE_PROGRESS");
    p->label = label; p->total = total; p->done = 0;
    p->t0 = p->last = pare_now();
    p->enabled = g_quiet ? 0 : e ? atoi(e) : isatty(2) ? 1 : 2;
    if (p->enabled < 0 || p->enabled > 2) p->enabled = 1;
}

static void draw(pare_progress *p, double now) {
    double el = now - p->t0, frac = p->total > 0 ? (double)p->done / (double)p->total : 0;
    double eta = frac > 0 ? el * (1 - frac) / frac : -1, rate = el > 0 ? (double)p->done / el : 0;
    char e1[32], e2[32], bar[31];
    int w = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < w ? '#' : '.';
    bar[30] = 0;
    fmt_time(e1, sizeof e1, el); fmt_time(e2, sizeof e2, eta);
    if (p->enabled == 1)
        fprintf(stderr, "\r%s [%s] %lld/%lld %3.0f%% %.3g/s %s elapsed, ETA %s ", p->label, bar, (long long)p->done,
                (long long)p->total, 100 * frac, rate, e1, e2);
    else
        fprintf(stderr, "%s: %lld/%lld (%.0f%%), %.3g/s, %s elapsed, ETA %s\n", p->label, (long long)p->done,
                (long long)p->total, 100 * frac, rate, e1, e2);
    fflush(stderr);
}

void progress_update(pare_progress *p, int64_t done) {
    p->done = done;
    if (!p->enabled) return;
    double now = pare_now();
    /* the bar: only after the first second, at most 10 times a second; lines: every 10 s */
    if (p->enabled == 1 && (now - p->t0 < 1.0 || now - p->last < 0.1)) return;
    if (p->enabled == 2 && now - p->last < PROGRESS_LINE_S) return;
    p->last = now;
    draw(p, now);
}

void progress_end(pare_progress *p) {
    if (!p->enabled) return;
    double now = pare_now();
    if (p->enabled == 1 && now - p->t0 >= 1.0) { draw(p, now); fputc('\n', stderr); }
    if (p->enabled == 2 && p->last > p->t0) draw(p, now); /* a closing line after periodic ones */
}
