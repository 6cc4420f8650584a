/*
** core.c: luaopen_asyncio_core. Metatables and function tables only; the
** concepts live in loop.c, timer.c and queue.c.
*/
#include "asyncio.h"

LUAMOD_API int luaopen_asyncio_core (lua_State *L) {
  lua_newtable(L);
  asyncio_loop_open(L);
  asyncio_task_open(L);
  asyncio_queue_open(L);
  lua_pushstring(L, uv_version_string());
  lua_setfield(L, -2, "libuv_version");
  return 1;
}
