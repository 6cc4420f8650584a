/*
** copy.c: values copied between two Lua states that share nothing (the
** loop's and a worker thread's, see worker.c). One state writes values
** into a byte buffer; the other reads them back as new values of its own.
**
** What crosses: nil, booleans, integers, floats, strings, and tables whose
** keys and values are these. A table met twice (shared, or holding itself)
** is written once and read back as one shared table again. Anything else
** (a function, a userdata, a coroutine, a table with a metatable, whose
** behaviour would not come along) is refused, and the writer says which
** value it was.
**
** The buffer: the number of tables (8 bytes), then each value as a tag
** byte and its payload. Tables are a '{', key and value pairs, and a '}';
** a table written before is 'r' and its number (in the order of their '{').
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asyncio.h"

enum {
  T_NIL = 'n', T_FALSE = 'f', T_TRUE = 't', T_INT = 'i', T_FLOAT = 'd',
  T_STRING = 's', T_TABLE = '{', T_END = '}', T_REF = 'r'
};

/* Deeper than this is refused (the writer and the reader recurse in C). */
#define MAXDEPTH 100


void asyncio_copy_free (CopyBuf *b) {
  free(b->p);
  b->p = NULL;
  b->n = b->cap = 0;
}


/* Append 'n' bytes; a buffer that cannot grow raises a memory error (the
** buffer's owner frees what it holds). */
static void put (lua_State *L, CopyBuf *b, const void *p, size_t n) {
  if (b->cap - b->n < n) {
    size_t cap = b->cap ? b->cap : 64;
    char *np;
    while (cap - b->n < n) {
      if (cap > SIZE_MAX / 2) { asyncio_nomem(L); return; }
      cap *= 2;
    }
    if ((np = (char *)realloc(b->p, cap)) == NULL) { asyncio_nomem(L); return; }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, p, n);
  b->n += n;
}


static void put_tag (lua_State *L, CopyBuf *b, char tag) {
  put(L, b, &tag, 1);
}


typedef struct Writer {
  lua_State *L;
  CopyBuf *b;
  int seen;                  /* stack index of {table = its number} */
  int64_t ntables;
  const char *bad;           /* what a refused value was */
  int baddepth;              /* and how deep: 0 is the value itself */
} Writer;


static int write_value (Writer *w, int idx, int depth);

/* Returns 0, or 1 with w->bad set when something inside is refused. */
static int write_table (Writer *w, int idx, int depth) {
  lua_State *L = w->L;
  if (lua_getmetatable(L, idx)) {
    lua_pop(L, 1);
    w->bad = "a table with a metatable";
    w->baddepth = depth;
    return 1;
  }
  if (depth >= MAXDEPTH) {
    w->bad = "tables nested more than 100 deep";
    w->baddepth = 0;
    return 1;
  }
  luaL_checkstack(L, 4, NULL);
  lua_pushvalue(L, idx);
  if (lua_rawget(L, w->seen) == LUA_TNUMBER) {  /* met before: a reference */
    int64_t ref = (int64_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    put_tag(L, w->b, T_REF);
    put(L, w->b, &ref, sizeof ref);
    return 0;
  }
  lua_pop(L, 1);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, (lua_Integer)++w->ntables);
  lua_rawset(L, w->seen);
  put_tag(L, w->b, T_TABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int top = lua_gettop(L);
    if (write_value(w, top - 1, depth + 1) || write_value(w, top, depth + 1)) {
      lua_pop(L, 2);
      return 1;
    }
    lua_pop(L, 1);
  }
  put_tag(L, w->b, T_END);
  return 0;
}


static int write_value (Writer *w, int idx, int depth) {
  lua_State *L = w->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: put_tag(L, w->b, T_NIL); return 0;
    case LUA_TBOOLEAN: put_tag(L, w->b, lua_toboolean(L, idx) ? T_TRUE : T_FALSE); return 0;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        int64_t v = (int64_t)lua_tointeger(L, idx);
        put_tag(L, w->b, T_INT);
        put(L, w->b, &v, sizeof v);
      }
      else {
        double v = (double)lua_tonumber(L, idx);
        put_tag(L, w->b, T_FLOAT);
        put(L, w->b, &v, sizeof v);
      }
      return 0;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      put_tag(L, w->b, T_STRING);
      put(L, w->b, &n, sizeof n);
      put(L, w->b, s, n);
      return 0;
    }
    case LUA_TTABLE: return write_table(w, idx, depth);
    case LUA_TFUNCTION: w->bad = "a function"; break;
    case LUA_TTHREAD: w->bad = "a coroutine"; break;
    default: w->bad = "a userdata"; break;
  }
  w->baddepth = depth;
  return 1;
}


