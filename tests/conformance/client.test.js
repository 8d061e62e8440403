// The contract with the OFFICIAL socket.io-client (v4, protocol v5) against the real
// `sockeye` binary running the standard application (node/program/app.c): every client case
// runs over websocket only, polling only, and polling upgraded to websocket.
// Every wait is bounded (T) and waits on an event, never on a sleep, except where
// time itself is the subject (the recovery window).
"use strict";
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const net = require("node:net");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { Manager } = require("socket.io-client");
const { startSockeye, stopProc, once, until, refused, ack, record, norm, clientSet, BIN } = require("../lib/harness");

const T = 5000; // bound on any single wait
const CASE = { timeout: 30000 };

const MODES = [
  { name: "websocket", opts: { transports: ["websocket"] }, final: "websocket" },
  { name: "polling", opts: { transports: ["polling"] }, final: "polling" },
  { name: "polling+upgrade", opts: { transports: ["polling", "websocket"], upgrade: true }, final: "websocket" },
];

// ---------------------------------------------------------------- helpers

const clients = clientSet({ timeout: T });
const closeAll = clients.closeAll;

function client(url, nsp, mode, opts = {}) {
  return clients.open(url + (nsp === "/" ? "" : nsp), { ...mode.opts, ...opts });
}

// Resolves once s is connected (and, for the upgrade mode, on websocket); rejects on
// connect_error or after T.
function connected(s, mode) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => done(new Error("timeout waiting for connect")), T);
    function done(err) {
      clearTimeout(t);
      s.off("connect", onConnect);
      s.off("connect_error", onError);
      if (err) return reject(err);
      if (!mode || mode.final === "polling") return resolve(s);
      until(() => s.io.engine && s.io.engine.transport.name === mode.final, T, `transport ${mode.final}`)
        .then(() => resolve(s), reject);
    }
    const onConnect = () => done();
    const onError = (err) => done(new Error(`connect_error: ${err.message}`));
    s.on("connect", onConnect);
    s.on("connect_error", onError);
    if (s.connected) done();
  });
}

// A recorded entry cut to its event and first n arguments: the trailing recovery offset
// (a string the server appends when recovery is on) is left out.
const strip = (entry, n) => entry.slice(0, n + 1);

// A round trip through the server: whatever the server queued to s before handling
// this echo has been delivered when it resolves (one connection keeps order).
const barrier = (s) => ack(s, "echo", "barrier");

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(T) });
  return { status: res.status, type: res.headers.get("content-type"), body: await res.text() };
}

