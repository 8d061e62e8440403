// Wire compatibility with the Node.js ecosystem, checked with the npm packages
// themselves (tests/package.json pins them): @socket.io/redis-emitter 5.1.0 publishing
// into a cluster of `sockeye` nodes, and a Node.js socket.io 4.8.4 server on
// @socket.io/redis-adapter 8.3.0 sharing a cluster with Sockeye nodes, broadcasting
// both ways and asking/answering cluster requests both ways.
//
// Negative checks use a marker barrier (see cluster.test.js): one publisher's
// messages reach each node in publish order.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const C = require("../lib/cluster");

const CASE = { timeout: 30000 };
let seq = 0;
const token = () => `m${++seq}`;

describe("@socket.io/redis-emitter reaches Sockeye clients", () => {
  let redis;
  let nodes;
  let emitter;
  let client;
  let x0;
  let x1;
  let y1;
  let z0;
  let z1;
  let roots;

  before(async () => {
    redis = await C.startRedis();
    nodes = await Promise.all([C.startNode(redis), C.startNode(redis)]);
    client = createClient({ url: redis.url });
    client.on("error", () => {});
    await client.connect();
    emitter = new Emitter(client);
    x0 = await C.connect(nodes[0]);
    x1 = await C.connect(nodes[1]);
    y1 = await C.connect(nodes[1]);
    z0 = await C.connect(nodes[0], "/chat");
    z1 = await C.connect(nodes[1], "/chat");
    roots = [x0, x1, y1];
    for (const [s, name] of [[x0, "x0"], [x1, "x1"], [y1, "y1"], [z0, "z0"], [z1, "z1"]]) s.name = name;
    await C.ask(x0, "join", "e1");
    await C.ask(x1, "join", ["e1", "e2"]);
    await C.ask(z0, "join", "e1");
  });
  after(async () => {
    C.closeClients();
    await client.quit().catch(() => {});
    await Promise.all(nodes.map((n) => n.stop()));
    await redis.cleanup();
  });

  // Emits through op (an emitter or one of its operators) and returns who got it.
  async function via(op, ...args) {
    const ev = token();
    op.emit(ev, ev, ...args);
    const m = token();
    emitter.emit("marker", m);
    await Promise.all(roots.map((s) => C.waitFor(s, "marker", (a) => a[0] === m)));
    return [x0, x1, y1, z0, z1].filter((s) => C.got(s, ev).length > 0).map((s) => s.name);
  }

  it("io.emit reaches every client of the namespace on every node", CASE, async () => {
    assert.deepEqual(await via(emitter), ["x0", "x1", "y1"]);
  });

  it("to a room, to several rooms, except", CASE, async () => {
    assert.deepEqual(await via(emitter.to("e1")), ["x0", "x1"]);
    assert.deepEqual(await via(emitter.to("e2")), ["x1"]);
    assert.deepEqual(await via(emitter.to("e1").to("e2")), ["x0", "x1"]);
    assert.deepEqual(await via(emitter.except("e2")), ["x0", "y1"]);
    assert.deepEqual(await via(emitter.to(y1.id)), ["y1"]);
  });

  it("of(namespace)", CASE, async () => {
    const ev = token();
    const m = token();
    const chat = emitter.of("/chat");
    chat.to("e1").emit(ev, 1);
    chat.emit("marker", m);
    emitter.emit("marker", m);
    await Promise.all([z0, z1, ...roots].map((s) => C.waitFor(s, "marker", (a) => a[0] === m)));
    assert.deepEqual([x0, x1, y1, z0, z1].filter((s) => C.got(s, ev).length > 0).map((s) => s.name), ["z0"]);
  });

  it("volatile", CASE, async () => {
    assert.deepEqual(await via(emitter.volatile), ["x0", "x1", "y1"]);
  });

  it("arguments keep their types, binary included", CASE, async () => {
    const ev = token();
    const buf = Buffer.from([1, 2, 3, 0, 255]);
    emitter.emit(ev, 1, 2.5, "s", true, null, { a: [1, { b: buf }] }, buf);
    await C.waitFor(x1, ev);
    const [args] = C.got(x1, ev);
    assert.deepEqual(C.norm(args.slice(0, 7)), C.norm([1, 2.5, "s", true, null, { a: [1, { b: buf }] }, buf]));
  });

  it("socketsJoin / socketsLeave / disconnectSockets requests", CASE, async () => {
    emitter.in("e2").socketsJoin("e3");
    assert.deepEqual(await via(emitter.to("e3")), ["x1"]);
    emitter.in("e3").socketsLeave("e3");
    assert.deepEqual(await via(emitter.to("e3")), []);
    const victim = await C.connect(nodes[0]);
    await C.ask(victim, "join", "doomed");
    const gone = new Promise((resolve) => victim.once("disconnect", resolve));
    emitter.in("doomed").disconnectSockets();
    assert.equal(await gone, "io server disconnect");
  });
});

