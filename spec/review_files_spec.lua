-- A File (files.lua, fs.c) under a hostile program: several tasks on one
-- File, cancelled and abandoned waiters, big reads, closes racing the pool.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local run = support.run

local function slurp(path)
  local h = assert(io.open(path, "rb"))
  local s = h:read("a")
  h:close()
  return s
end

local function spit(path, s)
  local h = assert(io.open(path, "wb"))
  h:write(s)
  h:close()
end

describe("a File shared by several tasks", function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function()
    os.remove(path)
    support.assert_clean()
  end)

  it("serves a task that asks again after the tasks already waiting", function()
    run(function()
      local f = await(asyncio.open_file(path, "w"))
      local a = asyncio.create_task(function()
        await(f:write("a1 "))
        await(f:flush())
        await(f:write("a2 "))
        await(f:flush())
      end)
      local b = asyncio.create_task(function()
        await(asyncio.sleep(0))  -- a's flush holds the turn now
        await(f:write("b "))
        await(f:flush())
      end)
      await(asyncio.gather(a, b))
      await(f:close())
    end)
    assert.equal("a1 b a2 ", slurp(path))
  end)

  it("hands the turn on when the holder's coroutine is closed by hand", function()
    spit(path, "0123456789abcdefghij")
    local res = run(function()
      local f = await(asyncio.open_file(path))
      local a = asyncio.create_task(function() return await(f:read(10)) end)
      await(asyncio.sleep(0))  -- a holds the turn, waiting for the pool
      local b = asyncio.create_task(function() return await(f:read(5)) end)
      local c = asyncio.create_task(function() return await(f:read(5)) end)
      await(asyncio.sleep(0))  -- b and c wait for their turns
      coroutine.close(a:get_coro())
      local r = {await(b), await(c)}
      assert.is_false(pcall(await, a))
      await(f:close())
      return r
    end)
    assert.same({"01234", "56789"}, res)
  end)

  it("hands the turn on when a waiter handed it is closed by hand or cancelled", function()
    spit(path, "0123456789abcdefghij")
    local res = run(function()
      local f = await(asyncio.open_file(path))
      local b, d
      local a = asyncio.create_task(function()
        local s = await(f:read(4))
        coroutine.close(b:get_coro())  -- b was handed the turn, has not run yet
        return s
      end)
      await(asyncio.sleep(0))
      b = asyncio.create_task(function() return await(f:read(4)) end)
      local c = asyncio.create_task(function()
        local s = await(f:read(4))
        d:cancel()  -- d was handed the turn, has not run yet
        return s
      end)
      d = asyncio.create_task(function() return await(f:read(4)) end)
      local e = asyncio.create_task(function() return await(f:read(4)) end)
      local r = {await(a), await(c), await(e)}
      assert.is_false(pcall(await, b))
      assert.is_false((pcall(await, d)))
      await(f:close())
      return r
    end)
    assert.equal("0123", res[1])
    assert.equal("4567", res[2])
    assert.equal("89ab", res[3])
  end)

  it("loses and reorders no write when waiters are cancelled by time limits", function()
    local big = 700 * 1024  -- two of them fill the buffer: the second waits for the pool
    local done = run(function()
      local f = await(asyncio.open_file(path, "w"))
      local done = {}
      local tasks = {}
      for i = 1, 24 do
        local tag = string.char(64 + i)
        tasks[i] = asyncio.create_task(function()
          for round = 1, 3 do
            local data = tag:rep(i % 3 == 0 and big or 17 * round)
            local ok = pcall(await, asyncio.wait_for(f:write(data), (i + round) % 4 == 0 and 0 or 1e6))
            if ok then done[#done + 1] = data end
            if round == 2 and i % 5 == 0 then pcall(await, asyncio.wait_for(f:flush(), 0)) end
          end
        end)
      end
      await(asyncio.gather(tasks))
      await(f:close())
      return done
    end)
    local got = slurp(path)
    assert.equal(#table.concat(done), #got)
    assert.is_true(table.concat(done) == got)
  end)
end)

describe("big reads", function()
  local path
  before_each(function() path = os.tmpname() end)
  after_each(function()
    os.remove(path)
    support.assert_clean()
  end)

  -- Bytes that string.find looked at while fn ran: a line longer than the
  -- buffer must not be searched again from its start with each block.
  local function scanned(fn)
    local find, n = string.find, 0
    string.find = function(s, p, init, plain)  -- luacheck: ignore 122
      n = n + #s - (init or 1) + 1
      return find(s, p, init, plain)
    end
    local ok, res = pcall(fn)
    string.find = find  -- luacheck: ignore 122
    assert(ok, res)
    return n, res
  end

  it("lines() searches each block of a long line once", function()
    local line = ("0123456789abcdef"):rep(8 * 65536)  -- 8 MiB: 8 blocks
    spit(path, line .. "\nend")
    local n, lines = scanned(function()
      return run(function()
        local f <close> = await(asyncio.open_file(path))
        local r = {}
        for l in f:lines() do r[#r + 1] = l end
        return r
      end)
    end)
    assert.equal(2, #lines)
    assert.is_true(lines[1] == line)
    assert.equal("end", lines[2])
    assert.is_true(n <= 2 * #line, "searched " .. n .. " bytes")
  end)

  it("read() and lines() closed by hand halfway give back what they took", function()
    local data = ("x"):rep(3 * 1024 * 1024 - 5) .. "\n" .. ("y"):rep(1024 * 1024)
    spit(path, data)
    local res = run(function()
      local f = await(asyncio.open_file(path))
      assert.equal("x", await(f:read(1)))
      local a = asyncio.create_task(function() return await(f:read()) end)
      local b = asyncio.create_task(function() return f:lines("L")() end)
      await(asyncio.sleep(0))  -- a waits for the pool with a block taken
      coroutine.close(a:get_coro())
      local line = await(b)
      await(asyncio.sleep(0))
      local c = asyncio.create_task(function() return f:lines()() end)
      await(asyncio.sleep(0))  -- c waits for the pool with the first block taken
      coroutine.close(c:get_coro())
      local d = asyncio.create_task(function() return await(f:read()) end)
      local rest = await(d)
      assert.is_false(pcall(await, a))
      assert.is_false(pcall(await, c))
      await(f:close())
      return {line = line, rest = rest}
    end)
    assert.is_true(res.line == data:sub(2, 3 * 1024 * 1024 - 4))
    assert.is_true(res.rest == ("y"):rep(1024 * 1024))
  end)
end)

describe("closing a File with a request in the pool", function()
  local dir
  before_each(function()
    dir = (support.sh("mktemp -d"):gsub("%s+$", ""))
    for i = 1, 4 do os.execute(("mkfifo '%s/fifo%d'"):format(dir, i)) end
  end)
  after_each(function()
    os.execute("rm -rf '" .. dir .. "'")
    support.assert_clean()
  end)

  -- Hold libuv's 4 pool threads in open() of a FIFO (until a writer comes),
  -- so that a request started now waits in the pool's queue; returns the
  -- function that lets them go and closes what they opened.
  local function block_pool()
    local blockers = {}
    for i = 1, 4 do
      blockers[i] = asyncio.create_task(function()
        return await(asyncio.open_file(("%s/fifo%d"):format(dir, i)))
      end)
    end
    await(asyncio.sleep(0))  -- their opens are in the pool, before anything else
    return function()
      for i = 1, 4 do assert(io.open(("%s/fifo%d"):format(dir, i), "w")):close() end
      for i = 1, 4 do await(await(blockers[i]):close()) end
    end
  end

  -- Close 'f' where nothing can wait (a <close> variable outside its task).
  local function close_now(f)
    coroutine.wrap(function() local g <close> = f end)()  -- luacheck: ignore 211
  end

  it("closes the descriptor only once a read in the pool is done", function()
    spit(dir .. "/mine", "MINE-MINE")
    spit(dir .. "/other", "OTHER")
    local res = run(function()
      local f = await(asyncio.open_file(dir .. "/mine"))
      local unblock = block_pool()
      local a = asyncio.create_task(function() return await(f:read(5)) end)
      await(asyncio.sleep(0))  -- a's read waits in the pool's queue
      close_now(f)
      local other = assert(io.open(dir .. "/other"))  -- takes the lowest free descriptor
      unblock()
      local ok, err = pcall(await, a)
      local text = other:read("a")
      other:close()
      return {ok = ok, err = err, text = text}
    end)
    assert.is_false(res.ok)
    assert.equal("read: the file is closed", res.err)
    assert.equal("OTHER", res.text)
  end)

  it("a write waiting for the pool when the File is closed raises, writes nothing", function()
    local path = dir .. "/w"
    local first = ("a"):rep(1024 * 1024 + 1)
    local res = run(function()
      local f = await(asyncio.open_file(path, "w"))
      local unblock = block_pool()
      await(f:write(first))  -- a full buffer: goes to the pool, queued there
      local a = asyncio.create_task(function() return await(f:write(("b"):rep(1024 * 1024))) end)
      await(asyncio.sleep(0))  -- a waits for the write before it
      close_now(f)
      local other = assert(io.open(dir .. "/other", "w"))
      unblock()
      local ok, err = pcall(await, a)
      other:close()
      return {ok = ok, err = err}
    end)
    assert.is_false(res.ok)
    assert.equal("write: the file is closed", res.err)
    assert.is_true(slurp(path) == first)
    assert.equal("", slurp(dir .. "/other"))
  end)

  it("operations queued behind a close raise, naming their method", function()
    local path = dir .. "/q"
    local res = run(function()
      local f = await(asyncio.open_file(path, "w+"))
      await(f:write("kept"))
      local unblock = block_pool()
      local closing = asyncio.create_task(function() return await(f:close()) end)
      await(asyncio.sleep(0))  -- the close holds the turn, waiting for the pool
      local names = {"read", "write", "flush", "seek", "lines"}
      local ops = {
        function() return await(f:read(1)) end,
        function() return await(f:write("lost")) end,
        function() return await(f:flush()) end,
        function() return await(f:seek("set", 0)) end,
        function() return f:lines()() end,
      }
      local tasks = {}
      for i, fn in ipairs(ops) do tasks[i] = asyncio.create_task(fn) end
      await(asyncio.sleep(0))
      unblock()
      await(closing)
      local errs = {}
      for i, t in ipairs(tasks) do
        local ok, err = pcall(await, t)
        errs[i] = ok and "no error" or err
      end
      local ok, err = pcall(function() return f:read(1) end)
      return {names = names, errs = errs, late = not ok and err}
    end)
    for i, name in ipairs(res.names) do
      assert.equal(name .. ": the file is closed", res.errs[i])
    end
    assert.matches("read: the file is closed$", res.late)
    assert.equal("kept", slurp(path))
  end)
end)
