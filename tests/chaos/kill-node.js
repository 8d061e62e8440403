#!/usr/bin/env node
// Chaos driver: many official socket.io-client clients on one node that gets SIGKILL while
// publishers on the other nodes keep a steady rate. Server-agnostic (standard application:
// join / bcast), so the same run measures Sockeye and the Node reference.
//
//   node kill-node.js --victim 127.0.0.1:P1 --others 127.0.0.1:P2,127.0.0.1:P3 --victim-pid PID
//        [--clients 1000] [--rooms 10] [--rate 100] [--before 5] [--after 10] [--drain 15]
//        [--label name] [--out file.json]
//
// Shape: client i connects to the victim and joins room-(i mod rooms). One publisher per
// other node publishes bcast(room, n) with a per-room counter n, the rooms split between
// publishers, `rate` events/s in total (each client gets rate/rooms per second). After
// `before` s of steady traffic the victim gets SIGKILL; each client's manager is pointed at
// other node i mod k and reconnects (delay 500 ms, max 2 s, randomization 0.5: the herd
// spreads as real clients' would). Publishing goes on for `after` s, then stops; the run
// waits up to `drain` s for stragglers.
//
// A client that comes back with recovered === false rejoins its room at once (what an app
// does on a fresh session), so "lost" counts the events it did not get in between.
// Per client: expected = every number published to its room; lost = expected numbers never
// received; duplicates = numbers received more than once; order violations = a number not
// greater than the one before it; recover time = SIGKILL -> the "connect" event of a
// recovered reconnection (missed events are delivered before it); reconnect time the same
// for every client, fresh sessions included. Prints one JSON line (also to --out).
"use strict";
const { io } = require("socket.io-client");

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const victim = opt("victim");
const others = (opt("others") || "").split(",").filter(Boolean);
const victimPid = Number(opt("victim-pid"));
const CLIENTS = Number(opt("clients", 1000));
const ROOMS = Number(opt("rooms", 10));
const RATE = Number(opt("rate", 100));
const BEFORE_S = Number(opt("before", 5));
const AFTER_S = Number(opt("after", 10));
const DRAIN_S = Number(opt("drain", 15));
const label = opt("label", "chaos");
const out = opt("out", null);
if (!victim || others.length === 0 || !victimPid) {
  console.error("usage: kill-node.js --victim H:P --others H:P[,H:P] --victim-pid PID [...]");
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(20);
  }
}
const room = (i) => `room-${i % ROOMS}`;
const all = [];

function client(addr, opts) {
  const s = io(`http://${addr}`, { forceNew: true, transports: ["websocket"], timeout: 10000, ...opts });
  all.push(s);
  return s;
}
const join = (s, r) => s.timeout(10000).emitWithAck("join", r);

// ---------------------------------------------------------------- publishers

const sent = new Map(); // room -> numbers published
const pubs = others.map((addr) => ({ addr, s: client(addr, { reconnection: false }), rooms: [] }));
for (let r = 0; r < ROOMS; r++) pubs[r % pubs.length].rooms.push(`room-${r}`);

let publishing = true;
async function publishLoop() {
  // one tick every 10 ms, RATE/100 events per tick spread over the rooms round robin
  let k = 0, carry = 0;
  const perTick = RATE / 100;
  let next = Date.now();
  while (publishing) {
    carry += perTick;
    while (carry >= 1) {
      const r = `room-${k % ROOMS}`;
      const p = pubs[(k % ROOMS) % pubs.length];
      const n = sent.get(r) || 0;
      p.s.emit("bcast", r, n);
      sent.set(r, n + 1);
      k++;
      carry -= 1;
    }
    next += 10;
    await sleep(Math.max(0, next - Date.now()));
  }
}

// ---------------------------------------------------------------- subscribers

const subs = [];
const dupSamples = []; // the first duplicates seen: which copy came when
let killAt = 0;

