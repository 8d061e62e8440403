// sockeye-ctl (adapter/ctl/ctl.c) against a live node and a real redis-server: what an operator
// reads when inspecting the cluster's recovery state. Checks that each command finds the
// keys a running node wrote (node record, offset counter and streams, a session with its
// rooms and join marks) and that bad usage and a missing session are reported, not crashed.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn, spawnSync } = require("node:child_process");
const { startRedis, startNode, connect, closeClients, ask, waitFor, until, T } = require("../lib/cluster");
const { BIN } = require("../lib/harness");

const HAVE_REDIS = spawnSync("redis-server", ["--version"]).status === 0;
const CTL = path.join(process.env.SOCKEYE_BUILD_DIR || path.dirname(BIN), "sockeye-ctl");

// Runs sockeye-ctl (bounded) and resolves with {code, out, err}.
function ctl(redis, ...args) {
  return new Promise((resolve, reject) => {
    const p = spawn(CTL, ["--redis", redis.url, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const t = setTimeout(() => { p.kill("SIGKILL"); reject(new Error(`sockeye-ctl ${args.join(" ")}: timeout`)); }, T);
    p.on("exit", (code) => { clearTimeout(t); resolve({ code, out, err }); });
  });
}

describe("sockeye-ctl", { skip: !HAVE_REDIS && "redis-server not on PATH" }, () => {
  let redis;
  let node;
  before(async () => {
    redis = await startRedis();
    node = await startNode(redis, ["--log-level", "warn"]);
  });
  after(async () => {
    closeClients();
    if (node) await node.stop("SIGKILL");
    if (redis) await redis.cleanup();
  });

  it("shows the node, the streams, and a session with its rooms and join marks", { timeout: 30000 }, async () => {
    const a = await connect(node);
    const b = await connect(node);
    assert.deepEqual(await ask(a, "join", "early"), { ok: true });
    assert.deepEqual(await ask(b, "join", "early"), { ok: true });
    b.emit("bcast", "early", 1);
    await waitFor(a, "bcast");
    assert.deepEqual(await ask(a, "join", "late"), { ok: true });
    const pid = a._pid;
    assert.equal(typeof pid, "string", "the client holds a pid (recovery on)");

    const nodes = await ctl(redis, "nodes");
    assert.equal(nodes.code, 0, nodes.err);
    assert.match(nodes.out, new RegExp(`127\\.0\\.0\\.1:${node.port}`));

    const streams = await ctl(redis, "streams");
    assert.equal(streams.code, 0, streams.err);
    assert.match(streams.out, /r:early/);

    // the join of "late" is written through asynchronously: wait for it
    let one;
    await until(async () => {
      one = await ctl(redis, "session", "/", pid);
      return one.code === 0 && /joined[\s\S]*"late"/.test(one.out);
    }, T, "the session with its join mark");
    assert.match(one.out, new RegExp(`sid\\s+${a.id}`));
    assert.match(one.out, /rooms[\s\S]*"early"[\s\S]*"late"/);
    assert.match(one.out, /offset\s+\d+-\d+ \(/);
    assert.match(one.out, /read\s+\d+ \([0-9.]+s ago\)/, "the session's read time");
    // "late" was joined after a's node delivered the broadcast: its mark is that offset
    const delivered = a.log.find((e) => e[0] === "bcast").at(-1);
    assert.equal(/"late":\s*"(\d+-\d+)"/.exec(one.out)?.[1], delivered, "the join mark of late");

    const all = await ctl(redis, "sessions");
    assert.equal(all.code, 0, all.err);
    assert.ok(all.out.includes(pid));
  });

  it("reports a missing session and bad usage with an exit status", async () => {
    const none = await ctl(redis, "session", "/", "no-such-pid");
    assert.equal(none.code, 1);
    assert.match(none.out, /no session no-such-pid/);
    const bad = await ctl(redis, "frobnicate");
    assert.notEqual(bad.code, 0);
    assert.match(bad.err + bad.out, /Usage|unknown/i);
  });

  it("pushes to a queue a client consumes, and shows the queue with the consumer's node", { timeout: 30000 }, async () => {
    // pushed before anyone consumes: kept, delivered once a consumer comes
    const p1 = await ctl(redis, "push", "ctl-jobs", '{ "n": 1, "tags": ["a"] }');
    assert.equal(p1.code, 0, p1.err);
    assert.match(p1.out, /^\d+-\d+\n$/);
    const c = await connect(node);
    const got = [];
    c.on("queue:msg", (q, msg) => got.push([q, msg])); // not acknowledged: stays pending
    assert.deepEqual(await ask(c, "queue:consume", "ctl-jobs", { group: "g", prefetch: 5 }), { ok: true });
    await until(() => got.length === 1, T, "the pushed message");
    assert.deepEqual(got[0], ["ctl-jobs", { id: p1.out.trim(), payload: { n: 1, tags: ["a"] }, deliveries: 1 }]);

    const list = await ctl(redis, "queues");
    assert.equal(list.code, 0, list.err);
    assert.match(list.out, /^ctl-jobs\s+1\s+1\s+1\s/m);
    const one = await ctl(redis, "queue", "ctl-jobs");
    assert.equal(one.code, 0, one.err);
    assert.match(one.out, /group g: 1 consumer\(s\), 1 pending/);
    const nodes = await ctl(redis, "nodes");
    const uid = new RegExp(`^(\\S+)\\s+127\\.0\\.0\\.1:${node.port}`, "m").exec(nodes.out)?.[1];
    assert.ok(uid, nodes.out);
    assert.match(one.out, new RegExp(`\\n\\S+\\s+${uid}\\s+1\\s`), "the consumer's node");

    const missing = await ctl(redis, "queue", "no-such-queue");
    assert.equal(missing.code, 1);
    assert.match(missing.out, /no queue no-such-queue/);
    const badJson = await ctl(redis, "push", "ctl-jobs", "{nope");
    assert.equal(badJson.code, 2);
    assert.match(badJson.err, /invalid JSON/);
    const badName = await ctl(redis, "push", "a\tb", "1");
    assert.equal(badName.code, 2);
    assert.match(badName.err, /invalid queue name/);
  });
});
