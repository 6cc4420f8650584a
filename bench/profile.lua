-- bench/profile.lua: the per-unit cost table behind make bench-profile.
-- For each workload and runtime it runs the benchmark program at N and at
-- 2N units and divides the difference by N, so start-up cancels out:
-- instructions (valgrind's callgrind), fresh mallocs and their bytes
-- (tools/malloccount.c), and Lua+C function calls (tools/callcount.lua).
-- These are counts, not timings: they do not move with machine noise.
--   lua5.4 bench/profile.lua [--only W1,W4] [--runtimes asyncio,luv,bare]

local ROOT_LUA = 'LUA_PATH="lua/?.lua;lua/?/init.lua;./?.lua;;" LUA_CPATH="build/?.so;;" '
local MALLOCCOUNT = "build/bench/malloccount.so"

local RUNTIMES = {
  {id = "asyncio", title = "lua-asyncio", prog = "bench/impl/asyncio.lua"},
  {id = "luv", title = "luv adapter", prog = "bench/impl/luv.lua", probe = "lua5.4 -e 'require \"luv\"'"},
  {id = "bare", title = "bare Lua floor", prog = "bench/impl/bare.lua",
   only = {W1 = true, W3 = true, W4 = true, W5 = true}},
}

local WORKLOADS = {
  {id = "W1", unit = "task", n = 5000},
  {id = "W2", unit = "task", n = 2000},
  {id = "W3", unit = "item", n = 20000},
  {id = "W4", unit = "round trip", n = 10000},
  {id = "W5", unit = "chain", n = 5000},
  {id = "W6", unit = "sleeping task", n = 2000},
  {id = "W7", unit = "item", n = 20000},
}

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok
end

local function fail(what, out)
  io.stderr:write("bench-profile: ", what, " failed:\n", out, "\n")
  os.exit(1)
end

-- The three counts for one program run at size 'n'.
local function counts(rt, w, n)
  local cmd = ("%slua5.4 %s %s %d"):format(ROOT_LUA, rt.prog, w.id, n)
  local r = {}
  local out, ok = sh(("%svalgrind --tool=callgrind --callgrind-out-file=/dev/null lua5.4 %s %s %d")
    :format(ROOT_LUA, rt.prog, w.id, n))
  r.ir = tonumber((out:match("Collected : (%d+)")))
  if not ok or not r.ir then fail(cmd .. " under callgrind", out) end
  local tmp = os.tmpname()
  out, ok = sh(("MALLOCCOUNT_OUT=%s LD_PRELOAD=%s %s"):format(tmp, MALLOCCOUNT, cmd))
  local f = io.open(tmp)
  local line = f and f:read("a") or ""
  if f then f:close() end
  os.remove(tmp)
  r.mallocs, r.bytes = line:match("mallocs (%d+) bytes (%d+)")
  if not ok or not r.mallocs then fail(cmd .. " under malloccount", out) end
  out, ok = sh(("%slua5.4 bench/tools/callcount.lua %s %s %d"):format(ROOT_LUA, rt.prog, w.id, n))
  r.calls, r.ccalls = out:match("calls (%d+) c_calls (%d+)")
  if not ok or not r.calls then fail(cmd .. " under callcount", out) end
  for k, v in pairs(r) do r[k] = tonumber(v) end
  return r
end

local function parse_args(argv)
  local o = {}
  local i = 1
  while i <= #argv do
    local a, v = argv[i], argv[i + 1]
    if (a == "--only" or a == "--runtimes") and v then
      local set = {}
      for x in v:gmatch("[^,]+") do set[x] = true end
      o[a:sub(3)] = set
      i = i + 1
    else
      io.stderr:write("usage: lua5.4 bench/profile.lua [--only W1,W4] [--runtimes asyncio,luv,bare]\n")
      os.exit(2)
    end
    i = i + 1
  end
  return o
end

local function main(argv)
  local o = parse_args(argv)
  print("Per unit: the difference of runs at 2N and N units, divided by N (deterministic counts).")
  print()
  print("| workload | runtime | N | instructions | mallocs | bytes | Lua+C calls (C) |")
  print("| --- | --- | --- | --- | --- | --- | --- |")
  for _, w in ipairs(WORKLOADS) do
    if not o.only or o.only[w.id] then
      for _, rt in ipairs(RUNTIMES) do
        local wanted = (not o.runtimes or o.runtimes[rt.id]) and (not rt.only or rt.only[w.id])
        if wanted and (rt.probe == nil or select(2, sh(rt.probe))) then
          local a, b = counts(rt, w, w.n), counts(rt, w, 2 * w.n)
          local function per(k) return (b[k] - a[k]) / w.n end
          print(("| %s per %s | %s | %d | %.0f | %.1f | %.0f | %.1f (%.1f) |"):format(
            w.id, w.unit, rt.title, w.n, per("ir"), per("mallocs"), per("bytes"),
            per("calls"), per("ccalls")))
          io.stdout:flush()
        end
      end
    end
  end
end

main(arg)
