// Socket.IO v5 protocol layer, driven with raw frames against example-conformance
// (the server the official v5 suite assumes: ping 300/200, connect timeout 1000,
// recovery off). Every wait is bounded; a frame we did not expect fails the test.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const WebSocket = require("ws");
const { startSockeye, BIN } = require("../lib/harness");

const EXAMPLE = path.join(
  process.env.SOCKEYE_BUILD_DIR || path.join(path.dirname(BIN)),
  "example-conformance"
);

let server;
test.before(async () => {
  server = await startSockeye([], { bin: EXAMPLE });
});
test.after(async () => {
  if (server) {
    const { code, signal } = await server.stop("SIGTERM");
    assert.equal(signal, null, "example-conformance killed by a signal");
    assert.equal(code, 0, "example-conformance exit code");
  }
});

// One raw WebSocket with a receive queue. Pings are answered (autoPong) and skipped
// by next(); nextRaw() returns every frame.
class Conn {
  constructor(query = "", { autoPong = true } = {}) {
    this.frames = [];
    this.waiters = [];
    this.autoPong = autoPong;
    this.closed = false;
    this.ws = new WebSocket(
      `ws://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=websocket${query}`
    );
    this.ws.binaryType = "nodebuffer";
    this.closedP = new Promise((resolve) => {
      this.ws.on("close", () => {
        this.closed = true;
        resolve();
        for (const w of this.waiters.splice(0)) w.reject(new Error("closed"));
      });
    });
    this.ws.on("error", () => {});
    this.ws.on("message", (data, isBinary) => {
      const f = isBinary ? Buffer.from(data) : data.toString();
      if (this.autoPong && f === "2") this.ws.send("3");
      this.frames.push(f);
      this.pump();
    });
  }
  pump() {
    while (this.waiters.length && this.frames.length) this.waiters.shift().resolve(this.frames.shift());
  }
  nextRaw(ms = 2000) {
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (f) => { clearTimeout(t); resolve(f); },
        reject: (e) => { clearTimeout(t); reject(e); },
      };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`no frame within ${ms} ms`));
      }, ms);
      if (this.closed && !this.frames.length) return w.reject(new Error("closed"));
      this.waiters.push(w);
      this.pump();
    });
  }
  async next(ms = 2000) {
    const end = Date.now() + ms;
    for (;;) {
      const f = await this.nextRaw(Math.max(1, end - Date.now()));
      if (f !== "2") return f;
    }
  }
  send(f) {
    this.ws.send(f);
  }
  // Resolves true when the server closes the connection within ms.
  async closedWithin(ms = 2000) {
    let t;
    const timeout = new Promise((r) => (t = setTimeout(() => r(false), ms)));
    const r = await Promise.race([this.closedP.then(() => true), timeout]);
    clearTimeout(t);
    return r;
  }
  close() {
    this.ws.close();
  }
}