/*
** Write the 'n' values from stack index 'first' into 'b' (emptied first).
** Returns 0, or the position (1 to n) of the first value refused, with
** 'why' (of ASYNCIO_WHYLEN bytes) saying what it is or holds ("a
** function", "a table holding a function"). Raises only a memory error.
*/
int asyncio_copy_write (lua_State *L, int first, int n, CopyBuf *b, char *why) {
  Writer w;
  int i, tables = 0;
  static const int64_t zero = 0;
  b->n = 0;
  put(L, b, &zero, sizeof zero);  /* the count of tables, known at the end */
  for (i = 0; i < n; i++) tables |= lua_type(L, first + i) == LUA_TTABLE;
  w.L = L; w.b = b; w.ntables = 0; w.bad = NULL; w.baddepth = 0; w.seen = 0;
  if (tables) {
    lua_createtable(L, 0, 4);
    w.seen = lua_gettop(L);
  }
  for (i = 0; i < n; i++) {
    if (write_value(&w, first + i, 0)) {
      if (w.seen) lua_remove(L, w.seen);
      snprintf(why, ASYNCIO_WHYLEN, "%s%s", w.baddepth > 0 ? "a table holding " : "", w.bad);
      return i + 1;
    }
  }
  if (w.seen) lua_remove(L, w.seen);
  memcpy(b->p, &w.ntables, sizeof w.ntables);
  return 0;
}


typedef struct Reader {
  lua_State *L;
  const char *p, *end;
  int tables;                /* stack index of the list of tables read, or 0 */
  int64_t ntables;
} Reader;


static void take (Reader *r, void *out, size_t n) {
  if ((size_t)(r->end - r->p) < n) luaL_error(r->L, "asyncio: corrupt copy of values");
  memcpy(out, r->p, n);
  r->p += n;
}


static char take_tag (Reader *r) {
  char tag;
  take(r, &tag, 1);
  return tag;
}


static void read_value (Reader *r, char tag, int depth) {
  lua_State *L = r->L;
  switch (tag) {
    case T_NIL: lua_pushnil(L); return;
    case T_FALSE: lua_pushboolean(L, 0); return;
    case T_TRUE: lua_pushboolean(L, 1); return;
    case T_INT: { int64_t v; take(r, &v, sizeof v); lua_pushinteger(L, (lua_Integer)v); return; }
    case T_FLOAT: { double v; take(r, &v, sizeof v); lua_pushnumber(L, (lua_Number)v); return; }
    case T_STRING: {
      size_t n;
      take(r, &n, sizeof n);
      if ((size_t)(r->end - r->p) < n) luaL_error(L, "asyncio: corrupt copy of values");
      lua_pushlstring(L, r->p, n);
      r->p += n;
      return;
    }
    case T_REF: {
      int64_t ref;
      take(r, &ref, sizeof ref);
      if (r->tables == 0 || ref < 1 || ref > r->ntables) luaL_error(L, "asyncio: corrupt copy of values");
      lua_rawgeti(L, r->tables, (lua_Integer)ref);
      return;
    }
    case T_TABLE: {
      if (r->tables == 0 || depth >= MAXDEPTH) luaL_error(L, "asyncio: corrupt copy of values");
      luaL_checkstack(L, 4, NULL);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, r->tables, (lua_Integer)++r->ntables);
      while ((tag = take_tag(r)) != T_END) {
        read_value(r, tag, depth + 1);
        read_value(r, take_tag(r), depth + 1);
        if (lua_isnil(L, -2)) luaL_error(L, "asyncio: corrupt copy of values");
        lua_rawset(L, -3);
      }
      return;
    }
    default: luaL_error(L, "asyncio: corrupt copy of values");
  }
}


/* Push the values of buffer 'p' (of 'n' bytes) on L; returns their count.
** May raise (memory; a buffer not made by asyncio_copy_write). */
int asyncio_copy_read (lua_State *L, const char *p, size_t n) {
  Reader r;
  int64_t ntables;
  int count = 0;
  r.L = L; r.p = p; r.end = p + n; r.tables = 0; r.ntables = 0;
  take(&r, &ntables, sizeof ntables);
  if (ntables > 0) {
    lua_createtable(L, ntables > 1024 ? 1024 : (int)ntables, 0);
    r.tables = lua_gettop(L);
  }
  while (r.p < r.end) {
    luaL_checkstack(L, 2, "too many values to copy");
    read_value(&r, take_tag(&r), 0);
    count++;
  }
  if (r.tables) lua_remove(L, r.tables);
  return count;
}
