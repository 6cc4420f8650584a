-- Child processes (subprocess.lua, process.c) against real programs: sh,
-- cat, sort, yes | head, a program killed by a signal, a program that
-- fills stdout and stderr at once, a program that is not there.
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local run = support.run

describe("subprocesses", function()
  it("exec: stdout through a pipe, the return code from wait", function()
    local out, rc = run(function()
      local p = await(asyncio.create_subprocess_exec("echo", "hello", "world", {stdout = "pipe"}))
      assert.is_number(p.pid)
      local line = await(p.stdout:readline())
      return line, await(p:wait())
    end)
    assert.equal("hello world\n", out)
    assert.equal(0, rc)
  end)

  it("shell: exit codes, stderr to stdout, cwd and env", function()
    local res = run(function()
      local p = await(asyncio.create_subprocess_shell(
        'echo "$GREETING" in "$(pwd)"; echo oops >&2; exit 3',
        {stdout = "pipe", stderr = "stdout", cwd = "/tmp", env = {GREETING = "hi", PATH = "/usr/bin:/bin"}}))
      local out, err = await(p:communicate())
      return {out = out, err = err, rc = p.returncode}
    end)
    assert.equal("hi in /tmp\noops\n", res.out)
    assert.is_nil(res.err)
    assert.equal(3, res.rc)
  end)

  it("communicate sends input and reads both streams: cat and sort", function()
    local res = run(function()
      local cat = await(asyncio.create_subprocess_exec("cat", {stdin = "pipe", stdout = "pipe"}))
      local out = await(cat:communicate("one\ntwo\n"))
      local sort = await(asyncio.create_subprocess_exec("sort", {stdin = "pipe", stdout = "pipe"}))
      local sorted = await(sort:communicate("c\na\nb\n"))
      return {cat = out, sort = sorted, rc = cat.returncode}
    end)
    assert.equal("one\ntwo\n", res.cat)
    assert.equal("a\nb\nc\n", res.sort)
    assert.equal(0, res.rc)
  end)

  it("10 MB to stdout and 10 MB to stderr at once: communicate does not deadlock", function()
    local res = run(function()
      local p = await(asyncio.create_subprocess_shell(
        "head -c 10485760 /dev/zero & head -c 10485760 /dev/zero >&2; wait",
        {stdout = "pipe", stderr = "pipe"}))
      local out, err = await(asyncio.wait_for(p:communicate(), 60))
      return {out = #out, err = #err, rc = p.returncode}
    end)
    assert.same({out = 10485760, err = 10485760, rc = 0}, res)
  end)

  it("yes | head: a reader that stops early", function()
    local n = run(function()
      local p = await(asyncio.create_subprocess_shell("yes | head -n 1000", {stdout = "pipe"}))
      local count = 0
      for _ in p.stdout:lines() do count = count + 1 end
      await(p:wait())
      return count
    end)
    assert.equal(1000, n)
  end)

  it("a process killed by a signal has a negative return code", function()
    local rc, rc2 = run(function()
      local p = await(asyncio.create_subprocess_exec("sleep", "30"))
      p:terminate()
      local p2 = await(asyncio.create_subprocess_exec("sh", "-c", "kill -KILL $$"))
      return await(p:wait()), await(p2:wait())
    end)
    assert.equal(-15, rc)
    assert.equal(-9, rc2)
  end)

  it("a program that is not there raises FileNotFoundError", function()
    local err = run(function()
      local ok, e = pcall(await, asyncio.create_subprocess_exec("/nonexistent/program"))
      assert.is_false(ok)
      return e
    end)
    assert.is_true(asyncio.FileNotFoundError:is(err), tostring(err))
    assert.equal("ENOENT", err.errno)
    assert.matches("%(create_subprocess_exec /nonexistent/program%)", tostring(err))
  end)

  it("a cwd that is not there is named as such, not as a missing program", function()
    local err = run(function()
      local ok, e = pcall(await, asyncio.create_subprocess_exec("ls", {cwd = "/nonexistent_dir"}))
      assert.is_false(ok)
      return e
    end)
    assert.is_true(asyncio.FileNotFoundError:is(err), tostring(err))
    assert.matches("%(cwd /nonexistent_dir of create_subprocess_exec ls%)", tostring(err))
    local file = os.tmpname()  -- a cwd that is a file, not a directory
    err = run(function()
      local ok, e = pcall(await, asyncio.create_subprocess_exec("ls", {cwd = file}))
      assert.is_false(ok)
      return e
    end)
    os.remove(file)
    assert.matches("%(cwd " .. file:gsub("%p", "%%%0") .. " of create_subprocess_exec ls%)",
      tostring(err))
  end)

  it("cancelling communicate leaves the process running and its pipes usable", function()
    local res = run(function()
      local p = await(asyncio.create_subprocess_exec("cat", {stdin = "pipe", stdout = "pipe"}))
      p.stdin:write("first\n")
      local t = asyncio.create_task(function() return await(p.stdout:readuntil("never")) end)
      await(asyncio.sleep(0.05))
      t:cancel()
      pcall(await, t)
      assert.is_nil(p.returncode)
      p.stdin:write("second\n")
      p.stdin:close()
      local rest = await(p.stdout:read())
      return {rest = rest, rc = await(p:wait())}
    end)
    assert.equal("first\nsecond\n", res.rest)
    assert.equal(0, res.rc)
  end)

  it("1,000 short processes in a row leave no descriptors and no zombies", function()
    local before, after, zombies = run(function()
      -- libuv sets up its child watcher, and a spare descriptor, on first use
      local first = await(asyncio.create_subprocess_exec("true", {stdout = "pipe"}))
      await(first.stdout:read())
      await(first:wait())
      local fds = support.fd_count()
      for _ = 1, 1000 do
        local p = await(asyncio.create_subprocess_exec("true", {stdout = "pipe"}))
        await(p.stdout:read())
        assert.equal(0, await(p:wait()))
      end
      -- and a few never awaited: reaped all the same
      for _ = 1, 5 do await(asyncio.create_subprocess_exec("true")) end
      await(asyncio.sleep(0.2))
      local z = support.sh(("ps -o stat= --ppid %d | grep -c Z"):format(support.pid()))
      return fds, support.fd_count(), tonumber(z)
    end)
    assert.equal(before, after)
    assert.equal(0, zombies)
  end)

  it("bad arguments name the function and the argument", function()
    run(function()
      assert.has_error(function() asyncio.create_subprocess_exec(42) end,
        "bad argument #1 to 'create_subprocess_exec' (string expected, got number)")
      assert.has_error(function() asyncio.create_subprocess_exec("ls", {stdout = "file"}) end,
        "bad argument #2 to 'create_subprocess_exec' (stdout must be \"pipe\", \"inherit\" or " ..
        "\"devnull\", not \"file\")")
      assert.has_error(function() asyncio.create_subprocess_shell("ls", {cwd = 1}) end,
        "bad argument #2 to 'create_subprocess_shell' (cwd must be a string)")
      local p = await(asyncio.create_subprocess_exec("true"))
      assert.has_error(function() p:send_signal("SIGNOPE") end,
        "bad argument #1 to 'send_signal' (unknown signal 'SIGNOPE')")
      assert.has_error(function() p:communicate("x") end,
        "communicate: input given but stdin is not a pipe")
      await(p:wait())
      p:kill()  -- exited already: nothing happens
    end)
  end)

  -- (review of 2026-12-07: send_signal said false, kill and terminate did
  -- nothing, while the child ran on)
  it("a child left running when its loop closed cannot be signalled: said so", function()
    local p = asyncio.run(function() return await(asyncio.create_subprocess_exec("sleep", "0.2")) end)
    for _, m in ipairs({"send_signal", "terminate", "kill"}) do
      local ok, err = pcall(p[m], p, m == "send_signal" and 0 or nil)
      assert.is_false(ok)
      assert.matches(m .. ": the process belongs to an event loop that is closed", err)
    end
  end)
end)
