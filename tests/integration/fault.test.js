// Faults: Redis stopped and restarted mid-run, and a node that stops answering.
// What must hold (issue 3): clients stay connected, local delivery goes on, cross-node
// broadcasts fail visibly (log line, metric, error to the API caller), the nodes
// reconnect, resubscribe and say so, cross-node delivery resumes; a dead or frozen
// node costs the others at most their request timeout.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const C = require("../lib/cluster");

const CASE = { timeout: 60000 };

async function up(node, want) {
  const text = await C.metrics(node);
  return (
    C.metric(text, "sockeye_redis_up", '{connection="command"}') === want &&
    C.metric(text, "sockeye_redis_up", '{connection="subscriber"}') === want
  );
}

describe("Redis goes away and comes back", () => {
  let redis;
  let S0;
  let S1;
  let A;
  let p0;
  let q0;
  let p1;
  let a0;
  const disconnects = [];

  before(async () => {
    redis = await C.startRedis();
    [S0, S1, A] = await Promise.all([C.startNode(redis), C.startNode(redis), C.startApiNode(redis, "a")]);
    p0 = await C.connect(S0);
    q0 = await C.connect(S0);
    p1 = await C.connect(S1);
    a0 = await C.connect(A);
    for (const s of [p0, q0, p1, a0]) {
      s.on("disconnect", (why) => disconnects.push(why));
      if (s !== a0) assert.deepEqual(await C.ask(s, "join", "f"), { ok: true });
    }
    p0.emit("chat", "f", "before");
    await C.waitFor(p1, "chat", (x) => x[1] === "before");
    await C.waitFor(q0, "chat", (x) => x[1] === "before");
  });
  after(async () => {
    C.closeClients();
    await Promise.all([S0, S1, A].map((n) => n.stop()));
    await redis.cleanup();
  });

  it("while Redis is down: clients stay, local delivery goes on, cross-node fails visibly", CASE, async () => {
    await redis.stop("SIGKILL");
    for (const n of [S0, S1, A]) {
      await C.logged(n, /redis: command connection down/);
      await C.logged(n, /redis: subscriber connection down/);
    }
    for (const n of [S0, S1]) await C.until(() => up(n, 0), C.T, `node ${n.port} reports redis down`);
    p0.emit("chat", "f", "during");
    await C.waitFor(q0, "chat", (x) => x[1] === "during"); // same node: delivered
    await C.logged(S0, /could not be published/);
    const text = await C.metrics(S0);
    assert.ok(C.metric(text, "sockeye_redis_publish_failures_total") >= 1);
    // the API caller is told, and its local part still happens
    const r = await C.ask(a0, "emit", { event: "x", args: [] });
    assert.equal(r.err, "redis unreachable or refused the command");
    await C.waitFor(a0, "x");
    const f = await C.ask(a0, "fetch", {});
    assert.equal(f.err, "redis unreachable or refused the command");
    assert.deepEqual(f.sockets.map((s) => s.id), [a0.id]);
    const c = await C.ask(a0, "server-count");
    assert.deepEqual(c, { err: "redis unreachable or refused the command", count: 1 });
    for (const s of [p0, q0, p1, a0]) assert.ok(s.connected);
    assert.deepEqual(disconnects, []);
  });

  it("when Redis is back: the nodes reconnect, resubscribe, say so, and delivery resumes", CASE, async () => {
    redis = await redis.restart();
    for (const n of [S0, S1, A]) {
      await C.logged(n, /subscriber back after \d+ ms, resubscribed \d+ channel\(s\)/, 15000);
      await C.logged(n, /command connection back after \d+ ms/, 15000);
    }
    for (const n of [S0, S1]) {
      await C.until(() => up(n, 1), C.T, `node ${n.port} reports redis up`);
      const text = await C.metrics(n);
      assert.ok(C.metric(text, "sockeye_redis_reconnects_total") >= 2);
    }
    p0.emit("chat", "f", "after");
    await C.waitFor(p1, "chat", (x) => x[1] === "after");
    // what was published while down is lost for the other node (pub/sub has no memory),
    // and nothing arrives twice
    assert.deepEqual(C.got(p1, "chat").map((x) => x[1]), ["before", "after"]);
    p1.emit("chat", "f", "back");
    await C.waitFor(p0, "chat", (x) => x[1] === "back");
    assert.deepEqual(await C.ask(a0, "server-count"), { err: null, count: 3 });
    assert.deepEqual(disconnects, []);
    // the node registry came back too
    await C.until(async () => (await redis.cmd("ZCARD", "sockeye:nodes")) === 3, 10000, "3 registry records");
  });
});

