/* Objects in every node's shared-memory store: size, creator, where. */
"use strict";
(function () {
  const { el, api, mount, table, badge, bytes, card, every } = Dash;

  async function refresh() {
    const [objects, status] = await Promise.all([api("/api/v0/objects?detail=true&limit=10000"), api("/api/cluster_status")]);
    const stores = status.nodes.map((n) => n.object_store).filter((s) => s);
    const sum = (key) => stores.reduce((s, st) => s + (st[key] || 0), 0);
    const store = { used: sum("used"), capacity: sum("capacity"), spilled_bytes: sum("spilled_bytes") };
    const rows = objects.result.slice().sort((a, b) => (b.object_size || 0) - (a.object_size || 0));
    const total = rows.reduce((s, o) => s + (o.object_size || 0), 0);
    mount([
      el("div", { class: "cards" },
        card("Objects", String(objects.total)),
        card("Their size", bytes(total)),
        card("Store used", bytes(store.used), "of " + bytes(store.capacity)),
        card("Spilled", bytes(store.spilled_bytes))),
      el("p", { class: "muted" }, "Objects over 100 KiB live in a node's shared-memory store and are listed here; " +
        "smaller values travel inline with their owner."),
      table([
        { label: "Object ID", get: (o) => el("span", { class: "mono" }, o.object_id) },
        { label: "Size", get: (o) => bytes(o.object_size), cls: "num" },
        { label: "Owner (pid)", get: (o) => o.pid ? o.pid + (o.ip ? " @ " + o.ip : "") : (o.ip || "?"), cls: "num" },
        { label: "Created by (pid)", get: (o) => o.creator_pid, cls: "num" },
        { label: "Where", get: (o) => (o.node_ip || "?") + (o.spilled ? " (spilled to disk)" : " (memory)") },
        { label: "Creating task", get: (o) => badge(o.task_status) },
        { label: "Reference", get: (o) => o.reference_type },
        { label: "Kept because", get: (o) => o.pin_reason },
      ], rows, "No objects in the store.", (o) => ({ "data-object-id": o.object_id })),
    ]);
  }

  every(1500, refresh);
})();
