// The cluster behind its load balancer, end to end: cluster/run-cluster.sh starts
// redis-server, three `sockeye` nodes and HAProxy with cluster/haproxy.cfg on loopback,
// and the OFFICIAL socket.io-client talks only to the balancer (the publisher of the last
// case excepted, which stands for a backend on a node that stays up).
//
// What must hold:
// - websocket clients connect through the balancer and are spread over every node (each
//   node's /metrics counts its own sockets), and a broadcast reaches all of them;
// - long-polling, and polling then upgrade, work through the balancer because it keeps a
//   session on the node that issued its sid (with and without cookies), and the same
//   clients FAIL when the runner drops the persistence lines (--no-sticky): the
//   stickiness is what makes them work, not luck;
// - a node killed with SIGKILL: its clients reconnect through the balancer to the other
//   nodes with socket.recovered === true and exactly the numbered events they missed, in
//   order, no duplicates; clients of the other nodes never notice.
//
// Processes: the runner is our child; it prints the PID of each of its children, which is
// how the node is killed, and stops them all by PID on SIGTERM (or when this process goes
// away). Every wait is bounded and waits on a condition.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn, spawnSync } = require("node:child_process");
const { until, stopProc, ack, clientSet, BIN } = require("../lib/harness");
const { freePort, metrics, metric } = require("../lib/cluster");

const RUNNER = path.join(__dirname, "../../cluster/run-cluster.sh");
const T = 10000; // bound on a single wait
const CASE = { timeout: 120000 };
const have = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const MISSING = ["haproxy", "redis-server", "redis-cli"].filter((c) => !have(c));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- the runner

const runners = new Set();
process.on("exit", () => {
  // last resort if a case threw before its `after`: the runner stops its children itself
  for (const r of runners) r.proc.kill("SIGTERM");
});

// Starts cluster/run-cluster.sh on a free port and resolves once it printed "ready", with
// the PIDs and URLs it printed. Rejects if it exits first or after 90 s (sanitizer builds).
// The port was free when chosen; if something took it before HAProxy bound it, another
// port is tried (3 times at most).
async function startCluster(opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOn(await freePort(), opts);
    } catch (e) {
      if (attempt >= 3 || !/is taken|Address already in use/.test(e.message)) throw e;
    }
  }
}

