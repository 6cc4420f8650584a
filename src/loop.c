/*
** loop.c: the uv_loop_t and run/stop/close. C decides when a task or a
** callback runs (task.c keeps the ready ring and the slots, timer.c the
** deadlines); what a result means is Lua's affair. No Lua code ever runs
** inside a libuv callback: callbacks only set flags, and all Lua work
** happens in loop_run, which Lua called.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "asyncio.h"


/* Only ends uv_run; run_inner moves expired timers. uv_stop matters: in
** UV_RUN_ONCE libuv runs due timers before it polls, and a timer that fired
** there would leave the poll with no timeout at all (blocked for good). */
static void on_timer (uv_timer_t *t) {
  uv_stop(t->loop);
}


/* The loop's clock in nanoseconds: the real monotonic clock, or the
** virtual one. */
uint64_t asyncio_now (const Loop *lp) {
  return lp->vclock ? lp->vnow : uv_hrtime();
}


/* The clock of the poll interval below, in nanoseconds: the kernel's tick
** count where there is one. It is read after every batch of ready entries,
** and a batch can be one step (two tasks passing a token): the precise
** clock (uv_hrtime) costs a TSC read there, a twentieth of such a step on
** a virtual machine, where a 10 ms interval needs no more than a tick. */
static uint64_t poll_clock (void) {
#ifdef CLOCK_MONOTONIC_COARSE
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) == 0)
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
  return uv_hrtime();
}


/* Wait in libuv for I/O, a signal or the next deadline. */
static void wait_events (Loop *lp, int block) {
  int64_t ms = asyncio_heap_next_ms(&lp->heap, asyncio_now(lp));
  if (ms == 0) block = 0;  /* a deadline is due already: only poll */
  if (block && ms > 0 && !lp->vclock) {
    uv_update_time(&lp->uv);  /* uv_now is cached: arm from the real now */
    uv_timer_start(&lp->timer, on_timer, (uint64_t)ms, 0);
  }
  uv_run(&lp->uv, block ? UV_RUN_ONCE : UV_RUN_NOWAIT);
  uv_timer_stop(&lp->timer);
  lp->polled = poll_clock();
}


/* A child process still running, or a worker pool with calls out (its
** async handle is referenced only then: worker.c): real work that
** virtual time waits for. */
static void find_work (uv_handle_t *h, void *arg) {
  if (uv_is_closing(h)) return;
  if ((h->type == UV_PROCESS && uv_is_active(h)) || (h->type == UV_ASYNC && uv_has_ref(h)))
    *(int *)arg = 1;
}


/* Real work is under way and a timer waits: virtual time flows at real
** speed meanwhile (waiting for the next deadline or I/O, whichever comes
** first). Frozen, it would never let a time limit on work that does not
** end (a child that runs on, a peer that never reads) expire. It moves by
** all the real time that passed, as a real clock would: capped at the
** deadline, timers closer together than the 1 ms the wait is armed in
** would each cost a millisecond of real time. */
static void flow (Loop *lp) {
  uint64_t t0 = uv_hrtime();
  uv_update_time(&lp->uv);  /* uv_now is cached: arm from the real now */
  uv_timer_start(&lp->timer, on_timer, (uint64_t)asyncio_heap_next_ms(&lp->heap, lp->vnow), 0);
  uv_run(&lp->uv, UV_RUN_ONCE);
  uv_timer_stop(&lp->timer);
  lp->polled = poll_clock();
  lp->vnow += uv_hrtime() - t0;
}


/*
** Nothing is ready on a virtual clock. Take the I/O that is there now;
** if none, and real work is under way (thread-pool requests, worker
** threads, connects, writes, child processes), wait for it in real time,
** time flowing at real speed towards the next deadline (flow). Otherwise
** every task waits on a timer or on I/O from outside: time jumps to the
** next deadline. With no deadline either, wait for I/O as usual.
*/
static void virtual_wait (Loop *lp) {
  int busy = 0;
  wait_events(lp, 0);
  if (lp->rcount > 0 || lp->interrupted || lp->stopping) return;
  if (asyncio_heap_next_ms(&lp->heap, lp->vnow) == 0) return;
  busy = lp->uv.active_reqs.count > 0;
  if (!busy) uv_walk(&lp->uv, find_work, &busy);
  if (asyncio_heap_live(&lp->heap)) {
    uint64_t next = lp->heap.slots[lp->heap.heap[0]].deadline;
    if (busy) flow(lp);
    else if (next > lp->vnow) lp->vnow = next;
    return;
  }
  wait_events(lp, 1);
}


