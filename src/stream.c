/*
** stream.c: TCP and Unix domain stream sockets, clients and listeners.
**
** A stream is two pieces. The libuv handle lives in a malloc'd Stream,
** freed only by its close callback. Everything Lua reads lives in the
** userdata, a Box: the read buffer, the counts of bytes being written,
** the errors and the waiting tasks. So the bytes a peer sent stay readable
** after the socket is closed, and a Box that is collected only cuts its
** Stream loose (closing it) without waiting for libuv.
**
** Meaning lives in streams.lua: these methods never wait by themselves;
** they say "wait" and the Lua layer suspends the task with _wait(kind).
** libuv callbacks only move bytes, set flags and wake the waiting task.
*/
/* memmem and SO_REUSEPORT are GNU/BSD, not POSIX */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stddef.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include "asyncio.h"

/* What a task waits for: bytes (or EOF), room to write, anything else
** (the connect, the close). One task per kind. */
enum { W_READ, W_WRITE, W_OTHER, W_N };

/* User values of a Box: its loop, then the anchor of each waiter. */
enum { UV_LOOP = 1, UV_WAITER, STREAM_NUV = UV_WAITER + W_N - 1 };

#define READ_CHUNK  65536

/* A TLS failure, in rerr, werr or cerr: its reason is the engine's. */
#define E_TLS  (-100000)

enum { T_NONE, T_HANDSHAKE, T_OPEN };

struct Box;

/* The timer of a TLS stream's graceful close (see close_after_writes), with the
** closer the loop's close_walk finds first through its data pointer. */
typedef struct Grace {
  asyncio_closer closer;
  uv_timer_t timer;
} Grace;

typedef struct Stream {
  asyncio_closer closer;       /* first: the loop closes leftovers with it */
  union { uv_handle_t h; uv_stream_t s; uv_tcp_t tcp; uv_pipe_t pipe; uv_poll_t poll; } u;
  struct Box *box;             /* NULL once the userdata is collected */
  Loop *lp;
  uv_connect_t connect;
  uv_shutdown_t shutdown;
  int32_t post;                /* a listener's sticky callback slot */
  int lfd;                     /* a listener's socket ('u' polls it), or -1 */
  int nhandles;                /* handles not yet closed: 'u', and 'grace' if used */
  unsigned graceful : 1,       /* 'grace' was started */
           tlsclose : 1,       /* closing, its writes out, it waits for the TLS peer */
           shut : 1,           /* our FIN is sent or queued */
           orphan : 1;         /* its Box was collected while its last writes went out */
  Grace grace;
} Stream;

typedef struct Box {
  Stream *s;                   /* NULL once the handle is closed */
  Loop *lp;
  char *buf;                   /* unread bytes: buf[head .. head+len) */
  size_t head, len, cap;
  size_t limit;                /* reads stop above max(2 * limit, want) */
  size_t want;                 /* bytes a waiting readexactly needs */
  size_t wpending;             /* bytes handed to uv_write, not yet written */
  size_t low;                  /* drain waiters wake at or below this */
  lua_State *waiter[W_N];
  int rerr, werr, cerr;        /* libuv error codes of reading, writing, connecting */
  asyncio_tls *tls;            /* the TLS engine (tls.c), or NULL: plain bytes */
  char *cbuf;                  /* with TLS: where encrypted bytes are read to */
  int tlsstate;                /* T_NONE, T_HANDSHAKE, T_OPEN */
  unsigned eof : 1, paused : 1, connecting : 1, shut : 1, closing : 1,
           closed : 1, pipe : 1, listener : 1, accepts : 1, autoclose : 1, lingering : 1;
} Box;

typedef struct WriteReq {
  uv_write_t req;
  Box *box;                    /* checked through the stream: may be gone */
  size_t n;
  char data[];
} WriteReq;


static Box *checkbox (lua_State *L) {
  return (Box *)luaL_checkudata(L, 1, ASYNCIO_STREAM);
}


/* The loop at 'idx', which must be the one of stream 'b' (if still open). */
static Loop *checkownloop (lua_State *L, Box *b, int idx) {
  Loop *lp = asyncio_checkloop(L, idx);
  luaL_argcheck(L, b->s == NULL || b->s->lp == lp, idx, "the stream belongs to another event loop");
  return lp;
}


/* Push the name and message of error 'err' (libuv's, or E_TLS). */
static void push_errname (lua_State *L, const Box *b, int err) {
  if (err == E_TLS) {
    lua_pushliteral(L, "ESSL");
    /* a finalizer run after the stream's own may still ask: the engine,
    ** and its reason, went with that */
    lua_pushstring(L, b->tls != NULL ? asyncio_tls_reason(b->tls) : "TLS failure");
  }
  else {
    lua_pushstring(L, uv_err_name(err));
    lua_pushstring(L, uv_strerror(err));
  }
}


/* nil, name, message: how a method reports error 'err'. */
static int push_error (lua_State *L, const Box *b, int err) {
  lua_pushnil(L);
  push_errname(L, b, err);
  return 3;
}

static void tls_pump (Box *b);
static void tls_flush (Box *b);


/* Closing ------------------------------------------------------------------ */

static void wake_all (Box *b) {
  int k;
  for (k = 0; k < W_N; k++) asyncio_io_wake(b->lp, &b->waiter[k]);
}


/* The handle is gone: the Box (if any) learns it, its waiters wake. */
static void on_close (uv_handle_t *h) {
  Stream *s = (Stream *)h->data;
  Box *b = s->box;
  if (s->lfd >= 0) close(s->lfd);  /* a listener the loop closed (close_walk) */
  s->lfd = -1;
  if (b != NULL) {
    s->box = NULL;
    b->s = NULL;
    b->closing = b->closed = 1;  /* closed by its loop's close too: is_closing says so */
    b->eof = 1;
    b->connecting = 0;
    wake_all(b);
  }
  if (--s->nhandles == 0) free(s);
}


/* The Stream of grace timer 't', found from its address. */
static Stream *grace_stream (void *t) {
  return (Stream *)(void *)((char *)t - offsetof(Stream, grace.timer));
}

/* The grace timer is gone. */
static void on_grace_closed (uv_handle_t *h) {
  Stream *s = grace_stream(h);
  if (--s->nhandles == 0) free(s);
}


/* Start closing the handle of 's'. A listener's socket is closed at once,
** as libuv closes its streams' (the poll handle does not own it, and the
** port must be free when close() returns). */
static void close_handle (Stream *s) {
  if (!uv_is_closing(&s->u.h)) uv_close(&s->u.h, on_close);
  if (s->graceful && !uv_is_closing((uv_handle_t *)&s->grace.timer))
    uv_close((uv_handle_t *)&s->grace.timer, on_grace_closed);
  if (s->lfd >= 0) { close(s->lfd); s->lfd = -1; }
}


