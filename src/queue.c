/*
** queue.c: the storage and waiter lists behind asyncio.Queue and its
** LIFO/priority variants. A put hands its item straight to the first
** waiting getter (woken with true and the item); a getter that frees a
** slot wakes the first waiting putter with a slot reserved for it (woken
** with true). So wake-ups are strictly FIFO and nothing can barge in.
** Waking only queues the task on its loop (task.c); what a wake-up means
** (cancellation, shutdown) is queue.lua's.
*/
#include <string.h>

#include "asyncio.h"

enum { FIFO, LIFO, PRIO };
/* user values of a Queue */
enum { Q_ITEMS = 1, Q_GETTERS, Q_PUTTERS, Q_LOOP, Q_LESS, Q_GETOP, Q_SEQS, Q_NUV = Q_SEQS };
/* which waiter list */
enum { GETTERS = 0, PUTTERS = 1 };

/* What queue.lua lends the C side (see queue_config): upvalue 3 of every
** function of the module, {putop_mt, done, raise}. */
#define QUEUE_CONFIG  lua_upvalueindex(3)

/* A FIFO of waiting coroutines, stored at keys 1..cap of a user value. */
typedef struct Ring {
  lua_Integer head, count, cap;
} Ring;

typedef struct Queue {
  int kind;
  int shutdown;
  lua_Integer maxsize;          /* 0: unbounded */
  lua_Integer head, count, cap; /* FIFO/LIFO ring at keys 1..cap; PRIO heap at 1..count */
  lua_Integer *seqs;            /* PRIO: insertion numbers, parallel to the heap (1-based),
                                ** in the userdata at user value Q_SEQS: Lua owns the memory,
                                ** so no finalizer can leave a queue half-freed */
  lua_Integer nextseq;
  lua_Integer unfinished;       /* put minus task_done */
  lua_Integer reserved;         /* slots promised to woken putters */
  Ring waiters[2];
  Loop *lp;                     /* the loop of user value Q_LOOP, which keeps it alive */
  int comparing;                /* a comparison may run Lua code (less, __lt): the queue
                                ** must not change under it (see idle) */
} Queue;


/*
** The queue at index 1, or raise naming method 'fname': a method reached
** through a computed key has no name Lua could report by itself.
*/
static Queue *checkqueue (lua_State *L, const char *fname) {
  Queue *q = (Queue *)asyncio_testudata(L, 1, ASYNCIO_QUEUE_MT);
  if (q == NULL) {
    const char *got = luaL_getmetafield(L, 1, "__name") == LUA_TSTRING
                      ? lua_tostring(L, -1) : luaL_typename(L, 1);
    asyncio_error(L, "bad argument #1 to '%s' (" ASYNCIO_QUEUE " expected, got %s)",
               fname, got);
  }
  return q;
}


/*
** Refuse method 'fname' while a comparison of this queue runs Lua code: a
** 'less' (or an item's __lt) that put or got from its own queue would move
** items under a sift half done (an item came out twice).
*/
static void idle (lua_State *L, Queue *q, const char *fname) {
  if (q->comparing)
    asyncio_error(L, "%s: the queue is in use by its own comparison (a 'less' function or "
               "__lt must not use the queue)", fname);
}


/* Raise the asyncio error 'name' (QueueEmpty, ...) through queue.lua. */
static int qerror (lua_State *L, const char *name) {
  lua_rawgeti(L, QUEUE_CONFIG, 3);
  lua_pushstring(L, name);
  lua_call(L, 1, 0);
  return 0;  /* not reached */
}


/* Copy the 'n' ring entries from 'head' of the table at 'src' (capacity
** 'cap') to keys 1..n of the table at 'dst'. Allocates nothing. */
static void ring_copy (lua_State *L, int src, int dst, lua_Integer head,
                       lua_Integer n, lua_Integer cap) {
  lua_Integer i;
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, src, (head + i) % cap + 1);
    lua_rawseti(L, dst, i + 1);
  }
}


