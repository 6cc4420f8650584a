/*
** timer.c: a min-heap of deadlines. Each entry carries an integer payload
** that the caller gives meaning to (loop.c: a slot number); this file
** knows nothing of Lua, tasks or the ready ring. A hundred thousand
** sleeping tasks cost one slot and one heap entry each.
*/
#include <stdlib.h>

#include "asyncio.h"

#define SLOT_OF(id)  ((int32_t)((id) & 0xffffffff))
#define GEN_OF(id)   ((uint32_t)((uint64_t)(id) >> 32))
#define GEN_MAX      0x7fffffffu


void asyncio_heap_init (Heap *h) {
  h->slots = NULL;
  h->heap = NULL;
  h->nslots = h->n = 0;
  h->freeslot = -1;
  h->seq = 0;
}


void asyncio_heap_free (Heap *h) {
  free(h->slots);
  free(h->heap);
  asyncio_heap_init(h);
}


/* Does slot 'a' fire before slot 'b'? Equal deadlines: arming order. */
static int before (const Heap *h, int32_t a, int32_t b) {
  const TimerSlot *x = &h->slots[a], *y = &h->slots[b];
  return x->deadline < y->deadline ||
         (x->deadline == y->deadline && x->seq < y->seq);
}


static void heap_set (Heap *h, int32_t i, int32_t slot) {
  h->heap[i] = slot;
  h->slots[slot].heapidx = i;
}


static void sift_up (Heap *h, int32_t i) {
  int32_t slot = h->heap[i];
  while (i > 0) {
    int32_t parent = (i - 1) / 2;
    if (!before(h, slot, h->heap[parent])) break;
    heap_set(h, i, h->heap[parent]);
    i = parent;
  }
  heap_set(h, i, slot);
}


static void sift_down (Heap *h, int32_t i) {
  int32_t slot = h->heap[i];
  for (;;) {
    int32_t c = 2 * i + 1;
    if (c >= h->n) break;
    if (c + 1 < h->n && before(h, h->heap[c + 1], h->heap[c])) c++;
    if (!before(h, h->heap[c], slot)) break;
    heap_set(h, i, h->heap[c]);
    i = c;
  }
  heap_set(h, i, slot);
}


/* Take the slot at heap position 'i' out of the heap and free it. */
static void remove_at (Heap *h, int32_t i) {
  int32_t slot = h->heap[i];
  int32_t last = h->heap[--h->n];
  if (i < h->n) {
    heap_set(h, i, last);
    sift_down(h, i);
    sift_up(h, h->slots[last].heapidx);
  }
  /* ids of the old timer go stale; the generation keeps to 31 bits so that
  ** an id (generation << 32 | slot) is never negative, which callers read
  ** as "no timer" (it wraps after 2^31 timers in one slot, and an id held
  ** that long could name a new timer: a stale handle, not a crash) */
  h->slots[slot].gen = (h->slots[slot].gen + 1) & GEN_MAX;
  h->slots[slot].heapidx = -2 - h->freeslot;
  h->freeslot = slot;
}


/* Make room for one more timer: 0, or -1 when out of memory (nothing changed). */
static int reserve (Heap *h) {
  int32_t i, n;
  TimerSlot *s;
  int32_t *hp;
  if (h->freeslot >= 0) return 0;
  if (h->nslots >= INT32_MAX / 2) return -1;
  n = h->nslots ? h->nslots * 2 : 64;
  s = (TimerSlot *)realloc(h->slots, (size_t)n * sizeof(TimerSlot));
  if (s == NULL) return -1;
  h->slots = s;
  hp = (int32_t *)realloc(h->heap, (size_t)n * sizeof(int32_t));
  if (hp == NULL) return -1;
  h->heap = hp;
  for (i = n - 1; i >= h->nslots; i--) {  /* chain the new slots as free */
    s[i].gen = 0;
    s[i].heapidx = -2 - h->freeslot;
    h->freeslot = i;
  }
  h->nslots = n;
  return 0;
}


/*
** Add a timer for 'deadline' (uv_hrtime nanoseconds) carrying 'payload'.
** Returns its id (never negative), or -1 when out of memory.
*/
int64_t asyncio_heap_add (Heap *h, uint64_t deadline, int32_t payload) {
  int32_t slot;
  TimerSlot *ts;
  if (reserve(h) != 0) return -1;
  slot = h->freeslot;
  ts = &h->slots[slot];
  h->freeslot = -2 - ts->heapidx;
  ts->deadline = deadline;
  ts->seq = h->seq++;
  ts->payload = payload;
  h->heap[h->n] = slot;
  ts->heapidx = h->n++;
  sift_up(h, ts->heapidx);
  return (int64_t)(((uint64_t)ts->gen << 32) | (uint32_t)slot);
}


/* The slot of timer 'id' if it is still pending, else -1. An id can come
** from Lua: any integer, so the slot's sign is checked too. */
static int32_t pending_slot (const Heap *h, int64_t id) {
  int32_t slot = SLOT_OF(id);
  if (id < 0 || slot < 0 || slot >= h->nslots || h->slots[slot].heapidx < 0 ||
      h->slots[slot].gen != GEN_OF(id))
    return -1;
  return slot;
}


/* The payload of timer 'id' if it is still pending: 1, else 0. */
int asyncio_heap_payload (const Heap *h, int64_t id, int32_t *payload) {
  int32_t slot = pending_slot(h, id);
  if (slot < 0) return 0;
  *payload = h->slots[slot].payload;
  return 1;
}


/* Remove timer 'id' if it is still pending: 1 and its payload, else 0. */
int asyncio_heap_cancel (Heap *h, int64_t id, int32_t *payload) {
  int32_t slot = pending_slot(h, id);
  if (slot < 0) return 0;
  *payload = h->slots[slot].payload;
  remove_at(h, h->slots[slot].heapidx);
  return 1;
}


/* The deadline of timer 'id' if it is still pending: 1, else 0. */
int asyncio_heap_deadline (const Heap *h, int64_t id, uint64_t *deadline) {
  int32_t slot = pending_slot(h, id);
  if (slot < 0) return 0;
  *deadline = h->slots[slot].deadline;
  return 1;
}


/* Pop the earliest timer if its deadline is <= 'now': 1, its id and payload. */
int asyncio_heap_pop (Heap *h, uint64_t now, int64_t *id, int32_t *payload) {
  int32_t slot;
  TimerSlot *ts;
  if (h->n == 0 || h->slots[h->heap[0]].deadline > now) return 0;
  slot = h->heap[0];
  ts = &h->slots[slot];
  *id = (int64_t)(((uint64_t)ts->gen << 32) | (uint32_t)slot);
  *payload = ts->payload;
  remove_at(h, 0);
  return 1;
}


/* Milliseconds from 'now' to the earliest deadline, rounded up; -1 if none
** (or if every timer is one that never fires). */
int64_t asyncio_heap_next_ms (const Heap *h, uint64_t now) {
  uint64_t dl;
  if (!asyncio_heap_live(h)) return -1;
  dl = h->slots[h->heap[0]].deadline;
  if (dl <= now) return 0;
  return (int64_t)((dl - now + 999999) / 1000000);
}


/* Is there a timer that will fire some day (not only ASYNCIO_NEVER ones)? */
int asyncio_heap_live (const Heap *h) {
  return h->n > 0 && h->slots[h->heap[0]].deadline != ASYNCIO_NEVER;
}