async function open(query) {
  const c = new Conn(query);
  const hs = await c.next();
  assert.match(hs, /^0\{/);
  return c;
}

// Connects to nsp ("/" or "/x") with optional auth; returns the parsed CONNECT data.
async function connectNsp(c, nsp = "/", auth) {
  const prefix = nsp === "/" ? "" : `${nsp},`;
  c.send(`40${prefix}${auth ? JSON.stringify(auth) : ""}`);
  const reply = await c.next();
  assert.ok(reply.startsWith(`40${prefix}`), `CONNECT reply: ${reply}`);
  const data = JSON.parse(reply.slice(2 + prefix.length));
  const ev = await c.next();
  assert.equal(ev, `42${prefix}["auth",${JSON.stringify(auth || {})}]`);
  return data;
}

async function expectClosed(c, what) {
  assert.ok(await c.closedWithin(2000), `server should close the connection after ${what}`);
}

test("CONNECT to / replies with exactly {sid} (20 chars) then emits auth", async () => {
  const c = await open();
  const data = await connectNsp(c);
  assert.deepEqual(Object.keys(data), ["sid"]);
  assert.equal(data.sid.length, 20);
  c.close();
});

test("CONNECT with an auth payload exposes it (key order kept)", async () => {
  const c = await open();
  await connectNsp(c, "/", { token: "123", b: [1, { z: 2, a: 1 }] });
  c.close();
});

test("CONNECT to /custom with and without the trailing comma", async () => {
  const c = await open();
  await connectNsp(c, "/custom", { token: "abc" });
  c.close();
  const c2 = await open();
  c2.send("40/custom");
  assert.match(await c2.next(), /^40\/custom,\{"sid":"[A-Za-z0-9_-]{20}"\}$/);
  assert.equal(await c2.next(), '42/custom,["auth",{}]');
  c2.close();
});

test("unknown namespace -> CONNECT_ERROR Invalid namespace, connection kept", async () => {
  const c = await open();
  c.send("40/random");
  assert.equal(await c.next(), '44/random,{"message":"Invalid namespace"}');
  await connectNsp(c, "/");
  c.close();
});

test("the socket id differs per namespace and from the engine sid", async () => {
  const c = new Conn();
  const hs = JSON.parse((await c.next()).slice(1));
  const a = await connectNsp(c, "/");
  const b = await connectNsp(c, "/custom");
  assert.notEqual(a.sid, b.sid);
  assert.notEqual(a.sid, hs.sid);
  c.close();
});

test("41 disconnects the namespace but keeps the Engine.IO session (next frame is a ping)", async () => {
  const c = new Conn("", { autoPong: false });
  await c.next();
  await connectNsp(c);
  c.send("41");
  assert.equal(await c.nextRaw(2000), "2");
  c.send("3");
  assert.equal(c.closed, false);
  c.close();
});

test("41/custom leaves /custom only; / still answers", async () => {
  const c = await open();
  await connectNsp(c);
  c.send("40/custom");
  assert.match(await c.next(), /^40\/custom,/);
  assert.equal(await c.next(), '42/custom,["auth",{}]');
  c.send("41/custom");
  c.send('42["message","message to main namespace"]');
  assert.equal(await c.next(), '42["message-back","message to main namespace"]');
  // the namespace can be joined again after leaving it
  c.send("40/custom,");
  assert.match(await c.next(), /^40\/custom,/);
  assert.equal(await c.next(), '42/custom,["auth",{}]');
  c.close();
});

test("EVENT round trip keeps JSON exactly", async () => {
  const c = await open();
  await connectNsp(c);
  c.send('42["message",1,"2",{"3":[true]},null,{"z":{"y":[]},"a":-1.5}]');
  assert.equal(await c.next(), '42["message-back",1,"2",{"3":[true]},null,{"z":{"y":[]},"a":-1.5}]');
  c.close();
});

test("EVENT in a non-main namespace is routed there", async () => {
  const c = await open();
  await connectNsp(c);
  await connectNsp(c, "/custom");
  // /custom has no message handler: nothing comes back, and / still answers
  c.send('42/custom,["message","x"]');
  c.send('42["message","y"]');
  assert.equal(await c.next(), '42["message-back","y"]');
  c.close();
});

test("BINARY_EVENT with two attachments is echoed as binary", async () => {
  const c = await open();
  await connectNsp(c);
  c.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  c.send(Buffer.from([1, 2, 3]));
  c.send(Buffer.from([4, 5, 6]));
  assert.equal(
    await c.next(),
    '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]'
  );
  assert.deepEqual(await c.next(), Buffer.from([1, 2, 3]));
  assert.deepEqual(await c.next(), Buffer.from([4, 5, 6]));
  c.close();
});

test("EVENT with ack id -> one ACK with the same args", async () => {
  const c = await open();
  await connectNsp(c);
  c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
  assert.equal(await c.next(), '43456[1,"2",{"3":[false]}]');
  // an ack with no args is an empty array
  c.send('420["message-with-ack"]');
  assert.equal(await c.next(), "430[]");
  // exactly one ACK per request: the next frame is the answer to the next event
  c.send('42["message","after"]');
  assert.equal(await c.next(), '42["message-back","after"]');
  c.close();
});

test("BINARY_EVENT with ack id -> BINARY_ACK with the attachments", async () => {
  const c = await open();
  await connectNsp(c);
  c.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  c.send(Buffer.from([1, 2, 3]));
  c.send(Buffer.from([4, 5, 6]));
  assert.equal(await c.next(), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
  assert.deepEqual(await c.next(), Buffer.from([1, 2, 3]));
  assert.deepEqual(await c.next(), Buffer.from([4, 5, 6]));
  c.close();
});

test("ack request to a namespace without that handler: no ACK, connection kept", async () => {
  const c = await open();
  await connectNsp(c, "/custom");
  c.send('42/custom,5["message-with-ack",1]');
  c.send("40");
  assert.match(await c.next(), /^40\{"sid"/);
  c.close();
});

test("ACK from the client with an unknown id is ignored", async () => {
  const c = await open();
  await connectNsp(c);
  c.send("43999[1]");
  c.send('42["message","still here"]');
  assert.equal(await c.next(), '42["message-back","still here"]');
  c.close();
});

test("events before any CONNECT reply are not dispatched; packets before CONNECT close", async () => {
  const c = await open();
  c.send('42["message","x"]');
  await expectClosed(c, "an EVENT for a namespace not joined");
});

const rejects = [
  ["4abc (unknown packet type)", ["4abc"]],
  ["42{} (payload not an array)", ["42{}"]],
  ["42abc[...] (unparsable JSON)", ['42abc["message"]']],
  ['42[] (no event name)', ["42[]"]],
  ["reserved event name", ['42["disconnect"]']],
  ["non-numeric attachment count", ['45x-["message",{"_placeholder":true,"num":0}]']],
  ["placeholder out of range", ['451-["message",{"_placeholder":true,"num":3}]', Buffer.from([1])]],
  ["text while attachments are awaited", ['452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]', Buffer.from([1]), '42["message"]']],
  ["binary without a binary packet", [Buffer.from([1, 2, 3])]],
  ["EVENT for a namespace not joined", ['42/custom,["message"]']],
  ["second CONNECT to a joined namespace", ["40"]],
  ["CONNECT_ERROR from the client", ['44{"message":"x"}']],
  ["DISCONNECT with a payload", ['41{"a":1}']],
];

for (const [what, frames] of rejects) {
  test(`rejected: ${what} -> connection closed`, async () => {
    const c = await open();
    await connectNsp(c);
    for (const f of frames) c.send(f);
    await expectClosed(c, what);
  });
}

test("EVENT after leaving the namespace closes the connection", async () => {
  const c = await open();
  await connectNsp(c);
  c.send("41");
  c.send('42["message","late"]');
  await expectClosed(c, "an EVENT after 41");
});

test("no CONNECT within connectTimeout (1000 ms) -> closed, even while ponging", async () => {
  const t0 = Date.now();
  const c = await open();
  assert.ok(await c.closedWithin(3000), "connection should be closed by the connect timeout");
  const dt = Date.now() - t0;
  assert.ok(dt >= 800, `closed too early (${dt} ms): not the connect timeout`);
});

test("a CONNECT_ERROR does not count as joined: connect timeout still applies", async () => {
  const c = await open();
  c.send("40/nope,");
  assert.equal(await c.next(), '44/nope,{"message":"Invalid namespace"}');
  assert.ok(await c.closedWithin(3000), "connection should be closed by the connect timeout");
});

test("a joined namespace stops the connect timeout", async () => {
  const c = await open();
  await connectNsp(c);
  assert.equal(await c.closedWithin(1600), false, "connection closed despite a joined namespace");
  c.send('42["message","alive"]');
  assert.equal(await c.next(), '42["message-back","alive"]');
  c.close();
});

test("HTTP long-polling: CONNECT and an event over POST/GET", async () => {
  const base = `http://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=polling`;
  const hs = await (await fetch(base, { signal: AbortSignal.timeout(2000) })).text();
  const sid = JSON.parse(hs.slice(1)).sid;
  const url = `${base}&sid=${sid}`;
  const post = async (body) => {
    const r = await fetch(url, { method: "POST", body, signal: AbortSignal.timeout(2000) });
    assert.equal(await r.text(), "ok");
  };
  // Next n non-ping records; pings (every 300 ms) are answered so the session lives.
  const pending = [];
  const take = async (n) => {
    const end = Date.now() + 3000;
    while (pending.length < n) {
      assert.ok(Date.now() < end, "polling: records did not arrive in time");
      const body = await (await fetch(url, { signal: AbortSignal.timeout(2000) })).text();
      for (const rec of body.split("\x1e")) {
        if (rec === "2") await post("3");
        else pending.push(rec);
      }
    }
    return pending.splice(0, n);
  };
  await post('40{"token":"t"}');
  const [reply, auth] = await take(2);
  assert.match(reply, /^40\{"sid":"[A-Za-z0-9_-]{20}"\}$/);
  assert.equal(auth, '42["auth",{"token":"t"}]');
  await post('451-["message",{"_placeholder":true,"num":0}]\x1ebAQIDBA==');
  assert.deepEqual(await take(2), ['451-["message-back",{"_placeholder":true,"num":0}]', "bAQIDBA=="]);
  await post('43456["message-with-ack",true]');
  await post('42456["message-with-ack",true]');
  assert.deepEqual(await take(1), ["43456[true]"]);
  await post("1");
});

test("many clients at once: each gets its own answers", async () => {
  const conns = await Promise.all(Array.from({ length: 20 }, () => open()));
  await Promise.all(conns.map((c) => connectNsp(c)));
  conns.forEach((c, i) => c.send(`42${i}["message-with-ack",${i}]`));
  const answers = await Promise.all(conns.map((c) => c.next()));
  answers.forEach((a, i) => assert.equal(a, `43${i}[${i}]`));
  conns.forEach((c) => c.close());
});
