// Backend workers on a durable queue (issue 10): the example workers of examples/workers/
// (order_worker.py, order-worker.js) consume the queue that `--event-queue order=orders`
// fills, on a real redis-server behind two `sockeye` nodes, and answer each client through
// the @socket.io/redis-emitter format (to the room named by its sid). Two workers compete
// for the messages; one of them is SIGKILLed in the middle of a batch and a replacement
// takes over what it held (XAUTOCLAIM). Nothing may be lost; duplicates (answered but not
// acknowledged when the worker died) are counted, reported and bounded by the batch size.
//
// Every wait is bounded and waits on a condition.
"use strict";
const { describe, it } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn, spawnSync } = require("node:child_process");
const { startRedis, startNode, connect, closeClients, ask, until, stopProc } = require("../lib/cluster");

const ROOT = path.resolve(__dirname, "../..");
const NODE_MODULES = path.join(ROOT, "tests", "node_modules");
const PY_WORKER = path.join(ROOT, "examples", "workers", "order_worker.py");
const JS_WORKER = path.join(ROOT, "examples", "workers", "order-worker.js");
const STREAM = "sockeye:{q:orders}:orders";

const N = 200; // orders
const CLIENTS = 4; // two per node; client k sends the ids i with i % CLIENTS === k
const BATCH = 10; // --count of the workers
const MIN_IDLE = 1500; // --min-idle of the workers: a batch takes at most 10 x 50 ms
const CASE = { timeout: 90000 };

const HAVE_REDIS = spawnSync("redis-server", ["--version"]).status === 0;

// A python3 that imports redis and msgpack (Debian's python3-redis, python3-msgpack): the
// one on PATH may be a pyenv or venv without them, Debian's own is /usr/bin/python3.
const PYTHON = [process.env.PYTHON, "python3", "/usr/bin/python3"]
  .filter(Boolean)
  .find((py) => spawnSync(py, ["-c", "import redis, msgpack"]).status === 0);

// Starts a worker and resolves once its group exists (it printed "ready").
async function startWorker(kind, name, redis, workMs) {
  const [cmd, script] = kind === "python" ? [PYTHON, PY_WORKER] : [process.execPath, JS_WORKER];
  const proc = spawn(
    cmd,
    [script, name, "--redis", redis.url, "--min-idle", String(MIN_IDLE), "--count", String(BATCH),
      "--work-ms", String(workMs)],
    { env: { ...process.env, NODE_PATH: NODE_MODULES }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const w = { name, proc, out: "", err: "" };
  proc.stdout.on("data", (d) => (w.out += d));
  proc.stderr.on("data", (d) => (w.err += d));
  await until(() => {
    if (proc.exitCode !== null) throw new Error(`worker ${name} exited (${proc.exitCode}): ${w.err}`);
    return /ready on/.test(w.out);
  }, 10000, `worker ${name} ready`);
  return w;
}

// How many messages each consumer of the group holds (XPENDING summary form).
async function heldBy(redis) {
  const r = await redis.cmd("XPENDING", STREAM, "workers");
  return Object.fromEntries((r[3] || []).map(([c, n]) => [c, Number(n)]));
}

async function scenario(t, kind) {
  const redis = await startRedis();
  const nodes = [];
  const workers = [];
  try {
    const args = ["--event-queue", "order=orders", "--queue-ack-timeout", "2000"];
    nodes.push(await startNode(redis, args), await startNode(redis, args));

    const clients = [];
    for (let k = 0; k < CLIENTS; k++) {
      const s = await connect(nodes[k % 2]);
      s.sent = new Set();
      s.done = new Map(); // id -> how many order:done
      s.by = []; // the worker of each order:done
      s.on("order:done", ({ id, worker }) => {
        s.done.set(id, (s.done.get(id) || 0) + 1);
        s.by.push(worker);
      });
      clients.push(s);
    }
    const doneBy = (name) => clients.reduce((n, s) => n + s.by.filter((w) => w === name).length, 0);

    // Every order is stored (acked {ok:true}) before any worker runs: the group, created
    // at the oldest message, must see them all.
    const acks = await Promise.all(
      Array.from({ length: N }, (_, id) => {
        const s = clients[id % CLIENTS];
        s.sent.add(id);
        return ask(s, "order", { id, sku: `sku-${id}` });
      }),
    );
    for (const a of acks) assert.equal(a.ok, true, `order refused: ${JSON.stringify(a)}`);

    // w:1 is slow (50 ms an order, 10 a batch) and starts last, so that the wait below
    // begins with its first batch: once it answered 3, it holds the rest of that batch
    // when it is killed.
    workers.push(await startWorker(kind, "w:2", redis, 20));
    const w1 = await startWorker(kind, "w:1", redis, 50);
    workers.push(w1);
    await until(() => doneBy("w:1") >= 3, 15000, "w:1 answered 3 orders");
    await stopProc(w1.proc, "SIGKILL");
    const heldAtKill = (await heldBy(redis))["w:1"] || 0;
    assert.ok(heldAtKill > 0, "w:1 held messages when it was killed (the case under test)");
    workers.push(await startWorker(kind, "w:3", redis, 20));

    const missing = () =>
      clients.reduce((n, s) => n + [...s.sent].filter((id) => !s.done.has(id)).length, 0);
    await until(() => missing() === 0, 30000, `order:done for all ${N} orders (missing: ${missing()})`);
    await until(async () => Object.keys(await heldBy(redis)).length === 0, 10000,
      "every message acknowledged (w:1's taken over)");

    // Nothing but what each client sent came back to it (the sid room, across both nodes).
    for (const s of clients)
      for (const id of s.done.keys()) assert.ok(s.sent.has(id), `client ${s.id} got order:done for ${id}`);
    const total = clients.reduce((n, s) => n + s.by.length, 0);
    const duplicates = total - N;
    assert.ok(duplicates <= BATCH, `${duplicates} duplicates, more than one batch (${BATCH})`);
    assert.ok(doneBy("w:2") > 0 && doneBy("w:3") > 0, "both live workers took a share");

    // SIGTERM: each finishes its message and exits 0 within its 1 s read timeout.
    for (const w of workers.filter((x) => x !== w1)) {
      const r = await stopProc(w.proc, "SIGTERM", 5000);
      assert.deepEqual(r, { code: 0, signal: null }, `${w.name} on SIGTERM: ${w.err}`);
      assert.match(w.out, /stopped/);
    }
    t.diagnostic(`${kind}: ${N} orders, w:1 killed holding ${heldAtKill}, answers by ` +
      `w:1 ${doneBy("w:1")}, w:2 ${doneBy("w:2")}, w:3 ${doneBy("w:3")}; duplicates ${duplicates}`);
  } finally {
    closeClients();
    for (const w of workers) await stopProc(w.proc, "SIGKILL");
    for (const n of nodes) await n.stop("SIGKILL");
    await redis.cleanup();
  }
}

describe("backend workers on a durable queue", { skip: !HAVE_REDIS && "redis-server not installed" }, () => {
  it("python workers (examples/workers/order_worker.py): competing, one SIGKILLed, nothing lost",
    { ...CASE, skip: !PYTHON && "no python3 with the redis and msgpack modules (apt-get install python3-redis python3-msgpack)" },
    (t) => scenario(t, "python"));

  it("node workers (examples/workers/order-worker.js): competing, one SIGKILLed, nothing lost", CASE,
    (t) => scenario(t, "node"));
});
