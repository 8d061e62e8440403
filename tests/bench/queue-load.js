#!/usr/bin/env node
// queue-load.js -- load generator for durable queues: producers push at a fixed total rate,
// consumers (one group, competing) acknowledge every message at once; each message carries
// its push time, so push -> delivery latency is measured at the consumer.
//
//   node queue-load.js --urls http://127.0.0.1:5021[,http://...] --rate 1000 --seconds 10
//        [--producers 10] [--consumers 10] [--prefetch 100] [--queue bench] [--redis-port N]
//
// Producers connect round-robin to the urls, consumers too (so with two urls half of them
// are on each node). Sends are paced per 10 ms tick (rate/100 per tick, spread over the
// producers); a push counts once its ack {ok:true} came back. At the end it waits up to 10 s
// for the consumers to drain, then prints one JSON line: offered and achieved rates, pushed,
// delivered (unique ids), duplicates, lost, push-ack and delivery latency percentiles, the
// load generator's CPU, and with --redis-port the Redis commands per message (INFO stats
// total_commands_processed before and after).
"use strict";
const net = require("node:net");
const { io } = require("socket.io-client");

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
}
const urls = arg("urls", "http://127.0.0.1:5021").split(",");
const rate = Number(arg("rate", "1000"));
const seconds = Number(arg("seconds", "10"));
const nProd = Number(arg("producers", "10"));
const nCons = Number(arg("consumers", "10"));
const prefetch = Number(arg("prefetch", "100"));
const queue = arg("queue", `bench-${process.pid}`);
const redisPort = arg("redis-port", "");

function redisInfo(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), "127.0.0.1");
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      const m = /total_commands_processed:(\d+)/.exec(buf);
      if (m) {
        s.destroy();
        resolve(Number(m[1]));
      }
    });
    s.on("error", reject);
    s.write("*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n");
  });
}

function connect(url) {
  return new Promise((resolve, reject) => {
    const s = io(url, { transports: ["websocket"], forceNew: true, reconnection: false });
    const t = setTimeout(() => reject(new Error(`connect ${url}: timeout`)), 10000);
    s.once("connect", () => {
      clearTimeout(t);
      resolve(s);
    });
    s.once("connect_error", reject);
  });
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return +sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))].toFixed(2);
}

async function main() {
  const seen = new Map(); // id -> deliveries seen
  const lat = [];
  const ackLat = [];
  let dups = 0;
  const consumers = [];
  for (let i = 0; i < nCons; i++) {
    const s = await connect(urls[i % urls.length]);
    s.on("queue:msg", (q, msg, cb) => {
      const now = performance.timeOrigin + performance.now();
      if (seen.has(msg.id)) dups++;
      else lat.push(now - msg.payload.t);
      seen.set(msg.id, (seen.get(msg.id) || 0) + 1);
      cb();
    });
    await new Promise((resolve, reject) =>
      s.emit("queue:consume", queue, { group: "bench", prefetch }, (r) =>
        r && r.ok ? resolve() : reject(new Error(`consume: ${JSON.stringify(r)}`))));
    consumers.push(s);
  }
  const producers = [];
  for (let i = 0; i < nProd; i++) producers.push(await connect(urls[i % urls.length]));

  const before = redisPort ? await redisInfo(redisPort) : 0;
  const cpu0 = process.cpuUsage();
  let pushed = 0;
  let refused = 0;
  const reasons = {}; // refusal error -> count: a saturated run says why it refused
  let sent = 0;
  const perTick = rate / 100;
  let carry = 0;
  let k = 0;
  const t0 = performance.now();
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      if (performance.now() - t0 >= seconds * 1000) {
        clearInterval(tick);
        resolve();
        return;
      }
      carry += perTick;
      for (; carry >= 1; carry--) {
        const s = producers[k++ % producers.length];
        const t = performance.timeOrigin + performance.now();
        sent++;
        s.emit("queue:push", queue, { t, n: sent }, (r) => {
          if (r && r.ok) {
            pushed++;
            ackLat.push(performance.timeOrigin + performance.now() - t);
          } else {
            refused++;
            const why = (r && r.error) || "no answer";
            reasons[why] = (reasons[why] || 0) + 1;
          }
        });
      }
    }, 10);
  });
  const sendS = (performance.now() - t0) / 1000;
  const deadline = performance.now() + 10000;
  while ((pushed + refused < sent || seen.size < pushed) && performance.now() < deadline)
    await new Promise((r) => setTimeout(r, 20));
  const drainS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const after = redisPort ? await redisInfo(redisPort) : 0;
  lat.sort((a, b) => a - b);
  ackLat.sort((a, b) => a - b);
  console.log(JSON.stringify({
    queue, urls: urls.length, producers: nProd, consumers: nCons, prefetch,
    rate_offered: rate, seconds: +sendS.toFixed(2),
    sent, pushed, refused, refused_reasons: reasons,
    delivered: seen.size, duplicates: dups, lost: pushed - Math.min(pushed, seen.size),
    pushed_per_s: Math.round(pushed / sendS), delivered_per_s: Math.round(seen.size / drainS),
    delivery_ms: { p50: pct(lat, 50), p90: pct(lat, 90), p99: pct(lat, 99), max: pct(lat, 100) },
    push_ack_ms: { p50: pct(ackLat, 50), p99: pct(ackLat, 99) },
    loadgen_cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(2),
    redis_commands_per_message: redisPort && pushed ? +((after - before) / pushed).toFixed(2) : null,
  }));
  for (const s of [...consumers, ...producers]) s.disconnect();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
