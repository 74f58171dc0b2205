/* Actors: state, where they live, pid, restarts, and why they died. */
"use strict";
(function () {
  const { el, api, mount, table, badge, ident, details, counts, card, every } = Dash;
  let filter = "";
  let last = null;
  const cards = el("div", { class: "cards" });
  const shown = el("span", { class: "muted" });
  const box = el("div", { id: "actors-table" });
  const input = el("input", { type: "search", placeholder: "Filter by class, name, state or id",
    oninput: (e) => { filter = e.target.value.toLowerCase(); if (last) render(last); } });

  function deathCause(a) {
    const c = a.death_cause;
    if (!c) return null;
    const ctx = c.actor_died_error_context || c.creation_task_failure_context || c;
    const msg = ctx.error_message || JSON.stringify(c, null, 2);
    const first = String(msg).split("\n")[0];
    if (first === msg && msg.length <= 120) return el("span", { class: "bad-text" }, msg);
    return details("actor:" + a.actor_id, first.length > 90 ? first.slice(0, 90) + "…" : first, el("pre", {}, msg));
  }

  function render([actors, nodes]) {
    const ips = {};
    for (const n of nodes.result) ips[n.node_id] = n.node_ip;
    const rows = actors.result.filter((a) => !filter ||
      [a.class_name, a.name, a.state, a.actor_id].join(" ").toLowerCase().includes(filter));
    const byState = counts(actors.result, "state");
    mount(Object.keys(byState).sort().map((s) => card(s, String(byState[s]))), cards);
    shown.textContent = rows.length + " of " + actors.total + " actors";
    mount(table([
      { label: "Actor ID", get: (a) => ident(a.actor_id, 12) },
      { label: "Class", get: (a) => a.class_name },
      { label: "Name", get: (a) => a.name },
      { label: "State", get: (a) => badge(a.state) },
      { label: "Node", get: (a) => a.node_id ? el("span", {}, ips[a.node_id] || "", " ", ident(a.node_id)) : null },
      { label: "PID", get: (a) => a.pid ? el("a", { href: "/logs#worker-" + a.pid + ".out", title: "log" }, String(a.pid)) : null, cls: "num" },
      { label: "Restarts", get: (a) => a.num_restarts, cls: "num" },
      { label: "Namespace", get: (a) => a.ray_namespace },
      { label: "Death cause", get: deathCause },
    ], rows, "No actors yet.", (a) => ({ "data-actor-id": a.actor_id, "data-state": a.state })), box);
  }

  mount([cards, el("div", { class: "toolbar" }, input, shown), box]);
  every(1500, async () => {
    last = await Promise.all([api("/api/v0/actors?detail=true&limit=10000"), api("/api/v0/nodes?limit=10000")]);
    render(last);
  });
})();
