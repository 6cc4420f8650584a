/*
** spec/c/timer_ids.c: the timer heap's ids across a slot's generation
** wrap (src/timer.c), without arming 2^31 timers: the generation of the
** one slot in use is set just below the wrap. Prints one line per check;
** exits 1 at the first that fails (timer_heap_spec.lua runs it).
*/
#include <stdio.h>
#include <stdlib.h>

#include "../../src/asyncio.h"

static int failed = 0;

static void check (int ok, const char *what) {
  printf("%s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) failed = 1;
}

int main (void) {
  Heap h;
  int64_t id, stale = -1;
  int32_t payload = 0, i;
  asyncio_heap_init(&h);
  id = asyncio_heap_add(&h, 100, 7);
  check(id >= 0, "a first id is not negative");
  check(asyncio_heap_cancel(&h, id, &payload) == 1 && payload == 7, "a pending timer cancels");
  /* the freed slot is the next one used: put it near the wrap, as after 2^31 timers */
  h.slots[(int32_t)(id & 0xffffffff)].gen = 0x7ffffffdu;
  id = asyncio_heap_add(&h, 100, 7);
  for (i = 0; i < 4; i++) {
    check(id >= 0, "an id near the generation's wrap is not negative");
    check(asyncio_heap_cancel(&h, id, &payload) == 1 && payload == 7, "a pending timer cancels");
    check(asyncio_heap_cancel(&h, id, &payload) == 0, "a cancelled id misses");
    stale = id;
    id = asyncio_heap_add(&h, 100, 7);
    check(id != stale, "the next id in the same slot differs from the last");
    check(asyncio_heap_cancel(&h, stale, &payload) == 0, "the stale id misses the new timer");
  }
  check(asyncio_heap_pop(&h, 200, &id, &payload) == 1 && payload == 7, "the last one fires");
  asyncio_heap_free(&h);
  return failed;
}