/*
** A graceful close of a plain TCP socket first throws away what the peer
** sent and nobody read: with unread bytes in its receive queue, close()
** sends a reset instead of FIN, and the reset also drops at both ends what
** is still queued (the end of what we wrote, what the peer has not read).
*/
static void drop_unread (Stream *s) {
  char sink[16384];
  uv_os_fd_t fd;
  int i;
  if (s->u.h.type != UV_TCP || uv_fileno(&s->u.h, &fd) != 0) return;
  for (i = 0; i < 256; i++)  /* 4 MiB at most: a peer that keeps sending is reset */
    if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0) break;
}


/*
** The graceful close of a TLS stream: our close_notify is out; as CPython
** does, wait (at most GRACE_MS) for the peer to close too, reading and
** dropping what it still sends, before the socket is closed. Closed at
** once, a socket that receives bytes answers with a reset, and the reset
** drops at the peer what it has not read yet: a TLS 1.3 server sends
** session tickets after the handshake, and a client that wrote a request
** and closed at once cost the server the end of that request.
*/
#define GRACE_MS  10000

/* What the peer sends now is read into a buffer of its own and dropped
** (not a static one: a loop may run in a worker thread too). Without
** memory, libuv reports UV_ENOBUFS: the stream is closed at once. */
static void sink_alloc (uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h; (void)hint;
  buf->base = (char *)malloc(4096);
  buf->len = buf->base ? 4096 : 0;
}

static void sink_read (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  free(buf->base);
  if (nread < 0) close_handle((Stream *)h->data);  /* the peer's EOF, or an error */
}

static void on_grace (uv_timer_t *t) {
  close_handle(grace_stream(t));
}

static void on_shutdown (uv_shutdown_t *req, int status);

/* Close 's', whose writes are out: gracefully if it speaks TLS (tlsclose,
** decided by close_stream: the Box may be gone by now). */
static void close_after_writes (Stream *s) {
  if (s->tlsclose && uv_timer_init(&s->lp->uv, &s->grace.timer) == 0) {
    s->grace.closer = on_grace_closed;
    s->grace.timer.data = &s->grace;
    s->graceful = 1;
    s->nhandles++;
    uv_timer_start(&s->grace.timer, on_grace, GRACE_MS, 0);
    if (!s->shut) {  /* our FIN after the close_notify */
      s->shut = 1;
      uv_shutdown(&s->shutdown, &s->u.s, on_shutdown);
    }
    uv_read_stop(&s->u.s);
    if (uv_read_start(&s->u.s, sink_alloc, sink_read) == 0) return;
  }
  else drop_unread(s);
  close_handle(s);
}


/*
** Start closing the handle. As CPython's transports do, bytes still queued
** for writing go out first (the stream "lingers" until on_write has seen
** the last of them, or an error); 'hard' drops them and closes now. 'L'
** and the loop at 'loopidx' release a listener's callback slot (L NULL
** when there is none).
*/
static void close_stream (lua_State *L, Box *b, int loopidx, int hard) {
  Stream *s = b->s;
  if (s == NULL || (b->closing && !(hard && (b->lingering || s->graceful)))) return;
  b->closing = 1;
  if (s->post > 0 && L != NULL) asyncio_sticky_free(L, s->lp, loopidx, s->post);
  s->post = 0;
  if (!hard && b->tlsstate == T_OPEN) {  /* our close_notify goes out last */
    asyncio_tls_shutdown(b->tls);
    tls_flush(b);
    s->tlsclose = !b->eof && b->rerr == 0 && !b->listener;
  }
  if (!hard && b->wpending > 0 && b->werr == 0 && !uv_is_closing(&s->u.h)) {
    b->lingering = 1;
    uv_read_stop(&s->u.s);
  }
  else {
    b->lingering = 0;
    if (hard) close_handle(s);
    else close_after_writes(s);
  }
  wake_all(b);
}


/* Reading -------------------------------------------------------------------- */

static void on_read (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);

/* Make room for at least READ_CHUNK bytes after the unread ones; return
** the room there is (0 if memory ran out). */
static size_t make_room (Box *b) {
  if (b->head > 0 && b->cap - b->head - b->len < READ_CHUNK) {
    memmove(b->buf, b->buf + b->head, b->len);
    b->head = 0;
  }
  if (b->cap - b->len < READ_CHUNK) {
    size_t ncap = b->cap ? b->cap * 2 : READ_CHUNK;
    char *nb;
    while (ncap - b->len < READ_CHUNK) ncap *= 2;
    nb = (char *)realloc(b->buf, ncap);
    if (nb == NULL) return 0;
    b->buf = nb;
    b->cap = ncap;
  }
  return b->cap - b->head - b->len;
}


/* Plain bytes are read straight into the buffer; encrypted ones into
** 'cbuf', for the TLS engine. */
static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  Box *b = ((Stream *)h->data)->box;
  (void)hint;
  buf->base = NULL;
  buf->len = 0;
  if (b == NULL) return;  /* libuv reports UV_ENOBUFS; the stream is closing */
  if (b->tls != NULL) {
    buf->base = b->cbuf;
    buf->len = READ_CHUNK;
  }
  else if (make_room(b) > 0) {
    buf->base = b->buf + b->head + b->len;
    buf->len = b->cap - b->head - b->len;
  }
}


static size_t read_high (const Box *b) {
  size_t high = b->limit * 2;
  return b->want > high ? b->want : high;
}


static void start_reading (Box *b) {
  if (b->s == NULL || b->closing || b->eof) return;
  if (b->tls != NULL) {  /* the engine may hold records already: those first */
    tls_pump(b);
    if (b->eof || b->len >= read_high(b)) return;
  }
  if (uv_read_start(&b->s->u.s, on_alloc, on_read) == 0) b->paused = 0;
}


/* UV_EOF, or ECONNRESET pending on a TCP socket: when a reset arrives with
** the last bytes, libuv (seeing POLLHUP after a short read) reports EOF
** without reading again, and the reset would pass for a clean end. (A
** reset after the peer's FIN, which our late write provoked, leaves EPIPE
** there: every byte and the FIN had come, and that end is clean.) */
static ssize_t eof_or_error (uv_stream_t *h) {
  uv_os_fd_t fd;
  int err = 0;
  socklen_t len = sizeof err;
  if (h->type == UV_TCP && uv_fileno((uv_handle_t *)h, &fd) == 0 &&
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNRESET)
    return UV_ECONNRESET;
  return UV_EOF;
}