/* Push a new table for a ring of capacity 'ncap'. It may run the collector,
** and so finalizers that use this very queue: read the queue after it. */
static void ring_new (lua_State *L, lua_Integer ncap) {
  if (ncap > (1 << 30)) asyncio_error(L, "queue too large");  /* a Lua table's array limit */
  lua_createtable(L, (int)ncap, 0);
}


/* Replace the insertion numbers (queue at index 1) with the new array 's'
** of 'n' entries, on top of the stack (popped), keeping the first 'keep'. */
static void seqs_set (lua_State *L, Queue *q, lua_Integer *s, lua_Integer keep) {
  if (keep > 0) memcpy(s, q->seqs, (size_t)keep * sizeof *s);
  lua_setiuservalue(L, 1, Q_SEQS);  /* the old array is garbage from now */
  q->seqs = s;
}


/* Push a new array of 'n' insertion numbers. It may run the collector (and
** finalizers that use this queue): read the queue after it. */
static lua_Integer *seqs_new (lua_State *L, lua_Integer n) {
  if ((size_t)n > ((size_t)-1 / 2) / sizeof(lua_Integer)) asyncio_error(L, "queue too large");
  return (lua_Integer *)lua_newuserdatauv(L, (size_t)n * sizeof(lua_Integer), 0);
}


/*
** Make room for one more item. Returns 0 if there was room; else it grew
** the storage (or found that it need not any more) and returns 1: the
** allocation may have run a finalizer that used this very queue (a put, a
** get, a shutdown), so the caller looks at the queue again and calls this
** again. The queue is read only after each allocation. May raise, changing
** nothing.
*/
static int items_reserve (lua_State *L, Queue *q) {
  lua_Integer ncap;
  if (q->kind == PRIO) {
    lua_Integer *s;
    if (q->count + 1 < q->cap) return 0;
    ncap = q->cap * 2;
    s = seqs_new(L, ncap + 1);            /* may run finalizers */
    /* cppcheck cannot know that the allocation may change *q: */
    /* cppcheck-suppress knownConditionTrueFalse */
    if (q->count + 1 >= q->cap && q->cap * 2 == ncap) {  /* still wanted: as it is now */
      seqs_set(L, q, s, q->count + 1);
      q->cap = ncap;
    }
    else lua_pop(L, 1);
    return 1;
  }
  if (q->count < q->cap) return 0;
  ncap = q->cap * 2;
  ring_new(L, ncap);                      /* may run finalizers */
  /* cppcheck-suppress knownConditionTrueFalse ; the allocation may change *q */
  if (q->count >= q->cap && q->cap * 2 == ncap) {  /* still wanted: copy the queue as it is now */
    int top = lua_gettop(L);
    lua_getiuservalue(L, 1, Q_ITEMS);
    ring_copy(L, top + 1, top, q->head, q->count, q->cap);
    lua_pop(L, 1);
    lua_setiuservalue(L, 1, Q_ITEMS);
    q->head = 0;
    q->cap = ncap;
  }
  else lua_pop(L, 1);
  return 1;
}


static int compare_lt (lua_State *L) {
  lua_pushboolean(L, lua_compare(L, 1, 2, LUA_OPLT));
  return 1;
}


/*
** a < b for the stack values at 'a' and 'b' (queue at 1), through 'less'
** if given. Lua code that may run (less, __lt) runs protected with the
** queue marked busy, so that it cannot change the queue (idle) and the
** mark is cleared whatever happens; its error then propagates, with
** nothing moved yet.
*/
static int lt (lua_State *L, int a, int b) {
  Queue *q = (Queue *)lua_touserdata(L, 1);
  int r, status, builtin = 0;
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  if (lua_getiuservalue(L, 1, Q_LESS) == LUA_TNIL) {
    int ta = lua_type(L, a), tb = lua_type(L, b);
    lua_pop(L, 1);
    if (ta == tb && (ta == LUA_TNUMBER || ta == LUA_TSTRING))  /* no metamethod */
      return lua_compare(L, a, b, LUA_OPLT);
    lua_pushcfunction(L, compare_lt);
    builtin = 1;
  }
  lua_pushvalue(L, a);
  lua_pushvalue(L, b);
  q->comparing = 1;
  status = lua_pcall(L, 2, 1, 0);
  q->comparing = 0;
  if (status == LUA_ERRRUN && builtin && lua_type(L, -1) == LUA_TSTRING &&
      strncmp(lua_tostring(L, -1), "attempt to compare ", 19) == 0)
    /* Lua's own '<' refused (Python's (priority, item) tuples are tables
    ** here): said with the program's line and the way out */
    asyncio_error(L, "PriorityQueue: cannot order its items (%s): give PriorityQueue a "
                  "'less' function, or the items a __lt metamethod", lua_tostring(L, -1));
  if (status != LUA_OK) lua_error(L);
  r = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return r;
}


