-- TLS against real programs: openssl s_server and s_client, curl, with a
-- certificate authority and certificates the spec makes with the openssl
-- command (Debian's openssl; scripts/setup.sh installs it).
local asyncio = require "asyncio"
local support = require "spec.support"
local await = asyncio.await

local LUA = support.LUA
local dir  -- the certificates
local pem = {}

-- A certificate for 'cn' with 'san', signed by the CA 'ca' (or self-signed):
-- its files in pem[name] and pem[name .. "_key"].
local function make_cert(name, cn, san, ca)
  pem[name], pem[name .. "_key"] = support.make_cert(dir, name, cn, san, ca)
end

-- Run 'fn' as the main task with a guard against a hang.
local function run(fn, ...) return support.run_within(60, fn, ...) end

local function server_ctx(verify)
  return asyncio.ssl_context{mode = "server", certfile = pem.server, keyfile = pem.server_key,
                             cafile = verify and pem.ca or nil, verify = verify}
end

local function client_ctx(opts)
  opts = opts or {}
  opts.cafile = opts.cafile or pem.ca
  return asyncio.ssl_context(opts)
end

-- A TLS echo server on a free port: each line comes back upper-cased;
-- "BYE" ends the connection.
local function echo_server(ctx, seen)
  return await(asyncio.start_server(function(r, w)
    if seen then seen[#seen + 1] = w:get_extra_info("peercert") or false end
    for line in r:lines() do
      w:write(line:upper() .. "\n")
      await(w:drain())
      if line == "bye" then break end
    end
  end, "127.0.0.1", 0, {ssl = ctx or server_ctx()}))
end

local function port_of(srv) return srv:sockets()[1]:getsockname()[2] end

-- A TLS server that reads one connection to its end (after 'delay' s): the
-- server, and a function that waits for that and gives how many bytes it
-- read (or its error, as a string).
local function reading_server(delay)
  local done, result = asyncio.Event(), nil
  local srv = await(asyncio.start_server(function(r)
    if delay then await(asyncio.sleep(delay)) end
    local ok, d = pcall(await, r:read())
    result = ok and #d or tostring(d)
    done:set()
  end, "127.0.0.1", 0, {ssl = server_ctx()}))
  return srv, function() await(done:wait()); return result end
end

setup(function()
  dir = support.sh("mktemp -d"):gsub("%s+$", "")
  make_cert("ca", "asyncio test CA")
  make_cert("server", "localhost", "DNS:localhost,IP:127.0.0.1", "ca")
  make_cert("client", "a client", "DNS:client", "ca")
  make_cert("other_ca", "another CA")
  make_cert("stranger", "localhost", "DNS:localhost,IP:127.0.0.1", "other_ca")
end)

teardown(function() support.sh("rm -rf " .. dir) end)

describe("ssl_context", function()
  it("rejects bad options with an error naming the argument", function()
    assert.has_error(function() asyncio.ssl_context{mode = "both"} end,
      "bad argument #1 to 'ssl_context' (mode must be \"client\" or \"server\")")
    assert.has_error(function() asyncio.ssl_context{mode = "server"} end,
      "bad argument #1 to 'ssl_context' (a server needs certfile)")
    assert.has_error(function() asyncio.ssl_context{verfy = true} end,
      "bad argument #1 to 'ssl_context' (unknown option 'verfy')")
    assert.has_error(function() asyncio.ssl_context(42) end,
      "bad argument #1 to 'ssl_context' (table expected, got number)")
  end)

  it("raises FileNotFoundError for a missing file and SSLError for a key that does not match", function()
    local ok, err = pcall(asyncio.ssl_context, {cafile = dir .. "/nowhere.pem"})
    assert.is_false(ok)
    assert.is_true(asyncio.FileNotFoundError:is(err))
    ok, err = pcall(asyncio.ssl_context, {mode = "server", certfile = pem.server, keyfile = pem.ca_key})
    assert.is_false(ok)
    assert.is_true(asyncio.SSLError:is(err))
    assert.matches("cannot load keyfile '.*ca.key': key values mismatch", tostring(err))
    ok, err = pcall(asyncio.ssl_context, {cafile = pem.server_key})
    assert.is_false(ok)
    assert.is_true(asyncio.SSLError:is(err))
  end)

  it("checks opts.ssl where it is used", function()
    run(function()
      local cctx = client_ctx()
      assert.has_error(function() asyncio.start_server(print, "127.0.0.1", 0, {ssl = cctx}) end,
        "bad argument #4 to 'start_server' (ssl must be a server context (ssl_context{mode = \"server\"}))")
      assert.has_error(function() asyncio.open_connection("127.0.0.1", 1, {ssl = "yes"}) end,
        "bad argument #3 to 'open_connection' (ssl must be an SSLContext or true " ..
        "(asyncio.SSLContext expected, got string))")
      assert.has_error(function() asyncio.open_connection("127.0.0.1", 1, {server_hostname = "x"}) end,
        "bad argument #3 to 'open_connection' (server_hostname is only meaningful with ssl)")
      assert.has_error(function()
        asyncio.open_connection("127.0.0.1", 1, {ssl = cctx, ssl_handshake_timeout = -1})
      end, "bad argument #3 to 'open_connection' (ssl_handshake_timeout must be a positive number of seconds)")
    end)
  end)

  it("refuses an empty server_hostname where the context verifies (it would check no name)", function()
    run(function()
      local empty = "server_hostname is empty: the certificate's name could not be checked"
      assert.has_error(function()
        asyncio.open_connection("127.0.0.1", 1, {ssl = client_ctx(), server_hostname = ""})
      end, "bad argument #3 to 'open_connection' (" .. empty .. ")")
      assert.has_error(function()
        asyncio.open_unix_connection("/nonexistent", {ssl = true, server_hostname = ""})
      end, "bad argument #2 to 'open_unix_connection' (" .. empty .. ")")
      local srv = await(asyncio.start_server(function(_, w) w:close() end, "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2]))
      assert.has_error(function() w:start_tls(client_ctx(), {server_hostname = ""}) end,
        "bad argument #3 to 'start_tls' (" .. empty .. ")")
      -- without verification there is no name to check: "" is accepted (the
      -- handshake then fails: this server closes without speaking TLS)
      local ok, err = asyncio.pcall(await, w:start_tls(client_ctx{verify = false},
        {server_hostname = ""}))
      assert.is_false(ok)
      assert.is_nil(tostring(err):find("server_hostname", 1, true), tostring(err))
      w:close()
      srv:close()
      assert.is_truthy(r)
    end)
  end)
end)

describe("a TLS client", function()
  local port, pid
  setup(function()
    port = support.free_port()
    pid = support.spawn(("openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -rev")
      :format(port, pem.server, pem.server_key))
    support.run(support.wait_port, port)
  end)
  teardown(function() support.kill(pid) end)

  it("talks to openssl s_server (which sends each line back reversed)", function()
    local got = run(function()
      local r, w = await(asyncio.open_connection("127.0.0.1", port,
        {ssl = client_ctx(), server_hostname = "localhost"}))
      local cipher = w:get_extra_info("cipher")
      local cert = w:get_extra_info("peercert")
      w:write("hello, tls\n")
      local line = await(r:readline())
      w:close()
      await(w:wait_closed())
      return {line = line, cipher = cipher, cert = cert, ctx = w:get_extra_info("sslcontext")}
    end)
    assert.equal("slt ,olleh\n", got.line)
    assert.matches("^TLS", got.cipher[2])
    assert.is_true(got.cipher[3] >= 128)
    assert.equal("/CN=localhost", got.cert.subject)
    assert.equal("/CN=asyncio test CA", got.cert.issuer)
    assert.equal("client", got.ctx.mode)
  end)

  it("checks the name: the address itself matches, a wrong hostname fails with SSLCertVerificationError", function()
    local res = run(function()
      local r, w = await(asyncio.open_connection("127.0.0.1", port, {ssl = client_ctx()}))
      w:write("ip\n")
      local line = await(r:readline())
      w:close()
      local ok, err = pcall(await, asyncio.open_connection("127.0.0.1", port,
        {ssl = client_ctx(), server_hostname = "example.org"}))
      return {line = line, ok = ok, err = err}
    end)
    assert.equal("pi\n", res.line)
    assert.is_false(res.ok)
    assert.is_true(asyncio.SSLCertVerificationError:is(res.err))
    assert.is_true(asyncio.SSLError:is(res.err) and asyncio.OSError:is(res.err))
    assert.equal("ESSL", res.err.errno)
    assert.matches("certificate verify failed: hostname mismatch", res.err.message, 1, true)
  end)

  it("fails with SSLCertVerificationError against a CA it does not trust (and with ssl = true)", function()
    local res = run(function()
      local out = {}
      for i, ssl in ipairs({client_ctx{cafile = pem.other_ca}, true}) do
        local ok, err = pcall(await, asyncio.open_connection("127.0.0.1", port,
          {ssl = ssl, server_hostname = "localhost"}))
        out[i] = {ok = ok, err = err}
      end
      return out
    end)
    for i = 1, 2 do
      assert.is_false(res[i].ok)
      assert.is_true(asyncio.SSLCertVerificationError:is(res[i].err), tostring(res[i].err))
      assert.matches("unable to get local issuer certificate", res[i].err.message, 1, true)
    end
  end)

  it("connects without verification when the context says verify = false", function()
    local line = run(function()
      local r, w = await(asyncio.open_connection("127.0.0.1", port,
        {ssl = asyncio.ssl_context{verify = false}, server_hostname = "anything"}))
      w:write("abc\n")
      local l = await(r:readline())
      w:close()
      return l
    end)
    assert.equal("cba\n", line)
  end)
end)

describe("a TLS server", function()
  it("serves openssl s_client", function()
    local out = run(function()
      local srv <close> = echo_server()
      local p = await(asyncio.create_subprocess_shell(
        ("printf 'hello\\nbye\\n' | env -u LD_PRELOAD openssl s_client -connect 127.0.0.1:%d " ..
         "-CAfile %s -verify_hostname localhost -verify_return_error -ign_eof -quiet 2>&1")
        :format(port_of(srv), pem.ca), {stdout = "pipe"}))
      local text = await(p:communicate())
      return {text = text, code = p.returncode}
    end)
    assert.equal(0, out.code, out.text)
    assert.matches("HELLO\nBYE\n", out.text, 1, true)
  end)

  it("s_client that does not trust our certificate fails, and the server goes on serving", function()
    local out = run(function()
      local srv <close> = echo_server(asyncio.ssl_context{mode = "server", certfile = pem.stranger,
                                                           keyfile = pem.stranger_key})
      local p = await(asyncio.create_subprocess_shell(
        ("echo hi | env -u LD_PRELOAD openssl s_client -connect 127.0.0.1:%d -CAfile %s " ..
         "-verify_return_error -quiet 2>&1"):format(port_of(srv), pem.ca), {stdout = "pipe"}))
      local text = await(p:communicate())
      local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv),
        {ssl = client_ctx{cafile = pem.other_ca}, server_hostname = "localhost"}))
      w:write("still\n")
      local line = await(r:readline())
      w:close()
      srv:close()
      await(srv:wait_closed())
      return {text = text, code = p.returncode, line = line}
    end)
    assert.is_not.equal(0, out.code)
    assert.matches("verify", out.text)
    assert.equal("STILL\n", out.line)
  end)

  it("drops a client that is not speaking TLS without calling client_cb or reporting it", function()
    local res = run(function()
      local calls, reports = 0, {}
      asyncio.get_running_loop():set_exception_handler(function(_, ctx) reports[#reports + 1] = ctx end)
      local srv <close> = await(asyncio.start_server(function() calls = calls + 1 end,
        "127.0.0.1", 0, {ssl = server_ctx()}))
      local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv)))
      w:write("GET / HTTP/1.0\r\n\r\n")
      local answer = await(r:read())  -- the server's alert, then EOF
      w:close()
      return {calls = calls, reports = #reports, eof = r:at_eof(), answer = answer}
    end)
    assert.equal(0, res.calls)
    assert.equal(0, res.reports)
    assert.is_true(res.eof)
  end)

  it("requires a client certificate when the context verifies clients", function()
    local res = run(function()
      local seen = {}
      local srv <close> = echo_server(server_ctx(true), seen)
      local port = port_of(srv)
      local ctx = client_ctx{certfile = pem.client, keyfile = pem.client_key}
      local r, w = await(asyncio.open_connection("127.0.0.1", port,
        {ssl = ctx, server_hostname = "localhost"}))
      w:write("with cert\n")
      local line = await(r:readline())
      w:close()
      -- without one: TLS 1.3 finishes the client's handshake first, so the
      -- refusal comes with the first read
      local ok, err = pcall(function()
        local r2, w2 = await(asyncio.open_connection("127.0.0.1", port,
          {ssl = client_ctx(), server_hostname = "localhost"}))
        local _ <close> = w2
        w2:write("without\n")
        return await(r2:readline())
      end)
      return {line = line, seen = seen, ok = ok, err = err}
    end)
    assert.equal("WITH CERT\n", res.line)
    assert.equal("/CN=a client", res.seen[1].subject)
    assert.is_false(res.ok)
    assert.is_true(asyncio.SSLError:is(res.err), tostring(res.err))
    assert.matches("certificate required", res.err.message)
  end)
end)

describe("TLS streams", function()
  it("a client that writes and closes at once loses nothing (the session tickets it never read)", function()
    -- a TLS 1.3 server sends session tickets after the handshake; the client
    -- never reads them, and a close() with unread bytes sent a reset that
    -- dropped the end of the request: the server got ConnectionResetError
    local got = run(function()
      local srv <close>, read_all = reading_server()
      local _, w = await(asyncio.open_connection("127.0.0.1", port_of(srv), {ssl = client_ctx()}))
      w:write(string.rep("q", 200000) .. "!")
      w:close()
      await(w:wait_closed())
      return read_all()
    end)
    assert.equal(200001, got)
  end)

  it("a TLS writer closed and then collected still waits for its peer; abort_clients ends the wait", function()
    local got = run(function()
      local srv, read_all = reading_server(0.05)
      do
        local _, w = await(asyncio.open_connection("127.0.0.1", port_of(srv), {ssl = client_ctx()}))
        w:write(string.rep("q", 200000) .. "!")
        w:close()
      end
      collectgarbage()
      collectgarbage()  -- collected in its grace: it was closed at once, with a reset
      local result = read_all()
      srv:close()
      -- a server whose clients never close: its side waits in the grace; abort ends it now
      local srv2 = await(asyncio.start_server(function(r, w)
        await(r:readexactly(5))
        w:write("resp")
        w:close()
        await(w:wait_closed())
      end, "127.0.0.1", 0, {ssl = server_ctx()}))
      local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv2), {ssl = client_ctx()}))
      w:write("hello")
      await(r:readexactly(4))
      await(asyncio.sleep(0.1))
      local closed = false
      local waiter = asyncio.create_task(function() await(srv2:wait_closed()); closed = true end)
      srv2:close()
      srv2:abort_clients()
      local ticks = 0  -- counted in loop turns, not time: the grace would take 10 s
      while not closed and ticks < 5000 do await(asyncio.sleep(0)); ticks = ticks + 1 end
      waiter:cancel()
      w:close()
      return {result, closed}
    end)
    assert.same({200001, true}, got)
  end)

  it("behave as TCP: 8 MB each way with drain, readexactly, write_eof and EOF", function()
    local res = run(function()
      local srv <close> = await(asyncio.start_server(function(r, w)
        local n = 0
        while true do  -- echo in chunks until the client's EOF (its close_notify)
          local chunk = await(r:read(100000))
          if chunk == "" then break end
          n = n + #chunk
          w:write(chunk)
          await(w:drain())
        end
        w:write(("total %d\n"):format(n))
      end, "127.0.0.1", 0, {ssl = server_ctx()}))
      local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv),
        {ssl = client_ctx(), server_hostname = "localhost"}))
      local block = ("0123456789abcdef"):rep(4096)  -- 64 KiB
      local reader = asyncio.create_task(function()
        local parts = {}
        for i = 1, 128 do parts[i] = await(r:readexactly(#block)) end
        return table.concat(parts)
      end)
      for _ = 1, 128 do
        w:write(block)
        await(w:drain())
      end
      local echoed = await(reader)
      assert(w:can_write_eof())
      w:write_eof()
      local total = await(r:readline())
      local rest = await(r:read())
      w:close()
      await(w:wait_closed())
      return {ok = echoed == block:rep(128), n = #echoed, total = total, rest = rest,
              eof = r:at_eof()}
    end)
    assert.equal(8 * 1024 * 1024, res.n)
    assert.is_true(res.ok)
    assert.equal("total 8388608\n", res.total)
    assert.equal("", res.rest)
    assert.is_true(res.eof)
  end)

  it("a cancelled read loses nothing", function()
    local res = run(function()
      local srv <close> = echo_server()
      local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv),
        {ssl = client_ctx(), server_hostname = "localhost"}))
      local t = asyncio.create_task(function() return await(r:readline()) end)
      await(asyncio.sleep(0.01))
      t:cancel()
      local ok = pcall(await, t)
      w:write("kept\n")
      local line = await(r:readline())
      w:close()
      srv:close()
      await(srv:wait_closed())
      return {ok = ok, line = line}
    end)
    assert.is_false(res.ok)
    assert.equal("KEPT\n", res.line)
  end)

  it("100 connections at once each get their own answers", function()
    local got = run(function()
      local srv <close> = echo_server()
      local ctx = client_ctx()
      local tasks = {}
      for i = 1, 100 do
        tasks[i] = asyncio.create_task(function()
          local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv),
            {ssl = ctx, server_hostname = "localhost"}))
          local lines = {}
          for k = 1, 10 do
            w:write(("conn %d msg %d\n"):format(i, k))
            lines[k] = await(r:readline())
          end
          w:close()
          return table.concat(lines)
        end)
      end
      local all = await(asyncio.gather(table.unpack(tasks)))
      srv:close()
      await(srv:wait_closed())
      return all
    end)
    for i = 1, 100 do
      local want = {}
      for k = 1, 10 do want[k] = ("CONN %d MSG %d\n"):format(i, k) end
      assert.equal(table.concat(want), got[i])
    end
  end)

  it("upgrade in place with start_tls (STARTTLS)", function()
    local res = run(function()
      local srv <close> = await(asyncio.start_server(function(r, w)
        assert(await(r:readline()) == "STARTTLS\n")
        w:write("GO\n")
        await(w:drain())
        await(w:start_tls(server_ctx()))
        local line = await(r:readline())
        w:write("secret " .. line)
      end, "127.0.0.1", 0))
      local r, w = await(asyncio.open_connection("127.0.0.1", port_of(srv)))
      assert.is_nil(w:get_extra_info("cipher"))
      w:write("STARTTLS\n")
      assert(await(r:readline()) == "GO\n")
      await(w:start_tls(client_ctx(), {server_hostname = "localhost"}))
      w:write("words\n")
      local line = await(r:readline())
      local again = pcall(await, w:start_tls(client_ctx()))
      w:close()
      return {line = line, cipher = w:get_extra_info("cipher"), again = again}
    end)
    assert.equal("secret words\n", res.line)
    assert.is_false(res.again)
  end)

  it("a server that never answers the handshake times out with ConnectionAbortedError", function()
    local res = run(function()
      local srv <close> = await(asyncio.start_server(function(r) await(r:read()) end, "127.0.0.1", 0))
      local ok, err = pcall(await, asyncio.open_connection("127.0.0.1", port_of(srv),
        {ssl = client_ctx(), server_hostname = "localhost", ssl_handshake_timeout = 0.2}))
      srv:close_clients()
      return {ok = ok, err = err}
    end)
    assert.is_false(res.ok)
    assert.is_true(asyncio.ConnectionAbortedError:is(res.err), tostring(res.err))
    assert.matches("TLS handshake is taking longer than 0.2 seconds", res.err.message, 1, true)
    -- the line of the program that awaited, as the library's other errors say
    assert.matches("^[^:]*tls_spec%.lua:%d+: ConnectionAbortedError: TLS handshake", tostring(res.err))
  end)
