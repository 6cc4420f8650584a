/*
** asyncio.h: the one internal header of asyncio.core. Shared structs,
** the few functions that cross files, and Lua version shims.
*/
#ifndef ASYNCIO_H
#define ASYNCIO_H

#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#define ASYNCIO_LOOP   "asyncio.Loop"
#define ASYNCIO_QUEUE  "asyncio.Queue"

/* Resetting a coroutine changed name and arity across 5.4 releases. */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define ASYNCIO_CLOSETHREAD(co, from)  lua_closethread(co, from)
#elif LUA_VERSION_RELEASE_NUM >= 50405
#define ASYNCIO_CLOSETHREAD(co, from)  lua_resetthread(co, from)
#else
#define ASYNCIO_CLOSETHREAD(co, from)  ((void)(from), lua_resetthread(co))
#endif

/* User values of a Loop userdata. */
enum { LOOP_READY = 1,   /* ring of (target, value) pairs, see loop.c */
       LOOP_TIMERS,      /* timer payloads by slot, see timer.c */
       LOOP_HOOKS,       /* Lua functions called on errors, see loop.c */
       LOOP_NUV = LOOP_HOOKS };

/* One deadline. Slots are recycled; 'gen' tells a stale id from a live one. */
typedef struct TimerSlot {
  uint64_t deadline;     /* uv_hrtime() nanoseconds */
  uint64_t seq;          /* tie-break: equal deadlines fire in arming order */
  uint32_t gen;          /* bumped whenever the slot is freed */
  int32_t heapidx;       /* position in 'heap', or -1 when free */
} TimerSlot;

typedef struct Loop {
  uv_loop_t uv;
  uv_timer_t timer;      /* armed for the earliest deadline only while waiting */
  uv_signal_t sigint;    /* started only while run() was asked to watch SIGINT */
  int closed;            /* uv_loop_close done; every other field is dead */
  int running;
  int stopping;          /* stop() was called: leave after the current batch */
  int interrupted;       /* SIGINT arrived during run() */
  int gcstress;          /* ASYNCIO_GC_STRESS: full collection after each step */
  /* ready ring: entry i lives at keys 2i+1 (target) and 2i+2 (value) */
  lua_Integer rhead, rcount, rcap;
  /* timers: a binary min-heap of slot numbers over 'slots' */
  TimerSlot *slots;
  int32_t nslots, freeslot;   /* free slots chain through heapidx = -2 - next */
  int32_t *heap;
  int32_t heapn;
  uint64_t seq;
} Loop;

/* loop.c */
Loop *asyncio_checkloop (lua_State *L, int idx);
void asyncio_push_ready (lua_State *L, Loop *lp, int loopidx);
void asyncio_loop_open (lua_State *L);

/* timer.c */
void asyncio_timer_init (Loop *lp);
void asyncio_timer_free (Loop *lp);
int asyncio_timer_expire (lua_State *L, Loop *lp, int loopidx);
int64_t asyncio_timer_next_ms (Loop *lp);
extern const luaL_Reg asyncio_timer_methods[];

/* queue.c */
void asyncio_queue_open (lua_State *L);

#endif
