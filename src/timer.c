/*
** timer.c: the deadline heap of a loop. A hundred thousand sleeping tasks
** cost a slot and a heap entry each, and one uv_timer_t (in loop.c) waits
** for the earliest. An expired timer only moves its (target, value)
** payload to the ready queue; this file never runs Lua code.
*/
#include <math.h>
#include <stdlib.h>

#include "asyncio.h"

/* Longest delay we arm, in seconds (about 31 years): longer is "never". */
#define MAX_DELAY  1e9

#define SLOT_OF(id)  ((int32_t)((id) & 0xffffffff))
#define GEN_OF(id)   ((uint32_t)((uint64_t)(id) >> 32))


void asyncio_timer_init (Loop *lp) {
  lp->slots = NULL;
  lp->heap = NULL;
  lp->nslots = lp->heapn = 0;
  lp->freeslot = -1;
  lp->seq = 0;
}


void asyncio_timer_free (Loop *lp) {
  free(lp->slots);
  free(lp->heap);
  asyncio_timer_init(lp);
}


/* Does slot 'a' fire before slot 'b'? */
static int before (const Loop *lp, int32_t a, int32_t b) {
  const TimerSlot *x = &lp->slots[a], *y = &lp->slots[b];
  return x->deadline < y->deadline ||
         (x->deadline == y->deadline && x->seq < y->seq);
}


static void heap_set (Loop *lp, int32_t i, int32_t slot) {
  lp->heap[i] = slot;
  lp->slots[slot].heapidx = i;
}


static void sift_up (Loop *lp, int32_t i) {
  int32_t slot = lp->heap[i];
  while (i > 0) {
    int32_t parent = (i - 1) / 2;
    if (!before(lp, slot, lp->heap[parent])) break;
    heap_set(lp, i, lp->heap[parent]);
    i = parent;
  }
  heap_set(lp, i, slot);
}


static void sift_down (Loop *lp, int32_t i) {
  int32_t slot = lp->heap[i];
  for (;;) {
    int32_t c = 2 * i + 1;
    if (c >= lp->heapn) break;
    if (c + 1 < lp->heapn && before(lp, lp->heap[c + 1], lp->heap[c])) c++;
    if (!before(lp, lp->heap[c], slot)) break;
    heap_set(lp, i, lp->heap[c]);
    i = c;
  }
  heap_set(lp, i, slot);
}


/* Take slot at heap position 'i' out of the heap and free it. */
static void heap_remove (Loop *lp, int32_t i) {
  int32_t slot = lp->heap[i];
  int32_t last = lp->heap[--lp->heapn];
  if (i < lp->heapn) {
    heap_set(lp, i, last);
    sift_down(lp, i);
    sift_up(lp, lp->slots[last].heapidx);
  }
  lp->slots[slot].gen++;
  lp->slots[slot].heapidx = -2 - lp->freeslot;
  lp->freeslot = slot;
}


/* Make room for one more slot; may raise a memory error, changing nothing. */
static void reserve_slot (lua_State *L, Loop *lp) {
  int32_t i, n;
  TimerSlot *s;
  int32_t *h;
  if (lp->freeslot >= 0) return;
  if (lp->nslots >= INT32_MAX / 2)
    luaL_error(L, "too many timers");
  n = lp->nslots ? lp->nslots * 2 : 64;
  s = (TimerSlot *)realloc(lp->slots, (size_t)n * sizeof(TimerSlot));
  if (s == NULL) luaL_error(L, "not enough memory for timers");
  lp->slots = s;
  h = (int32_t *)realloc(lp->heap, (size_t)n * sizeof(int32_t));
  if (h == NULL) luaL_error(L, "not enough memory for timers");
  lp->heap = h;
  for (i = n - 1; i >= lp->nslots; i--) {  /* chain the new slots as free */
    s[i].gen = 0;
    s[i].heapidx = -2 - lp->freeslot;
    lp->freeslot = i;
  }
  lp->nslots = n;
}


/* Check that argument 'arg' is a usable delay in seconds; return it. */
static double checkdelay (lua_State *L, int arg) {
  double d = luaL_checknumber(L, arg);
  luaL_argcheck(L, !isnan(d), arg, "delay is not a number");
  if (d < 0) d = 0;
  if (d > MAX_DELAY) d = MAX_DELAY;
  return d;
}


