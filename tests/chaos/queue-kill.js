#!/usr/bin/env node
// Chaos driver for durable queues (README "Queues"): a producer pushes numbered messages at a
// steady rate while three consumers on three nodes process and acknowledge them; mid-run the
// node of the first consumer gets SIGKILL and that consumer reconnects to another node.
//
//   node queue-kill.js --nodes H:P1,H:P2,H:P3 --victim-pid PID [--messages 2000] [--rate 200]
//        [--prefetch 50] [--work 100] [--drain 60] [--settle 3] [--queue chaos] [--rep 1]
//
// Shape: consumer i connects to node i (the victim is node 1) and consumes the queue in group
// "workers" with the given prefetch; it processes a message when it arrives (records its
// number) and acknowledges it after a random 0..work ms (simulated work, so that messages
// are in flight when the node dies). The producer, on node 2, pushes 0..messages-1 with
// queue:push at `rate` messages/s (at most 200 unanswered pushes), counting a message as
// pushed once its ack says {ok:true}. Once half are pushed, the victim gets SIGKILL; the
// first consumer's manager is pointed at node 3 and reconnects (delay 200 ms, max 1 s); a
// fresh session (recovered === false) consumes again, as an application would.
//
// Measures: pushed (acked ok), push failures, processed (every delivery handled), distinct,
// lost (pushed, never processed: must be 0), duplicates (processed - distinct: at least once
// means some are expected; bounded by prefetch x the consumers of the killed node), the
// victim consumer's recovery, and times: start -> every pushed message processed, and
// SIGKILL -> the same. Every wait is bounded. Prints one JSON line; exit 0 (the shell script
// judges), 1 when the run itself broke (a set-up timeout).
"use strict";
const { io } = require("socket.io-client");

