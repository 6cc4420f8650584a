/*
** loop.c: the uv_loop_t, the ready queue and run/stop/close. C decides
** when a coroutine or callback runs; what a result means is Lua's affair.
** No Lua code ever runs inside a libuv callback: callbacks only set flags,
** and all Lua work happens in loop_run, which Lua called.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio.h"

/* Light userdata markers. The loop resumes every coroutine with TOKEN as
** first value; a task suspends by yielding SENTINEL first. */
static const char token_key = 'T';
static const char sentinel_key = 'S';

enum { HOOK_CALLBACK_ERROR = 1, HOOK_COROUTINE_ERROR, HOOK_BAD_YIELD };


Loop *asyncio_checkloop (lua_State *L, int idx) {
  Loop *lp = (Loop *)luaL_checkudata(L, idx, ASYNCIO_LOOP);
  if (lp->closed)
    luaL_error(L, "attempt to use a closed event loop");
  return lp;
}


/*
** Grow the ready ring of 'lp' (user value LOOP_READY of the loop at
** 'loopidx') to twice its size, keeping the order of entries.
*/
static void ready_grow (lua_State *L, Loop *lp, int loopidx) {
  lua_Integer i, ncap = lp->rcap * 2;
  lua_getiuservalue(L, loopidx, LOOP_READY);  /* old ring */
  lua_createtable(L, (int)(ncap * 2), 0);     /* new ring */
  for (i = 0; i < lp->rcount; i++) {
    lua_Integer k = ((lp->rhead + i) % lp->rcap) * 2;
    lua_rawgeti(L, -2, k + 1);
    lua_rawseti(L, -2, i * 2 + 1);
    lua_rawgeti(L, -2, k + 2);
    lua_rawseti(L, -2, i * 2 + 2);
  }
  lua_setiuservalue(L, loopidx, LOOP_READY);
  lua_pop(L, 1);
  lp->rhead = 0;
  lp->rcap = ncap;
}


/*
** Append the entry (target, value) on top of 'L' to the ready queue of the
** loop at 'loopidx', and pop them. May raise only on memory errors, before
** the entry is counted.
*/
void asyncio_push_ready (lua_State *L, Loop *lp, int loopidx) {
  lua_Integer k;
  loopidx = lua_absindex(L, loopidx);
  if (lp->rcount == lp->rcap)
    ready_grow(L, lp, loopidx);
  k = ((lp->rhead + lp->rcount) % lp->rcap) * 2;
  lua_getiuservalue(L, loopidx, LOOP_READY);  /* stack: target, value, ring */
  lua_rotate(L, -3, 1);                       /* stack: ring, target, value */
  lua_rawseti(L, -3, k + 2);
  lua_rawseti(L, -2, k + 1);
  lua_pop(L, 1);
  lp->rcount++;
}


/* Push the oldest ready entry (target, value) and remove it from the ring. */
static void pop_ready (lua_State *L, Loop *lp, int loopidx) {
  lua_Integer k = lp->rhead * 2;
  lua_getiuservalue(L, loopidx, LOOP_READY);
  lua_rawgeti(L, -1, k + 1);
  lua_rawgeti(L, -2, k + 2);
  lua_pushnil(L); lua_rawseti(L, -4, k + 1);  /* release the references */
  lua_pushnil(L); lua_rawseti(L, -4, k + 2);
  lua_remove(L, -3);                          /* stack: target, value */
  lp->rhead = (lp->rhead + 1) % lp->rcap;
  lp->rcount--;
}


