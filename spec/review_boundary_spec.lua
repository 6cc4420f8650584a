-- Defects a hostile review of the C boundary found (session of 2026-12-07,
-- the second that day): each spec here failed before its fix. The ones
-- that crashed run in a child process, so that a crash fails the spec
-- rather than ending the spec run.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("the review of the C boundary", function()
  after_each(support.assert_clean)

  it("every __gc of the C objects checks its argument (they are fields Lua code reaches)", function()
    local types = {"asyncio.Stream", "asyncio.Signal", "asyncio.Resolve", "asyncio.Process",
                   "asyncio.FsRequest", "asyncio.UDP", "asyncio.WorkerCall"}
    for _, name in ipairs(types) do
      local out, code = support.lua_run(([[
        require "asyncio"
        local mt = assert(debug.getregistry()[%q], "no metatable")
        local core = require "asyncio.core"
        local loop = core.new_loop({print, print, print, print})
        for _, v in ipairs({"x", io.stdout, loop, 1, {}}) do
          local ok, e = pcall(mt.__gc, v)
          assert(not ok and e:find(%q .. " expected", 1, true), tostring(e))
        end
        loop:close()
        print("refused all")
      ]]):format(name, name))
      assert.equal(0, code, name .. ": " .. out)
      assert.matches("refused all", out, 1, true)
    end
  end)

  it("a timer id from Lua with a negative slot part is unknown, not read out of bounds", function()
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      asyncio.run(function()
        local core = asyncio.get_running_loop()._core
        local r = {}
        for _, id in ipairs({0x80000000, 0xffffffff, 0x7fffffff80000000, -1, math.mininteger}) do
          r[#r + 1] = tostring(core:untimer(id))
        end
        local h = asyncio.get_running_loop():call_later(10, print)
        h._timer = 0xffffffff
        h:cancel()
        print(table.concat(r, " "))
      end)
    ]])
    assert.equal(0, code, out)
    assert.matches("false false false false false", out, 1, true)
  end)

  it("untimer ends only a callback's timer, not a sleeping task's", function()
    local woke = support.run(function()
      local loop = asyncio.get_running_loop()
      local t = asyncio.create_task(function() return await(asyncio.sleep(0.02, "woke")) end)
      await(asyncio.sleep(0))
      for id = 0, 8 do  -- every id the task's timer can have here
        for gen = 0, 4 do loop._core:untimer((gen << 32) | id) end
      end
      return await(t)
    end)
    assert.equal("woke", woke)
  end)

  it("a stream's C methods refuse another loop than the stream's own", function()
    local out, code = support.lua_run([[
      local core = require "asyncio.core"
      local function nop() end
      local hooks = {nop, nop, nop, nop}
      local A, B = core.new_loop(hooks), core.new_loop(hooks)
      local srv = assert(core.tcp_listen(A, "127.0.0.1", 0, 10, false, 65536, nop, nil))
      B:spawn({}, function()
        B:sleep(0.05)
        local t = {} for i = 1, 100 do t[i] = {i} end
        print("task resumed fine")
      end)
      B:timer(0, function() B:stop() end)
      B:run()
      print(pcall(srv._close, srv, B))
      print(pcall(srv._wait, srv, 0, B))
      collectgarbage() collectgarbage()
      print(B:run())
      srv:_close(A)
      A:close() B:close()
    ]])
    assert.equal(0, code, out)
    assert.matches("false\tbad argument #2 to '?' (the stream belongs to another event loop)", out, 1, true)
    assert.matches("task resumed fine", out, 1, true)
  end)

  it("a loop run inside another loop's task leaves Ctrl-C with the outer one", function()
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      local await = asyncio.await
      local f = assert(io.open("/proc/self/stat"))
      local pid = math.tointeger(f:read("n"))
      f:close()
      local ok, err = pcall(asyncio.run, function()
        local l2 = asyncio.new_event_loop()
        l2._core:run(true)
        l2:close()
        local k = await(asyncio.create_subprocess_exec("kill", "-INT", tostring(pid)))
        await(k:wait())
        await(asyncio.sleep(5))
        return "Ctrl-C was lost"
      end)
      print("run:", ok, err)
      io.popen("kill -INT " .. pid):close()  -- (os.execute: system() ignores SIGINT meanwhile)
      for _ = 1, 1e8 do end
      print("Ctrl-C at the top level was lost")
    ]])
    assert.matches("run:\tfalse\t.*KeyboardInterrupt", out)
    assert.not_matches("lost", out)
    assert.not_equal(0, code)
  end)

  it("getnameinfo names its argument for a port out of range", function()
    for _, port in ipairs({-1, 65536, 70000}) do
      assert.has_error(function() asyncio.getnameinfo("127.0.0.1", port) end,
        "bad argument #2 to 'getnameinfo' (port out of range)")
    end
  end)

  it("the loop's __gc called on the running loop is refused", function()
    local out, code = support.lua_run([[
      local asyncio = require "asyncio"
      asyncio.run(function()
        local core = asyncio.get_running_loop()._core
        print(pcall(getmetatable(core).__gc, core))
        asyncio.await(asyncio.sleep(0))
        print("still running")
      end)
    ]])
    assert.equal(0, code, out)
    assert.matches("false\t.*cannot close a running event loop", out)
    assert.matches("still running", out, 1, true)
  end)

  it("a pool request's _wait (and the like) refuses another loop than its own (its waiter was never woken)",
     function()
    local out, code = support.lua_run([[
      local core = require "asyncio.core"
      local function nop() end
      local hooks = {nop, nop, nop, nop}
      local A, B = core.new_loop(hooks), core.new_loop(hooks)
      local req = assert(core.getaddrinfo(A, "127.0.0.1", "80"))
      local ok, err
      B:spawn({}, function() ok, err = pcall(req._wait, req, B) end)
      B:run()
      print(ok, err)
      A:run()
      A:close() B:close()
    ]])
    assert.equal(0, code, out)
    assert.matches("false\tbad argument #2 to '?' (the object belongs to another event loop)", out, 1, true)
  end)
end)
