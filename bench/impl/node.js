// bench/impl/node.js WORKLOAD N: the workloads for Node.js, with async/await
// and the small promise-based queue class Node users write.
'use strict';
const fs = require('fs');

function check(ok, what) {
  if (!ok) { process.stderr.write(`WRONG ANSWER: ${what}\n`); process.exit(3); }
}

// the seeded delays of W2: the same 31-bit LCG as bench/common.lua
function delays(n) {
  const out = [];
  let x = 12345n;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245n + 12345n) % 2147483648n;
    out.push(Number(x % 100001n) / 1e6);
  }
  return out;
}

function rssKb() {
  const m = /VmHWM:\s*(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) : 0;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));
const yieldOnce = () => new Promise((resolve) => setImmediate(resolve));

class Queue {
  constructor(maxsize) {
    this.items = []; this.head = 0; this.maxsize = maxsize;
    this.getters = []; this.putters = []; this.unfinished = 0; this.joiners = [];
  }
  size() { return this.items.length - this.head; }
  async put(x) {
    while (this.size() >= this.maxsize) await new Promise((r) => this.putters.push(r));
    this.putNowait(x);
  }
  putNowait(x) {
    this.items.push(x);
    this.unfinished++;
    const g = this.getters.shift();
    if (g) g();
  }
  async get() {
    while (this.size() === 0) await new Promise((r) => this.getters.push(r));
    const x = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head); this.head = 0;
    }
    const p = this.putters.shift();
    if (p) p();
    return x;
  }
  taskDone() {
    if (--this.unfinished === 0) { this.joiners.forEach((r) => r()); this.joiners = []; }
  }
  async join() {
    if (this.unfinished > 0) await new Promise((r) => this.joiners.push(r));
  }
}

// the time limit a Node user puts on one await: a timer raced against it
function withTimeout(promise, s) {
  let timer;
  const expiry = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), s * 1000);
  });
  return Promise.race([promise, expiry]).finally(() => clearTimeout(timer));
}

const W = {
  async W1(n) {
    const job = async (i) => { await yieldOnce(); return i; };
    const t0 = now();
    const tasks = [];
    for (let i = 1; i <= n; i++) tasks.push(job(i));
    const r = await Promise.all(tasks);
    const dt = now() - t0;
    check(r.reduce((a, b) => a + b, 0) === n * (n + 1) / 2, 'W1 sum');
    return dt;
  },
  async W2(n) { return sleepers(n, delays(n), 'W2 count'); },
  async W6(n) { return sleepers(n, new Array(n).fill(1), 'W6 count'); },
  async W3(n) {
    const q = new Queue(100);
    const t0 = now();
    const consumer = (async () => {
      let s = 0;
      for (let i = 0; i < n; i++) s += await q.get();
      return s;
    })();
    for (let i = 1; i <= n; i++) await q.put(i);
    const s = await consumer;
    const dt = now() - t0;
    check(s === n * (n + 1) / 2, 'W3 sum');
    return dt;
  },
  async W3b(n) {
    const q = new Queue(100);
    const sums = [0, 0, 0, 0];
    let finished = false;
    const t0 = now();
    for (let c = 0; c < 4; c++) {
      (async () => {
        while (!finished) { sums[c] += await q.get(); q.taskDone(); }
      })();
    }
    const producers = [];
    for (let p = 1; p <= 4; p++) {
      producers.push((async () => { for (let i = p; i <= n; i += 4) await q.put(i); })());
    }
    await Promise.all(producers);
    await q.join();
    const dt = now() - t0;
    finished = true;  // the consumers stay parked on get; the process ends anyway
    check(sums.reduce((a, b) => a + b, 0) === n * (n + 1) / 2, 'W3b sum');
    return dt;
  },
  async W5(n) {
    const part1 = async (i) => { await yieldOnce(); return i; };
    const part2 = async (x) => { await yieldOnce(); return x + 1; };
    const chain = async (i) => part2(await part1(i));
    const t0 = now();
    const chains = [];
    for (let i = 1; i <= n; i++) chains.push(chain(i));
    const r = await Promise.all(chains);
    const dt = now() - t0;
    check(r.reduce((a, b) => a + b, 0) === n * (n + 1) / 2 + n, 'W5 sum');
    return dt;
  },
  async W7(n) {
    const q = new Queue(100);
    const t0 = now();
    const producer = (async () => { for (let i = 1; i <= n; i++) await q.put(i); })();
    let s = 0;
    for (let i = 0; i < n; i++) s += await withTimeout(q.get(), 1);
    await producer;
    const dt = now() - t0;
    check(s === n * (n + 1) / 2, 'W7 sum');
    return dt;
  },
  async W4(n) {
    const ping = new Queue(1), pong = new Queue(1);
    const t0 = now();
    const ponger = (async () => {
      for (let i = 0; i < n; i++) pong.putNowait(await ping.get() + 1);
    })();
    let v = 0;
    for (let i = 0; i < n; i++) { await ping.put(v); v = await pong.get(); }
    await ponger;
    const dt = now() - t0;
    check(v === n, 'W4 token');
    return dt;
  },
};

