/* Placement groups: state and each bundle's resources and node. */
"use strict";
(function () {
  const { el, api, mount, table, badge, ident, num, every } = Dash;

  function bundles(g, ips) {
    return (g.bundles || []).map((b) => el("div", { class: "mono" },
      "#" + b.bundle_id.bundle_index + " " +
      Object.entries(b.unit_resources || {}).map(([k, v]) => k + ": " + num(v)).join(", ") +
      (b.node_id ? " → " + (ips[b.node_id] || "") + " " + String(b.node_id).slice(0, 8) : " (unplaced)")));
  }

  async function refresh() {
    const [groups, nodes] = await Promise.all([api("/api/v0/placement_groups?detail=true&limit=10000"), api("/api/v0/nodes?limit=10000")]);
    const ips = {};
    for (const n of nodes.result) ips[n.node_id] = n.node_ip;
    mount(table([
      { label: "Placement group ID", get: (g) => ident(g.placement_group_id, 16) },
      { label: "Name", get: (g) => g.name },
      { label: "State", get: (g) => badge(g.state) },
      { label: "Detached", get: (g) => g.is_detached ? "yes" : "no" },
      { label: "Bundles", get: (g) => bundles(g, ips) },
    ], groups.result, "No placement groups.", (g) => ({ "data-pg-id": g.placement_group_id })));
  }

  every(1500, refresh);
})();
