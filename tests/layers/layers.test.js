// The layering of Sockeye, checked on the built objects by check-layers.js (rules and
// table: its header and layers.json). First the real build ($SOCKEYE_BUILD_DIR); then
// small fixture trees compiled here with `cc -c`, laid out like a CMake build tree, to
// prove that every rule can fail and says what is wrong.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

const BUILD = process.env.SOCKEYE_BUILD_DIR || path.join(__dirname, "../../build");
const CHECKER = path.join(__dirname, "check-layers.js");
const CASE = { timeout: 60000 };

function run(...args) {
  const r = spawnSync(process.execPath, [CHECKER, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr, all: `${r.stdout}${r.stderr}` };
}

// A temp build tree: files maps a source path (relative to the repo root) to C code,
// compiled to <tmp>/build/CMakeFiles/<target>.dir/<path>.o (target "x" unless the path
// is given as "target:path").
const temps = [];
function fixture(files) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sockeye-layers-"));
  temps.push(dir);
  const build = path.join(dir, "build");
  for (const [key, code] of Object.entries(files)) {
    const [target, src] = key.includes(":") ? key.split(":") : ["x", key];
    const c = path.join(dir, "src", src);
    const o = path.join(build, "CMakeFiles", `${target}.dir`, `${src}.o`);
    fs.mkdirSync(path.dirname(c), { recursive: true });
    fs.mkdirSync(path.dirname(o), { recursive: true });
    fs.writeFileSync(c, code + "\n");
    const r = spawnSync("cc", ["-std=c11", "-O0", "-w", "-c", c, "-o", o], { encoding: "utf8" });
    assert.equal(r.status, 0, `cc -c ${src}: ${r.error || r.stderr}`);
  }
  return build;
}
after(() => {
  for (const d of temps) fs.rmSync(d, { recursive: true, force: true });
});

// Every expected string must be in the output (all violations are printed, not the first).
function assertFails(r, expected, count) {
  assert.equal(r.code, 1, `expected exit 1, got ${r.code}\n${r.all}`);
  for (const e of expected) assert.ok(r.out.includes(e), `missing in the output: ${e}\n--- output:\n${r.all}`);
  if (count !== undefined) assert.match(r.out, new RegExp(`check-layers: ${count} violations?\\n`), r.all);
}

const LWS = "extern int lws_write(void *wsi, unsigned char *buf, unsigned long len, int proto);";

describe("the real build", () => {
  it("keeps every layer rule (no cycle, no back-reference, lws and hiredis apart)", CASE, () => {
    assert.ok(fs.existsSync(path.join(BUILD, "CMakeFiles")), `no build tree at ${BUILD} (set SOCKEYE_BUILD_DIR)`);
    const r = run(BUILD);
    assert.equal(r.code, 0, r.all);
    assert.match(r.out, /check-layers: OK/);
  });
});