async function startClusterOn(port, { nodes = 3, sticky = true, nodeArgs = [] } = {}) {
  const args = [RUNNER, "--nodes", String(nodes), "--port", String(port)];
  if (!sticky) args.push("--no-sticky");
  args.push("--", "--log-level", "warn", ...nodeArgs);
  const proc = spawn("bash", args, {
    env: { ...process.env, SOCKEYE_BIN: BIN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const c = { proc, lb: `http://127.0.0.1:${port}`, nodes: [], out: "", err: "" };
  runners.add(c);
  proc.stderr.on("data", (d) => {
    c.err += d;
    if (process.env.SOCKEYE_TEST_VERBOSE) process.stderr.write(d);
  });
  await new Promise((resolve, reject) => {
    const t = setTimeout(() => done(new Error(`run-cluster not ready after 90 s\n${c.err}`)), 90000);
    function done(e) {
      clearTimeout(t);
      proc.stdout.removeAllListeners("data");
      if (e) {
        proc.kill("SIGTERM");
        reject(e);
      } else resolve();
    }
    proc.stdout.on("data", (d) => {
      c.out += d;
      if (/^run-cluster: ready$/m.test(c.out)) done();
    });
    proc.once("exit", (code, sig) => done(new Error(`run-cluster exited (${code ?? sig})\n${c.err}`)));
  });
  for (const m of c.out.matchAll(/^run-cluster: node (\d+) pid (\d+) (http:\S+)$/gm)) {
    c.nodes.push({ n: Number(m[1]), pid: Number(m[2]), url: m[3] });
  }
  c.stats = /stats (http:\S+)$/m.exec(c.out)[1];
  assert.equal(c.nodes.length, nodes, "every node printed its pid and url");
  c.stop = async () => {
    runners.delete(c);
    // nodes drain (up to 10 s) before redis stops; the runner SIGKILLs past its own bounds
    const res = await stopProc(proc, "SIGTERM", 40000);
    assert.equal(res.code, 0, `run-cluster exit status\n${c.err}`);
  };
  return c;
}

// Sockets of namespace "/" on one node, from its own /metrics.
async function socketsOn(node) {
  return metric(await metrics(node), "sockeye_sockets", '{namespace="/"}');
}

// ---------------------------------------------------------------- clients

// Reconnecting clients, quick to retry, on any transport the test asks for.
const clients = clientSet({
  reconnection: true, reconnectionDelay: 100, reconnectionDelayMax: 100, randomizationFactor: 0,
});
const client = clients.open;
const closeClients = clients.closeAll;

function connected(s, what = "client connect") {
  return new Promise((resolve, reject) => {
    if (s.connected) return resolve(s);
    const t = setTimeout(() => reject(new Error(`timeout: ${what}`)), T);
    s.once("connect", () => {
      clearTimeout(t);
      resolve(s);
    });
  });
}

async function join(s, room) {
  assert.deepEqual(await s.timeout(5000).emitWithAck("join", room), { ok: true });
}

// The transport upgraded to websocket (or already was).
function upgraded(s) {
  return until(() => s.io.engine && s.io.engine.transport.name === "websocket", T, "upgrade to websocket");
}

// Resolves with the reason of the first failure of s (connect_error, or a disconnect
// after connecting); rejects if nothing failed within ms.
function failure(s, ms = T) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`still working after ${ms} ms`)), ms);
    const end = (why) => {
      clearTimeout(t);
      resolve(why);
    };
    s.once("connect_error", (e) => end(`connect_error: ${e.message}`));
    s.once("disconnect", (r) => end(`disconnect: ${r}`));
  });
}

// A subscriber: the numbered events it got per room, and its reconnections.
class Sub {
  constructor(name, url, rooms, opts) {
    this.name = name;
    this.rooms = rooms;
    this.got = new Map(rooms.map((r) => [r, []]));
    this.connects = 0;
    this.recovered = [];
    this.disconnects = 0;
    this.s = client(url, opts);
    this.s.on("bcast", (room, n) => {
      if (this.got.has(room)) this.got.get(room).push(n);
    });
    this.s.on("connect", () => {
      this.connects++;
      if (this.connects > 1) this.recovered.push(this.s.recovered === true);
    });
    this.s.on("disconnect", () => this.disconnects++);
  }
  async ready() {
    await connected(this.s, `${this.name} connect`);
    for (const r of this.rooms) await join(this.s, r);
    this.sid = this.s.id;
  }
  total() {
    let n = 0;
    for (const a of this.got.values()) n += a.length;
    return n;
  }
}

// Sends numbered `bcast` events to its rooms, round robin, one every interval ms.
class Publisher {
  constructor(url, rooms) {
    this.rooms = rooms;
    this.sent = new Map(rooms.map((r) => [r, 0]));
    this.s = client(url, { transports: ["websocket"], reconnection: false });
  }
  async ready() {
    await connected(this.s, "publisher connect");
    for (const r of this.rooms) await join(this.s, r);
  }
  run(count, interval) {
    return (async () => {
      for (let i = 0; i < count * this.rooms.length; i++) {
        const room = this.rooms[i % this.rooms.length];
        const n = this.sent.get(room);
        this.s.emit("bcast", room, n);
        this.sent.set(room, n + 1);
        await sleep(interval);
      }
    })();
  }
  total() {
    let n = 0;
    for (const v of this.sent.values()) n += v;
    return n;
  }
}

// ---------------------------------------------------------------- cases