static void on_read (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  Box *b = ((Stream *)h->data)->box;
  (void)buf;
  if (b == NULL) { uv_read_stop(h); return; }
  if (nread > 0) {
    if (b->tls != NULL) {
      if (asyncio_tls_feed(b->tls, b->cbuf, (size_t)nread) < 0) b->rerr = UV_ENOMEM;
      tls_pump(b);  /* decrypts up to the high mark, wakes the reader */
    }
    else b->len += (size_t)nread;
    if (b->len >= read_high(b) && !b->eof) {  /* a fast sender cannot fill our memory */
      uv_read_stop(h);
      b->paused = 1;
    }
    if (b->tls != NULL) return;
  }
  else if (nread < 0) {
    if (nread == UV_EOF) nread = eof_or_error(h);
    if (nread != UV_EOF) b->rerr = (int)nread;
    b->eof = 1;
    uv_read_stop(h);
    if (b->tlsstate == T_HANDSHAKE && b->cerr == 0) {
      b->cerr = nread == UV_EOF ? UV_ECONNRESET : (int)nread;  /* the peer left mid-handshake */
      asyncio_io_wake(b->lp, &b->waiter[W_OTHER]);
    }
    if (b->autoclose) close_stream(NULL, b, 0, 0);  /* a child's output pipe: done */
  }
  else return;
  asyncio_io_wake(b->lp, &b->waiter[W_READ]);
}


/* Push the first 'n' buffered bytes and drop them; reading resumes once
** the buffer is back under the limit. */
static void take (lua_State *L, Box *b, size_t n) {
  lua_pushlstring(L, b->buf + b->head, n);
  b->head += n;
  b->len -= n;
  if (b->len == 0) b->head = 0;
  if (b->paused && b->len < b->limit) start_reading(b);
}


/* The state of an empty or short buffer, for the Lua layer: "wait",
** "eof", or "error" with the error's name and message. */
static int push_state (lua_State *L, Box *b) {
  lua_pushnil(L);
  if (b->rerr != 0) {
    lua_pushliteral(L, "error");
    push_errname(L, b, b->rerr);
    return 4;
  }
  if (b->eof || b->closing) lua_pushliteral(L, "eof");
  else {
    lua_pushliteral(L, "wait");
    if (b->paused) start_reading(b);  /* a reader wants more: let it come */
  }
  return 2;
}


/* A paused TLS stream's engine may hold whole records: decrypted now,
** before a read looks at the buffer. Otherwise push_state's start_reading
** would decrypt them after the look, its wake-up would find no waiter,
** and the read would wait for bytes already there. */
static void refill (Box *b) {
  if (b->tls != NULL && b->paused) start_reading(b);
}


