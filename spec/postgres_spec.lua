-- A blocking driver in a worker pool: Debian's lua-sql-postgres (LuaSQL)
-- against a real PostgreSQL server, started here in a temporary directory
-- (initdb, pg_ctl; as the postgres user when run as root) and listening
-- only on a Unix socket there. Each worker connects once, in its init.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

-- The newest PostgreSQL's programs directory.
local function pg_bin()
  local out = support.sh("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1")
  local dir = out:match("^(%S+)")
  assert(dir and support.sh("test -x " .. dir .. "/initdb; echo $?"):match("^0"),
    "PostgreSQL is not installed (scripts/setup.sh test installs it)")
  return dir
end

-- Connect this worker (its init): 'conn' is the worker's own global.
local function connect(dir, port)
  local driver = require "luasql.postgres"
  env = driver.postgres()  -- luacheck: ignore (the worker's globals)
  conn = assert(env:connect("postgres", "postgres", nil, dir, port))  -- luacheck: ignore
end

-- Run 'sql' on the worker's connection: its first row, as a table.
local function query(sql)
  local cur = assert(conn:execute(sql))  -- luacheck: ignore (the worker's global)
  local row = cur:fetch({}, "a")
  cur:close()
  return row
end

describe("a PostgreSQL driver (LuaSQL) in a worker pool", function()
  local dir, port, bin, as_pg

  setup(function()
    bin = pg_bin()
    dir = support.sh("mktemp -d /tmp/asyncio-pg-XXXXXX"):match("^(%S+)")
    port = support.free_port()
    local root = support.sh("id -u"):match("^0") ~= nil
    as_pg = root and "runuser -u postgres -- " or ""
    if root then support.sh("chown postgres " .. dir) end
    local out, code = support.sh(("%s%s/initdb -D %s/data --auth=trust -U postgres --no-sync -E UTF8")
      :format(as_pg, bin, dir))
    assert(code == 0, out)
    out, code = support.sh(("%s%s/pg_ctl -D %s/data -l %s/log -w -o \"-c listen_addresses='' "
      .. "-k %s -p %d -c fsync=off\" start"):format(as_pg, bin, dir, dir, dir, port))
    assert(code == 0, out .. (support.sh("cat " .. dir .. "/log")))
  end)

  teardown(function()
    if dir then
      support.sh(("%s%s/pg_ctl -D %s/data -m immediate -w stop"):format(as_pg, bin, dir))
      support.sh("rm -rf " .. dir)
    end
  end)

  it("runs eight 0.2 s queries four at a time while the loop keeps ticking", function()
    local rows, ticks = support.run_within(60, function()
      local pool <close> = asyncio.worker_pool{size = 4, init = connect, initargs = {dir, port}}
      local busy, ticks = true, 0
      local ticker = asyncio.create_task(function()
        while busy do await(asyncio.sleep(0.01)); ticks = ticks + 1 end
      end)
      local calls = {}
      for i = 1, 8 do
        calls[i] = pool:call(query, ("SELECT %d AS i, extract(epoch from clock_timestamp()) AS s, "
          .. "pg_sleep(0.2), extract(epoch from clock_timestamp()) AS e"):format(i))
      end
      local rows = await(asyncio.gather(table.unpack(calls)))
      busy = false
      await(ticker)
      return rows, ticks
    end)
    -- the server's own clock says how many queries ran at once: at most
    -- the pool's four, and more than one
    local most = 0
    for i = 1, 8 do
      assert.equal(tostring(i), rows[i].i)
      local s, n = tonumber(rows[i].s), 0
      for j = 1, 8 do
        if tonumber(rows[j].s) <= s and s < tonumber(rows[j].e) then n = n + 1 end
      end
      most = math.max(most, n)
    end
    assert.is_true(most >= 2 and most <= 4, "queries at once: " .. most)
    assert.is_true(ticks >= 2, "the loop ticked " .. ticks .. " times")
  end)

  it("a failing query raises the driver's error with its message", function()
    local err = support.run_within(60, function()
      local pool <close> = asyncio.worker_pool{size = 1, init = connect, initargs = {dir, port}}
      local _, e = pcall(await, pool:call(query, "SELECT nonsense"))
      return e
    end)
    assert.is_true(asyncio.ThreadError:is(err))
    assert.matches('column "nonsense" does not exist', err.message)
    assert.matches("LuaSQL", tostring(err))
  end)

  it("cancelling the waiting task leaves the pool and its connection usable", function()
    local answer, cancelled = support.run_within(60, function()
      local pool <close> = asyncio.worker_pool{size = 1, init = connect, initargs = {dir, port}}
      await(pool:call(query, "SELECT 1"))  -- connected
      local slow = asyncio.create_task(pool:call(query, "SELECT pg_sleep(0.3)"))
      await(asyncio.sleep(0.05))
      slow:cancel()
      local _, e = pcall(await, slow)
      local row = await(pool:call(query, "SELECT 6 * 7 AS answer"))
      return row.answer, asyncio.CancelledError:is(e)
    end)
    assert.equal("42", answer)
    assert.is_true(cancelled)
  end)

  it("examples/db_pool.lua runs its queries on the workers against this server", function()
    local out, code = support.sh(("%s examples/db_pool.lua %s %d --workers 4 --queries 8")
      :format(support.LUA, dir, port))
    assert.equal(0, code, out)
    assert.matches("^1 2 3 4 5 6 7 8\n8 queries of 0%.2 s on 4 workers: [%d.]+ s %(one at a time: 1%.6 s%); "
      .. "the loop ticked %d+ times\na bad query:\tfalse\tcolumn \"nonsense\" does not exist", out)
    local mod = support.lua_run(([[
      local asyncio = require "asyncio"
      local db_pool = require "examples.db_pool"
      local r = asyncio.run(db_pool.main, {host = %q, port = %d, workers = 2, queries = 2})
      print("ticks", r.ticks > 0)
    ]]):format(dir, port))
    assert.matches("ticks\ttrue", mod)
  end)

  it("an init that cannot connect breaks the pool with the driver's message", function()
    local err = support.run_within(60, function()
      local pool <close> = asyncio.worker_pool{size = 2, init = connect, initargs = {dir .. "/none", port}}
      local _, e = pcall(await, pool:call(query, "SELECT 1"))
      return e
    end)
    assert.is_true(asyncio.ThreadError:is(err))
    assert.matches("^worker_pool: init failed: .*No such file or directory", err.message)
  end)
end)
