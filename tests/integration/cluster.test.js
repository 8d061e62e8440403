// Sockeye nodes in a cluster behind a real redis-server (started here, on a free
// loopback port, stopped by PID): every broadcast form reaches the matching sockets on
// every node, and the cluster operations (fetch sockets, sockets join/leave/disconnect,
// server count, all rooms, server-side emit with acks) span the nodes.
//
// Negative checks ("c did not get it") use a marker barrier instead of a sleep: after
// the emit under test, the same sender broadcasts a marker to everyone. One node's
// publishes reach each other node in order over one Redis connection, and its local
// deliveries are in order too, so once a client holds the marker it holds everything
// sent before it that was meant for it.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const { spawn } = require("node:child_process");
const C = require("../lib/cluster");
const { BIN } = require("../lib/harness");

const CASE = { timeout: 30000 };
let seq = 0;
const token = () => `m${++seq}`;

// The first n arguments (a trailing recovery offset is not part of the payload).
const head = (args, n) => args.slice(0, n);

// Runs the binary to completion (bounded): {code, stdout, stderr}.
function run(args, ms = 10000) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`sockeye did not exit within ${ms} ms\n${stderr}`));
    }, ms);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("three sockeye nodes (standalone executable, recovery on)", () => {
  let redis;
  let nodes = [];
  let all = []; // every "/" client, all in room "all" (the marker room)

  before(async () => {
    redis = await C.startRedis();
    nodes = await Promise.all([0, 1, 2].map(() => C.startNode(redis)));
  });
  after(async () => {
    C.closeClients();
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.cleanup();
  });

  async function client(i, nsp = "/", opts = {}) {
    const s = await C.connect(nodes[i], nsp, opts);
    if (nsp === "/") {
      assert.deepEqual(await C.ask(s, "join", "all"), { ok: true });
      all.push(s);
    }
    return s;
  }

  // sender bcasts a marker to "all" and every "/" client receives it.
  async function barrier(sender) {
    const m = token();
    sender.emit("bcast", "all", m);
    await Promise.all(all.map((s) => C.waitFor(s, "bcast", (a) => a[1] === m)));
  }

  it("each node registers itself in Redis with a TTL", CASE, async () => {
    const uids = await redis.cmd("ZRANGE", "sockeye:nodes", "0", "-1");
    assert.equal(uids.length, 3);
    for (const uid of uids) {
      assert.match(uid, /^[A-Za-z0-9_-]{6}$/);
      const h = await redis.cmd("HGETALL", `sockeye:node:${uid}`);
      const rec = Object.fromEntries(h.reduce((acc, v, i) => (i % 2 ? acc[acc.length - 1].push(v) : acc.push([v]), acc), []));
      assert.equal(rec.id, uid);
      assert.match(rec.address, /^127\.0\.0\.1:\d+$/);
      assert.ok(Number(rec.pid) > 0 && Number(rec.started) > 0 && rec.connections !== undefined);
      const ttl = await redis.cmd("PTTL", `sockeye:node:${uid}`);
      assert.ok(ttl > 0 && ttl <= 15000, `ttl ${ttl}`);
    }
    const ports = (await Promise.all(uids.map((u) => redis.cmd("HGET", `sockeye:node:${u}`, "address"))))
      .map((a) => Number(a.split(":")[1]))
      .sort();
    assert.deepEqual(ports, nodes.map((n) => n.port).sort());
    // every node serves / and /chat: counted by NUMSUB as the Node adapter counts
    const [, n] = await redis.cmd("PUBSUB", "NUMSUB", "socket.io-request#/#");
    assert.equal(n, 3);
  });

  it("relay to a room (socket.to) reaches members on every node, not the sender", CASE, async () => {
    const a = await client(0);
    const b = await client(1);
    const c = await client(2);
    const out = await client(1); // same node as b, not in the room
    for (const s of [a, b, c]) assert.deepEqual(await C.ask(s, "join", "r"), { ok: true });
    a.emit("chat", "r", { k: 1 });
    await barrier(a);
    for (const s of [b, c]) assert.deepEqual(C.got(s, "chat").map((x) => head(x, 2)), [["r", { k: 1 }]]);
    assert.equal(C.got(a, "chat").length, 0);
    assert.equal(C.got(out, "chat").length, 0);
  });

  it("bcast to a room includes the sender, across nodes, binary intact", CASE, async () => {
    const a = await client(2);
    const b = await client(0);
    for (const s of [a, b]) await C.ask(s, "join", "bin");
    const buf = Buffer.from([0, 1, 2, 250, 255]);
    a.emit("bcast", "bin", { buf, n: 2.5 });
    for (const s of [a, b]) await C.waitFor(s, "bcast", (x) => x[0] === "bin");
    for (const s of [a, b]) {
      const [args] = C.got(s, "bcast").filter((x) => x[0] === "bin");
      assert.deepEqual(C.norm(head(args, 2)), C.norm(["bin", { buf, n: 2.5 }]));
    }
  });

  it("a relay to several rooms reaches their union, each socket once", CASE, async () => {
    const sender = await client(0);
    const in1 = await client(1);
    const in2 = await client(2);
    const both = await client(2);
    const none = await client(0);
    await C.ask(sender, "join", ["u1", "u2"]);
    await C.ask(in1, "join", "u1");
    await C.ask(in2, "join", "u2");
    await C.ask(both, "join", ["u1", "u2"]);
    sender.emit("chat", ["u1", "u2"], "hello");
    await barrier(sender);
    for (const s of [in1, in2, both]) assert.equal(C.got(s, "chat").filter((x) => x[1] === "hello").length, 1);
    assert.equal(C.got(none, "chat").length, 0);
    assert.equal(C.got(sender, "chat").length, 0);
  });

  it("namespaces stay apart across nodes", CASE, async () => {
    const a = await client(0, "/chat");
    const b = await client(2, "/chat");
    const rootB = await client(2);
    await C.ask(a, "join", "room");
    await C.ask(b, "join", "room");
    await C.ask(rootB, "join", "room");
    a.emit("bcast", "room", "in-chat");
    await C.waitFor(b, "bcast", (x) => x[1] === "in-chat");
    await barrier(rootB);
    assert.equal(C.got(rootB, "bcast").filter((x) => x[1] === "in-chat").length, 0);
  });

  it("a client cut from one node recovers on another: what it missed, in order, once", CASE, async () => {
    // Messages keep flowing while the restore runs, so the live packets held during
    // the restore and the stored ones overlap and must be merged by offset.
    const { io } = require("socket.io-client");
    const pubr = await client(1);
    await C.ask(pubr, "join", "rec");
    const a = io(nodes[0].url, {
      transports: ["websocket"], forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 200,
      randomizationFactor: 0, timeout: C.T,
    });
    await new Promise((resolve, reject) => {
      a.once("connect", resolve);
      a.once("connect_error", reject);
    });
    await C.ask(a, "join", "rec");
    const seen = [];
    let cut = false;
    let recovered = null;
    a.on("bcast", (room, n) => {
      seen.push(n);
      if (!cut && seen.length === 5) {
        cut = true;
        a.io.uri = nodes[2].url;
        a.io.engine.transport.ws._socket.destroy();
      }
    });
    a.on("connect", () => {
      if (cut) recovered = a.recovered;
    });
    const total = 150;
    for (let n = 0; n < total; n++) {
      pubr.emit("bcast", "rec", n);
      await new Promise((r) => setTimeout(r, 5));
    }
    await C.until(() => seen.length >= total, 10000, `all ${total} messages (got ${seen.length})`);
    await barrier(pubr).catch(() => {}); // a late duplicate would arrive before this
    a.disconnect();
    assert.equal(recovered, true);
    assert.deepEqual(seen, Array.from({ length: total }, (_, i) => i));
  });

  it("/metrics shows the cluster link", CASE, async () => {
    const text = await C.metrics(nodes[0]);
    assert.equal(C.metric(text, "sockeye_redis_up", '{connection="command"}'), 1);
    assert.equal(C.metric(text, "sockeye_redis_up", '{connection="subscriber"}'), 1);
    assert.equal(C.metric(text, "sockeye_redis_publish_failures_total"), 0);
    assert.ok(C.metric(text, "sockeye_redis_messages_total", '{direction="out"}') > 0);
    assert.ok(C.metric(text, "sockeye_redis_messages_total", '{direction="in"}') > 0);
  });

  it("refuses to start when Redis is unreachable, with a clear error", CASE, async () => {
    const port = await C.freePort();
    const r = await run(["--host", "127.0.0.1", "--port", "0", "--redis", `redis://127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot join the cluster: .*refused/i);
    assert.doesNotMatch(r.stdout, /listening/);
  });

  it("refuses a bad URL as a configuration error", CASE, async () => {
    const r = await run(["--redis", "rediss://127.0.0.1:1"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--redis: bad Redis URL/);
  });

  it("authenticates with the URL's password, refuses a wrong one with a clear error", CASE, async () => {
    const secured = await C.startRedis({ extra: ["--requirepass", "s3cret"] });
    try {
      const bad = await run(["--host", "127.0.0.1", "--port", "0", "--redis", `redis://:nope@${secured.addr}`]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, /cannot join the cluster: .*(WRONGPASS|invalid password|AUTH)/i);
      assert.doesNotMatch(bad.stderr, /nope/, "the password is never printed");
      const good = await C.startSockeye(["--redis", `redis://:s3cret@${secured.addr}/2`]);
      const s = await C.connect(good);
      assert.deepEqual(await C.ask(s, "join", "x"), { ok: true });
      s.disconnect();
      await good.stop();
    } finally {
      await secured.cleanup();
    }
  });
});

describe("the cluster API across three nodes (example-cluster, mixed recovery settings)", () => {
  let redis;
  let A;
  let B;
  let Cn;
  let a1;
  let a2;
  let b1;
  let c1;
  let ac;
  let cc;
  let everyone;

  before(async () => {
    redis = await C.startRedis();
    [A, B, Cn] = await Promise.all([
      C.startApiNode(redis, "a", ["--recovery", "on"]),
      C.startApiNode(redis, "b"),
      C.startApiNode(redis, "c"),
    ]);
    a1 = await C.connect(A);
    a2 = await C.connect(A);
    b1 = await C.connect(B, "/", { auth: { token: "b1" }, query: { who: "b1" } });
    c1 = await C.connect(Cn);
    ac = await C.connect(A, "/chat");
    cc = await C.connect(Cn, "/chat");
    everyone = [a1, a2, b1, c1];
    await C.ask(a1, "join", "r1");
    await C.ask(b1, "join", ["r1", "r2"]);
    await C.ask(c1, "join", "r2");
    for (const [s, name] of [[a1, "a1"], [a2, "a2"], [b1, "b1"], [c1, "c1"], [ac, "ac"], [cc, "cc"]]) {
      s.name = name;
      s.on("q", (x, cb) => cb({ from: name, x }));
    }
  });
  after(async () => {
    C.closeClients();
    await Promise.all([A, B, Cn].map((n) => n.stop()));
    await redis.cleanup();
  });

  // a1 asks A to emit a marker to everyone in "/", and every "/" client gets it.
  async function barrier() {
    const m = token();
    assert.deepEqual(await C.ask(a1, "emit", { event: "marker", args: [m] }), { err: null });
    await Promise.all(everyone.map((s) => C.waitFor(s, "marker", (x) => x[0] === m)));
  }

  // Emits {event: ev, ...spec} through sender's node and returns who got it, after a
  // barrier; nobody may get it twice.
  async function form(spec, sender = a1) {
    const ev = token();
    assert.deepEqual(await C.ask(sender, "emit", { event: ev, args: [ev], ...spec }), { err: null });
    await barrier();
    const got = [...everyone, ac, cc].filter((s) => C.got(s, ev).length > 0);
    for (const s of got) assert.equal(C.got(s, ev).length, 1, `${s.name} got it twice`);
    return got.map((s) => s.name).sort();
  }

  it("to a room", CASE, async () => {
    assert.deepEqual(await form({ to: "r1" }), ["a1", "b1"]);
    assert.deepEqual(await form({ to: "r1" }, b1), ["a1", "b1"]); // from a node without recovery
  });

  it("to several rooms: their union, each socket once", CASE, async () => {
    assert.deepEqual(await form({ to: ["r1", "r2"] }), ["a1", "b1", "c1"]);
    assert.deepEqual(await form({ to: ["r1", "r2"] }, c1), ["a1", "b1", "c1"]);
  });

  it("except rooms", CASE, async () => {
    assert.deepEqual(await form({ except: "r2" }), ["a1", "a2"]);
    assert.deepEqual(await form({ to: ["r1", "r2"], except: "r1" }), ["c1"]);
  });

  it("to a socket id on another node", CASE, async () => {
    assert.deepEqual(await form({ to: c1.id }), ["c1"]);
  });

  it("socket.broadcast: everyone but the sender", CASE, async () => {
    assert.deepEqual(await form({ broadcast: true }), ["a2", "b1", "c1"]);
    assert.deepEqual(await form({ broadcast: true, to: "r2" }, b1), ["c1"]);
  });

  it("io.of(namespace): only that namespace, on every node", CASE, async () => {
    const ev = token();
    await C.ask(a1, "emit", { event: ev, args: [1], nsp: "/chat" });
    await Promise.all([ac, cc].map((s) => C.waitFor(s, ev)));
    await barrier();
    for (const s of everyone) assert.equal(C.got(s, ev).length, 0);
  });

  it("volatile still reaches idle clients on every node", CASE, async () => {
    assert.deepEqual(await form({ volatile: true }), ["a1", "a2", "b1", "c1"]);
    assert.deepEqual(await form({ volatile: true }, b1), ["a1", "a2", "b1", "c1"]);
  });

  it("local stays on the node", CASE, async () => {
    assert.deepEqual(await form({ local: true }), ["a1", "a2"]);
    assert.deepEqual(await form({ local: true }, c1), ["c1"]);
  });

  it("broadcast with acks collects every node's clients", CASE, async () => {
    const r = await C.ask(a1, "emit-ack", { event: "q", args: [7], to: ["r1", "r2"], timeout: 3000 });
    assert.equal(r.err, null);
    const from = r.responses.map((x) => x[0].from).sort();
    assert.deepEqual(from, ["a1", "b1", "c1"]);
    for (const x of r.responses) assert.equal(x[0].x, 7);
  });

  it("broadcast with acks ends at its timeout when a client stays silent", CASE, async () => {
    const mute = await C.connect(B);
    await C.ask(mute, "join", "mute");
    await C.ask(c1, "join", "mute");
    const t0 = Date.now();
    const r = await C.ask(a2, "emit-ack", { event: "q", args: [1], to: "mute", timeout: 1000 });
    const took = Date.now() - t0;
    assert.match(r.err, /timed out/);
    assert.deepEqual(r.responses.map((x) => x[0].from), ["c1"]);
    assert.ok(took >= 900 && took < 3000, `took ${took} ms`);
    mute.disconnect();
    await C.ask(c1, "leave", "mute");
  });

  it("fetchSockets spans the nodes, with rooms, data and handshake", CASE, async () => {
    await C.ask(b1, "set-data", { name: "bee", n: [1, 2] });
    const r = await C.ask(a2, "fetch", {});
    assert.equal(r.err, null);
    const byId = Object.fromEntries(r.sockets.map((s) => [s.id, s]));
    for (const s of everyone) assert.ok(byId[s.id], `${s.name} missing`);
    const b = byId[b1.id];
    assert.deepEqual(b.data, { name: "bee", n: [1, 2] });
    assert.deepEqual([...b.rooms].sort(), [b1.id, "r1", "r2"].sort());
    assert.deepEqual(b.handshake.auth, { token: "b1" });
    assert.equal(b.handshake.query.who, "b1");
    assert.equal(b.handshake.address, "127.0.0.1");
    assert.match(b.handshake.url, /^\/socket\.io\/\?/);
    assert.equal(typeof b.handshake.issued, "number");
    assert.equal(typeof b.handshake.time, "string");
    assert.equal(typeof b.handshake.headers, "object");
    const r2 = await C.ask(a2, "fetch", { to: "r2" });
    assert.deepEqual(r2.sockets.map((s) => s.id).sort(), [b1.id, c1.id].sort());
    const local = await C.ask(a2, "fetch", { local: true });
    assert.deepEqual(local.sockets.map((s) => s.id).sort(), [a1.id, a2.id].sort());
  });

  it("socketsJoin / socketsLeave act on every node", CASE, async () => {
    assert.deepEqual(await C.ask(a1, "sockets-join", { to: "r2", room: "j" }), { err: null });
    await C.until(async () => {
      const r = await C.ask(a1, "fetch", { to: "j" });
      return r.sockets.length === 2;
    }, C.T, "b1 and c1 in room j");
    assert.deepEqual(await form({ to: "j" }), ["b1", "c1"]);
    assert.deepEqual(await C.ask(a1, "sockets-leave", { to: "j", room: "j" }), { err: null });
    await C.until(async () => (await C.ask(a1, "fetch", { to: "j" })).sockets.length === 0, C.T, "room j empty");
    assert.deepEqual(await form({ to: "j" }), []);
  });

  it("disconnectSockets reaches a socket on another node", CASE, async () => {
    const victim = await C.connect(Cn);
    const gone = new Promise((resolve) => victim.once("disconnect", resolve));
    assert.deepEqual(await C.ask(a1, "disconnect-sockets", { to: victim.id }), { err: null });
    assert.equal(await gone, "io server disconnect");
  });

  it("serverCount and allRooms", CASE, async () => {
    assert.deepEqual(await C.ask(b1, "server-count"), { err: null, count: 3 });
    assert.deepEqual(await C.ask(cc, "server-count"), { err: null, count: 3 });
    const r = await C.ask(c1, "all-rooms");
    assert.equal(r.err, null);
    for (const room of ["r1", "r2", a1.id, a2.id, b1.id, c1.id]) assert.ok(r.rooms.includes(room), room);
    assert.equal(new Set(r.rooms).size, r.rooms.length, "each room once");
  });

  it("serverSideEmit reaches the other nodes' handlers; with ack, one answer each", CASE, async () => {
    const r = await C.ask(a1, "server-emit", { event: "hello", args: [1, { x: "y" }], ack: true });
    assert.equal(r.err, null);
    assert.deepEqual(r.responses.map((x) => x.node).sort(), ["b", "c"]);
    for (const x of r.responses) assert.deepEqual(x.args, [1, { x: "y" }]);
    assert.deepEqual(await C.ask(a1, "server-emit", { event: "plain", args: ["p"] }), { err: null });
    await C.waitFor(b1, "server-event", (x) => x[0].event === "plain" && x[0].node === "b");
    await C.waitFor(c1, "server-event", (x) => x[0].event === "plain" && x[0].node === "c");
    await barrier();
    assert.equal(C.got(a1, "server-event").filter((x) => x[0].event === "plain").length, 0, "not to itself");
  });
});

describe("without Redis the same calls answer for the node alone", () => {
  let node;
  let a;
  let b;

  before(async () => {
    node = await C.startSockeye([], { bin: C.EXAMPLE_CLUSTER });
    a = await C.connect(node);
    b = await C.connect(node);
    await C.ask(b, "join", "r");
    b.on("q", (x, cb) => cb({ from: "b" }));
  });
  after(async () => {
    C.closeClients();
    await node.stop();
  });

  it("fetch, rooms, count, server-side emit, room operations, acks", CASE, async () => {
    const f = await C.ask(a, "fetch", { to: "r" });
    assert.deepEqual(f.sockets.map((s) => s.id), [b.id]);
    const r = await C.ask(a, "all-rooms");
    assert.deepEqual([...r.rooms].sort(), [a.id, b.id, "r"].sort());
    assert.deepEqual(await C.ask(a, "server-count"), { err: null, count: 1 });
    assert.deepEqual(await C.ask(a, "server-emit", { event: "e", args: [], ack: true }), { err: null, responses: [] });
    assert.deepEqual(await C.ask(a, "server-emit", { event: "e", args: [] }), { err: null });
    assert.deepEqual(await C.ask(a, "sockets-join", { to: "r", room: "s" }), { err: null });
    assert.deepEqual((await C.ask(a, "fetch", { to: "s" })).sockets.map((s) => s.id), [b.id]);
    const acks = await C.ask(a, "emit-ack", { event: "q", args: [1], to: "s", timeout: 2000 });
    assert.deepEqual(acks, { err: null, responses: [[{ from: "b" }]] });
  });
});
