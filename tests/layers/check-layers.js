#!/usr/bin/env node
// Checks the layering of Sockeye on the BUILT OBJECTS, not on the sources: what the
// objects reference is what the program really uses, whatever the headers say.
//
//   node tests/layers/check-layers.js [options] BUILD_DIR
//
//   BUILD_DIR           a CMake build tree (default: $SOCKEYE_BUILD_DIR); every
//                       <BUILD_DIR>/CMakeFiles/<target>.dir/<source path>.o is read,
//                       except objects of sources under tests/
//   --graph[=text|dot]  print the file dependency graph instead of checking (exit 0)
//   --layers FILE       the layer table (default: layers.json next to this script)
//   --source DIR        the source tree, to skip stale objects whose source is gone
//                       (default: CMAKE_HOME_DIRECTORY from BUILD_DIR/CMakeCache.txt)
//   env NM              the nm to run (default: nm)
//
// A file depends on another when its object references (nm: U, w, v) a global symbol
// the other's object defines (T D B R G S A I i u, else weak W V, else common C: a
// strong definition wins over weak ones, a weak one over commons; a file whose own
// weak or common definition loses uses the winner's). Symbols no file defines (libc,
// libwebsockets, ...) make no edge. Rules (table in layers.json):
//   1. no file-level cycle (strongly connected component of more than one file);
//   2. every edge goes to the same layer or to one the table allows ("uses");
//   3. noLibraryReach: no file of the listed layers reaches, directly or through other
//      files, a file calling the library (nor calls it itself);
//   4. libraryReachesNoLibrary: no file calling `from` reaches a file calling `to`;
//   5. noLibraryCalls: files of the listed layers do not call the library themselves;
//   and every file has a layer ("file in no layer" otherwise).
// A file calls a library when its object references an undefined symbol matching the
// library's pattern that no file of the project defines.
//
// Exit: 0 all rules hold (one summary line per layer), 1 violations (all printed),
// 2 usage, table or tool error (no objects found, nm failed).
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const { execFileSync } = require("node:child_process");

class UsageError extends Error {}

const STRONG = new Set(["T", "D", "B", "R", "G", "S", "A", "I", "i", "u"]);
const WEAK = new Set(["W", "V"]);
const COMMON = new Set(["C"]);
const UNDEF = new Set(["U", "w", "v"]);

const posix = (p) => p.split(path.sep).join("/");
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const sorted = (it) => [...it].sort(cmp);

function parseArgs(argv) {
  const o = { build: null, graph: null, layers: path.join(__dirname, "layers.json"), source: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (name) => {
      if (a.startsWith(name + "=")) return a.slice(name.length + 1);
      if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
      return argv[++i];
    };
    if (a === "--graph") o.graph = "text";
    else if (a.startsWith("--graph=")) o.graph = a.slice(8);
    else if (a === "--layers" || a.startsWith("--layers=")) o.layers = value("--layers");
    else if (a === "--source" || a.startsWith("--source=")) o.source = value("--source");
    else if (a === "-h" || a === "--help") o.help = true;
    else if (a.startsWith("-")) throw new UsageError(`unknown option ${a}`);
    else if (o.build === null) o.build = a;
    else throw new UsageError(`one build directory only (got ${o.build} and ${a})`);
  }
  if (o.graph !== null && o.graph !== "text" && o.graph !== "dot")
    throw new UsageError(`--graph=${o.graph}: text or dot`);
  if (o.build === null) o.build = process.env.SOCKEYE_BUILD_DIR || null;
  if (o.build === null && !o.help) throw new UsageError("no build directory (argument or SOCKEYE_BUILD_DIR)");
  return o;
}

