// mcp-relay console: keeps a server-rendered page current from the relay's live stream
// (GET /ui/events?view=NAME, SSE). The page names its view on <body data-view>. Rows are
// kept by key (data-key) and updated in place, so focus, open <details> and forms survive;
// new rows are cloned from the page's <template>s and filled field by field (data-f, with
// the format data-fmt; hidden inputs data-v). Every value is written with textContent,
// .value or setAttribute on a known attribute: never as markup. The formats below match the
// server's (src/admin/console/pages.rs). Without this script the pages still work: filters
// are GET forms and actions POST forms.
"use strict";

(function () {
  const DASH = "\u2014";
  const RETRY_MS = 10000;
  let last = null;

  function dur(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }

  function asText(v) {
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  // A value as the page shows it, in the format `how`.
  function fmt(v, how) {
    if (how === "lines") return Array.isArray(v) ? v.join("\n") : "";
    if (how === "lines-count") {
      const n = Array.isArray(v) ? v.length : 0;
      return n === 1 ? "1 line" : n + " lines";
    }
    if (v === null || v === undefined) return DASH;
    switch (how) {
      case "dur":
        return typeof v === "number" ? dur(v) : DASH;
      case "ms":
        return typeof v === "number" ? v.toFixed(1) + " ms" : DASH;
      case "server":
        return v === "" ? "main" : asText(v);
      case "principal":
        return v === "" ? "anonymous" : asText(v);
      case "ready":
        return v ? "ready" : "down";
      default:
        return asText(v);
    }
  }

  function el(tag, text) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // The item (or root) an element's fields belong to.
  function owner(node) {
    const up = node.parentElement;
    return up ? up.closest("[data-item],[data-root]") : null;
  }

  // Writes `item`'s fields into `root` (not into nested items), then its nested lists.
  function fill(root, item) {
    item = item || {};
    for (const f of root.querySelectorAll("[data-f]")) {
      if (owner(f) !== root) continue;
      const text = fmt(item[f.dataset.f], f.dataset.fmt);
      if (f.textContent !== text) f.textContent = text;
      if (f.classList.contains("badge")) f.setAttribute("data-state", text);
    }
    for (const v of root.querySelectorAll("[data-v]")) {
      if (owner(v) !== root) continue;
      const value = item[v.dataset.v] === undefined ? "" : String(item[v.dataset.v]);
      if (v.value !== value) v.value = value;
    }
    // data-when="FIELD=A,B": shown only when the item's FIELD is one of A, B.
    for (const w of root.querySelectorAll("[data-when]")) {
      if (owner(w) !== root) continue;
      const [k, vals] = w.dataset.when.split("=");
      w.hidden = !(vals || "").split(",").includes(String(item[k]));
    }
    for (const list of root.querySelectorAll("[data-list]")) {
      if (owner(list) === root) sync(list, item[list.dataset.list]);
    }
  }

  function keyOf(item, spec) {
    return spec
      .split(",")
      .map((k) => (item[k] === undefined || item[k] === null ? "" : String(item[k])))
      .join("/");
  }

  function make(list) {
    const id = list.dataset.template || "tpl-" + list.dataset.list;
    const tpl = document.getElementById(id);
    const first = tpl && tpl.content.firstElementChild;
    return first ? first.cloneNode(true) : null;
  }

  // The live filter typed into the form for `list`, if any.
  function filterFor(list) {
    const form = document.querySelector("form[data-filter-for]");
    if (!form || form.getAttribute("data-filter-for") !== list.dataset.list) return () => true;
    const inputs = Array.from(form.querySelectorAll("[data-filter]"));
    return (item) =>
      inputs.every((input) => {
        const want = input.value.trim().toLowerCase();
        const have = fmt(item[input.dataset.filter], input.dataset.fmt).toLowerCase();
        return want === "" || have.includes(want);
      });
  }

  // Makes the rows of `list` those of `items`, in order, keeping rows by key.
  function sync(list, items) {
    if (!Array.isArray(items)) items = [];
    const spec = list.dataset.key || "key";
    const max = Number(list.dataset.max) || 500;
    const pass = filterFor(list);
    const kept = new Map();
    for (const row of Array.from(list.children)) {
      if (row.hasAttribute("data-item")) kept.set(row.getAttribute("data-key"), row);
    }
    let prev = null;
    let shown = 0;
    for (const item of items) {
      if (shown >= max) break;
      if (!item || !pass(item)) continue;
      const key = keyOf(item, spec);
      let row = kept.get(key);
      if (row) {
        kept.delete(key);
      } else {
        row = make(list);
        if (!row) return;
        row.setAttribute("data-key", key);
      }
      fill(row, item);
      const want = prev ? prev.nextElementSibling : list.firstElementChild;
      if (want !== row) list.insertBefore(row, want);
      prev = row;
      shown += 1;
    }
    for (const row of kept.values()) row.remove();
    const name = list.dataset.list;
    for (const e of document.querySelectorAll("[data-empty]")) {
      if (e.getAttribute("data-empty") === name) e.hidden = shown > 0;
    }
    for (const c of document.querySelectorAll("[data-count]")) {
      if (c.getAttribute("data-count") === name) c.textContent = String(shown);
    }
    for (const c of document.querySelectorAll("[data-total]")) {
      if (c.getAttribute("data-total") === name) c.textContent = String(items.length);
    }
  }

  function status(text) {
    const s = document.getElementById("live-status");
    if (s && s.textContent !== text) s.textContent = text;
  }

  function onSnapshot(data) {
    last = data;
    const root = document.querySelector("[data-root]");
    if (root) {
      if (root.hasAttribute("data-list")) sync(root, data);
      else fill(root, data);
    }
    drawCharts(data || {});
  }

  function onAudit(entries) {
    const list = document.querySelector("[data-audit]");
    if (!list || !Array.isArray(entries)) return;
    const max = Number(list.dataset.max) || 200;
    for (const entry of entries) {
      const li = make({ dataset: { template: "tpl-audit" } });
      if (!li || !entry || typeof entry.record !== "object") continue;
      li.setAttribute("data-seq", String(entry.seq));
      fill(li, entry.record);
      const dl = li.querySelector("dl");
      for (const [k, v] of Object.entries(entry.record || {})) {
        dl.append(el("dt", k), el("dd", asText(v)));
      }
      list.insertBefore(li, list.firstElementChild);
      list.setAttribute("data-after", String(entry.seq));
    }
    while (list.children.length > max) list.lastElementChild.remove();
    for (const e of document.querySelectorAll("[data-empty]")) e.hidden = list.children.length > 0;
  }

  // === charts (canvas; the tables next to them carry the same numbers as text) ===

  function colors(canvas) {
    const css = getComputedStyle(canvas);
    const pick = (name, fallback) => css.getPropertyValue(name).trim() || fallback;
    return {
      fg: pick("--chart-fg", "#444"),
      grid: pick("--chart-grid", "#ddd"),
      a: pick("--chart-a", "#2563eb"),
      b: pick("--chart-b", "#dc2626"),
    };
  }

  function drawSeries(canvas, points) {
    const ctx = canvas.getContext("2d");
    const c = colors(canvas);
    const w = canvas.width;
    const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const rows = Array.isArray(points) ? points : [];
    const count = (p) => Number(p.count) || 0;
    const errors = (p) => Number(p.errors) || 0;
    const top = Math.max(1, ...rows.map(count));
    const pad = 24;
    ctx.strokeStyle = c.grid;
    ctx.strokeRect(pad, 4, w - pad - 4, h - pad - 4);
    ctx.fillStyle = c.fg;
    ctx.font = "11px sans-serif";
    ctx.fillText(String(top), 2, 14);
    ctx.fillText("0", 2, h - pad);
    if (rows.length) ctx.fillText("last " + dur(rows.length), pad, h - 6);
    const line = (value, color) => {
      if (rows.length < 2) return;
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      rows.forEach((p, i) => {
        const x = pad + ((w - pad - 4) * i) / (rows.length - 1);
        const y = h - pad - ((h - pad - 8) * value(p)) / top;
        if (i === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      });
      ctx.stroke();
    };
    line(count, c.a);
    line(errors, c.b);
  }

  // Horizontal bars: per row one bar per field in `fields` (the first colour, then the second).
  function drawBars(canvas, rows, fields, labelOf) {
    const ctx = canvas.getContext("2d");
    const c = colors(canvas);
    const w = canvas.width;
    const h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    const shown = (Array.isArray(rows) ? rows : []).slice(0, 6);
    const top = Math.max(1e-9, ...shown.flatMap((r) => fields.map((f) => Number(r[f]) || 0)));
    const band = Math.min(28, h / Math.max(1, shown.length));
    const label = 110;
    ctx.font = "11px sans-serif";
    shown.forEach((r, i) => {
      const y = i * band;
      ctx.fillStyle = c.fg;
      ctx.fillText(fmt(r[labelOf], canvas.dataset.fmt).slice(0, 18), 2, y + band / 2 + 4);
      fields.forEach((f, j) => {
        const v = Number(r[f]) || 0;
        ctx.fillStyle = j === 0 ? c.a : c.b;
        const bh = Math.max(2, (band - 6) / fields.length);
        ctx.fillRect(label, y + 3 + j * bh, ((w - label - 4) * v) / top, bh - 1);
      });
    });
  }

  function drawCharts(data) {
    for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
      if (!canvas.getContext) continue;
      const rows = data[canvas.dataset.of];
      const kind = canvas.dataset.chart;
      const label = canvas.dataset.label || "key";
      if (kind === "series") drawSeries(canvas, rows);
      else if (kind === "latency") drawBars(canvas, rows, ["p50_ms", "p99_ms"], label);
      else if (kind === "bars") drawBars(canvas, rows, ["count"], label);
    }
  }

  // === the stream ===

  function streamUrl(view) {
    const params = new URLSearchParams();
    params.set("view", view);
    if (view === "audit") {
      const here = new URLSearchParams(location.search);
      for (const k of ["principal", "server", "tool", "outcome"]) {
        const v = here.get(k);
        if (v) params.set(k, v);
      }
      const list = document.querySelector("[data-audit]");
      if (list) params.set("after", list.getAttribute("data-after") || "0");
    }
    return "/ui/events?" + params.toString();
  }

  function connect(view) {
    if (!window.EventSource) return;
    const source = new EventSource(streamUrl(view));
    const parse = (handler) => (ev) => {
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (_) {
        return;
      }
      handler(data);
    };
    source.addEventListener("open", () => status("Live"));
    source.addEventListener("snapshot", parse(onSnapshot));
    source.addEventListener("audit", parse(onAudit));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        status("Disconnected; trying again shortly.");
        setTimeout(() => connect(view), RETRY_MS);
      } else {
        status("Reconnecting\u2026");
      }
    });
  }

  // === deep health ===

  function pings(doc, path, out, depth) {
    if (!doc || typeof doc !== "object" || depth > 6) return;
    if ("ping_ms" in doc || "ping_error" in doc) {
      const name = path.startsWith("servers.") ? path.slice("servers.".length) : path;
      out.push([name === "" ? "main" : name, doc]);
    }
    for (const [k, v] of Object.entries(doc)) {
      if (v && typeof v === "object") pings(v, path ? path + "." + k : k, out, depth + 1);
    }
  }

  function deepHealth() {
    const form = document.getElementById("deep-health-form");
    const out = document.getElementById("deep-health");
    if (!form || !out || !window.fetch) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      out.replaceChildren(el("p", "Checking\u2026"));
      try {
        const res = await fetch(form.getAttribute("action"), {
          headers: { accept: "application/json" },
          credentials: "same-origin",
        });
        if (!res.ok) throw new Error("HTTP " + res.status);
        const doc = await res.json();
        const found = [];
        pings(doc, "", found, 0);
        const list = el("ul");
        for (const [name, p] of found) {
          const text =
            typeof p.ping_ms === "number"
              ? name + ": " + p.ping_ms.toFixed(1) + " ms"
              : name + ": failed (" + asText(p.ping_error) + ")";
          const li = el("li", text);
          li.setAttribute("data-state", typeof p.ping_ms === "number" ? "ok" : "error");
          list.append(li);
        }
        if (typeof doc.deep === "string") list.append(el("li", doc.deep));
        else if (!found.length) list.append(el("li", "No server answered a ping."));
        out.replaceChildren(el("p", "Checked at " + new Date().toLocaleTimeString()), list);
      } catch (e) {
        out.replaceChildren(el("p", "Deep health check failed: " + e.message));
      } finally {
        button.disabled = false;
      }
    });
  }

  function liveFilters() {
    for (const input of document.querySelectorAll("form[data-filter-for] [data-filter]")) {
      input.addEventListener("input", () => {
        if (last !== null) onSnapshot(last);
      });
    }
  }

  function start() {
    const view = document.body.dataset.view;
    deepHealth();
    liveFilters();
    if (view) {
      status("Connecting\u2026");
      connect(view);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
