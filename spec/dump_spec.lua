-- Task dumps: asyncio.dump_tasks / print_tasks, the deadlock report of
-- asyncio.run, and Ctrl-\ (SIGQUIT) while a loop runs.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

describe("dump_tasks", function()
  it("names each task, what it awaits and where, as a tree of who awaits whom", function()
    local text = asyncio.run(function()
      local lock = asyncio.Lock()
      await(lock:acquire())
      local q = asyncio.Queue()
      local srv <close> = await(asyncio.start_server(function(r) await(r:read()) end, "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      local function nap(s) await(asyncio.sleep(s)) end
      local tasks = {
        asyncio.create_task(function() await(lock:acquire()) end),
        asyncio.create_task(function() await(q:get()) end),
        asyncio.create_task(function() await(r:read()) end),
        asyncio.create_task(function()
          local a = asyncio.create_task(nap, 5)
          a:set_name("napper")
          await(asyncio.gather(a, asyncio.create_task(nap, 7)))
        end),
      }
      for i, name in ipairs({"locker", "getter", "reader", "gatherer"}) do tasks[i]:set_name(name) end
      asyncio.current_task():set_name("main")
      await(asyncio.sleep(0))
      await(asyncio.sleep(0))
      local out = asyncio.dump_tasks()
      for i = 1, 3 do tasks[i]:cancel() end  -- the gatherer goes with run's clean-up
      w:close()
      return out
    end, {clock = "virtual"})
    assert.matches("^8 tasks on a virtual clock at 0.000 s\n", text)  -- with the server's
    assert.matches("\n%* main: running\n    spec/dump_spec.lua:%d+: in function", text)
    assert.matches("\n%* locker: a Lock\n    spec/dump_spec.lua:17:", text)
    assert.matches("\n%* getter: a queue\n", text)
    assert.matches("\n%* reader: a read on a stream\n", text)
    assert.matches("\n%* gatherer: gather of 2 %(2 pending%)\n    spec/dump_spec.lua:%d+:", text)
    assert.matches("\n  %* napper: sleep, 5.000 s left\n      spec/dump_spec.lua:15:", text)
    assert.matches("\n  %* Task%-%x+: sleep, 7.000 s left\n", text)
    assert.is_nil(text:find("lua/asyncio/", 1, true))  -- the library's own frames are left out
  end)

  it("print_tasks writes the same to a file", function()
    local path = os.tmpname()
    asyncio.run(function()
      local f = assert(io.open(path, "w"))
      asyncio.print_tasks(nil, f)
      f:close()
    end)
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    os.remove(path)
    assert.matches("^1 task on the loop\n%* Task%-%x+: running\n", text)
  end)

  it("asyncio.run's deadlock error shows the stuck tasks", function()
    local ok, err = pcall(asyncio.run, function()
      local ev = asyncio.Event()
      local t = asyncio.create_task(function() await(ev:wait()) end)
      t:set_name("waiter")
      await(t)
    end)
    assert.is_false(ok)
    assert.matches("deadlock: main waits for something", err)
    assert.matches("\n%* Task%-%x+: task waiter\n", err)
    assert.matches("\n  %* waiter: an Event\n      spec/dump_spec.lua:%d+:", err)
  end)

  it("Ctrl-\\ (SIGQUIT) prints the dump while asyncio.run runs, and the loop goes on", function()
    local script = os.tmpname()
    local log = os.tmpname()
    local f = assert(io.open(script, "w"))
    f:write([[
local asyncio = require "asyncio"
asyncio.run(function()
  local t = asyncio.create_task(function() asyncio.await(asyncio.sleep(3)) end)
  t:set_name("long-sleeper")
  print("ready")
  io.stdout:flush()
  asyncio.await(t)
  print("finished")
end)
]])
    f:close()
    -- the child's output once it shows 'word' (at most 6 s: a guard, not a bound)
    local function log_once(word)
      local text = ""
      for _ = 1, 300 do
        local lf = io.open(log)
        text = lf and lf:read("a") or ""
        if lf then lf:close() end
        if text:find(word) then break end
        os.execute("sleep 0.02")
      end
      return text
    end
    local pid = support.spawn(("%s %s"):format(support.LUA, script), log)
    log_once("ready")
    support.kill(pid, "QUIT")
    local text = log_once("finished")
    os.remove(script)
    os.remove(log)
    assert.matches("ready", text)
    assert.matches("%* long%-sleeper: sleep, %d%.%d+ s left", text)
    assert.matches("finished", text)  -- the dump did not stop the program
  end)
end)
