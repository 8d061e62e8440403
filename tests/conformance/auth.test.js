// JWT authentication and the per-socket room cap of the standalone node (node/program/app.c,
// node/program/jwt.c), driven with the OFFICIAL socket.io-client against the real `sockeye`.
// Tokens are made here with node's crypto (HMAC, RSA keys generated per run): no JWT
// package, and every forged variant is exactly the one a test needs.
// Every wait is bounded (T) and waits on an event, never on a sleep.
"use strict";
const { describe, it, before, after, afterEach } = require("node:test");
const assert = require("node:assert/strict");
const crypto = require("node:crypto");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawn } = require("node:child_process");
const { startSockeye, stopProc, once, until, refused, ack, clientSet, BIN } = require("../lib/harness");

const T = 5000; // bound on any single wait
const CASE = { timeout: 30000 };
const SECRET = crypto.randomBytes(32).toString("hex");
const ISSUER = "https://auth.test";
const AUDIENCE = "sockeye-test";

const MODES = [
  { name: "websocket", opts: { transports: ["websocket"] } },
  { name: "polling", opts: { transports: ["polling"] } },
];

// ---------------------------------------------------------------- tokens

const b64u = (v) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

function signingInput(header, claims) {
  return `${b64u(header)}.${b64u(claims)}`;
}

// HS256 with the node's secret unless told otherwise; iss/aud/exp filled in unless
// the claims say (null deletes one).
function hs256(claims = {}, { secret = SECRET, header = { alg: "HS256", typ: "JWT" } } = {}) {
  const full = { iss: ISSUER, aud: AUDIENCE, exp: now() + 600, ...claims };
  for (const k of Object.keys(full)) if (full[k] === null) delete full[k];
  const input = signingInput(header, full);
  return `${input}.${crypto.createHmac("sha256", secret).update(input).digest("base64url")}`;
}

function rs256(claims, privateKey) {
  const input = signingInput({ alg: "RS256", typ: "JWT" }, { exp: now() + 600, ...claims });
  return `${input}.${crypto.sign("sha256", Buffer.from(input), privateKey).toString("base64url")}`;
}

// ---------------------------------------------------------------- helpers

const clients = clientSet({ timeout: T });
const closeAll = clients.closeAll;

function client(url, token, mode = MODES[0], opts = {}) {
  return clients.open(url, { ...(token === undefined ? {} : { auth: { token } }), ...mode.opts, ...opts });
}

// Resolves with s once connected; rejects with its connect_error or after T.
function connected(s) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => done(new Error("timeout waiting for connect")), T);
    function done(err) {
      clearTimeout(t);
      s.off("connect", onConnect);
      s.off("connect_error", onError);
      if (err) reject(err);
      else resolve(s);
    }
    const onConnect = () => done();
    const onError = (err) => done(new Error(`connect_error: ${err.message}`));
    s.on("connect", onConnect);
    s.on("connect_error", onError);
    if (s.connected) done();
  });
}

async function get(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(T) });
  return { status: res.status, body: await res.text() };
}

async function metric(node, name, labels = "") {
  const { body } = await get(`${node.url}/metrics`);
  const esc = (name + labels).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`^${esc} ([0-9.e+-]+)$`, "m").exec(body);
  return m ? Number(m[1]) : undefined;
}

const sockets = (node) => metric(node, "sockeye_sockets", '{namespace="/"}');

// Runs the binary to completion (bounded) and resolves {code, stdout, stderr}.
function run(args, env = {}, ms = T) {
  return new Promise((resolve, reject) => {
    const p = spawn(BIN, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`${BIN} ${args.join(" ")} still running after ${ms} ms`));
    }, ms);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

// SIGTERM and a clean exit: under the sanitizers a leak turns into a nonzero status.
async function stopOk(node) {
  const r = await stopProc(node.proc);
  assert.equal(r.code, 0, `sockeye exit ${r.code ?? r.signal}\n${node.stderr()}`);
}

// Cuts the connection the way a network does (no goodbye), as client.test.js does.
function cut(s) {
  const t = s.io.engine.transport;
  if (t.name === "websocket") t.ws._socket.destroy();
  else s.io.engine.close();
}

