/*
** asyncio.h: the one internal header of asyncio.core. Shared structs,
** the few functions that cross files, and Lua version shims.
*/
#ifndef ASYNCIO_H
#define ASYNCIO_H

#include <signal.h>
#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>
#include <uv.h>

#define ASYNCIO_LOOP   "asyncio.Loop"
#define ASYNCIO_QUEUE  "asyncio.Queue"
#define ASYNCIO_STREAM "asyncio.Stream"
#define ASYNCIO_SIGNAL "asyncio.Signal"
#define ASYNCIO_RESOLVE "asyncio.Resolve"
#define ASYNCIO_PROCESS "asyncio.Process"
#define ASYNCIO_SSLCONTEXT "asyncio.SSLContext"

/* Resetting a coroutine changed name and arity across 5.4 releases. */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define ASYNCIO_CLOSETHREAD(co, from)  lua_closethread(co, from)
#elif LUA_VERSION_RELEASE_NUM >= 50405
#define ASYNCIO_CLOSETHREAD(co, from)  lua_resetthread(co, from)
#else
#define ASYNCIO_CLOSETHREAD(co, from)  ((void)(from), lua_resetthread(co))
#endif


/* timer.c: a min-heap of deadlines with integer payloads ---------------- */

typedef struct TimerSlot {
  uint64_t deadline;     /* uv_hrtime() nanoseconds */
  uint64_t seq;          /* tie-break: equal deadlines fire in arming order */
  int32_t payload;       /* the caller's (loop.c: a slot number) */
  uint32_t gen;          /* bumped whenever the slot is freed: stale ids miss */
  int32_t heapidx;       /* position in 'heap'; free slots chain as -2 - next */
} TimerSlot;

typedef struct Heap {
  TimerSlot *slots;
  int32_t nslots, freeslot;
  int32_t *heap;         /* slot numbers, a binary min-heap */
  int32_t n;
  uint64_t seq;
} Heap;

void asyncio_heap_init (Heap *h);
void asyncio_heap_free (Heap *h);
int64_t asyncio_heap_add (Heap *h, uint64_t deadline, int32_t payload);
int asyncio_heap_cancel (Heap *h, int64_t id, int32_t *payload);
int asyncio_heap_deadline (const Heap *h, int64_t id, uint64_t *deadline);
int asyncio_heap_payload (const Heap *h, int64_t id, int32_t *payload);
int asyncio_heap_pop (Heap *h, uint64_t now, int64_t *id, int32_t *payload);
int64_t asyncio_heap_next_ms (const Heap *h, uint64_t now);
int asyncio_heap_live (const Heap *h);

/* The deadline of a timer that never fires (a delay of math.huge, or past
** MAX_DELAY): it stays in the heap so that it can be cancelled like any
** other, but nothing waits for it, a virtual clock never jumps to it, and
** a loop with nothing else to do is idle (a deadlock to asyncio.run). */
#define ASYNCIO_NEVER  UINT64_MAX


/* task.c: slots, the ready ring, running tasks --------------------------- */

/* What a slot holds. A task's slot lives as long as the task is pending; a
** callback's, until it has run (or its timer is cancelled). */
enum { SLOT_FREE, SLOT_CALLBACK, SLOT_TASK };

/* A callback slot's state: a sticky one (posted by an I/O handle from a
** libuv callback) stays after it runs; 'nargs' says whether it is queued. */
enum { CALLBACK_ONCE, CALLBACK_STICKY, CALLBACK_DEAD };

/* Where a task is: in the ready ring (TASK_NEW: not started yet), running,
** or suspended in 'await'. */
enum { TASK_READY = 1, TASK_RUNNING, TASK_SUSPENDED, TASK_NEW };

typedef struct Slot {
  lua_State *co;         /* SLOT_TASK: the coroutine (anchored, see below) */
  int64_t timer;         /* a sleeping task's heap id, or -1 */
  int32_t nextfree;      /* free list */
  uint8_t kind;
  uint8_t state;         /* SLOT_TASK only */
  uint16_t nargs;        /* values waiting on co's stack for its next resume;
                         ** TASK_NEW: the size its stack must have (see spawn) */
} Slot;