describe("a Node.js server on @socket.io/redis-adapter in a cluster with Sockeye nodes", () => {
  let redis;
  let A;
  let B;
  let io;
  let httpServer;
  let pub;
  let sub;
  let N; // {url} of the Node server, for C.connect
  let a1;
  let b1;
  let n1;

  before(async () => {
    redis = await C.startRedis();
    [A, B] = await Promise.all([C.startApiNode(redis, "a"), C.startApiNode(redis, "b")]);
    pub = createClient({ url: redis.url });
    sub = pub.duplicate();
    pub.on("error", () => {});
    sub.on("error", () => {});
    await Promise.all([pub.connect(), sub.connect()]);
    httpServer = http.createServer();
    io = new Server(httpServer, { adapter: createAdapter(pub, sub, { requestsTimeout: 3000 }) });
    io.of("/chat");
    io.on("connection", (s) => {
      s.data = { who: "node", q: s.handshake.query.tag };
      s.on("join", (room, cb) => {
        s.join(room);
        cb({ ok: true });
      });
    });
    io.on("hello", (arg, cb) => {
      if (typeof cb === "function") cb({ node: "n", arg });
    });
    await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
    N = { url: `http://127.0.0.1:${httpServer.address().port}` };
    a1 = await C.connect(A, "/", { auth: { t: "a1" } });
    b1 = await C.connect(B);
    n1 = await C.connect(N, "/", { query: { tag: "n1" } });
    for (const [s, name] of [[a1, "a1"], [b1, "b1"], [n1, "n1"]]) {
      s.name = name;
      s.on("q", (x, cb) => cb({ from: name, x }));
    }
    await C.ask(a1, "join", "r");
    await C.ask(n1, "join", "r");
    await C.ask(b1, "set-data", { who: "b1" });
    // the Node adapter subscribes asynchronously: wait until Redis counts 3 servers
    await C.until(async () => (await redis.cmd("PUBSUB", "NUMSUB", "socket.io-request#/#"))[1] === 3, C.T, "3 servers");
  });
  after(async () => {
    C.closeClients();
    io.close();
    await Promise.all([pub.quit().catch(() => {}), sub.quit().catch(() => {})]);
    await Promise.all([A.stop(), B.stop()]);
    await redis.cleanup();
  });

  it("Node broadcasts reach Sockeye clients (room, except, binary)", CASE, async () => {
    const buf = Buffer.from([9, 8, 7]);
    io.to("r").emit("from-node", 1, buf);
    io.except("r").emit("not-r", 2);
    await C.waitFor(a1, "from-node");
    assert.deepEqual(C.norm(C.got(a1, "from-node")[0]), C.norm([1, buf]));
    await C.waitFor(b1, "not-r", (x) => x[0] === 2);
    io.emit("marker", "after");
    await C.waitFor(b1, "marker");
    await C.waitFor(a1, "marker");
    assert.equal(C.got(b1, "from-node").length, 0);
    assert.equal(C.got(a1, "not-r").length, 0);
  });

  it("Sockeye broadcasts reach Node clients (room, socket id, volatile)", CASE, async () => {
    assert.deepEqual(await C.ask(b1, "emit", { event: "from-b", args: [{ k: [1] }], to: "r" }), { err: null });
    await C.waitFor(n1, "from-b", (x) => x[0].k[0] === 1);
    await C.ask(b1, "emit", { event: "direct", args: [], to: n1.id });
    await C.waitFor(n1, "direct");
    await C.ask(a1, "emit", { event: "vol", args: [3], volatile: true });
    await C.waitFor(n1, "vol");
    await C.waitFor(a1, "from-b");
  });

  it("Node's fetchSockets sees Sockeye sockets with their rooms, data and handshake", CASE, async () => {
    const sockets = await io.fetchSockets();
    const byId = Object.fromEntries(sockets.map((s) => [s.id, s]));
    assert.ok(byId[a1.id] && byId[b1.id] && byId[n1.id]);
    assert.ok(byId[a1.id].rooms.has("r"));
    assert.deepEqual(byId[b1.id].data, { who: "b1" });
    assert.deepEqual(byId[a1.id].handshake.auth, { t: "a1" });
    const inR = await io.in("r").fetchSockets();
    assert.deepEqual(inR.map((s) => s.id).sort(), [a1.id, n1.id].sort());
  });

  it("Sockeye's fetchSockets sees Node sockets", CASE, async () => {
    const r = await C.ask(b1, "fetch", {});
    assert.equal(r.err, null);
    const n = r.sockets.find((s) => s.id === n1.id);
    assert.ok(n, "the Node server's socket");
    assert.deepEqual(n.data, { who: "node", q: "n1" });
    assert.ok(n.rooms.includes("r"));
    assert.equal(n.handshake.query.tag, "n1");
  });

  it("allRooms and serverCount agree both ways", CASE, async () => {
    const nodeRooms = await io.of("/").adapter.allRooms();
    for (const room of ["r", a1.id, b1.id, n1.id]) assert.ok(nodeRooms.has(room), room);
    const r = await C.ask(a1, "all-rooms");
    assert.equal(r.err, null);
    for (const room of ["r", a1.id, b1.id, n1.id]) assert.ok(r.rooms.includes(room), room);
    assert.equal(await io.of("/").adapter.serverCount(), 3);
    assert.deepEqual(await C.ask(a1, "server-count"), { err: null, count: 3 });
  });

  it("serverSideEmit with acks both ways", CASE, async () => {
    const r = await C.ask(a1, "server-emit", { event: "hello", args: [42], ack: true });
    assert.equal(r.err, null);
    const nodes = r.responses.map((x) => x.node).sort();
    assert.deepEqual(nodes, ["b", "n"]);
    const fromNode = await new Promise((resolve, reject) =>
      io.serverSideEmit("hello", "hi", (err, res) => (err ? reject(err) : resolve(res))));
    assert.deepEqual(fromNode.map((x) => x.node).sort(), ["a", "b"]);
    for (const x of fromNode) assert.deepEqual(x.args, ["hi"]);
  });

  it("socketsJoin and disconnectSockets both ways", CASE, async () => {
    io.in(b1.id).socketsJoin("from-node");
    await C.until(async () => (await io.in("from-node").fetchSockets()).length === 1, C.T, "b1 joined");
    await C.ask(a1, "sockets-join", { to: n1.id, room: "from-sockeye" });
    await C.until(async () => (await io.in("from-sockeye").local.fetchSockets()).length === 1, C.T, "n1 joined");
    const nGone = new Promise((resolve) => n1.once("disconnect", resolve));
    await C.ask(a1, "disconnect-sockets", { to: "from-sockeye" });
    assert.equal(await nGone, "io server disconnect");
    n1 = await C.connect(N);
    n1.name = "n1";
    n1.on("q", (x, cb) => cb({ from: "n1", x }));
    const bGone = new Promise((resolve) => b1.once("disconnect", resolve));
    io.in("from-node").disconnectSockets();
    assert.equal(await bGone, "io server disconnect");
    b1 = await C.connect(B);
    b1.name = "b1";
    b1.on("q", (x, cb) => cb({ from: "b1", x }));
  });

  it("broadcasts with acks both ways", CASE, async () => {
    const fromNode = await io.timeout(3000).emitWithAck("q", 5);
    assert.deepEqual(fromNode.map((x) => x.from).sort(), ["a1", "b1", "n1"]);
    const r = await C.ask(a1, "emit-ack", { event: "q", args: [6], timeout: 3000 });
    assert.equal(r.err, null);
    assert.deepEqual(r.responses.map((x) => x[0].from).sort(), ["a1", "b1", "n1"]);
  });
});