/*
** Call hook 'h' of the loop with the 'n' values on top of 'L', protected.
** A hook that fails has nowhere left to report: it goes to stderr.
*/
static void call_hook (lua_State *L, int loopidx, int h, int n) {
  lua_getiuservalue(L, loopidx, LOOP_HOOKS);
  lua_rawgeti(L, -1, h);
  lua_remove(L, -2);
  lua_insert(L, -(n + 1));
  if (lua_pcall(L, n, 0, 0) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "asyncio: error in error handler: %s\n",
            msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
}


/* Resume coroutine 'co' with TOKEN and the value on top of 'L' (popped). */
static void step_coroutine (lua_State *L, lua_State *co, int loopidx,
                            int stress) {
  int status, nres;
  if (co == L || (lua_status(co) == LUA_OK && lua_gettop(co) == 0) ||
      !lua_checkstack(co, 2)) {
    lua_pop(L, 1);  /* dead, running or broken: report, never resume */
    lua_pushthread(co); lua_xmove(co, L, 1);
    lua_pushliteral(L, "cannot resume a dead or running coroutine");
    call_hook(L, loopidx, HOOK_COROUTINE_ERROR, 2);
    return;
  }
  lua_pushlightuserdata(co, (void *)&token_key);
  lua_xmove(L, co, 1);
  status = lua_resume(co, L, 2, &nres);
  if (status == LUA_YIELD) {
    int ok = nres >= 1 && lua_touserdata(co, -nres) == (void *)&sentinel_key;
    lua_pop(co, nres);
    if (!ok) {  /* a bare coroutine.yield inside a task */
      lua_pushthread(co); lua_xmove(co, L, 1);
      call_hook(L, loopidx, HOOK_BAD_YIELD, 1);
    }
  }
  else if (status == LUA_OK)
    lua_pop(co, nres);
  else {  /* the Lua wrapper failed itself (e.g. out of memory) */
    lua_pushthread(co); lua_xmove(co, L, 1);
    lua_xmove(co, L, 1);  /* the error object */
    call_hook(L, loopidx, HOOK_COROUTINE_ERROR, 2);
    ASYNCIO_CLOSETHREAD(co, L);
  }
  if (stress) lua_gc(L, LUA_GCCOLLECT, 0);
}


/* Run one ready entry: resume a coroutine or call a function. */
static void run_one (lua_State *L, Loop *lp, int loopidx) {
  pop_ready(L, lp, loopidx);
  if (lua_type(L, -2) == LUA_TTHREAD) {
    lua_State *co = lua_tothread(L, -2);
    step_coroutine(L, co, loopidx, lp->gcstress);
    lua_pop(L, 1);  /* the thread */
  }
  else {
    lua_pushvalue(L, -2);  /* keep both for the report */
    lua_pushvalue(L, -2);  /* stack: fn, value, fn, value */
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
      lua_insert(L, -3);   /* stack: err, fn, value */
      call_hook(L, loopidx, HOOK_CALLBACK_ERROR, 3);
    }
    else lua_pop(L, 2);
    if (lp->gcstress) lua_gc(L, LUA_GCCOLLECT, 0);
  }
}


static void on_timer (uv_timer_t *t) {
  (void)t;  /* only wakes uv_run; loop_run moves expired timers */
}


static void on_sigint (uv_signal_t *s, int signum) {
  Loop *lp = (Loop *)s->data;
  (void)signum;
  lp->interrupted++;
  uv_stop(&lp->uv);
}


