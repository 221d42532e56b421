/*
 * pollux top --region NAME [--once] [--interval S]: a live dashboard of a
 * region, drawn with ncurses a few times a second; one plain-text frame
 * with --once or when stdout is not a terminal.
 *
 * It only reads the region (px_stats, px_region_procs, px_list, px_info):
 * the workers pay nothing for it. Throughput is the change in finished
 * tasks between two frames, kept here for the sparkline.
 */
#include "cli.h"

#include <curses.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HISTORY 60 /* throughput samples kept for the sparkline */
#define RECENT 200 /* latest tasks kept for the list */

struct top {
    const char *name;
    px_region *r;
    struct cli_snapshot snap[2]; /* the previous frame's and this one's */
    int cur;
    double rates[HISTORY];
    int nrates;
    px_task_info recent[RECENT], failures[8];
    int nrecent, nfailures;
    int filter; /* a px_state, 0: all */
    int scroll, selected;
    bool paused, curses, details;
    int row; /* the next line to draw */
};

static void usage(FILE *f)
{
    fprintf(f, "usage: pollux top --region NAME [--once] [--interval S]\n"
               "       pollux top NAME [--once] [--interval S]\n"
               "\n"
               "A live view of the region: header, workers, queues (depth per priority,\n"
               "oldest pending), throughput with a sparkline, latency percentiles, the\n"
               "latest tasks and recent failures. Keys: q quit, p pause, up/down scroll\n"
               "the task list, f cycle the state filter, Enter show the selected task.\n"
               "--once (or a stdout that is not a terminal) prints one frame as text.\n"
               "--interval S: seconds between frames (default 0.5). Exits 1 for an\n"
               "unknown region.\n");
}

/* One line of the frame: on the screen at the next row, or on stdout. */
static void line(struct top *t, int attr, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (!t->curses) {
        puts(buf);
        return;
    }
    if (t->row >= LINES)
        return;
    attron(attr);
    mvaddnstr(t->row++, 0, buf, COLS);
    attroff(attr);
}

static int state_color(int st)
{
    switch (st) {
    case PX_SUCCESS:
        return 1;
    case PX_FAILED:
    case PX_DEAD:
        return 2;
    case PX_RUNNING:
    case PX_CANCEL_REQUESTED:
        return 3;
    case PX_CANCELLED:
        return 4;
    default:
        return 5;
    }
}

static int color(struct top *t, int pair)
{
    return t->curses && has_colors() ? COLOR_PAIR(pair) : 0;
}

static uint64_t latest_ns(const px_task_info *ti)
{
    uint64_t a = ti->enqueued_ns, b = ti->started_ns, c = ti->finished_ns;
    return a > b ? (a > c ? a : c) : (b > c ? b : c);
}

static int by_latest(const void *x, const void *y)
{
    uint64_t a = latest_ns(x), b = latest_ns(y);
    return (a < b) - (a > b);
}

/* Reads every task (px_list, px_info) and keeps the latest RECENT that
 * pass the filter, and the latest failures. */
static void collect(struct top *t)
{
    static px_task_info all[RECENT * 4];
    px_id ids[512];
    uint32_t cursor = 0;
    int n = 0, nfail = 0;
    static px_task_info fails[64];
    int got;
    while ((got = px_list(t->r, &(px_list_opts){.state = t->filter}, ids, 512, &cursor)) > 0) {
        for (int i = 0; i < got; i++) {
            px_task_info ti;
            if (px_info(t->r, ids[i], &ti) != 0)
                continue;
            if (n == RECENT * 4) { /* keep the latest half, then go on */
                qsort(all, (size_t)n, sizeof *all, by_latest);
                n = RECENT;
            }
            all[n++] = ti;
            if ((ti.state == PX_FAILED || ti.state == PX_DEAD) && nfail < 64)
                fails[nfail++] = ti;
        }
    }
    qsort(all, (size_t)n, sizeof *all, by_latest);
    t->nrecent = n < RECENT ? n : RECENT;
    memcpy(t->recent, all, (size_t)t->nrecent * sizeof *all);
    qsort(fails, (size_t)nfail, sizeof *fails, by_latest);
    t->nfailures = nfail < 8 ? nfail : 8;
    memcpy(t->failures, fails, (size_t)t->nfailures * sizeof *fails);
}

