// Engine.IO v4 engine (node/engine/) driven over the wire through the
// engine-only echo server node/examples/eio_echo.c: handshake, exact error answers,
// both transports, the upgrade, heartbeats, limits, CORS, server-side close and
// shutdown. Every wait is bounded; nothing sleeps and hopes except where the
// protocol itself is about elapsed time (ping timeouts), and there the margins are
// the ones the official suite uses.
"use strict";
const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const WebSocket = require("ws");
const { startSockeye, stopProc, once, until } = require("../lib/harness.js");

const BUILD = process.env.SOCKEYE_BUILD_DIR || path.join(__dirname, "../../build");
// SOCKEYE_ECHO_BIN runs the suite against a wrapper (e.g. the echo under valgrind).
const ECHO = process.env.SOCKEYE_ECHO_BIN || path.join(BUILD, "example-eio_echo");
const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const RS = "\x1e";

let srv; // the shared echo server (test hooks on, small send queue)

before(async () => {
  srv = await startSockeye(["--test-hooks", "--max-queue", "50"], { bin: ECHO });
});

after(async () => {
  // a clean exit also means no sanitizer report and every handle closed
  if (srv) assert.equal((await stopProc(srv.proc)).code, 0, srv.stderr());
});

// ------------------------------------------------------------------ helpers

function withTimeout(promise, ms, what) {
  let t;
  return Promise.race([
    promise.finally(() => clearTimeout(t)),
    new Promise((_, reject) => {
      t = setTimeout(() => reject(new Error(`timeout (${ms} ms) waiting for ${what}`)), ms);
    }),
  ]);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function eioPath(query) {
  return `/engine.io/?${query}`;
}

// One HTTP request, body read, bounded.
async function http(server, p, opts = {}) {
  const res = await withTimeout(
    fetch(`${server.url}${p}`, { ...opts, signal: opts.signal || AbortSignal.timeout(5000) }),
    6000,
    `${opts.method || "GET"} ${p}`,
  );
  const text = await res.text();
  return { status: res.status, headers: res.headers, text };
}

async function handshake(server = srv, extra = "") {
  const r = await http(server, eioPath(`EIO=4&transport=polling${extra}`));
  assert.equal(r.status, 200);
  assert.equal(r.text[0], "0");
  return JSON.parse(r.text.slice(1)).sid;
}

const poll = (sid, server = srv, opts = {}) =>
  http(server, eioPath(`EIO=4&transport=polling&sid=${sid}`), opts);
const post = (sid, body, server = srv, headers = {}) =>
  http(server, eioPath(`EIO=4&transport=polling&sid=${sid}`), {
    method: "POST",
    body,
    headers: { "content-type": "text/plain;charset=UTF-8", ...headers },
  });

// Polls until a payload with something else than pings arrives (answering each
// ping), so data tests do not depend on how long they take against pingInterval.
async function pollData(sid, server = srv) {
  for (let i = 0; i < 10; i++) {
    const r = await poll(sid, server);
    if (r.status !== 200) return r;
    const packets = r.text.split(RS);
    const rest = packets.filter((p) => p !== "2");
    if (rest.length < packets.length) await post(sid, "3", server);
    if (rest.length > 0) return { ...r, text: rest.join(RS) };
  }
  throw new Error("only pings came back");
}

// A WebSocket whose events are buffered, so nothing is missed between awaits.
// Pings are answered and hidden unless autoPong is false.
function wsConnect(server, query, opts = {}) {
  const { autoPong = true, ...wsOpts } = opts;
  const ws = new WebSocket(`${server.url.replace("http", "ws")}${eioPath(query)}`, {
    perMessageDeflate: false,
    ...wsOpts,
  });
  const queue = [];
  const waiters = [];
  ws.on("message", (data, isBinary) => {
    if (autoPong && !isBinary && data.length === 1 && data[0] === 0x32) {
      ws.send("3");
      return;
    }
    const m = { data: isBinary ? Buffer.from(data) : data.toString(), isBinary };
    const w = waiters.shift();
    if (w) w(m);
    else queue.push(m);
  });
  ws.on("error", () => {});
  let upgradeHeaders = null;
  ws.on("upgrade", (res) => (upgradeHeaders = res.headers));
  const closed = new Promise((resolve) => ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
  const opened = new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("unexpected-response", (req, res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => {
        const e = new Error(`unexpected response ${res.statusCode}`);
        e.status = res.statusCode;
        e.body = body;
        reject(e);
      });
      res.on("error", () => {});
    });
    closed.then(() => reject(new Error("closed before open")));
  });
  opened.catch(() => {});
  return {
    ws,
    extensionsHeader: () => (upgradeHeaders && upgradeHeaders["sec-websocket-extensions"]) || "",
    opened: (ms = 3000) => withTimeout(opened, ms, "websocket open"),
    closed: (ms = 3000) => withTimeout(closed, ms, "websocket close"),
    next(ms = 3000) {
      if (queue.length) return Promise.resolve(queue.shift());
      return withTimeout(new Promise((r) => waiters.push(r)), ms, "websocket message");
    },
    send: (d) => ws.send(d),
  };
}

