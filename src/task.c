/*
** task.c: the mechanics of a task's life. A task is a coroutine whose main
** function is its body; while pending it holds a slot of its loop. The
** ready ring is a FIFO of slot numbers, and a sleeping task sits in the
** timer heap under its slot number. This file resumes coroutines and hands
** their outcome to Lua (the 'finish' hook): what a result, an error or a
** cancellation means is task.lua's affair. A coroutine serves one task
** only: the program may hold it (get_coro, coroutine.running), so it is
** never handed to another task, and one that was closed or resumed by
** someone other than the loop ends its task instead of running on.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio.h"

/* Longest delay we arm, in seconds (about 31 years): longer is "never"
** (ASYNCIO_NEVER), as math.huge is. */
#define MAX_DELAY  1e9

/* The slot of a task's coroutine lives in the coroutine's extra space. It
** is read only from coroutines known to be tasks (the one being resumed,
** one in a waiter list), and even then checked: the slot must be in range
** and name this very coroutine. */
#define SLOT_OF(co)  (*(int32_t *)lua_getextraspace(co))

enum { HOOK_FINISH = 1, HOOK_CALLBACK_ERROR, HOOK_BAD_YIELD, HOOK_SLOW, HOOK_CLOSE_ERROR };

static const char foreign_msg[] =
  "asyncio: a task's coroutine can only be resumed by its event loop";

static const char tampered_msg[] =
  "asyncio: the task's coroutine was closed or resumed outside its event loop";

/* What a suspension primitive returns, with a message, when it is called
** from a coroutine that is not the running task's own: it cannot yield
** there, and the Lua caller must undo what it set up for the wait. */
static const char refused_key = 'R';

/* Why a task cannot wait inside a C function that called back into Lua
** (task.lua raises the same words before it sets anything up). */
const char asyncio_nowait_msg[] =
  "'await' cannot wait here: the task is inside a C function that called back into Lua "
  "(a table.sort comparator, a string.gsub function, a metamethod called from C such as "
  "__index, __lt or __gc, ...), across which it cannot yield";


/* The Loop at 'idx', open or closed. */
Loop *asyncio_toloop (lua_State *L, int idx) {
  Loop *lp = (Loop *)asyncio_testudata(L, idx, ASYNCIO_LOOP_MT);
  if (lp == NULL) luaL_typeerror(L, idx, ASYNCIO_LOOP);
  return lp;
}


Loop *asyncio_checkloop (lua_State *L, int idx) {
  Loop *lp = asyncio_toloop(L, idx);
  if (lp->closed)
    asyncio_error(L, "attempt to use a closed event loop");
  return lp;
}


/* Slots and the ready ring ------------------------------------------------ */

void asyncio_slots_init (Loop *lp) {
  lp->slots = NULL;
  lp->ring = NULL;
  lp->nslots = lp->freeslot = lp->ntasks = 0;
  lp->rhead = lp->rcount = 0;
  asyncio_heap_init(&lp->heap);
}


void asyncio_slots_free (Loop *lp) {
  free(lp->slots);
  free(lp->ring);
  asyncio_heap_free(&lp->heap);
  asyncio_slots_init(lp);
}


/*
** Double the slots and the ring (the ring holds each slot at most once, so
** its capacity is the number of slots and a push never fails). Raises a
** memory error with nothing changed.
*/
static void slots_grow (lua_State *L, Loop *lp, int loopidx) {
  int32_t i, n = lp->nslots ? lp->nslots * 2 : 64;
  int uv;
  Slot *s;
  int32_t *r;
  if (lp->nslots >= INT32_MAX / 4) asyncio_error(L, "too many tasks and callbacks");
  for (uv = LOOP_FIRST; uv <= LOOP_SECOND; uv++) {  /* room in the anchor tables first */
    lua_getiuservalue(L, loopidx, uv);
    for (i = lp->nslots; i < n; i++) {  /* a key kept 'false' never allocates again */
      lua_pushboolean(L, 0);
      lua_rawseti(L, -2, i);
    }
    lua_pop(L, 1);
  }
  r = (int32_t *)malloc((size_t)n * sizeof *r);
  if (r == NULL) asyncio_nomem(L);
  s = (Slot *)realloc(lp->slots, (size_t)n * sizeof *s);
  if (s == NULL) { free(r); asyncio_nomem(L); }
  for (i = 0; i < lp->rcount; i++)  /* keep the ring's order */
    r[i] = lp->ring[(lp->rhead + i) % lp->nslots];
  free(lp->ring);
  lp->ring = r;
  lp->rhead = 0;
  lp->slots = s;
  for (i = n - 1; i >= (lp->nslots ? lp->nslots : 1); i--) {  /* slot 0 stays unused */
    s[i].kind = SLOT_FREE;
    s[i].nextfree = lp->freeslot;
    lp->freeslot = i;
  }
  lp->nslots = n;
}


