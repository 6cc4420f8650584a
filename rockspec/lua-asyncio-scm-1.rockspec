rockspec_format = "3.0"
package = "lua-asyncio"
version = "scm-1"
-- The development rockspec: luarocks make from a checkout's root (the
-- source is the checkout; this url is never fetched). A packed rock that
-- installs anywhere offline comes from `make dist`, with the release
-- rockspec lua-asyncio-VERSION-1.rockspec.
source = {
  url = "git+file:///dev/null",
}
description = {
  summary = "Python's asyncio model for Lua 5.4: event loop, tasks, await, timers, queues",
  detailed = [[
    An event loop on libuv with tasks, await, awaitable timers, gather,
    queues, TCP and Unix streams and servers with TLS, subprocesses, UDP,
    files, name resolution and signal handlers, written as a small C core and a Lua layer.
  ]],
  license = "MIT",
  labels = {"async", "asyncio", "coroutines", "libuv", "event-loop"},
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- The Makefile builds and installs: it finds libuv, OpenSSL and Lua's
-- headers through pkg-config (Debian: libuv1-dev, libssl-dev, liblua5.4-dev).
build = {
  type = "make",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    LUA_LIBDIR = "$(LIBDIR)",
    LUA_SHARE = "$(LUADIR)",
  },
  copy_directories = {"docs", "examples", "types"},
}
-- luarocks test: the busted suite, with the busted the machine has (no
-- download: Debian's lua-busted), against the build in the checkout
test = {
  type = "command",
  command = "make && busted",
}