async function wsSession(server = srv, opts) {
  const c = wsConnect(server, "EIO=4&transport=websocket", opts);
  const open = await c.next();
  assert.equal(open.data[0], "0");
  c.sid = JSON.parse(open.data.slice(1)).sid;
  return c;
}

// The inode of the server's end of the loopback TCP connection whose client end is
// clientPort (/proc/net/tcp: "local rem st ... inode"), or null.
function serverSocketInode(port, clientPort) {
  const hex = (n) => n.toString(16).toUpperCase().padStart(4, "0");
  for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 9 && f[1].endsWith(`:${hex(port)}`) && f[2].endsWith(`:${hex(clientPort)}`)) return f[9];
  }
  return null;
}

// Does process pid still hold the socket with this inode open?
function holdsSocket(pid, inode) {
  return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === `socket:[${inode}]`;
    } catch {
      return false; // closed while we looked
    }
  });
}

// ------------------------------------------------------------------ handshake

test("polling handshake: open packet, exact keys in order, headers", async () => {
  const r = await http(srv, eioPath("EIO=4&transport=polling"));
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/plain; charset=UTF-8");
  assert.equal(r.headers.get("cache-control"), "no-store");
  assert.match(
    r.text,
    /^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\["websocket"\],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000\}$/,
  );
});

test("session ids are 20 base64url chars and unique", async () => {
  const ids = new Set();
  for (let i = 0; i < 20; i++) ids.add(await handshake());
  assert.equal(ids.size, 20);
  for (const id of ids) assert.match(id, /^[A-Za-z0-9_-]{20}$/);
});

test("websocket handshake: open packet first, no upgrades", async () => {
  const c = wsConnect(srv, "EIO=4&transport=websocket");
  const m = await c.next();
  assert.equal(m.isBinary, false);
  assert.match(
    m.data,
    /^0\{"sid":"[A-Za-z0-9_-]{20}","upgrades":\[\],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000\}$/,
  );
  c.ws.close();
  await c.closed();
});

// ------------------------------------------------------------------ errors

const ERR = {
  0: "Transport unknown",
  1: "Session ID unknown",
  2: "Bad handshake method",
  3: "Bad request",
  5: "Unsupported protocol version",
};

test("HTTP errors: exact status, content type and body", async () => {
  const cases = [
    ["EIO=4", "GET", 0],
    ["EIO=4&transport=abc", "GET", 0],
    ["EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA", "GET", 1],
    ["EIO=4&transport=polling", "POST", 2],
    ["EIO=4&transport=polling", "PUT", 2],
    ["EIO=4&transport=websocket", "GET", 3],
    ["transport=polling", "GET", 5],
    ["EIO=abc&transport=polling", "GET", 5],
    ["EIO=3&transport=polling", "GET", 5],
  ];
  for (const [q, method, code] of cases) {
    const r = await http(srv, eioPath(q), { method, body: method === "GET" ? undefined : "" });
    assert.equal(r.status, 400, `${method} ${q}`);
    assert.equal(r.headers.get("content-type"), "application/json", `${method} ${q}`);
    assert.equal(r.text, JSON.stringify({ code, message: ERR[code] }), `${method} ${q}`);
  }
});

test("websocket refusals are a plain 400 with the message", async () => {
  const cases = [
    ["transport=websocket", "Unsupported protocol version"],
    ["EIO=abc&transport=websocket", "Unsupported protocol version"],
    ["EIO=4", "Transport unknown"],
    ["EIO=4&transport=abc", "Transport unknown"],
    ["EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAAAAAA", "Session ID unknown"],
  ];
  for (const [q, msg] of cases) {
    const c = wsConnect(srv, q);
    const e = await c.opened().then(
      () => assert.fail(`${q} was accepted`),
      (err) => err,
    );
    assert.equal(e.status, 400, q);
    assert.equal(e.body, msg, q);
  }
});

test("other paths are 404; other methods on a session are 500", async () => {
  assert.equal((await http(srv, "/nope")).status, 404);
  assert.equal((await http(srv, "/engine.iox/?EIO=4&transport=polling")).status, 404);
  const sid = await handshake();
  assert.equal((await poll(sid, srv, { method: "DELETE" })).status, 500);
});