/* s:_read(n) -> up to n bytes (n < 0: all buffered) | nil, state... */
static int stream_read (lua_State *L) {
  Box *b = checkbox(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  refill(b);
  if (b->len == 0) {
    if (b->rerr == 0 && (b->eof || b->closing)) { lua_pushliteral(L, ""); return 1; }
    return push_state(L, b);
  }
  take(L, b, n < 0 || (size_t)n > b->len ? b->len : (size_t)n);
  return 1;
}


/* s:_readexactly(n) -> n bytes | nil, state... ("eof": what is buffered
** is short; take it with _read(-1)) */
static int stream_readexactly (lua_State *L) {
  Box *b = checkbox(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (n < 0) n = 0;
  if ((size_t)n <= b->len) {
    b->want = 0;
    take(L, b, (size_t)n);
    return 1;
  }
  b->want = (size_t)n;
  if (b->paused && b->len < b->want) {
    start_reading(b);
    if ((size_t)n <= b->len) {  /* a TLS engine had them (see refill) */
      b->want = 0;
      take(L, b, (size_t)n);
      return 1;
    }
  }
  return push_state(L, b);
}


/* The end of the earliest separator in the buffer, or 0; '*found' its
** start. Separators are the string at 'idx' or the strings of a list. */
static size_t find_sep (lua_State *L, Box *b, int idx, size_t *found) {
  const char *p = b->buf + b->head;
  size_t best = 0, i, n = 1;
  int list = lua_istable(L, idx);
  if (list) n = lua_rawlen(L, idx);
  for (i = 1; i <= n; i++) {
    size_t sl;
    const char *sep, *at;
    if (list) lua_rawgeti(L, idx, (lua_Integer)i);
    else lua_pushvalue(L, idx);
    sep = lua_tolstring(L, -1, &sl);
    at = sep && sl > 0 && b->len >= sl ? memmem(p, b->len, sep, sl) : NULL;
    if (at != NULL) {
      size_t end = (size_t)(at - p) + sl;
      if (best == 0 || end < best) { best = end; *found = (size_t)(at - p); }
    }
    lua_pop(L, 1);
  }
  return best;
}


/*
** s:_readuntil(sep) -> the bytes up to and including the separator |
** nil, "limit", consumed, found (over the limit: 'consumed' bytes scanned,
** 'found' true if the separator is there) | nil, state...
*/
static int stream_readuntil (lua_State *L) {
  Box *b = checkbox(L);
  size_t at = 0, end;
  refill(b);
  end = find_sep(L, b, 2, &at);
  if (end > 0 && at <= b->limit) { take(L, b, end); return 1; }
  if (end > 0 || b->len > b->limit) {
    lua_pushnil(L);
    lua_pushliteral(L, "limit");
    lua_pushinteger(L, (lua_Integer)(end > 0 ? at : b->len));
    lua_pushboolean(L, end > 0);
    return 4;
  }
  return push_state(L, b);
}


/* s:_discard(n): drop n buffered bytes (readline after a limit overrun). */
static int stream_discard (lua_State *L) {
  Box *b = checkbox(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  size_t k = n < 0 || (size_t)n > b->len ? b->len : (size_t)n;
  take(L, b, k);
  return 0;
}


/*
** s:_unread(data): put 'data' back in front of the buffered bytes, where
** the next read finds it: a read to EOF that is cancelled (or fails)
** after taking some chunks returns them, so that no byte is lost. Reading
** pauses as usual if the buffer is now over its high mark.
*/
static int stream_unread (lua_State *L) {
  Box *b = checkbox(L);
  size_t k;
  const char *p = luaL_checklstring(L, 2, &k);
  if (k == 0) return 0;
  if (b->head < k) {  /* no room before the unread bytes: move them up */
    if (b->cap - b->len < k) {
      size_t ncap = b->cap ? b->cap : READ_CHUNK;
      char *nb;
      while (ncap - b->len < k) ncap *= 2;
      nb = (char *)realloc(b->buf, ncap);
      if (nb == NULL) return asyncio_nomem(L);
      b->buf = nb;
      b->cap = ncap;
    }
    memmove(b->buf + k, b->buf + b->head, b->len);
    b->head = k;
  }
  b->head -= k;
  b->len += k;
  memcpy(b->buf + b->head, p, k);
  return 0;
}


/* s:_buffered() -> bytes buffered, at EOF */
static int stream_buffered (lua_State *L) {
  Box *b = checkbox(L);
  lua_pushinteger(L, (lua_Integer)b->len);
  lua_pushboolean(L, b->eof || b->closing);
  return 2;
}


/* Writing -------------------------------------------------------------------- */

static void on_write (uv_write_t *req, int status) {
  WriteReq *w = (WriteReq *)req;
  Stream *s = (Stream *)req->handle->data;
  Box *b = s->box;
  if (b != NULL) {
    b->wpending -= w->n;
    if (status < 0 && status != UV_ECANCELED && b->werr == 0) b->werr = status;
    if (b->wpending <= b->low || b->werr != 0)
      asyncio_io_wake(b->lp, &b->waiter[W_WRITE]);
    if (b->werr != 0 && b->tlsstate == T_HANDSHAKE)  /* the handshake cannot go on */
      asyncio_io_wake(b->lp, &b->waiter[W_OTHER]);
    if (b->lingering && (b->wpending == 0 || b->werr != 0)) {
      b->lingering = 0;  /* closed while bytes were queued: they are out now */
      close_after_writes(s);
    }
  }
  else if (s->orphan && !uv_is_closing(&s->u.h) &&
           (status < 0 || uv_stream_get_write_queue_size(&s->u.s) == 0)) {
    s->orphan = 0;  /* collected while lingering: its last bytes are out (or cannot go) */
    if (status < 0) close_handle(s);
    else close_after_writes(s);
  }
  free(w);
}


/* Write what the socket takes of 'n' bytes at 'p' now, unless writes are
** queued already; the count written. */
static size_t try_write (Box *b, const char *p, size_t n) {
  uv_buf_t ub;
  int r;
  if (b->wpending > 0) return 0;
  ub = asyncio_buf((char *)p, n);
  r = uv_try_write(&b->s->u.s, &ub, 1);
  if (r >= 0) return (size_t)r;
  if (r != UV_EAGAIN && r != UV_ENOSYS) b->werr = r;
  return 0;
}


/* Queue the bytes of 'w' from 'off' on behind the pending ones; 'w' is
** freed by on_write, or here if libuv refuses it. */
static void queue_write (Box *b, WriteReq *w, size_t off) {
  uv_buf_t ub = asyncio_buf(w->data + off, w->n - off);
  int r;
  w->box = b;
  w->n -= off;
  r = uv_write(&w->req, &b->s->u.s, &ub, 1, on_write);
  if (r < 0) { free(w); b->werr = r; }
  else b->wpending += w->n;
}


/*
** s:_write(data) -> bytes still pending | nil, err, msg. What the socket
** takes at once is written now; the rest is copied and queued. An error
** is kept for drain and later writes are dropped, as CPython does. With
** TLS the bytes are encrypted first (tls_flush sends them).
*/
static int stream_write (lua_State *L) {
  Box *b = checkbox(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  if (b->s == NULL || b->closing) return asyncio_error(L, "write: the stream is closed");
  if (b->shut) return asyncio_error(L, "write: the stream is shut for writing (write_eof)");
  if (b->tls != NULL) {
    if (b->tlsstate != T_OPEN) return asyncio_error(L, "write: the TLS handshake is not done");
    if (b->werr == 0 && n > 0) {
      if (asyncio_tls_write(b->tls, p, n) != ASYNCIO_TLS_OK) b->werr = E_TLS;
      tls_flush(b);
    }
  }
  else if (b->werr == 0 && n > 0) {
    size_t done = try_write(b, p, n);
    if (done < n && b->werr == 0) {
      WriteReq *w = (WriteReq *)malloc(sizeof *w + (n - done));
      if (w == NULL) return asyncio_nomem(L);
      w->n = n - done;
      memcpy(w->data, p + done, n - done);
      queue_write(b, w, 0);
    }
  }
  lua_pushinteger(L, (lua_Integer)b->wpending);
  return 1;
}


/* s:_pending() -> bytes waiting to be written, the write error's name or nil */
static int stream_pending (lua_State *L) {
  Box *b = checkbox(L);
  lua_pushinteger(L, (lua_Integer)b->wpending);
  if (b->werr == 0) return 1;
  push_errname(L, b, b->werr);
  return 3;
}


/* s:_set_low(bytes): the low-water mark drain waits down to. */
static int stream_set_low (lua_State *L) {
  Box *b = checkbox(L);
  lua_Integer n = luaL_checkinteger(L, 2);
  b->low = n < 0 ? 0 : (size_t)n;
  return 0;
}


static void on_shutdown (uv_shutdown_t *req, int status) {
  (void)req; (void)status;  /* a failure shows on the next read or write */
}


/* s:_shutdown() -> true | nil, err, msg: send EOF after the pending bytes. */
static int stream_shutdown (lua_State *L) {
  Box *b = checkbox(L);
  int r;
  if (b->s == NULL || b->closing) return asyncio_error(L, "write_eof on a closed stream");
  if (b->shut) { lua_pushboolean(L, 1); return 1; }
  b->shut = b->s->shut = 1;
  if (b->tlsstate == T_OPEN) {  /* close_notify first: TLS's own EOF */
    asyncio_tls_shutdown(b->tls);
    tls_flush(b);
  }
  r = uv_shutdown(&b->s->shutdown, &b->s->u.s, on_shutdown);
  if (r < 0) return asyncio_pushuverror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}


/* s:_close(loop, [hard]): start closing (waiters wake); see close_stream. */
static int stream_close (lua_State *L) {
  Box *b = checkbox(L);
  checkownloop(L, b, 2);  /* its slots are freed in the tables of the loop at 2 */
  close_stream(L, b, 2, lua_toboolean(L, 3));
  return 0;
}


/* s:_state() -> closing, closed, connecting */
static int stream_state (lua_State *L) {
  Box *b = checkbox(L);
  lua_pushboolean(L, b->closing);
  lua_pushboolean(L, b->closed);
  lua_pushboolean(L, b->connecting);
  return 3;
}


/* TLS -------------------------------------------------------------------------- */

/* Send what the engine has encrypted: what the socket takes now, the rest
** queued (one copy, straight out of the engine). */
static void tls_flush (Box *b) {
  size_t n = asyncio_tls_pending_out(b->tls), done;
  WriteReq *w;
  if (n == 0) return;
  w = (WriteReq *)malloc(sizeof *w + n);
  if (w == NULL) { b->werr = UV_ENOMEM; return; }
  w->n = asyncio_tls_take_out(b->tls, w->data, n);
  if (b->s == NULL || uv_is_closing(&b->s->u.h) || b->werr != 0) { free(w); return; }
  done = try_write(b, w->data, w->n);
  if (done == w->n || b->werr != 0) free(w);
  else queue_write(b, w, done);
}


/*
** Run the engine on the records it holds: the handshake (waking the task
** waiting for it), then decryption into the buffer up to the high mark
** (waking the reader); then send whatever it wants sent.
*/
static void tls_pump (Box *b) {
  if (b->tlsstate == T_HANDSHAKE && b->cerr == 0) {
    int r = asyncio_tls_handshake(b->tls);
    if (r == ASYNCIO_TLS_OK) b->tlsstate = T_OPEN;
    else if (r != ASYNCIO_TLS_WANT) b->cerr = E_TLS;
    if (r != ASYNCIO_TLS_WANT) asyncio_io_wake(b->lp, &b->waiter[W_OTHER]);
  }
  if (b->tlsstate == T_OPEN && !b->eof) {
    size_t before = b->len;
    while (b->len < read_high(b)) {
      size_t room = make_room(b);
      long n;
      if (room == 0) break;
      n = asyncio_tls_read(b->tls, b->buf + b->head + b->len, room);
      if (n > 0) { b->len += (size_t)n; continue; }
      if (n == ASYNCIO_TLS_CLOSED) b->eof = 1;  /* the peer's close_notify */
      else if (n == ASYNCIO_TLS_ERROR) { b->rerr = E_TLS; b->eof = 1; }
      break;
    }
    if (b->eof && b->s != NULL) uv_read_stop(&b->s->u.s);
    if (b->len != before || b->eof) asyncio_io_wake(b->lp, &b->waiter[W_READ]);
  }
  tls_flush(b);
}


/*
** s:_starttls(context, [hostname]) -> true | nil, err, msg: from now on
** the bytes of the stream are TLS records; the handshake starts (await
** it with _handshake). Bytes received and not yet read are the first
** records (STARTTLS: the peer may have begun already).
*/
static int stream_starttls (lua_State *L) {
  Box *b = checkbox(L);
  const char *host = asyncio_optname(L, 3, NULL);
  char err[256];
  if (b->s == NULL || b->closing) return asyncio_error(L, "start_tls: the stream is closed");
  if (b->tls != NULL) return asyncio_error(L, "start_tls: the stream uses TLS already");
  if (b->shut)  /* no handshake can be sent */
    return asyncio_error(L, "start_tls: the stream is shut for writing (write_eof)");
  if (b->cbuf == NULL && (b->cbuf = (char *)malloc(READ_CHUNK)) == NULL)
    return asyncio_nomem(L);
  b->tls = asyncio_tls_new(L, 2, host, err, sizeof err);
  if (b->tls == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "ESSL");
    lua_pushstring(L, err);
    return 3;
  }
  b->tlsstate = T_HANDSHAKE;
  if (b->len > 0 && asyncio_tls_feed(b->tls, b->buf + b->head, b->len) == 0)
    b->head = b->len = 0;
  tls_pump(b);  /* a client's hello goes out */
  if (b->paused) start_reading(b);
  lua_pushboolean(L, 1);
  return 1;
}


/* s:_handshake() -> true (done) | false (wait W_OTHER) | nil, err, msg */
static int stream_handshake (lua_State *L) {
  Box *b = checkbox(L);
  if (b->tls == NULL) return asyncio_error(L, "handshake: the stream does not use TLS");
  if (b->cerr != 0) return push_error(L, b, b->cerr);
  if (b->tlsstate == T_OPEN) { lua_pushboolean(L, 1); return 1; }
  if (b->rerr != 0) return push_error(L, b, b->rerr);
  if (b->werr != 0) return push_error(L, b, b->werr);  /* our hello could not go */
  if (b->s == NULL || b->closing) {  /* closed on this side, not by the peer */
    lua_pushnil(L);
    lua_pushliteral(L, "ECONNABORTED");
    lua_pushliteral(L, "the stream was closed during the TLS handshake");
    return 3;
  }
  if (b->eof) return push_error(L, b, UV_ECONNRESET);
  lua_pushboolean(L, 0);
  return 1;
}


/* s:_tlsinfo(name) -> what tls.c tells of the connection, or nil */
static int stream_tlsinfo (lua_State *L) {
  Box *b = checkbox(L);
  const char *name = luaL_checkstring(L, 2);
  if (b->tls == NULL || b->tlsstate != T_OPEN || !asyncio_tls_info(L, b->tls, name))
    lua_pushnil(L);
  return 1;
}


/* Waiting ---------------------------------------------------------------- */

static int checkkind (lua_State *L, int arg) {
  lua_Integer k = luaL_checkinteger(L, arg);
  luaL_argcheck(L, k >= 0 && k < W_N, arg, "waiter kind expected");
  return (int)k;
}


/* s:_wait(kind, loop): suspend until the event of 'kind' (see W_READ...). */
static int stream_wait (lua_State *L) {
  Box *b = checkbox(L);
  int k = checkkind(L, 2);
  Loop *lp = checkownloop(L, b, 3);  /* only its own loop's callbacks wake it */
  lua_settop(L, 3);
  return asyncio_io_wait(L, lp, 1, UV_WAITER + k, &b->waiter[k], 3);
}


/* s:_abort(kind): the waiting task was cancelled: forget it. A reader
** gone also drops what its readexactly wanted buffered. */
static int stream_abort (lua_State *L) {
  Box *b = checkbox(L);
  int k = checkkind(L, 2);
  b->waiter[k] = NULL;
  if (k == W_READ) b->want = 0;
  return 0;
}


/* Creating ------------------------------------------------------------------ */

/* A Stream and its Box (pushed), for loop 'lp' at 'loopidx'; the handle
** is left for the caller to init. */
static Box *new_box (lua_State *L, Loop *lp, int loopidx, int pipe, size_t limit) {
  Box *b;
  Stream *s;
  loopidx = lua_absindex(L, loopidx);
  b = (Box *)lua_newuserdatauv(L, sizeof *b, STREAM_NUV);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, ASYNCIO_STREAM);
  lua_pushvalue(L, loopidx);
  lua_setiuservalue(L, -2, UV_LOOP);
  s = (Stream *)malloc(sizeof *s);
  if (s == NULL) { asyncio_nomem(L); return NULL; }
  memset(s, 0, sizeof *s);
  s->closer = on_close;
  s->nhandles = 1;
  s->u.h.data = s;
  s->lp = lp;
  s->lfd = -1;
  s->box = b;
  b->s = s;
  b->lp = lp;
  b->pipe = pipe != 0;
  b->limit = limit;
  b->low = 16384;
  return b;
}


/* Init the handle of a new Box; on failure nothing is left open. */
static int init_handle (Box *b) {
  Stream *s;
  int r;
  if (b->pipe) r = uv_pipe_init(&b->lp->uv, &b->s->u.pipe, 0);
  else r = uv_tcp_init(&b->lp->uv, &b->s->u.tcp);
  if (r < 0) return r;
  s = b->s;
  s->u.h.data = s;
  return 0;
}


static size_t checklimit (lua_State *L, int arg) {
  lua_Integer n = luaL_optinteger(L, arg, 65536);
  luaL_argcheck(L, n > 0, arg, "limit must be positive");
  return (size_t)n;
}


/* Parse 'host' (a numeric address) and 'port' into 'sa'. */
static int parse_addr (const char *host, lua_Integer port, struct sockaddr_storage *sa) {
  if (port < 0 || port > 65535) return UV_EINVAL;
  if (strchr(host, ':') != NULL)
    return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa);
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa);
}


