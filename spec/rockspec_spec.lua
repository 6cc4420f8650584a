-- The rockspec installs offline into a tree (through the Makefile, which
-- finds libuv and OpenSSL with pkg-config), and a script runs against
-- that install alone (no checkout paths).
local support = require "spec.support"

describe("rockspec", function()
  it("installs with luarocks make into a tree that a script can use", function()
    local tmp = support.sh("mktemp -d"):gsub("%s+$", "")
    local cmd = table.concat({
      "set -e",
      "cp -r src lua rockspec Makefile " .. tmp .. "/",
      "cd " .. tmp,
      "luarocks --lua-version 5.4 --tree " .. tmp .. "/tree make rockspec/lua-asyncio-scm-1.rockspec >/dev/null",
      "rm -rf src lua build",  -- only the install is left
      "ls tree/share/lua/5.4/asyncio",
      "cd /",
      "LUA_PATH='" .. tmp .. "/tree/share/lua/5.4/?.lua;" .. tmp .. "/tree/share/lua/5.4/?/init.lua' " ..
      "LUA_CPATH='" .. tmp .. "/tree/lib/lua/5.4/?.so' lua5.4 -e '" ..
      "local asyncio = require \"asyncio\"; " ..
      "print(package.searchpath(\"asyncio.core\", package.cpath)); " ..
      "print(\"installed\", asyncio.run(function() " ..
      "  local q = asyncio.Queue(1); asyncio.create_task(function() asyncio.await(q:put(41)) end); " ..
      "  return asyncio.await(q:get()) + 1 end))'",
    }, " && ")
    local out, code = support.sh("bash -c " .. ("%q"):format(cmd))
    support.sh("rm -rf " .. tmp)
    assert.equal(0, code, out)
    assert.matches("installed\t42", out)
    assert.matches(tmp .. "/tree/lib/lua/5.4/asyncio/core.so", out, 1, true)
    for path in io.popen("ls lua/asyncio/*.lua"):lines() do  -- every module is installed
      assert.matches("\n" .. path:match("[^/]+$") .. "\n", out, 1, true)
    end
  end)
end)