// ------------------------------------------------------------------ the layer table
function loadTable(file) {
  let t;
  try {
    t = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new UsageError(`layer table ${file}: ${e.message}`);
  }
  const bad = (msg) => new UsageError(`layer table ${file}: ${msg}`);
  if (!Array.isArray(t.layers) || t.layers.length === 0) throw bad("no layers");
  const names = t.layers.map((l) => l.name);
  const known = new Set(names);
  if (known.size !== names.length) throw bad("a layer name appears twice");
  const order = new Map(names.map((n, i) => [n, i]));
  const allowed = new Map();
  for (const l of t.layers) {
    for (const u of l.uses || []) if (!known.has(u)) throw bad(`${l.name} uses unknown layer ${u}`);
    allowed.set(l.name, new Set([l.name, ...(l.uses || [])]));
  }
  const dirs = [];
  for (const l of t.layers)
    for (const d of l.dirs || []) {
      const rec = d.endsWith("/**");
      const base = (rec ? d.slice(0, -3) : d).replace(/\/+$/, "");
      dirs.push({ layer: l.name, base, rec });
    }
  const files = new Map(Object.entries(t.files || {}));
  for (const [f, l] of files) if (!known.has(l)) throw bad(`file ${f} mapped to unknown layer ${l}`);
  const libraries = new Map();
  for (const [name, re] of Object.entries(t.libraries || {})) libraries.set(name, new RegExp(re));
  const rules = t.rules || {};
  const lib = (n) => {
    if (!libraries.has(n)) throw bad(`rule names unknown library ${n}`);
    return n;
  };
  const lay = (ls) => {
    for (const l of ls) if (!known.has(l)) throw bad(`rule names unknown layer ${l}`);
    return new Set(ls);
  };
  return {
    names,
    order,
    allowed,
    libraries,
    layerOf(src) {
      if (files.has(src)) return files.get(src);
      const dir = path.posix.dirname(src);
      let best = null;
      let bestLen = -1;
      for (const d of dirs) {
        const hit = d.rec ? dir === d.base || dir.startsWith(d.base + "/") : dir === d.base;
        const len = d.base.length * 2 + (d.rec ? 0 : 1); // exact folder beats a ** of the same one
        if (hit && len > bestLen) {
          best = d.layer;
          bestLen = len;
        }
      }
      return best;
    },
    noLibraryReach: (rules.noLibraryReach || []).map((r) => ({ layers: lay(r.layers), library: lib(r.library) })),
    libraryReachesNoLibrary: (rules.libraryReachesNoLibrary || []).map((r) => ({ from: lib(r.from), to: lib(r.to) })),
    noLibraryCalls: (rules.noLibraryCalls || []).map((r) => ({ layers: lay(r.layers), library: lib(r.library) })),
  };
}

// ------------------------------------------------------------------ the objects
function walk(dir, out) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, out);
    else if (e.isFile() && e.name.endsWith(".o")) out.push(p);
  }
  return out;
}

function sourceDirOf(build) {
  try {
    const m = /^CMAKE_HOME_DIRECTORY:INTERNAL=(.*)$/m.exec(fs.readFileSync(path.join(build, "CMakeCache.txt"), "utf8"));
    return m ? m[1].trim() : null;
  } catch {
    return null;
  }
}

// source path (relative to the repo root) -> object, one per source (the newest when
// several targets compiled it, which also beats a stale copy left by an old target).
function findObjects(build, sourceDir, warn) {
  const cmf = path.join(build, "CMakeFiles");
  if (!fs.existsSync(cmf)) throw new UsageError(`${cmf}: not found (not a CMake build tree?)`);
  const bySrc = new Map();
  for (const d of sorted(fs.readdirSync(cmf))) {
    const tdir = path.join(cmf, d);
    if (!d.endsWith(".dir") || !fs.statSync(tdir).isDirectory()) continue;
    for (const obj of sorted(walk(tdir, []))) {
      const src = posix(path.relative(tdir, obj)).slice(0, -2);
      if (src.startsWith("tests/")) continue;
      if (sourceDir && !fs.existsSync(path.join(sourceDir, src)) && !fs.existsSync(path.join(build, src))) {
        warn(`stale object skipped (no ${src} in ${sourceDir}): ${obj}`);
        continue;
      }
      const mtime = fs.statSync(obj).mtimeMs;
      const prev = bySrc.get(src);
      if (!prev || mtime > prev.mtime) bySrc.set(src, { obj, mtime });
    }
  }
  if (bySrc.size === 0) throw new UsageError(`no objects under ${cmf}/*.dir/ (is ${build} built?)`);
  return bySrc;
}