static void on_connect (uv_connect_t *req, int status) {
  Stream *s = (Stream *)req->handle->data;
  Box *b = s->box;
  if (b == NULL) return;
  b->connecting = 0;
  if (status < 0) b->cerr = status;
  else {
    if (!b->pipe) uv_tcp_nodelay(&s->u.tcp, 1);
    start_reading(b);
  }
  asyncio_io_wake(b->lp, &b->waiter[W_OTHER]);
}


/* Undo the half-made stream at the top of the stack (popped). */
static void drop_new (lua_State *L, Box *b, int inited) {
  Stream *s = b->s;
  b->s = NULL;
  b->closing = b->closed = 1;
  if (inited) { s->box = NULL; close_handle(s); }
  else free(s);
  lua_pop(L, 1);
}


/* The same, and report 'err'. */
static int fail_new (lua_State *L, Box *b, int inited, int err) {
  drop_new(L, b, inited);
  return asyncio_pushuverror(L, err);
}


/*
** core.tcp_connect(loop, ip, port, [limit, local_ip, local_port]) ->
** stream (connecting: wait W_OTHER, then _connected) | nil, err, msg
** core.pipe_connect(loop, path, [limit]) -> the same
*/
static int new_connection (lua_State *L, int pipe) {
  Loop *lp = asyncio_checkloop(L, 1);
  const char *host = asyncio_checkname(L, 2);
  struct sockaddr_storage sa;
  size_t limit;
  Box *b;
  int r = 0;
  memset(&sa, 0, sizeof sa);
  if (!pipe) {
    lua_Integer port = luaL_checkinteger(L, 3);
    limit = checklimit(L, 4);
    if ((r = parse_addr(host, port, &sa)) < 0) return asyncio_pushuverror(L, r);
  }
  else {
    /* libuv 1.44 cuts a longer path to fit and connects to whatever is
    ** there; the listening side refuses it (core_pipe_listen) */
    if (strlen(host) >= sizeof(((struct sockaddr_un *)0)->sun_path))
      return asyncio_pushuverror(L, UV_ENAMETOOLONG);
    limit = checklimit(L, 3);
  }
  b = new_box(L, lp, 1, pipe, limit);
  if ((r = init_handle(b)) < 0) return fail_new(L, b, 0, r);
  if (!pipe && lua_type(L, 5) == LUA_TSTRING) {
    struct sockaddr_storage la;
    memset(&la, 0, sizeof la);
    r = parse_addr(asyncio_checkname(L, 5), luaL_optinteger(L, 6, 0), &la);
    if (r == 0) r = uv_tcp_bind(&b->s->u.tcp, (struct sockaddr *)&la, 0);
    if (r < 0) return fail_new(L, b, 1, r);
  }
  if (pipe) uv_pipe_connect(&b->s->connect, &b->s->u.pipe, host, on_connect);
  else r = uv_tcp_connect(&b->s->connect, &b->s->u.tcp, (struct sockaddr *)&sa, on_connect);
  if (r < 0) return fail_new(L, b, 1, r);
  b->connecting = 1;
  return 1;
}