/* Does item 'a' (insertion 'sa') come out before item 'b' ('sb')? */
static int before (lua_State *L, int a, lua_Integer sa, int b, lua_Integer sb) {
  if (lt(L, a, b)) return 1;
  if (lt(L, b, a)) return 0;
  return sa < sb;  /* equal priorities: insertion order */
}


/*
** Add the item on top of the stack (popped). For PRIO, the comparisons
** all happen before anything moves, so a failing 'less' changes nothing.
*/
static void items_push (lua_State *L, Queue *q) {
  lua_getiuservalue(L, 1, Q_ITEMS);  /* stack: item, items */
  if (q->kind != PRIO) {
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, (q->head + q->count) % q->cap + 1);
    lua_pop(L, 1);  /* stack: item (popped below) */
  }
  else {
    lua_Integer hole = q->count + 1, h, seq = q->nextseq;
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, hole);  /* grows the table now, while it may fail */
    while (hole > 1) {
      lua_rawgeti(L, -1, hole / 2);
      if (!before(L, -3, seq, -1, q->seqs[hole / 2])) { lua_pop(L, 1); break; }
      lua_pop(L, 1);
      hole /= 2;
    }
    for (h = q->count + 1; h > hole; h /= 2) {  /* now move: cannot fail */
      lua_rawgeti(L, -1, h / 2);
      lua_rawseti(L, -2, h);
      q->seqs[h] = q->seqs[h / 2];
    }
    lua_insert(L, -2);
    lua_rawseti(L, -2, hole);
    q->seqs[hole] = seq;
    q->nextseq++;
  }
  lua_pop(L, 1);
  q->count++;
}


/* Remove the next item and push it. PRIO plans the sift before moving. */
static void items_pop (lua_State *L, Queue *q) {
  int items;
  lua_getiuservalue(L, 1, Q_ITEMS);
  items = lua_gettop(L);
  if (q->kind != PRIO) {
    lua_Integer k = (q->kind == FIFO ? q->head : q->head + q->count - 1) % q->cap + 1;
    lua_rawgeti(L, items, k);
    lua_pushnil(L);
    lua_rawseti(L, items, k);
    if (q->kind == FIFO) q->head = (q->head + 1) % q->cap;
  }
  else {
    lua_Integer path[64], depth = 0, hole = 1, n = q->count - 1, i;
    lua_Integer lastseq = q->seqs[q->count];
    lua_rawgeti(L, items, 1);            /* the result */
    lua_rawgeti(L, items, q->count);     /* the last item, to re-place */
    for (;;) {
      lua_Integer c = 2 * hole;
      if (c > n) break;
      lua_rawgeti(L, items, c);
      if (c + 1 <= n) {
        lua_rawgeti(L, items, c + 1);
        if (before(L, -1, q->seqs[c + 1], -2, q->seqs[c])) { c++; lua_remove(L, -2); }
        else lua_pop(L, 1);
      }
      if (!before(L, -1, q->seqs[c], -2, lastseq)) { lua_pop(L, 1); break; }
      lua_pop(L, 1);
      path[depth++] = c;
      hole = c;
    }
    hole = 1;                            /* now move: cannot fail */
    for (i = 0; i < depth; i++) {
      lua_rawgeti(L, items, path[i]);
      lua_rawseti(L, items, hole);
      q->seqs[hole] = q->seqs[path[i]];
      hole = path[i];
    }
    lua_rawseti(L, items, hole);         /* the last item */
    q->seqs[hole] = lastseq;
    lua_pushnil(L);
    lua_rawseti(L, items, q->count);
  }
  lua_copy(L, -1, items);  /* stack: items, item -> item */
  lua_pop(L, 1);
  q->count--;
}


