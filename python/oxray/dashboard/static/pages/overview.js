/* The cluster overview: totals, then one row per node with its CPU, GPU,
 * memory and object-store use; what waits for resources. */
"use strict";
(function () {
  const { el, api, mount, table, badge, bar, bytes, num, card, ident, every } = Dash;

  function use(node, name, fmt) {
    const r = node.resources[name];
    if (!r) return null;
    const f = fmt || num;
    return bar(r.used, r.total, f(r.used) + " / " + f(r.total));
  }

  function sum(counts) { return Object.values(counts || {}).reduce((a, b) => a + b, 0); }

  function totals(nodes, name) {
    let used = 0; let total = 0;
    for (const n of nodes) {
      if (n.state !== "ALIVE" || !n.resources[name]) continue;
      used += n.resources[name].used; total += n.resources[name].total;
    }
    return [used, total];
  }

  async function refresh() {
    const s = await api("/api/cluster_status");
    const alive = s.nodes.filter((n) => n.state === "ALIVE");
    const [cpuUsed, cpuTotal] = totals(s.nodes, "CPU");
    const [gpuUsed, gpuTotal] = totals(s.nodes, "GPU");
    const cards = el("div", { class: "cards" },
      card("Nodes", String(alive.length), (s.nodes.length - alive.length) + " dead"),
      card("CPUs in use", num(cpuUsed) + " / " + num(cpuTotal)),
      card("GPUs in use", num(gpuUsed) + " / " + num(gpuTotal)),
      card("Actors alive", String((s.actors || {}).ALIVE || 0), sum(s.actors) + " in all"),
      card("Tasks running", String((s.tasks || {}).RUNNING || 0), sum(s.tasks) + " listed, " + ((s.tasks || {}).FAILED || 0) + " failed"),
      card("Placement groups", String(sum(s.placement_groups)), ((s.placement_groups || {}).CREATED || 0) + " created"));
    const nodes = table([
      { label: "Node", get: (n) => el("span", {}, ident(n.node_id, 12), n.is_head_node ? el("span", { class: "badge tag" }, "head") : null) },
      { label: "IP", get: (n) => n.node_ip },
      { label: "Host", get: (n) => n.hostname },
      { label: "State", get: (n) => badge(n.state) },
      { label: "CPU", get: (n) => use(n, "CPU") },
      { label: "GPU", get: (n) => use(n, "GPU") },
      { label: "Memory (logical)", get: (n) => use(n, "memory", bytes) },
      { label: "Object store", get: (n) => n.object_store
          ? bar(n.object_store.used, n.object_store.capacity, bytes(n.object_store.used) + " / " + bytes(n.object_store.capacity))
          : use(n, "object_store_memory", bytes) },
      { label: "Host memory", get: (n) => n.host_memory ? bar(n.host_memory.used, n.host_memory.total, bytes(n.host_memory.used) + " / " + bytes(n.host_memory.total)) : null },
      { label: "Other resources", get: (n) => Object.keys(n.resources).filter((k) => !["CPU", "GPU", "memory", "object_store_memory"].includes(k))
          .map((k) => el("span", { class: "pill mono" }, k + ": " + num(n.resources[k].used) + "/" + num(n.resources[k].total))) },
    ], s.nodes, "No nodes.", (n) => ({ "data-node-id": n.node_id }));
    const pending = {};
    for (const n of s.nodes) {
      for (const p of n.pending || []) {
        const shape = "{" + Object.entries(p.shape).map(([k, v]) => k + ": " + num(v)).join(", ") + "}";
        pending[shape] = (pending[shape] || 0) + p.count;
      }
    }
    const waiting = Object.entries(pending);
    mount([cards, el("h2", {}, "Nodes"), nodes,
      el("h2", {}, "Waiting for resources"),
      waiting.length ? table([{ label: "Resources asked for", get: ([shape]) => el("code", {}, shape) },
        { label: "Tasks and actors waiting", get: ([, count]) => count + "+", cls: "num" }], waiting)
        : el("p", { class: "muted" }, "No task or actor waits for resources.")]);
  }

  every(1500, refresh);
})();
