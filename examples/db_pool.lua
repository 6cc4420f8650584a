-- A blocking database driver behind a worker pool: LuaSQL's PostgreSQL
-- driver (Debian: lua-sql-postgres) blocks its thread for every query,
-- so each of the pool's workers opens one connection in its init and
-- keeps it; the queries run on the workers while the loop goes on (a
-- ticker task shows it).
--
--   lua5.4 examples/db_pool.lua HOST [PORT] [--workers N] [--queries N]
--       HOST: a server's host name, or the directory of its Unix socket
--   > db_pool = require "examples.db_pool"
--   > asyncio.run(db_pool.main, {host = "/tmp/pg", port = 5432})

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

-- These two functions run in the workers' Lua states: 'env' and 'conn'
-- are globals of each worker's own, not of this program.
-- luacheck: globals env conn

-- Each worker's init: its own connection, in its own globals.
local function connect(host, port, user, dbname)
  local driver = require "luasql.postgres"
  env = driver.postgres()
  conn = assert(env:connect(dbname, user, nil, host, port))
end

-- A query on the worker's connection: its rows, as tables by column name.
local function query(sql)
  local cur = assert(conn:execute(sql))
  local rows = {}
  while true do
    local row = cur:fetch({}, "a")
    if row == nil then break end
    rows[#rows + 1] = row
  end
  cur:close()
  return rows
end

-- opts: host, port (5432), user and dbname ("postgres"), workers (4),
-- queries (8, each sleeping 0.2 s on the server). Returns what it saw.
function M.main(opts)
  opts = opts or {}
  local workers, queries = opts.workers or 4, opts.queries or 8
  local pool <close> = asyncio.worker_pool{size = workers, init = connect,
    initargs = {opts.host, opts.port or 5432, opts.user or "postgres", opts.dbname or "postgres"}}
  local ticks, busy = 0, true
  local ticker = asyncio.create_task(function()
    while busy do await(asyncio.sleep(0.01)); ticks = ticks + 1 end
  end)
  local t0 = asyncio.monotonic()
  local calls = {}
  for i = 1, queries do
    calls[i] = pool:call(query, ("SELECT %d AS n, pg_sleep(0.2)"):format(i))
  end
  local results = await(asyncio.gather(calls))
  local took = asyncio.monotonic() - t0
  busy = false
  await(ticker)
  for i = 1, queries do io.write(results[i][1].n, i < queries and " " or "\n") end
  print(("%d queries of 0.2 s on %d workers: %.2f s (one at a time: %.1f s); the loop ticked %d times")
    :format(queries, workers, took, queries * 0.2, ticks))
  local ok, err = pcall(await, pool:call(query, "SELECT nonsense"))
  print("a bad query:", ok, err.message:match("ERROR:%s*([^\n]*)"))
  return {took = took, ticks = ticks, error = err}
end

function M.script(args)
  local opts, i = {}, 1
  while args[i] do
    local a = args[i]
    if a == "--workers" then opts.workers = math.tointeger(tonumber(args[i + 1])); i = i + 2
    elseif a == "--queries" then opts.queries = math.tointeger(tonumber(args[i + 1])); i = i + 2
    elseif not opts.host then opts.host = a; i = i + 1
    elseif not opts.port then opts.port = math.tointeger(tonumber(a)); i = i + 1
    else opts.bad = a; break end
  end
  if not opts.host or opts.bad or opts.workers == nil and args[i] == "--workers" then
    io.stderr:write("usage: lua5.4 examples/db_pool.lua HOST [PORT] [--workers N] [--queries N]\n")
    os.exit(2)
  end
  asyncio.run(M.main, opts)
end

if (...) ~= "examples.db_pool" then M.script(arg or {}) end
return M