describe("a node that dies or freezes does not stall the others", () => {
  let redis;
  let A;
  let B;
  let K;
  let a;
  let b;
  let k;

  before(async () => {
    redis = await C.startRedis();
    [A, B, K] = await Promise.all(
      ["a", "b", "k"].map((name) => C.startApiNode(redis, name, ["--request-timeout", "1000"])),
    );
    a = await C.connect(A);
    b = await C.connect(B);
    k = await C.connect(K);
    for (const [s, name] of [[a, "a"], [b, "b"], [k, "k"]]) s.on("q", (x, cb) => cb({ from: name }));
    assert.deepEqual(await C.ask(a, "server-count"), { err: null, count: 3 });
  });
  after(async () => {
    C.closeClients();
    await Promise.all([A, B, K].map((n) => n.stop()));
    await redis.cleanup();
  });

  async function timed(fn) {
    const t0 = Date.now();
    const r = await fn();
    return [r, Date.now() - t0];
  }

  it("a frozen node (SIGSTOP): requests end at the request timeout with the others' answers", CASE, async () => {
    K.proc.kill("SIGSTOP");
    try {
      let [r, ms] = await timed(() => C.ask(a, "fetch", {}));
      assert.match(r.err, /timed out/);
      assert.deepEqual(r.sockets.map((s) => s.id).sort(), [a.id, b.id].sort());
      assert.ok(ms >= 900 && ms < 2500, `fetch took ${ms} ms`);
      [r, ms] = await timed(() => C.ask(a, "server-emit", { event: "hello", args: [], ack: true }));
      assert.match(r.err, /timed out/);
      assert.deepEqual(r.responses.map((x) => x.node), ["b"]);
      assert.ok(ms < 2500, `server-emit took ${ms} ms`);
      [r, ms] = await timed(() => C.ask(a, "all-rooms"));
      assert.match(r.err, /timed out/);
      assert.ok(r.rooms.includes(b.id) && !r.rooms.includes(k.id));
      assert.ok(ms < 2500, `all-rooms took ${ms} ms`);
      [r, ms] = await timed(() => C.ask(a, "emit-ack", { event: "q", args: [1], timeout: 1500 }));
      assert.match(r.err, /timed out/);
      assert.deepEqual(r.responses.map((x) => x[0].from).sort(), ["a", "b"]);
      assert.ok(ms >= 1400 && ms < 3000, `emit-ack took ${ms} ms`);
      // B is not blocked either
      const [rb, msb] = await timed(() => C.ask(b, "fetch", { local: true }));
      assert.equal(rb.err, null);
      assert.ok(msb < 1000);
    } finally {
      K.proc.kill("SIGCONT");
    }
  });

  it("a killed node (SIGKILL) leaves the count at once: requests complete without waiting", CASE, async () => {
    await C.stopProc(K.proc, "SIGKILL");
    await C.until(async () => (await C.ask(a, "server-count")).count === 2, C.T, "server count 2");
    const t0 = Date.now();
    const r = await C.ask(a, "fetch", {});
    assert.equal(r.err, null);
    assert.deepEqual(r.sockets.map((s) => s.id).sort(), [a.id, b.id].sort());
    assert.ok(Date.now() - t0 < 900, "no timeout needed");
    // its registry record is left to expire by its TTL (a killed node cannot remove it)
    const ttls = await Promise.all(
      (await redis.cmd("ZRANGE", "sockeye:nodes", "0", "-1")).map((u) => redis.cmd("PTTL", `sockeye:node:${u}`)),
    );
    for (const t of ttls) assert.ok(t > 0 && t <= 15000);
  });
});
