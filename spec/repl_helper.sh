#!/bin/bash
# repl_helper.sh LINES_FILE: drive a real interactive lua5.4 -i with the
# lines of LINES_FILE. A line "--SIGINT-- PATTERN" waits until the output
# shows PATTERN, then sends SIGINT to the REPL. Prints the REPL's output.
set -u
lines=$1
dir=$(mktemp -d /tmp/asyncio-repl.XXXXXXXX)
mkfifo "$dir/in"
LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;" \
  lua5.4 -i < "$dir/in" > "$dir/out" 2>&1 &
pid=$!
exec 3>"$dir/in"
while IFS= read -r line; do
  if [ "${line%% *}" = "--SIGINT--" ]; then
    pattern=${line#--SIGINT-- }
    # wait (at most 30 s: a guard against a hang, not a time bound) for the run to start
    for _ in $(seq 1 300); do grep -q -- "$pattern" "$dir/out" && break; sleep 0.1; done
    sleep 0.2
    kill -INT "$pid"
  else
    printf '%s\n' "$line" >&3
  fi
done < "$lines"
exec 3>&-
( sleep 60; kill -9 "$pid" ) </dev/null >/dev/null 2>&1 & guard=$!
wait "$pid"; rc=$?
kill "$guard" 2>/dev/null
if [ -f "$dir/out" ]; then cat "$dir/out"
else echo "repl_helper: $dir/out is gone:"; ls -la "$dir" 2>&1; fi
echo "exit status $rc"
rm -rf "$dir"
