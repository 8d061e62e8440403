// Each example of node/examples/ started for real and checked with the official
// client: the examples are documentation, and documentation that does not run lies.
// Binaries: $SOCKEYE_BUILD_DIR/example-<name>.
"use strict";
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { startSockeye, stopProc, once, until, refused, ack, record, norm, clientSet } = require("../lib/harness");

const T = 5000;
const CASE = { timeout: 30000 };
const BUILD = process.env.SOCKEYE_BUILD_DIR || path.join(__dirname, "../../build");
const bin = (name) => path.join(BUILD, `example-${name}`);

const clients = clientSet({ timeout: T, transports: ["websocket"] });
const closeAll = clients.closeAll;
const client = (url, nsp = "/", opts = {}) => clients.open(url + (nsp === "/" ? "" : nsp), opts);

function connected(s) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timeout waiting for connect")), T);
    s.once("connect", () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once("connect_error", (err) => {
      clearTimeout(t);
      reject(new Error(`connect_error: ${err.message}`));
    });
  });
}

// Starts example <name> like the harness starts sockeye and checks it stops on SIGTERM.
function example(name) {
  const ctx = {};
  before(async () => {
    ctx.node = await startSockeye([], { bin: bin(name) });
    ctx.url = ctx.node.url;
  });
  after(async () => {
    closeAll();
    const r = await stopProc(ctx.node.proc, "SIGTERM");
    assert.equal(r.code, 0, `example-${name} exit ${r.code ?? r.signal}\n${ctx.node.stderr()}`);
  });
  afterEach(closeAll);
  return ctx;
}

describe("example-chat", () => {
  const ex = example("chat");

  it("relays messages to the room except the sender, announces arrivals", CASE, async () => {
    const ann = await connected(client(ex.url, "/", { auth: { name: "ann" }, query: { room: "r1" } }));
    const annLog = record(ann, "message", "joined", "left");
    const bob = await connected(client(ex.url, "/", { auth: { name: "bob" }, query: { room: "r1" } }));
    const bobLog = record(bob, "message", "joined");
    const eve = await connected(client(ex.url, "/", { auth: { name: "eve" }, query: { room: "r2" } }));
    const eveLog = record(eve, "message");
    await until(() => annLog.length === 1, T, "ann to hear bob join");
    assert.deepEqual(annLog[0].slice(0, 2), ["joined", { name: "bob" }]);

    bob.emit("message", "hello");
    await until(() => annLog.length === 2, T, "ann to get bob's message");
    assert.deepEqual(annLog[1].slice(0, 2), ["message", { name: "bob", text: "hello" }]);

    eve.emit("message", "anyone?");
    bob.disconnect();
    await until(() => annLog.length === 3, T, "ann to hear bob leave");
    assert.deepEqual(annLog[2].slice(0, 2), ["left", { name: "bob" }]);
    assert.deepEqual(bobLog.filter((e) => e[0] === "message"), [], "the sender got its own message");
    assert.deepEqual(annLog.filter((e) => e[1] && e[1].text === "anyone?"), [], "a message crossed rooms");
    assert.deepEqual(eveLog, []);
  });
});

describe("example-acks", () => {
  const ex = example("acks");

  it("client->server ack", CASE, async () => {
    const s = await connected(client(ex.url));
    assert.deepEqual(await ack(s, "sum", 2, 40), [42]);
    assert.deepEqual(await ack(s, "sum", "x", 1), [{ error: "sum takes two numbers" }]);
  });

  it("server->client ack, answered and timed out", CASE, async () => {
    const good = await connected(client(ex.url));
    good.on("question", (q, cb) => cb(q === "2+2?" ? 4 : -1));
    assert.deepEqual(await ack(good, "quiz"), [{ answer: 4 }]);
    const mute = await connected(client(ex.url));
    mute.on("question", () => {});
    const t0 = Date.now();
    const [res] = await ack(mute, "quiz");
    assert.ok(res.error, "a timeout is reported");
    assert.ok(Date.now() - t0 >= 900, "timed out before QUIZ_MS");
  });

});

