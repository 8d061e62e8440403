// Helpers for the cluster tests: a private redis-server per test file (free loopback
// port, no persistence, stopped by PID), Sockeye nodes joined to it, clients that
// record what they receive, and bounded waits. Nothing here sleeps and hopes: every
// wait has a deadline and a reason in its error.
"use strict";
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const net = require("node:net");
const os = require("node:os");
const path = require("node:path");
const { io } = require("socket.io-client");
const { startSockeye, stopProc, until, norm, BIN } = require("./harness");

const T = 5000;
const BUILD = process.env.SOCKEYE_BUILD_DIR || path.dirname(BIN);
const EXAMPLE_CLUSTER = path.join(BUILD, "example-cluster");

// ------------------------------------------------------------------ ports and redis

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// One RESP reply parsed from buf at pos: [value, nextPos] or null when incomplete.
function parseResp(buf, pos = 0) {
  const eol = buf.indexOf("\r\n", pos);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString("utf8", pos + 1, eol);
  const next = eol + 2;
  if (type === "+") return [line, next];
  if (type === "-") return [new Error(line), next];
  if (type === ":") return [Number(line), next];
  if (type === "$") {
    const n = Number(line);
    if (n < 0) return [null, next];
    if (buf.length < next + n + 2) return null;
    return [buf.toString("utf8", next, next + n), next + n + 2];
  }
  if (type === "*") {
    const n = Number(line);
    if (n < 0) return [null, next];
    const out = [];
    let p = next;
    for (let i = 0; i < n; i++) {
      const r = parseResp(buf, p);
      if (!r) return null;
      out.push(r[0]);
      p = r[1];
    }
    return [out, p];
  }
  throw new Error(`bad RESP type ${type}`);
}

// Sends one command to 127.0.0.1:port and resolves its reply (Error replies reject).
function redisCmd(port, ...args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${args[0]}: no reply within ${T} ms`));
    }, T);
    sock.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    sock.on("connect", () => {
      const parts = [Buffer.from(`*${args.length}\r\n`)];
      for (const a of args) {
        const s = Buffer.isBuffer(a) ? a : Buffer.from(String(a));
        parts.push(Buffer.from(`$${s.length}\r\n`), s, Buffer.from("\r\n"));
      }
      sock.write(Buffer.concat(parts));
    });
    sock.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf);
      if (!r) return;
      clearTimeout(t);
      sock.destroy();
      if (r[0] instanceof Error) reject(r[0]);
      else resolve(r[0]);
    });
  });
}

// Starts redis-server on port (a free one by default) and resolves once it answers
// PING. extra: more redis-server arguments (e.g. ["--requirepass", "pw"]).
async function startRedis({ port, extra = [] } = {}) {
  port = port || (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sockeye-redis-"));
  const proc = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, ...extra],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let log = "";
  proc.stdout.on("data", (d) => (log += d));
  proc.stderr.on("data", (d) => (log += d));
  const auth = extra.indexOf("--requirepass") >= 0;
  await until(
    async () => {
      if (proc.exitCode !== null) throw new Error(`redis-server exited: ${log}`);
      try {
        const r = await redisCmd(port, "PING");
        return r === "PONG";
      } catch (e) {
        return auth && /NOAUTH/.test(e.message);
      }
    },
    T,
    `redis-server on port ${port}`,
  );
  const r = {
    port,
    proc,
    addr: `127.0.0.1:${port}`,
    url: `redis://127.0.0.1:${port}`,
    cmd: (...args) => redisCmd(port, ...args),
    // SIGKILL by default: a crash, not a shutdown
    stop: async (signal = "SIGKILL") => {
      await stopProc(proc, signal);
    },
    // the same port again, empty (no persistence)
    restart: () => startRedis({ port, extra }),
    cleanup: async () => {
      await stopProc(proc, "SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return r;
}

// ------------------------------------------------------------------ nodes

// A `sockeye` node (the standalone executable) in the cluster behind redis.
function startNode(redis, args = [], opts = {}) {
  return startSockeye(["--redis", redis.url, ...args], opts);
}

// An `example-cluster` node (node/examples/cluster.c): clients drive the cluster API.
function startApiNode(redis, name, args = [], opts = {}) {
  return startSockeye(["--redis", redis.url, "--name", name, ...args], { bin: EXAMPLE_CLUSTER, ...opts });
}

// ------------------------------------------------------------------ clients

const live = new Set();

// Connects a websocket client to node (namespace nsp) and resolves once connected.
function connect(node, nsp = "/", opts = {}) {
  const s = io(node.url + (nsp === "/" ? "" : nsp), {
    forceNew: true,
    reconnection: false,
    timeout: T,
    transports: ["websocket"],
    ...opts,
  });
  live.add(s);
  s.log = [];
  s.onAny((ev, ...args) => s.log.push([ev, ...args]));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`connect to ${node.url}${nsp}: timeout`)), T);
    s.once("connect", () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once("connect_error", (e) => {
      clearTimeout(t);
      reject(new Error(`connect_error: ${e.message}`));
    });
  });
}

function closeClients() {
  for (const s of live) s.disconnect();
  live.clear();
}

// Emits with an ack (bounded) and resolves with the ack's first argument.
function ask(s, ev, ...args) {
  return new Promise((resolve, reject) => {
    s.timeout(T + 3000).emit(ev, ...args, (err, res) =>
      err ? reject(new Error(`no ack for "${ev}"`)) : resolve(res));
  });
}

// The events named ev that s received so far: their argument lists.
function got(s, ev) {
  return s.log.filter((e) => e[0] === ev).map((e) => e.slice(1));
}

// Resolves once s received an event ev whose arguments satisfy pred (default: any).
function waitFor(s, ev, pred = () => true, ms = T) {
  return until(() => got(s, ev).some((a) => pred(a)), ms, `"${ev}" on client ${s.id}`);
}


// ------------------------------------------------------------------ metrics

async function metrics(node) {
  const res = await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(T) });
  return res.text();
}

function metric(text, name, labels = "") {
  const esc = (name + labels).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${esc} ([0-9.e+-]+)$`, "m").exec(text);
  return m ? Number(m[1]) : undefined;
}

// Resolves once node's stderr matches re.
function logged(node, re, ms = T) {
  return until(() => re.test(node.stderr()), ms, `log line ${re} of node ${node.port}`);
}

module.exports = {
  T,
  EXAMPLE_CLUSTER,
  freePort,
  redisCmd,
  startRedis,
  startNode,
  startApiNode,
  connect,
  closeClients,
  ask,
  got,
  waitFor,
  norm,
  metrics,
  metric,
  logged,
  until,
  stopProc,
  startSockeye,
};