/* Tasks that keep each other ready make the loop look at I/O every 1024
** steps (about a millisecond when steps are quick) and, between two
** batches, once this much real time has passed since it last looked (on
** a virtual clock too). Looking after every batch, as Python does, costs a
** system call per batch; counting steps alone starved sockets when steps
** are slow (a collection after each step): a timed read then always timed
** out before its bytes, even its EOF, were taken in. */
#define POLL_NS 10000000u


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
    if (lp->heap.n > 0)
      asyncio_expire(lp);
    if (lp->interrupted) { lua_pushliteral(L, "interrupted"); return 1; }
    if (lp->rcount == 0) {
      if (lp->stopping) break;
      if (!asyncio_heap_live(&lp->heap) && !uv_loop_alive(&lp->uv)) {
        lua_pushliteral(L, "idle");
        return 1;
      }
      if (lp->vclock) virtual_wait(lp);
      else wait_events(lp, 1);
      continue;
    }
    for (n = lp->rcount; n > 0 && !lp->interrupted; n--) {
      asyncio_run_one(L, lp, 1);
      if ((++polls & 1023) == 0)  /* let SIGINT and I/O in on busy loops */
        wait_events(lp, 0);
    }
    if (lp->stopping) break;
    if (lp->rcount > 0 && poll_clock() - lp->polled >= POLL_NS)
      wait_events(lp, 0);  /* (none ready: the loop's top waits for I/O anyway) */
  }
  lua_pushliteral(L, "stopped");
  return 1;
}


/* loop:run([watch_sigint]) -> "stopped" | "interrupted" | "idle" */
static int loop_run (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int watch = lua_toboolean(L, 2), status;
  if (lp->running)
    return asyncio_error(L, "this event loop is already running");
  lua_settop(L, 1);
  lua_pushvalue(L, ASYNCIO_LOOP_MT);   /* the module's upvalues, as everywhere */
  lua_pushvalue(L, ASYNCIO_QUEUE_MT);
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_pushcclosure(L, run_inner, 3);   /* allocates: before any state changes */
  lua_insert(L, 1);
  lp->running = 1;
  lp->stopping = 0;
  lp->interrupted = 0;
  if (watch) asyncio_sigint_watch(lp);  /* the host's handler comes back when we are done */
  status = lua_pcall(L, 1, 1, 0);
  if (watch) asyncio_sigint_unwatch(lp);
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


/* loop:time(): monotonic seconds (a virtual clock's, on such a loop) */
static int loop_time (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lua_pushnumber(L, (lua_Number)asyncio_now(lp) / 1e9);
  return 1;
}


/* loop:advance(seconds): move a virtual clock on by hand; timers due by
** then fire on the next turn of the loop. */
static int loop_advance (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double d = luaL_checknumber(L, 2);
  luaL_argcheck(L, lp->vclock, 1, "the loop's clock is not virtual");
  luaL_argcheck(L, d >= 0 && d < 1e9, 2, "seconds must be between 0 and 1e9");
  {
    uint64_t ns = (uint64_t)(d * 1e9);
    /* saturates below ASYNCIO_NEVER (584 years of jumps) rather than wrap */
    lp->vnow = ns >= ASYNCIO_NEVER - 1 - lp->vnow ? ASYNCIO_NEVER - 1 : lp->vnow + ns;
  }
  return 0;
}


/* loop:set_slow(seconds): debug mode reports steps longer than this to the
** slow hook (hook 4); 0 or nil turns it off. */
static int loop_set_slow (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double d = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, d >= 0 && d < 1e6, 2, "seconds must be between 0 and 1e6");
  lp->slow_ns = d > 0 ? (uint64_t)(d * 1e9) : 0;
  return 0;
}


/* loop:is_virtual() */
static int loop_is_virtual (lua_State *L) {
  lua_pushboolean(L, asyncio_checkloop(L, 1)->vclock);
  return 1;
}


/* core.monotonic(): the clock of loop:time(), without a loop */
static int core_monotonic (lua_State *L) {
  lua_pushnumber(L, (lua_Number)uv_hrtime() / 1e9);
  return 1;
}


static int loop_is_running (lua_State *L) {
  Loop *lp = asyncio_toloop(L, 1);
  lua_pushboolean(L, lp->running);
  return 1;
}


static int loop_is_closed (lua_State *L) {
  Loop *lp = asyncio_toloop(L, 1);
  lua_pushboolean(L, lp->closed);
  return 1;
}


/* The loop's own handles have no owner; every other one is an I/O
** object's, closed through its owner's callback (see asyncio.h). */
static void close_walk (uv_handle_t *h, void *arg) {
  Loop *lp = (Loop *)arg;
  if (uv_is_closing(h)) return;
  if (h == (uv_handle_t *)&lp->timer || h == (uv_handle_t *)&lp->wakeup)
    uv_close(h, NULL);
  else
    uv_close(h, *(asyncio_closer *)h->data);
}