function readSymbols(nm, obj) {
  let out;
  try {
    out = execFileSync(nm, ["-P", "-g", obj], { encoding: "utf8", maxBuffer: 256 << 20, stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new UsageError(`${nm} -P -g ${obj}: ${(e.stderr || e.message).toString().trim()}`);
  }
  const syms = [];
  for (const line of out.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || line.endsWith(":")) continue;
    syms.push({ name: f[0], type: f[1] });
  }
  return syms;
}

// ------------------------------------------------------------------ the graph
function buildModel(build, opts, warn) {
  const table = loadTable(opts.layers);
  const sourceDir = opts.source || sourceDirOf(build);
  const objects = findObjects(build, sourceDir, warn);
  const nm = process.env.NM || "nm";
  const files = new Map(); // src -> { src, obj, layer, undef, weakOrCommon }
  const defs = new Map(); // sym -> { strong: [], weak: [], common: [] }
  const def = (s) => defs.get(s) || defs.set(s, { strong: [], weak: [], common: [] }).get(s);
  for (const src of sorted(objects.keys())) {
    const f = { src, obj: objects.get(src).obj, layer: table.layerOf(src), undef: new Set(), lost: new Set() };
    for (const { name, type } of readSymbols(nm, f.obj)) {
      if (UNDEF.has(type)) f.undef.add(name);
      else if (STRONG.has(type)) def(name).strong.push(src);
      else if (WEAK.has(type)) (def(name).weak.push(src), f.lost.add(name));
      else if (COMMON.has(type)) (def(name).common.push(src), f.lost.add(name));
    }
    files.set(src, f);
  }
  const definers = (s) => {
    const d = defs.get(s);
    if (!d) return [];
    return d.strong.length ? d.strong : d.weak.length ? d.weak : d.common;
  };
  // edges: from -> (to -> Set of symbols)
  const edges = new Map([...files.keys()].map((k) => [k, new Map()]));
  const ambiguous = new Map();
  for (const f of files.values()) {
    const refs = new Set(f.undef);
    for (const s of f.lost) if (!definers(s).includes(f.src)) refs.add(s);
    for (const s of refs) {
      const ds = definers(s).filter((d) => d !== f.src);
      if (ds.length > 1 && defs.get(s).strong.length > 1) ambiguous.set(s, definers(s));
      for (const d of ds) {
        const m = edges.get(f.src);
        (m.get(d) || m.set(d, new Set()).get(d)).add(s);
      }
    }
  }
  for (const [s, ds] of sorted(ambiguous.keys()).map((s) => [s, ambiguous.get(s)]))
    warn(`${s} is defined in several files (${sorted(ds).join(", ")}); every one counts as used`);
  // library calls: src -> sorted undefined symbols of the library nobody here defines
  const calls = new Map();
  for (const [lib, re] of table.libraries) {
    const m = new Map();
    for (const f of files.values()) {
      const syms = sorted([...f.undef].filter((s) => re.test(s) && !defs.has(s)));
      if (syms.length) m.set(f.src, syms);
    }
    calls.set(lib, m);
  }
  return { table, files, edges, calls, build };
}

// Tarjan's strongly connected components, in a stable order.
function sccs(nodes, succ) {
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const on = new Set();
  const stack = [];
  const out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of succ(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const c = [];
      let w;
      do {
        w = stack.pop();
        on.delete(w);
        c.push(w);
      } while (w !== v);
      out.push(sorted(c));
    }
  };
  for (const v of nodes) if (!idx.has(v)) visit(v);
  return out;
}