const barrier = (s) => ack(s, "echo", "barrier");

let seq = 0;
const room = (tag) => `${tag}-${process.pid}-${++seq}`;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "sockeye-auth-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
function file(name, content) {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, content);
  return p;
}

// ---------------------------------------------------------------- HS256

describe("HS256 tokens", () => {
  let node;
  before(async () => {
    // the secret through a file with the trailing newline editors leave
    node = await startSockeye([
      "--jwt-secret-file", file("secret", `${SECRET}\n`),
      "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
      "--namespace-pattern", "^/dyn-[0-9]+$",
    ]);
  });
  after(async () => {
    closeAll();
    await stopOk(node);
  });
  afterEach(closeAll);

  for (const mode of MODES) {
    it(`over ${mode.name}: a valid token connects and is in its rooms at once`, CASE, async () => {
      const r = room("auto");
      const a = await connected(client(node.url, hs256({ sub: "ada", rooms: [r] }), mode));
      const b = await connected(client(node.url, hs256({ sub: "bob", rooms: [r] }), MODES[0]));
      const got = once(a, "chat");
      // b relays without joining: only a member may, so b is in r from its token...
      assert.deepEqual(await ack(b, "chat", r, "hello"), [{ ok: true }]);
      // ...and a receives it without having joined either (the recovery offset the
      // node appends is left out)
      assert.deepEqual((await got).slice(0, 2), [r, "hello"]);
    });
  }

  it("refusals: connect_error with a clear message, the node unharmed", CASE, async () => {
    const before = (await metric(node, "sockeye_app_unauthorized_total")) ?? 0;
    const expired = hs256({ exp: now() - 3600 });
    const input = signingInput({ alg: "none" }, { iss: ISSUER, aud: AUDIENCE });
    const cases = [
      [undefined, "unauthorized: missing token"],
      [42, "unauthorized: missing token"],
      ["", "unauthorized: missing token"],
      [hs256({}, { secret: "not the secret" }), "unauthorized: bad signature"],
      [expired, "unauthorized: expired"],
      [hs256({ nbf: now() + 3600 }), "unauthorized: not yet valid"],
      [`${input}.`, "unauthorized: algorithm not allowed"],
      ["abc.def", "unauthorized: malformed token"],
      ["x".repeat(9000), "unauthorized: token too long"],
      [hs256({ iss: "https://evil.test" }), "unauthorized: wrong issuer"],
      [hs256({ aud: ["other"] }), "unauthorized: wrong audience"],
      [hs256({ rooms: "lobby" }), "unauthorized: invalid claim: rooms"],
      [hs256({ rooms: ["ok", {}] }), "unauthorized: invalid claim: rooms"],
      [hs256({ rooms: ["AAAAAAAAAAAAAAAAAAAA"] }), "unauthorized: invalid claim: rooms"],
      [hs256({ allow: ["a:*", 7] }), "unauthorized: invalid claim: allow"],
    ];
    for (const [token, message] of cases) {
      for (const mode of MODES) {
        const err = await refused(client(node.url, token, mode));
        assert.equal(err.message, message, `${mode.name}: ${String(token).slice(0, 40)}`);
      }
    }
    // a tampered payload under a valid signature
    const good = hs256({ sub: "ada" }).split(".");
    good[1] = b64u({ iss: ISSUER, aud: AUDIENCE, sub: "admin" });
    assert.equal((await refused(client(node.url, good.join(".")))).message, "unauthorized: bad signature");

    assert.equal(await metric(node, "sockeye_app_unauthorized_total"), before + cases.length * 2 + 1);
    await connected(client(node.url, hs256({ sub: "after" })));
  });

  it("every served namespace asks for the token: /chat and dynamic ones", CASE, async () => {
    for (const nsp of ["/chat", "/dyn-7"]) {
      const err = await refused(client(node.url + nsp));
      assert.equal(err.message, "unauthorized: missing token", nsp);
      const r = room("nsp");
      const s = await connected(client(node.url + nsp, hs256({ rooms: [r] })));
      assert.deepEqual(await ack(s, "bcast", r, 1), [{ ok: true }], `${nsp}: in its token's room`);
    }
  });

  it("join and leave: the token's rooms and allow patterns, nothing else", CASE, async () => {
    const mine = room("mine");
    const s = await connected(client(node.url, hs256({ rooms: [mine], allow: ["team:42:*", "lobby"] })));
    const ok = [{ ok: true }];
    const no = [{ ok: false, error: "not allowed" }];
    assert.deepEqual(await ack(s, "join", "team:42:chat"), ok);
    assert.deepEqual(await ack(s, "join", "team:42:"), ok);
    assert.deepEqual(await ack(s, "join", "lobby"), ok);
    assert.deepEqual(await ack(s, "join", mine), ok);
    assert.deepEqual(await ack(s, "join", "team:43:chat"), no);
    assert.deepEqual(await ack(s, "join", "team:42"), no);
    assert.deepEqual(await ack(s, "join", "lobby2"), no);
    assert.deepEqual(await ack(s, "join", "*"), no);
    // all or nothing: one forbidden name refuses the whole list
    assert.deepEqual(await ack(s, "join", ["team:42:a", "elsewhere"]), no);
    assert.deepEqual(await ack(s, "bcast", "team:42:a", 1), [{ ok: false, error: "not a member" }]);
    assert.deepEqual(await ack(s, "leave", "lobby"), ok);
    assert.deepEqual(await ack(s, "leave", mine), ok);
    assert.deepEqual(await ack(s, "leave", "elsewhere"), no);
    // reserved names stay reserved whatever the patterns say
    const any = await connected(client(node.url, hs256({ allow: ["*"] })));
    assert.deepEqual(await ack(any, "join", "anything:at:all"), ok);
    assert.deepEqual(await ack(any, "join", "AAAAAAAAAAAAAAAAAAAA"), [{ ok: false, error: "reserved room" }]);
  });

  it("no allow claim: only the token's rooms", CASE, async () => {
    const mine = room("only");
    const s = await connected(client(node.url, hs256({ rooms: [mine] })));
    assert.deepEqual(await ack(s, "join", room("other")), [{ ok: false, error: "not allowed" }]);
    assert.deepEqual(await ack(s, "leave", mine), [{ ok: true }]);
    assert.deepEqual(await ack(s, "join", mine), [{ ok: true }]);
    const bare = await connected(client(node.url, hs256({})));
    assert.deepEqual(await ack(bare, "join", "lobby"), [{ ok: false, error: "not allowed" }]);
    assert.deepEqual(await ack(bare, "echo", 1), [1], "the rest of the app works");
  });

  for (const mode of MODES) {
    it(`over ${mode.name}: recovery presents the token again; claims follow the new one`, CASE, async () => {
      const r = room("rec");
      await until(async () => (await sockets(node)) === 0, T, "earlier tests' sockets to close");
      const a = client(node.url, hs256({ rooms: [r], allow: ["old:*"] }), mode);
      await connected(a);
      const b = await connected(client(node.url, hs256({ rooms: [r] })));
      const got = [];
      a.on("bcast", (_room, n) => got.push(n));
      const mine = [];
      b.on("bcast", (_room, n) => mine.push(n));
      const publish = async (from, to) => {
        for (let n = from; n < to; n++) b.emit("bcast", r, n);
        await until(() => mine.length === to, T, `b's own copies up to ${to}`);
      };
      await publish(0, 3);
      await until(() => got.length === 3, T, "a's first three");
      const idBefore = a.id;

      // 1. back within the window with a fresh token: recovered, the missed events
      // first, and the claims are the new token's
      a.auth.token = hs256({ rooms: [r], allow: ["new:*"] });
      let down = once(a, "disconnect");
      cut(a);
      await down;
      await until(async () => (await sockets(node)) === 1, T, "the server to see a's disconnect");
      await publish(3, 5); // a is away
      const back = once(a, "connect");
      a.connect();
      await back;
      assert.equal(a.recovered, true, "socket.recovered");
      assert.equal(a.id, idBefore);
      await publish(5, 7);
      await until(() => got.length >= 7, T, "a to receive 7 events");
      await barrier(a);
      assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6]);
      assert.deepEqual(await ack(a, "join", "new:1"), [{ ok: true }]);
      assert.deepEqual(await ack(a, "join", "old:1"), [{ ok: false, error: "not allowed" }]);

      // 2. back with an expired token: refused, although the session is recoverable
      a.auth.token = hs256({ rooms: [r], exp: now() - 3600 });
      down = once(a, "disconnect");
      cut(a);
      await down;
      const err = refused(a);
      a.connect();
      assert.equal((await err).message, "unauthorized: expired");

      // 3. and with no token at all
      delete a.auth.token;
      const err2 = refused(a);
      a.connect();
      assert.equal((await err2).message, "unauthorized: missing token");

      // 4. the refusals did not use the session up: a refreshed token still recovers,
      // with what was published meanwhile
      await publish(7, 9);
      a.auth.token = hs256({ rooms: [r], allow: ["new:*"] });
      const again = once(a, "connect");
      a.connect();
      await again;
      assert.equal(a.recovered, true, "recovered after refused attempts");
      assert.equal(a.id, idBefore);
      await until(() => got.length >= 9, T, "a to receive 9 events");
      await barrier(a);
      assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8]);

      // 5. a token that no longer grants a room of the session (new:1, joined in 1.):
      // not recovered (neither that room nor its missed events come back); a new session
      down = once(a, "disconnect");
      cut(a);
      await down;
      await until(async () => (await sockets(node)) === 1, T, "the server to see a's disconnect");
      await publish(9, 11);
      a.auth.token = hs256({ rooms: [r] });
      const fresh = once(a, "connect");
      a.connect();
      await fresh;
      assert.equal(a.recovered, false, "a session with a revoked room is not recovered");
      assert.notEqual(a.id, idBefore, "a new session");
      await barrier(a);
      assert.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8], "nothing replayed to a new session");
      await publish(11, 12); // a is in r again through its token: live only
      await until(() => got.length === 10, T, "a live event in r");
      assert.equal(got[9], 11);
    });
  }
});