function makeSub(i) {
  const sub = {
    i, room: room(i), got: [], dups: 0, order: 0, connects: 0, recovered: null,
    reconnectMs: null, seen: new Map(),
  };
  sub.s = client(victim, { reconnectionDelay: 500, reconnectionDelayMax: 2000, randomizationFactor: 0.5 });
  sub.phase = "live";
  sub.s.on("bcast", (r, n, offset) => {
    if (r !== sub.room) return;
    if (sub.seen.has(n)) {
      sub.dups++;
      if (dupSamples.length < 10) {
        dupSamples.push({ client: i, n, offset, first: sub.seen.get(n), again: sub.phase });
      }
    } else {
      sub.seen.set(n, `${sub.phase}:${offset}`);
    }
    if (sub.got.length && n <= sub.got[sub.got.length - 1]) sub.order++;
    sub.got.push(n);
  });
  sub.s.on("disconnect", () => {
    sub.phase = "replay";
    sub.s.io.uri = `http://${others[i % others.length]}`;
  });
  sub.s.on("connect", () => {
    sub.connects++;
    sub.phase = "live";
    if (sub.connects === 1) return;
    sub.recovered = sub.s.recovered === true;
    sub.reconnectMs = Date.now() - killAt;
    if (!sub.recovered) join(sub.s, sub.room).catch(() => {}); // fresh session: rejoin
  });
  subs.push(sub);
  return sub;
}

function pct(a, p) {
  if (a.length === 0) return null;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}

async function main() {
  const t0 = Date.now();
  await until(() => pubs.every((p) => p.s.connected), 10000, "publishers");
  for (const p of pubs) for (const r of p.rooms) await join(p.s, r);
  // connect in waves of 100 so the victim is not the bottleneck of the set-up
  for (let i = 0; i < CLIENTS; i += 100) {
    const wave = [];
    for (let j = i; j < Math.min(CLIENTS, i + 100); j++) wave.push(makeSub(j));
    await until(() => wave.every((s) => s.s.connected), 20000, "clients to connect");
    await Promise.all(wave.map((s) => join(s.s, s.room)));
  }
  const setupMs = Date.now() - t0;

  const loop = publishLoop();
  await sleep(BEFORE_S * 1000);
  const before = subs.reduce((a, s) => a + s.got.length, 0);
  killAt = Date.now();
  process.kill(victimPid, "SIGKILL");
  await sleep(AFTER_S * 1000);
  publishing = false;
  await loop;
  // drain: until every client has reconnected and has every number of its room
  const complete = () => subs.every((s) => s.connects >= 2 && s.seen.size >= (sent.get(s.room) || 0));
  const drainStart = Date.now();
  while (!complete() && Date.now() - drainStart < DRAIN_S * 1000) await sleep(100);
  await sleep(500); // late duplicates

  let lost = 0, dups = 0, order = 0, withLoss = 0, recovered = 0, fresh = 0, never = 0;
  const times = [], recTimes = [];
  for (const s of subs) {
    const want = sent.get(s.room) || 0;
    let l = 0;
    for (let n = 0; n < want; n++) if (!s.seen.has(n)) l++;
    lost += l;
    if (l > 0) withLoss++;
    dups += s.dups;
    order += s.order;
    if (s.recovered === true) recovered++;
    else if (s.recovered === false) fresh++;
    else never++;
    if (s.reconnectMs !== null) times.push(s.reconnectMs);
    if (s.recovered === true) recTimes.push(s.reconnectMs);
  }
  const expected = subs.reduce((a, s) => a + (sent.get(s.room) || 0), 0);
  const res = {
    label, clients: CLIENTS, rooms: ROOMS, rate: RATE, before_s: BEFORE_S, after_s: AFTER_S,
    published: [...sent.values()].reduce((a, b) => a + b, 0), expected_deliveries: expected,
    delivered_before_kill: before, recovered, fresh_sessions: fresh, never_reconnected: never,
    lost, clients_with_loss: withLoss, duplicates: dups, order_violations: order,
    // SIGKILL -> the reconnection's "connect": of the recovered clients (missed events come
    // before it), and of every client (fresh sessions included)
    recover_ms: { p50: pct(recTimes, 50), p99: pct(recTimes, 99), max: recTimes.length ? Math.max(...recTimes) : null },
    reconnect_ms: { p50: pct(times, 50), p99: pct(times, 99), max: times.length ? Math.max(...times) : null },
    setup_ms: setupMs,
    duplicate_samples: dupSamples,
  };
  const line = JSON.stringify(res);
  console.log(line);
  if (out) require("node:fs").writeFileSync(out, line + "\n");
  for (const s of all) { s.io.reconnection(false); s.disconnect(); }
  process.exit(0);
}

main().catch((err) => {
  console.error(`kill-node: ${err.message}`);
  for (const s of all) { s.io.reconnection(false); s.disconnect(); }
  process.exit(1);
});