static double total_rate(const struct top *t)
{
    const struct cli_snapshot *b = &t->snap[t->cur], *a = &t->snap[1 - t->cur];
    if (!a->taken_ns)
        return 0;
    double sum = 0;
    for (uint32_t q = 0; q < b->st.nqueues; q++)
        sum += cli_rate(a, b, q);
    return sum;
}

static void sparkline(const struct top *t, char *buf, size_t cap)
{
    static const char *const bars = " .:-=+*#";
    double max = 0;
    for (int i = 0; i < t->nrates; i++)
        if (t->rates[i] > max)
            max = t->rates[i];
    size_t k = 0;
    for (int i = 0; i < t->nrates && k + 1 < cap; i++)
        buf[k++] = bars[max > 0 ? (int)(t->rates[i] / max * 7 + 0.5) : 0];
    buf[k] = '\0';
}

static void draw_header(struct top *t, const struct cli_snapshot *s)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t up = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    up = up > s->info.created_ns ? up - s->info.created_ns : 0;
    char upt[32];
    cli_duration(up, upt, sizeof upt);
    const char *dur = s->info.durability == PX_DURABLE_SYNC    ? "sync"
                      : s->info.durability == PX_DURABLE_ASYNC ? "async"
                                                               : "none";
    line(t, A_BOLD, "POLLUX %s  durability=%s  uptime=%s  processes=%u  slots=%u/%u%s", t->name,
         dur, upt, s->info.processes, s->info.slots_used, s->info.capacity,
         t->paused ? "  [paused]" : "");
}

static void draw_workers(struct top *t, const struct cli_snapshot *s)
{
    uint32_t th = 0, thb = 0, ch = 0, chb = 0;
    for (int i = 0; i < s->nprocs; i++) {
        th += s->procs[i].threads, thb += s->procs[i].threads_busy;
        ch += s->procs[i].children, chb += s->procs[i].children_busy;
    }
    line(t, A_BOLD, "WORKERS  threads %u/%u busy  processes %u/%u busy", thb, th, chb, ch);
    for (int i = 0; i < s->nprocs; i++) {
        const px_proc_info *p = &s->procs[i];
        if (p->role == PX_ROLE_WORKER)
            line(t, 0, "  pid %-8d threads %u/%u  processes %u/%u", (int)p->pid, p->threads_busy,
                 p->threads, p->children_busy, p->children);
    }
}

static void draw_queues(struct top *t, const struct cli_snapshot *s)
{
    line(t, A_BOLD, "QUEUES   %-16s %8s %8s %8s %24s %9s %10s %10s %10s %10s", "queue", "pending",
         "running", "waiting", "pending by prio 1..5", "oldest", "wait p50", "wait p99", "run p50",
         "run p99");
    for (uint32_t q = 0; q < s->st.nqueues; q++) {
        const px_queue_stats *qs = &s->st.queues[q];
        char old[16], w50[16], w99[16], r50[16], r99[16], prio[40];
        cli_duration(qs->oldest_pending_age_ns, old, sizeof old);
        cli_duration(qs->wait.p50_ns, w50, sizeof w50);
        cli_duration(qs->wait.p99_ns, w99, sizeof w99);
        cli_duration(qs->run.p50_ns, r50, sizeof r50);
        cli_duration(qs->run.p99_ns, r99, sizeof r99);
        snprintf(prio, sizeof prio, "%llu/%llu/%llu/%llu/%llu",
                 (unsigned long long)qs->pending_by_priority[1],
                 (unsigned long long)qs->pending_by_priority[2],
                 (unsigned long long)qs->pending_by_priority[3],
                 (unsigned long long)qs->pending_by_priority[4],
                 (unsigned long long)qs->pending_by_priority[5]);
        line(t, 0, "         %-16s %8llu %8llu %8llu %24s %9s %10s %10s %10s %10s%s", qs->name,
             (unsigned long long)qs->by_state[PX_PENDING],
             (unsigned long long)qs->by_state[PX_RUNNING],
             (unsigned long long)(qs->by_state[PX_SCHEDULED] + qs->by_state[PX_RETRY]), prio, old,
             w50, w99, r50, r99, qs->paused ? "  paused" : "");
    }
    char spark[HISTORY + 1];
    sparkline(t, spark, sizeof spark);
    line(t, A_BOLD, "THROUGHPUT %.1f tasks/s  [%s]", total_rate(t), spark);
}