// ------------------------------------------------------------------ polling

test("polling echo: one text packet", async () => {
  const sid = await handshake();
  const p = await post(sid, "4hello");
  assert.equal(p.status, 200);
  assert.equal(p.text, "ok");
  assert.equal(p.headers.get("content-type"), "text/html");
  const g = await pollData(sid);
  assert.equal(g.status, 200);
  assert.equal(g.text, "4hello");
});

test("polling echo: several packets come back in one payload", async () => {
  const sid = await handshake();
  assert.equal((await post(sid, `4test1${RS}4test2${RS}4test3`)).text, "ok");
  assert.equal((await pollData(sid)).text, `4test1${RS}4test2${RS}4test3`);
});

test("polling echo: binary travels as b + base64", async () => {
  const sid = await handshake();
  assert.equal((await post(sid, `4hello${RS}bAQIDBA==`)).text, "ok");
  assert.equal((await pollData(sid)).text, `4hello${RS}bAQIDBA==`);
  const big = Buffer.alloc(300000, 7);
  big[0] = 1;
  assert.equal((await post(sid, `b${big.toString("base64")}`)).text, "ok");
  const back = (await pollData(sid)).text;
  assert.equal(back.length, big.toString("base64").length + 1);
  assert.ok(back === `b${big.toString("base64")}`, "300 KB binary differs");
});

test("a held GET is answered as soon as there is data", async () => {
  const sid = await handshake();
  const held = poll(sid);
  await sleep(50); // let the GET reach the server first
  assert.equal((await post(sid, "4late")).text, "ok");
  const g = await held;
  assert.equal(g.text, "4late");
});

test("overlapping GET: the first gets 1, the second 400, then the session is gone", async () => {
  const sid = await handshake();
  const first = poll(sid);
  await sleep(30);
  const second = await poll(sid);
  assert.equal(second.status, 400);
  const f = await first;
  assert.equal(f.status, 200);
  assert.equal(f.text, "1");
  assert.equal((await poll(sid)).status, 400);
});

test("a GET cancelled by the client closes the session", async () => {
  const sid = await handshake();
  const ac = new AbortController();
  const held = fetch(`${srv.url}${eioPath(`EIO=4&transport=polling&sid=${sid}`)}`, { signal: ac.signal }).catch(() => {});
  await sleep(50);
  ac.abort();
  await held;
  // the server notices the closed connection on its next loop turn
  let status;
  for (let i = 0; i < 50 && status !== 400; i++) {
    status = (await poll(sid, srv, { signal: AbortSignal.timeout(1000) }).catch(() => ({ status: 0 }))).status;
    if (status !== 400) await sleep(20);
  }
  assert.equal(status, 400);
});

test("close packet in a POST releases the held GET with noop, then 400", async () => {
  const sid = await handshake();
  const held = poll(sid);
  await sleep(30);
  assert.equal((await post(sid, "1")).text, "ok");
  const g = await held;
  assert.equal(g.text, "6");
  assert.equal((await poll(sid)).status, 400);
});

test("undecodable POST closes the session", async () => {
  for (const body of ["abc", `4ok${RS}`, "b!!!", "9x"]) {
    const sid = await handshake();
    await post(sid, body).catch(() => {});
    assert.equal((await poll(sid)).status, 400, JSON.stringify(body));
  }
});

test("a ping from the client (v4) closes the session", async () => {
  const sid = await handshake();
  await post(sid, "2");
  assert.equal((await poll(sid)).status, 400);
});

test("oversized POST: 413 and the session is closed", async () => {
  const sid = await handshake();
  const r = await post(sid, "4" + "a".repeat(1000000));
  assert.equal(r.status, 413);
  assert.equal((await poll(sid)).status, 400);
});

test("octet-stream POST: 400 and the session is closed", async () => {
  const sid = await handshake();
  const r = await post(sid, "4x", srv, { "content-type": "application/octet-stream" });
  assert.equal(r.status, 400);
  assert.equal((await poll(sid)).status, 400);
});

// ------------------------------------------------------------------ websocket

test("websocket echo: text and binary", async () => {
  const c = await wsSession();
  c.send("4hello");
  assert.deepEqual(await c.next(), { data: "4hello", isBinary: false });
  c.send(Buffer.from([1, 2, 3, 4]));
  const b = await c.next();
  assert.equal(b.isBinary, true);
  assert.deepEqual([...b.data], [1, 2, 3, 4]);
  c.send("bAQIDBA=="); // the base64 form is a binary message too
  const b2 = await c.next();
  assert.equal(b2.isBinary, true);
  assert.deepEqual([...b2.data], [1, 2, 3, 4]);
  const big = Buffer.alloc(500000, 9);
  c.send(big);
  const b3 = await c.next();
  assert.equal(b3.data.length, big.length);
  assert.ok(b3.data.equals(big));
  c.ws.close();
  await c.closed();
});