// Shortest paths from start (BFS): Map node -> previous node (start -> null).
function bfs(start, succ, within) {
  const prev = new Map([[start, null]]);
  const q = [start];
  for (let i = 0; i < q.length; i++)
    for (const w of succ(q[i]))
      if (!prev.has(w) && (!within || within.has(w))) {
        prev.set(w, q[i]);
        q.push(w);
      }
  return prev;
}
const pathTo = (prev, to) => {
  const p = [];
  for (let v = to; v !== null; v = prev.get(v)) p.unshift(v);
  return p;
};

// ------------------------------------------------------------------ the rules
function check(model) {
  const { table, files, edges, calls } = model;
  const succ = (v) => sorted(edges.get(v).keys());
  const layerOf = (v) => files.get(v).layer;
  const syms = (a, b) => sorted(edges.get(a).get(b)).join(", ");
  const hop = (a, b) => `${a} -> ${b} [${syms(a, b)}]`;
  const chain = (p) => (p.length === 1 ? p[0] : p.slice(1).map((b, i) => (i ? `-> ${b} [${syms(p[i], b)}]` : hop(p[0], b))).join(" "));
  const v = [];

  for (const f of files.values()) if (!f.layer) v.push(`file in no layer: ${f.src} (add its folder or the file to layers.json)`);

  for (const c of sccs(sorted(files.keys()), succ)) {
    if (c.length < 2) continue;
    const set = new Set(c);
    const start = c[0];
    // one concrete cycle through the first file, then every edge inside the component
    let witness = null;
    const prev = bfs(start, succ, set);
    for (const u of prev.keys()) // in BFS order: the first one closing the cycle is nearest
      if (edges.get(u).has(start)) {
        witness = [...pathTo(prev, u), start];
        break;
      }
    const layers = sorted(new Set(c.map(layerOf))).join(", ");
    const lines = [`cycle: ${c.length} files depend on each other (${layers}): ${c.join(", ")}`];
    lines.push(`    e.g. ${witness.join(" -> ")}`);
    for (const a of c) for (const b of succ(a)) if (set.has(b)) lines.push(`    ${a} -> ${b}: ${syms(a, b)}`);
    v.push(lines.join("\n"));
  }

  for (const a of sorted(files.keys()))
    for (const b of succ(a)) {
      const la = layerOf(a);
      const lb = layerOf(b);
      if (!la || !lb || table.allowed.get(la).has(lb)) continue;
      v.push(`back-reference: ${a} (${la}) -> ${b} (${lb}): ${syms(a, b)}` +
        `\n    ${la} may use: ${[...table.allowed.get(la)].sort((x, y) => table.order.get(x) - table.order.get(y)).join(", ")}`);
    }

  const reach = (from, lib, what) => {
    const callers = calls.get(lib);
    for (const a of from) {
      const prev = bfs(a, succ);
      for (const b of sorted(prev.keys())) {
        if (!callers.has(b)) continue;
        const p = pathTo(prev, b);
        v.push(`${what}: ${a} (${layerOf(a) || "no layer"})` +
          (p.length === 1 ? ` calls ${lib} itself: ${callers.get(b).join(", ")}`
            : ` reaches ${b}, which calls ${lib} (${callers.get(b).join(", ")})\n    ${chain(p)}`));
      }
    }
  };
  for (const r of table.noLibraryReach) {
    const from = sorted(files.keys()).filter((f) => r.layers.has(layerOf(f)));
    reach(from, r.library, `${sorted(r.layers).join("/")} file reaches ${r.library}`);
  }
  for (const r of table.libraryReachesNoLibrary) reach(sorted(calls.get(r.from).keys()), r.to, `${r.from} reaches ${r.to}`);
  for (const r of table.noLibraryCalls)
    for (const [f, s] of sorted(calls.get(r.library).keys()).map((f) => [f, calls.get(r.library).get(f)]))
      if (r.layers.has(layerOf(f))) v.push(`${layerOf(f)} calls ${r.library}: ${f}: ${s.join(", ")}`);
  return v;
}