const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const nodes = (opt("nodes") || "").split(",").filter(Boolean);
const victimPid = Number(opt("victim-pid"));
const N = Number(opt("messages", 2000));
const RATE = Number(opt("rate", 200));
const PREFETCH = Number(opt("prefetch", 50));
const WORK_MS = Number(opt("work", 100));
const DRAIN_S = Number(opt("drain", 60));
const SETTLE_S = Number(opt("settle", 3));
const QUEUE = opt("queue", "chaos");
const REP = Number(opt("rep", 1));
const MAX_INFLIGHT = 200;
if (nodes.length !== 3 || !victimPid) {
  console.error("usage: queue-kill.js --nodes H:P1,H:P2,H:P3 --victim-pid PID [...]");
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
const all = [];
function client(addr, opts) {
  const s = io(`http://${addr}`, { forceNew: true, transports: ["websocket"], timeout: 10000, ...opts });
  all.push(s);
  return s;
}

// ---------------------------------------------------------------- consumers

const processed = new Map(); // n -> times processed
let processedTotal = 0, redelivered = 0, lateAcks = 0;
const consumers = [];

function consume(c) {
  return c.s.timeout(10000).emitWithAck("queue:consume", QUEUE, { group: "workers", prefetch: PREFETCH });
}

function makeConsumer(i) {
  const c = { i, got: 0, connects: 0, recovered: null, reconnectMs: null, reconsumed: false };
  c.s = client(nodes[i], { reconnectionDelay: 200, reconnectionDelayMax: 1000, randomizationFactor: 0.5 });
  c.s.on("queue:msg", (q, msg, ack) => {
    if (q !== QUEUE) return;
    const n = msg && msg.payload && msg.payload.n;
    processed.set(n, (processed.get(n) || 0) + 1);
    processedTotal++;
    c.got++;
    if (msg.deliveries > 1) redelivered++;
    const conn = c.connects;
    setTimeout(() => {
      if (c.connects !== conn || !c.s.connected) lateAcks++; // its connection is gone: lost ack
      ack();
    }, Math.random() * WORK_MS);
  });
  c.s.on("disconnect", () => {
    if (i === 0) c.s.io.uri = `http://${nodes[2]}`; // the load balancer's part
  });
  c.s.on("connect", () => {
    c.connects++;
    if (c.connects === 1) return;
    c.recovered = c.s.recovered === true;
    c.reconnectMs = Date.now() - killAt;
    if (!c.recovered) { // fresh session: its consumers are gone, consume again
      c.reconsumed = true;
      consume(c).catch(() => {});
    }
  });
  consumers.push(c);
  return c;
}

// ---------------------------------------------------------------- producer

let pushed = 0, pushFailed = 0, inflight = 0, killAt = 0, victimAtKill = 0;
const pushedSet = new Set();
const failures = new Map(); // error -> count

async function produce(p) {
  const t0 = Date.now();
  const deadline = t0 + (N / RATE) * 1000 * 3 + 30000; // bounded even when pushes stall
  for (let n = 0; n < N; n++) {
    const due = t0 + (n * 1000) / RATE;
    if (due > Date.now()) await sleep(due - Date.now());
    while (inflight >= MAX_INFLIGHT && Date.now() < deadline) await sleep(5);
    if (Date.now() >= deadline) {
      pushFailed += N - n;
      failures.set("producer deadline", N - n);
      break;
    }
    inflight++;
    p.timeout(10000).emitWithAck("queue:push", QUEUE, { n }).then(
      (r) => {
        inflight--;
        if (r && r.ok) { pushed++; pushedSet.add(n); } else {
          pushFailed++;
          const e = (r && r.error) || "no answer";
          failures.set(e, (failures.get(e) || 0) + 1);
        }
      },
      (err) => {
        inflight--;
        pushFailed++;
        failures.set(err.message, (failures.get(err.message) || 0) + 1);
      });
    if (!killAt && n === Math.floor(N / 2)) {
      killAt = Date.now();
      victimAtKill = consumers[0].got;
      process.kill(victimPid, "SIGKILL");
    }
  }
  await until(() => inflight === 0, 15000, "the last push acks").catch(() => {});
}

async function main() {
  const t0 = Date.now();
  const cs = [0, 1, 2].map(makeConsumer);
  const p = client(nodes[1], { reconnection: false });
  await until(() => cs.every((c) => c.s.connected) && p.connected, 10000, "clients to connect");
  for (const c of cs) {
    const r = await consume(c);
    if (!r || !r.ok) throw new Error(`queue:consume refused: ${JSON.stringify(r)}`);
  }
  const start = Date.now();
  const setupMs = start - t0;
  await produce(p);
  const pushEndMs = Date.now() - start;
  // drain: until every message pushed was processed at least once (bounded)
  const complete = () => { for (const n of pushedSet) if (!processed.has(n)) return false; return true; };
  const drainEnd = Date.now() + DRAIN_S * 1000;
  while (!complete() && Date.now() < drainEnd) await sleep(20);
  const doneAt = Date.now();
  const done = complete();
  await sleep(SETTLE_S * 1000); // late redeliveries count as duplicates too

  let lost = 0, distinct = 0, extra = 0;
  const lostSample = [];
  for (const n of pushedSet) if (!processed.has(n)) { lost++; if (lostSample.length < 20) lostSample.push(n); }
  for (const n of processed.keys()) { distinct++; if (!pushedSet.has(n)) extra++; }
  const victim = consumers[0];
  const res = {
    rep: REP, messages: N, rate: RATE, prefetch: PREFETCH, work_ms: WORK_MS,
    pushed, push_failed: pushFailed, push_failures: Object.fromEntries(failures),
    processed: processedTotal, distinct, lost, lost_sample: lostSample,
    processed_not_acked_push: extra, // pushed but refused/unanswered, processed anyway
    duplicates: processedTotal - distinct, duplicate_bound: PREFETCH * 1,
    redelivered, acks_after_connection_lost: lateAcks,
    per_consumer: consumers.map((c) => c.got),
    victim: { processed_before_kill: victimAtKill, recovered: victim.recovered, reconnect_ms: victim.reconnectMs, reconsumed: victim.reconsumed },
    complete: done,
    complete_ms: done ? doneAt - start : null, // first push -> every pushed message processed
    after_kill_ms: done ? doneAt - killAt : null, // SIGKILL -> the same
    push_ms: pushEndMs, setup_ms: setupMs,
  };
  console.log(JSON.stringify(res));
  for (const s of all) { s.io.reconnection(false); s.disconnect(); }
  process.exit(0);
}

main().catch((err) => {
  console.error(`queue-kill: ${err.message}`);
  for (const s of all) { s.io.reconnection(false); s.disconnect(); }
  process.exit(1);
});