test("websocket: bad packets close the connection", async () => {
  for (const bad of ["abc", "", "2"]) {
    const c = await wsSession();
    c.send(bad);
    const { code } = await c.closed();
    assert.ok(code >= 1000, `${JSON.stringify(bad)} closed with ${code}`);
  }
});

test("websocket: a message over maxPayload closes with 1009", async () => {
  const c = await wsSession();
  c.send(Buffer.alloc(1000001, 1));
  const { code } = await c.closed(5000);
  assert.equal(code, 1009);
});

test("websocket: close packet from the client closes", async () => {
  const c = await wsSession();
  c.send("1");
  await c.closed();
});

// ------------------------------------------------------------------ upgrade

test("upgrade: 2probe/3probe, held GET gets noop, 5, queued data flows over websocket", async () => {
  const sid = await handshake();
  const held = poll(sid);
  await sleep(30);
  const c = wsConnect(srv, `EIO=4&transport=websocket&sid=${sid}`);
  await c.opened();
  c.send("2probe");
  assert.equal((await c.next()).data, "3probe");
  assert.equal((await held).text, "6");
  // during the upgrade a poll gets noop straight away
  assert.equal((await poll(sid)).text, "6");
  // data sent over polling while upgrading is echoed on the new transport
  assert.equal((await post(sid, "4during")).text, "ok");
  c.send("5");
  assert.equal((await c.next()).data, "4during");
  c.send("4after");
  assert.equal((await c.next()).data, "4after");
  c.ws.close();
  await c.closed();
});

test("after the upgrade: polling is 400 code 3, a second websocket is closed", async () => {
  const sid = await handshake();
  const c = wsConnect(srv, `EIO=4&transport=websocket&sid=${sid}`);
  await c.opened();
  c.send("2probe");
  assert.equal((await c.next()).data, "3probe");
  c.send("5");
  c.send("4x");
  assert.equal((await c.next()).data, "4x");
  const r = await poll(sid);
  assert.equal(r.status, 400);
  assert.equal(r.text, JSON.stringify({ code: 3, message: "Bad request" }));
  const c2 = wsConnect(srv, `EIO=4&transport=websocket&sid=${sid}`);
  await c2.closed();
  c.send("4still");
  assert.equal((await c.next()).data, "4still");
  c.ws.close();
  await c.closed();
});

test("a probe that says anything else fails; the session stays on polling", async () => {
  const sid = await handshake();
  const c = wsConnect(srv, `EIO=4&transport=websocket&sid=${sid}`);
  await c.opened();
  c.send("4nope");
  await c.closed();
  assert.equal((await post(sid, "4poll")).text, "ok");
  assert.equal((await pollData(sid)).text, "4poll");
});

// ------------------------------------------------------------------ heartbeat

test("heartbeat over polling: 2 every pingInterval, kept alive by 3", async () => {
  const sid = await handshake();
  for (let i = 0; i < 3; i++) {
    const t0 = Date.now();
    const g = await poll(sid);
    assert.equal(g.text, "2");
    assert.ok(Date.now() - t0 >= PING_INTERVAL - 100, "ping came too early");
    assert.equal((await post(sid, "3")).status, 200);
  }
});

test("heartbeat over websocket: 2 every pingInterval, kept alive by 3", async () => {
  const c = await wsSession(srv, { autoPong: false });
  for (let i = 0; i < 3; i++) {
    assert.equal((await c.next(2000)).data, "2");
    c.send("3");
  }
  c.ws.close();
  await c.closed();
});

test("polling: no pong within pingTimeout closes the session", async () => {
  const sid = await handshake();
  await sleep(PING_INTERVAL + PING_TIMEOUT);
  assert.equal((await poll(sid)).status, 400);
});

test("websocket: no pong within pingTimeout closes the socket", async () => {
  const c = await wsSession(srv, { autoPong: false });
  const t0 = Date.now();
  assert.equal((await c.next(2000)).data, "2");
  await c.closed(3000);
  assert.ok(Date.now() - t0 >= PING_TIMEOUT - 50);
});

