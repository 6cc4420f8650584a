---@meta asyncio

-- LuaCATS definitions of lua-asyncio's public API, for lua-language-server
-- (completion, signatures, typo warnings). Never required at run time: point
-- the server at this directory ("workspace.library": ["<checkout>/types"]
-- in .luarc.json). docs/api.md is the reference; spec/types_spec.lua checks
-- that every public function and method is annotated here.

-- Shared types ----------------------------------------------------------------

--- What `asyncio.await` takes: a future, a task, a coroutine object, or
--- anything whose metatable has `__await`. `T` is what awaiting it gives
--- (its first result; the comment of each `@return` says what all of them are).
---@class asyncio.Awaitable<T>

--- A coroutine object: what calling an async function returns; an awaitable
--- that has not started, awaited (or given to a task) once.
---@class asyncio.Coroutine: asyncio.Awaitable<any>

--- What `lock:acquire()` and `sem:acquire()` result in: a true value that
--- releases the lock (or semaphore) when closed, as a `<close>` variable.
---@class asyncio.Held

--- `{host, port}`
---@alias asyncio.Address {[1]: string, [2]: integer}

--- A signal name (`"SIGTERM"`, `"TERM"`) or number.
---@alias asyncio.Signal string|integer

---@alias asyncio.ReturnWhen "FIRST_COMPLETED"|"FIRST_EXCEPTION"|"ALL_COMPLETED"

---@alias asyncio.LinesFormat
---| "l" # each line without its "\n" (the default)
---| "L" # with it

---@alias asyncio.Stdio
---| "inherit" # the parent's (the default)
---| "pipe" # a pipe: a StreamWriter (stdin) or StreamReader (stdout, stderr)
---| "devnull" # /dev/null
---| "stdout" # stderr only: into stdout's pipe or file

---@alias asyncio.FileMode "r"|"w"|"a"|"r+"|"w+"|"a+"|"rb"|"wb"|"ab"|"r+b"|"w+b"|"a+b"|"rb+"|"wb+"|"ab+"

---@alias asyncio.Whence "set"|"cur"|"end"

