/*
** bench/impl/libuv.c WORKLOAD N: the C floor, a plain libuv program.
**   W2: N uv_timer_t handles with the seeded delays of bench/common.lua.
**   W3: one producer and one consumer through a ring of 100 items, as two
**       C step functions on a ready ring that a libuv idle handle drains.
** Prints "elapsed <seconds> rss_kb <peak RSS>"; exits 3 on a wrong answer.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static void check (int ok, const char *what) {
  if (!ok) { fprintf(stderr, "WRONG ANSWER: %s\n", what); exit(3); }
}

static long rss_kb (void) {
  char line[256];
  long kb = 0;
  FILE *f = fopen("/proc/self/status", "r");
  if (f == NULL) return 0;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

/* W2 ---------------------------------------------------------------------- */
static long fired;

static void on_timer (uv_timer_t *t) {
  fired++;
  uv_close((uv_handle_t *)t, NULL);
}

static double w2 (uv_loop_t *loop, long n) {
  uv_timer_t *timers = malloc(sizeof *timers * (size_t)n);
  unsigned long long x = 12345;
  uint64_t t0 = uv_hrtime();
  long i;
  check(timers != NULL, "out of memory");
  for (i = 0; i < n; i++) {
    double d;
    x = (x * 1103515245ULL + 12345ULL) % 2147483648ULL;
    d = (double)(x % 100001ULL) / 1e6;
    uv_timer_init(loop, &timers[i]);
    uv_timer_start(&timers[i], on_timer, (uint64_t)(d * 1000 + 0.5), 0);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  check(fired == n, "W2 count");
  free(timers);
  return (double)(uv_hrtime() - t0) / 1e9;
}

/* W3 ----------------------------------------------------------------------
** Two C "tasks" (step functions) on a ready ring drained by one idle handle,
** as an event loop schedules tasks: each runs until the ring buffer of 100
** would block it, wakes the other, and parks.
*/
#define QSIZE 100
typedef void (*Step)(void);
static long ring[QSIZE], qhead, qcount, produced, consumed, total;
static long long sum;
static Step ready[4];
static int rhead, rcount, producer_parked, consumer_parked;
static uv_idle_t runner;

static void wake (Step s) { ready[(rhead + rcount++) % 4] = s; }

static void consumer_step (void);

static void producer_step (void) {
  while (produced < total) {
    if (qcount == QSIZE) { producer_parked = 1; return; }
    ring[(qhead + qcount++) % QSIZE] = ++produced;
    if (consumer_parked) { consumer_parked = 0; wake(consumer_step); }
  }
}

static void consumer_step (void) {
  while (consumed < total) {
    if (qcount == 0) { consumer_parked = 1; return; }
    sum += ring[qhead];
    qhead = (qhead + 1) % QSIZE;
    qcount--;
    consumed++;
    if (producer_parked) { producer_parked = 0; wake(producer_step); }
  }
}

static void run_ready (uv_idle_t *h) {
  while (rcount > 0) {
    Step s = ready[rhead];
    rhead = (rhead + 1) % 4;
    rcount--;
    s();
  }
  uv_idle_stop(h);
}

static double w3 (uv_loop_t *loop, long n) {
  uint64_t t0 = uv_hrtime();
  total = n;
  uv_idle_init(loop, &runner);
  wake(producer_step);
  wake(consumer_step);
  uv_idle_start(&runner, run_ready);
  uv_run(loop, UV_RUN_DEFAULT);
  check(sum == (long long)n * (n + 1) / 2, "W3 sum");
  return (double)(uv_hrtime() - t0) / 1e9;
}

int main (int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  double elapsed = 0;
  long n;
  if (argc != 3 || (strcmp(argv[1], "W2") != 0 && strcmp(argv[1], "W3") != 0)) {
    fprintf(stderr, "usage: libuv W2|W3 N\n");
    return 2;
  }
  n = strtol(argv[2], NULL, 10);
  if (n > 0) elapsed = strcmp(argv[1], "W2") == 0 ? w2(loop, n) : w3(loop, n);
  printf("elapsed %.6f rss_kb %ld\n", elapsed, rss_kb());
  return 0;
}