// A peer that stops reading never lets the server write its close frame. Once the
// session is over (here: ping timeout) the server must still let go of the socket,
// within pingInterval + pingTimeout, not hold it and its unsent data for ever.
test("websocket: a peer that stops reading is let go once its session is over", async () => {
  const c = await wsSession();
  const inode = serverSocketInode(srv.port, c.ws._socket.localPort);
  assert.ok(inode !== null && holdsSocket(srv.proc.pid, inode), "the server's socket of the connection");
  c.ws._socket.pause(); // echoes pile up in the kernel, then in the server; pings go unseen
  const big = "4" + "x".repeat(900000);
  for (let i = 0; i < 12; i++) c.send(big);
  await until(() => !holdsSocket(srv.proc.pid, inode), 10000, "the server to let go of the socket");
  c.ws.terminate();
});

// WebSocket frames are written straight into the socket, many per sendmsg, before
// the loop sleeps; a frame the kernel cuts short is handed to lws, which sends its
// rest before anything else. A burst of small frames around big ones (6 MB in all,
// more than loopback socket buffers take at once) must come back whole and in order.
function burst(n, bigEvery, bigSize) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const big = i % bigEvery === 1;
    out.push("4" + (big ? String.fromCharCode(97 + (i % 26)).repeat(bigSize + i) + `|${i}` : `small-${i}`));
  }
  return out;
}

async function expectInOrder(c, sent, what) {
  for (let i = 0; i < sent.length; i++) {
    const m = await c.next(10000);
    assert.equal(m.isBinary, false);
    assert.ok(m.data === sent[i], `${what}: frame ${i} differs (${m.data.length} chars, ${sent[i].length} sent)`);
  }
}

test("websocket: a burst of frames comes back whole and in order, big ones past a full socket", async () => {
  const c = await wsSession();
  const sent = burst(40, 4, 600000);
  for (const m of sent) c.send(m);
  await expectInOrder(c, sent, "burst");
  // the connection is still good for a plain echo afterwards
  c.send("4after");
  assert.equal((await c.next()).data, "4after");
  c.ws.close();
  await c.closed();
});

test("websocket: a reader that stalls gets every frame once it reads again", async () => {
  const c = await wsSession();
  const sock = c.ws._socket;
  const inode = serverSocketInode(srv.port, sock.localPort);
  // /proc/net/tcp "tx_queue:rx_queue": what the server's socket holds unsent
  const txQueue = () => {
    for (const line of fs.readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[9] === inode) return parseInt(f[4].split(":")[0], 16);
    }
    return 0;
  };
  sock.pause();
  // 7 MB: more than a loopback socket takes (about 4 MB), so the kernel cuts a frame
  // short and then refuses more; the server waits for WRITEABLE with frames queued
  const sent = burst(16, 2, 900000);
  for (const m of sent) c.send(m);
  // Full = over 3 MB unsent and no longer growing. Bounded well inside pingInterval +
  // pingTimeout so the pong is not late; on a slow machine the stall may end before
  // the socket is full, and the order check below still holds.
  let last = -1;
  let still = 0;
  const full = () => {
    const q = txQueue();
    still = q > 3000000 && q === last ? still + 1 : 0;
    last = q;
    return still >= 2;
  };
  await until(full, 200, "the server's socket to fill up").catch(() => {});
  sock.resume();
  await expectInOrder(c, sent, "stalled reader");
  c.ws.close();
  await c.closed();
});

test("websocket with permessage-deflate: a burst of compressed and plain frames stays in order", async () => {
  const d = await startSockeye(["--deflate", "--test-hooks"], { bin: ECHO });
  try {
    const c = await wsSession(d, { perMessageDeflate: { threshold: 0 } });
    assert.match(c.ws.extensions, /permessage-deflate/);
    const sent = burst(30, 3, 200000);
    sent.push("4__nocompress:" + "n".repeat(5000));
    for (const m of sent) c.send(m);
    sent[sent.length - 1] = "4" + "n".repeat(5000);
    await expectInOrder(c, sent, "deflate burst");
    c.ws.close();
    await c.closed();
  } finally {
    assert.equal((await stopProc(d.proc)).code, 0, d.stderr());
  }
});

// ------------------------------------------------------------------ server-side features

test("server-side close flushes: polling gets its data and 1", async () => {
  const sid = await handshake();
  assert.equal((await post(sid, "4__close:bye")).text, "ok");
  const g = await poll(sid);
  assert.equal(g.text, `4bye${RS}1`);
  assert.equal((await poll(sid)).status, 400);
});

test("server-side close flushes: websocket gets its data, then close 1000", async () => {
  const c = await wsSession();
  c.send("4__close:bye");
  assert.equal((await c.next()).data, "4bye");
  const { code } = await c.closed();
  assert.equal(code, 1000);
});

