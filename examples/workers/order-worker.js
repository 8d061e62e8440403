// order-worker.js -- a backend worker for Sockeye's durable queue "orders" (Node.js).
//
// Clients emit `order` to a node started with `--event-queue order=orders`; the node pushes
// {event, args, sid, nsp, claims} to the queue and acks the client {ok:true, id}. This worker
// reads those messages straight from the Redis stream as one consumer of the group "workers",
// answers each client with `order:done` {id, worker} through @socket.io/redis-emitter (to the
// room named by the client's sid), then acknowledges the message. The contract it follows is
// adapter/redis/REDIS.md "Queues".
//
//   NODE_PATH=tests/node_modules node examples/workers/order-worker.js worker:1 \
//       --redis redis://127.0.0.1:6379
//
// Needs the npm packages `redis` (4.x) and `@socket.io/redis-emitter` (5.x); the tests'
// node_modules has both (NODE_PATH above), or `npm install redis @socket.io/redis-emitter`.
"use strict";
const { parseArgs } = require("node:util");
const { createClient, commandOptions } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");
const notepack = require("notepack.io"); // the emitter's own msgpack codec (its dependency)

const { values: opt, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    redis: { type: "string", default: process.env.REDIS_URL || "redis://127.0.0.1:6379" },
    queue: { type: "string", default: "orders" },
    group: { type: "string", default: "workers" },
    "key-prefix": { type: "string", default: "sockeye" }, // the nodes' --redis-key-prefix
    "channel-prefix": { type: "string", default: "socket.io" }, // their --redis-channel-prefix
    // A message idle this long in another consumer's hands is taken over. It must be longer
    // than a batch takes to process (else a live worker's messages are taken: duplicates);
    // 35 s = the nodes' default --queue-ack-timeout (30 s) + their 5 s sweep margin, which
    // also keeps us off what a Socket.IO consumer of the same group still holds.
    "min-idle": { type: "string", default: "35000" },
    count: { type: "string", default: "10" }, // messages per read (batch)
    "work-ms": { type: "string", default: "0" }, // simulated work per message
  },
});
const name = positionals[0] || process.env.WORKER_NAME;
if (!name || name.startsWith("~")) {
  console.error("usage: order-worker.js NAME [--redis URL] ... (NAME must not start with '~': ~ret is Sockeye's)");
  process.exit(2);
}
const minIdle = Number(opt["min-idle"]);
const count = Number(opt.count);
const workMs = Number(opt["work-ms"]);

// P:{q:T}:Q, T = Q without trailing ".dead": a queue and its dead letters share a slot.
const tag = opt.queue.replace(/(?:\.dead)+$/, "") || opt.queue;
const key = `${opt["key-prefix"]}:{q:${tag}}:${opt.queue}`;

// Buffers in, so that a message pushed with binary arguments (field m, msgpack) survives.
const BUF = commandOptions({ returnBuffers: true });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let stopping = false;

async function main() {
  // Two connections: XREADGROUP BLOCK holds `reader`, while answers and XACKs go on
  // `client`. The emitter publishes on `client` too, so each answer reaches Redis before
  // the XACK that follows it (one connection keeps its order).
  const client = createClient({ url: opt.redis });
  const reader = client.duplicate();
  client.on("error", (e) => console.error(`${name}: redis: ${e.message}`));
  reader.on("error", (e) => console.error(`${name}: redis: ${e.message}`));
  await client.connect();
  await reader.connect();
  const emitter = new Emitter(client, { key: opt["channel-prefix"] });

  async function handle(id, fields) {
    let body = null;
    try {
      if (fields.m) body = notepack.decode(fields.m);
      else if (fields.j) body = JSON.parse(fields.j.toString());
      if (body?.event !== "order" || body.args?.[0]?.id === undefined) throw new Error("not an order");
      if (workMs) await sleep(workMs);
      // What the cluster understands: io.of(nsp).to(sid).emit(...) from the emitter.
      emitter.of(body.nsp).to(body.sid).emit("order:done", { id: body.args[0].id, worker: name });
    } catch (e) {
      // It will never parse: acknowledging drops it instead of letting it loop.
      console.error(`${name}: dropping ${id}: ${e.message}`);
    }
    // Answer first, acknowledge second: dying between the two can only repeat an answer
    // (another worker takes the message over), never lose one.
    await client.xAck(key, opt.group, id);
  }

  // Messages given back to the group (held by "~ret": a Socket.IO consumer of the same
  // group let them go) and those of dead workers are never offered by XREADGROUP ">":
  // take over whatever has been idle for min-idle, a page at a time.
  async function claim() {
    let cursor = "0-0";
    for (let page = 0; page < 100; page++) {
      const r = await reader.xAutoClaim(BUF, key, opt.group, name, minIdle, cursor, { COUNT: count });
      for (const m of r.messages) {
        if (stopping) return; // what we claimed stays ours; another worker claims it later
        if (m) await handle(m.id.toString(), m.message);
      }
      cursor = r.nextId.toString();
      if (cursor === "0-0") return;
    }
  }

  try {
    // The group starts at the oldest message kept: orders pushed before any worker ran
    // are processed too.
    await client.xGroupCreate(key, opt.group, "0", { MKSTREAM: true });
  } catch (e) {
    if (!/BUSYGROUP/.test(e.message)) throw e;
  }
  console.log(`${name}: ready on ${key} group ${opt.group}`);

  let nextClaim = 0;
  let nextTrim = 0;
  while (!stopping) {
    const now = Date.now();
    if (now >= nextClaim) {
      await claim();
      nextClaim = now + 1000;
    }
    if (now >= nextTrim) {
      // Nodes trim only queues their sockets consume: drop what every group has
      // acknowledged (0 0 = no length or age bound; pushes apply those).
      await client.sendCommand(["FCALL", "sockeye_qtrim", "1", key, "0", "0"])
        .catch((e) => console.error(`${name}: trim: ${e.message}`)); // library not loaded yet
      nextTrim = now + 10000;
    }
    // BLOCK 1 s: new messages wake us at once; otherwise the loop comes round to the
    // claim and sees a SIGTERM within a second.
    const res = await reader.xReadGroup(BUF, opt.group, name, { key, id: ">" }, { COUNT: count, BLOCK: 1000 });
    for (const m of res?.[0]?.messages ?? []) {
      // After SIGTERM the rest of the batch stays pending under our name: other workers
      // claim it after min-idle.
      if (stopping) break;
      await handle(m.id.toString(), m.message);
    }
  }
  await Promise.all([client.quit(), reader.quit()]);
  console.log(`${name}: stopped`);
}

// Only a flag: the current message is answered and acknowledged before we exit.
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => (stopping = true));

main().catch((e) => {
  console.error(`${name}: ${e.stack || e}`);
  process.exit(1);
});