async function sleepers(n, ds, what) {
  let done = 0;
  const t0 = now();
  await Promise.all(ds.map(async (d) => { await sleep(d); done++; }));
  const dt = now() - t0;
  check(done === n, what);
  return dt;
}

// W8: an echo server and 100 clients with Node's net module (callbacks,
// as Node users write them); W9: Node's http module, keep-alive.
const net = require('net');
const http = require('http');

// The echo of W8 and W11: 'createServer' and 'connect' make the server
// and a client socket; 'ready' is the event after which a client writes.
const echoClients = (n, what, createServer, connect, ready) => new Promise((resolve) => {
  const conns = 100, per = Math.floor(n / conns);
  const msg = Buffer.from('m'.repeat(63) + '\n');
  const srv = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end());
  });
  srv.listen(0, '127.0.0.1', () => {
    const port = srv.address().port;
    let ok = 0, finished = 0;
    const t0 = now();
    for (let c = 0; c < conns; c++) {
      const sock = connect(port);
      sock.setNoDelay(true);
      let sent = 0, got = [], have = 0;
      sock.on(ready, () => { sent++; sock.write(msg); });
      sock.on('data', (d) => {
        got.push(d); have += d.length;
        while (have >= 64) {
          const all = Buffer.concat(got);
          if (all.subarray(0, 64).equals(msg)) ok++;
          got = [all.subarray(64)]; have -= 64;
          if (sent < per) { sent++; sock.write(msg); } else { sock.end(); }
        }
      });
      sock.on('close', () => {
        if (++finished === conns) {
          const dt = now() - t0;
          srv.close();
          check(ok === conns * per, what);
          resolve(dt);
        }
      });
    }
  });
});

W.W8 = (n) => echoClients(n, 'W8 echoes', (cb) => net.createServer(cb),
  (port) => net.connect(port, '127.0.0.1'), 'connect');

// W11: W8 over TLS with Node's tls module, the certificate bench/run.lua makes.
const tls = require('tls');

W.W11 = (n) => {
  const cert = fs.readFileSync('build/bench/tls/cert.pem');
  const key = fs.readFileSync('build/bench/tls/key.pem');
  return echoClients(n, 'W11 echoes', (cb) => tls.createServer({ cert, key }, cb),
    (port) => tls.connect({ port, host: '127.0.0.1', ca: cert, servername: 'localhost' }),
    'secureConnect');
};

W.W9 = (port) => new Promise(() => {
  const srv = http.createServer((req, res) => {
    res.writeHead(200, {'Content-Type': 'text/plain', 'Content-Length': 13});
    res.end('Hello, World!');
  });
  srv.listen(port, '127.0.0.1', () => console.log('listening'));
});

// W10: n runs of /bin/true with child_process.spawn, 4 at a time
const childProcess = require('child_process');
W.W10 = async (n) => {
  let ok = 0;
  const run = () => new Promise((resolve) => {
    childProcess.spawn('/bin/true').on('exit', (code) => { if (code === 0) ok++; resolve(); });
  });
  const t0 = now();
  await Promise.all([0, 1, 2, 3].map(async () => {
    for (let i = 0; i < Math.floor(n / 4); i++) await run();
  }));
  const dt = now() - t0;
  check(ok === Math.floor(n / 4) * 4, 'W10 exits');
  return dt;
};

// W12: copy n MB with fs.promises in 64 KiB reads and writes
const os = require('os');
const path = require('path');
W.W12 = async (n) => {
  const src = path.join(os.tmpdir(), `w12-src-${process.pid}`);
  const dst = path.join(os.tmpdir(), `w12-dst-${process.pid}`);
  const block = Buffer.alloc(1048576, '0123456789abcdef');
  const fd = fs.openSync(src, 'w');
  for (let i = 0; i < n; i++) fs.writeSync(fd, block);
  fs.closeSync(fd);
  const t0 = now();
  const a = await fs.promises.open(src, 'r');
  const b = await fs.promises.open(dst, 'w');
  const buf = Buffer.alloc(65536);
  for (;;) {
    const { bytesRead } = await a.read(buf, 0, 65536, null);
    if (bytesRead === 0) break;
    await b.write(buf, 0, bytesRead, null);
  }
  await a.close();
  await b.close();
  const dt = now() - t0;
  check(fs.statSync(dst).size === n * 1048576, 'W12 size');
  fs.unlinkSync(src); fs.unlinkSync(dst);
  return dt;
};

async function main() {
  const [name, arg] = process.argv.slice(2);
  const n = Number(arg);
  if (!W[name] || !Number.isInteger(n)) {
    process.stderr.write('usage: WORKLOAD N\n');
    process.exit(2);
  }
  const elapsed = n > 0 ? await W[name](n) : 0;
  console.log(`elapsed ${elapsed.toFixed(6)} rss_kb ${rssKb()}`);
  process.exit(0);
}

main();