test("volatile packets are dropped unless the transport can take them now", async () => {
  const sid = await handshake();
  // no GET pending: dropped
  assert.equal((await post(sid, "4__volatile:lost")).text, "ok");
  assert.equal((await post(sid, "4kept")).text, "ok");
  assert.equal((await pollData(sid)).text, "4kept");
  // GET held: delivered
  const held = poll(sid);
  await sleep(30);
  assert.equal((await post(sid, "4__volatile:now")).text, "ok");
  assert.equal((await held).text, "4now");
  // websocket with an empty queue: delivered
  const c = await wsSession();
  c.send("4__volatile:ws");
  assert.equal((await c.next()).data, "4ws");
  c.ws.close();
  await c.closed();
});

test("a send queue over max_queue closes the session", async () => {
  const sid = await handshake();
  assert.equal((await post(sid, "4__flood:49")).text, "ok"); // fits (50)
  const g = await poll(sid);
  assert.equal(g.text.split(RS).length, 49);
  assert.equal((await post(sid, "4__flood:51")).text, "ok");
  assert.equal((await poll(sid)).status, 400);
});

test("a send queue over max_queue_bytes closes the session", async () => {
  const small = await startSockeye(["--test-hooks", "--max-queue-bytes", "100"], { bin: ECHO });
  try {
    const sid = await handshake(small);
    assert.equal((await post(sid, "4__flood:49", small)).text, "ok"); // 49 x "4x": 98 bytes
    const g = await poll(sid, small);
    assert.equal(g.text.split(RS).length, 49);
    assert.equal((await post(sid, "4__flood:51", small)).text, "ok"); // 102 bytes: over
    assert.equal((await poll(sid, small)).status, 400);
  } finally {
    assert.equal((await stopProc(small.proc)).code, 0, small.stderr());
  }
});

test("handshake facts are kept on the session", async () => {
  const r = await http(srv, eioPath("EIO=4&transport=polling&foo=b%20ar&x=1%262"), {
    headers: { "x-forwarded-for": "10.1.2.3", "user-agent": "sockeye-test" },
  });
  const sid = JSON.parse(r.text.slice(1)).sid;
  assert.equal((await post(sid, "4__info")).text, "ok");
  const info = JSON.parse((await pollData(sid)).text.slice(1));
  assert.equal(info.id, sid);
  assert.equal(info.transport, "polling");
  assert.equal(info.address, "127.0.0.1");
  assert.equal(info.query, "EIO=4&transport=polling&foo=b%20ar&x=1%262");
  assert.equal(info.url, "/engine.io/?EIO=4&transport=polling&foo=b%20ar&x=1%262");
  assert.equal(info.headers["x-forwarded-for"], "10.1.2.3");
  assert.equal(info.headers["user-agent"], "sockeye-test");
  assert.match(info.headers.host, /^127\.0\.0\.1:\d+$/);
  assert.ok(info.sessions >= 1);
});

// How the protocol layer decoded the kept query string before the engine handed out
// decoded pairs (sio_socket.c, sio__client_parse_query): split at '&', key before the
// first '=', '+' a space, %xx resolved and a bad escape left as it is, empty keys
// skipped, the first occurrence of a key wins. The pairs must be the same.
function protocolDecode(query) {
  const hex = (c) => (/[0-9a-fA-F]/.test(c) ? parseInt(c, 16) : -1);
  const dec = (str) => {
    const out = [];
    const b = Buffer.from(str, "latin1");
    for (let i = 0; i < b.length; i++) {
      const ch = String.fromCharCode(b[i]);
      if (ch === "+") out.push(0x20);
      else if (ch === "%" && i + 2 < b.length && hex(String.fromCharCode(b[i + 1])) >= 0 &&
               hex(String.fromCharCode(b[i + 2])) >= 0) {
        out.push(parseInt(String.fromCharCode(b[i + 1], b[i + 2]), 16));
        i += 2;
      } else out.push(b[i]);
    }
    return Buffer.from(out).toString("utf8");
  };
  const seen = new Map();
  for (const part of query === "" ? [] : query.split("&")) {
    const eq = part.indexOf("=");
    const k = eq < 0 ? part : part.slice(0, eq);
    if (k.length === 0) continue;
    const key = dec(k);
    if (!seen.has(key)) seen.set(key, eq < 0 ? "" : dec(part.slice(eq + 1)));
  }
  return [...seen];
}