static int core_tcp_connect (lua_State *L) { return new_connection(L, 0); }
static int core_pipe_connect (lua_State *L) { return new_connection(L, 1); }


/* s:_connected() -> true | nil, err, msg | false (still connecting) */
static int stream_connected (lua_State *L) {
  Box *b = checkbox(L);
  if (b->cerr != 0) return push_error(L, b, b->cerr);
  if (b->connecting) { lua_pushboolean(L, 0); return 1; }
  if (b->s == NULL || b->closing) return asyncio_pushuverror(L, UV_ECANCELED);
  lua_pushboolean(L, 1);
  return 1;
}


/* Listening ------------------------------------------------------------------ */

/*
** A listener is a listening socket of our own with a uv_poll_t on it, not
** a libuv stream: out of descriptors, libuv's own accept closes every
** queued connection (its "EMFILE trick") and the clients read EOF. Ours
** stops polling instead (_accept says EMFILE) and the connections wait in
** the kernel's queue until _resume, as CPython's accept does.
*/
static void on_listen_ready (uv_poll_t *h, int status, int events) {
  Stream *s = (Stream *)h->data;
  Box *b = s->box;
  (void)status; (void)events;  /* a failure shows when the callback accepts */
  if (b == NULL) return;
  b->accepts = 1;
  asyncio_post(s->lp, s->post);
}


/* A non-blocking socket listening on the 'len' bytes of address 'sa';
** the descriptor, or a libuv error. As libuv binds TCP: SO_REUSEADDR, and
** an IPv6 socket takes IPv4 connections too. */
static int listen_socket (const struct sockaddr *sa, socklen_t len, int reuseport, int backlog) {
  int one = 1, zero = 0;
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return uv_translate_sys_error(errno);
  if ((sa->sa_family != AF_UNIX &&
       setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) ||
      (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
      (sa->sa_family == AF_INET6 &&
       setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero) < 0) ||
      bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
    int e = uv_translate_sys_error(errno);
    close(fd);
    return e;
  }
  return fd;
}


/* Make the Box on top a listener on socket 'fd' (owned from now on) with
** the sticky callback fn(arg) at 'fnidx', 'argidx'; or report the error. */
static int start_listener (lua_State *L, Loop *lp, Box *b, int fd, int fnidx, int argidx) {
  int r = uv_poll_init_socket(&lp->uv, &b->s->u.poll, fd);
  if (r < 0) { close(fd); return fail_new(L, b, 0, r); }
  b->s->u.h.data = b->s;
  b->s->lfd = fd;  /* closed with the handle (on_close) */
  if ((r = uv_poll_start(&b->s->u.poll, UV_READABLE, on_listen_ready)) < 0)
    return fail_new(L, b, 1, r);
  b->listener = 1;
  b->s->post = asyncio_sticky_new(L, lp, 1, fnidx, argidx);
  return 1;
}