/*
** Close every handle, run libuv until they are gone and close the
** uv_loop_t. Drops every ready entry and timer. Safe to call twice.
*/
static void close_loop (lua_State *L, Loop *lp, int loopidx) {
  if (lp->closed) return;
  asyncio_pools_shutdown(lp);  /* first: its workers must stop sending */
  uv_walk(&lp->uv, close_walk, lp);
  while (uv_loop_close(&lp->uv) == UV_EBUSY)
    uv_run(&lp->uv, UV_RUN_DEFAULT);
  asyncio_slots_free(lp);
  lp->closed = 1;
  if (L != NULL) {  /* drop what the slots anchored */
    lua_pushnil(L); lua_setiuservalue(L, loopidx, LOOP_FIRST);
    lua_pushnil(L); lua_setiuservalue(L, loopidx, LOOP_SECOND);
  }
}


static int loop_close (lua_State *L) {
  Loop *lp = asyncio_toloop(L, 1);
  if (lp->running)
    return asyncio_error(L, "cannot close a running event loop");
  close_loop(L, lp, 1);
  return 0;
}


static int loop_gc (lua_State *L) {
  Loop *lp = asyncio_toloop(L, 1);
  /* the collector never finalizes a running loop (its run holds it), but
  ** __gc is a field Lua code can reach and call */
  if (lp->running)
    return asyncio_error(L, "cannot close a running event loop");
  close_loop(NULL, lp, 1);  /* user values die with the userdata */
  return 0;
}


/*
** core.new_loop(hooks, [virtual]) -> Loop | nil, err, msg. 'hooks' is a list of four
** functions (see task.c): finish (task, ok, ...), callback error (err, fn,
** value), bad yield (task, co), slow step (task or function, seconds). A
** virtual clock starts at 0.
*/
static int new_loop (lua_State *L) {
  Loop *lp;
  int i, err;
  luaL_checktype(L, 1, LUA_TTABLE);
  for (i = 1; i <= 4; i++) {
    lua_rawgeti(L, 1, i);
    luaL_argcheck(L, lua_type(L, -1) == LUA_TFUNCTION, 1,
                  "hook functions expected");
    lua_pop(L, 1);
  }
  lp = (Loop *)lua_newuserdatauv(L, sizeof(Loop), LOOP_NUV);
  memset(lp, 0, sizeof(Loop));
  lp->closed = 1;  /* until uv is initialised: __gc must not touch it */
  lua_pushvalue(L, ASYNCIO_LOOP_MT);
  lua_setmetatable(L, -2);
  lua_createtable(L, 64, 0);
  lua_setiuservalue(L, -2, LOOP_FIRST);
  lua_createtable(L, 64, 0);
  lua_setiuservalue(L, -2, LOOP_SECOND);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, LOOP_HOOKS);
  asyncio_slots_init(lp);
  if ((err = uv_loop_init(&lp->uv)) != 0)
    return asyncio_pushuverror(L, err);  /* the userdata is left closed: garbage */
  uv_timer_init(&lp->uv, &lp->timer);
  uv_async_init(&lp->uv, &lp->wakeup, asyncio_on_wakeup);
  /* the wake-up handle alone must not keep uv_run from finding "idle";
  ** the timer is active only while we wait, so it may stay referenced */
  uv_unref((uv_handle_t *)&lp->wakeup);
  {
    const char *s = getenv("ASYNCIO_GC_STRESS");
    lp->gcstress = s != NULL && *s != '\0' && strcmp(s, "0") != 0;
  }
  lp->vclock = lua_toboolean(L, 2);
  lp->closed = 0;
  return 1;
}


static const luaL_Reg loop_methods[] = {
  {"run", loop_run},
  {"stop", loop_stop},
  {"time", loop_time},
  {"advance", loop_advance},
  {"is_virtual", loop_is_virtual},
  {"set_slow", loop_set_slow},
  {"is_running", loop_is_running},
  {"is_closed", loop_is_closed},
  {"close", loop_close},
  {NULL, NULL}
};


static const luaL_Reg loop_meta[] = {
  {"__gc", loop_gc},
  {NULL, NULL}
};


static const luaL_Reg loop_module[] = {
  {"new_loop", new_loop},
  {"monotonic", core_monotonic},
  {NULL, NULL}
};


/* Complete the Loop metatable (its methods are loop.c's and task.c's) and
** add new_loop and monotonic to the module table on top of the stack. */
void asyncio_loop_open (lua_State *L) {
  luaL_getmetatable(L, ASYNCIO_LOOP);
  asyncio_setfuncs(L, loop_meta);
  lua_newtable(L);
  asyncio_setfuncs(L, loop_methods);
  asyncio_setfuncs(L, asyncio_task_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "loop_methods");  /* for the Lua layer's hot paths */
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  asyncio_setfuncs(L, loop_module);
}