function metric(text, name, labels = "") {
  const esc = (name + labels).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${esc} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

async function sockets(node, nsp = "/") {
  const { body } = await get(`${node.url}/metrics`);
  return metric(body, "sockeye_sockets", `{namespace="${nsp}"}`);
}

// Runs the binary to completion (bounded) and resolves {code, signal, stdout, stderr}.
function run(args, env = {}, ms = T) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`${BIN} ${args.join(" ")} still running after ${ms} ms`));
    }, ms);
    p.on("exit", (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

// Stops a node with SIGTERM and insists on a clean exit: under the sanitizers a leak
// or an error report turns into a nonzero status here.
async function stopOk(node) {
  const r = await stopProc(node.proc);
  assert.equal(r.code, 0, `sockeye exit ${r.code ?? r.signal}\n${node.stderr()}`);
}

let roomSeq = 0;
const room = (tag) => `${tag}-${process.pid}-${++roomSeq}`;

// ---------------------------------------------------------------- the application

describe("standard application with the official client", () => {
  let node;
  before(async () => {
    node = await startSockeye([
      "--namespace", "/chat",
      "--namespace-pattern", "^/dyn-[0-9]+$",
      "--ask-timeout", "300",
    ]);
  });
  after(async () => {
    closeAll();
    await stopOk(node);
  });
  afterEach(closeAll);

  for (const mode of MODES) {
    describe(`over ${mode.name}`, () => {
      const connect = (nsp = "/", opts) => connected(client(node.url, nsp, mode, opts), mode);

      it("connects, reports its transport, disconnects", CASE, async () => {
        const s = await connect();
        assert.equal(typeof s.id, "string");
        assert.equal(s.io.engine.transport.name, mode.final);
        const gone = once(s, "disconnect");
        s.disconnect();
        const [reason] = await gone;
        assert.equal(reason, "io client disconnect");
      });

      it("accepts an auth payload", CASE, async () => {
        const s = await connect("/", { auth: { token: "abc", nested: { n: 1 } } });
        assert.deepEqual(await ack(s, "join", room("auth")), [{ ok: true }]);
      });

      it("join and leave are acked; bad rooms are refused", CASE, async () => {
        const s = await connect();
        const r = room("jl");
        assert.deepEqual(await ack(s, "join", r), [{ ok: true }]);
        assert.deepEqual(await ack(s, "leave", r), [{ ok: true }]);
        assert.deepEqual(await ack(s, "join", ""), [{ ok: false, error: "invalid room" }]);
        assert.deepEqual(await ack(s, "join", { a: 1 }), [{ ok: false, error: "invalid room" }]);
        assert.deepEqual(await ack(s, "no-such-event", 1), [{ ok: false, error: "unknown event" }]);
      });

      it("another socket's id room cannot be joined (its private traffic)", CASE, async () => {
        const [a, b] = await Promise.all([connect(), connect()]);
        assert.deepEqual(await ack(a, "join", b.id), [{ ok: false, error: "reserved room" }]);
        assert.deepEqual(await ack(a, "join", [room("ok"), b.id]), [{ ok: false, error: "reserved room" }]);
        assert.deepEqual(await ack(a, "join", a.id), [{ ok: true }]);
        const la = record(a, "question");
        b.on("question", (cb) => cb("b's answer"));
        assert.deepEqual(await ack(b, "ask", "question"), ["b's answer"]);
        await barrier(a);
        assert.deepEqual(la, [], "a saw b's private question");
      });

      it("a number names the room of its decimal text", CASE, async () => {
        const [a, b] = await Promise.all([connect(), connect()]);
        const n = 1e6 + (++roomSeq);
        const log = record(b, "bcast");
        assert.deepEqual(await ack(a, "join", n), [{ ok: true }]);
        assert.deepEqual(await ack(b, "join", String(n)), [{ ok: true }]);
        a.emit("bcast", n, "num");
        await until(() => log.length === 1, T, "bcast to the numeric room");
        assert.deepEqual(strip(log[0], 2), ["bcast", n, "num"]);
      });

      it("echo acks every argument back", CASE, async () => {
        const s = await connect();
        const args = [1, "2", { 3: [true, null] }, [], "é☃"];
        assert.deepEqual(await ack(s, "echo", ...args), args);
        assert.deepEqual(await ack(s, "echo"), []);
      });

      it("echo carries binary both ways, nested too", CASE, async () => {
        const s = await connect();
        const args = [
          Buffer.from([1, 2, 3]),
          { nested: { buf: Buffer.from([4, 5]) }, list: [Buffer.from([0]), "x", Buffer.from([255])] },
          "text",
        ];
        assert.deepEqual(norm(await ack(s, "echo", ...args)), norm(args));
        const big = Buffer.alloc(200000, 7);
        assert.deepEqual(norm(await ack(s, "echo", big)), norm([big]));
      });

      // A node of its own: an empty buffer once aborted lws's permessage-deflate.
      it("echo carries an empty buffer", CASE, async () => {
        const own = await startSockeye([]);
        try {
          const s = await connected(client(own.url, "/", mode), mode);
          assert.deepEqual(norm(await ack(s, "echo", Buffer.alloc(0), "after")), [{ buf: [] }, "after"]);
        } finally {
          closeAll();
          await stopOk(own);
        }
      });

      it("chat reaches the room except the sender", CASE, async () => {
        const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
        const r = room("chat");
        const [la, lb, lc] = [a, b, c].map((s) => record(s, "chat", "bcast"));
        await Promise.all([ack(a, "join", r), ack(b, "join", r), ack(c, "join", room("other"))]);
        a.emit("chat", r, { text: "hi", bin: Buffer.from([9, 8]) });
        await until(() => lb.length === 1, T, "chat at b");
        assert.deepEqual(norm(strip(lb[0], 2)), norm(["chat", r, { text: "hi", bin: Buffer.from([9, 8]) }]));
        await Promise.all([barrier(a), barrier(c)]);
        assert.deepEqual(la, [], "the sender got its own chat");
        assert.deepEqual(lc, [], "a non-member got the chat");
      });

      it("bcast reaches the room including the sender", CASE, async () => {
        const [a, b, c] = await Promise.all([connect(), connect(), connect()]);
        const r = room("bcast");
        const [la, lb, lc] = [a, b, c].map((s) => record(s, "bcast"));
        await Promise.all([ack(a, "join", r), ack(b, "join", r)]);
        assert.deepEqual(await ack(a, "bcast", r, [1, 2]), [{ ok: true }]);
        await until(() => la.length === 1 && lb.length === 1, T, "bcast at a and b");
        assert.deepEqual(strip(la[0], 2), ["bcast", r, [1, 2]]);
        assert.deepEqual(strip(lb[0], 2), ["bcast", r, [1, 2]]);
        await barrier(c);
        assert.deepEqual(lc, []);
      });

      it("a non-member cannot relay into a room", CASE, async () => {
        const [a, b] = await Promise.all([connect(), connect()]);
        const r = room("closed");
        const lb = record(b, "chat", "bcast");
        await ack(b, "join", r);
        assert.deepEqual(await ack(a, "chat", r, "x"), [{ ok: false, error: "not a member" }]);
        assert.deepEqual(await ack(a, "bcast", r, "x"), [{ ok: false, error: "not a member" }]);
        a.emit("chat", r, "no ack asked");
        await barrier(a);
        await barrier(b);
        assert.deepEqual(lb, []);
      });

      it("rooms: a relay to several rooms is a union, one copy per socket; leave stops it", CASE,
        async () => {
          const [a, x, y, z] = await Promise.all([connect(), connect(), connect(), connect()]);
          const r1 = room("u1");
          const r2 = room("u2");
          const [la, lx, ly, lz] = [a, x, y, z].map((s) => record(s, "bcast", "chat"));
          await Promise.all([ack(a, "join", [r1, r2]), ack(x, "join", [r1, r2]), ack(y, "join", r2),
            ack(z, "join", room("u3"))]);
          assert.deepEqual(await ack(a, "bcast", [r1, r2], 1), [{ ok: true }]);
          assert.deepEqual(await ack(a, "chat", [r1, r2], 2), [{ ok: true }]);
          assert.deepEqual(await ack(y, "chat", [r1, r2], 0), [{ ok: false, error: "not a member" }]);
          await until(() => lx.length === 2 && ly.length === 2 && la.length === 1, T, "deliveries");
          await Promise.all([barrier(a), barrier(x), barrier(y), barrier(z)]);
          assert.deepEqual(la.map((e) => strip(e, 2)), [["bcast", [r1, r2], 1]]);
          assert.deepEqual(lx.map((e) => strip(e, 2)), [["bcast", [r1, r2], 1], ["chat", [r1, r2], 2]]);
          assert.deepEqual(ly.map((e) => strip(e, 2)), [["bcast", [r1, r2], 1], ["chat", [r1, r2], 2]]);
          assert.deepEqual(lz, []);
          assert.deepEqual(await ack(x, "leave", [r1, r2]), [{ ok: true }]);
          a.emit("chat", r2, 3);
          await until(() => ly.length === 3, T, "third chat at y");
          await barrier(x);
          assert.equal(lx.length, 2, "x left r2 and still got its chat");
        });

      it("namespaces are separate; /chat serves the application too", CASE, async () => {
        const [root, chat] = await Promise.all([connect("/"), connect("/chat")]);
        const r = room("nsp");
        const [lr, lc] = [root, chat].map((s) => record(s, "bcast"));
        await Promise.all([ack(root, "join", r), ack(chat, "join", r)]);
        chat.emit("bcast", r, "in chat");
        await until(() => lc.length === 1, T, "bcast in /chat");
        await barrier(root);
        assert.deepEqual(lr, [], "a / socket got a /chat broadcast");
      });

      it("one connection multiplexes / and /chat", CASE, async () => {
        const m = new Manager(node.url, { reconnection: false, timeout: T, ...mode.opts });
        const root = m.socket("/");
        const chat = m.socket("/chat");
        clients.add(root, chat);
        root.connect();
        chat.connect();
        await Promise.all([connected(root, mode), connected(chat, mode)]);
        assert.deepEqual(await ack(chat, "echo", "c"), ["c"]);
        assert.deepEqual(await ack(root, "echo", "r"), ["r"]);
        assert.equal(root.io, chat.io);
      });

      it("an unknown namespace is refused with Invalid namespace", CASE, async () => {
        const err = await refused(client(node.url, "/nope", mode));
        assert.equal(err.message, "Invalid namespace");
      });

      it("a namespace matching --namespace-pattern is created on demand", CASE, async () => {
        const s = await connect("/dyn-42");
        assert.deepEqual(await ack(s, "echo", "dyn"), ["dyn"]);
        const err = await refused(client(node.url, "/dyn-x", mode));
        assert.equal(err.message, "Invalid namespace");
        const { body } = await get(`${node.url}/metrics`);
        assert.match(body, /^sockeye_sockets\{namespace="\/dyn-42"\} 1$/m);
      });

      it("server->client acks: answered, and timed out", CASE, async () => {
        const s = await connect();
        s.on("question", (q, bin, cb) => cb({ answer: 4, q }, Buffer.from([q.length])));
        s.on("ignored", () => {});
        const res = await ack(s, "ask", "question", "2+2?", Buffer.from([1]));
        assert.deepEqual(norm(res), [{ answer: 4, q: "2+2?" }, { buf: [4] }]);
        const t0 = Date.now();
        assert.deepEqual(await ack(s, "ask", "ignored", 1), [{ ok: false, error: "timeout" }]);
        assert.ok(Date.now() - t0 >= 250, "the ask timed out before --ask-timeout 300");
        for (const reserved of ["connect", "disconnect", "connect_error"]) {
          const [res2] = await ack(s, "ask", reserved);
          assert.equal(res2.ok, false, `the node emitted the reserved event ${reserved}`);
        }
        assert.deepEqual(await ack(s, "ask", 42), [{ ok: false, error: "invalid event" }]);
        assert.ok(s.connected);
      });
    });
  }
});

// ---------------------------------------------------------------- websocket compression

// The official client compresses messages over 1 KB when the server offers
// permessage-deflate (on by default). libwebsockets 4.1.6's own deflate aborted on
// compressed messages of a few KB and on empty ones, so the engine does it itself;
// these cases pin that down.
describe("websocket with --per-message-deflate on", () => {
  let node;
  before(async () => {
    node = await startSockeye(["--per-message-deflate", "on"]);
  });
  after(async () => {
    closeAll();
    await stopOk(node);
  });

  it("echoes small, large, incompressible and empty messages", CASE, async () => {
    const s = await connected(client(node.url, "/", MODES[0]), MODES[0]);
    const random = Buffer.alloc(100000);
    for (let i = 0; i < random.length; i++) random[i] = (i * 2654435761) >>> 24;
    for (const arg of ["small", "x".repeat(5000), Buffer.alloc(70000, 7), random, Buffer.alloc(0), ""]) {
      assert.deepEqual(norm(await ack(s, "echo", arg)), norm([arg]));
    }
  });
});

// ---------------------------------------------------------------- connection state recovery

// Cuts the connection the way a network does: no Socket.IO or Engine.IO goodbye on
// websocket (TCP destroyed); over polling the engine is closed under the socket.
function cut(s) {
  const t = s.io.engine.transport;
  if (t.name === "websocket") t.ws._socket.destroy();
  else s.io.engine.close();
}

describe("connection state recovery", () => {
  // Two clients of node in one room: a, whose bcast numbers land in got, and b, the
  // publisher, whose own copies land in mine. cutA() cuts a's transport (no reconnection)
  // and waits until the server saw it go.
  async function pair(node, name, mode = MODES[0]) {
    const r = room(name);
    const a = await connected(client(node.url, "/", mode), mode);
    const b = await connected(client(node.url, "/", MODES[0]), MODES[0]);
    const got = [];
    const mine = [];
    a.on("bcast", (_room, n) => got.push(n));
    b.on("bcast", (_room, n) => mine.push(n));
    await Promise.all([ack(a, "join", r), ack(b, "join", r)]);
    const cutA = async () => {
      a.io.reconnection(false);
      const down = once(a, "disconnect");
      cut(a);
      await down;
      await until(async () => (await sockets(node)) === 1, T, "the server to see a's disconnect");
    };
    // b publishes from..to-1 and waits for its own copies (they follow a's in order)
    const publish = async (from, to) => {
      for (let n = from; n < to; n++) b.emit("bcast", r, n);
      await until(() => mine.length >= to, T, `b's own copies up to ${to}`);
    };
    return { r, a, b, got, mine, cutA, publish };
  }

  // Reconnects a cut client and resolves once it is connected again.
  async function reconnect(a) {
    const back = once(a, "connect");
    a.connect();
    await back;
  }

  for (const mode of MODES) {
    describe(`over ${mode.name}`, () => {
      let node;
      before(async () => {
        node = await startSockeye([]);
      });
      after(async () => {
        closeAll();
        await stopOk(node);
      });
      afterEach(closeAll);

      it("a cut client gets exactly the events it missed, in order, recovered === true", CASE, async () => {
        const { a, got, cutA, publish } = await pair(node, "rec", mode);
        const idBefore = a.id;
        await publish(0, 5);
        await until(() => got.length === 5, T, "a's first five");
        await cutA();
        await publish(5, 10); // a is away
        await reconnect(a);
        assert.equal(a.recovered, true, "socket.recovered");
        assert.equal(a.id, idBefore, "a recovered session keeps its id");
        await publish(10, 15);
        await until(() => got.length >= 15, T, "a to receive 15 events");
        await barrier(a);
        assert.deepEqual(got, Array.from({ length: 15 }, (_, i) => i));
      });

      // Node's memory adapter refuses this one (it needs an offset it still holds); ours
      // restores from the session's start, as the cluster does (issue 4).
      it("a new session is not recovered; a client that never received an event is", CASE,
        async () => {
          const { a, got, cutA, publish } = await pair(node, "none", mode);
          assert.notEqual(a.recovered, true, "a new session");
          await cutA();
          await publish(0, 3); // a is away, never got one
          await reconnect(a);
          assert.equal(a.recovered, true, "no event received before the cut: still recovered");
          await until(() => got.length >= 3, T, "the missed events");
          await barrier(a);
          assert.deepEqual(got, [0, 1, 2]);
        });
    });
  }

  it("after --recovery-window the session is gone", CASE, async () => {
    const WINDOW = 300;
    const node = await startSockeye(["--recovery-window", String(WINDOW)]);
    try {
      const { a, got, cutA, publish } = await pair(node, "expire");
      await publish(0, 1);
      await until(() => got.length === 1, T, "a's first event"); // a now holds an offset
      const idBefore = a.id;
      await cutA();
      const cutAt = Date.now();
      await publish(1, 2);
      // Time itself is under test here: wait out the window (twice, for timer slack).
      await new Promise((res) => setTimeout(res, Math.max(0, 2 * WINDOW - (Date.now() - cutAt))));
      await reconnect(a);
      assert.notEqual(a.recovered, true, "recovered after the window");
      assert.notEqual(a.id, idBefore, "an expired session must not keep its id");
      await barrier(a);
      assert.deepEqual(got, [0], "an expired session must not replay");
    } finally {
      closeAll();
      await stopOk(node);
    }
  });

  // The window is the session's: an offset older than the window (a quiet room) is fine,
  // as long as the client keeps answering pings: window 300 ms, pings every 200 ms, so
  // entries are kept 300 + 200 + 2 x 200 + 10,000 ms and a client unheard of for
  // 900 ms would be refused; this one stays quiet but heard for 2 s.
  it("a room quiet for longer than --recovery-window still recovers", CASE, async () => {
    const WINDOW = 300;
    const node = await startSockeye(["--recovery-window", String(WINDOW),
      "--ping-interval", "200", "--ping-timeout", "200"]);
    try {
      const { a, got, cutA, publish } = await pair(node, "quiet");
      await publish(0, 1);
      await until(() => got.length === 1, T, "a's first event");
      // Time itself is under test here: the offset a holds ages past window + detection.
      await new Promise((res) => setTimeout(res, 2000));
      const idBefore = a.id;
      await cutA();
      await publish(1, 2);
      await reconnect(a);
      assert.equal(a.recovered, true, "recovered within the window");
      assert.equal(a.id, idBefore);
      await until(() => got.length >= 2, T, "the missed event");
      await barrier(a);
      assert.deepEqual(got, [0, 1]);
    } finally {
      closeAll();
      await stopOk(node);
    }
  });

  // The replay is a catch-up burst: more missed packets than --max-queue must not get the
  // client closed by its own recovery (and again at every retry).
  it("a client that missed more than --max-queue events recovers them all", CASE, async () => {
    const node = await startSockeye(["--max-queue", "50"]);
    try {
      const { a, got, cutA, publish } = await pair(node, "many");
      await publish(0, 1);
      await until(() => got.length === 1, T, "a's first event");
      await cutA();
      for (let n = 1; n <= 300; n += 40) await publish(n, Math.min(n + 40, 301)); // b under its bound too
      const closed = once(a, "disconnect");
      await reconnect(a);
      assert.equal(a.recovered, true, "recovered");
      await Promise.race([
        until(() => got.length >= 301, T, "the 300 missed events"),
        closed.then(() => { throw new Error("closed during the replay"); }),
      ]);
      await barrier(a);
      assert.deepEqual(got, Array.from({ length: 301 }, (_, i) => i));
      assert.equal(a.connected, true);
    } finally {
      closeAll();
      await stopOk(node);
    }
  });

  it("--no-recovery: reconnecting clients start new sessions", CASE, async () => {
    const node = await startSockeye(["--no-recovery"]);
    try {
      const mode = MODES[0];
      const a = await connected(client(node.url, "/", mode), mode);
      a.io.reconnection(false);
      const down = once(a, "disconnect");
      cut(a);
      await down;
      const back = once(a, "connect");
      a.connect();
      await back;
      assert.notEqual(a.recovered, true);
    } finally {
      closeAll();
      await stopOk(node);
    }
  });
});

// ---------------------------------------------------------------- operations

describe("operations", () => {
  let node;
  before(async () => {
    node = await startSockeye(["--namespace", "/chat"]);
  });
  after(async () => {
    closeAll();
    await stopOk(node);
  });
  afterEach(closeAll);

  it("GET /healthz answers 200 ok", CASE, async () => {
    const res = await get(`${node.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(res.body, "ok\n");
  });

  it("GET /metrics is Prometheus text with clients, sockets per namespace, uptime", CASE, async () => {
    const mode = MODES[0];
    await connected(client(node.url, "/", mode), mode);
    await connected(client(node.url, "/chat", mode), mode);
    await until(async () => (await sockets(node, "/chat")) === 1, T, "one /chat socket");
    const res = await get(`${node.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.type, /^text\/plain/);
    assert.equal(metric(res.body, "sockeye_clients"), 2);
    assert.equal(metric(res.body, "sockeye_sockets", '{namespace="/"}'), 1);
    assert.equal(metric(res.body, "sockeye_sockets", '{namespace="/chat"}'), 1);
    assert.ok(metric(res.body, "sockeye_uptime_seconds") >= 0);
    assert.match(res.body, /^# TYPE sockeye_clients gauge$/m);
    closeAll();
    await until(async () => metric((await get(`${node.url}/metrics`)).body, "sockeye_clients") === 0, T,
      "clients back to 0");
  });

  it("GET / serves the chat page, /socket.io.min.js the official client", CASE, async () => {
    const page = await get(`${node.url}/`);
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/html/);
    assert.match(page.body, /<script src="\/socket\.io\.min\.js"><\/script>/);
    const js = await get(`${node.url}/socket.io.min.js`);
    const copied = path.join(path.dirname(BIN), "socket.io.min.js");
    if (fs.existsSync(copied)) {
      assert.equal(js.status, 200);
      assert.equal(js.body, fs.readFileSync(copied, "utf8"));
    } else {
      assert.equal(js.status, 404);
      assert.match(js.body, /missing/);
    }
    assert.equal((await get(`${node.url}/no/such/page`)).status, 404);
  });

  it("--help lists every option with its environment variable", CASE, async () => {
    const r = await run(["--help"]);
    assert.equal(r.code, 0);
    for (const flag of ["host", "port", "path", "ping-interval", "ping-timeout", "upgrade-timeout",
      "connect-timeout", "max-payload", "transports", "cors-origins", "cors-credentials",
      "per-message-deflate", "max-queue", "recovery", "recovery-window", "namespace",
      "namespace-pattern", "relay-events", "broadcast-events", "join-event", "leave-event",
      "echo-event", "www-dir", "drain-timeout", "log-level"]) {
      assert.match(r.stdout, new RegExp(`--${flag} `), `--help lacks --${flag}`);
      const env = `SOCKEYE_${flag.toUpperCase().replace(/-/g, "_")}`;
      assert.match(r.stdout, new RegExp(`\\b${env}\\b`), `--help lacks ${env}`);
    }
    const md = await run(["--help-markdown"]);
    assert.equal(md.code, 0);
    const rows = md.stdout.split("\n").filter((l) => l.startsWith("| `--"));
    const flags = r.stdout.split("\n").filter((l) => /^ {2}--[a-z-]+ [A-Z]/.test(l));
    assert.equal(rows.length, flags.length, "README table and --help disagree");
    // the README carries that table verbatim: regenerate it with --help-markdown
    const readme = fs.readFileSync(path.join(__dirname, "..", "..", "README.md"), "utf8");
    for (const row of rows) assert.ok(readme.includes(row), `README.md lacks or differs on: ${row}`);
  });

  it("a bad option or value exits 2 with a clear message", CASE, async () => {
    const cases = [
      [["--bogus"], {}, /unknown option --bogus/],
      [["--port", "abc"], {}, /--port: "abc" is not/],
      [["--port", "70000"], {}, /--port: 70000 is out of range/],
      [["--port"], {}, /--port needs a value/],
      [["--transports", "pigeon"], {}, /--transports: unknown value "pigeon"/],
      [["--namespace", "chat"], {}, /must start with \//],
      [["--namespace-pattern", "("], {}, /bad regular expression/],
      [["--recovery=maybe"], {}, /not a boolean/],
      [["stray"], {}, /unexpected argument "stray"/],
      [[], { SOCKEYE_PING_INTERVAL: "soon" }, /SOCKEYE_PING_INTERVAL: --ping-interval: "soon"/],
    ];
    for (const [args, env, re] of cases) {
      const r = await run(args, env);
      assert.equal(r.code, 2, `${args.join(" ")} ${JSON.stringify(env)} -> exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, re);
      assert.equal(r.stdout, "");
    }
  });

  it("environment configures, flags override it", CASE, async () => {
    const n2 = await startSockeye(["--path", "/rt/"], { env: { SOCKEYE_PATH: "/env/", SOCKEYE_NAMESPACE: "/e" } });
    try {
      const mode = MODES[0];
      const s = await connected(client(n2.url, "/e", mode, { path: "/rt/" }), mode);
      assert.deepEqual(await ack(s, "echo", 1), [1]);
      const err = await refused(client(n2.url, "/chat", mode, { path: "/rt/" }));
      assert.equal(err.message, "Invalid namespace", "SOCKEYE_NAMESPACE replaces the default list");
    } finally {
      closeAll();
      await stopOk(n2);
    }
  });

  it("flags reach the engine: handshake values, transports, CORS, path", CASE, async () => {
    const n2 = await startSockeye(["--ping-interval", "1234", "--ping-timeout", "4321", "--max-payload", "5000",
      "--transports", "polling", "--cors-origins", "http://a.example", "--path", "/rt/"]);
    try {
      const res = await fetch(`${n2.url}/rt/?EIO=4&transport=polling`,
        { headers: { Origin: "http://a.example" }, signal: AbortSignal.timeout(T) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("access-control-allow-origin"), "http://a.example");
      const open = JSON.parse((await res.text()).slice(1));
      assert.deepEqual([open.pingInterval, open.pingTimeout, open.maxPayload, open.upgrades], [1234, 4321, 5000, []]);
      const ws = await fetch(`${n2.url}/rt/?EIO=4&transport=websocket`, { signal: AbortSignal.timeout(T) });
      assert.equal(ws.status, 400, "websocket was switched off");
    } finally {
      await stopOk(n2);
    }
    const plain = await fetch(`${node.url}/socket.io/?EIO=4&transport=polling`,
      { headers: { Origin: "http://a.example" }, signal: AbortSignal.timeout(T) });
    assert.equal(plain.headers.get("access-control-allow-origin"), null, "CORS headers without --cors-origins");
    await plain.text();
  });

  it("a port already in use exits 1 and says so", CASE, async () => {
    const blocker = net.createServer();
    await new Promise((res) => blocker.listen(0, "127.0.0.1", res));
    try {
      const r = await run(["--host", "127.0.0.1", "--port", String(blocker.address().port)]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+/);
    } finally {
      blocker.close();
    }
  });

  it("SIGTERM disconnects every client and exits 0 quickly", CASE, async () => {
    const n2 = await startSockeye([]);
    const ws = await connected(client(n2.url, "/", MODES[0]), MODES[0]);
    const poll = await connected(client(n2.url, "/", MODES[1]), MODES[1]);
    const gone = Promise.all([once(ws, "disconnect"), once(poll, "disconnect")]);
    const t0 = Date.now();
    const exited = stopProc(n2.proc, "SIGTERM");
    const reasons = (await gone).map((a) => a[0]);
    const r = await exited;
    assert.equal(r.code, 0, `exit ${r.code ?? r.signal}\n${n2.stderr()}`);
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    for (const reason of reasons) assert.match(reason, /transport (close|error)/);
  });
});