/* Arm a timer for 'deadline' (uv_hrtime nanoseconds) with the payload at
** indices 3 and 4; push its id and its deadline in loop seconds. */
static int arm (lua_State *L, Loop *lp, uint64_t deadline) {
  int t = lua_type(L, 3);
  int32_t slot;
  TimerSlot *ts;
  luaL_argexpected(L, t == LUA_TTHREAD || t == LUA_TFUNCTION, 3,
                   "thread or function");
  lua_settop(L, 4);
  reserve_slot(L, lp);
  slot = lp->freeslot;
  lua_getiuservalue(L, 1, LOOP_TIMERS);  /* payload first: it may raise */
  lua_pushvalue(L, 3);
  lua_rawseti(L, -2, (lua_Integer)slot * 2 + 1);
  lua_pushvalue(L, 4);
  lua_rawseti(L, -2, (lua_Integer)slot * 2 + 2);
  ts = &lp->slots[slot];
  lp->freeslot = -2 - ts->heapidx;
  ts->deadline = deadline;
  ts->seq = lp->seq++;
  lp->heap[lp->heapn] = slot;
  ts->heapidx = lp->heapn++;
  sift_up(lp, ts->heapidx);
  lua_pushinteger(L, (lua_Integer)(((uint64_t)ts->gen << 32) | (uint32_t)slot));
  lua_pushnumber(L, (lua_Number)ts->deadline / 1e9);
  return 2;
}


/*
** loop:timer(delay, target, value) -> id, deadline (loop seconds). After
** 'delay' seconds the entry (target, value) goes to the ready queue;
** equal deadlines keep the order timers were armed in.
*/
static int timer_start (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double d = checkdelay(L, 2);
  return arm(L, lp, uv_hrtime() + (uint64_t)(d * 1e9));
}


/* loop:timer_at(when, target, value) -> id, deadline: at loop time 'when'. */
static int timer_at (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  double when = luaL_checknumber(L, 2);
  uint64_t now = uv_hrtime();
  double max = (double)now / 1e9 + MAX_DELAY;
  luaL_argcheck(L, !isnan(when), 2, "time is not a number");
  if (when > max) when = max;
  return arm(L, lp, when <= 0 ? 0 : (uint64_t)(when * 1e9));
}


/* Release the payload references of 'slot' (user value table on top). */
static void clear_payload (lua_State *L, int32_t slot) {
  lua_pushnil(L);
  lua_rawseti(L, -2, (lua_Integer)slot * 2 + 1);
  lua_pushnil(L);
  lua_rawseti(L, -2, (lua_Integer)slot * 2 + 2);
}


/* loop:untimer(id) -> true if the timer was pending and is now cancelled */
static int timer_cancel (lua_State *L) {
  Loop *lp = asyncio_checkloop(L, 1);
  lua_Integer id = luaL_checkinteger(L, 2);
  int32_t slot = SLOT_OF(id);
  if (id < 0 || slot >= lp->nslots || lp->slots[slot].heapidx < 0 ||
      lp->slots[slot].gen != GEN_OF(id)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_getiuservalue(L, 1, LOOP_TIMERS);
  clear_payload(L, slot);
  heap_remove(lp, lp->slots[slot].heapidx);
  lua_pushboolean(L, 1);
  return 1;
}


/*
** Move every expired timer of the loop at 'loopidx' to the ready queue,
** earliest first. Returns how many moved.
*/
int asyncio_timer_expire (lua_State *L, Loop *lp, int loopidx) {
  uint64_t now = uv_hrtime();
  int moved = 0;
  lua_getiuservalue(L, loopidx, LOOP_TIMERS);
  while (lp->heapn > 0 && lp->slots[lp->heap[0]].deadline <= now) {
    int32_t slot = lp->heap[0];
    lua_rawgeti(L, -1, (lua_Integer)slot * 2 + 1);
    lua_rawgeti(L, -2, (lua_Integer)slot * 2 + 2);
    asyncio_push_ready(L, lp, loopidx);  /* may raise: nothing changed yet */
    clear_payload(L, slot);
    heap_remove(lp, 0);
    moved++;
  }
  lua_pop(L, 1);
  return moved;
}


/* Milliseconds until the earliest deadline, rounded up; -1 if none. */
int64_t asyncio_timer_next_ms (Loop *lp) {
  uint64_t now, dl;
  if (lp->heapn == 0) return -1;
  now = uv_hrtime();
  dl = lp->slots[lp->heap[0]].deadline;
  if (dl <= now) return 0;
  return (int64_t)((dl - now + 999999) / 1000000);
}


const luaL_Reg asyncio_timer_methods[] = {
  {"timer", timer_start},
  {"timer_at", timer_at},
  {"untimer", timer_cancel},
  {NULL, NULL}
};