end)

describe("examples/http_hello.lua over TLS against curl", function()
  local port, pid
  setup(function()
    port = support.free_port()
    pid = support.spawn(("%s examples/http_hello.lua %d --tls %s %s")
      :format(LUA, port, pem.server, pem.server_key))
    support.run(support.wait_port, port)
  end)
  teardown(function() support.kill(pid) end)

  it("answers https requests, two on one connection", function()
    local url = ("https://localhost:%d/"):format(port)
    local out, code = support.sh(("curl -sv --max-time 30 --cacert %s --resolve localhost:%d:127.0.0.1 " ..
      "%s %sbytes/3 2>&1"):format(pem.ca, port, url, url))
    assert.equal(0, code, out)
    assert.matches("Hello, World!", out, 1, true)
    assert.matches("SSL connection using TLS", out, 1, true)
    assert.matches("Re%-using existing connection", out)
  end)

  it("curl that does not trust the CA fails", function()
    local out, code = support.sh(("curl -s --max-time 30 https://127.0.0.1:%d/ 2>&1"):format(port))
    assert.equal(60, code, out)  -- CURLE_PEER_FAILED_VERIFICATION
  end)
end)

-- Found by the review of TLS, UDP and name lookups (2026-12-07): each
-- failed before its fix.
describe("TLS and name lookups after the review of 2026-12-07", function()
  it("getaddrinfo of an empty or over-long name is a gaierror, as one the system does not know", function()
    local errs = run(function()
      local out = {}
      for i, host in ipairs({"", ("a"):rep(300)}) do
        out[i] = select(2, pcall(await, asyncio.getaddrinfo(host, 80)))
      end
      return out
    end)
    for _, e in ipairs(errs) do
      assert.is_true(asyncio.gaierror:is(e), tostring(e))
      assert.equal("EAI_NONAME", e.errno)
    end
  end)

  -- A client connection to 'srv', with stream options 'opts'.
  local function connect(srv, opts)
    opts = opts or {}
    opts.ssl, opts.server_hostname = client_ctx(), "localhost"
    return await(asyncio.open_connection("127.0.0.1", port_of(srv), opts))
  end

  it("readexactly of bytes the engine holds while reading is paused does not wait for more", function()
    local frames, size = 8, 150000  -- each frame over the default high mark (2 x 64 KiB)
    local got = run(function()
      local srv = await(asyncio.start_server(function(r, w)
        for i = 1, frames do w:write(string.pack(">I4", size) .. string.char(64 + i):rep(size)) end
        await(w:drain())
        await(r:read())
      end, "127.0.0.1", 0, {ssl = server_ctx()}))
      local r, w = connect(srv)
      await(asyncio.sleep(0.2))  -- the frames arrive before the reads
      local out = {}
      for i = 1, frames do
        local n = string.unpack(">I4", await(asyncio.wait_for(r:readexactly(4), 30)))
        local frame = await(asyncio.wait_for(r:readexactly(n), 30))
        out[i] = #frame == size and frame == string.char(64 + i):rep(size)
      end
      w:close()
      support.finish_server(srv, true)
      return out
    end)
    assert.same({true, true, true, true, true, true, true, true}, got)
  end)

  it("readline finds a line whose end is in a record the engine holds", function()
    local got = run(function()
      local srv = await(asyncio.start_server(function(r, w)
        for c in ("abcdefghi\nABCDEFGHIJ\n"):gmatch(".") do w:write(c) end  -- a record a byte
        await(w:drain())
        await(r:read())
      end, "127.0.0.1", 0, {ssl = server_ctx()}))
      local r, w = connect(srv, {limit = 10})
      await(asyncio.sleep(0.2))  -- everything has arrived
      local a = await(asyncio.wait_for(r:readline(), 30))
      local b = await(asyncio.wait_for(r:readline(), 30))
      w:close()
      support.finish_server(srv, true)
      return {a, b}
    end)
    assert.same({"abcdefghi\n", "ABCDEFGHIJ\n"}, got)
  end)

  it("a finalizer may ask a finalized TLS writer that failed for its buffer size", function()
    local out = support.lua_run(([[
      local asyncio = require "asyncio"
      local await = asyncio.await
      asyncio.run(function()
        local sctx = asyncio.ssl_context{mode = "server", certfile = %q, keyfile = %q,
          cafile = %q, verify = true}  -- wants a client certificate: the client's TLS fails
        local srv = await(asyncio.start_server(function(r) await(r:read()) end, "127.0.0.1", 0,
          {ssl = sctx}))
        local holder = setmetatable({}, {__gc = function(h)  -- finalized after the stream
          print("size", pcall(h.w.get_write_buffer_size, h.w))
        end})
        do
          local r, w = await(asyncio.open_connection("127.0.0.1", srv:sockets()[1]:getsockname()[2],
            {ssl = asyncio.ssl_context{cafile = %q}, server_hostname = "localhost"}))
          pcall(await, r:read())
          w:write("x")  -- fails in the engine: a TLS write error
          w:close()
          holder.w = w
        end
        holder = nil
        collectgarbage(); collectgarbage()
        print("survived")
        srv:close(); srv:abort_clients()
      end)
    ]]):format(pem.server, pem.server_key, pem.ca, pem.ca))
    assert.matches("size\ttrue\t%d+\n", out)
    assert.matches("survived", out, 1, true)
  end)

  it("an encrypted key takes the password option, and without it fails instead of prompting", function()
    local enc = dir .. "/server_enc.key"
    local out, code = support.sh(("openssl rsa -in %s -aes256 -passout pass:secret -out %s 2>&1")
      :format(pem.server_key, enc))
    assert.equal(0, code, out)
    local function ctx(password)
      return asyncio.ssl_context{mode = "server", certfile = pem.server, keyfile = enc,
                                 password = password}
    end
    -- (stdin is not a terminal here, but OpenSSL's own prompt reads /dev/tty)
    local ok, err = pcall(ctx)
    assert.is_false(ok)
    assert.is_true(asyncio.SSLError:is(err))
    assert.matches("cannot load keyfile '[^']*': it is encrypted: give the password option",
      tostring(err))
    err = select(2, pcall(ctx, "wrong"))
    assert.matches("wrong password, or a damaged key", tostring(err))
    -- longer than OpenSSL takes: said so (the openssl command cuts it short)
    err = select(2, pcall(ctx, ("p"):rep(1025)))
    assert.matches("the password is longer than OpenSSL takes %(1024 bytes%)", tostring(err))
    local got = run(function()
      local srv = echo_server(ctx("secret"))
      local r, w = connect(srv)
      w:write("hello\n")
      local line = await(r:readline())
      w:close()
      support.finish_server(srv, true)
      return line
    end)
    assert.equal("HELLO\n", got)
    assert.has_error(function() ctx(5) end,
      "bad argument #1 to 'ssl_context' (password must be a string (string expected, got number))")
  end)

  it("start_tls after write_eof fails at once; a second start_tls names the program's line", function()
    local res = run(function()
      local srv = echo_server()
      local _, w = await(asyncio.open_connection("127.0.0.1", port_of(srv)))
      w:write_eof()
      local ok, err = pcall(await, w:start_tls(client_ctx(), {server_hostname = "localhost"}))
      w:close()
      local _, w2 = connect(srv)
      local line = debug.getinfo(1, "l").currentline + 1
      local ok2, err2 = pcall(await, w2:start_tls(client_ctx(), {server_hostname = "localhost"}))
      w2:close()
      support.finish_server(srv, true)
      return {ok = ok, err = tostring(err), ok2 = ok2, err2 = tostring(err2), line = line}
    end)
    assert.is_false(res.ok)
    assert.matches("start_tls: the stream is shut for writing %(write_eof%)", res.err)
    assert.is_false(res.ok2)
    assert.matches("tls_spec%.lua:" .. res.line .. ": start_tls: the stream uses TLS already", res.err2)
  end)
end)
