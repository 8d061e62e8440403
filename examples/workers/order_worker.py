#!/usr/bin/python3
"""order_worker.py -- a backend worker for Sockeye's durable queue "orders" (Python).

Clients emit `order` to a node started with `--event-queue order=orders`; the node pushes
{event, args, sid, nsp, claims} to the queue and acks the client {ok:true, id}. This worker
reads those messages straight from the Redis stream as one consumer of the group "workers",
answers each client with `order:done` {id, worker} (the @socket.io/redis-emitter format,
to the room named by the client's sid), then acknowledges the message. The contract it
follows is adapter/redis/REDIS.md "Queues".

    /usr/bin/python3 examples/workers/order_worker.py worker:1 --redis redis://127.0.0.1:6379

Needs Debian's python3-redis and python3-msgpack (cluster/install-deps.sh installs them);
a pyenv or venv python3 on PATH may lack them, hence /usr/bin/python3.
"""
import argparse
import json
import os
import signal
import sys
import time

import msgpack
import redis


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", nargs="?", default=os.environ.get("WORKER_NAME"),
                   help="consumer name, unique per worker, not starting with '~' (env WORKER_NAME)")
    p.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    p.add_argument("--queue", default="orders")
    p.add_argument("--group", default="workers")
    p.add_argument("--key-prefix", default="sockeye", help="the nodes' --redis-key-prefix")
    p.add_argument("--channel-prefix", default="socket.io",
                   help="the nodes' --redis-channel-prefix")
    # A message idle this long in another consumer's hands is taken over. It must be longer
    # than a batch takes to process (else a live worker's messages are taken: duplicates);
    # 35 s = the nodes' default --queue-ack-timeout (30 s) + their 5 s sweep margin, which
    # also keeps us off what a Socket.IO consumer of the same group still holds.
    p.add_argument("--min-idle", type=int, default=35000, help="ms (default 35000)")
    p.add_argument("--count", type=int, default=10, help="messages per read (batch)")
    p.add_argument("--work-ms", type=int, default=0, help="simulated work per message")
    a = p.parse_args()
    if not a.name or a.name.startswith("~"):
        p.error("a consumer name is required and must not start with '~' (~ret is Sockeye's)")
    return a


def stream_key(prefix, queue):
    # P:{q:T}:Q, T = Q without trailing ".dead": a queue and its dead letters share a slot.
    t = queue
    while len(t) > 5 and t.endswith(".dead"):
        t = t[:-5]
    return "%s:{q:%s}:%s" % (prefix, t, queue)


class Worker:
    def __init__(self, a):
        self.a = a
        self.r = redis.Redis.from_url(a.redis)  # bytes replies: field m is binary
        self.key = stream_key(a.key_prefix, a.queue)
        self.stopping = False

    def emit_to_sid(self, pipe, nsp, sid, event, *args):
        # What @socket.io/redis-emitter publishes for io.of(nsp).to(sid).emit(event, ...):
        # msgpack ["emitter", packet, opts] on "<channel prefix>#<nsp>#<room>#" (one room).
        packet = {"type": 2, "data": [event, *args], "nsp": nsp}
        opts = {"rooms": [sid], "flags": {}, "except": []}
        channel = "%s#%s#%s#" % (self.a.channel_prefix, nsp, sid)
        pipe.publish(channel, msgpack.packb(["emitter", packet, opts], use_bin_type=True))

    def handle(self, msg_id, fields):
        fields = fields or {}  # an entry trimmed meanwhile may come back without fields
        if b"m" in fields:  # pushed with binary arguments: msgpack, bin for buffers
            body = msgpack.unpackb(fields[b"m"], raw=False)
        elif b"j" in fields:
            body = json.loads(fields[b"j"])
        else:
            body = None
        pipe = self.r.pipeline(transaction=False)
        try:
            order = body["args"][0]
            if body["event"] != "order":
                raise ValueError("not an order")
            if self.a.work_ms:
                time.sleep(self.a.work_ms / 1000)
            self.emit_to_sid(pipe, body["nsp"], body["sid"], "order:done",
                             {"id": order["id"], "worker": self.a.name})
        except (TypeError, KeyError, IndexError, ValueError) as e:
            # It will never parse: acknowledging drops it instead of letting it loop.
            print("%s: dropping %s: %r" % (self.a.name, msg_id.decode(), e), file=sys.stderr)
        # Answer first, acknowledge second, in one round trip: dying between the two can
        # only repeat an answer (another worker takes the message over), never lose one.
        pipe.xack(self.key, self.a.group, msg_id)
        pipe.execute()

    def claim(self):
        # Messages given back to the group (held by "~ret": a Socket.IO consumer of the same
        # group let them go) and those of dead workers are never offered by XREADGROUP ">":
        # take over whatever has been idle for min-idle, a page at a time.
        cursor = "0-0"
        for _ in range(100):  # bounded: the next call goes on
            cursor, entries, *_ = self.r.xautoclaim(self.key, self.a.group, self.a.name,
                                                    self.a.min_idle, cursor, count=self.a.count)
            for msg_id, fields in entries:
                if self.stopping:
                    return  # what we claimed stays ours; another worker claims it later
                self.handle(msg_id, fields)
            if cursor in (b"0-0", "0-0"):
                return

    def run(self):
        try:
            # The group starts at the oldest message kept: orders pushed before any worker
            # ran are processed too.
            self.r.xgroup_create(self.key, self.a.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        print("%s: ready on %s group %s" % (self.a.name, self.key, self.a.group), flush=True)
        next_claim = next_trim = 0.0
        while not self.stopping:
            now = time.monotonic()
            if now >= next_claim:
                self.claim()
                next_claim = now + 1.0
            if now >= next_trim:
                # Nodes trim only queues their sockets consume: drop what every group has
                # acknowledged (0 0 = no length or age bound; pushes apply those).
                try:
                    self.r.fcall("sockeye_qtrim", 1, self.key, 0, 0)
                except redis.ResponseError as e:  # no node has loaded the library yet
                    print("%s: trim: %s" % (self.a.name, e), file=sys.stderr)
                next_trim = now + 10.0
            # BLOCK 1 s: new messages wake us at once; otherwise the loop comes round to
            # the claim and sees a SIGTERM within a second.
            resp = self.r.xreadgroup(self.a.group, self.a.name, {self.key: ">"},
                                     count=self.a.count, block=1000)
            for _stream, entries in resp or []:
                for msg_id, fields in entries:
                    # After SIGTERM the rest of the batch stays pending under our name:
                    # other workers claim it after min-idle.
                    if self.stopping:
                        break
                    self.handle(msg_id, fields)
        print("%s: stopped" % self.a.name, flush=True)


def main():
    w = Worker(parse_args())

    def stop(signum, frame):
        # Only a flag: the current message is answered and acknowledged before we exit.
        w.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    w.run()


if __name__ == "__main__":
    main()
