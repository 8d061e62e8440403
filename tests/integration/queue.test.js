// Durable queues (issue 10) end to end: `sockeye` nodes on a real redis-server, the OFFICIAL
// socket.io-client as producers and consumers (queue:push, queue:consume, queue:cancel, and
// queue:msg acknowledged through its callback), and Redis itself where the issue says so
// (a restart with appendonly yes, a backend reading the stream).
//
// Every wait is bounded and waits on a condition; fixed delays appear only where the
// scenario is about time (an ack timeout that must pass) or about nothing happening.
"use strict";
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn, spawnSync } = require("node:child_process");
const { io } = require("socket.io-client");
const {
  startRedis, startNode, connect, closeClients, ask, until, stopProc, redisCmd, freePort, metrics,
  metric,
} = require("../lib/cluster");

const CASE = { timeout: 60000 };
const HAVE_REDIS = spawnSync("redis-server", ["--version"]).status === 0;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A consumer: every queue:msg it gets is recorded; it acknowledges when ackIf says so.
function consumer(s, { ackIf = () => true } = {}) {
  s.msgs = [];
  s.pending = []; // [msg, cb] not acknowledged yet
  s.on("queue:msg", (queue, msg, cb) => {
    s.msgs.push({ queue, ...msg });
    if (ackIf(msg, s)) cb();
    else s.pending.push([msg, cb]);
  });
  return s;
}

const payloads = (c) => c.msgs.map((m) => m.payload);

async function push(s, queue, payload) {
  const r = await ask(s, "queue:push", queue, payload);
  assert.equal(r.ok, true, `push refused: ${JSON.stringify(r)}`);
  assert.match(r.id, /^\d+-\d+$/);
  return r.id;
}

async function consume(s, queue, opts) {
  const r = await ask(s, "queue:consume", queue, opts);
  assert.deepEqual(r, { ok: true });
}