/*
** core.tcp_listen(loop, ip, port, backlog, reuse_port, limit, fn, arg)
** core.pipe_listen(loop, path, backlog, limit, fn, arg)
**   -> listener | nil, err, msg. fn(arg) runs (a sticky callback) when
** connections wait: accept them with _accept.
*/
static int core_tcp_listen (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  const char *host = asyncio_checkname(L, 2);
  lua_Integer port = luaL_checkinteger(L, 3);
  int backlog = asyncio_optrange(L, 4, 100, 0, INT32_MAX);
  int reuse = lua_toboolean(L, 5), fd;
  size_t limit = checklimit(L, 6);
  struct sockaddr_storage sa;
  Box *b;
  luaL_checktype(L, 7, LUA_TFUNCTION);
  lua_settop(L, 8);
  memset(&sa, 0, sizeof sa);
  if ((fd = parse_addr(host, port, &sa)) < 0) return asyncio_pushuverror(L, fd);
  b = new_box(L, lp, 1, 0, limit);
  fd = listen_socket((struct sockaddr *)&sa, sa.ss_family == AF_INET6 ?
                     sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), reuse, backlog);
  if (fd < 0) return fail_new(L, b, 0, fd);
  return start_listener(L, lp, b, fd, 7, 8);
}


/* Before a unix server binds: a socket file left at the path by a server
** that is gone (a crashed run) is removed, as CPython does. One a server
** still listens on (it takes the connection) or any other file is left,
** and bind says EADDRINUSE. */
static void remove_stale_socket (const struct sockaddr_un *sa) {
  struct stat st;
  int fd;
  if (lstat(sa->sun_path, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno == ECONNREFUSED)
    unlink(sa->sun_path);
  close(fd);
}


/*
** core.socket_file(path) -> the inode of the socket file at 'path', or nil.
** core.socket_file(path, ino) removes that file if it is still the socket
** 'ino': a unix server removes its own file when closed, never one a later
** server made at the same path.
*/
static int core_socket_file (lua_State *L) {
  const char *path = asyncio_checkname(L, 1);
  struct stat st;
  if (lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0;
  if (lua_isnoneornil(L, 2)) {
    lua_pushinteger(L, (lua_Integer)st.st_ino);
    return 1;
  }
  if ((lua_Integer)st.st_ino == luaL_checkinteger(L, 2)) unlink(path);
  return 0;
}


static int core_pipe_listen (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  size_t n;
  const char *path = luaL_checklstring(L, 2, &n);
  int backlog = asyncio_optrange(L, 3, 100, 0, INT32_MAX), fd;
  size_t limit = checklimit(L, 4);
  struct sockaddr_un sa;
  Box *b;
  luaL_checktype(L, 5, LUA_TFUNCTION);
  lua_settop(L, 6);
  memset(&sa, 0, sizeof sa);
  if (strlen(path) != n) return asyncio_pushuverror(L, UV_EINVAL);
  if (n >= sizeof sa.sun_path) return asyncio_pushuverror(L, UV_ENAMETOOLONG);
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, path, n);
  remove_stale_socket(&sa);
  b = new_box(L, lp, 1, 1, limit);
  fd = listen_socket((struct sockaddr *)&sa, sizeof sa, 0, backlog);
  if (fd < 0) return fail_new(L, b, 0, fd);
  return start_listener(L, lp, b, fd, 5, 6);
}


/* Is errno 'e' from accept a shortage of descriptors or memory? */
static int out_of_resources (int e) {
  return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}


/*
** server:_accept(loop) -> stream | nil (none waiting) | nil, err, msg. Out
** of descriptors (or memory) the listener stops polling, leaving the
** connections queued, and says so (err "EMFILE"): _resume starts it again.
*/
static int stream_accept (lua_State *L) {
  Box *srv = checkbox(L);
  Loop *lp = asyncio_checkloop(L, 2);
  Box *b;
  int fd, r;
  if (srv->s == NULL || srv->closing || !srv->listener || !srv->accepts) {
    lua_pushnil(L);
    return 1;
  }
  b = new_box(L, lp, 2, srv->pipe, srv->limit);  /* before accept: raising leaks nothing */
  do fd = accept4(srv->s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
  if (fd < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) {  /* none waiting */
      srv->accepts = 0;
      drop_new(L, b, 0);
      lua_pushnil(L);
      return 1;
    }
    if (out_of_resources(e)) uv_poll_stop(&srv->s->u.poll);
    return fail_new(L, b, 0, uv_translate_sys_error(e));
  }
  if ((r = init_handle(b)) < 0) { close(fd); return fail_new(L, b, 0, r); }
  r = b->pipe ? uv_pipe_open(&b->s->u.pipe, fd) : uv_tcp_open(&b->s->u.tcp, fd);
  if (r < 0) { close(fd); return fail_new(L, b, 1, r); }
  if (!b->pipe) uv_tcp_nodelay(&b->s->u.tcp, 1);
  start_reading(b);
  return 1;
}


/* server:_resume(): a listener stopped by a shortage polls again. */
static int stream_resume (lua_State *L) {
  Box *srv = checkbox(L);
  if (srv->s != NULL && !srv->closing && srv->listener)
    uv_poll_start(&srv->s->u.poll, UV_READABLE, on_listen_ready);
  return 0;
}


/* Pipes for child processes (process.c) ------------------------------------------- */

/* Push a new, inited pipe stream for loop 'lp' (at 'loopidx'); return its
** handle, or NULL with nothing pushed and the libuv error in '*err'. */
uv_stream_t *asyncio_pipe_new (lua_State *L, Loop *lp, int loopidx, size_t limit, int *err) {
  Box *b = new_box(L, lp, loopidx, 1, limit);
  if ((*err = init_handle(b)) < 0) {
    fail_new(L, b, 0, *err);
    lua_pop(L, 3);  /* fail_new's nil, name, message */
    return NULL;
  }
  return &b->s->u.s;
}


/* The child has its end: start reading the pipe stream at 'idx' (for
** stdout and stderr), or leave it for writing (stdin). */
void asyncio_pipe_start (lua_State *L, int idx, int readable) {
  Box *b = (Box *)luaL_checkudata(L, idx, ASYNCIO_STREAM);
  if (readable) { b->autoclose = 1; start_reading(b); }
  else b->eof = 1;  /* nothing will ever be read from a child's stdin */
}


/* Spawning failed: close the pipe stream at 'idx' (its loop at 'loopidx'). */
int asyncio_pipe_open (lua_State *L, int idx, uv_file fd) {
  Box *b = (Box *)luaL_checkudata(L, idx, ASYNCIO_STREAM);
  return uv_pipe_open(&b->s->u.pipe, fd);
}


void asyncio_pipe_abandon (lua_State *L, int idx, int loopidx) {
  close_stream(L, (Box *)luaL_checkudata(L, idx, ASYNCIO_STREAM), loopidx, 1);
}


/* Names ------------------------------------------------------------------------ */

static int push_sockaddr (lua_State *L, const struct sockaddr_storage *sa) {
  char host[64];
  int port;
  if (sa->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(a, host, sizeof host);
    port = ntohs(a->sin6_port);
  }
  else if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
    uv_ip4_name(a, host, sizeof host);
    port = ntohs(a->sin_port);
  }
  else return asyncio_pushuverror(L, UV_EAFNOSUPPORT);
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}


