/* oxray dashboard: helpers shared by every page (no framework).
 * Pages call Dash.every(ms, fn) to refresh from the JSON routes; fn builds
 * DOM nodes with Dash.el (text is always set as text, never parsed as HTML). */
"use strict";
(function () {
  const openDetails = new Set();

  /** Fetches a JSON route; unwraps Ray's envelope {result, msg, data: {result}}. */
  async function api(path) {
    const resp = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) {
      window.location.reload();  // the server answers with the token form
      throw new Error("the dashboard needs the cluster token");
    }
    const body = await resp.json();
    if (!resp.ok || (body && body.result === false)) {
      throw new Error((body && body.msg) || resp.status + " " + resp.statusText);
    }
    if (body && typeof body === "object" && "data" in body && body.data && "result" in body.data) {
      return body.data.result;
    }
    return body;
  }

  /** Fetches a text route. */
  async function text(path) {
    const resp = await fetch(path, { credentials: "same-origin" });
    if (!resp.ok) throw new Error(resp.status + " " + resp.statusText);
    return resp.text();
  }

  /** el("td", {class: "num", title: "x"}, child, "text", ...) */
  function el(tag, attrs, ...children) {
    const svg = ["svg", "rect", "text", "g", "line", "title"].includes(tag);
    const node = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "onclick" || k === "oninput" || k === "onchange" || k === "ontoggle") {
        node.addEventListener(k.slice(2), v);
      } else if (k === "text") {
        node.textContent = String(v);
      } else {
        node.setAttribute(k === "className" ? "class" : k, v === true ? "" : String(v));
      }
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** Replaces the children of #content (or `target`) with `nodes`. */
  function mount(nodes, target) {
    const box = target || document.getElementById("content");
    const keepScroll = window.scrollY;
    box.replaceChildren(...[].concat(nodes).filter(Boolean));
    window.scrollTo(0, keepScroll);
  }

  /** A table: columns [{label, get(row) -> node|text, cls}]; `empty` text when no rows. */
  function table(columns, rows, empty, rowAttrs) {
    if (!rows.length) return el("div", { class: "panel" }, el("div", { class: "empty" }, empty || "Nothing to show."));
    const head = el("tr", {}, columns.map((c) => el("th", { class: c.cls }, c.label)));
    const body = rows.map((r) => el("tr", rowAttrs ? rowAttrs(r) : {},
      columns.map((c) => { const v = c.get(r); return el("td", { class: c.cls }, v === null || v === undefined || v === "" ? "—" : v); })));
    return el("div", { class: "panel" }, el("table", {}, el("thead", {}, head), el("tbody", {}, body)));
  }

  const GOOD = ["ALIVE", "FINISHED", "SUCCEEDED", "CREATED"];
  const RUN = ["RUNNING", "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT"];
  const BAD = ["DEAD", "FAILED", "STOPPED", "REMOVED"];
  const WAIT = ["RESTARTING", "RESCHEDULING", "SUBMITTED_TO_WORKER", "DEPENDENCIES_UNREADY"];

  /** A coloured badge for a state name. */
  function badge(state) {
    if (!state) return null;
    const s = String(state);
    const cls = GOOD.includes(s) ? "ok" : RUN.includes(s) ? "run" : BAD.includes(s) ? "bad"
      : WAIT.includes(s) || s.startsWith("PENDING") ? "wait" : "";
    return el("span", { class: "badge " + cls }, s);
  }

  /** A usage bar: used / total with a label. */
  function bar(used, total, label) {
    const frac = total > 0 ? Math.min(1, used / total) : 0;
    const fill = el("i", { class: frac > 0.85 ? "hot" : null });
    fill.style.width = (frac * 100).toFixed(1) + "%";
    return el("div", { class: "bar", title: label }, fill, el("span", {}, label));
  }

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0; let x = Number(n);
    while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
    return (i ? x.toFixed(x < 10 ? 2 : 1) : String(x)) + " " + units[i];
  }

  function num(x) {
    if (x === null || x === undefined) return "—";
    return Number.isInteger(x) ? String(x) : Number(x).toFixed(2).replace(/\.?0+$/, "");
  }

  function duration(ms) {
    if (ms === null || ms === undefined || isNaN(ms)) return null;
    if (ms < 1) return "<1 ms";
    if (ms < 1000) return Math.round(ms) + " ms";
    if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
    const m = Math.floor(ms / 60000); const s = Math.round((ms % 60000) / 1000);
    return m + " min " + s + " s";
  }

  function time(ms) {
    if (!ms) return null;
    const d = new Date(ms);
    return d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  /** An id shortened to about `n` characters: its head, or for long ids its
   * head and tail (oxray's task ids differ in their last digits). */
  function short(id, n) {
    if (!id) return null;
    const s = String(id); const k = n || 8;
    if (s.length <= k + 2) return s;
    return s.length > 16 && k >= 12 ? s.slice(0, k - 6) + "…" + s.slice(-6) : s.slice(0, k);
  }

  /** An id shown short, with the whole id on hover. */
  function ident(id, n) { return id ? el("span", { class: "mono", title: id }, short(id, n)) : null; }

  /** A <details> whose open state survives re-renders (keyed). */
  function details(key, summary, ...body) {
    const d = el("details", { open: openDetails.has(key) }, el("summary", {}, summary), ...body);
    d.addEventListener("toggle", () => { if (d.open) openDetails.add(key); else openDetails.delete(key); });
    return d;
  }

  function counts(rows, key) {
    const out = {};
    for (const r of rows) out[r[key]] = (out[r[key]] || 0) + 1;
    return out;
  }

  function card(label, value, sub) {
    return el("div", { class: "card" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value),
      sub ? el("div", { class: "sub" }, sub) : null);
  }

  function setLive(ok, msg) {
    const live = document.getElementById("live");
    if (!live) return;
    live.className = "live " + (ok ? "ok" : "down");
    live.textContent = msg;
    const banner = document.getElementById("error");
    if (banner) { banner.hidden = ok; if (!ok) banner.textContent = msg; }
  }

  /** Runs `fn` now and every `ms` milliseconds (after the previous run ends). */
  function every(ms, fn) {
    let busy = false;
    async function tick() {
      if (!busy && !document.hidden) {
        busy = true;
        try {
          await fn();
          setLive(true, "live · " + new Date().toLocaleTimeString([], { hour12: false }));
        } catch (e) {
          setLive(false, "cannot reach the cluster: " + e.message);
        } finally {
          busy = false;
        }
      }
      setTimeout(tick, ms);
    }
    tick();
  }

  window.Dash = { api, text, el, mount, table, badge, bar, bytes, num, duration, time, short, ident, details, counts, card, every };
})();