/* User values of a Loop userdata. Slot 's' anchors its Lua values at key
** 's' of LOOP_FIRST (the coroutine, or a callback's function) and of
** LOOP_SECOND (the task, or a callback's argument): while a slot is in
** use, nothing it names can be collected, so C may hold raw pointers. */
enum { LOOP_FIRST = 1, LOOP_SECOND, LOOP_HOOKS, LOOP_NUV = LOOP_HOOKS };

typedef struct Loop {
  uv_loop_t uv;
  uv_timer_t timer;      /* armed for the earliest deadline only while waiting */
  uv_async_t wakeup;     /* sent by the SIGINT handler (interrupt.c) */
  int closed;            /* uv_loop_close done; every other field is dead */
  int running;
  int stopping;          /* stop() was called: leave after the current batch */
  volatile sig_atomic_t interrupted;        /* SIGINT arrived during run() */
  volatile sig_atomic_t interrupt_pending;  /* ... and run() has not returned yet */
  int gcstress;          /* ASYNCIO_GC_STRESS: full collection after each step */
  Slot *slots;           /* slot 0 is never used: 0 means "no slot" */
  int32_t nslots, freeslot, ntasks;
  int32_t *ring;         /* FIFO of slot numbers; capacity >= nslots */
  int32_t rhead, rcount;
  Heap heap;
  lua_State *resuming;   /* the coroutine the loop is resuming now, or NULL */
  int suspended;         /* set by suspend(): the yield was an await's */
  int vclock;            /* a virtual clock: time is 'vnow' and jumps (loop.c) */
  uint64_t vnow;         /* the virtual clock's nanoseconds */
  uint64_t slow_ns;      /* debug mode: report steps longer than this; 0: off */
  uint64_t polled;       /* poll_clock() of the last look at I/O (loop.c) */
  struct Pool *pools;    /* the worker pools of this loop (worker.c) */
} Loop;

Loop *asyncio_toloop (lua_State *L, int idx);
uint64_t asyncio_now (const Loop *lp);
Loop *asyncio_checkloop (lua_State *L, int idx);
void asyncio_slots_init (Loop *lp);
void asyncio_slots_free (Loop *lp);
int asyncio_wake (Loop *lp, lua_State *L, lua_State *co, int nvals);
void asyncio_wake0 (Loop *lp, lua_State *co);
int32_t asyncio_sticky_new (lua_State *L, Loop *lp, int loopidx, int fnidx, int argidx);
void asyncio_sticky_free (lua_State *L, Loop *lp, int loopidx, int32_t s);
void asyncio_post (Loop *lp, int32_t s);
int32_t asyncio_running (Loop *lp, lua_State *L);
int asyncio_refuse (lua_State *L);
extern const char asyncio_nowait_msg[];
int asyncio_suspend (lua_State *L, Loop *lp, int loopidx);
void asyncio_task_open (lua_State *L);
void asyncio_expire (Loop *lp);
void asyncio_run_one (lua_State *L, Loop *lp, int loopidx);
extern const luaL_Reg asyncio_task_methods[];

/* core.c: every function of the module has the Loop and Queue metatables
** as upvalues 1 and 2, for cheap checks of 'self' (and queue.c's
** configuration as upvalue 3) */
#define ASYNCIO_LOOP_MT   lua_upvalueindex(1)
#define ASYNCIO_QUEUE_MT  lua_upvalueindex(2)
void *asyncio_testudata (lua_State *L, int idx, int mt);
void asyncio_setfuncs (lua_State *L, const luaL_Reg *l);

/* loop.c */
void asyncio_loop_open (lua_State *L);

/* interrupt.c: Ctrl-C while run() watches SIGINT */
void asyncio_on_wakeup (uv_async_t *a);
void asyncio_sigint_watch (Loop *lp);
int asyncio_sigint_close_begin (void);
int asyncio_sigint_close_interrupted (void);
void asyncio_sigint_close_end (void);
void asyncio_sigint_unwatch (Loop *lp);
void asyncio_interrupt_done (lua_State *co);
void asyncio_interrupt_open (lua_State *L);

/* queue.c */
void asyncio_queue_open (lua_State *L);