describe("cluster behind HAProxy (cluster/run-cluster.sh)",
  { skip: MISSING.length > 0 && `not on PATH: ${MISSING.join(", ")} (cluster/install-deps.sh installs them)` },
  () => {
    let cl;

    before(async () => {
      cl = await startCluster();
    });
    after(async () => {
      closeClients();
      if (cl) await cl.stop();
    });

    it("the balancer and every node are healthy", CASE, async () => {
      const lbHealth = await fetch(`${cl.stats.replace(/\/stats$/, "")}/healthz`, { signal: AbortSignal.timeout(T) });
      assert.equal(lbHealth.status, 200, "balancer /healthz with nodes up");
      const viaLb = await fetch(`${cl.lb}/healthz`, { signal: AbortSignal.timeout(T) });
      assert.equal(viaLb.status, 200);
      assert.equal(await viaLb.text(), "ok\n");
    });

    it("websocket clients connect through the balancer, spread over every node, and all get a broadcast",
      CASE, async () => {
        const subs = [];
        for (let i = 0; i < 6; i++) {
          const s = client(cl.lb, { transports: ["websocket"] });
          await connected(s);
          await join(s, "ws-all");
          subs.push(s);
        }
        const counts = await Promise.all(cl.nodes.map(socketsOn));
        assert.equal(counts.reduce((a, b) => a + b, 0), 6, `sockets per node ${counts}`);
        for (const [i, n] of counts.entries()) assert.ok(n >= 1, `node ${i + 1} has no client: ${counts}`);

        const got = subs.map(() => []);
        subs.forEach((s, i) => s.on("bcast", (room, msg) => got[i].push(msg)));
        subs[0].emit("bcast", "ws-all", "hello all nodes");
        await until(() => got.every((g) => g.length === 1), T, "the broadcast on every client");
        for (const g of got) assert.deepEqual(g, ["hello all nodes"]);
        for (const s of subs) assert.deepEqual(await ack(s, "echo", 7, "x"), [7, "x"]);
        for (const s of subs) s.disconnect();
      });

    it("long-polling and polling + upgrade stay on their node (sid stickiness, and cookies)", CASE,
      async () => {
        const kinds = [
          ["polling only", { transports: ["polling"] }],
          ["polling only, keeps cookies", { transports: ["polling"], withCredentials: true }],
          ["polling then upgrade", {}],
          ["polling then upgrade, keeps cookies", { withCredentials: true }],
        ];
        const subs = [];
        for (const [name, opts] of kinds) {
          for (let k = 0; k < 3; k++) {
            const s = client(cl.lb, { ...opts, reconnection: false });
            s.kind = name;
            s.errors = [];
            s.on("connect_error", (e) => s.errors.push(e.message));
            s.on("disconnect", (r) => s.errors.push(`disconnect: ${r}`));
            subs.push(s);
          }
        }
        await Promise.all(subs.map((s) => connected(s, `${s.kind} connect`)));
        for (const s of subs) if (s.kind.startsWith("polling then")) await upgraded(s);
        // spread: polling sessions landed on more than one node
        const counts = await Promise.all(cl.nodes.map(socketsOn));
        assert.ok(counts.filter((n) => n > 0).length >= 2, `polling clients all on one node: ${counts}`);
        // many requests per session: acks both ways and a broadcast, every one on the right node
        for (const s of subs) await join(s, "poll-all");
        for (let round = 0; round < 5; round++) {
          await Promise.all(subs.map(async (s) =>
            assert.deepEqual(await ack(s, "echo", round, s.kind), [round, s.kind])));
        }
        const got = subs.map(() => []);
        subs.forEach((s, i) => s.on("bcast", (room, msg) => got[i].push(msg)));
        subs[0].emit("bcast", "poll-all", "to every transport");
        await until(() => got.every((g) => g.length === 1), T, "the broadcast on every client");
        for (const s of subs) {
          assert.deepEqual(s.errors, [], `${s.kind}: errors`);
          assert.ok(s.connected, `${s.kind}: still connected`);
          if (s.kind.startsWith("polling only")) assert.equal(s.io.engine.transport.name, "polling");
        }
        for (const s of subs) s.disconnect();
      });

    it("a node killed with SIGKILL: its clients come back through the balancer, recovered, with exactly the missed events",
      CASE, async () => {
        const ROOMS = ["feed1", "feed2"];
        const victim = cl.nodes[0];
        // the publisher is a backend on a node that stays up
        const pub = new Publisher(cl.nodes[2].url, ROOMS);
        await pub.ready();
        const subs = [];
        for (let i = 0; i < 9; i++) {
          const opts = i % 3 === 2 ? {} : { transports: ["websocket"] }; // a third poll, then upgrade
          const rooms = i % 3 === 1 ? [ROOMS[1]] : i % 3 === 0 ? [ROOMS[0]] : ROOMS;
          const sub = new Sub(`sub${i}`, cl.lb, rooms, opts);
          await sub.ready();
          if (i % 3 === 2) await upgraded(sub.s);
          subs.push(sub);
        }
        const before = await socketsOn(victim);
        assert.ok(before >= 1, "no subscriber on the node to kill: the case would prove nothing");

        const running = pub.run(150, 8);
        await until(() => subs.every((s) => s.total() >= 10), T, "events before the kill");
        const atKill = pub.total();
        process.kill(victim.pid, "SIGKILL");
        const moved = () => subs.filter((s) => s.disconnects > 0);
        await until(() => moved().length === before && moved().every((s) => s.recovered.length === 1),
          T, `the ${before} client(s) of the killed node to reconnect`);
        const back = pub.total();
        await running;
        await until(() => subs.every((s) => s.rooms.every((r) => s.got.get(r).length >= pub.sent.get(r))),
          T, "every client to catch up").catch(() => {});
        await sleep(300); // late duplicates would show up here

        assert.ok(back > atKill, "nothing was published while they were away: recovery not exercised");
        for (const s of subs) {
          const who = `${s.name} (sid ${s.sid})`;
          if (s.disconnects > 0) {
            assert.deepEqual(s.recovered, [true], `${who}: socket.recovered after the kill`);
            assert.equal(s.s.id, s.sid, `${who}: a recovered socket keeps its id`);
          } else {
            assert.equal(s.connects, 1, `${who}: a client of a surviving node reconnected`);
          }
          for (const room of s.rooms) {
            const want = Array.from({ length: pub.sent.get(room) }, (_, i) => i);
            assert.deepEqual(s.got.get(room), want, `${who} room ${room}: lost, duplicated or out of order`);
          }
        }
        // they are on the surviving nodes now
        const now = await Promise.all(cl.nodes.slice(1).map(socketsOn));
        assert.equal(now.reduce((a, b) => a + b, 0), subs.length + 1, `sockets on the survivors ${now}`);
      });
  });