test("the handshake query is decoded once, as the protocol decoded the kept string", async () => {
  const queries = [
    "a=1&a=2&b&=x&c=%2B+d&f=x%3Dy=z&g=%26&h;i=1&j=%41%42&k=%e2%82%ac",
    "k%3Dk=v&%3D=v&a%26b=1&n%3Bm=1&x=1%2B1&sp=a%20b+c",
    "&&&z=1&",
    "t=Pabc123&name=J%C3%BCrgen+X&flag&x=1&x=2",
  ];
  for (const q of queries) {
    // polling handshake
    const sid = await handshake(srv, `&${q}`);
    assert.equal((await post(sid, "4__info")).text, "ok");
    const info = JSON.parse((await pollData(sid)).text.slice(1));
    assert.deepEqual(info.queryPairs, protocolDecode(info.query), q);
    assert.deepEqual(info.queryPairs.slice(0, 2), [["EIO", "4"], ["transport", "polling"]]);
    // WebSocket handshake
    const c = wsConnect(srv, `EIO=4&transport=websocket&${q}`);
    assert.equal((await c.next()).data[0], "0");
    c.send("4__info");
    const winfo = JSON.parse((await c.next()).data.slice(1));
    assert.deepEqual(winfo.queryPairs, protocolDecode(winfo.query), q);
    assert.deepEqual(winfo.queryPairs.slice(2), info.queryPairs.slice(2), q);
    c.ws.close();
    await c.closed();
  }
  // spot checks of what lws hands over: '+' a space, ';' splits, an encoded '=' or '&'
  // stays inside its key or value
  const sid = await handshake(srv, "&a=1&a=2&c=%2B+d&h;i=1&g=%26&f=x%3Dy");
  assert.equal((await post(sid, "4__info")).text, "ok");
  const m = new Map(JSON.parse((await pollData(sid)).text.slice(1)).queryPairs);
  assert.equal(m.get("a"), "1");
  assert.equal(m.get("c"), "+ d");
  assert.equal(m.get("h"), "");
  assert.equal(m.get("i"), "1");
  assert.equal(m.get("g"), "&");
  assert.equal(m.get("f"), "x=y");
});

// ------------------------------------------------------------------ CORS

