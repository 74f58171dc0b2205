/* A timeline of the tasks and actor calls that ran: one lane per worker
 * process (grouped by node), one bar per run, from oxray.timeline()'s
 * Chrome trace events (downloadable for chrome://tracing or Perfetto). */
"use strict";
(function () {
  const { el, api, mount, duration, every } = Dash;
  const LANE = 22; const LEFT = 230; const TOP = 24; const WIDTH = 1100;
  const box = el("div", { class: "timeline-wrap", id: "timeline" });
  const info = el("p", { class: "muted" });

  function render(events) {
    if (!events.length) {
      mount(el("div", { class: "empty" }, "No task has finished yet."), box);
      info.textContent = "";
      return;
    }
    const lanes = [];
    const index = {};
    for (const e of events) {
      const key = e.pid + " / " + e.tid;
      if (!(key in index)) { index[key] = lanes.length; lanes.push({ pid: e.pid, tid: e.tid }); }
    }
    lanes.sort((a, b) => (a.pid + a.tid).localeCompare(b.pid + b.tid));
    lanes.forEach((l, i) => { index[l.pid + " / " + l.tid] = i; });
    const t0 = Math.min(...events.map((e) => e.ts));
    const t1 = Math.max(...events.map((e) => e.ts + e.dur));
    const span = Math.max(t1 - t0, 1);
    const x = (ts) => LEFT + ((ts - t0) / span) * (WIDTH - LEFT - 10);
    const height = TOP + lanes.length * LANE + 8;
    const svg = el("svg", { width: WIDTH, height, viewBox: "0 0 " + WIDTH + " " + height, role: "img", "aria-label": "task timeline" });
    for (let i = 0; i <= 5; i++) {
      const tx = LEFT + (i / 5) * (WIDTH - LEFT - 10);
      svg.appendChild(el("line", { x1: tx, x2: tx, y1: TOP - 6, y2: height, stroke: "#e3e7ee" }));
      svg.appendChild(el("text", { x: tx, y: 14, "text-anchor": i === 5 ? "end" : "middle" }, i ? "+" + duration((i / 5) * span / 1000) : "0"));
    }
    lanes.forEach((l, i) => {
      svg.appendChild(el("rect", { class: "lane", x: 0, y: TOP + i * LANE, width: WIDTH, height: LANE - 3 }));
      svg.appendChild(el("text", { x: 6, y: TOP + i * LANE + 14 }, l.pid.replace(/^Node /, "") + " · " + l.tid));
    });
    for (const e of events) {
      const i = index[e.pid + " / " + e.tid];
      const args = e.args || {};
      const cls = "ev" + (args.error_type ? " bad" : e.name.startsWith("actor_task") ? " actor" : "");
      const r = el("rect", { class: cls, x: x(e.ts), y: TOP + i * LANE + 2, width: Math.max(2, x(e.ts + e.dur) - x(e.ts)), height: LANE - 7, rx: 2,
        "data-name": e.name },
      el("title", {}, e.name + "\n" + duration(e.dur / 1000) + (args.error_type ? "\n" + args.error_type : "") + "\ntask " + (args.task_id || "")));
      svg.appendChild(r);
    }
    mount(svg, box);
    info.textContent = events.length + " runs on " + lanes.length + " worker(s) over " + duration(span / 1000) + ".";
  }

  mount([
    el("div", { class: "toolbar" },
      el("span", { class: "legend" }, el("span", {}, el("i", { class: "task" }), "task"), el("span", {}, el("i", { class: "actor" }), "actor call"),
        el("span", {}, el("i", { class: "bad" }), "failed")),
      el("a", { href: "/api/v0/tasks/timeline?download=1" }, "Download the trace (chrome://tracing, Perfetto)")),
    info, box]);
  every(2000, async () => render(await api("/api/v0/tasks/timeline")));
})();