// A process of its own: a broadcast ack targets every socket of the namespace, so
// no socket of another case may still be closing there.
describe("example-acks broadcast", () => {
  const ex = example("acks");

  it("broadcast ack collects every vote; a mute client makes it time out", CASE, async () => {
    const a = await connected(client(ex.url));
    const b = await connected(client(ex.url));
    a.on("vote", (q, cb) => cb(`a:${q}`));
    b.on("vote", (q, cb) => cb(`b:${q}`));
    const [res] = await ack(a, "poll", "lunch?");
    assert.equal(res.complete, true);
    assert.deepEqual([...res.votes].sort(), ["a:lunch?", "b:lunch?"]);

    const c = await connected(client(ex.url));
    c.on("vote", () => {});
    const [res2] = await ack(a, "poll", "tea?");
    assert.equal(res2.complete, false);
    assert.deepEqual([...res2.votes].sort(), ["a:tea?", "b:tea?"]);
  });
});

describe("example-binary", () => {
  const ex = example("binary");

  for (const transports of [["websocket"], ["polling"]]) {
    it(`binary both ways over ${transports[0]}`, CASE, async () => {
      const s = client(ex.url, "/", { transports });
      const hello = once(s, "hello");
      await connected(s);
      const [msg] = await hello;
      assert.deepEqual(norm(msg), { greeting: "hi", blob: { buf: [0xde, 0xad, 0xbe, 0xef] } });

      const args = [Buffer.from([1, 2, 3]), { deep: [{ b: Buffer.from([4]) }] }, "t"];
      assert.deepEqual(norm(await ack(s, "echo", ...args)), norm(args));
      assert.deepEqual(norm(await ack(s, "reverse", Buffer.from([1, 2, 3, 4, 5]))), [{ buf: [5, 4, 3, 2, 1] }]);
      assert.deepEqual(await ack(s, "reverse", "not a buffer"), ["reverse takes a buffer"]);
    });
  }
});

describe("example-namespaces", () => {
  const ex = example("namespaces");

  it("welcomes on / and on a dynamic namespace; namespaces are isolated", CASE, async () => {
    const root = client(ex.url, "/");
    const w1 = once(root, "welcome");
    await connected(root);
    assert.deepEqual((await w1).slice(0, 1), ["/"]);

    const red = client(ex.url, "/team-red");
    const blue = client(ex.url, "/team-blue");
    const w2 = once(red, "welcome");
    await Promise.all([connected(red), connected(blue)]);
    assert.deepEqual((await w2).slice(0, 1), ["/team-red"]);
    const redLog = record(red, "shout");
    const blueLog = record(blue, "shout");
    red.emit("shout", "go red");
    await until(() => redLog.length === 1, T, "red's own shout");
    assert.deepEqual(redLog[0].slice(0, 2), ["shout", "go red"]);
    blue.emit("shout", "go blue");
    await until(() => blueLog.length === 1, T, "blue's own shout");
    assert.deepEqual(blueLog[0].slice(0, 2), ["shout", "go blue"], "red's shout leaked into /team-blue");
  });

  it("a middleware refuses a bad token with message and data", CASE, async () => {
    const bad = await refused(client(ex.url, "/admin", { auth: { token: "guess" } }));
    assert.equal(bad.message, "not authorized");
    assert.deepEqual(bad.data, { code: 401 });
    const none = await refused(client(ex.url, "/admin"));
    assert.equal(none.message, "not authorized");

    const admin = await connected(client(ex.url, "/admin", { auth: { token: "secret" } }));
    const [counts] = await ack(admin, "stats");
    assert.equal(counts["/admin"], 1);
  });

  it("a name matching no namespace is refused", CASE, async () => {
    const err = await refused(client(ex.url, "/team-RED"));
    assert.equal(err.message, "Invalid namespace");
  });
});