test("CORS '*': every answer carries allow-origin; OPTIONS preflight is 204", async () => {
  const hs = await http(srv, eioPath("EIO=4&transport=polling"), { headers: { origin: "http://a.example" } });
  assert.equal(hs.headers.get("access-control-allow-origin"), "*");
  const err = await http(srv, eioPath("EIO=4"), { headers: { origin: "http://a.example" } });
  assert.equal(err.headers.get("access-control-allow-origin"), "*");
  const pre = await http(srv, eioPath("EIO=4&transport=polling"), {
    method: "OPTIONS",
    headers: {
      origin: "http://a.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type,x-token",
    },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "*");
  assert.equal(pre.headers.get("access-control-allow-methods"), "GET,HEAD,PUT,PATCH,POST,DELETE");
  assert.equal(pre.headers.get("access-control-allow-headers"), "content-type,x-token");
  assert.match(pre.headers.get("vary"), /Access-Control-Request-Headers/);
  assert.equal(pre.text, "");
});

test("on_http answers outside the engine path; HEAD gets no body", async () => {
  const h = await http(srv, "/healthz");
  assert.equal(h.status, 200);
  assert.equal(h.text, "ok");
  assert.equal((await http(srv, "/healthz", { method: "POST", body: "x" })).status, 404);
  const head = await http(srv, eioPath("EIO=4&transport=polling"), { method: "HEAD" });
  assert.equal(head.status, 400);
  assert.equal(head.text, "");
  // the connection is still usable afterwards
  assert.equal((await http(srv, "/healthz")).text, "ok");
});

// ------------------------------------------------------------------ other servers

test("CORS allow-list with credentials: listed origins echoed, others get nothing", async () => {
  const s = await startSockeye(["--cors", "http://a.example, http://b.example", "--cors-credentials"], {
    bin: ECHO,
  });
  try {
    const ok = await http(s, eioPath("EIO=4&transport=polling"), { headers: { origin: "http://b.example" } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("access-control-allow-origin"), "http://b.example");
    assert.equal(ok.headers.get("access-control-allow-credentials"), "true");
    assert.match(ok.headers.get("vary"), /Origin/);
    const no = await http(s, eioPath("EIO=4&transport=polling"), { headers: { origin: "http://evil.example" } });
    assert.equal(no.status, 200);
    assert.equal(no.headers.get("access-control-allow-origin"), null);
    const pre = await http(s, eioPath("EIO=4&transport=polling"), {
      method: "OPTIONS",
      headers: { origin: "http://a.example", "access-control-request-method": "POST" },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "http://a.example");
  } finally {
    assert.equal((await stopProc(s.proc)).code, 0, s.stderr());
  }
});

test("upgrade timeout: a probe that never finishes is closed, polling goes on", async () => {
  const s = await startSockeye(["--upgrade-timeout", "150"], { bin: ECHO });
  try {
    const sid = await handshake(s);
    const c = wsConnect(s, `EIO=4&transport=websocket&sid=${sid}`);
    await c.opened();
    c.send("2probe");
    assert.equal((await c.next()).data, "3probe");
    const t0 = Date.now();
    await c.closed(2000);
    assert.ok(Date.now() - t0 >= 100, "closed before the upgrade timeout");
    assert.equal((await post(sid, "4still", s)).text, "ok");
    assert.equal((await pollData(sid, s)).text, "4still");
  } finally {
    assert.equal((await stopProc(s.proc)).code, 0, s.stderr());
  }
});

test("permessage-deflate: negotiated, every size both ways, NOCOMPRESS honoured", async () => {
  const d = await startSockeye(["--deflate", "--test-hooks"], { bin: ECHO });
  try {
    // threshold 0: the client compresses everything, like browsers do
    const c = await wsSession(d, { perMessageDeflate: { threshold: 0 } });
    assert.match(c.ws.extensions, /permessage-deflate/);
    const sock = c.ws._socket;
    // sizes around lws 4.1.6's 1 KiB deflate buffers, where its own extension aborts
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    for (let i = 0; i < 120; i++) {
      const size = i < 60 ? i * 37 : Math.floor(rnd() * 70000);
      const b = Buffer.alloc(size);
      for (let k = 0; k < size; k++) b[k] = i % 2 ? k % 5 : Math.floor(rnd() * 256);
      c.send(b);
      const back = await c.next(5000);
      assert.equal(back.isBinary, true);
      assert.ok(back.data.equals(b), `binary message ${i} (${size} bytes) differs`);
    }
    const text = "4" + "compressible ".repeat(40000);
    let before = sock.bytesRead;
    c.send(text);
    const back = (await c.next(5000)).data;
    assert.ok(back === text, "compressed text differs");
    assert.ok(sock.bytesRead - before < text.length / 10, "the echo was not compressed");
    before = sock.bytesRead;
    c.send("4__nocompress:" + text.slice(1));
    assert.ok((await c.next(5000)).data === text);
    assert.ok(sock.bytesRead - before >= text.length, "NOCOMPRESS was compressed");
    c.ws.close();
    await c.closed();
    // a client asking for server_no_context_takeover gets it; one limiting the
    // server's window gets no compression at all (both are legal answers)
    const n = await wsSession(d, { perMessageDeflate: { serverNoContextTakeover: true } });
    assert.equal(n.extensionsHeader(), "permessage-deflate; server_no_context_takeover");
    n.send(text);
    assert.ok((await n.next(5000)).data === text);
    n.ws.close();
    const w = await wsSession(d, { perMessageDeflate: { serverMaxWindowBits: 10 } });
    assert.equal(w.extensionsHeader(), "");
    w.send(text);
    assert.ok((await w.next(5000)).data === text);
    w.ws.close();
    await Promise.all([n.closed(), w.closed()]);
    // a compressed message that inflates past maxPayload is refused with 1009
    const bomb = await wsSession(d, { perMessageDeflate: { threshold: 0 } });
    bomb.send(Buffer.alloc(1000001, 0));
    assert.equal((await bomb.closed(5000)).code, 1009);
  } finally {
    assert.equal((await stopProc(d.proc)).code, 0, d.stderr());
  }
});

test("SIGTERM: sessions closed (websocket 1001, held GET gets 1), exit 0, on_close once each", async () => {
  const s = await startSockeye(["--test-hooks"], { bin: ECHO });
  const c = await wsSession(s);
  const sid = await handshake(s);
  const held = poll(sid, s);
  await sleep(30);
  const lingering = await handshake(s); // no GET out: the drain waits for nobody
  const stopped = stopProc(s.proc, "SIGTERM");
  const { code } = await c.closed(3000);
  assert.equal(code, 1001);
  assert.equal((await held).text, "1");
  const t0 = Date.now();
  const res = await stopped;
  assert.equal(res.code, 0);
  assert.ok(Date.now() - t0 < 3000);
  const m = /sessions opened=(\d+) closed=(\d+)/.exec(s.stderr());
  assert.ok(m, s.stderr());
  assert.equal(m[1], "3");
  assert.equal(m[2], "3");
  void lingering;
});

test("port 0 gives distinct ephemeral ports; a taken port fails cleanly", async () => {
  const a = await startSockeye([], { bin: ECHO });
  try {
    assert.notEqual(a.port, srv.port);
    const b = startSockeye(["--port", String(a.port)], { bin: ECHO });
    await assert.rejects(b, /exited \(1\)/);
  } finally {
    assert.equal((await stopProc(a.proc)).code, 0, a.stderr());
  }
});