/* A free slot of 'kind', not yet anchored; may raise with nothing changed.
** Anchoring it (anchor) cannot fail: slots_grow made room for every slot. */
static int32_t slot_new (lua_State *L, Loop *lp, int loopidx, int kind) {
  int32_t s;
  Slot *sl;
  if (lp->freeslot <= 0) slots_grow(L, lp, loopidx);
  s = lp->freeslot;
  sl = &lp->slots[s];
  lp->freeslot = sl->nextfree;
  sl->co = NULL;
  sl->timer = -1;
  sl->nextfree = 0;
  sl->kind = (uint8_t)kind;
  sl->state = 0;
  sl->nargs = 0;
  return s;
}


/* Anchor the value at 'idx' at key 's' of user value 'uv' of the loop
** (the key exists already: see slots_grow). */
static void anchor (lua_State *L, int loopidx, int uv, int32_t s, int idx) {
  idx = lua_absindex(L, idx);
  lua_getiuservalue(L, loopidx, uv);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, s);
  lua_pop(L, 1);
}


/* Push the values anchored at slot 's': first, second. */
static void push_anchored (lua_State *L, int loopidx, int32_t s) {
  lua_getiuservalue(L, loopidx, LOOP_FIRST);
  lua_rawgeti(L, -1, s);
  lua_getiuservalue(L, loopidx, LOOP_SECOND);
  lua_rawgeti(L, -1, s);  /* stack: t1, first, t2, second */
  lua_remove(L, -2);
  lua_remove(L, -3);
}


/* Release slot 's': drop its anchors (cannot fail) and free it. */
static void slot_free (lua_State *L, Loop *lp, int loopidx, int32_t s) {
  Slot *sl = &lp->slots[s];
  lua_getiuservalue(L, loopidx, LOOP_FIRST);
  lua_pushboolean(L, 0);  /* not nil: the key stays, so anchoring again cannot fail */
  lua_rawseti(L, -2, s);
  lua_getiuservalue(L, loopidx, LOOP_SECOND);
  lua_pushboolean(L, 0);
  lua_rawseti(L, -2, s);
  lua_pop(L, 2);
  if (sl->kind == SLOT_TASK) lp->ntasks--;
  sl->kind = SLOT_FREE;
  sl->co = NULL;
  sl->nextfree = lp->freeslot;
  lp->freeslot = s;
}


static void ring_push (Loop *lp, int32_t s) {
  lp->ring[(lp->rhead + lp->rcount) % lp->nslots] = s;
  lp->rcount++;
}


/* The slot of 'co' if it is a task of 'lp', else 0. */
static int32_t task_slot (Loop *lp, lua_State *co) {
  int32_t s = SLOT_OF(co);
  if (s <= 0 || s >= lp->nslots) return 0;
  if (lp->slots[s].kind != SLOT_TASK || lp->slots[s].co != co) return 0;
  return s;
}


/*
** Wake task 'co', suspended in an await, with the 'nvals' values on top of
** 'L' (moved onto its own stack: its await returns them). A sleeping task's
** timer is cancelled. Returns 0, popping the values, if 'co' is not a
** suspended task of 'lp' (already woken, running, finished).
*/
/* Move suspended task slot 's' to the ready ring (its timer cancelled). */
static void make_ready (Loop *lp, int32_t s, int nargs) {
  Slot *sl = &lp->slots[s];
  if (sl->timer >= 0) {
    int32_t payload;
    asyncio_heap_cancel(&lp->heap, sl->timer, &payload);
    sl->timer = -1;
  }
  sl->nargs = (uint16_t)nargs;
  sl->state = TASK_READY;
  ring_push(lp, s);
}