/* s:_name(peer) -> host, port (TCP) | path (Unix) | nil, err, msg */
static int stream_name (lua_State *L) {
  Box *b = checkbox(L);
  int peer = lua_toboolean(L, 2), r;
  if (b->s == NULL || b->closing) return asyncio_pushuverror(L, UV_EBADF);
  if (b->listener) {  /* our own socket: ask the kernel */
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname(b->s->lfd, (struct sockaddr *)&sa, &len) < 0)
      return asyncio_pushuverror(L, uv_translate_sys_error(errno));
    if (sa.ss_family == AF_UNIX) {
      const struct sockaddr_un *u = (const struct sockaddr_un *)&sa;
      lua_pushlstring(L, u->sun_path, strnlen(u->sun_path, len - offsetof(struct sockaddr_un, sun_path)));
      return 1;
    }
    return push_sockaddr(L, &sa);
  }
  if (b->pipe) {
    char path[1024];
    size_t len = sizeof path;
    r = peer ? uv_pipe_getpeername(&b->s->u.pipe, path, &len)
             : uv_pipe_getsockname(&b->s->u.pipe, path, &len);
    if (r < 0) return asyncio_pushuverror(L, r);
    lua_pushlstring(L, path, len);
    return 1;
  }
  else {
    struct sockaddr_storage sa;
    int len = (int)sizeof sa;
    r = peer ? uv_tcp_getpeername(&b->s->u.tcp, (struct sockaddr *)&sa, &len)
             : uv_tcp_getsockname(&b->s->u.tcp, (struct sockaddr *)&sa, &len);
    if (r < 0) return asyncio_pushuverror(L, r);
    return push_sockaddr(L, &sa);
  }
}


/* s:_fd() -> the descriptor, or -1 once closed */
static int stream_fd (lua_State *L) {
  Box *b = checkbox(L);
  uv_os_fd_t fd;
  if (b->s == NULL || b->closing) fd = -1;
  else if (b->listener) fd = b->s->lfd;
  else if (uv_fileno(&b->s->u.h, &fd) < 0) fd = -1;
  lua_pushinteger(L, fd);
  return 1;
}


/*
** __gc: a stream collected while open is closed here, and the Lua hook in
** the configuration table (upvalue 3, key "unclosed") is told.
*/
static int stream_gc (lua_State *L) {
  Box *b = checkbox(L);  /* __gc is a field Lua code can reach: check */
  Stream *s = b->s;
  if (s != NULL) {
    int open = !b->closing;
    s->box = NULL;  /* the handle's callbacks must not touch us any more */
    b->s = NULL;
    if (s->post > 0 && !s->lp->closed) {
      lua_getiuservalue(L, 1, UV_LOOP);
      asyncio_sticky_free(L, s->lp, lua_gettop(L), s->post);
      lua_pop(L, 1);
    }
    /* a close under way ends by itself: its queued bytes go out first
    ** (orphan, see on_write), a TLS one waits for its peer (EOF or timer) */
    if (b->lingering) s->orphan = 1;
    else if (!s->graceful) close_handle(s);
    if (open && lua_getfield(L, lua_upvalueindex(3), "unclosed") == LUA_TFUNCTION) {
      lua_pushboolean(L, b->listener);
      lua_pcall(L, 1, 0, 0);  /* the hook only queues a report; nothing to add */
    }
  }
  /* a finalizer that runs after this one may still call our methods:
  ** leave a closed, empty stream behind, never freed memory */
  free(b->buf);
  b->buf = NULL;
  b->head = b->len = b->cap = 0;
  asyncio_tls_free(b->tls);
  b->tls = NULL;
  b->tlsstate = T_NONE;
  free(b->cbuf);
  b->cbuf = NULL;
  b->closing = b->closed = b->eof = 1;
  b->connecting = b->lingering = b->paused = 0;
  return 0;
}


static const luaL_Reg stream_methods[] = {
  {"_read", stream_read},
  {"_readexactly", stream_readexactly},
  {"_readuntil", stream_readuntil},
  {"_discard", stream_discard},
  {"_unread", stream_unread},
  {"_buffered", stream_buffered},
  {"_write", stream_write},
  {"_pending", stream_pending},
  {"_set_low", stream_set_low},
  {"_shutdown", stream_shutdown},
  {"_close", stream_close},
  {"_state", stream_state},
  {"_wait", stream_wait},
  {"_abort", stream_abort},
  {"_connected", stream_connected},
  {"_accept", stream_accept},
  {"_resume", stream_resume},
  {"_name", stream_name},
  {"_fd", stream_fd},
  {"_starttls", stream_starttls},
  {"_handshake", stream_handshake},
  {"_tlsinfo", stream_tlsinfo},
  {NULL, NULL}
};


/* core.io_config(unclosed): the Lua hook told of a stream collected open. */
static int core_io_config (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_setfield(L, lua_upvalueindex(3), "unclosed");
  return 0;
}


static const luaL_Reg stream_module[] = {
  {"io_config", core_io_config},
  {"tcp_connect", core_tcp_connect},
  {"pipe_connect", core_pipe_connect},
  {"socket_file", core_socket_file},
  {"tcp_listen", core_tcp_listen},
  {"pipe_listen", core_pipe_listen},
  {NULL, NULL}
};


void asyncio_stream_open (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", stream_gc}, {NULL, NULL}};
  luaL_newmetatable(L, ASYNCIO_STREAM);
  asyncio_setfuncs(L, meta);
  lua_newtable(L);
  asyncio_setfuncs(L, stream_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, "stream_methods");  /* for the Lua layer's hot paths */
  lua_pop(L, 1);
  asyncio_setfuncs(L, stream_module);
}