/* Items a new getter may take, and whether a new putter must wait. */
static lua_Integer available (const Queue *q) {
  return q->count;
}

static int isfull (const Queue *q) {
  return q->maxsize > 0 && q->count + q->reserved >= q->maxsize;
}


/*
** Wake the first waiter of list 'w' with the 'n' values on top of the
** stack (popped) and drop it from the list. A waiter that cannot be woken
** (its loop closed, or it was woken already) is dropped and the next one
** tried. Returns 1 if a waiter was woken.
*/
static int wake (lua_State *L, Queue *q, int w, int n) {
  Ring *r = &q->waiters[w];
  int base = lua_gettop(L) - n, i, woken = 0;
  lua_getiuservalue(L, 1, Q_GETTERS + w);          /* base + n + 1 */
  while (!woken && r->count > 0) {
    lua_Integer k = r->head % r->cap + 1;
    Loop *lp = q->lp;  /* set with Q_LOOP by queue_wait, so never stale */
    lua_rawgeti(L, base + n + 1, k);
    if (lp != NULL && !lp->closed && lua_type(L, -1) == LUA_TTHREAD) {
      lua_State *co = lua_tothread(L, -1);
      for (i = 1; i <= n; i++) lua_pushvalue(L, base + i);
      woken = asyncio_wake(lp, L, co, n);
    }
    lua_pop(L, 1);
    lua_pushnil(L);
    lua_rawseti(L, base + n + 1, k);
    r->head = (r->head + 1) % r->cap;
    r->count--;
  }
  lua_settop(L, base);
  return woken;
}


/* Wake putters while a slot is free for them; on shutdown, wake everyone. */
static void settle (lua_State *L, Queue *q) {
  if (q->shutdown) {  /* everyone wakes to find the queue shut down */
    do lua_pushboolean(L, 0); while (wake(L, q, GETTERS, 1));
    do lua_pushboolean(L, 0); while (wake(L, q, PUTTERS, 1));
    return;
  }
  while (q->waiters[PUTTERS].count > 0 && !isfull(q)) {
    lua_pushboolean(L, 1);
    if (wake(L, q, PUTTERS, 1)) q->reserved++;
  }
}


/* Give the item at 'idx' to the first waiting getter: 1 if one took it. */
static int hand_over (lua_State *L, Queue *q, int idx) {
  if (q->waiters[GETTERS].count == 0) return 0;
  lua_pushboolean(L, 1);
  lua_pushvalue(L, idx);
  return wake(L, q, GETTERS, 2);
}


/*
** May a put go ahead now? 'PUT_OK' once there is room for the item (or a
** getter to take it), else why not. Making room allocates, and so may run
** a finalizer that puts to, gets from or shuts down this very queue: the
** checks are made again after every allocation. A putter woken with a
** reserved slot ('woken') does not look at fullness.
*/
enum { PUT_OK, PUT_FULL, PUT_SHUT };
static int put_ready (lua_State *L, Queue *q, int woken) {
  for (;;) {
    if (q->shutdown) return PUT_SHUT;
    if (!woken && isfull(q)) return PUT_FULL;
    if (q->waiters[GETTERS].count > 0) return PUT_OK;  /* handed over: no room needed */
    if (!items_reserve(L, q)) return PUT_OK;
  }
}


/*
** The put itself, once put_ready said yes: the item is at index 2.
** Nothing here runs a finalizer (a comparison runs with the queue busy).
** Storing may raise (a failing comparison) with nothing changed: the item
** is counted unfinished only once it is in.
*/
static void store (lua_State *L, Queue *q) {
  if (!hand_over(L, q, 2)) {
    lua_pushvalue(L, 2);
    items_push(L, q);
  }
  q->unfinished++;
}