/*
** Wake task 'co', suspended in an await, with the 'nvals' values on top of
** 'L' (moved onto its own stack: its await returns them). A sleeping task's
** timer is cancelled. Returns 0, popping the values, if 'co' is not a
** suspended task of 'lp' (already woken, running, finished), or if its
** coroutine was closed by the program: then it is made ready to end (see
** task_tampered) and what the values hand over (a queue's item) goes to
** the next waiter instead of being lost with it.
*/
int asyncio_wake (Loop *lp, lua_State *L, lua_State *co, int nvals) {
  int32_t s = lp->closed ? 0 : task_slot(lp, co);
  Slot *sl = &lp->slots[s];
  if (s == 0 || sl->state != TASK_SUSPENDED || nvals > UINT16_MAX ||
      lua_status(co) != LUA_YIELD || !lua_checkstack(co, nvals + 1)) {
    if (s != 0 && sl->state == TASK_SUSPENDED && lua_status(co) != LUA_YIELD)
      make_ready(lp, s, 0);
    lua_pop(L, nvals);
    return 0;
  }
  lua_xmove(L, co, nvals);
  make_ready(lp, s, nvals);
  return 1;
}


/*
** Wake task 'co' with no values, from a libuv callback (no Lua state at
** hand, nothing may raise): its await re-checks what it waits for.
*/
void asyncio_wake0 (Loop *lp, lua_State *co) {
  int32_t s = lp->closed || co == NULL ? 0 : task_slot(lp, co);
  if (s != 0 && lp->slots[s].state == TASK_SUSPENDED) make_ready(lp, s, 0);
}


/*
** Sticky callbacks: fn(arg) (the values at 'fnidx', 'argidx') that an I/O
** handle posts from its libuv callback (a connection to accept, a signal).
** The slot stays until asyncio_sticky_free; posting a queued one is a no-op.
*/
int32_t asyncio_sticky_new (lua_State *L, Loop *lp, int loopidx, int fnidx, int argidx) {
  int32_t s = slot_new(L, lp, loopidx, SLOT_CALLBACK);
  anchor(L, loopidx, LOOP_FIRST, s, fnidx);
  anchor(L, loopidx, LOOP_SECOND, s, argidx);
  lp->slots[s].state = CALLBACK_STICKY;
  return s;
}


void asyncio_post (Loop *lp, int32_t s) {
  Slot *sl;
  if (lp->closed || s <= 0 || s >= lp->nslots) return;
  sl = &lp->slots[s];
  if (sl->kind != SLOT_CALLBACK || sl->state != CALLBACK_STICKY || sl->nargs) return;
  sl->nargs = 1;
  ring_push(lp, s);
}


/* Release a sticky slot; one still in the ring is freed when it comes up. */
void asyncio_sticky_free (lua_State *L, Loop *lp, int loopidx, int32_t s) {
  Slot *sl;
  if (lp->closed || s <= 0 || s >= lp->nslots) return;
  sl = &lp->slots[s];
  if (sl->kind != SLOT_CALLBACK || sl->state != CALLBACK_STICKY) return;
  if (sl->nargs) sl->state = CALLBACK_DEAD;
  else slot_free(L, lp, loopidx, s);
}


/* Move every expired timer to the ready ring, earliest first. */
void asyncio_expire (Loop *lp) {
  uint64_t now = asyncio_now(lp);
  int64_t id;
  int32_t s;
  while (asyncio_heap_pop(&lp->heap, now, &id, &s)) {
    Slot *sl = &lp->slots[s];
    if (sl->kind == SLOT_TASK) {
      if (sl->timer != id) continue;  /* cannot happen: wake cancels it */
      sl->timer = -1;
      sl->state = TASK_READY;
    }
    ring_push(lp, s);
  }
}


/* Running the ring ---------------------------------------------------------- */

/* Did a call fail for want of memory (its status, its error on top)? */
static int out_of_memory (lua_State *L, int status) {
  const char *msg;
  if (status == LUA_ERRMEM) return 1;
  msg = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  return msg != NULL && strcmp(msg, "not enough memory") == 0;  /* re-raised in Lua */
}