static void draw_task(struct top *t, const px_task_info *ti, bool selected)
{
    char id[PX_ID_LEN + 1], dur[16] = "-";
    px_id_format(ti->id, id);
    if (ti->finished_ns && ti->started_ns && ti->finished_ns >= ti->started_ns)
        cli_duration(ti->finished_ns - ti->started_ns, dur, sizeof dur);
    int attr = color(t, state_color((int)ti->state)) | (selected ? A_REVERSE : 0);
    line(t, attr, "  %s %-16s %-24.24s %10s %s", id, px_state_name((int)ti->state), ti->name, dur,
         ti->state == PX_FAILED || ti->state == PX_DEAD ? ti->error : "");
}

static void draw_tasks(struct top *t)
{
    line(t, A_BOLD, "TASKS (latest first; filter: %s)",
         t->filter ? px_state_name(t->filter) : "all");
    int room = t->curses ? LINES - t->row - 2 - (t->nfailures ? t->nfailures + 1 : 0) : 10;
    if (room < 3)
        room = 3;
    if (t->selected < t->scroll)
        t->scroll = t->selected;
    if (t->selected >= t->scroll + room)
        t->scroll = t->selected - room + 1;
    for (int i = t->scroll; i < t->nrecent && i < t->scroll + room; i++)
        draw_task(t, &t->recent[i], t->curses && i == t->selected);
    line(t, A_BOLD, "FAILURES");
    for (int i = 0; i < t->nfailures; i++)
        draw_task(t, &t->failures[i], false);
}

static void draw_details(struct top *t)
{
    if (t->selected >= t->nrecent)
        return;
    px_task_info ti;
    if (px_info(t->r, t->recent[t->selected].id, &ti) != 0)
        ti = t->recent[t->selected];
    char id[PX_ID_LEN + 1];
    px_id_format(ti.id, id);
    line(t, A_BOLD, "TASK %s  (Enter or Esc to go back)", id);
    line(t, 0, "  task %s  queue %s  state %s  priority %d  attempts %u", ti.name, ti.queue,
         px_state_name((int)ti.state), (int)ti.priority, ti.attempts);
    line(t, 0, "  worker pid %d  result %u bytes", (int)ti.worker_pid, ti.result_len);
    line(t, 0, "  enqueued %llu  started %llu  finished %llu (ns since the epoch)",
         (unsigned long long)ti.enqueued_ns, (unsigned long long)ti.started_ns,
         (unsigned long long)ti.finished_ns);
    if (ti.error[0])
        line(t, color(t, 2), "  error: %s", ti.error);
}

static void frame(struct top *t)
{
    const struct cli_snapshot *s = &t->snap[t->cur];
    t->row = 0;
    if (t->curses)
        erase();
    draw_header(t, s);
    if (t->details) {
        draw_details(t);
    } else {
        draw_workers(t, s);
        draw_queues(t, s);
        draw_tasks(t);
    }
    if (t->curses) {
        mvaddnstr(LINES - 1, 0, "q quit  p pause  up/down scroll  f filter  Enter details", COLS);
        refresh();
    }
}

