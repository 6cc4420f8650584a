/*
** core.c: luaopen_asyncio_core. Metatables and function tables only; the
** concepts live in loop.c, timer.c and queue.c.
*/
#include "asyncio.h"

/* Registry keys of the Loop and Queue metatables: their addresses. */
const char asyncio_loop_mt = 'L';
const char asyncio_queue_mt = 'Q';


/*
** The userdata at 'idx' if its metatable is the one registered at 'mtkey',
** else NULL. Every method call checks its self: this costs two raw
** lookups, where luaL_testudata hashes and compares the type name.
*/
void *asyncio_testudata (lua_State *L, int idx, const void *mtkey) {
  void *p = lua_touserdata(L, idx);
  int same;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, mtkey);
  same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}


/* Push a new metatable 'name' (with __name, for messages) kept at 'mtkey'. */
void asyncio_newmetatable (lua_State *L, const char *name, const void *mtkey) {
  luaL_newmetatable(L, name);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, mtkey);
}


LUAMOD_API int luaopen_asyncio_core (lua_State *L) {
  lua_newtable(L);
  asyncio_loop_open(L);
  asyncio_task_open(L);
  asyncio_queue_open(L);
  lua_pushstring(L, uv_version_string());
  lua_setfield(L, -2, "libuv_version");
  return 1;
}
