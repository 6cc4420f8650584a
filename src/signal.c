/*
** signal.c: signal handlers. A uv_signal_t per handler; its libuv callback
** only posts the handler's sticky callback (task.c), so the handler runs
** on the ready ring like call_soon, once however many signals came in
** between. What a handler is and how it is called is loop.lua's affair.
*/
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio.h"

typedef struct Sig {
  asyncio_closer closer;       /* first: the loop closes leftovers with it */
  uv_signal_t h;
  int signum;                  /* counted in 'watchers' while not 0 */
  Loop *lp;
  int32_t post;                /* the sticky callback slot, or 0 */
  struct SigBox *box;          /* NULL once the userdata is collected */
} Sig;

typedef struct SigBox {
  Sig *s;                      /* NULL once stopped */
} SigBox;

static const struct { const char *name; int num; } signames[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGTERM", SIGTERM},
  {"SIGALRM", SIGALRM}, {"SIGCHLD", SIGCHLD}, {"SIGPIPE", SIGPIPE},
  {"SIGWINCH", SIGWINCH}, {"SIGCONT", SIGCONT}, {"SIGTSTP", SIGTSTP},
  {"SIGKILL", SIGKILL}, {"SIGSTOP", SIGSTOP}, {"SIGABRT", SIGABRT},
  {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU}, {"SIGURG", SIGURG},
  {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ}, {"SIGVTALRM", SIGVTALRM},
  {"SIGPROF", SIGPROF}, {"SIGSYS", SIGSYS}, {"SIGTRAP", SIGTRAP},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGILL", SIGILL}, {"SIGSEGV", SIGSEGV},
#ifdef SIGIO
  {"SIGIO", SIGIO},
#endif
#ifdef SIGPOLL
  {"SIGPOLL", SIGPOLL},
#endif
#ifdef SIGIOT
  {"SIGIOT", SIGIOT},
#endif
#ifdef SIGPWR
  {"SIGPWR", SIGPWR},
#endif
  {NULL, 0}
};

/* Signals are numbered 1 to NSIG - 1; real-time ones (SIGRTMIN to SIGRTMAX:
** glibc keeps the two below SIGRTMIN for itself) go by number. */
#ifndef NSIG
#define NSIG 65
#endif


/* libuv sets a signal to its default when its last watcher stops: the
** disposition the process had before the first one (a host's handler,
** SIGHUP ignored under nohup, SIGPIPE ignored at our load) is put back.
** Signals are process-wide, so the count is too (one thread runs loops). */
static struct sigaction before[NSIG];
static int watchers[NSIG];

static void watch (Sig *s, int signum) {
  if (watchers[signum]++ == 0) sigaction(signum, NULL, &before[signum]);
  s->signum = signum;
}

static void unwatch (Sig *s) {
  int signum = s->signum;
  struct sigaction now;
  if (signum == 0) return;
  s->signum = 0;
  if (--watchers[signum] == 0 && sigaction(signum, NULL, &now) == 0 &&
      now.sa_handler == SIG_DFL && !(now.sa_flags & SA_SIGINFO))
    sigaction(signum, &before[signum], NULL);
}

static void on_close (uv_handle_t *h) {
  Sig *s = (Sig *)h->data;
  if (s->box != NULL) s->box->s = NULL;
  unwatch(s);  /* closed by the loop's close: libuv reset it just now */
  free(s);
}


static void on_signal (uv_signal_t *h, int signum) {
  Sig *s = (Sig *)h->data;
  (void)signum;
  asyncio_post(s->lp, s->post);
}