describe("the same balancer without its persistence lines (run-cluster.sh --no-sticky)",
  { skip: MISSING.length > 0 && `not on PATH: ${MISSING.join(", ")}` },
  () => {
    let cl;

    before(async () => {
      cl = await startCluster({ sticky: false });
    });
    after(async () => {
      closeClients();
      if (cl) await cl.stop();
    });

    // Round robin sends a session's next request to a node that does not know it. Under
    // load (sanitizers, CI) a health check may briefly leave a single node in rotation,
    // and a session may then get lucky: the test asks each kind of client to break, not
    // every attempt.
    it("long-polling breaks: requests of one session land on other nodes", CASE, async () => {
      for (const opts of [{ transports: ["polling"] }, {}]) {
        let broke = 0;
        for (let k = 0; k < 3; k++) {
          const s = client(cl.lb, { ...opts, reconnection: false });
          const why = await failure(s, 3000).catch(() => null);
          if (why !== null) {
            assert.match(why, /connect_error|disconnect/, why);
            broke++;
          }
          s.disconnect();
        }
        assert.ok(broke > 0, `no ${JSON.stringify(opts)} session broke without stickiness`);
      }
    });

    it("websocket-only clients still work (one connection, nothing to stick)", CASE, async () => {
      const s = client(cl.lb, { transports: ["websocket"], reconnection: false });
      await connected(s);
      for (let i = 0; i < 5; i++) assert.deepEqual(await ack(s, "echo", i), [i]);
      s.disconnect();
    });
  });