// ---------------------------------------------------------------- RS256

describe("RS256 tokens", () => {
  let node;
  const pair = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const other = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = pair.publicKey.export({ type: "spki", format: "pem" });
  before(async () => {
    node = await startSockeye(["--jwt-public-key", file("public.pem", pem)]);
  });
  after(async () => {
    closeAll();
    await stopOk(node);
  });
  afterEach(closeAll);

  it("a token signed with the private key connects and gets its rooms", CASE, async () => {
    const r = room("rs");
    const a = await connected(client(node.url, rs256({ rooms: [r] }, pair.privateKey)));
    assert.deepEqual(await ack(a, "bcast", r, 1), [{ ok: true }], "a is in r");
  });

  it("another key, HS256 with the public key as secret, no token: refused", CASE, async () => {
    const confusion = hs256({}, { secret: pem });
    assert.equal((await refused(client(node.url, confusion))).message, "unauthorized: algorithm not allowed");
    // the same HMAC under a header that claims RS256
    const lying = hs256({}, { secret: pem, header: { alg: "RS256" } });
    assert.equal((await refused(client(node.url, lying))).message, "unauthorized: bad signature");
    assert.equal((await refused(client(node.url, rs256({}, other.privateKey)))).message,
      "unauthorized: bad signature");
    assert.equal((await refused(client(node.url))).message, "unauthorized: missing token");
  });
});