static void do_put (lua_State *L, Queue *q) {
  store(L, q);
  settle(L, q);  /* a slot may still be free for a waiting putter */
}


static int queue_put_nowait (lua_State *L) {
  Queue *q = checkqueue(L, "put_nowait");
  int r;
  lua_settop(L, 2);
  idle(L, q, "put_nowait");
  r = put_ready(L, q, 0);
  if (r == PUT_SHUT) return qerror(L, "QueueShutDown");
  if (r == PUT_FULL) return qerror(L, "QueueFull");
  do_put(L, q);
  return 0;
}


/* q:put(item): put now and return a done awaitable, or a put operation. */
static int queue_put (lua_State *L) {
  Queue *q = checkqueue(L, "put");
  int r;
  lua_settop(L, 2);
  idle(L, q, "put");
  r = put_ready(L, q, 0);
  if (r == PUT_SHUT) return qerror(L, "QueueShutDown");
  if (r == PUT_OK) {
    do_put(L, q);
    lua_rawgeti(L, QUEUE_CONFIG, 2);  /* the done awaitable */
    return 1;
  }
  lua_createtable(L, 3, 0);  /* {queue, item, where it was made}: see queue.lua's PutOp */
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, 1);
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, 2);
  asyncio_pushwhere(L);
  lua_rawseti(L, -2, 3);
  lua_rawgeti(L, QUEUE_CONFIG, 1);
  lua_setmetatable(L, -2);
  lua_rawgeti(L, QUEUE_CONFIG, 4);  /* asyncio.run's end reports it if never awaited */
  lua_pushvalue(L, -2);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  return 1;
}


/* q:_try_put(item) -> true if put now, false if the queue is full. */
static int queue_try_put (lua_State *L) {
  Queue *q = checkqueue(L, "_try_put");
  int r;
  lua_settop(L, 2);
  idle(L, q, "put");
  r = put_ready(L, q, 0);
  if (r == PUT_SHUT) return qerror(L, "QueueShutDown");
  if (r == PUT_FULL) { lua_pushboolean(L, 0); return 1; }
  do_put(L, q);
  lua_pushboolean(L, 1);
  return 1;
}


static int queue_get_nowait (lua_State *L) {
  Queue *q = checkqueue(L, "get_nowait");
  idle(L, q, "get_nowait");
  if (available(q) <= 0)
    return qerror(L, q->shutdown ? "QueueShutDown" : "QueueEmpty");
  items_pop(L, q);
  settle(L, q);
  return 1;
}


