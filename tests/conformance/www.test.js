// The demo page node/www/index.html, served by `sockeye`, run for real: its inline
// script is executed in a vm context with a minimal fake DOM and the official client,
// two "browsers" join a room and talk. No browser is needed, and the page's logic
// (join acks, chat excludes the sender, bcast includes it, connection state) is checked.
"use strict";
const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const vm = require("node:vm");
const { io } = require("socket.io-client");
const { startSockeye, stopProc, until } = require("../lib/harness");

const T = 5000;
const CASE = { timeout: 30000 };

// Just enough of an element for the page: values, text, classes, children, handlers.
function element(tag = "div") {
  return {
    tag, value: "", textContent: "", className: "", children: [], scrollTop: 0, scrollHeight: 0,
    onclick: null, onsubmit: null,
    appendChild(c) { this.children.push(c); return c; },
  };
}

// Loads the page's inline script into a fresh context bound to the node at url.
function openPage(html, url) {
  const ids = new Map();
  for (const m of html.matchAll(/<(\w+)[^>]*\bid="([^"]+)"[^>]*>/g)) {
    const el = element(m[1]);
    const value = /\bvalue="([^"]*)"/.exec(m[0]);
    if (value) el.value = value[1];
    // A select starts on its first option.
    if (m[1] === "select") el.value = /<option value="([^"]*)"/.exec(html.slice(m.index))[1];
    ids.set(m[2], el);
  }
  const sockets = [];
  const ctx = {
    document: {
      getElementById: (id) => ids.get(id),
      createElement: (tag) => element(tag),
    },
    // The page calls io() for "this origin"; here the origin is the node under test.
    io: () => {
      const s = io(url, { forceNew: true, reconnection: false, timeout: T, transports: ["websocket"] });
      sockets.push(s);
      return s;
    },
    Math, String, Set, console,
  };
  const script = /<script>([\s\S]*?)<\/script>/.exec(html)[1];
  vm.runInNewContext(script, ctx, { filename: "index.html" });
  const lines = () => ids.get("log").children.map((li) => li.children.map((sp) => sp.textContent).join(""));
  return { $: (id) => ids.get(id), lines, socket: () => sockets[0], close: () => sockets.forEach((s) => s.disconnect()) };
}

describe("demo page node/www/index.html", () => {
  let node;
  let html;
  const pages = [];
  before(async () => {
    node = await startSockeye([]);
    const res = await fetch(`${node.url}/`, { signal: AbortSignal.timeout(T) });
    assert.equal(res.status, 200);
    html = await res.text();
  });
  after(async () => {
    for (const p of pages) p.close();
    const r = await stopProc(node.proc);
    assert.equal(r.code, 0, node.stderr());
  });

  it("loads the official client from this node", CASE, async () => {
    assert.match(html, /<script src="\/socket\.io\.min\.js"><\/script>/);
  });

  it("two pages join a room, chat reaches the other, bcast reaches both", CASE, async () => {
    const ann = openPage(html, node.url);
    const bob = openPage(html, node.url);
    pages.push(ann, bob);
    await until(() => ann.$("state").className === "connected" && bob.$("state").className === "connected",
      T, "both pages connected");
    assert.match(ann.$("state").textContent, /^connected \(websocket\)$/);

    ann.$("name").value = "ann";
    bob.$("name").value = "bob";
    ann.$("join").onclick();
    bob.$("join").onclick();
    await until(() => ann.lines().includes("joined lobby") && bob.lines().includes("joined lobby"), T,
      "both pages joined lobby");
    assert.equal(ann.$("rooms").textContent, "in: lobby");

    ann.$("text").value = "hello";
    ann.$("send").onsubmit({ preventDefault() {} });
    assert.equal(ann.$("text").value, "", "the input is cleared after sending");
    await until(() => bob.lines().includes("[lobby] ann: hello"), T, "bob to see ann's chat");
    assert.ok(ann.lines().includes("[lobby] ann: hello"), "the sender shows its own chat line");

    bob.$("mode").value = "bcast";
    bob.$("text").value = "to all";
    bob.$("send").onsubmit({ preventDefault() {} });
    await until(() => ann.lines().includes("[lobby] bob: to all  (bcast)") &&
      bob.lines().includes("[lobby] bob: to all  (bcast)"), T, "bcast at both pages");
    assert.equal(ann.lines().filter((l) => l === "[lobby] ann: hello").length, 1, "chat shown once");
  });

  it("refuses to send to a room not joined, and shows a disconnect", CASE, async () => {
    const eve = openPage(html, node.url);
    pages.push(eve);
    await until(() => eve.$("state").className === "connected", T, "page connected");
    eve.$("room").value = "elsewhere";
    eve.$("text").value = "hi";
    eve.$("send").onsubmit({ preventDefault() {} });
    assert.ok(eve.lines().some((l) => /join elsewhere first/.test(l)));
    eve.socket().disconnect();
    await until(() => eve.$("state").className === "disconnected", T, "disconnected state");
    assert.match(eve.$("state").textContent, /io client disconnect/);
  });
});