// ---------------------------------------------------------------- room cap

describe("--max-rooms-per-socket", () => {
  let node;
  before(async () => {
    node = await startSockeye(["--max-rooms-per-socket", "3"]);
  });
  after(async () => {
    closeAll();
    await stopOk(node);
  });
  afterEach(closeAll);

  it("a join beyond the cap is refused whole; rooms held already cost nothing", CASE, async () => {
    const s = await connected(client(node.url)); // no key: authentication is off
    const [a, b, c, d, e] = ["a", "b", "c", "d", "e"].map(room);
    const ok = [{ ok: true }];
    const full = [{ ok: false, error: "too many rooms" }];
    assert.deepEqual(await ack(s, "join", [a, b]), ok);
    assert.deepEqual(await ack(s, "join", [a, c]), ok, "a is held: one new room");
    assert.deepEqual(await ack(s, "join", d), full);
    assert.deepEqual(await ack(s, "join", [a, b, c]), ok, "nothing new");
    assert.deepEqual(await ack(s, "leave", c), ok);
    assert.deepEqual(await ack(s, "join", [d, e]), full, "2 + 2 > 3");
    for (const r of [d, e]) {
      assert.deepEqual(await ack(s, "bcast", r, 0), [{ ok: false, error: "not a member" }], `${r} not joined`);
    }
    assert.deepEqual(await ack(s, "join", [d, d]), ok, "a name twice is one room");
    assert.deepEqual(await ack(s, "bcast", [a, b, d], 0), ok, "in a, b and d");
    // the cap is per socket
    const t = await connected(client(node.url));
    assert.deepEqual(await ack(t, "join", [a, b, c]), ok);
  });
});