/* Wait in libuv for I/O, a signal or the next deadline. */
static void wait_events (Loop *lp, int block) {
  int64_t ms = asyncio_timer_next_ms(lp);
  if (block && ms >= 0)
    uv_timer_start(&lp->timer, on_timer, (uint64_t)ms, 0);
  uv_run(&lp->uv, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  uv_timer_stop(&lp->timer);
}


/*
** The body of loop:run(), called protected by loop_run: run batches of
** ready entries until stop(), SIGINT, or nothing can happen any more.
** Pushes the outcome: "stopped", "interrupted" or "idle".
*/
static int run_inner (lua_State *L) {
  Loop *lp = (Loop *)lua_touserdata(L, 1);
  unsigned polls = 0;
  for (;;) {
    lua_Integer n;
    if (lp->heapn > 0)
      asyncio_timer_expire(L, lp, 1);
    if (lp->interrupted) { lua_pushliteral(L, "interrupted"); return 1; }
    if (lp->rcount == 0) {
      if (lp->stopping) break;
      if (lp->heapn == 0 && !uv_loop_alive(&lp->uv)) {
        lua_pushliteral(L, "idle");
        return 1;
      }
      wait_events(lp, 1);
      continue;
    }
    for (n = lp->rcount; n > 0 && !lp->interrupted; n--) {
      run_one(L, lp, 1);
      if ((++polls & 1023) == 0)  /* let SIGINT and I/O in on busy loops */
        wait_events(lp, 0);
    }
    if (lp->stopping) break;
  }
  lua_pushliteral(L, "stopped");
  return 1;
}


/* loop:run([watch_sigint]) -> "stopped" | "interrupted" | "idle" */
static int loop_run (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int watch = lua_toboolean(L, 2), status;
  struct sigaction old;
  if (lp->running)
    return luaL_error(L, "this event loop is already running");
  lp->running = 1;
  lp->stopping = 0;
  lp->interrupted = 0;
  if (watch) {  /* lua.c's own SIGINT handler comes back when we are done */
    sigaction(SIGINT, NULL, &old);
    uv_signal_start(&lp->sigint, on_sigint, SIGINT);
  }
  lua_settop(L, 1);
  lua_pushcfunction(L, run_inner);
  lua_insert(L, 1);
  status = lua_pcall(L, 1, 1, 0);
  if (watch) {
    uv_signal_stop(&lp->sigint);
    sigaction(SIGINT, &old, NULL);
  }
  lp->running = 0;
  lp->stopping = 0;
  if (status != LUA_OK)
    return lua_error(L);
  return 1;
}


static int loop_stop (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lp->stopping = 1;
  return 0;
}


/* loop:schedule(target, value): append to the ready queue. */
static int loop_schedule (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int t = lua_type(L, 2);
  luaL_argexpected(L, t == LUA_TTHREAD || t == LUA_TFUNCTION, 2,
                   "thread or function");
  lua_settop(L, 3);
  asyncio_push_ready(L, lp, 1);
  return 0;
}


/* loop:time(): monotonic seconds */
static int loop_time (lua_State *L) {
  asyncio_checkloop(L, 1);
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}


/* core.monotonic(): the clock of loop:time(), without a loop */
static int core_monotonic (lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}


/* loop:pending() -> number of ready entries, number of armed timers */
static int loop_pending (lua_State *L) {
  Loop *lp = (Loop *)luaL_checkudata(L, 1, ASYNCIO_LOOP);
  lua_pushinteger(L, lp->closed ? 0 : lp->rcount);
  lua_pushinteger(L, lp->closed ? 0 : lp->heapn);
  return 2;
}


static int loop_is_running (lua_State *L) {
  Loop *lp = (Loop *)luaL_checkudata(L, 1, ASYNCIO_LOOP);
  lua_pushboolean(L, lp->running);
  return 1;
}


static int loop_is_closed (lua_State *L) {
  Loop *lp = (Loop *)luaL_checkudata(L, 1, ASYNCIO_LOOP);
  lua_pushboolean(L, lp->closed);
  return 1;
}


static void close_walk (uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}


/*
** Close every handle, run libuv until they are gone and close the
** uv_loop_t. Drops every ready entry and timer. Safe to call twice.
*/
static void close_loop (lua_State *L, Loop *lp, int loopidx) {
  if (lp->closed) return;
  uv_walk(&lp->uv, close_walk, NULL);
  while (uv_loop_close(&lp->uv) == UV_EBUSY)
    uv_run(&lp->uv, UV_RUN_DEFAULT);
  asyncio_timer_free(lp);
  lp->closed = 1;
  lp->rcount = 0;
  if (L != NULL) {  /* drop the references held by the ring and the timers */
    lua_pushnil(L); lua_setiuservalue(L, loopidx, LOOP_READY);
    lua_pushnil(L); lua_setiuservalue(L, loopidx, LOOP_TIMERS);
  }
}


static int loop_close (lua_State *L) {
  Loop *lp = (Loop *)luaL_checkudata(L, 1, ASYNCIO_LOOP);
  if (lp->running)
    return luaL_error(L, "cannot close a running event loop");
  close_loop(L, lp, 1);
  return 0;
}


static int loop_gc (lua_State *L) {
  Loop *lp = (Loop *)luaL_checkudata(L, 1, ASYNCIO_LOOP);
  close_loop(NULL, lp, 1);  /* user values die with the userdata */
  return 0;
}


/*
** core.new_loop(hooks) -> Loop. 'hooks' is a list of three functions:
** callback error (err, fn, value), coroutine error (co, err), bad yield (co).
*/
static int new_loop (lua_State *L) {
  Loop *lp;
  int i, err;
  luaL_checktype(L, 1, LUA_TTABLE);
  for (i = 1; i <= 3; i++) {
    lua_rawgeti(L, 1, i);
    luaL_argcheck(L, lua_type(L, -1) == LUA_TFUNCTION, 1,
                  "hook functions expected");
    lua_pop(L, 1);
  }
  lp = (Loop *)lua_newuserdatauv(L, sizeof(Loop), LOOP_NUV);
  memset(lp, 0, sizeof(Loop));
  lp->closed = 1;  /* until uv is initialised: __gc must not touch it */
  luaL_setmetatable(L, ASYNCIO_LOOP);
  lp->rcap = 64;
  lua_createtable(L, (int)(lp->rcap * 2), 0);
  lua_setiuservalue(L, -2, LOOP_READY);
  lua_createtable(L, 16, 0);
  lua_setiuservalue(L, -2, LOOP_TIMERS);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, LOOP_HOOKS);
  asyncio_timer_init(lp);
  if ((err = uv_loop_init(&lp->uv)) != 0)
    return luaL_error(L, "cannot create event loop: %s", uv_strerror(err));
  uv_timer_init(&lp->uv, &lp->timer);
  uv_signal_init(&lp->uv, &lp->sigint);
  lp->sigint.data = lp;
  /* the SIGINT watcher alone must not keep uv_run from finding "idle";
  ** the timer is active only while we wait, so it may stay referenced */
  uv_unref((uv_handle_t *)&lp->sigint);
  {
    const char *s = getenv("ASYNCIO_GC_STRESS");
    lp->gcstress = s != NULL && *s != '\0' && strcmp(s, "0") != 0;
  }
  lp->closed = 0;
  return 1;
}


static const luaL_Reg loop_methods[] = {
  {"run", loop_run},
  {"stop", loop_stop},
  {"schedule", loop_schedule},
  {"time", loop_time},
  {"pending", loop_pending},
  {"is_running", loop_is_running},
  {"is_closed", loop_is_closed},
  {"close", loop_close},
  {NULL, NULL}
};


/* Set up the Loop metatable and add new_loop, TOKEN, SENTINEL to the
** module table on top of the stack. */
void asyncio_loop_open (lua_State *L) {
  luaL_newmetatable(L, ASYNCIO_LOOP);
  luaL_newlib(L, loop_methods);
  luaL_setfuncs(L, asyncio_timer_methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, loop_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushliteral(L, ASYNCIO_LOOP);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  lua_pushcfunction(L, new_loop);
  lua_setfield(L, -2, "new_loop");
  lua_pushcfunction(L, core_monotonic);
  lua_setfield(L, -2, "monotonic");
  lua_pushlightuserdata(L, (void *)&token_key);
  lua_setfield(L, -2, "TOKEN");
  lua_pushlightuserdata(L, (void *)&sentinel_key);
  lua_setfield(L, -2, "SENTINEL");
}
