#!/bin/sh
# setup.sh: install the Debian packages lua-asyncio needs for one purpose.
#   scripts/setup.sh build|test|check|bench
# Installs what is missing with apt-get (as root, or through sudo); where that
# is impossible, prints the exact command to run and fails.
set -eu

purpose=${1:-build}

# the real programs the network specs talk to
net="redis-server:redis-server openssl:openssl curl:curl socat:socat netcat-openbsd:nc python3:python3"
# worker threads' spec: a PostgreSQL server of its own, driven through LuaSQL
db="postgresql:glob:/usr/lib/postgresql/*/bin/initdb lua-sql-postgres:lua5.4-module:luasql.postgres"
# the drivers the socket shims run (spec/luasocket_spec.lua, spec/ngx_spec.lua): redis-lua on
# LuaSocket, and LuaSocket itself (what require "socket" gives outside a task)
drivers="lua-redis:glob:/usr/share/lua/5.1/redis.lua lua-socket:lua5.4-module:socket"
# another Lua, for the spec that asyncio refuses it clearly
other_lua="lua5.1:lua5.1"
# make dist (zip packs the .src.rock) and installing it (luarocks unpacks with unzip)
dist="zip:zip unzip:unzip git:git"

# package:probe pairs; the probe is a command name or pkg-config module (pc:NAME).
need="pkg-config:pkg-config gcc:cc make:make lua5.4:lua5.4 liblua5.4-dev:pc:lua5.4 libuv1-dev:pc:libuv libssl-dev:pc:openssl"
case "$purpose" in
  build|demo) ;;
  test)  need="$need lua-busted:busted luarocks:luarocks $net $db $drivers $other_lua $dist" ;;
  check) need="$need lua-busted:busted luarocks:luarocks lua-check:luacheck valgrind:valgrind cppcheck:cppcheck $net $db $drivers $other_lua $dist" ;;
  bench) need="$need python3:python3 nodejs:node wrk:wrk lua5.1:lua5.1 lua-http:lua5.1-module:http.server lua-cqueues:lua5.4-module:_cqueues lua-luv:lua5.4-module:luv valgrind:valgrind" ;;
  *) echo "setup.sh: unknown purpose '$purpose' (build, demo, test, check, bench)" >&2; exit 2 ;;
esac

present() {
  case "$1" in
    pc:*) command -v pkg-config >/dev/null 2>&1 && pkg-config --exists "${1#pc:}" ;;
    glob:*) for f in ${1#glob:}; do [ -e "$f" ] && return 0; done; return 1 ;;
    lua5.[1-4]-module:*) lua=${1%%-module:*}; command -v "$lua" >/dev/null 2>&1 &&
        "$lua" -e "require '${1#*-module:}'" >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

missing=""
for pair in $need; do
  pkg=${pair%%:*}
  probe=${pair#*:}
  present "$probe" || missing="$missing $pkg"
done

# lua-resty-redis (Debian's lua-nginx-redis) for spec/ngx_spec.lua, without nginx: the package
# is fetched and unpacked into build/deps/lua-nginx-redis, never installed.
root=$(cd "$(dirname "$0")/.." && pwd)
resty_redis="$root/build/deps/lua-nginx-redis/usr/share/lua/5.1/nginx/redis.lua"
fetch_resty_redis() {
  case "$purpose" in test|check) ;; *) return 0 ;; esac
  [ -e "$resty_redis" ] && return 0
  tmp=$(mktemp -d)
  echo "setup: apt-get download lua-nginx-redis && dpkg -x into build/deps/lua-nginx-redis"
  if ! (cd "$tmp" && apt-get download lua-nginx-redis </dev/null >/dev/null 2>&1 ||
        { ${sudo:-} apt-get update -qq </dev/null && apt-get download lua-nginx-redis </dev/null; }); then
    rm -rf "$tmp"
    echo "setup: could not download lua-nginx-redis (apt-get download lua-nginx-redis)" >&2
    exit 1
  fi
  mkdir -p "$root/build/deps"
  dpkg -x "$tmp"/lua-nginx-redis_*.deb "$root/build/deps/lua-nginx-redis"
  rm -rf "$tmp"
}

if [ -z "$missing" ]; then
  fetch_resty_redis
  exit 0
fi

echo "setup: missing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  echo "setup: cannot install them (not root, no password-less sudo). Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no apt-get here; install the equivalents of:$missing" >&2
  exit 1
fi
echo "setup: $sudo apt-get update && $sudo apt-get install -y$missing"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq </dev/null
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends$missing </dev/null
fetch_resty_redis