/* Takes a new snapshot and task list, and the throughput since the last. */
static int sample(struct top *t)
{
    t->cur = 1 - t->cur;
    int rc = cli_snapshot_take(t->r, &t->snap[t->cur]);
    if (rc)
        return rc;
    if (t->snap[1 - t->cur].taken_ns) {
        if (t->nrates == HISTORY)
            memmove(t->rates, t->rates + 1, (HISTORY - 1) * sizeof *t->rates);
        else
            t->nrates++;
        t->rates[t->nrates - 1] = total_rate(t);
    }
    collect(t);
    return 0;
}

static const int filters[] = {0,          PX_PENDING, PX_SCHEDULED, PX_RUNNING, PX_RETRY,
                              PX_SUCCESS, PX_FAILED,  PX_CANCELLED, PX_DEAD};

/* Handles one key; false to quit. */
static bool key(struct top *t, int ch)
{
    switch (ch) {
    case 'q':
    case 'Q':
        return false;
    case 'p':
        t->paused = !t->paused;
        break;
    case KEY_UP:
        if (t->selected > 0)
            t->selected--;
        break;
    case KEY_DOWN:
        if (t->selected + 1 < t->nrecent)
            t->selected++;
        break;
    case 'f': {
        size_t i = 0, n = sizeof filters / sizeof filters[0];
        while (i < n && filters[i] != t->filter)
            i++;
        t->filter = filters[(i + 1) % n];
        t->selected = t->scroll = 0;
        collect(t);
        break;
    }
    case '\n':
    case KEY_ENTER:
    case 27:
        t->details = ch == 27 ? false : !t->details;
        break;
    default:
        break;
    }
    return true;
}

static void live(struct top *t, double interval)
{
    initscr();
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
        start_color();
        init_pair(1, COLOR_GREEN, COLOR_BLACK);
        init_pair(2, COLOR_RED, COLOR_BLACK);
        init_pair(3, COLOR_YELLOW, COLOR_BLACK);
        init_pair(4, COLOR_MAGENTA, COLOR_BLACK);
        init_pair(5, COLOR_CYAN, COLOR_BLACK);
    }
    timeout((int)(interval * 1000));
    frame(t);
    for (;;) {
        int ch = getch();
        if (ch != ERR && !key(t, ch))
            break;
        if (ch == ERR && !t->paused && sample(t) != 0)
            break;
        frame(t);
    }
    endwin();
}

int cli_top(int argc, char **argv)
{
    static const struct option longs[] = {{"region", required_argument, NULL, 'r'},
                                          {"once", no_argument, NULL, 'o'},
                                          {"interval", required_argument, NULL, 'i'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    struct top *t = calloc(1, sizeof *t);
    if (!t)
        return cli_fail("top", -ENOMEM);
    double interval = 0.5;
    bool once = false;
    int c, rc = CLI_USAGE;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'r')
            t->name = optarg;
        else if (c == 'o')
            once = true;
        else if (c == 'i' && cli_number(optarg, &interval) == 0 && interval >= 0.05 &&
                 interval <= 60)
            continue;
        else if (c == 'h') {
            usage(stdout);
            free(t);
            return CLI_OK;
        } else
            goto out;
    }
    if (!t->name && optind < argc)
        t->name = argv[optind++];
    if (!t->name || optind != argc)
        goto out;
    if ((rc = px_region_open(t->name, &(px_region_opts){.flags = PX_REGION_ATTACH}, &t->r)) != 0) {
        rc = cli_fail(t->name, rc);
        free(t);
        return rc;
    }
    rc = sample(t);
    t->curses = !once && isatty(STDOUT_FILENO);
    if (rc == 0 && t->curses) {
        live(t, interval);
    } else if (rc == 0) {
        /* One frame; a short second sample gives it a throughput. */
        struct timespec ts = {0, 200000000};
        nanosleep(&ts, NULL);
        rc = sample(t);
        if (rc == 0)
            frame(t);
    }
    px_region_close(t->r);
    free(t);
    return rc ? cli_fail("top", rc) : CLI_OK;
out:
    usage(stderr);
    free(t);
    return CLI_USAGE;
}
