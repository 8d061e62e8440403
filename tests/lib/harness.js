// Shared helpers for the end-to-end tests: start real `sockeye` processes on
// loopback and wait on events with bounded timeouts (never sleep-and-hope).
"use strict";
const { spawn } = require("node:child_process");
const path = require("node:path");

const BIN = process.env.SOCKEYE_BIN || path.join(__dirname, "../../build/sockeye");
const started = new Set();

// Starts `sockeye --host 127.0.0.1 --port 0 ...args` and resolves once it printed its
// "listening on HOST:PORT" line. Rejects if the process exits or 10 s pass first.
function startSockeye(args = [], { env = {}, bin = BIN, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const proc = spawn(bin, ["--host", "127.0.0.1", "--port", "0", ...args], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    started.add(proc);
    let out = "";
    let err = "";
    const timer = setTimeout(() => fail(new Error(`sockeye not ready after ${timeoutMs} ms\n${err}`)), timeoutMs);
    function fail(e) {
      clearTimeout(timer);
      proc.kill("SIGKILL");
      reject(e);
    }
    proc.stderr.on("data", (d) => {
      err += d;
      if (process.env.SOCKEYE_TEST_VERBOSE) process.stderr.write(d);
    });
    proc.stdout.on("data", (d) => {
      out += d;
      const m = /listening on ([0-9.]+):(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        const port = Number(m[2]);
        resolve({
          proc,
          port,
          url: `http://127.0.0.1:${port}`,
          stderr: () => err,
          stop: (signal = "SIGTERM") => stopProc(proc, signal),
        });
      }
    });
    proc.on("exit", (code, sig) => {
      if (!/listening on/.test(out)) fail(new Error(`sockeye exited (${code ?? sig}) before listening\n${err}`));
    });
  });
}

// Sends signal, waits up to 5 s for the exit, then SIGKILL. Resolves {code, signal}.
function stopProc(proc, signal = "SIGTERM", graceMs = 5000) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      started.delete(proc);
      return resolve({ code: proc.exitCode, signal: proc.signalCode });
    }
    const t = setTimeout(() => proc.kill("SIGKILL"), graceMs);
    proc.once("exit", (code, sig) => {
      clearTimeout(t);
      started.delete(proc);
      resolve({ code, signal: sig });
    });
    proc.kill(signal);
  });
}

// Resolves with the arguments of the next `event` on emitter, rejects after ms.
function once(emitter, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`timeout waiting for "${event}" (${ms} ms)`));
    }, ms);
    function on(...args) {
      clearTimeout(t);
      resolve(args);
    }
    emitter.once(event, on);
  });
}

// Resolves once pred() is true, polling every 10 ms; rejects after ms.
async function until(pred, ms = 5000, what = "condition") {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Emit with an ack, bounded.
function emitAck(socket, ...args) {
  return socket.timeout(5000).emitWithAck(...args);
}

// ---------------------------------------------------------------- client helpers

const WAIT = 5000; // bound on each wait below

// Resolves with the connect_error of socket; rejects if it connects or after WAIT.
function refused(socket) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("timeout waiting for connect_error")), WAIT);
    socket.once("connect", () => {
      clearTimeout(t);
      reject(new Error("connected, expected a refusal"));
    });
    socket.once("connect_error", (err) => {
      clearTimeout(t);
      resolve(err);
    });
  });
}

// Emits with an ack and resolves with ALL the ack's arguments (emitWithAck keeps one);
// rejects after WAIT.
function ack(socket, ev, ...args) {
  return new Promise((resolve, reject) => {
    socket.timeout(WAIT).emit(ev, ...args, (err, ...res) =>
      err ? reject(new Error(`no ack for "${ev}" within ${WAIT} ms`)) : resolve(res));
  });
}

// Records every listed event of socket as [event, ...args], in arrival order.
function record(socket, ...events) {
  const log = [];
  for (const ev of events) socket.on(ev, (...a) => log.push([ev, ...a]));
  return log;
}

// Buffers compare by content whatever view the transport produced.
function norm(v) {
  if (Buffer.isBuffer(v)) return { buf: [...v] };
  if (v instanceof ArrayBuffer) return { buf: [...new Uint8Array(v)] };
  if (ArrayBuffer.isView(v)) return { buf: [...new Uint8Array(v.buffer, v.byteOffset, v.byteLength)] };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, norm(x)]));
  return v;
}

process.on("exit", () => {
  for (const p of started) p.kill("SIGKILL");
});

// The official clients a test file opens, closed together (afterEach / after): open()
// takes io()'s options over these defaults (a fresh manager, no reconnection, timeout).
function clientSet(defaults = {}) {
  const { io } = require("socket.io-client");
  const live = new Set();
  return {
    open(url, opts = {}) {
      const s = io(url, { forceNew: true, reconnection: false, timeout: 5000, ...defaults, ...opts });
      live.add(s);
      return s;
    },
    add(...opened) { // sockets made another way (a shared Manager)
      for (const s of opened) live.add(s);
    },
    closeAll() {
      for (const s of live) {
        s.io.reconnection(false);
        s.disconnect();
      }
      live.clear();
    },
  };
}

module.exports = { startSockeye, stopProc, once, until, emitAck, refused, ack, record, norm, clientSet, BIN };