describe("durable queues", { skip: !HAVE_REDIS && "redis-server not installed" }, () => {
  let redis;
  const nodes = [];
  const node = async (args = []) => {
    const n = await startNode(redis, ["--queue-ack-timeout", "3000", ...args]);
    nodes.push(n);
    return n;
  };

  before(async () => {
    redis = await startRedis();
  });
  afterEach(async () => {
    closeClients();
    for (const n of nodes.splice(0)) await n.stop("SIGKILL");
    await redis.cmd("FLUSHALL");
  });
  after(async () => {
    await redis.cleanup();
  });

  it("pushed while no one consumes, then consumed on another node: all, in order, once", CASE, async () => {
    const [a, b] = [await node(), await node()];
    const p = await connect(a);
    for (let i = 0; i < 20; i++) await push(p, "jobs", { n: i });
    const c = consumer(await connect(b));
    await consume(c, "jobs", { group: "workers" });
    await until(() => c.msgs.length >= 20, 10000, "20 messages");
    await sleep(300); // and nothing more
    assert.deepEqual(payloads(c), [...Array(20).keys()].map((n) => ({ n })));
    assert.ok(c.msgs.every((m) => m.deliveries === 1 && m.queue === "jobs"));
  });

  it("ack half then disconnect: the rest goes to the next consumer, nothing acknowledged comes back", CASE, async () => {
    const [a, b] = [await node(), await node()];
    const p = await connect(a);
    for (let i = 0; i < 10; i++) await push(p, "half", i);
    const c1 = consumer(await connect(a), { ackIf: (m) => m.payload < 5 });
    await consume(c1, "half", { group: "g", prefetch: 10 });
    await until(() => c1.msgs.length === 10, 10000, "10 delivered to c1");
    await until(async () => (await redis.cmd("XPENDING", "sockeye:{q:half}:half", "g"))[0] === 5,
      5000, "5 still pending");
    c1.disconnect(); // on purpose: what it holds goes back at once
    const c2 = consumer(await connect(b));
    await consume(c2, "half", { group: "g" });
    await until(() => c2.msgs.length >= 5, 5000, "the 5 unacknowledged ones");
    await sleep(300);
    assert.deepEqual(payloads(c2).sort((x, y) => x - y), [5, 6, 7, 8, 9]);
    assert.ok(c2.msgs.every((m) => m.deliveries === 2));
  });

  it("three competing consumers on three nodes process every message once, spread over them", CASE, async () => {
    const ns = [await node(), await node(), await node()];
    const cs = [];
    for (const n of ns) {
      const c = consumer(await connect(n));
      await consume(c, "work", { group: "w", prefetch: 5 });
      cs.push(c);
    }
    const p = await connect(ns[0]);
    for (let i = 0; i < 150; i++) await push(p, "work", i);
    await until(() => cs.reduce((k, c) => k + c.msgs.length, 0) >= 150, 15000, "150 processed");
    await sleep(300);
    const all = cs.flatMap(payloads).sort((x, y) => x - y);
    assert.deepEqual(all, [...Array(150).keys()]);
    for (const c of cs) assert.ok(c.msgs.length > 0, "every consumer got some");
  });

  it("two groups each get everything", CASE, async () => {
    const a = await node();
    const g1 = consumer(await connect(a));
    const g2 = consumer(await connect(a));
    await consume(g1, "fan", { group: "billing" });
    await consume(g2, "fan", { group: "audit" });
    const p = await connect(a);
    for (let i = 0; i < 10; i++) await push(p, "fan", i);
    await until(() => g1.msgs.length === 10 && g2.msgs.length === 10, 10000, "both groups");
    assert.deepEqual(payloads(g1), payloads(g2));
  });

  it("a message not acknowledged in time comes again, then goes to <queue>.dead", CASE, async () => {
    const a = await node(["--queue-ack-timeout", "400", "--queue-max-deliveries", "2"]);
    const c = consumer(await connect(a), { ackIf: () => false });
    await consume(c, "slow", { group: "g" });
    const p = await connect(a);
    const id = await push(p, "slow", "poison");
    await until(() => c.msgs.length >= 2, 8000, "a second delivery");
    assert.deepEqual(c.msgs.map((m) => [m.id, m.deliveries]), [[id, 1], [id, 2]]);
    const d = consumer(await connect(a));
    await consume(d, "slow.dead", { group: "ops" });
    await until(() => d.msgs.length === 1, 8000, "the dead letter");
    assert.equal(d.msgs[0].payload, "poison");
    await sleep(600); // past another ack timeout: it does not come a third time
    assert.equal(c.msgs.length, 2);
    const m = await metrics(a);
    assert.ok(metric(m, "sockeye_queue_messages_total", '{what="dead_lettered"}') >= 1);
    assert.ok(metric(m, "sockeye_queue_messages_total", '{what="timed_out"}') >= 2);
  });

  it("queue:cancel gives back what the consumer holds, and refuses what it does not consume", CASE, async () => {
    const a = await node();
    const c1 = consumer(await connect(a), { ackIf: () => false });
    await consume(c1, "cq", { group: "g", prefetch: 3 });
    const p = await connect(a);
    for (let i = 0; i < 3; i++) await push(p, "cq", i);
    await until(() => c1.msgs.length === 3, 5000, "3 held");
    const c2 = consumer(await connect(a));
    await consume(c2, "cq", { group: "g" });
    assert.deepEqual(await ask(c1, "queue:cancel", "cq", { group: "g" }), { ok: true });
    await until(() => c2.msgs.length === 3, 5000, "given back to c2");
    const r = await ask(c1, "queue:cancel", "cq", { group: "g" });
    assert.equal(r.ok, false);
    assert.equal(typeof r.error, "string");
  });

  it("the consumer's node SIGKILLed mid-stream: nothing lost", CASE, async () => {
    const [a, b] = [await node(), await node()];
    // the consumer comes back through "the load balancer" to b, its session recovered
    const url = a.url;
    const c = consumer(io(url, { transports: ["websocket"], reconnectionDelay: 100, reconnectionDelayMax: 200 }));
    await until(() => c.connected, 5000, "consumer connected");
    await consume(c, "kill", { group: "g", prefetch: 20 });
    const p = await connect(b);
    for (let i = 0; i < 30; i++) await push(p, "kill", i);
    await until(() => c.msgs.length >= 10, 5000, "some delivered");
    c.io.uri = b.url; // where the reconnection goes (the load balancer's part)
    await a.stop("SIGKILL");
    for (let i = 30; i < 60; i++) await push(p, "kill", i);
    await until(() => new Set(payloads(c)).size === 60, 15000, "every message at least once");
    assert.equal(c.recovered, true, "the session was recovered on b");
    c.disconnect();
  });

  it("bad input gets {ok:false, error} and leaves the queue untouched", CASE, async () => {
    const a = await node(["--queue-max-payload", "200", "--queue-max-prefetch", "100"]);
    const s = await connect(a);
    const refused = async (...args) => {
      const r = await ask(s, ...args);
      assert.equal(r.ok, false, `${JSON.stringify(args)} accepted`);
      assert.equal(typeof r.error, "string");
      assert.ok(r.error.length > 0 && r.error.length < 40);
      return r.error;
    };
    assert.equal(await refused("queue:push", 42, "x"), "invalid queue");
    assert.equal(await refused("queue:push", "", "x"), "invalid queue");
    assert.equal(await refused("queue:push", "q".repeat(201), "x"), "invalid queue");
    assert.equal(await refused("queue:push", "a\nb", "x"), "invalid queue");
    assert.equal(await refused("queue:push", "big", "x".repeat(500)), "too big");
    assert.equal(await refused("queue:consume", "q", {}), "invalid group");
    assert.equal(await refused("queue:consume", "q", { group: 7 }), "invalid group");
    assert.equal(await refused("queue:consume", "q", "g"), "invalid group");
    for (const prefetch of [0, -1, 1.5, "5", 101]) {
      assert.equal(await refused("queue:consume", "q", { group: "g", prefetch }), "invalid prefetch");
    }
    assert.equal(await refused("queue:cancel", "q", { group: "g" }), "not consuming");
    assert.equal(await redis.cmd("EXISTS", "sockeye:{q:big}:big"), 0);
    // and a good one still goes through
    assert.equal((await ask(s, "queue:push", "q", { ok: 1 })).ok, true);
  });

  it("Redis down: a push fails fast with {ok:false}", CASE, async () => {
    const r2 = await startRedis();
    try {
      const n = await startNode(r2);
      nodes.push(n);
      const s = await connect(n);
      await push(s, "down", 1);
      await r2.stop("SIGKILL");
      const r = await ask(s, "queue:push", "down", 2);
      assert.deepEqual(r, { ok: false, error: "redis unreachable" });
    } finally {
      await r2.cleanup();
    }
  });

  it("binary payloads travel through the queue", CASE, async () => {
    const a = await node();
    const c = consumer(await connect(a));
    await consume(c, "bin", { group: "g" });
    const p = await connect(a);
    await push(p, "bin", { name: "blob", data: Buffer.from([0xde, 0xad, 0xbe, 0xef]) });
    await until(() => c.msgs.length === 1, 5000, "the binary message");
    assert.deepEqual(Buffer.from(c.msgs[0].payload.data), Buffer.from([0xde, 0xad, 0xbe, 0xef]));
  });

  it("--event-queue: a client event becomes a push a backend reads from the stream", CASE, async () => {
    const a = await node(["--event-queue", "order=orders"]);
    const s = await connect(a);
    const r = await ask(s, "order", { sku: "A1", qty: 2 });
    assert.equal(r.ok, true);
    const entries = await redis.cmd("XRANGE", "sockeye:{q:orders}:orders", "-", "+");
    assert.equal(entries.length, 1);
    const fields = entries[0][1];
    const body = JSON.parse(fields[fields.indexOf("j") + 1]);
    assert.deepEqual(body, { event: "order", args: [{ sku: "A1", qty: 2 }], sid: s.id, nsp: "/", claims: null });
  });

  it("pushed and acknowledged survives a Redis restart (appendonly yes, appendfsync always)", CASE, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sockeye-aof-"));
    const port = await freePort();
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir,
      "--appendonly", "yes", "--appendfsync", "always"];
    const spawnRedis = async () => {
      const proc = spawn("redis-server", args, { stdio: "ignore" });
      await until(async () => {
        try { return (await redisCmd(port, "PING")) === "PONG"; } catch { return false; }
      }, 5000, "redis with AOF");
      return proc;
    };
    let proc = await spawnRedis();
    try {
      const n = await startNode({ url: `redis://127.0.0.1:${port}` }, ["--queue-ack-timeout", "3000"]);
      nodes.push(n);
      const p = await connect(n);
      for (let i = 0; i < 10; i++) await push(p, "dur", i);
      const c = consumer(await connect(n), { ackIf: (m) => m.payload < 4 });
      await consume(c, "dur", { group: "g", prefetch: 4 });
      // 0-3 acknowledged, then 4-7 fill the prefetch and stay unacknowledged.
      await until(() => c.msgs.length === 8, 5000, "4 processed and acknowledged, 4 held");
      await until(async () => (await redisCmd(port, "XPENDING", "sockeye:{q:dur}:dur", "g"))[0] === 4,
        5000, "the acks reached Redis");
      c.disconnect();
      await stopProc(proc, "SIGKILL");
      proc = await spawnRedis();
      const c2 = consumer(await connect(n));
      await until(async () => {
        const r = await ask(c2, "queue:consume", "dur", { group: "g" });
        return r.ok === true;
      }, 15000, "the node back on Redis");
      await until(() => c2.msgs.length >= 6, 15000, "the 6 not acknowledged");
      await sleep(300);
      assert.deepEqual(payloads(c2).sort((x, y) => x - y), [4, 5, 6, 7, 8, 9]);
    } finally {
      await stopProc(proc, "SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------------ authentication

function hs256(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ exp: Math.floor(Date.now() / 1000) + 600, ...claims })}`;
  return `${input}.${crypto.createHmac("sha256", secret).update(input).digest("base64url")}`;
}

describe("queues and tokens", { skip: !HAVE_REDIS && "redis-server not installed" }, () => {
  const SECRET = "a secret of more than thirty-two bytes, for tests";
  let redis, n;
  before(async () => {
    redis = await startRedis();
    n = await startNode(redis, [], { env: { SOCKEYE_JWT_SECRET: SECRET } });
  });
  after(async () => {
    closeClients();
    await n.stop("SIGKILL");
    await redis.cleanup();
  });

  it("queue_push and queue_consume claims say which queues a client may use", CASE, async () => {
    const s = await connect(n, "/", { auth: { token: hs256(SECRET, { queue_push: ["orders:*"], queue_consume: ["jobs"] }) } });
    assert.equal((await ask(s, "queue:push", "orders:eu", 1)).ok, true);
    assert.deepEqual(await ask(s, "queue:push", "jobs", 1), { ok: false, error: "not allowed" });
    assert.deepEqual(await ask(s, "queue:consume", "orders:eu", { group: "g" }), { ok: false, error: "not allowed" });
    assert.deepEqual(await ask(s, "queue:consume", "jobs", { group: "g" }), { ok: true });
    const none = await connect(n, "/", { auth: { token: hs256(SECRET, {}) } });
    assert.deepEqual(await ask(none, "queue:push", "orders:eu", 1), { ok: false, error: "not allowed" });
  });
});
