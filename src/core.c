/*
** core.c: luaopen_asyncio_core. Metatables and function tables only; the
** concepts live in loop.c, timer.c and queue.c.
*/
#include <signal.h>
#include <string.h>

#include "asyncio.h"

/*
** The userdata at 'idx' if its metatable is the one at stack index 'mt'
** (an upvalue: every function of the module has the Loop and Queue
** metatables as upvalues 1 and 2), else NULL. Every method call checks its
** self: this is a raw comparison, where luaL_testudata looks the type up
** in the registry by name.
*/
void *asyncio_testudata (lua_State *L, int idx, int mt) {
  void *p = lua_touserdata(L, idx);
  int same;
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  same = lua_rawequal(L, -1, mt);
  lua_pop(L, 1);
  return same ? p : NULL;
}


/* The table the three upvalues of every function share, made at open. */
static const char config_key = 'C';

/* Add the functions 'l' to the table on top, with their three upvalues:
** the Loop and Queue metatables and the queue configuration (queue.c). */
void asyncio_setfuncs (lua_State *L, const luaL_Reg *l) {
  luaL_getmetatable(L, ASYNCIO_LOOP);
  luaL_getmetatable(L, ASYNCIO_QUEUE);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &config_key);
  luaL_setfuncs(L, l, 3);
}


/*
** core.metatable(x): the metatable of 'x', or nil, ignoring __metatable.
** The Lua layer's dispatch compares metatables on every await; Lua's own
** getmetatable also looks up a "__metatable" field each time.
*/
static int core_metatable (lua_State *L) {
  if (!lua_getmetatable(L, 1)) lua_pushnil(L);
  return 1;
}


/*
** core.where(level) -> function, line: the Lua function 'level' calls
** above the caller of where (1: the caller's caller) and the line it is
** at, or false. The library keeps both in the objects a forgotten await
** would lose (a sleep, a coroutine object) to name the line in the report
** (core.where_text). No table and no string: debug.getinfo and a
** formatted "file:line" cost several times as much, on every sleep.
*/
static int core_where (lua_State *L) {
  lua_Debug ar;
  lua_Integer level = luaL_checkinteger(L, 1);
  luaL_argcheck(L, level >= 0 && level < 1000, 1, "level out of range");
  if (lua_getstack(L, (int)level + 1, &ar) && lua_getinfo(L, "fl", &ar)) {
    if (ar.currentline > 0 && lua_type(L, -1) == LUA_TFUNCTION) {
      lua_pushinteger(L, ar.currentline);
      return 2;
    }
    lua_pop(L, 1);
  }
  lua_pushboolean(L, 0);
  return 1;
}


/* core.where_text(function, line) -> "file:line": what core.where found,
** as Lua's error messages write it; false given false. */
static int core_where_text (lua_State *L) {
  lua_Debug ar;
  if (!lua_toboolean(L, 1)) { lua_pushboolean(L, 0); return 1; }
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_getinfo(L, ">S", &ar);
  lua_pushfstring(L, "%s:%d", ar.short_src, (int)luaL_checkinteger(L, 2));
  return 1;
}


/*
** A write to a socket or pipe whose reader is gone raises SIGPIPE, whose
** default action ends the process: one client hanging up would kill a
** server. Ignore it, as CPython and Node do at start-up, so the write
** fails with EPIPE instead (BrokenPipeError). Only when the host left the
** default: a program with a handler of its own keeps it. Children start
** with every signal at its default again (libuv resets them in uv_spawn).
*/
static void ignore_sigpipe (void) {
  struct sigaction old;
  if (sigaction(SIGPIPE, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
      old.sa_handler == SIG_DFL) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}


LUAMOD_API int luaopen_asyncio_core (lua_State *L) {
  asyncio_note_owner();
  if (!asyncio_in_worker()) ignore_sigpipe();  /* (set already, by the program's thread) */
  luaL_newmetatable(L, ASYNCIO_LOOP);   /* with __name, for error messages */
  luaL_newmetatable(L, ASYNCIO_QUEUE);
  lua_createtable(L, 3, 0);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &config_key);
  lua_pop(L, 2);
  lua_newtable(L);
  asyncio_loop_open(L);
  asyncio_task_open(L);
  asyncio_queue_open(L);
  asyncio_stream_open(L);
  asyncio_signal_open(L);
  asyncio_resolve_open(L);
  asyncio_process_open(L);
  asyncio_udp_open(L);
  asyncio_fs_open(L);
  asyncio_fdpipe_open(L);
  asyncio_tls_open(L);
  asyncio_worker_open(L);
  asyncio_interrupt_open(L);
  lua_pushcfunction(L, core_metatable);
  lua_setfield(L, -2, "metatable");
  lua_pushcfunction(L, core_where);
  lua_setfield(L, -2, "where");
  lua_pushcfunction(L, core_where_text);
  lua_setfield(L, -2, "where_text");
  lua_pushstring(L, uv_version_string());
  lua_setfield(L, -2, "libuv_version");
  return 1;
}
