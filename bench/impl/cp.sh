#!/bin/sh
# bench/impl/cp.sh W12 N: the floor of W12, cp(1) copying N MB.
set -eu
[ "${1:-}" = W12 ] || { echo "usage: cp.sh W12 N" >&2; exit 2; }
n=$2
src=$(mktemp) dst=$(mktemp)
if [ "$n" -gt 0 ]; then head -c $((n * 1048576)) /dev/zero > "$src"; fi
t0=$(date +%s.%N)
cp "$src" "$dst"
t1=$(date +%s.%N)
size=$(stat -c %s "$dst")
rm -f "$src" "$dst"
[ "$size" -eq $((n * 1048576)) ] || { echo "WRONG ANSWER: W12 size" >&2; exit 3; }
echo "elapsed $(awk "BEGIN { printf \"%.6f\", $t1 - $t0 }") rss_kb 0"
