/*
** udp.c: UDP endpoints. The uv_udp_t lives in malloc'd memory freed by its
** close callback; the userdata (an Endpoint) holds what Lua reads: a FIFO
** of received datagrams (bounded: past it new ones are dropped, as a full
** socket buffer would), the first error, the waiting task. What recvfrom
** and send mean is udp.lua's affair.
*/
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "asyncio.h"

#define ASYNCIO_UDP "asyncio.UDP"
#define MAX_QUEUED  1024           /* datagrams kept for recvfrom */
#define MAX_DGRAM   65536

typedef struct Dgram {
  struct Dgram *next;
  struct sockaddr_storage from;
  size_t len;
  char data[];
} Dgram;

typedef struct EBox EBox;

typedef struct Udp {
  asyncio_closer closer;       /* first: the loop closes leftovers with it */
  uv_udp_t h;
  EBox *box;                   /* NULL once the userdata is collected */
  char buf[MAX_DGRAM];         /* libuv reads each datagram here */
} Udp;

struct EBox {
  Udp *u;                      /* NULL once closed */
  Loop *lp;
  Dgram *head, *tail;
  int queued;
  int err;                     /* the first receive error, for recvfrom */
  int closing;
  lua_State *waiter;
};

typedef struct SendReq {
  uv_udp_send_t req;
  char data[];
} SendReq;


static void free_queue (EBox *b) {
  while (b->head != NULL) {
    Dgram *d = b->head;
    b->head = d->next;
    free(d);
  }
  b->tail = NULL;
  b->queued = 0;
}


static void on_close (uv_handle_t *h) {
  Udp *u = (Udp *)h->data;
  if (u->box != NULL) {
    u->box->u = NULL;
    asyncio_io_wake(u->box->lp, &u->box->waiter);
  }
  free(u);
}


static void on_alloc (uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  Udp *u = (Udp *)h->data;
  (void)hint;
  *buf = uv_buf_init(u->buf, sizeof u->buf);
}


static void on_recv (uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                     const struct sockaddr *addr, unsigned flags) {
  Udp *u = (Udp *)h->data;
  EBox *b = u->box;
  (void)buf; (void)flags;
  if (b == NULL) return;
  if (n < 0) {
    if (b->err == 0) b->err = (int)n;
  }
  else if (addr != NULL && b->queued < MAX_QUEUED) {
    Dgram *d = (Dgram *)malloc(sizeof *d + (size_t)n);
    if (d == NULL) return;  /* dropped, as the kernel would */
    d->next = NULL;
    memset(&d->from, 0, sizeof d->from);
    memcpy(&d->from, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                       : sizeof(struct sockaddr_in));
    d->len = (size_t)n;
    memcpy(d->data, u->buf, (size_t)n);
    if (b->tail) b->tail->next = d; else b->head = d;
    b->tail = d;
    b->queued++;
  }
  else return;  /* n == 0 with no address: nothing more to read now */
  asyncio_io_wake(b->lp, &b->waiter);
}


static int parse (const char *host, lua_Integer port, struct sockaddr_storage *sa) {
  memset(sa, 0, sizeof *sa);
  if (port < 0 || port > 65535) return UV_EINVAL;
  if (strchr(host, ':') != NULL) return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa);
  return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa);
}


static int push_addr (lua_State *L, const struct sockaddr_storage *sa) {
  char host[64];
  int port;
  if (sa->ss_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)sa, host, sizeof host);
    port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
  }
  else {
    uv_ip4_name((const struct sockaddr_in *)sa, host, sizeof host);
    port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
  }
  lua_pushstring(L, host);
  lua_pushinteger(L, port);
  return 2;
}


/*
** core.udp_open(loop, local_host|nil, local_port, remote_host|nil,
**               remote_port, reuse_port, broadcast) -> endpoint | nil, err, msg
*/
static int core_udp_open (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  const char *lhost = asyncio_optname(L, 2, NULL);
  lua_Integer lport = luaL_optinteger(L, 3, 0);
  const char *rhost = asyncio_optname(L, 4, NULL);
  lua_Integer rport = luaL_optinteger(L, 5, 0);
  struct sockaddr_storage la, ra;
  EBox *b;
  Udp *u;
  int r;
  if (rhost != NULL && (r = parse(rhost, rport, &ra)) < 0) return asyncio_pushuverror(L, r);
  if (lhost == NULL) lhost = rhost != NULL && strchr(rhost, ':') ? "::" : "0.0.0.0";
  if ((r = parse(lhost, lport, &la)) < 0) return asyncio_pushuverror(L, r);
  b = (EBox *)lua_newuserdatauv(L, sizeof *b, 2);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, ASYNCIO_UDP);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  b->lp = lp;
  u = (Udp *)malloc(sizeof *u);
  if (u == NULL) return asyncio_nomem(L);
  u->closer = on_close;
  u->box = NULL;
  if ((r = uv_udp_init(&lp->uv, &u->h)) < 0) { free(u); return asyncio_pushuverror(L, r); }
  u->h.data = u;
  u->box = b;
  b->u = u;
  r = uv_udp_bind(&u->h, (struct sockaddr *)&la, lua_toboolean(L, 6) ? UV_UDP_REUSEADDR : 0);
  if (r == 0 && lua_toboolean(L, 7)) r = uv_udp_set_broadcast(&u->h, 1);
  if (r == 0 && rhost != NULL) r = uv_udp_connect(&u->h, (struct sockaddr *)&ra);
  if (r == 0) r = uv_udp_recv_start(&u->h, on_alloc, on_recv);
  if (r < 0) {
    u->box = NULL;
    b->u = NULL;
    uv_close((uv_handle_t *)&u->h, on_close);
    return asyncio_pushuverror(L, r);
  }
  return 1;
}


