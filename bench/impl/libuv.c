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

/* W8 ----------------------------------------------------------------------
** An echo server and 100 clients on plain libuv callbacks: each client
** writes 64 bytes and writes the next once the whole echo is back.
*/
#define CONNS 100
#define MSG 64

typedef struct Conn {
  uv_tcp_t tcp;
  char buf[65536];
  size_t have;         /* client: echo bytes received of the current message */
  long sent;
  int client;
} Conn;

static char msg[MSG];
static long per, echoes, finished;
static uv_tcp_t listener;
static uint64_t w8_end;

typedef struct { uv_write_t req; char data[]; } WReq;

static void on_written (uv_write_t *req, int status) {
  (void)status;
  free(req);
}

static void send_copy (uv_stream_t *s, const char *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int r = uv_try_write(s, &b, 1);
  WReq *w;
  if (r == (int)n) return;
  if (r < 0) r = 0;
  w = malloc(sizeof *w + n - (size_t)r);
  check(w != NULL, "out of memory");
  memcpy(w->data, p + r, n - (size_t)r);
  b = uv_buf_init(w->data, (unsigned)(n - (size_t)r));
  uv_write(&w->req, s, &b, 1, on_written);
}

static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *b) {
  Conn *c = (Conn *)h;
  (void)hint;
  *b = uv_buf_init(c->buf + (c->client ? c->have : 0),
                   (unsigned)(sizeof c->buf - (c->client ? c->have : 0)));
}

static void on_closed (uv_handle_t *h) { free(h); }

static void on_read (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Conn *c = (Conn *)s;
  (void)b;
  if (n < 0) { uv_close((uv_handle_t *)s, on_closed); return; }
  if (!c->client) { send_copy(s, c->buf, (size_t)n); return; }
  c->have += (size_t)n;
  if (c->have < MSG) return;
  check(c->have == MSG && memcmp(c->buf, msg, MSG) == 0, "W8 echo");
  echoes++;
  c->have = 0;
  if (c->sent < per) { c->sent++; send_copy(s, msg, MSG); return; }
  uv_close((uv_handle_t *)s, on_closed);
  if (++finished == CONNS) {
    w8_end = uv_hrtime();
    uv_close((uv_handle_t *)&listener, NULL);
  }
}

static void on_connection (uv_stream_t *srv, int status) {
  Conn *c = calloc(1, sizeof *c);
  check(status == 0 && c != NULL, "accept");
  uv_tcp_init(srv->loop, &c->tcp);
  check(uv_accept(srv, (uv_stream_t *)&c->tcp) == 0, "accept");
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connect (uv_connect_t *req, int status) {
  Conn *c = (Conn *)req->handle;
  free(req);
  check(status == 0, "connect");
  uv_tcp_nodelay(&c->tcp, 1);
  c->sent = 1;
  send_copy((uv_stream_t *)&c->tcp, msg, MSG);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static int listen_on (uv_loop_t *loop, int port, uv_connection_cb cb) {
  struct sockaddr_in a;
  struct sockaddr_storage name;
  int len = sizeof name;
  uv_tcp_init(loop, &listener);
  uv_ip4_addr("127.0.0.1", port, &a);
  check(uv_tcp_bind(&listener, (struct sockaddr *)&a, 0) == 0, "bind");
  check(uv_listen((uv_stream_t *)&listener, 128, cb) == 0, "listen");
  uv_tcp_getsockname(&listener, (struct sockaddr *)&name, &len);
  return ntohs(((struct sockaddr_in *)&name)->sin_port);
}

static double w8 (uv_loop_t *loop, long n) {
  struct sockaddr_in a;
  uint64_t t0;
  int i, port;
  memset(msg, 'm', MSG - 1);
  msg[MSG - 1] = '\n';
  per = n / CONNS;
  port = listen_on(loop, 0, on_connection);
  uv_ip4_addr("127.0.0.1", port, &a);
  t0 = uv_hrtime();
  for (i = 0; i < CONNS; i++) {
    Conn *c = calloc(1, sizeof *c);
    uv_connect_t *req = malloc(sizeof *req);
    check(c != NULL && req != NULL, "out of memory");
    c->client = 1;
    uv_tcp_init(loop, &c->tcp);
    uv_tcp_connect(req, &c->tcp, (struct sockaddr *)&a, on_connect);
  }
  uv_run(loop, UV_RUN_DEFAULT);
  check(echoes == CONNS * per, "W8 echoes");
  return (double)(w8_end - t0) / 1e9;
}

/* W9 ----------------------------------------------------------------------
** A keep-alive HTTP server: one fixed response per "\r\n\r\n" received (a
** request without a body, as wrk sends), across read boundaries.
*/
static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 13\r\n\r\nHello, World!";

static void on_http_read (uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  Conn *c = (Conn *)s;
  ssize_t i;
  int count = 0;
  (void)b;
  if (n < 0) { uv_close((uv_handle_t *)s, on_closed); return; }
  for (i = 0; i < n; i++) {  /* c->have: how much of "\r\n\r\n" matched */
    char ch = c->buf[i];
    if (ch == "\r\n\r\n"[c->have]) c->have++;
    else c->have = ch == '\r' ? 1 : 0;
    if (c->have == 4) { count++; c->have = 0; }
  }
  if (count == 1) send_copy(s, resp, sizeof resp - 1);
  else if (count > 1) {
    char *all = malloc((sizeof resp - 1) * (size_t)count);
    int k;
    check(all != NULL, "out of memory");
    for (k = 0; k < count; k++) memcpy(all + k * (sizeof resp - 1), resp, sizeof resp - 1);
    send_copy(s, all, (sizeof resp - 1) * (size_t)count);
    free(all);
  }
}

static void on_http_alloc (uv_handle_t *h, size_t hint, uv_buf_t *b) {
  Conn *c = (Conn *)h;
  (void)hint;
  *b = uv_buf_init(c->buf, sizeof c->buf);
}

static void on_http_connection (uv_stream_t *srv, int status) {
  Conn *c = calloc(1, sizeof *c);
  check(status == 0 && c != NULL, "accept");
  uv_tcp_init(srv->loop, &c->tcp);
  check(uv_accept(srv, (uv_stream_t *)&c->tcp) == 0, "accept");
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_http_alloc, on_http_read);
}

static void w9 (uv_loop_t *loop, int port) {
  listen_on(loop, port, on_http_connection);
  printf("listening\n");
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
}

int main (int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  double elapsed = 0;
  long n;
  const char *w = argc == 3 ? argv[1] : "";
  if (strcmp(w, "W2") != 0 && strcmp(w, "W3") != 0 && strcmp(w, "W8") != 0 &&
      strcmp(w, "W9") != 0) {
    fprintf(stderr, "usage: libuv W2|W3|W8|W9 N\n");
    return 2;
  }
  n = strtol(argv[2], NULL, 10);
  if (strcmp(w, "W9") == 0) { w9(loop, (int)n); return 0; }
  if (n > 0) elapsed = strcmp(w, "W2") == 0 ? w2(loop, n) : strcmp(w, "W3") == 0 ? w3(loop, n)
                                                          : w8(loop, n);
  printf("elapsed %.6f rss_kb %ld\n", elapsed, rss_kb());
  return 0;
}