/*
** Call hook 'h' of the loop with the 'n' values on top of 'L' (popped),
** protected. A hook that runs out of memory is called again after a full
** collection (task.lua's hooks finish their work when called twice): a
** task's end must not be lost to a passing shortage. A hook that still
** fails has nowhere left to report: it goes to stderr.
*/
static void call_hook (lua_State *L, int loopidx, int h, int n) {
  int base = lua_gettop(L) - n, tries, i, status = LUA_ERRMEM;
  for (tries = 0; tries < 3 && lua_checkstack(L, n + 2); tries++) {
    lua_getiuservalue(L, loopidx, LOOP_HOOKS);
    lua_rawgeti(L, -1, h);
    lua_remove(L, -2);
    for (i = 1; i <= n; i++) lua_pushvalue(L, base + i);
    status = lua_pcall(L, n, 0, 0);
    if (status == LUA_OK || !out_of_memory(L, status)) break;
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT, 0);
  }
  if (status != LUA_OK) {
    const char *msg = status == LUA_ERRMEM && lua_gettop(L) == base + n ? "not enough memory"
                      : lua_tostring(L, -1);
    fprintf(stderr, "asyncio: error in an internal hook: %s\n",
            msg ? msg : "(error object is not a string)");
    fflush(stderr);
  }
  lua_settop(L, base);
}


/*
** Close the pending <close> variables of 'co', the dead coroutine of the
** task at 'taskidx' whose body ended with the error at 'erridx' (0: it
** yielded without await, no error). Its outcome is decided already: an
** error a closing method raises (Lua would make it the error) goes to the
** close hook rather than being lost.
*/
static void close_task_thread (lua_State *L, int loopidx, lua_State *co,
                               int taskidx, int erridx) {
  int status = ASYNCIO_CLOSETHREAD(co, L);
  if (status != LUA_OK && lua_gettop(co) > 0) {
    lua_xmove(co, L, 1);               /* the last error of the closing */
    if (erridx != 0 && lua_rawequal(L, -1, erridx)) lua_pop(L, 1);  /* the body's own */
    else {
      lua_pushvalue(L, taskidx);
      lua_insert(L, -2);
      call_hook(L, loopidx, HOOK_CLOSE_ERROR, 2);
    }
  }
  lua_settop(co, 0);                   /* the reset may leave the error there */
}


/*
** The body of the task in slot 's' has ended with 'status': hand the
** outcome to the finish hook (task, nres, results... or task, false, error,
** coroutine) and release the slot. A task that yielded without await is
** failed. The coroutine is dropped (it may be held by the program).
*/
static void task_ended (lua_State *L, Loop *lp, int loopidx, int32_t s,
                        int status, int nres) {
  lua_State *co = lp->slots[s].co;
  push_anchored(L, loopidx, s);        /* stack: co, task */
  slot_free(L, lp, loopidx, s);
  if (status == LUA_OK) {
    int n;
    if (!lua_checkstack(L, nres + LUA_MINSTACK)) {
      lua_pop(co, nres);
      lua_pushboolean(L, 0);
      lua_pushliteral(L, "too many results");
      n = 3;
    }
    else {
      lua_pushinteger(L, nres);
      lua_xmove(co, L, nres);
      n = 2 + nres;
    }
    call_hook(L, loopidx, HOOK_FINISH, n);
    lua_settop(co, 0);
    lua_pop(L, 1);
  }
  else if (status == LUA_YIELD) {      /* a bare coroutine.yield */
    int top = lua_gettop(L);           /* stack: co, task */
    lua_pop(co, nres);
    lua_pushvalue(L, top);
    lua_pushvalue(L, top - 1);
    call_hook(L, loopidx, HOOK_BAD_YIELD, 2);
    close_task_thread(L, loopidx, co, top, 0);
    lua_settop(L, top - 2);
  }
  else {
    int top = lua_gettop(L);           /* stack: co, task */
    lua_xmove(co, L, 1);               /* the error object */
    lua_pushvalue(L, top);
    lua_pushboolean(L, 0);
    lua_pushvalue(L, top + 1);
    lua_pushvalue(L, top - 1);         /* the coroutine, for a traceback */
    call_hook(L, loopidx, HOOK_FINISH, 4);
    close_task_thread(L, loopidx, co, top, top + 1);
    lua_settop(L, top - 2);
  }
}


