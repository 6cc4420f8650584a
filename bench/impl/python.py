"""bench/impl/python.py WORKLOAD N: the workloads for Python 3 asyncio."""
import asyncio
import re
import ssl
import sys
import time


def check(ok, what):
    if not ok:
        sys.stderr.write("WRONG ANSWER: %s\n" % what)
        sys.exit(3)


def delays(n):
    """The seeded delays of W2: the same 31-bit LCG as bench/common.lua."""
    out, x = [], 12345
    for _ in range(n):
        x = (x * 1103515245 + 12345) % 2147483648
        out.append((x % 100001) / 1e6)
    return out


def rss_kb():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s*(\d+)", f.read()).group(1))


async def w1(n):
    async def job(i):
        await asyncio.sleep(0)
        return i
    t0 = time.monotonic()
    r = await asyncio.gather(*[asyncio.create_task(job(i)) for i in range(1, n + 1)])
    dt = time.monotonic() - t0
    check(sum(r) == n * (n + 1) // 2, "W1 sum")
    return dt


async def sleepers(n, ds, what):
    done = 0

    async def job(d):
        nonlocal done
        await asyncio.sleep(d)
        done += 1
    t0 = time.monotonic()
    await asyncio.gather(*[asyncio.create_task(job(d)) for d in ds])
    dt = time.monotonic() - t0
    check(done == n, what)
    return dt


async def w2(n):
    return await sleepers(n, delays(n), "W2 count")


async def w6(n):
    return await sleepers(n, [1] * n, "W6 count")


async def w3(n):
    q = asyncio.Queue(100)

    async def consumer():
        s = 0
        for _ in range(n):
            s += await q.get()
        return s
    t0 = time.monotonic()
    c = asyncio.create_task(consumer())
    for i in range(1, n + 1):
        await q.put(i)
    s = await c
    dt = time.monotonic() - t0
    check(s == n * (n + 1) // 2, "W3 sum")
    return dt


async def w3b(n):
    q = asyncio.Queue(100)
    sums = [0, 0, 0, 0]

    async def consumer(c):
        while True:
            sums[c] += await q.get()
            q.task_done()

    async def producer(p):
        for i in range(p, n + 1, 4):
            await q.put(i)
    t0 = time.monotonic()
    consumers = [asyncio.create_task(consumer(c)) for c in range(4)]
    await asyncio.gather(*[producer(p) for p in range(1, 5)])
    await q.join()
    dt = time.monotonic() - t0
    for c in consumers:
        c.cancel()
    check(sum(sums) == n * (n + 1) // 2, "W3b sum")
    return dt


async def w4(n):
    ping, pong = asyncio.Queue(1), asyncio.Queue(1)

    async def ponger():
        for _ in range(n):
            pong.put_nowait(await ping.get() + 1)
    t0 = time.monotonic()
    t = asyncio.create_task(ponger())
    v = 0
    for _ in range(n):
        await ping.put(v)
        v = await pong.get()
    await t
    dt = time.monotonic() - t0
    check(v == n, "W4 token")
    return dt


async def w5(n):
    async def part1(i):
        await asyncio.sleep(0)
        return i

    async def part2(x):
        await asyncio.sleep(0)
        return x + 1

    async def chain(i):
        return await part2(await part1(i))
    t0 = time.monotonic()
    r = await asyncio.gather(*[chain(i) for i in range(1, n + 1)])
    dt = time.monotonic() - t0
    check(sum(r) == n * (n + 1) // 2 + n, "W5 sum")
    return dt


async def w7(n):
    q = asyncio.Queue(100)

    async def producer():
        for i in range(1, n + 1):
            await q.put(i)
    t0 = time.monotonic()
    p = asyncio.create_task(producer())
    s = 0
    for _ in range(n):
        s += await asyncio.wait_for(q.get(), 1)
    await p
    dt = time.monotonic() - t0
    check(s == n * (n + 1) // 2, "W7 sum")
    return dt


async def echo_clients(n, what, sopts, copts):
    """An echo server and 100 clients; each sends n / 100 messages of 64
    bytes, awaiting each echo. sopts and copts: start_server's and
    open_connection's keyword arguments (W11: TLS)."""
    conns = 100
    per = n // conns
    msg = b"m" * 63 + b"\n"

    async def echo(r, w):
        while True:
            data = await r.read(65536)
            if not data:
                break
            w.write(data)
            await w.drain()
        w.close()

    srv = await asyncio.start_server(echo, "127.0.0.1", 0, **sopts)
    port = srv.sockets[0].getsockname()[1]
    ok = 0

    async def client():
        nonlocal ok
        r, w = await asyncio.open_connection("127.0.0.1", port, **copts)
        for _ in range(per):
            w.write(msg)
            if await r.readexactly(64) == msg:
                ok += 1
        w.close()

    t0 = time.monotonic()
    await asyncio.gather(*[client() for _ in range(conns)])
    dt = time.monotonic() - t0
    srv.close()
    check(ok == conns * per, what)
    return dt


async def w8(n):
    return await echo_clients(n, "W8 echoes", {}, {})


async def w11(n):
    """W8 over TLS, with the certificate bench/run.lua makes."""
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain("build/bench/tls/cert.pem", "build/bench/tls/key.pem")
    cctx = ssl.create_default_context(cafile="build/bench/tls/cert.pem")
    return await echo_clients(n, "W11 echoes", {"ssl": sctx},
                              {"ssl": cctx, "server_hostname": "localhost"})


async def w9(port):
    resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"

    async def handle(r, w):
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(resp)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", port, reuse_port=True)
    print("listening", flush=True)
    await srv.serve_forever()


async def w10(n):
    ok = 0

    async def worker():
        nonlocal ok
        for _ in range(n // 4):
            p = await asyncio.create_subprocess_exec("/bin/true")
            if await p.wait() == 0:
                ok += 1

    t0 = time.monotonic()
    await asyncio.gather(*[worker() for _ in range(4)])
    dt = time.monotonic() - t0
    check(ok == n // 4 * 4, "W10 exits")
    return dt


async def w14(n):
    # to_thread round trips: n calls of a trivial function, one after another
    def inc(i):
        return i + 1

    await asyncio.to_thread(inc, 0)
    t0 = time.monotonic()
    total = 0
    for i in range(1, n + 1):
        total += await asyncio.to_thread(inc, i)
    dt = time.monotonic() - t0
    check(total == n * (n + 1) // 2 + n, "W14 sum")
    return dt


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W3b": w3b, "W4": w4, "W5": w5, "W6": w6,
             "W7": w7, "W8": w8, "W9": w9, "W10": w10, "W11": w11, "W14": w14}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in WORKLOADS:
        sys.stderr.write("usage: WORKLOAD N\n")
        sys.exit(2)
    n = int(sys.argv[2])
    elapsed = asyncio.run(WORKLOADS[sys.argv[1]](n)) if n > 0 else 0
    print("elapsed %.6f rss_kb %d" % (elapsed, rss_kb()))


main()