/* q:try_get() -> true, item | false. Raises QueueShutDown when that is the answer. */
static int queue_try_get (lua_State *L) {
  Queue *q = checkqueue(L, "_try_get");
  idle(L, q, "get");
  if (available(q) <= 0) {
    if (q->shutdown) return qerror(L, "QueueShutDown");
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  items_pop(L, q);
  settle(L, q);
  return 2;
}


/* _try_get for q:get()'s awaitable {queue}: its __now (queue.lua), which
** wait_for asks on every read; one C call where a Lua one made it. */
static int queue_op_now (lua_State *L) {
  if (lua_istable(L, 1)) {  /* anything else: _try_get's own error */
    lua_rawgeti(L, 1, 1);
    lua_replace(L, 1);
  }
  return queue_try_get(L);
}


/* Which waiter list: 0 the getters, 1 the putters (queue.lua's GET, PUT). */
static int checkwhich (lua_State *L, int arg) {
  lua_Integer w = luaL_checkinteger(L, arg);
  luaL_argcheck(L, w == GETTERS || w == PUTTERS, arg, "0 (getters) or 1 (putters) expected");
  return (int)w;
}


/*
** Make the running task of the loop at index 3 (the caller itself) join the
** end of waiter list 'w' and suspend it. A getter wakes with true and its
** item, a putter with true and a slot reserved for it; false: the queue was
** shut down; nothing: cancelled. Called outside the running task's own
** coroutine: returns REFUSED.
*/
static int wait_on (lua_State *L, Queue *q, int w) {
  Ring *r = &q->waiters[w];
  Loop *lp = asyncio_checkloop(L, 3);
  lua_settop(L, 3);
  if (asyncio_running(lp, L) == 0) return asyncio_refuse(L);
  if (q->lp != lp) {  /* q->lp lives as long as user value Q_LOOP holds it */
    if (q->waiters[0].count + q->waiters[1].count > 0 && q->lp != NULL && !q->lp->closed)
      return asyncio_error(L, "%s: the queue is bound to a different event loop",
                           w == GETTERS ? "get" : "put");
    lua_pushvalue(L, 3);
    lua_setiuservalue(L, 1, Q_LOOP);
    q->lp = lp;
  }
  while (r->count == r->cap) {  /* room first; the ring is read after the allocation */
    lua_Integer ncap = r->cap * 2;
    ring_new(L, ncap);            /* may run a finalizer that uses the queue */
    if (r->count == r->cap && r->cap * 2 == ncap) {
      lua_getiuservalue(L, 1, Q_GETTERS + w);
      ring_copy(L, 5, 4, r->head, r->count, r->cap);
      lua_pop(L, 1);
      lua_setiuservalue(L, 1, Q_GETTERS + w);
      r->head = 0;
      r->cap = ncap;
    }
    else lua_pop(L, 1);
  }
  /* Lua looked before it called, but a finalizer (an allocation here or in
  ** between) may have put, got or shut down since: no wait if none is due,
  ** the wake-up values given at once instead */
  if (w == GETTERS && available(q) > 0) {
    lua_pushboolean(L, 1);
    items_pop(L, q);
    settle(L, q);
    return 2;
  }
  if (q->shutdown) { lua_pushboolean(L, 0); return 1; }
  if (w == PUTTERS && !isfull(q) && r->count == 0) {
    q->reserved++;
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_getiuservalue(L, 1, Q_GETTERS + w);
  lua_pushthread(L);
  lua_rawseti(L, -2, (r->head + r->count) % r->cap + 1);
  r->count++;
  return asyncio_suspend(L, lp, 3);
}


/* q:_wait(which, loop) -> wake-up values: see wait_on. */
static int queue_wait (lua_State *L) {
  Queue *q = checkqueue(L, "_wait");
  return wait_on(L, q, checkwhich(L, 2));
}


/* q:get(): the queue's get awaitable (one per queue, reusable). */
static int queue_get (lua_State *L) {
  checkqueue(L, "get");
  lua_getiuservalue(L, 1, Q_GETOP);
  return 1;
}




/* Remove 'co' (index 3) from waiter list 'w'; push whether it was there. */
static int remove_waiter (lua_State *L, Queue *q, int w) {
  Ring *r = &q->waiters[w];
  lua_Integer i;
  lua_settop(L, 3);
  lua_getiuservalue(L, 1, Q_GETTERS + w);  /* index 4 */
  for (i = 0; i < r->count; i++) {
    lua_rawgeti(L, 4, (r->head + i) % r->cap + 1);
    if (lua_rawequal(L, -1, 3)) {
      lua_Integer j;
      for (j = i; j + 1 < r->count; j++) {  /* close the gap, keeping order */
        lua_rawgeti(L, 4, (r->head + j + 1) % r->cap + 1);
        lua_rawseti(L, 4, (r->head + j) % r->cap + 1);
      }
      lua_pushnil(L);
      lua_rawseti(L, 4, (r->head + r->count - 1) % r->cap + 1);
      r->count--;
      lua_pushboolean(L, 1);
      return 1;
    }
    lua_pop(L, 1);
  }
  lua_pushboolean(L, 0);
  return 1;
}


/*
** q:_abort(co): a task waiting on the queue is cancelled; remove 'co' from
** whichever list holds it. True if it was still waiting (not woken).
*/
static int queue_abort (lua_State *L) {
  Queue *q = checkqueue(L, "_abort");
  luaL_checktype(L, 2, LUA_TTHREAD);
  lua_pushnil(L);
  lua_insert(L, 2);  /* co at index 3, as remove_waiter wants it */
  remove_waiter(L, q, GETTERS);
  if (lua_toboolean(L, -1)) return 1;
  return remove_waiter(L, q, PUTTERS);
}


/*
** q:_unget(item): a getter that was handed 'item' was cancelled before it
** could return it: the next getter gets it, or it goes back to the front.
*/
static int queue_unget (lua_State *L) {
  Queue *q = checkqueue(L, "_unget");
  lua_settop(L, 2);
  idle(L, q, "get");
  while (q->waiters[GETTERS].count == 0 && items_reserve(L, q))
    ;  /* room first: each allocation may run a finalizer that uses the queue */
  if (hand_over(L, q, 2)) return 0;
  if (q->kind == FIFO) {
    q->head = (q->head + q->cap - 1) % q->cap;
    lua_getiuservalue(L, 1, Q_ITEMS);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, q->head + 1);
    lua_pop(L, 1);
    q->count++;
  }
  else {  /* LIFO: the top is the front; PRIO: its priority decides */
    lua_pushvalue(L, 2);
    items_push(L, q);
  }
  return 0;
}


/*
** q:put_woken(item): a woken putter fills the slot reserved for it. If
** storing the item raises, the slot stays reserved: the caller gives it up
** with _release, which passes it on to the next putter.
*/
static int queue_put_woken (lua_State *L) {
  Queue *q = checkqueue(L, "_put_woken");
  lua_settop(L, 2);
  idle(L, q, "put");
  if (put_ready(L, q, 1) == PUT_SHUT) {
    if (q->reserved > 0) q->reserved--;
    return qerror(L, "QueueShutDown");
  }
  store(L, q);
  if (q->reserved > 0) q->reserved--;
  settle(L, q);
  return 0;
}


/* q:release(): a woken putter gives up its reserved slot (cancelled). */
static int queue_release (lua_State *L) {
  Queue *q = checkqueue(L, "_release");
  if (q->reserved > 0) q->reserved--;
  settle(L, q);
  return 0;
}


static int queue_qsize (lua_State *L) {
  lua_pushinteger(L, available(checkqueue(L, "qsize")));
  return 1;
}


static int queue_empty (lua_State *L) {
  lua_pushboolean(L, available(checkqueue(L, "empty")) <= 0);
  return 1;
}


static int queue_full (lua_State *L) {
  lua_pushboolean(L, isfull(checkqueue(L, "full")));
  return 1;
}


static int queue_maxsize (lua_State *L) {
  lua_pushinteger(L, checkqueue(L, "maxsize")->maxsize);
  return 1;
}


/* q:task_done() -> unfinished count left. Raises if called too often. */
static int queue_task_done (lua_State *L) {
  Queue *q = checkqueue(L, "task_done");
  if (q->unfinished <= 0)
    return asyncio_error(L, "task_done() called too many times");
  lua_pushinteger(L, --q->unfinished);
  return 1;
}


static int queue_unfinished (lua_State *L) {
  lua_pushinteger(L, checkqueue(L, "_unfinished")->unfinished);
  return 1;
}


/* q:shutdown(immediate) -> unfinished count left. */
static int queue_shutdown (lua_State *L) {
  Queue *q = checkqueue(L, "shutdown");
  int immediate = lua_toboolean(L, 2);
  idle(L, q, "shutdown");
  q->shutdown = 1;
  if (immediate) {  /* drop the items and the task_done they would owe */
    lua_Integer n;
    lua_createtable(L, (int)q->cap, 0);  /* may run a finalizer that gets an item: */
    n = q->count;                        /* count after it */
    lua_setiuservalue(L, 1, Q_ITEMS);
    q->count = q->head = 0;
    q->unfinished = q->unfinished > n ? q->unfinished - n : 0;
  }
  settle(L, q);
  lua_pushinteger(L, q->unfinished);
  return 1;
}


static int queue_is_shutdown (lua_State *L) {
  lua_pushboolean(L, checkqueue(L, "is_shutdown")->shutdown);
  return 1;
}


/* q:waiting() -> number of unwoken getters, putters */
static int queue_waiting (lua_State *L) {
  Queue *q = checkqueue(L, "_waiting");
  lua_pushinteger(L, q->waiters[GETTERS].count);
  lua_pushinteger(L, q->waiters[PUTTERS].count);
  return 2;
}


/*
** core.new_queue(kind, maxsize, less, getop) -> Queue. 'kind' is "fifo",
** "lifo" or "priority"; 'getop' is what q:get() returns.
*/
static int new_queue (lua_State *L) {
  static const char *const kinds[] = {"fifo", "lifo", "priority", NULL};
  int kind = luaL_checkoption(L, 1, NULL, kinds);
  lua_Integer maxsize = luaL_optinteger(L, 2, 0);
  Queue *q;
  int w;
  luaL_argcheck(L, maxsize >= 0, 2, "maxsize must be a non-negative integer");
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
  q = (Queue *)lua_newuserdatauv(L, sizeof(Queue), Q_NUV);
  memset(q, 0, sizeof *q);
  lua_pushvalue(L, ASYNCIO_QUEUE_MT);
  lua_setmetatable(L, -2);
  q->kind = kind;
  q->maxsize = maxsize;
  q->cap = maxsize > 0 && maxsize < 64 ? maxsize : 64;
  lua_createtable(L, (int)q->cap, 0);
  lua_setiuservalue(L, -2, Q_ITEMS);
  for (w = 0; w < 2; w++) {
    q->waiters[w].cap = 4;
    lua_createtable(L, 4, 0);
    lua_setiuservalue(L, -2, Q_GETTERS + w);
  }
  if (kind == PRIO) {
    lua_replace(L, 1);  /* seqs_set wants the queue at index 1 */
    seqs_set(L, q, seqs_new(L, q->cap + 1), 0);
    lua_pushvalue(L, 1);
    if (!lua_isnoneornil(L, 3)) {
      lua_pushvalue(L, 3);
      lua_setiuservalue(L, -2, Q_LESS);
    }
  }
  lua_pushvalue(L, 4);
  lua_setiuservalue(L, -2, Q_GETOP);
  return 1;
}


/* core.queue_config(putop_mt, done, raise, unawaited): what queue.lua
** lends the C side; 'unawaited' is the weak set puts that wait join. */
static int queue_config (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  lua_pushvalue(L, 1); lua_rawseti(L, QUEUE_CONFIG, 1);
  lua_pushvalue(L, 2); lua_rawseti(L, QUEUE_CONFIG, 2);
  lua_pushvalue(L, 3); lua_rawseti(L, QUEUE_CONFIG, 3);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_pushvalue(L, 4); lua_rawseti(L, QUEUE_CONFIG, 4);
  return 0;
}


static const luaL_Reg queue_methods[] = {
  {"put", queue_put},
  {"put_nowait", queue_put_nowait},
  {"get", queue_get},
  {"get_nowait", queue_get_nowait},
  {"_try_get", queue_try_get},
  {"_op_now", queue_op_now},
  {"_try_put", queue_try_put},
  {"_wait", queue_wait},
  {"_abort", queue_abort},
  {"_unget", queue_unget},
  {"_put_woken", queue_put_woken},
  {"_release", queue_release},
  {"qsize", queue_qsize},
  {"empty", queue_empty},
  {"full", queue_full},
  {"maxsize", queue_maxsize},
  {"task_done", queue_task_done},
  {"_unfinished", queue_unfinished},
  {"shutdown", queue_shutdown},
  {"is_shutdown", queue_is_shutdown},
  {"_waiting", queue_waiting},
  {NULL, NULL}
};


static const luaL_Reg queue_module[] = {
  {"new_queue", new_queue},
  {"queue_config", queue_config},
  {NULL, NULL}
};


/* Queue metatable (queue.lua completes its method table) and constructors,
** into the module table on top of the stack. */
void asyncio_queue_open (lua_State *L) {
  luaL_getmetatable(L, ASYNCIO_QUEUE);
  lua_newtable(L);
  asyncio_setfuncs(L, queue_methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, "queue_methods");  /* queue.lua adds its methods here */
  lua_pop(L, 1);
  asyncio_setfuncs(L, queue_module);
}