/*
** The coroutine of the task in slot 's' is not where the loop left it:
** the program closed it (coroutine.close) or resumed it (a task not yet
** started refuses to run its body then: see task.lua's enter). It must
** not run (again): the task ends with an error.
*/
static void task_tampered (lua_State *L, Loop *lp, int loopidx, int32_t s) {
  push_anchored(L, loopidx, s);        /* stack: co, task */
  slot_free(L, lp, loopidx, s);
  lua_pushboolean(L, 0);
  lua_pushstring(L, tampered_msg);
  lua_pushvalue(L, -4);                /* the coroutine, for a traceback */
  call_hook(L, loopidx, HOOK_FINISH, 4);
  lua_pop(L, 1);
}


/* Is the coroutine of task slot 'sl' where the loop left it: not started
** (its stack as spawn made it) or suspended in a yield? */
static int task_intact (Slot *sl) {
  if (sl->state == TASK_NEW)
    return lua_status(sl->co) == LUA_OK && lua_gettop(sl->co) == sl->nargs;
  return lua_status(sl->co) == LUA_YIELD;
}


/* Resume the task in slot 's' with the values its wake-up left on its stack. */
static void resume_task (lua_State *L, Loop *lp, int loopidx, int32_t s) {
  Slot *sl = &lp->slots[s];
  lua_State *co = sl->co;
  int nargs = sl->nargs, status, nres = 0;
  if (!task_intact(sl)) { task_tampered(L, lp, loopidx, s); return; }
  if (sl->state == TASK_NEW) {         /* entry(args...), without the guard */
    lua_pop(co, 1);
    nargs = lua_gettop(co) - 1;
  }
  sl->nargs = 0;
  sl->state = TASK_RUNNING;
  lp->resuming = co;
  lp->suspended = 0;
  status = lua_resume(co, L, nargs, &nres);
  lp->resuming = NULL;
  if (lp->interrupt_pending) asyncio_interrupt_done(co);  /* SIGINT came meanwhile */
  sl = &lp->slots[s];                  /* the body may have grown the slots */
  if (status == LUA_YIELD && lp->suspended) {
    lua_pop(co, nres);
    if (sl->state == TASK_RUNNING) sl->state = TASK_SUSPENDED;
    return;
  }
  task_ended(L, lp, loopidx, s, status, nres);
}


/* Call the callback in slot 's' with its argument, protected. */
static void run_callback (lua_State *L, Loop *lp, int loopidx, int32_t s) {
  Slot *sl = &lp->slots[s];
  if (sl->state == CALLBACK_DEAD) { slot_free(L, lp, loopidx, s); return; }
  push_anchored(L, loopidx, s);        /* stack: fn, arg */
  if (sl->state == CALLBACK_STICKY) sl->nargs = 0;  /* may be posted again */
  else slot_free(L, lp, loopidx, s);
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -2);                /* stack: fn, arg, fn, arg */
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    lua_insert(L, -3);                 /* stack: err, fn, arg */
    call_hook(L, loopidx, HOOK_CALLBACK_ERROR, 3);
  }
  else lua_pop(L, 2);
}


/*
** Debug mode: run slot 's' timed; a step longer than lp->slow_ns goes to
** the slow hook with what ran (the task, or the callback's function) and
** its seconds.
*/
static void run_timed (lua_State *L, Loop *lp, int loopidx, int32_t s) {
  uint64_t t0;
  int task = lp->slots[s].kind == SLOT_TASK;
  push_anchored(L, loopidx, s);        /* stack: first, second */
  lua_remove(L, task ? -2 : -1);       /* the task, or the callback's function */
  t0 = uv_hrtime();
  if (task) resume_task(L, lp, loopidx, s);
  else run_callback(L, lp, loopidx, s);
  t0 = uv_hrtime() - t0;
  if (t0 > lp->slow_ns) {
    lua_pushnumber(L, (lua_Number)t0 / 1e9);
    call_hook(L, loopidx, HOOK_SLOW, 2);
  }
  else lua_pop(L, 1);
}


/* Run the oldest entry of the ready ring. */
void asyncio_run_one (lua_State *L, Loop *lp, int loopidx) {
  int32_t s = lp->ring[lp->rhead];
  lp->rhead = (lp->rhead + 1) % lp->nslots;
  lp->rcount--;
  if (lp->slow_ns > 0) run_timed(L, lp, loopidx, s);  /* debug mode only */
  else if (lp->slots[s].kind == SLOT_TASK) resume_task(L, lp, loopidx, s);
  else run_callback(L, lp, loopidx, s);
  if (lp->gcstress) lua_gc(L, LUA_GCCOLLECT, 0);
}