static EBox *checkep (lua_State *L) {
  return (EBox *)luaL_checkudata(L, 1, ASYNCIO_UDP);
}


static void on_sent (uv_udp_send_t *req, int status) {
  (void)status;  /* a failure shows as a receive error (ICMP) or not at all */
  free(req);
}


/* ep:_send(data, [host, port]) -> true | nil, err, msg. Never waits: what
** the socket does not take at once is copied and queued. */
static int ep_send (lua_State *L) {
  EBox *b = checkep(L);
  size_t n;
  const char *p = luaL_checklstring(L, 2, &n);
  struct sockaddr_storage sa;
  const struct sockaddr *to = NULL;
  uv_buf_t ub = asyncio_buf((char *)p, n);  /* too long: EMSGSIZE, never cut */
  int r, tries;
  if (b->u == NULL || b->closing)
    return asyncio_error(L, "%s: the endpoint is closed", lua_isnoneornil(L, 3) ? "send" : "sendto");
  if (!lua_isnoneornil(L, 3)) {
    if ((r = parse(asyncio_checkname(L, 3), luaL_checkinteger(L, 4), &sa)) < 0)
      return asyncio_pushuverror(L, r);
    to = (const struct sockaddr *)&sa;
  }
  /* ECONNREFUSED here is an earlier datagram's (the ICMP report the kernel
  ** keeps for the next call on the socket, which clears it); this one was
  ** not sent. The report is recvfrom's to give, once, and this datagram
  ** goes again (a few reports may be waiting: a burst to a closed port). */
  for (tries = 0; (r = uv_udp_try_send(&b->u->h, &ub, 1, to)) == UV_ECONNREFUSED && tries < 8;
       tries++)
    if (b->err == 0) {
      b->err = r;
      asyncio_io_wake(b->lp, &b->waiter);  /* a recvfrom waiting now gets it */
    }
  if (r == UV_EAGAIN) {
    SendReq *s = (SendReq *)malloc(sizeof *s + n);
    if (s == NULL) return asyncio_nomem(L);
    memcpy(s->data, p, n);
    ub = asyncio_buf(s->data, n);
    r = uv_udp_send(&s->req, &b->u->h, &ub, 1, to, on_sent);
    if (r < 0) free(s);
  }
  if (r < 0) return asyncio_pushuverror(L, r);
  lua_pushboolean(L, 1);
  return 1;
}


/* ep:_recv() -> data, host, port | nil, "wait" | nil, err, msg | nil, "closed" */
static int ep_recv (lua_State *L) {
  EBox *b = checkep(L);
  Dgram *d = b->head;
  if (d != NULL) {
    b->head = d->next;
    if (b->head == NULL) b->tail = NULL;
    b->queued--;
    lua_pushlstring(L, d->data, d->len);
    push_addr(L, &d->from);
    free(d);
    return 3;
  }
  if (b->err != 0) {
    int e = b->err;
    b->err = 0;  /* reported once, as a socket error is */
    return asyncio_pushuverror(L, e);
  }
  lua_pushnil(L);
  lua_pushstring(L, b->u == NULL || b->closing ? "closed" : "wait");
  return 2;
}


static int ep_wait (lua_State *L) {
  EBox *b = checkep(L);
  return asyncio_io_wait_method(L, &b->waiter, b->lp);
}


static int ep_abort (lua_State *L) {
  checkep(L)->waiter = NULL;
  return 0;
}


static int ep_sockname (lua_State *L) {
  EBox *b = checkep(L);
  struct sockaddr_storage sa;
  int len = (int)sizeof sa, r;
  if (b->u == NULL) return asyncio_pushuverror(L, UV_EBADF);
  if ((r = uv_udp_getsockname(&b->u->h, (struct sockaddr *)&sa, &len)) < 0)
    return asyncio_pushuverror(L, r);
  return push_addr(L, &sa);
}


static void close_ep (EBox *b) {
  if (b->u == NULL || b->closing) return;
  b->closing = 1;
  uv_close((uv_handle_t *)&b->u->h, on_close);
  asyncio_io_wake(b->lp, &b->waiter);
}


static int ep_close (lua_State *L) {
  close_ep(checkep(L));
  return 0;
}


static int ep_gc (lua_State *L) {
  EBox *b = checkep(L);  /* __gc is a field Lua code can reach: check */
  if (b->u != NULL) {
    b->u->box = NULL;
    if (!b->closing) uv_close((uv_handle_t *)&b->u->h, on_close);
    b->u = NULL;
  }
  free_queue(b);
  return 0;
}


void asyncio_udp_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", ep_gc}, {"_send", ep_send}, {"_recv", ep_recv}, {"_wait", ep_wait},
    {"_abort", ep_abort}, {"_sockname", ep_sockname}, {"_close", ep_close}, {NULL, NULL}
  };
  static const luaL_Reg module[] = {{"udp_open", core_udp_open}, {NULL, NULL}};
  luaL_newmetatable(L, ASYNCIO_UDP);
  asyncio_setfuncs(L, meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