describe("check-layers on fixture trees", () => {
  it("passes a tree that keeps the rules, counts a source built twice once, skips tests/", CASE, () => {
    const b = fixture({
      "sk_base:node/base/alloc.c": "int base_alloc(void) { return 1; }",
      "sk_engine:node/engine/e.c": `int base_alloc(void); ${LWS} int eng(void) { return base_alloc() + lws_write(0, 0, 0, 0); }`,
      "sockeye_core:node/engine/e.c": `int base_alloc(void); ${LWS} int eng(void) { return base_alloc() + lws_write(0, 0, 0, 0); }`,
      "sockeye:node/program/main.c": "int eng(void); int main(void) { return eng(); }",
      "test_x:tests/unit/test_x.c": `int main(void); ${LWS} int t(void) { return main() + lws_write(0, 0, 0, 0); }`,
    });
    const r = run(b);
    assert.equal(r.code, 0, r.all);
    assert.match(r.out, /check-layers: 3 files, 2 edges/);
    assert.match(r.out, /^ {2}engine +1 file +1 edge +\(0 within, 1 to allowed layers, 0 against the table\)$/m);
    assert.match(r.out, /^ {2}program +1 file +1 edge /m);
    assert.match(r.out, /check-layers: OK/);
    assert.ok(!r.all.includes("tests/unit"), r.all);

    const g = run("--graph", b);
    assert.equal(g.code, 0, g.all);
    assert.ok(g.out.includes("node/engine/e.c (engine) -> node/base/alloc.c (base): base_alloc"), g.out);
    assert.ok(g.out.includes("node/program/main.c (program) -> node/engine/e.c (engine): eng"), g.out);
    const dot = run("--graph=dot", b);
    assert.equal(dot.code, 0, dot.all);
    assert.match(dot.out, /^digraph /);
    assert.ok(dot.out.includes(`"node/engine/e.c" -> "node/base/alloc.c"`), dot.out);
  });

  it("reports a file-level cycle with the symbols of each edge", CASE, () => {
    const b = fixture({
      "node/engine/a.c": "int b(void); int a(int n) { return n ? b() : 0; }",
      "node/engine/b.c": "int a(int); int b(void) { return a(0); }",
      "node/engine/c.c": "int a(int); int c(void) { return a(1); }",
    });
    assertFails(run(b), [
      "FAIL cycle: 2 files depend on each other (engine): node/engine/a.c, node/engine/b.c",
      "e.g. node/engine/a.c -> node/engine/b.c -> node/engine/a.c",
      "    node/engine/a.c -> node/engine/b.c: b",
      "    node/engine/b.c -> node/engine/a.c: a",
    ], 1);
  });

  it("reports a cycle through three files, of functions and data", CASE, () => {
    const b = fixture({
      "node/protocol/p1.c": "int p2(void); int p1_count; int p1(void) { return p2(); }",
      "node/protocol/p2.c": "extern const int p3_table[]; int p2(void) { return p3_table[0]; }",
      "node/protocol/p3.c": "extern int p1_count; const int p3_table[] = { 1 }; int p3(void) { return p1_count; }",
    });
    assertFails(run(b), [
      "FAIL cycle: 3 files depend on each other (protocol): node/protocol/p1.c, node/protocol/p2.c, node/protocol/p3.c",
      "e.g. node/protocol/p1.c -> node/protocol/p2.c -> node/protocol/p3.c -> node/protocol/p1.c",
      "    node/protocol/p1.c -> node/protocol/p2.c: p2",
      "    node/protocol/p2.c -> node/protocol/p3.c: p3_table",
      "    node/protocol/p3.c -> node/protocol/p1.c: p1_count",
    ], 1);
  });

  it("reports an adapter reaching libwebsockets through the engine, and the back-reference", CASE, () => {
    const b = fixture({
      "adapter/redis/x.c": "int y(void); int x(void) { return y(); }",
      "node/engine/y.c": `${LWS} int y(void) { return lws_write(0, 0, 0, 0); }`,
      "adapter/memory/m.c": "int x(void); int m(void) { return x(); }",
      "adapter/rooms.c": `${LWS} int rooms(void) { return lws_write(0, 0, 0, 0); }`,
    });
    assertFails(run(b), [
      "FAIL back-reference: adapter/redis/x.c (redis) -> node/engine/y.c (engine): y\n" +
        "    redis may use: base, codec, adapter, redis",
      "FAIL back-reference: adapter/memory/m.c (memory) -> adapter/redis/x.c (redis): x",
      "FAIL adapter/memory/redis file reaches libwebsockets: adapter/redis/x.c (redis) reaches node/engine/y.c, " +
        "which calls libwebsockets (lws_write)\n    adapter/redis/x.c -> node/engine/y.c [y]",
      "FAIL adapter/memory/redis file reaches libwebsockets: adapter/memory/m.c (memory) reaches node/engine/y.c, " +
        "which calls libwebsockets (lws_write)\n    adapter/memory/m.c -> adapter/redis/x.c [x] -> node/engine/y.c [y]",
      "FAIL adapter/memory/redis file reaches libwebsockets: adapter/rooms.c (adapter) calls libwebsockets itself: lws_write",
    ], 5);
  });

  it("reports the foundation using the protocol (functions, data, weak references and definitions)", CASE, () => {
    const b = fixture({
      "node/base/z.c":
        "int sio_thing(void); extern int sio_count; extern const char sio_name[];\n" +
        "extern int sio_opt(void) __attribute__((weak));\n" +
        "__attribute__((weak)) int base_hook(void) { return 0; }\n" +
        "int z(void) { return sio_thing() + sio_count + sio_name[0] + base_hook() + (sio_opt ? sio_opt() : 0); }",
      "node/protocol/p.c":
        "int sio_count; const char sio_name[] = \"p\"; int sio_thing(void) { return 1; } int sio_opt(void) { return 3; }",
      "node/protocol/h.c": "int base_hook(void) { return 2; }",
    });
    assertFails(run(b), [
      "FAIL back-reference: node/base/z.c (base) -> node/protocol/p.c (protocol): sio_count, sio_name, sio_opt, sio_thing\n" +
        "    base may use: base",
      "FAIL back-reference: node/base/z.c (base) -> node/protocol/h.c (protocol): base_hook",
    ], 2);
  });

  it("reports the program calling libwebsockets itself", CASE, () => {
    const b = fixture({
      "node/program/main.c": "extern int lws_service(void *ctx, int ms); int main(void) { return lws_service(0, 0); }",
      "adapter/ctl/ctl.c": "int main(void) { return 0; }",
    });
    assertFails(run(b), ["FAIL program calls libwebsockets: node/program/main.c: lws_service"], 1);
  });

  it("reports a libwebsockets caller reaching a hiredis caller", CASE, () => {
    const b = fixture({
      "node/engine/e.c": `int r(void); ${LWS} int e(void) { return r() + lws_write(0, 0, 0, 0); }`,
      "adapter/redis/r.c": "extern int redisAsyncCommand(void *ac, void *fn, void *priv, const char *fmt, ...);\n" +
        "int r(void) { return redisAsyncCommand(0, 0, 0, \"PING\"); }",
    });
    assertFails(run(b), [
      "FAIL back-reference: node/engine/e.c (engine) -> adapter/redis/r.c (redis): r",
      "FAIL libwebsockets reaches hiredis: node/engine/e.c (engine) reaches adapter/redis/r.c, " +
        "which calls hiredis (redisAsyncCommand)\n    node/engine/e.c -> adapter/redis/r.c [r]",
    ], 2);
  });

  it("reports a file in no layer, and ignores symbols nobody in the project defines", CASE, () => {
    const b = fixture({
      "misc/z.c": "#include <string.h>\nint z(const char *s) { return (int)strlen(s); }",
      "node/base/a.c": "int z(const char *); int a(void) { return z(\"a\"); }",
    });
    const r = run(b);
    assertFails(r, ["FAIL file in no layer: misc/z.c"], 1);
    assert.ok(!r.out.includes("strlen"), r.out);
  });

  it("refuses a directory without objects instead of passing", CASE, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sockeye-layers-"));
    temps.push(dir);
    fs.mkdirSync(path.join(dir, "CMakeFiles", "x.dir"), { recursive: true });
    const r = run(dir);
    assert.equal(r.code, 2, r.all);
    assert.match(r.err, /no objects under/);
  });
});