// ---------------------------------------------------------------- configuration

describe("authentication options", () => {
  it("bad key configurations exit 2 with a clear message that never shows a secret", CASE, async () => {
    const priv = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey
      .export({ type: "pkcs8", format: "pem" });
    const secret = "s3cr3t-value-that-must-not-leak";
    const cases = [
      [["--jwt-secret", secret, "--jwt-public-key", file("k.pem", "x")], {}, /exclusive/],
      [["--jwt-public-key", file("k.pem", "x")], { SOCKEYE_JWT_SECRET: secret }, /exclusive/],
      [["--jwt-public-key", path.join(tmp, "missing.pem")], {}, /--jwt-public-key: cannot read .*missing\.pem/],
      [["--jwt-public-key", file("priv.pem", priv)], {}, /private key/],
      [["--jwt-public-key", file("junk.pem", secret)], {}, /not a PEM public key/],
      [["--jwt-secret", ""], {}, /--jwt-secret: an empty value is not allowed/],
      [[], { SOCKEYE_JWT_SECRET: "" }, /SOCKEYE_JWT_SECRET: .*empty value/],
      [["--jwt-secret-file", file("empty", "\n")], {}, /--jwt-secret-file: the HS256 secret is empty/],
      [["--jwt-issuer", "x"], {}, /need a key/],
      [["--max-rooms-per-socket", "-1"], {}, /--max-rooms-per-socket/],
    ];
    for (const [args, env, re] of cases) {
      const r = await run(args, env);
      assert.equal(r.code, 2, `${args.join(" ")} -> exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, re);
      assert.doesNotMatch(r.stderr + r.stdout, new RegExp(secret));
    }
  });

  it("--help lists the options and shows no secret taken from the environment", CASE, async () => {
    const secret = "env-secret-not-to-be-shown";
    const r = await run(["--help"], { SOCKEYE_JWT_SECRET: secret });
    assert.equal(r.code, 0);
    for (const flag of ["jwt-secret", "jwt-secret-file", "jwt-public-key", "jwt-issuer", "jwt-audience",
      "jwt-leeway", "max-rooms-per-socket"]) {
      assert.match(r.stdout, new RegExp(`--${flag} `), `--help lacks --${flag}`);
    }
    assert.doesNotMatch(r.stdout, new RegExp(secret));
    const md = await run(["--help-markdown"], { SOCKEYE_JWT_SECRET: secret });
    assert.doesNotMatch(md.stdout, new RegExp(secret));
  });

  it("the secret may come from SOCKEYE_JWT_SECRET; the log says auth is on, not the secret", CASE, async () => {
    const secret = crypto.randomBytes(16).toString("hex");
    const node = await startSockeye([], { env: { SOCKEYE_JWT_SECRET: secret } });
    try {
      const tok = hs256({ iss: null, aud: null }, { secret });
      await connected(client(node.url, tok));
      assert.equal((await refused(client(node.url, hs256({})))).message, "unauthorized: bad signature");
      assert.match(node.stderr(), /HS256 token/);
      assert.doesNotMatch(node.stderr(), new RegExp(secret));
    } finally {
      closeAll();
      await stopOk(node);
    }
  });
});