function summary(model) {
  const { table, files, edges } = model;
  const lines = [];
  const w = Math.max(...table.names.map((n) => n.length));
  for (const l of table.names) {
    const fs_ = [...files.values()].filter((f) => f.layer === l);
    let within = 0, down = 0, back = 0;
    for (const f of fs_)
      for (const b of edges.get(f.src).keys()) {
        const lb = files.get(b).layer;
        if (lb === l) within++;
        else if (lb && table.allowed.get(l).has(lb)) down++;
        else back++;
      }
    const n = within + down + back;
    lines.push(`  ${l.padEnd(w)}  ${String(fs_.length).padStart(3)} file${fs_.length === 1 ? " " : "s"}  ${String(n).padStart(3)} edge${n === 1 ? " " : "s"}` +
      ` (${within} within, ${down} to allowed layers, ${back} against the table)`);
  }
  const loose = [...files.values()].filter((f) => !f.layer).length;
  if (loose) lines.push(`  ${"(none)".padEnd(w)}  ${String(loose).padStart(3)} file${loose === 1 ? "" : "s"} in no layer`);
  let total = 0;
  for (const m of edges.values()) total += m.size;
  return [`check-layers: ${files.size} files, ${total} edges in ${model.build}`, ...lines];
}

function graph(model, format) {
  const { files, edges, table } = model;
  const out = [];
  const ok = (a, b) => {
    const la = files.get(a).layer, lb = files.get(b).layer;
    return la && lb && table.allowed.get(la).has(lb);
  };
  if (format === "dot") {
    out.push("digraph sockeye_layers {", "  rankdir=BT;", "  node [shape=box, fontsize=10];");
    const groups = [...table.names, null];
    for (const l of groups) {
      const fs_ = sorted([...files.values()].filter((f) => f.layer === l).map((f) => f.src));
      if (!fs_.length) continue;
      out.push(`  subgraph "cluster_${l || "none"}" {`, `    label="${l || "in no layer"}";`);
      for (const f of fs_) out.push(`    "${f}";`);
      out.push("  }");
    }
    for (const a of sorted(files.keys()))
      for (const b of sorted(edges.get(a).keys()))
        out.push(`  "${a}" -> "${b}" [tooltip="${sorted(edges.get(a).get(b)).join(" ")}"${ok(a, b) ? "" : ", color=red"}];`);
    out.push("}");
  } else {
    out.push("# file (layer) -> file (layer): symbols");
    for (const a of sorted(files.keys()))
      for (const b of sorted(edges.get(a).keys()))
        out.push(`${a} (${files.get(a).layer || "no layer"}) -> ${b} (${files.get(b).layer || "no layer"}): ` +
          sorted(edges.get(a).get(b)).join(", ") + (ok(a, b) ? "" : "   <- against the table"));
  }
  return out.join("\n");
}

function main(argv) {
  let opts;
  try {
    opts = parseArgs(argv);
    if (opts.help) {
      const head = fs.readFileSync(__filename, "utf8").split("\n").slice(1).filter((l) => l.startsWith("//"));
      console.log(head.map((l) => l.slice(3)).join("\n"));
      return 0;
    }
    const model = buildModel(opts.build, opts, (m) => console.error(`check-layers: warning: ${m}`));
    if (opts.graph) {
      console.log(graph(model, opts.graph));
      return 0;
    }
    console.log(summary(model).join("\n"));
    const v = check(model);
    if (v.length === 0) {
      console.log("check-layers: OK");
      return 0;
    }
    for (const x of v) console.log(`FAIL ${x}`);
    console.log(`check-layers: ${v.length} violation${v.length === 1 ? "" : "s"}`);
    return 1;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    console.error(`check-layers: ${e.message}`);
    return 2;
  }
}

module.exports = { buildModel, check, summary, graph, main };

if (require.main === module) process.exitCode = main(process.argv.slice(2));