-- Options tables. Every one refuses a key it does not know ("unknown
-- option"), hence (exact).

--- Loop options: `new_event_loop(opts)`, `run(main, opts)`.
---@class (exact) asyncio.LoopOptions
---@field clock? "real"|"virtual" # "virtual": time jumps to the next deadline when every task waits (default "real")
---@field debug? boolean # debug mode (default: the ASYNCIO_DEBUG environment variable)
---@field slow_callback_duration? number # seconds a step may hold the loop in debug mode (default 0.1)

--- `create_task(coro, opts)`, `loop:create_task(coro, opts)`, `tg:create_task(coro, opts)`.
---@class (exact) asyncio.TaskOptions
---@field name? any # the task's name (default "Task-<n>")

---@class (exact) asyncio.GatherOptions
---@field return_exceptions? boolean # errors go in the list (positions in `failed`) instead of being raised

---@class (exact) asyncio.WaitOptions
---@field return_when? asyncio.ReturnWhen # default ALL_COMPLETED
---@field timeout? number # seconds; stop waiting then (nothing is cancelled)

---@class (exact) asyncio.AsCompletedOptions
---@field timeout? number # seconds; later awaitables raise TimeoutError

---@class (exact) asyncio.OpenConnectionOptions
---@field limit? integer # the reader's buffer limit (default 65536)
---@field local_addr? asyncio.Address # bind before connecting
---@field family? 4|6
---@field ssl? asyncio.SSLContext|boolean # a client context, or true for the default one
---@field server_hostname? string # the name for SNI and the certificate check (default: host)
---@field ssl_handshake_timeout? number # seconds (default 60)
---@field happy_eyeballs_delay? number # accepted and ignored

---@class (exact) asyncio.OpenUnixConnectionOptions
---@field limit? integer # the reader's buffer limit (default 65536)
---@field ssl? asyncio.SSLContext|boolean # a client context, or true for the default one
---@field server_hostname? string # the name the certificate must carry (none: no name check)
---@field ssl_handshake_timeout? number # seconds (default 60)

---@class (exact) asyncio.StartServerOptions
---@field backlog? integer # default 100
---@field reuse_port? boolean # SO_REUSEPORT
---@field limit? integer # the readers' buffer limit (default 65536)
---@field family? 4|6
---@field ssl? asyncio.SSLContext # a server context
---@field ssl_handshake_timeout? number # seconds (default 60)

---@class (exact) asyncio.StartUnixServerOptions
---@field backlog? integer # default 100
---@field limit? integer # the readers' buffer limit (default 65536)
---@field ssl? asyncio.SSLContext # a server context
---@field ssl_handshake_timeout? number # seconds (default 60)

---@class (exact) asyncio.StartTLSOptions
---@field server_hostname? string # with a client context: the name to check (none: no name check)
---@field ssl_handshake_timeout? number # seconds (default 60)

---@class (exact) asyncio.GetaddrinfoOptions
---@field family? 4|6
---@field type? "stream"|"dgram"
---@field passive? boolean

---@class (exact) asyncio.SSLContextOptions
---@field mode? "client"|"server" # default "client"
---@field cafile? string # PEM file of the CAs to trust (a client without it: the system's)
---@field certfile? string # PEM certificate (chain); a server needs it
---@field keyfile? string # PEM private key (default: certfile)
---@field verify? boolean # client: check the server (default true); server: require a client cert (default false)

---@class (exact) asyncio.OpenUDPOptions
---@field local_addr? asyncio.Address # default: any address, a free port
---@field remote_addr? asyncio.Address # connect the endpoint (send; only its datagrams are received)
---@field reuse_port? boolean # SO_REUSEADDR
---@field broadcast? boolean

---@class (exact) asyncio.SubprocessOptions
---@field stdin? asyncio.Stdio
---@field stdout? asyncio.Stdio
---@field stderr? asyncio.Stdio
---@field cwd? string
---@field env? table<string, string|number> # the whole environment
---@field limit? integer # the pipes' reader limit
---@field start_new_session? boolean # the child calls setsid(): see send_signal_group
---@field process_group? integer # 0 only: a group of its own (as start_new_session)

--- `cluster.run(opts)`.
---@class (exact) asyncio.ClusterOptions
---@field workers integer # how many worker processes
---@field main fun(id: integer): any # what each worker runs, as asyncio.run(main, id)
---@field argv? string[] # the workers' command (default: this program's, from arg)
---@field min_uptime? number # a worker that dies sooner is a quick death (default 1 s)
---@field max_restarts? integer # quick deaths in a row restarted before giving up (default 5)
---@field stop_timeout? number # seconds after a forwarded stop before SIGKILL (default 10)

-- Results -------------------------------------------------------------------

--- What a gather results in: the first result of each awaitable, in order.
---@class asyncio.GatherResult
---@field n integer # the count (nil results keep their place)
---@field failed? table<integer, true> # with return_exceptions: the positions that hold an error
---@field [integer] any

--- What the loop's exception handler gets.
---@class asyncio.ExceptionContext
---@field message string
---@field exception? any
---@field failed? boolean # the error is a raised nil
---@field task? asyncio.Task
---@field future? asyncio.Future
---@field callback? function
---@field handle? asyncio.Handle
---@field traceback? string
---@field seconds? number # debug mode: how long the slow step took

---@class asyncio.AddrInfo
---@field family 4|6
---@field host string
---@field port integer
---@field socktype "stream"|"dgram"|"raw"

---@class asyncio.Stat
---@field size integer
---@field mode integer
---@field type string # "file", "directory", "link", ...
---@field nlink integer
---@field uid integer
---@field gid integer
---@field ino integer
---@field dev integer
---@field mtime number
---@field atime number
---@field ctime number

---@class asyncio.DirEntry
---@field name string
---@field type string # "file", "directory", "link", ...


-- The module --------------------------------------------------------------

---@class asyncio
---@field _VERSION string # "lua-asyncio 0.1.0"
---@field FIRST_COMPLETED "FIRST_COMPLETED"
---@field FIRST_EXCEPTION "FIRST_EXCEPTION"
---@field ALL_COMPLETED "ALL_COMPLETED"
local asyncio = {}

-- Running

--- Runs `main` as the main task on a new loop until it is done, cancels what
--- is left, closes the loop and returns `main`'s results (or raises its error).
--- `main`: a coroutine object, an async function or a function (called with
--- `...`). `run(main, opts)` with `opts` a table of loop options only gives
--- them to the loop. Ctrl-C raises `KeyboardInterrupt`; a main that waits for
--- what nothing can complete raises a deadlock error.
---@param main asyncio.Coroutine|function
---@param ... any # main's arguments, or one asyncio.LoopOptions
---@return any ... # main's results
---@overload fun(main: asyncio.Coroutine|function, opts: asyncio.LoopOptions): any
function asyncio.run(main, ...) end

--- A new, not running event loop.
---@param opts? asyncio.LoopOptions
---@return asyncio.EventLoop
function asyncio.new_event_loop(opts) end

--- The running loop; error `no running event loop` when none is.
---@return asyncio.EventLoop
function asyncio.get_running_loop() end

--- The clock of `loop:time()`, in seconds, usable without a loop.
---@return number
function asyncio.monotonic() end

-- Coroutines and await

--- An async function: calling it returns a coroutine object (not started).
--- Where a function is accepted (`run`, `create_task`) it runs `fn` directly.
---@param fn function
---@return fun(...: any): asyncio.Coroutine
function asyncio.async(fn) end

--- Suspends the current task until `aw` is done; returns all its results or
--- raises its error (the same value). Only inside a task; one awaitable.
---@async
---@generic T
---@param aw asyncio.Awaitable<T>
---@return T # its first result
---@return any ... # the rest of its results
function asyncio.await(aw) end

--- Is `x` a coroutine object?
---@param x any
---@return boolean
function asyncio.iscoroutine(x) end

--- Is `f` an async function (made by `asyncio.async`)?
---@param f any
---@return boolean
function asyncio.iscoroutinefunction(f) end

--- Is `x` a future (a Future, a Task, a gather)?
---@param x any
---@return boolean
function asyncio.isfuture(x) end

--- `pcall` that lets `CancelledError` and `KeyboardInterrupt` through (raised
--- again, untouched). Use it around `await` instead of `pcall`.
---@param fn function
---@param ... any
---@return boolean ok
---@return any ... # fn's results, or its error
function asyncio.pcall(fn, ...) end

--- `xpcall` that lets `CancelledError` and `KeyboardInterrupt` through; `msgh`
--- never sees them.
---@param fn function
---@param msgh fun(err: any): any
---@param ... any
---@return boolean ok
---@return any ... # fn's results, or msgh's
function asyncio.xpcall(fn, msgh, ...) end

-- Tasks and futures

--- A Task running the coroutine object (or other awaitable), or `fn(...)`,
--- on the running loop, started on the next iteration. After an awaitable,
--- `opts` may name it; after a function, what follows is its arguments.
---@param what asyncio.Awaitable<any>|function
---@param ... any # fn's arguments, or asyncio.TaskOptions after an awaitable
---@return asyncio.Task
---@overload fun(coro: asyncio.Awaitable<any>, opts?: asyncio.TaskOptions): asyncio.Task
---@overload fun(fn: function, ...: any): asyncio.Task
function asyncio.create_task(what, ...) end

--- Futures (and tasks) as they are; other awaitables wrapped in tasks.
---@param aw asyncio.Awaitable<any>
---@return asyncio.Future
function asyncio.ensure_future(aw) end

--- The running task, or nil.
---@return asyncio.Task?
function asyncio.current_task() end

--- The set of the loop's pending tasks (default: the running loop).
---@param loop? asyncio.EventLoop
---@return table<asyncio.Task, true>
function asyncio.all_tasks(loop) end

-- Time and time limits

--- An awaitable that resumes the task after `delay` seconds (0: yield once;
--- `math.huge`: until cancelled) and results in `...`.
---@param delay number
---@param ... any
---@return asyncio.Awaitable<any> # the values `...`
function asyncio.sleep(delay, ...) end

--- Awaits `aw` for at most `timeout` seconds (nil: no limit) and results in
--- its results; when the time runs out `aw` is cancelled and waited for, and
--- `TimeoutError` raised. Awaited once.
---@generic T
---@param aw asyncio.Awaitable<T>
---@param timeout number?
---@return asyncio.Awaitable<T> # aw's results
function asyncio.wait_for(aw, timeout) end

--- A coroutine object running `fn(...)` in the awaiting task under a deadline
--- `delay` seconds away (nil: none); results in fn's results, or raises
--- `TimeoutError` once the deadline passes (`async with asyncio.timeout`).
---@param delay number?
---@param fn function
---@param ... any
---@return asyncio.Coroutine # fn's results
function asyncio.timeout(delay, fn, ...) end

--- An awaitable giving `done, pending`, two sets of the futures and tasks of
--- `list` (not coroutine objects; not empty). Nothing is cancelled or raised.
---@param list asyncio.Future[]
---@param opts? asyncio.WaitOptions
---@return asyncio.Awaitable<table<asyncio.Future, true>> # done, pending
function asyncio.wait(list, opts) end

--- An iterator yielding `#list` awaitables: awaiting the i-th gives the
--- results of the i-th to finish (or raises its error, or `TimeoutError`
--- past `opts.timeout`). Coroutine objects become tasks.
---@param list asyncio.Awaitable<any>[]
---@param opts? asyncio.AsCompletedOptions
---@return fun(): asyncio.Awaitable<any>?
function asyncio.as_completed(list, opts) end

-- Combinators

--- A future whose result is the list of the first result of each awaitable,
--- in order, with `n` (and `failed` with `return_exceptions`). The first
--- error is raised at once unless `return_exceptions`. Cancelling it cancels
--- the children. `gather(list, [opts])` takes the awaitables as one list.
---@param ... asyncio.Awaitable<any>|asyncio.GatherOptions # the awaitables, then optional options
---@return asyncio.Future # results in an asyncio.GatherResult
---@overload fun(list: asyncio.Awaitable<any>[], opts?: asyncio.GatherOptions): asyncio.Future
function asyncio.gather(...) end

--- A future that follows `aw` but whose cancellation does not reach `aw`;
--- `aw` itself if it is done already.
---@param aw asyncio.Awaitable<any>
---@return asyncio.Future
function asyncio.shield(aw) end

-- Structured concurrency

--- A coroutine object: awaiting it runs `fn(tg, ...)` in the current task,
--- then waits for every child of `tg`; results in fn's results. The first
--- child that fails cancels the rest (and fn); the group then raises an
--- `ExceptionGroup` of every failure.
---@param fn fun(tg: asyncio.TaskGroup, ...: any): any
---@param ... any
---@return asyncio.Coroutine # fn's results
function asyncio.task_group(fn, ...) end

-- Streams, names, datagrams, files, subprocesses, TLS

--- Connects to `host` (an address or a name: each address tried in turn).
---@param host string
---@param port integer
---@param opts? asyncio.OpenConnectionOptions
---@return asyncio.Awaitable<asyncio.StreamReader> # reader, writer (asyncio.StreamWriter)
function asyncio.open_connection(host, port, opts) end

--- Connects to the Unix socket `path`.
---@param path string
---@param opts? asyncio.OpenUnixConnectionOptions
---@return asyncio.Awaitable<asyncio.StreamReader> # reader, writer (asyncio.StreamWriter)
function asyncio.open_unix_connection(path, opts) end

--- Listens on `host` (nil: 0.0.0.0; a name: each of its addresses) and
--- `port` (0: a free one); `client_cb(reader, writer)` runs in a new task per
--- connection, which is closed when it returns.
---@param client_cb fun(reader: asyncio.StreamReader, writer: asyncio.StreamWriter)
---@param host string?
---@param port integer
---@param opts? asyncio.StartServerOptions
---@return asyncio.Awaitable<asyncio.Server> # the listening server
function asyncio.start_server(client_cb, host, port, opts) end

--- Listens on the Unix socket `path`.
---@param client_cb fun(reader: asyncio.StreamReader, writer: asyncio.StreamWriter)
---@param path string
---@param opts? asyncio.StartUnixServerOptions
---@return asyncio.Awaitable<asyncio.Server> # the listening server
function asyncio.start_unix_server(client_cb, path, opts) end

--- Resolves `host` and `port` on libuv's resolver; `gaierror` on failure.
---@param host string?
---@param port? integer|string
---@param opts? asyncio.GetaddrinfoOptions
---@return asyncio.Awaitable<asyncio.AddrInfo[]> # the addresses
function asyncio.getaddrinfo(host, port, opts) end

--- The name and service of a numeric address.
---@param host string
---@param port integer
---@param numeric? boolean
---@return asyncio.Awaitable<string> # name, service
function asyncio.getnameinfo(host, port, numeric) end

--- A UDP endpoint.
---@param opts? asyncio.OpenUDPOptions
---@return asyncio.Awaitable<asyncio.DatagramEndpoint> # the endpoint
function asyncio.open_udp(opts) end

--- Opens `path` on the thread pool; `FileNotFoundError`, `PermissionError`.
---@param path string
---@param mode? asyncio.FileMode # as io.open's (default "r")
---@return asyncio.Awaitable<asyncio.File> # the file
function asyncio.open_file(path, mode) end

--- Runs `program` (looked up in PATH) with the arguments, no shell; options
--- last. `FileNotFoundError` if it is not there.
---@param program string
---@param ... string|number|asyncio.SubprocessOptions # the arguments, then optional options
---@return asyncio.Awaitable<asyncio.Process> # the process
function asyncio.create_subprocess_exec(program, ...) end

--- Runs `/bin/sh -c cmd`.
---@param cmd string
---@param opts? asyncio.SubprocessOptions
---@return asyncio.Awaitable<asyncio.Process> # the process
function asyncio.create_subprocess_shell(cmd, opts) end

--- A TLS context, made once and shared by many connections.
---@param opts? asyncio.SSLContextOptions
---@return asyncio.SSLContext
function asyncio.ssl_context(opts) end

-- Worker threads

---@class (exact) asyncio.WorkerPoolOptions
---@field size? integer # most threads (1 to 1024; default min(32, CPUs + 4))
---@field init? fun() # run once in each worker's Lua state before its first call
---@field initargs? any[] # init's arguments (copied; `n` for a list with holes)
---@field join_timeout? number # seconds the loop's close waits for a running call (default 30)

--- Runs `fn(...)` on a thread of the loop's default pool, in that thread's
--- own Lua state: `fn` may keep no upvalue but `_ENV`; arguments and
--- results are copied (nil, booleans, numbers, strings, tables of these).
--- Its error is raised as a `ThreadError`.
---@param fn function
---@param ... any
---@return asyncio.Awaitable<any> # fn's results
function asyncio.to_thread(fn, ...) end

--- A pool of worker threads, each with a Lua state kept for its life.
---@param opts? asyncio.WorkerPoolOptions
---@return asyncio.WorkerPool
function asyncio.worker_pool(opts) end

--- What `asyncio.worker_pool` makes; a `<close>` variable too.
---@class asyncio.WorkerPool
asyncio.WorkerPool = {}

--- Runs `fn(...)` on one of the pool's workers (see `to_thread`).
---@param fn function
---@param ... any
---@return asyncio.Awaitable<any> # fn's results
function asyncio.WorkerPool:call(fn, ...) end

--- No more calls; those queued or running still come back. Returns at once.
function asyncio.WorkerPool:close() end

--- The most threads the pool runs.
---@return integer
function asyncio.WorkerPool:size() end

--- How the pool is doing now.
---@return {threads: integer, idle: integer, queued: integer, running: integer}
function asyncio.WorkerPool:info() end

-- Testing and debugging

--- Every pending task of the loop (default: the running one) as a tree of
--- who awaits whom, with what each waits for and its program frames.
---@param loop? asyncio.EventLoop
---@return string
function asyncio.dump_tasks(loop) end

--- Writes `dump_tasks(loop)` to `file` (default stdout).
---@param loop? asyncio.EventLoop
---@param file? file*
function asyncio.print_tasks(loop, file) end

---@class asyncio.testing
asyncio.testing = {}

--- Moves a virtual clock on by `seconds` (the running loop's by default); the
--- timers due fire on the loop's next turn. An error on a real clock.
---@param seconds number
---@param loop? asyncio.EventLoop
function asyncio.testing.advance(seconds, loop) end

--- Worker processes: the program run N times, past one core.
---@class asyncio.cluster
---@field ENV string # "ASYNCIO_CLUSTER_WORKER": the variable that marks a worker with its id
asyncio.cluster = {}

--- In the primary: starts `workers` copies of this program as workers and
--- keeps them running (restarts, SIGINT and SIGTERM forwarded) until every
--- one has ended; 0 if all ended well, else 1. In a worker: runs
--- `main(id)` on a new loop until it returns or is stopped (0), or fails (1).
---@param opts asyncio.ClusterOptions
---@return integer status # for os.exit
function asyncio.cluster.run(opts) end

--- This worker's id, 1 to N; nil in the primary (or a program not in a cluster).
---@return integer?
function asyncio.cluster.worker_id() end

--- Whether this process is a cluster's worker.
---@return boolean
function asyncio.cluster.is_worker() end

--- In a worker: how many workers its cluster has; nil elsewhere.
---@return integer?
function asyncio.cluster.size() end

--- The `stdin`, `stdout`, `stderr` values under CPython's names.
---@class asyncio.subprocess
---@field PIPE "pipe"
---@field DEVNULL "devnull"
---@field STDOUT "stdout"
---@field INHERIT "inherit"
asyncio.subprocess = {}


-- EventLoop ---------------------------------------------------------------

---@class asyncio.EventLoop
---@field slow_callback_duration number # debug mode: seconds a step may take (default 0.1)
asyncio.EventLoop = {}

--- Runs until `aw` is done; its results, or its error raised. A deadlock
--- error if nothing could complete it; Ctrl-C raises `KeyboardInterrupt`.
---@param aw asyncio.Awaitable<any>
---@return any ... # aw's results
function asyncio.EventLoop:run_until_complete(aw) end

--- Runs until `stop()`, or until nothing is left that could ever run.
function asyncio.EventLoop:run_forever() end

--- As CPython's: a task that runs `pool:call(fn, ...)`, started at once;
--- `pool` nil is the default pool of `to_thread`.
---@param pool asyncio.WorkerPool?
---@param fn function
---@param ... any
---@return asyncio.Task # fn's results
function asyncio.EventLoop:run_in_executor(pool, fn, ...) end

--- Makes the running loop return after the current batch of callbacks.
function asyncio.EventLoop:stop() end

--- Closes the loop (not while running; twice is fine).
function asyncio.EventLoop:close() end

---@return boolean
function asyncio.EventLoop:is_running() end

---@return boolean
function asyncio.EventLoop:is_closed() end

--- Monotonic seconds (a virtual clock's time, from 0).
---@return number
function asyncio.EventLoop:time() end

--- Does the loop run on a virtual clock?
---@return boolean
function asyncio.EventLoop:is_virtual() end

--- Debug mode, from the next run.
---@param flag boolean
function asyncio.EventLoop:set_debug(flag) end

---@return boolean
function asyncio.EventLoop:get_debug() end

--- Calls `fn(...)` on the next iteration.
---@param fn function
---@param ... any
---@return asyncio.Handle
function asyncio.EventLoop:call_soon(fn, ...) end

--- Calls `fn(...)` after `delay` seconds.
---@param delay number
---@param fn function
---@param ... any
---@return asyncio.TimerHandle
function asyncio.EventLoop:call_later(delay, fn, ...) end

--- Calls `fn(...)` at loop time `when`.
---@param when number
---@param fn function
---@param ... any
---@return asyncio.TimerHandle
function asyncio.EventLoop:call_at(when, fn, ...) end

--- A task on this loop (which need not be running yet): as `asyncio.create_task`.
---@param what asyncio.Awaitable<any>|function
---@param ... any # fn's arguments, or asyncio.TaskOptions after an awaitable
---@return asyncio.Task
function asyncio.EventLoop:create_task(what, ...) end

--- A future bound to this loop.
---@return asyncio.Future
function asyncio.EventLoop:create_future() end

--- `fn(loop, context)` gets errors from callbacks, unretrieved task errors and
--- leftover-task errors; nil restores the default (stderr).
---@param fn? fun(loop: asyncio.EventLoop, context: asyncio.ExceptionContext)
function asyncio.EventLoop:set_exception_handler(fn) end

--- The handler set by `set_exception_handler`, or nil.
---@return fun(loop: asyncio.EventLoop, context: asyncio.ExceptionContext)?
function asyncio.EventLoop:get_exception_handler() end

--- Calls the exception handler with `ctx` (the default one if it raises).
---@param ctx asyncio.ExceptionContext
function asyncio.EventLoop:call_exception_handler(ctx) end

--- Writes `ctx` to stderr.
---@param ctx asyncio.ExceptionContext
function asyncio.EventLoop:default_exception_handler(ctx) end

--- `fn(...)` runs on the loop after signal `sig` arrives; replaces an earlier
--- handler of `sig`. SIGINT, SIGKILL and SIGSTOP are refused.
---@param sig asyncio.Signal
---@param fn function
---@param ... any
function asyncio.EventLoop:add_signal_handler(sig, fn, ...) end

--- Was there a handler?
---@param sig asyncio.Signal
---@return boolean
function asyncio.EventLoop:remove_signal_handler(sig) end

--- What `call_soon` returns.
---@class asyncio.Handle
local Handle = {}

--- The callback will not run.
function Handle:cancel() end

---@return boolean
function Handle:cancelled() end

--- The deadline (loop time) of a TimerHandle; nil for `call_soon`'s.
---@return number?
function Handle:when() end

--- What `call_later` and `call_at` return.
---@class asyncio.TimerHandle: asyncio.Handle
local TimerHandle = {}

--- The deadline, in loop time.
---@return number
function TimerHandle:when() end


-- Future, Task, TaskGroup -------------------------------------------------

--- A pending future (bound to the running loop, or to the first loop that
--- waits on it). Awaiting it results in its results.
---@class asyncio.Future: asyncio.Awaitable<any>
---@field PENDING "PENDING" # the names of the states
---@field FINISHED "FINISHED"
---@field CANCELLED "CANCELLED"
---@overload fun(): asyncio.Future
asyncio.Future = {}

--- Every value is kept; `InvalidStateError` if done already.
---@param ... any
function asyncio.Future:set_result(...) end

--- Any non-nil value; awaiting raises that very value.
---@param err any
function asyncio.Future:set_exception(err) end

--- The results; raises the error, `CancelledError`, or `InvalidStateError` while pending.
---@return any ...
function asyncio.Future:result() end

--- The error or nil; raises `CancelledError` if cancelled.
---@return any
function asyncio.Future:exception() end

--- Did it finish with an error (a raised nil included)?
---@return boolean
function asyncio.Future:failed() end

---@return boolean
function asyncio.Future:done() end

---@return boolean
function asyncio.Future:cancelled() end

--- True if it was pending; the `CancelledError` carries `msg`.
---@param msg? any
---@return boolean
function asyncio.Future:cancel(msg) end

--- `fn(fut)` is called on the loop (never synchronously) when done.
---@param fn fun(fut: asyncio.Future)
function asyncio.Future:add_done_callback(fn) end

--- Removes every registration of `fn`; returns how many.
---@param fn function
---@return integer
function asyncio.Future:remove_done_callback(fn) end

--- The loop it is bound to, nil until it is.
---@return asyncio.EventLoop?
function asyncio.Future:get_loop() end

--- A future running a coroutine: made by `create_task`.
---@class asyncio.Task: asyncio.Future
asyncio.Task = {}

--- Requests cancellation: `CancelledError(msg)` is raised where the task
--- waits, and what it awaits is cancelled too. True if it was pending.
---@param msg? any
---@return boolean
function asyncio.Task:cancel(msg) end

--- The count of pending cancellation requests.
---@return integer
function asyncio.Task:cancelling() end

--- Takes one cancellation request back; returns the count left.
---@return integer
function asyncio.Task:uncancel() end

---@return string
function asyncio.Task:get_name() end

---@param name any # kept as tostring(name)
function asyncio.Task:set_name(name) end

--- The coroutine that runs the task's body (resuming it by hand is refused).
---@return thread
function asyncio.Task:get_coro() end

--- Where the task failed, or where it is suspended now; nil when neither.
---@return string?
function asyncio.Task:traceback() end

--- What `task_group`'s function gets.
---@class asyncio.TaskGroup
local TaskGroup = {}

--- Starts a child of the group: as `asyncio.create_task`.
---@param what asyncio.Awaitable<any>|function
---@param ... any # fn's arguments, or asyncio.TaskOptions after an awaitable
---@return asyncio.Task
function TaskGroup:create_task(what, ...) end


-- Synchronisation ---------------------------------------------------------

---@class asyncio.Event
---@overload fun(): asyncio.Event
asyncio.Event = {}

--- Wakes every waiter; later waits go through at once.
function asyncio.Event:set() end

--- Unsets it.
function asyncio.Event:clear() end

---@return boolean
function asyncio.Event:is_set() end

---@return asyncio.Awaitable<true> # true, once set
function asyncio.Event:wait() end

--- A lock with no owner.
---@class asyncio.Lock
---@overload fun(): asyncio.Lock
asyncio.Lock = {}

--- Waits until the lock is free and takes it.
---@return asyncio.Awaitable<asyncio.Held> # a value that releases the lock when closed
function asyncio.Lock:acquire() end

--- Frees it (`Lock.release: lock is not acquired` if not held).
function asyncio.Lock:release() end

---@return boolean
function asyncio.Lock:locked() end

--- A counter (default 1, a non-negative integer).
---@class asyncio.Semaphore
---@overload fun(value?: integer): asyncio.Semaphore
asyncio.Semaphore = {}

--- Waits while the counter is 0, then decrements it.
---@return asyncio.Awaitable<asyncio.Held> # a value that releases the semaphore when closed
function asyncio.Semaphore:acquire() end

--- Increments the counter and wakes one waiter.
function asyncio.Semaphore:release() end

--- Would an acquire wait?
---@return boolean
function asyncio.Semaphore:locked() end

--- A semaphore that raises when released above its initial value.
---@class asyncio.BoundedSemaphore: asyncio.Semaphore
---@overload fun(value?: integer): asyncio.BoundedSemaphore
asyncio.BoundedSemaphore = {}

--- A condition variable over `lock` (default a new Lock).
---@class asyncio.Condition
---@overload fun(lock?: asyncio.Lock): asyncio.Condition
asyncio.Condition = {}

--- Takes the lock.
---@return asyncio.Awaitable<asyncio.Held> # a value that releases the lock when closed
function asyncio.Condition:acquire() end

--- Releases the lock.
function asyncio.Condition:release() end

---@return boolean
function asyncio.Condition:locked() end

--- With the lock held: releases it, waits for a notify, takes it again.
---@return asyncio.Awaitable<true> # true
function asyncio.Condition:wait() end

--- Waits until `pred()` returns a true value.
---@param pred fun(): any
---@return asyncio.Coroutine # pred's true value
function asyncio.Condition:wait_for(pred) end

--- Wakes up to `n` waiters (default 1); needs the lock held.
---@param n? integer
function asyncio.Condition:notify(n) end

--- Wakes every waiter; needs the lock held.
function asyncio.Condition:notify_all() end

--- Lets `parties` tasks go together.
---@class asyncio.Barrier
---@field parties integer
---@overload fun(parties: integer): asyncio.Barrier
asyncio.Barrier = {}

--- Waits until `parties` tasks wait; `BrokenBarrierError` if aborted or reset.
---@return asyncio.Awaitable<integer> # this task's arrival index, 0 .. parties - 1
function asyncio.Barrier:wait() end

--- Back to empty at once; the waiting tasks get `BrokenBarrierError`.
---@return asyncio.Awaitable<nil> # done already
function asyncio.Barrier:reset() end

--- Broken for good at once; waiters and later waits get `BrokenBarrierError`.
---@return asyncio.Awaitable<nil> # done already
function asyncio.Barrier:abort() end

---@return integer
function asyncio.Barrier:n_waiting() end

---@return boolean
function asyncio.Barrier:broken() end


-- Queues ------------------------------------------------------------------

--- A FIFO queue; `maxsize` nil or 0: unbounded. Any value is an item, nil included.
---@class asyncio.Queue
---@overload fun(maxsize?: integer): asyncio.Queue
asyncio.Queue = {}

--- A LIFO queue.
---@class asyncio.LifoQueue: asyncio.Queue
---@overload fun(maxsize?: integer): asyncio.LifoQueue
asyncio.LifoQueue = {}

--- Smallest first by `less` (default `<`); equal items in insertion order.
---@class asyncio.PriorityQueue: asyncio.Queue
---@overload fun(maxsize?: integer, less?: fun(a: any, b: any): boolean): asyncio.PriorityQueue
asyncio.PriorityQueue = {}

--- Puts at once if there is room, else waits; `QueueShutDown` after shutdown.
---@param item any
---@return asyncio.Awaitable<nil>
function asyncio.Queue:put(item) end

--- Waits while empty; `QueueShutDown` once shut down and empty.
---@return asyncio.Awaitable<any> # the item
function asyncio.Queue:get() end

--- `QueueFull`, `QueueShutDown`.
---@param item any
function asyncio.Queue:put_nowait(item) end

--- `QueueEmpty`, `QueueShutDown`.
---@return any item
function asyncio.Queue:get_nowait() end

---@return integer
function asyncio.Queue:qsize() end

---@return boolean
function asyncio.Queue:empty() end

---@return boolean
function asyncio.Queue:full() end

--- 0: unbounded.
---@return integer
function asyncio.Queue:maxsize() end

--- Marks one item done (an error if none is unfinished).
function asyncio.Queue:task_done() end

--- Done when every item put has been marked with `task_done`.
---@return asyncio.Awaitable<nil>
function asyncio.Queue:join() end

--- `put` raises `QueueShutDown` from now on; waiters wake with it; with
--- `immediate` the items are dropped.
---@param immediate? boolean
function asyncio.Queue:shutdown(immediate) end

--- Has `shutdown` been called?
---@return boolean
function asyncio.Queue:is_shutdown() end


-- Streams -----------------------------------------------------------------

---@class asyncio.StreamReader
asyncio.StreamReader = {}

--- Up to `n` bytes as soon as any are there; nil or -1: everything until EOF.
---@param n? integer
---@return asyncio.Awaitable<string> # the bytes ("" at EOF)
function asyncio.StreamReader:read(n) end

--- One line with its "\n"; at EOF the rest, then "". An overlong line is
--- dropped and `LimitOverrunError` raised.
---@return asyncio.Awaitable<string> # the line
function asyncio.StreamReader:readline() end

--- Exactly `n` bytes; `IncompleteReadError` at EOF first.
---@param n integer
---@return asyncio.Awaitable<string> # the bytes
function asyncio.StreamReader:readexactly(n) end

--- The bytes up to and including `sep` (default "\n"; a list: whichever ends
--- first); `IncompleteReadError` at EOF, `LimitOverrunError` past the limit.
---@param sep? string|string[]
---@return asyncio.Awaitable<string> # the bytes
function asyncio.StreamReader:readuntil(sep) end

--- True once EOF came and the buffer is empty.
---@return boolean
function asyncio.StreamReader:at_eof() end

--- A generic-for iterator (inside a task) over the lines until EOF.
---@param fmt? asyncio.LinesFormat
---@return fun(): string?
function asyncio.StreamReader:lines(fmt) end

---@class asyncio.StreamWriter
asyncio.StreamWriter = {}

--- Sends `data`, queueing what the socket does not take now; never waits.
---@param data string
function asyncio.StreamWriter:write(data) end

--- Writes the strings of `list`.
---@param list string[]
function asyncio.StreamWriter:writelines(list) end

--- Waits while more than the high-water mark is queued; raises the
--- connection's write error.
---@return asyncio.Awaitable<nil>
function asyncio.StreamWriter:drain() end

--- The high- and low-water marks (default 64 KiB and 16 KiB).
---@param high? integer
---@param low? integer
function asyncio.StreamWriter:set_write_buffer_limits(high, low) end

--- The bytes queued now.
---@return integer
function asyncio.StreamWriter:get_write_buffer_size() end

--- Half-close: the peer reads EOF once the queued bytes are sent.
function asyncio.StreamWriter:write_eof() end

---@return boolean
function asyncio.StreamWriter:can_write_eof() end

--- Closes once what is queued has been sent (idempotent; a `<close>` variable too).
function asyncio.StreamWriter:close() end

--- Done once the socket is closed.
---@return asyncio.Awaitable<nil>
function asyncio.StreamWriter:wait_closed() end

--- True after `close()`.
---@return boolean
function asyncio.StreamWriter:is_closing() end

--- "peername", "sockname" ({host, port}, or a path), "fd"; with TLS also
--- "sslcontext", "cipher", "peercert".
---@param name "peername"|"sockname"|"fd"|"sslcontext"|"cipher"|"peercert"
---@param default? any
---@return any
function asyncio.StreamWriter:get_extra_info(name, default) end

--- Upgrades the connection to TLS in place (STARTTLS): a client context makes
--- this side the client, a server context the server.
---@param ctx asyncio.SSLContext
---@param opts? asyncio.StartTLSOptions
---@return asyncio.Awaitable<nil>
function asyncio.StreamWriter:start_tls(ctx, opts) end

---@class asyncio.Server
asyncio.Server = {}

--- Stops listening; connections already accepted go on. A `<close>` variable too.
function asyncio.Server:close() end

--- Closes every connection it accepted (queued bytes still go out).
function asyncio.Server:close_clients() end

--- Closes every connection it accepted, dropping what is queued.
function asyncio.Server:abort_clients() end

--- Done when the server is closed and every connection it accepted has ended.
---@return asyncio.Awaitable<nil>
function asyncio.Server:wait_closed() end

--- Ends when the server is closed; cancelling it closes the server.
---@return asyncio.Awaitable<nil>
function asyncio.Server:serve_forever() end

--- Done already: a server serves from the start.
---@return asyncio.Awaitable<nil>
function asyncio.Server:start_serving() end

--- True until `close()` (or until its loop is closed).
---@return boolean
function asyncio.Server:is_serving() end

--- The listening sockets; {} once closed.
---@return asyncio.Socket[]
function asyncio.Server:sockets() end

--- The loop it runs on.
---@return asyncio.EventLoop
function asyncio.Server:get_loop() end

--- A listening socket of a Server.
---@class asyncio.Socket
local Socket = {}

--- {host, port}, or a path.
---@return asyncio.Address|string
function Socket:getsockname() end

---@return integer
function Socket:fileno() end

--- What `asyncio.ssl_context` makes.
---@class asyncio.SSLContext
---@field mode "client"|"server"
---@field verify boolean
asyncio.SSLContext = {}


-- Datagrams, files, subprocesses ------------------------------------------

--- What `open_udp` results in; a `<close>` variable too.
---@class asyncio.DatagramEndpoint
local DatagramEndpoint = {}

--- Sends a datagram to `remote_addr`; never waits.
---@param data string
function DatagramEndpoint:send(data) end

--- Sends a datagram to a numeric address (an unconnected endpoint); never waits.
---@param data string
---@param host string
---@param port integer
function DatagramEndpoint:sendto(data, host, port) end

--- The next datagram.
---@return asyncio.Awaitable<string> # data, host, port
function DatagramEndpoint:recvfrom() end

---@return asyncio.Address
function DatagramEndpoint:getsockname() end

--- A task waiting in `recvfrom` gets `OSError` EBADF.
function DatagramEndpoint:close() end

--- What `open_file` results in: buffered; a `<close>` variable too.
---@class asyncio.File
local File = {}

--- `n` bytes at the position (fewer only at the end, "" there); nil, -1 or "a": the rest;
--- "l" / "L", as io's: the next line without / with its "\n" (nil at the end).
---@param n? integer|"a"|"l"|"L"
---@return asyncio.Awaitable<string?> # the bytes, or the line (nil at the end)
function File:read(n) end

--- A generic-for iterator (inside a task) over the lines.
---@param fmt? asyncio.LinesFormat
---@return fun(): string?
function File:lines(fmt) end

--- Writes `data` at the position (buffered).
---@param data string
---@return asyncio.Awaitable<integer> # #data
function File:write(data) end

--- Done once everything written so far is in the file.
---@return asyncio.Awaitable<nil>
function File:flush() end

--- Moves the position, as io's seek.
---@param whence? asyncio.Whence # default "cur"
---@param offset? integer # default 0
---@return asyncio.Awaitable<integer> # the new position
function File:seek(whence, offset) end

--- Flushes, then closes; twice is fine.
---@return asyncio.Awaitable<nil>
function File:close() end

--- File system requests on the thread pool; failures raise `OSError` kinds.
---@class asyncio.fs
asyncio.fs = {}

---@param path string
---@return asyncio.Awaitable<asyncio.Stat>
function asyncio.fs.stat(path) end

---@param path string
---@param mode? integer # default 0777, less the umask
---@return asyncio.Awaitable<nil>
function asyncio.fs.mkdir(path, mode) end

---@param path string
---@return asyncio.Awaitable<nil>
function asyncio.fs.rmdir(path) end

---@param path string
---@return asyncio.Awaitable<nil>
function asyncio.fs.unlink(path) end

---@param from string
---@param to string
---@return asyncio.Awaitable<nil>
function asyncio.fs.rename(from, to) end

---@param path string
---@return asyncio.Awaitable<string[]> # the sorted names
function asyncio.fs.readdir(path) end

---@param path string
---@return asyncio.Awaitable<asyncio.DirEntry[]>
function asyncio.fs.scandir(path) end

--- A child process.
---@class asyncio.Process
---@field pid integer
---@field stdin asyncio.StreamWriter? # with stdin = "pipe"
---@field stdout asyncio.StreamReader? # with stdout = "pipe"
---@field stderr asyncio.StreamReader? # with stderr = "pipe"
---@field returncode integer? # nil while it runs; minus the signal number if a signal ended it
asyncio.Process = {}

---@return asyncio.Awaitable<integer> # the return code
function asyncio.Process:wait() end

--- Writes `input` to stdin and closes it, reads stdout and stderr to EOF,
--- waits for the exit.
---@param input? string
---@return asyncio.Awaitable<string?> # stdout, stderr (nil for one that is not a pipe)
function asyncio.Process:communicate(input) end

--- Nothing once the child has exited.
---@param sig asyncio.Signal
function asyncio.Process:send_signal(sig) end

--- `sig` to the process group the child leads (start_new_session only).
---@param sig asyncio.Signal
function asyncio.Process:send_signal_group(sig) end

--- SIGTERM.
function asyncio.Process:terminate() end

--- SIGKILL.
function asyncio.Process:kill() end


-- Errors ------------------------------------------------------------------

--- The base of asyncio's error classes. A class is called to make an
--- instance; `tostring(err)` is "where Name: message".
---@class asyncio.Error
---@field name string # the class's name ("TimeoutError")
---@field message any
---@field where? string # the program's line that called into the library ("app.lua:12:")
---@field traceback? string # where the library raised it
---@overload fun(message?: any, fields?: table): asyncio.Error
asyncio.Error = {}

--- Is `err` an instance of this class or of a subclass?
---@param err any
---@return boolean
function asyncio.Error:is(err) end

---@class asyncio.CancelledError: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.CancelledError
asyncio.CancelledError = {}

---@class asyncio.TimeoutError: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.TimeoutError
asyncio.TimeoutError = {}

---@class asyncio.InvalidStateError: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.InvalidStateError
asyncio.InvalidStateError = {}

---@class asyncio.QueueEmpty: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.QueueEmpty
asyncio.QueueEmpty = {}

---@class asyncio.QueueFull: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.QueueFull
asyncio.QueueFull = {}

---@class asyncio.QueueShutDown: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.QueueShutDown
asyncio.QueueShutDown = {}

---@class asyncio.BrokenBarrierError: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.BrokenBarrierError
asyncio.BrokenBarrierError = {}

---@class asyncio.KeyboardInterrupt: asyncio.Error
---@overload fun(message?: any, fields?: table): asyncio.KeyboardInterrupt
asyncio.KeyboardInterrupt = {}

--- What a task group raises.
---@class asyncio.ExceptionGroup: asyncio.Error
---@field errors {n: integer, [integer]: any} # every failure, in order; n their count
---@overload fun(message?: any, errors?: any[]): asyncio.ExceptionGroup
asyncio.ExceptionGroup = {}

--- `readexactly` or `readuntil` met EOF first.
---@class asyncio.IncompleteReadError: asyncio.Error
---@field partial string # what was read (now consumed)
---@field expected integer? # the count asked for (nil for readuntil)
---@overload fun(partial: string, expected?: integer): asyncio.IncompleteReadError
asyncio.IncompleteReadError = {}

--- The separator was not found within the reader's limit.
---@class asyncio.LimitOverrunError: asyncio.Error
---@field consumed integer # the bytes left in the buffer
---@overload fun(message: any, consumed?: integer): asyncio.LimitOverrunError
asyncio.LimitOverrunError = {}

--- A function run on a worker thread raised an error (or its pool's init
--- did, or a result could not be copied back).
---@class asyncio.ThreadError: asyncio.Error
---@field value any # the error value itself, if it could be copied back
---@field worker_traceback? string # where the worker raised it
---@overload fun(message?: any, fields?: table): asyncio.ThreadError
asyncio.ThreadError = {}

--- What the operating system refused.
---@class asyncio.OSError: asyncio.Error
---@field errno string # libuv's name for the error ("ECONNREFUSED", "EAI_NONAME", "ESSL")
---@field strerror string # its message
---@overload fun(message?: any, fields?: table): asyncio.OSError
asyncio.OSError = {}

---@class asyncio.ConnectionError: asyncio.OSError
---@overload fun(message?: any, fields?: table): asyncio.ConnectionError
asyncio.ConnectionError = {}

--- ECONNREFUSED
---@class asyncio.ConnectionRefusedError: asyncio.ConnectionError
---@overload fun(message?: any, fields?: table): asyncio.ConnectionRefusedError
asyncio.ConnectionRefusedError = {}

--- ECONNRESET
---@class asyncio.ConnectionResetError: asyncio.ConnectionError
---@overload fun(message?: any, fields?: table): asyncio.ConnectionResetError
asyncio.ConnectionResetError = {}

--- ECONNABORTED
---@class asyncio.ConnectionAbortedError: asyncio.ConnectionError
---@overload fun(message?: any, fields?: table): asyncio.ConnectionAbortedError
asyncio.ConnectionAbortedError = {}

--- EPIPE
---@class asyncio.BrokenPipeError: asyncio.ConnectionError
---@overload fun(message?: any, fields?: table): asyncio.BrokenPipeError
asyncio.BrokenPipeError = {}

--- ENOENT
---@class asyncio.FileNotFoundError: asyncio.OSError
---@overload fun(message?: any, fields?: table): asyncio.FileNotFoundError
asyncio.FileNotFoundError = {}

--- EACCES, EPERM
---@class asyncio.PermissionError: asyncio.OSError
---@overload fun(message?: any, fields?: table): asyncio.PermissionError
asyncio.PermissionError = {}

--- EAI_*: name resolution failed.
---@class asyncio.gaierror: asyncio.OSError
---@overload fun(message?: any, fields?: table): asyncio.gaierror
asyncio.gaierror = {}

--- ESSL: TLS failed.
---@class asyncio.SSLError: asyncio.OSError
---@field reason string # OpenSSL's reason
---@overload fun(message?: any, fields?: table): asyncio.SSLError
asyncio.SSLError = {}

--- ESSL: the peer's certificate was refused.
---@class asyncio.SSLCertVerificationError: asyncio.SSLError
---@overload fun(message?: any, fields?: table): asyncio.SSLCertVerificationError
asyncio.SSLCertVerificationError = {}

return asyncio