/* I/O handles (stream.c, signal.c): every libuv handle other than the
** loop's own timer and SIGINT watcher is owned by a struct whose first
** member is its close callback, and h->data points at that struct; the
** loop closes leftovers with it. */
typedef void (*asyncio_closer) (uv_handle_t *h);

/* Waiters of I/O objects: one suspended task per kind, anchored in user
** value 'uv' of the object at 'idx'. */
int asyncio_io_wait (lua_State *L, Loop *lp, int idx, int uv, lua_State **slot, int loopidx);
int asyncio_io_wait_method (lua_State *L, lua_State **slot, const Loop *own);
void asyncio_io_wake (Loop *lp, lua_State **slot);
int asyncio_pushuverror (lua_State *L, int err);
uv_buf_t asyncio_buf (char *p, size_t n);
int asyncio_checkrange (lua_State *L, int arg, lua_Integer lo, lua_Integer hi);
const char *asyncio_checkname (lua_State *L, int arg);
const char *asyncio_optname (lua_State *L, int arg, const char *def);
void asyncio_set_libsource (const char *dir, size_t n);
int asyncio_is_library (const char *source);
void asyncio_pushwhere (lua_State *L);
int asyncio_error (lua_State *L, const char *fmt, ...);
int asyncio_nomem (lua_State *L);
int asyncio_optrange (lua_State *L, int arg, int def, lua_Integer lo, lua_Integer hi);
#define asyncio_checkfd(L, arg)  asyncio_checkrange(L, arg, 0, INT32_MAX)

void asyncio_stream_open (lua_State *L);
uv_stream_t *asyncio_pipe_new (lua_State *L, Loop *lp, int loopidx, size_t limit, int *err);
void asyncio_pipe_start (lua_State *L, int idx, int readable);
void asyncio_pipe_abandon (lua_State *L, int idx, int loopidx);
int asyncio_pipe_open (lua_State *L, int idx, uv_file fd);
void asyncio_process_open (lua_State *L);
void asyncio_udp_open (lua_State *L);
void asyncio_fs_open (lua_State *L);
void asyncio_signal_open (lua_State *L);
void asyncio_resolve_open (lua_State *L);
void asyncio_fdpipe_open (lua_State *L);  /* fdpipe.c */

/* copy.c: values copied between Lua states (worker.c) */
typedef struct CopyBuf { char *p; size_t n, cap; } CopyBuf;
#define ASYNCIO_WHYLEN 80
int asyncio_copy_write (lua_State *L, int first, int n, CopyBuf *b, char *why);
int asyncio_copy_read (lua_State *L, const char *p, size_t n);
void asyncio_copy_free (CopyBuf *b);

/* worker.c: worker threads; close_loop shuts the loop's pools down first */
struct Pool;
void asyncio_note_owner (void);
int asyncio_in_worker (void);
void asyncio_worker_open (lua_State *L);
void asyncio_pools_shutdown (Loop *lp);

/* tls.c: a TLS engine over memory BIOs (see there); stream.c runs it. */
typedef struct asyncio_tls asyncio_tls;
enum { ASYNCIO_TLS_OK = 0, ASYNCIO_TLS_WANT = -1, ASYNCIO_TLS_CLOSED = -2, ASYNCIO_TLS_ERROR = -3 };
asyncio_tls *asyncio_tls_new (lua_State *L, int idx, const char *hostname, char *err, size_t errlen);
void asyncio_tls_free (asyncio_tls *t);
const char *asyncio_tls_reason (const asyncio_tls *t);
int asyncio_tls_feed (asyncio_tls *t, const char *p, size_t n);
int asyncio_tls_handshake (asyncio_tls *t);
long asyncio_tls_read (asyncio_tls *t, char *p, size_t n);
int asyncio_tls_write (asyncio_tls *t, const char *p, size_t n);
void asyncio_tls_shutdown (asyncio_tls *t);
size_t asyncio_tls_pending_out (asyncio_tls *t);
size_t asyncio_tls_take_out (asyncio_tls *t, char *p, size_t n);
int asyncio_tls_info (lua_State *L, asyncio_tls *t, const char *name);
void asyncio_tls_open (lua_State *L);

#endif
