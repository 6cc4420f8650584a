-- A minimal HTTP/1.1 server with keep-alive: good enough for curl and wrk.
--   GET /            "Hello, World!"
--   GET /bytes/N     N bytes of "x"
--   POST /echo       the request body back
-- Connections stay open between requests unless the client says
-- "Connection: close" (or speaks HTTP/1.0 without "keep-alive").
--
--   lua5.4 examples/http_hello.lua [port] [--workers N] [--tls CERT KEY]   (default 8080)
--   curl http://127.0.0.1:8080/        (with --tls: curl --cacert CA https://localhost:8080/)
-- --workers N serves on N processes (asyncio.cluster: the same command in
-- each, all on one port with reuse_port; Ctrl-C or SIGTERM stops them all).
--   > http = require "examples.http_hello"
--   > asyncio.run(http.main, {requests = 3})

local asyncio = require "asyncio"
local await = asyncio.await

local M = {}

local REASONS = {[200] = "OK", [400] = "Bad Request", [404] = "Not Found",
                 [405] = "Method Not Allowed", [413] = "Payload Too Large"}
local MAX_BODY = 64 * 1024 * 1024

local function respond(writer, status, body, keep)
  writer:write(("HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n")
    :format(status, REASONS[status], #body, keep and "" or "Connection: close\r\n"))
  writer:write(body)
end

-- Read one request: method, path, version, headers (lower-case names), or
-- nil at a clean EOF between requests.
local function read_request(reader)
  local line = await(reader:readline())
  if line == "" then return nil end
  local method, path, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)\r?\n$")
  if not method then return false end
  local headers = {}
  while true do
    local h = await(reader:readline())
    if h == "\r\n" or h == "\n" or h == "" then break end
    local name, value = h:match("^([^:]+):%s*(.-)%s*$")
    if name then headers[name:lower()] = value end
  end
  return method, path, version, headers
end

-- One connection: requests until the client closes or asks to.
local function handle(reader, writer)
  while true do
    local method, path, version, headers = read_request(reader)
    if method == nil then break end
    if method == false then respond(writer, 400, "bad request\n", false); break end
    local conn = (headers.connection or ""):lower()
    local keep = (version == "1.1" and conn ~= "close") or conn == "keep-alive"
    local length = tonumber(headers["content-length"] or "0")
    local body = ""
    if not length or length > MAX_BODY then respond(writer, 413, "too large\n", false); break end
    if length > 0 then
      if (headers.expect or ""):lower() == "100-continue" then
        writer:write("HTTP/1.1 100 Continue\r\n\r\n")
      end
      body = await(reader:readexactly(length))
    end
    local n = path:match("^/bytes/(%d+)$")
    if path == "/" and method == "GET" then respond(writer, 200, "Hello, World!", keep)
    elseif n and method == "GET" then respond(writer, 200, ("x"):rep(math.tointeger(n)), keep)
    elseif path == "/echo" and method == "POST" then respond(writer, 200, body, keep)
    elseif path == "/echo" or path == "/" then respond(writer, 405, "method not allowed\n", keep)
    else respond(writer, 404, "not found\n", keep) end
    await(writer:drain())
    if not keep then break end
  end
  writer:close()
end

-- Start the server; opts.reuse_port lets several processes share the port.
function M.serve(host, port, opts)
  return await(asyncio.start_server(handle, host or "127.0.0.1", port or 0, opts))
end

-- A demo: serve on a free port and make opts.requests requests on one
-- keep-alive connection; returns the bodies.
function M.main(opts)
  opts = opts or {}
  local server <close> = M.serve("127.0.0.1", 0)
  local port = server:sockets()[1]:getsockname()[2]
  local r, w = await(asyncio.open_connection("127.0.0.1", port))
  local bodies = {}
  for i = 1, opts.requests or 3 do
    w:write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    local status = await(r:readline())
    local length
    for h in r:lines() do
      if h == "\r" then break end
      length = tonumber(h:match("^Content%-Length: (%d+)")) or length
    end
    bodies[i] = await(r:readexactly(length))
    print(("%d: %s -> %s"):format(i, status:gsub("\r\n", ""), bodies[i]))
  end
  w:close()
  server:close()
  await(server:wait_closed())
  return bodies
end

local USAGE = "usage: http_hello.lua [PORT] [--workers N] [--tls CERT KEY]"

local function usage(why)
  io.stderr:write(USAGE, "\n", why and why .. "\n" or "")
  os.exit(2)
end

function M.script(args)
  local port, workers, tls = 8080, 1, nil
  local i = 1
  while i <= #args do
    if args[i] == "--workers" then
      workers = math.tointeger(tonumber(args[i + 1]))
      if not workers or workers < 1 then usage("--workers takes a positive integer") end
      i = i + 2
    elseif args[i] == "--tls" then  -- serve https with this certificate and key
      if not args[i + 2] then usage("--tls takes a certificate file and a key file") end
      tls = asyncio.ssl_context{mode = "server", certfile = args[i + 1], keyfile = args[i + 2]}
      i = i + 3
    else
      port = math.tointeger(tonumber(args[i])) or usage()
      i = i + 1
    end
  end
  -- each worker binds the port itself: port 0 would give each its own
  if workers > 1 and port == 0 then usage("--workers needs a fixed port, not 0") end
  local function serve()
    local server = M.serve("127.0.0.1", port, {reuse_port = true, ssl = tls})
    local id = asyncio.cluster.worker_id()
    print(("%s on 127.0.0.1:%d%s"):format(tls and "https" or "http", port,
      id and (" (worker %d)"):format(id) or ""))
    io.stdout:flush()
    await(server:serve_forever())
  end
  if workers == 1 then return asyncio.run(serve) end
  -- the way past one core: this program again in N processes on one port,
  -- each with these same arguments (asyncio.cluster)
  os.exit(asyncio.cluster.run{workers = workers, main = serve})
end

if (...) ~= "examples.http_hello" then M.script(arg or {}) end
return M