/* The Lua methods ----------------------------------------------------------- */

/* What a new task's coroutine runs if anyone but its loop resumes it. */
static int refuse_start (lua_State *L) {
  return asyncio_error(L, "%s", foreign_msg);
}


/*
** loop:spawn(task, entry, ...) -> coroutine. A task whose coroutine starts
** entry(...) on a later step; 'task' is what the finish hook gets. Above
** the arguments sits refuse_start: a resume by the program calls the value
** below the arguments it passes, so it calls that (and the task's body
** never runs); the loop pops it and calls 'entry'.
*/
static int task_spawn (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int n = lua_gettop(L) - 2;           /* the entry function and its arguments */
  lua_State *co;
  int32_t s;
  luaL_checkany(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  if (n >= UINT16_MAX) return asyncio_error(L, "too many arguments for a task");
  if (lp->freeslot <= 0) slots_grow(L, lp, 1);  /* may raise: nothing changed yet */
  co = lua_newthread(L);
  if (!lua_checkstack(co, n + 1))
    return asyncio_error(L, "too many arguments for a task");
  lua_insert(L, 3);                    /* stack: loop, task, co, entry, args... */
  s = slot_new(L, lp, 1, SLOT_TASK);   /* cannot raise: a slot is free (above) */
  lua_xmove(L, co, n);
  lua_pushcfunction(co, refuse_start);  /* a light function: no allocation */
  anchor(L, 1, LOOP_FIRST, s, 3);
  anchor(L, 1, LOOP_SECOND, s, 2);
  lp->slots[s].co = co;
  lp->slots[s].state = TASK_NEW;
  lp->slots[s].nargs = (uint16_t)(n + 1);
  SLOT_OF(co) = s;
  lp->ntasks++;
  ring_push(lp, s);
  return 1;
}


/*
** The slot of 'L' if it is the task the loop is running now and can yield
** from here, else 0. Checked before a primitive arranges its wake-up (a
** waiter list, a timer, the ready ring): inside a C function that called
** back into Lua (a table.sort comparator, a metamethod called from C) the
** yield would fail after the arrangement, leaving a waiter nobody resumes.
*/
int32_t asyncio_running (Loop *lp, lua_State *L) {
  int32_t s;
  if (lp->resuming != L) return 0;  /* first: only our tasks' slots are set */
  if (!lua_isyieldable(L)) return 0;
  s = task_slot(lp, L);
  if (s == 0 || lp->slots[s].state == TASK_SUSPENDED) return 0;
  return s;
}


/* Return REFUSED and the message: 'L' is not the running task, or it
** cannot yield here (see asyncio_running). */
int asyncio_refuse (lua_State *L) {
  lua_pushlightuserdata(L, (void *)&refused_key);
  if (!lua_isyieldable(L)) lua_pushstring(L, asyncio_nowait_msg);
  else lua_pushliteral(L, "'await' called inside a coroutine that is not the task's own");
  return 2;
}


/*
** After a yield of asyncio_suspend; 'ctx' is the stack index of the loop.
** Resumed by the loop: return the wake-up values. Resumed by anyone else:
** keep the values a wake-up may have left for the loop, and yield again
** with a refusal for that resumer.
*/
static int suspend_k (lua_State *L, int status, lua_KContext ctx) {
  int base = (int)ctx;
  Loop *lp = (Loop *)lua_touserdata(L, base);  /* kept alive by this very stack */
  (void)status;
  if (lp->resuming != L) {
    int32_t s = lp->closed ? 0 : task_slot(lp, L);
    int keep = s != 0 && lp->slots[s].state == TASK_READY ? lp->slots[s].nargs : 0;
    lua_settop(L, base + keep);
    lua_pushstring(L, foreign_msg);
    return lua_yieldk(L, 1, ctx, suspend_k);
  }
  return lua_gettop(L) - base;
}


/*
** Yield the running task 'L' (checked by asyncio_running) to the loop at
** stack index 'loopidx', which stays on this stack while it is suspended.
** Whatever woke it is already arranged: a timer, a waiter list, the ring.
*/
int asyncio_suspend (lua_State *L, Loop *lp, int loopidx) {
  lua_settop(L, loopidx);
  lp->suspended = 1;
  return lua_yieldk(L, 0, (lua_KContext)loopidx, suspend_k);
}


/* loop:suspend() -> wake-up values: the running task gives up the CPU. */
static int task_suspend (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  if (asyncio_running(lp, L) == 0) return asyncio_refuse(L);
  return asyncio_suspend(L, lp, 1);
}


/* Check that argument 'arg' is a usable delay in seconds; return it. */
static double checkdelay (lua_State *L, int arg) {
  double d = luaL_checknumber(L, arg);
  luaL_argcheck(L, !isnan(d), arg, "delay is NaN");
  return d < 0 ? 0 : d;
}


/* The deadline 'd' seconds (> 0) from now: ASYNCIO_NEVER past MAX_DELAY,
** or past what the clock can count (a virtual clock that has jumped on for
** 584 years saturates there rather than wrap around). */
static uint64_t deadline_in (const Loop *lp, double d) {
  uint64_t now = asyncio_now(lp), ns;
  if (d > MAX_DELAY) return ASYNCIO_NEVER;
  ns = (uint64_t)(d * 1e9 + 0.5);
  return ns >= ASYNCIO_NEVER - now ? ASYNCIO_NEVER : now + ns;
}


/* A deadline in seconds for Lua: math.huge for one that never comes. */
static void push_deadline (lua_State *L, uint64_t deadline) {
  if (deadline == ASYNCIO_NEVER) lua_pushnumber(L, (lua_Number)HUGE_VAL);
  else lua_pushnumber(L, (lua_Number)deadline / 1e9);
}


/*
** loop:sleep(delay) -> wake-up values: suspend the running task for
** 'delay' seconds (a delay <= 0 goes to the back of the ready ring).
*/
static int task_sleep (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double d = checkdelay(L, 2);
  int32_t s = asyncio_running(lp, L);
  if (s == 0) return asyncio_refuse(L);
  if (d <= 0) {
    lp->slots[s].state = TASK_READY;
    ring_push(lp, s);
  }
  else {
    int64_t id = asyncio_heap_add(&lp->heap, deadline_in(lp, d), s);
    if (id < 0) return asyncio_nomem(L);
    lp->slots[s].timer = id;
  }
  return asyncio_suspend(L, lp, 1);
}


/* loop:wake(co, ...) -> true if 'co' was suspended and is now ready. */
static int task_wake (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lua_State *co = lua_tothread(L, 2);
  luaL_argexpected(L, co != NULL, 2, "thread");
  lua_pushboolean(L, asyncio_wake(lp, L, co, lua_gettop(L) - 2));
  return 1;
}


/* A callback slot for the function at 2 and the value at 3. */
static int32_t callback_slot (lua_State *L, Loop *lp) {
  int32_t s;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  s = slot_new(L, lp, 1, SLOT_CALLBACK);
  anchor(L, 1, LOOP_FIRST, s, 2);
  anchor(L, 1, LOOP_SECOND, s, 3);
  return s;
}


/* loop:call_soon(fn, value): fn(value) on the ready ring. */
static int task_call_soon (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lua_settop(L, 3);
  ring_push(lp, callback_slot(L, lp));
  return 0;
}


/* Arm a callback timer for 'deadline' with the function and value at 3, 4. */
static int arm (lua_State *L, Loop *lp, uint64_t deadline) {
  int64_t id;
  int32_t s;
  lua_settop(L, 4);
  lua_remove(L, 2);                    /* stack: loop, fn, value */
  s = callback_slot(L, lp);
  id = asyncio_heap_add(&lp->heap, deadline, s);
  if (id < 0) {
    slot_free(L, lp, 1, s);
    return asyncio_nomem(L);
  }
  lua_pushinteger(L, (lua_Integer)id);
  push_deadline(L, deadline);
  return 2;
}


/* loop:timer(delay, fn, value) -> id, deadline: fn(value) after 'delay' s. */
static int task_timer (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double d = checkdelay(L, 2);
  return arm(L, lp, d > 0 ? deadline_in(lp, d) : asyncio_now(lp));
}


/* loop:timer_at(when, fn, value) -> id, deadline: at loop time 'when'. */
static int task_timer_at (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double when = luaL_checknumber(L, 2);
  double max = (double)asyncio_now(lp) / 1e9 + MAX_DELAY;
  luaL_argcheck(L, !isnan(when), 2, "time is NaN");
  if (when > max || when * 1e9 >= (double)ASYNCIO_NEVER) return arm(L, lp, ASYNCIO_NEVER);
  return arm(L, lp, when <= 0 ? 0 : (uint64_t)(when * 1e9 + 0.5));
}


/* loop:untimer(id) -> true if the callback timer was pending and is now gone. */
static int task_untimer (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  int32_t s;
  /* only a callback's timer: a task's own (its sleep) is the task's to end */
  int ok = asyncio_heap_payload(&lp->heap, (int64_t)id, &s) &&
           lp->slots[s].kind == SLOT_CALLBACK && asyncio_heap_cancel(&lp->heap, (int64_t)id, &s);
  if (ok) slot_free(L, lp, 1, s);
  lua_pushboolean(L, ok);
  return 1;
}


/* loop:tasks() -> the list of pending tasks (what spawn was given). */
static int task_tasks (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int32_t s;
  lua_Integer n = 0;
  lua_createtable(L, lp->ntasks, 0);
  lua_getiuservalue(L, 1, LOOP_SECOND);
  for (s = 1; s < lp->nslots; s++) {
    if (lp->slots[s].kind != SLOT_TASK) continue;
    lua_rawgeti(L, -1, s);
    lua_rawseti(L, -3, ++n);
  }
  lua_pop(L, 1);
  return 1;
}


/* loop:running_task() -> the task whose body the loop is running, or nil
** (between tasks, in a callback, in a hook). */
static int task_running_task (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  int32_t s = lp->resuming ? task_slot(lp, lp->resuming) : 0;
  if (s == 0) return 0;
  lua_getiuservalue(L, 1, LOOP_SECOND);
  lua_rawgeti(L, -1, s);
  return 1;
}


/* loop:pending() -> ready entries, armed timers, pending tasks */
static int task_pending (lua_State *L) {
  Loop *lp = asyncio_toloop(L, 1);
  lua_pushinteger(L, lp->closed ? 0 : lp->rcount);
  lua_pushinteger(L, lp->closed ? 0 : lp->heap.n);
  lua_pushinteger(L, lp->closed ? 0 : lp->ntasks);
  return 3;
}


/* Add REFUSED and NOWAIT_MSG to the module table on top of the stack.
** Threads copy the main thread's extra space when made: start them all at
** "no slot". */
void asyncio_task_open (lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  SLOT_OF(lua_tothread(L, -1)) = 0;
  lua_pop(L, 1);
  lua_pushlightuserdata(L, (void *)&refused_key);
  lua_setfield(L, -2, "REFUSED");
  lua_pushstring(L, asyncio_nowait_msg);
  lua_setfield(L, -2, "NOWAIT_MSG");
}


/*
** loop:task_info(co) -> where task 'co' is: "ready", "running" or
** "suspended" (nil if it is not a pending task of this loop), and for a
** sleeping task its deadline in loop seconds. For task dumps: no fast path.
*/
static int task_info (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lua_State *co = lua_tothread(L, 2);
  int32_t s = co != NULL && !lp->closed ? task_slot(lp, co) : 0;
  uint64_t deadline;
  if (s == 0) { lua_pushnil(L); return 1; }
  switch (lp->slots[s].state) {
    case TASK_READY: case TASK_NEW: lua_pushliteral(L, "ready"); break;
    case TASK_RUNNING: lua_pushliteral(L, "running"); break;
    default: lua_pushliteral(L, "suspended"); break;
  }
  if (lp->slots[s].timer >= 0 && asyncio_heap_deadline(&lp->heap, lp->slots[s].timer, &deadline)) {
    push_deadline(L, deadline);
    return 2;
  }
  return 1;
}


const luaL_Reg asyncio_task_methods[] = {
  {"spawn", task_spawn},
  {"suspend", task_suspend},
  {"sleep", task_sleep},
  {"wake", task_wake},
  {"call_soon", task_call_soon},
  {"timer", task_timer},
  {"timer_at", task_timer_at},
  {"untimer", task_untimer},
  {"tasks", task_tasks},
  {"running_task", task_running_task},
  {"pending", task_pending},
  {"task_info", task_info},
  {NULL, NULL}
};
