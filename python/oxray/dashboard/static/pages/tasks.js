/* Tasks: one row per attempt, newest first, with state, timing and errors. */
"use strict";
(function () {
  const { el, api, mount, table, badge, ident, details, counts, card, duration, time, every } = Dash;
  const SHOWN = 500;
  let filter = "";
  let last = null;
  const cards = el("div", { class: "cards" });
  const shown = el("span", { class: "muted" });
  const box = el("div", { id: "tasks-table" });
  const input = el("input", { type: "search", placeholder: "Filter by name, state, id or error",
    oninput: (e) => { filter = e.target.value.toLowerCase(); if (last) render(last); } });

  function error(t) {
    if (!t.error_type && !t.error_message) return null;
    const head = t.error_type || "error";
    if (!t.error_message) return el("span", { class: "badge bad" }, head);
    return details("task:" + t.task_id + ":" + t.attempt_number, head, el("pre", {}, t.error_message));
  }

  function ran(t) {
    if (!t.start_time_ms) return null;
    return duration((t.end_time_ms || Date.now()) - t.start_time_ms);
  }

  function render(tasks) {
    const all = tasks.result.slice().sort((a, b) => (b.creation_time_ms || 0) - (a.creation_time_ms || 0));
    const rows = all.filter((t) => !filter ||
      [t.name, t.state, t.task_id, t.error_type, t.type].join(" ").toLowerCase().includes(filter));
    const byState = counts(all, "state");
    mount(Object.keys(byState).sort().map((s) => card(s, String(byState[s]))), cards);
    shown.textContent = Math.min(rows.length, SHOWN) + " of " + tasks.total + " task attempts shown";
    mount(table([
      { label: "Task ID", get: (t) => ident(t.task_id, 12) },
      { label: "Name", get: (t) => el("span", {}, t.name, el("span", { class: "sub-label" }, String(t.type || "").toLowerCase().replace(/_/g, " "))) },
      { label: "State", get: (t) => badge(t.state) },
      { label: "Attempt", get: (t) => t.attempt_number, cls: "num" },
      { label: "Actor", get: (t) => ident(t.actor_id) },
      { label: "Worker PID", get: (t) => t.worker_pid ? el("a", { href: "/logs#worker-" + t.worker_pid + ".out" }, String(t.worker_pid)) : null, cls: "num" },
      { label: "Created", get: (t) => time(t.creation_time_ms) },
      { label: "Queued", get: (t) => t.start_time_ms && t.creation_time_ms ? duration(t.start_time_ms - t.creation_time_ms) : null, cls: "num" },
      { label: "Ran", get: ran, cls: "num" },
      { label: "Error", get: error },
    ], rows.slice(0, SHOWN), "No tasks yet.", (t) => ({ "data-task-id": t.task_id, "data-state": t.state })), box);
  }

  mount([cards, el("div", { class: "toolbar" }, input, shown, el("a", { href: "/timeline" }, "Timeline →")), box]);
  every(1500, async () => { last = await api("/api/v0/tasks?detail=true&limit=10000"); render(last); });
})();
