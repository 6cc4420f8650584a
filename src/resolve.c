/*
** resolve.c: getaddrinfo and getnameinfo on libuv's thread pool. A request
** is a userdata (a Box) the Lua layer waits on; the libuv request lives in
** malloc'd memory of its own, because a Box collected (or a task cancelled)
** mid-request cannot stop the thread pool: the callback frees it.
*/
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "asyncio.h"

typedef struct ResBox ResBox;

typedef struct Req {
  union { uv_req_t req; uv_getaddrinfo_t ai; uv_getnameinfo_t ni; } u;
  ResBox *box;                 /* NULL once the Box is collected */
} Req;

struct ResBox {
  Req *req;                    /* NULL once done */
  Loop *lp;
  lua_State *waiter;
  int status;
  struct addrinfo *res;
  char host[NI_MAXHOST], service[NI_MAXSERV];
};


static void finish (Req *r, int status) {
  ResBox *b = r->box;
  free(r);
  if (b == NULL) return;
  b->req = NULL;
  b->status = status;
  asyncio_io_wake(b->lp, &b->waiter);
}


static void on_addrinfo (uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  Req *r = (Req *)req;
  if (r->box == NULL) { if (res) uv_freeaddrinfo(res); }
  else r->box->res = res;
  finish(r, status);
}


static void on_nameinfo (uv_getnameinfo_t *req, int status, const char *host, const char *service) {
  Req *r = (Req *)req;
  if (r->box != NULL && status == 0) {
    snprintf(r->box->host, sizeof r->box->host, "%s", host ? host : "");
    snprintf(r->box->service, sizeof r->box->service, "%s", service ? service : "");
  }
  finish(r, status);
}


static ResBox *new_box (lua_State *L, Loop *lp) {
  ResBox *b = (ResBox *)lua_newuserdatauv(L, sizeof *b, 2);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, ASYNCIO_RESOLVE);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  b->lp = lp;
  b->req = (Req *)malloc(sizeof *b->req);
  if (b->req == NULL) { asyncio_nomem(L); return NULL; }
  b->req->box = b;
  return b;
}


static int started (lua_State *L, ResBox *b, int r) {
  if (r < 0) {
    free(b->req);
    b->req = NULL;
    return asyncio_pushuverror(L, r);
  }
  return 1;
}


/*
** core.getaddrinfo(loop, host|nil, port|nil, family, socktype, passive)
** -> request | nil, err, msg. family: 0, 4 or 6; socktype: 0, 1 stream,
** 2 datagram.
*/
static int core_getaddrinfo (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  const char *host = asyncio_optname(L, 2, NULL);
  const char *port = asyncio_optname(L, 3, NULL);
  lua_Integer family = luaL_optinteger(L, 4, 0), type = luaL_optinteger(L, 5, 0);
  struct addrinfo hints;
  ResBox *b;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = type == 1 ? SOCK_STREAM : type == 2 ? SOCK_DGRAM : 0;
  hints.ai_flags = (lua_toboolean(L, 6) ? AI_PASSIVE : 0) | AI_ADDRCONFIG;
  if (host == NULL) hints.ai_flags &= ~AI_ADDRCONFIG;
  b = new_box(L, lp);
  return started(L, b, uv_getaddrinfo(&lp->uv, &b->req->u.ai, on_addrinfo, host, port, &hints));
}


/* core.getnameinfo(loop, ip, port, numeric) -> request | nil, err, msg */
static int core_getnameinfo (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  const char *ip = asyncio_checkname(L, 2);
  lua_Integer port = luaL_checkinteger(L, 3);
  struct sockaddr_storage sa;
  ResBox *b;
  int r;
  memset(&sa, 0, sizeof sa);
  if (port < 0 || port > 65535) return asyncio_pushuverror(L, UV_EINVAL);
  r = strchr(ip, ':') ? uv_ip6_addr(ip, (int)port, (struct sockaddr_in6 *)&sa)
                      : uv_ip4_addr(ip, (int)port, (struct sockaddr_in *)&sa);
  if (r < 0) return asyncio_pushuverror(L, r);
  b = new_box(L, lp);
  return started(L, b, uv_getnameinfo(&lp->uv, &b->req->u.ni, on_nameinfo,
                                      (struct sockaddr *)&sa, lua_toboolean(L, 4) ? NI_NUMERICHOST : 0));
}


static ResBox *checkres (lua_State *L) {
  return (ResBox *)luaL_checkudata(L, 1, ASYNCIO_RESOLVE);
}


/* req:_wait(loop): suspend until the answer is in (or cancelled). */
static int res_wait (lua_State *L) {
  ResBox *b = checkres(L);
  return asyncio_io_wait_method(L, &b->waiter, b->lp);
}


static int res_abort (lua_State *L) {
  checkres(L)->waiter = NULL;
  return 0;
}


/*
** req:_result() -> false (not yet) | nil, err, msg | the answer:
** getaddrinfo: a list of {family = 4|6, host =, port =, socktype =};
** getnameinfo: host, service.
*/
static int res_result (lua_State *L) {
  ResBox *b = checkres(L);
  struct addrinfo *ai;
  lua_Integer n = 0;
  if (b->req != NULL) { lua_pushboolean(L, 0); return 1; }
  if (b->status < 0) return asyncio_pushuverror(L, b->status);
  if (b->res == NULL) {
    lua_pushstring(L, b->host);
    lua_pushstring(L, b->service);
    return 2;
  }
  lua_newtable(L);
  for (ai = b->res; ai != NULL; ai = ai->ai_next) {
    char host[64];
    int port;
    if (ai->ai_family == AF_INET) {
      const struct sockaddr_in *a = (const struct sockaddr_in *)ai->ai_addr;
      uv_ip4_name(a, host, sizeof host);
      port = ntohs(a->sin_port);
    }
    else if (ai->ai_family == AF_INET6) {
      const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ai->ai_addr;
      uv_ip6_name(a, host, sizeof host);
      port = ntohs(a->sin6_port);
    }
    else continue;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, ai->ai_family == AF_INET ? 4 : 6);
    lua_setfield(L, -2, "family");
    lua_pushstring(L, host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, port);
    lua_setfield(L, -2, "port");
    lua_pushstring(L, ai->ai_socktype == SOCK_DGRAM ? "dgram" : ai->ai_socktype == SOCK_STREAM ? "stream" : "raw");
    lua_setfield(L, -2, "socktype");
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}


static int res_gc (lua_State *L) {
  ResBox *b = checkres(L);  /* __gc is a field Lua code can reach: check */
  if (b->req != NULL) {  /* still in the pool: the callback frees it */
    b->req->box = NULL;
    uv_cancel(&b->req->u.req);
    b->req = NULL;
    b->status = UV_ECANCELED;  /* what _result says from now on */
  }
  if (b->res != NULL) uv_freeaddrinfo(b->res);
  b->res = NULL;
  return 0;
}


void asyncio_resolve_open (lua_State *L) {
  static const luaL_Reg meta[] = {
    {"__gc", res_gc}, {"_wait", res_wait}, {"_abort", res_abort}, {"_result", res_result},
    {NULL, NULL}
  };
  static const luaL_Reg module[] = {
    {"getaddrinfo", core_getaddrinfo},
    {"getnameinfo", core_getnameinfo},
    {NULL, NULL}
  };
  luaL_newmetatable(L, ASYNCIO_RESOLVE);
  asyncio_setfuncs(L, meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