/* core.signal_number(name or number) -> number | nil */
static int core_signal_number (lua_State *L) {
  int i;
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Integer n = lua_tointeger(L, 1);
    for (i = 0; signames[i].name; i++)
      if (signames[i].num == n) { lua_pushinteger(L, n); lua_pushstring(L, signames[i].name); return 2; }
    if (n < SIGRTMIN || n > SIGRTMAX || (lua_Number)n != lua_tonumber(L, 1)) return 0;
    lua_pushinteger(L, n);
    lua_pushfstring(L, "signal %d", (int)n);
    return 2;
  }
  if (lua_type(L, 1) == LUA_TSTRING) {
    const char *name = lua_tostring(L, 1);
    for (i = 0; signames[i].name; i++)
      if (strcmp(signames[i].name, name) == 0 || strcmp(signames[i].name + 3, name) == 0) {
        lua_pushinteger(L, signames[i].num);
        lua_pushstring(L, signames[i].name);
        return 2;
      }
  }
  return 0;
}


/* core.signal_start(loop, signum, fn, arg, [weak]) -> handler | nil, err,
** msg (EWORKER: in a worker thread): fn(arg) runs on the loop after 'signum' arrives. A weak handler
** does not keep the loop running (the SIGQUIT task dump). */
static int core_signal_start (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int signum = asyncio_checkrange(L, 2, 1, 64), r;
  SigBox *b;
  Sig *s;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (asyncio_in_worker()) {  /* dispositions and 'watchers' are the process's */
    lua_pushnil(L);
    lua_pushliteral(L, "EWORKER");
    lua_pushliteral(L, "signal handlers belong to the program's own thread, not to a loop "
                       "in a worker thread");
    return 3;
  }
  lua_settop(L, 5);
  b = (SigBox *)lua_newuserdatauv(L, sizeof *b, 1);
  b->s = NULL;
  luaL_setmetatable(L, ASYNCIO_SIGNAL);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  s = (Sig *)malloc(sizeof *s);
  if (s == NULL) return asyncio_nomem(L);
  memset(s, 0, sizeof *s);
  s->closer = on_close;
  s->lp = lp;
  if ((r = uv_signal_init(&lp->uv, &s->h)) < 0) {
    free(s);
    return asyncio_pushuverror(L, r);
  }
  s->h.data = s;
  s->box = b;
  b->s = s;
  watch(s, signum);
  if ((r = uv_signal_start(&s->h, on_signal, signum)) < 0) {
    s->box = NULL;
    b->s = NULL;
    uv_close((uv_handle_t *)&s->h, on_close);
    unwatch(s);
    return asyncio_pushuverror(L, r);
  }
  if (lua_toboolean(L, 5)) uv_unref((uv_handle_t *)&s->h);
  s->post = asyncio_sticky_new(L, lp, 1, 3, 4);
  return 1;
}


/* Stop and close; 'L' with the loop at 'loopidx' frees the callback slot. */
static void stop (lua_State *L, SigBox *b, int loopidx) {
  Sig *s = b->s;
  if (s == NULL) return;
  b->s = NULL;
  s->box = NULL;
  if (s->post > 0 && !s->lp->closed) asyncio_sticky_free(L, s->lp, loopidx, s->post);
  s->post = 0;
  if (!uv_is_closing((uv_handle_t *)&s->h)) uv_close((uv_handle_t *)&s->h, on_close);
  unwatch(s);  /* at once: on_close comes on the loop's next turn */
}


/* handler:_stop() */
static int sig_stop (lua_State *L) {
  SigBox *b = (SigBox *)luaL_checkudata(L, 1, ASYNCIO_SIGNAL);
  lua_getiuservalue(L, 1, 1);
  stop(L, b, lua_gettop(L));
  return 0;
}


static int sig_gc (lua_State *L) {
  SigBox *b = (SigBox *)luaL_checkudata(L, 1, ASYNCIO_SIGNAL);  /* reachable from Lua */
  lua_getiuservalue(L, 1, 1);
  stop(L, b, lua_gettop(L));
  return 0;
}


void asyncio_signal_open (lua_State *L) {
  static const luaL_Reg meta[] = {{"__gc", sig_gc}, {"_stop", sig_stop}, {NULL, NULL}};
  static const luaL_Reg module[] = {
    {"signal_start", core_signal_start},
    {"signal_number", core_signal_number},
    {NULL, NULL}
  };
  luaL_newmetatable(L, ASYNCIO_SIGNAL);
  asyncio_setfuncs(L, meta);
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, module);
}
