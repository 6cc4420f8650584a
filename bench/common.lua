-- bench/common.lua: what every Lua benchmark program shares: the seeded
-- delays of W2, the answer check and the report line.
local M = {}

function M.check(ok, what)
  if not ok then
    io.stderr:write("WRONG ANSWER: ", what, "\n")
    os.exit(3)
  end
end

-- n delays in [0, 0.1], from a seeded generator every runtime reproduces
-- (a 31-bit LCG, so Python, Node and C compute the very same list).
function M.delays(n)
  local t, x = {}, 12345
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = (x % 100001) / 1e6
  end
  return t
end

-- Peak resident set size of this process, in KiB (Linux).
function M.rss_kb()
  local f = io.open("/proc/self/status")
  if not f then return 0 end
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmHWM:%s*(%d+)")) or 0
end

-- W12: a source file of n MB (made outside the timing) and a target path.
-- Both live in $TMPDIR (bench/run.lua points it at /dev/shm), else /tmp.
function M.make_file(n)
  local name = os.tmpname()  -- a unique name (Lua's is always under /tmp)
  os.remove(name)
  local base = (os.getenv("TMPDIR") or "/tmp") .. "/" .. name:match("[^/]+$")
  local src, dst = base .. "-src", base .. "-dst"
  local f = assert(io.open(src, "wb"))
  local block = ("0123456789abcdef"):rep(65536)  -- 1 MB
  for _ = 1, n do f:write(block) end
  f:close()
  return src, dst
end

-- W12: the copy is whole; both files go.
function M.check_copy(src, dst, n)
  local f = assert(io.open(dst, "rb"))
  local size = f:seek("end")
  f:close()
  os.remove(src)
  os.remove(dst)
  M.check(size == n * 1048576, "W12 size")
end

-- main(workloads, name, n): run one workload and print its report.
function M.main(W, name, n)
  n = math.tointeger(tonumber(n))
  local fn = W[name]
  if not fn or not n then
    io.stderr:write("usage: WORKLOAD N (workloads: W1 W2 W3 W3b W4 W5 W6 W7)\n")
    os.exit(2)
  end
  local elapsed = n > 0 and fn(n) or 0
  io.write(("elapsed %.6f rss_kb %d\n"):format(elapsed, M.rss_kb()))
end

return M
