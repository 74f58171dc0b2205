/* Each node's log files: a node selector (the cluster's alive nodes; the
 * dashboard's own by default), the chosen node's files under
 * <session>/logs/ on the left (worker-<pid>.out / .err, rotated .1, .2, the
 * daemon's and drivers'), the chosen file's last lines on the right,
 * following new output. The URL's hash names the file: `#<file>` on the
 * dashboard's own node, `#<node_id>/<file>` on another (an id prefix will
 * do); log file names hold no "/". */
"use strict";
(function () {
  const { el, api, text, mount, bytes, every, short } = Dash;
  const LINES = 1000;
  const nodeSelect = el("select", { id: "log-node", "aria-label": "Node" });
  const files = el("div", { class: "panel files" });
  const title = el("h2", {}, "");
  const view = el("pre", { class: "logview", id: "logview" }, "");
  let actorsByPid = {};
  let shownBody = null;
  let ownNode = null;      // the dashboard's own node id (its logs are the default)
  let nodes = [];          // the alive nodes, as /api/v0/nodes lists them
  let listedNode;          // the node whose files the left panel shows

  /** {node, file} from the hash: `node` is null for the dashboard's own node. */
  function chosen() {
    const h = decodeURIComponent(window.location.hash.slice(1));
    const i = h.indexOf("/");
    return i < 0 ? { node: null, file: h } : { node: h.slice(0, i) || null, file: h.slice(i + 1) };
  }

  /** The full id of the chosen node (a prefix in the hash resolves to the
   * alive node it starts), or null for the dashboard's own. */
  function chosenNode() {
    const want = chosen().node;
    if (!want || want === ownNode) return null;
    const match = nodes.find((n) => n.node_id.startsWith(want));
    if (!match) return want;
    return match.node_id === ownNode ? null : match.node_id;
  }

  function nodeQuery(node) {
    const id = node || ownNode;
    return id ? "node_id=" + encodeURIComponent(id) : "";
  }

  function hashFor(node, file) {
    return "#" + (node ? encodeURIComponent(node) + "/" : "") + encodeURIComponent(file || "");
  }

  function renderNodes() {
    const current = chosenNode() || ownNode || "";
    const list = nodes.slice();
    if (current && !list.some((n) => n.node_id === current)) {
      list.push({ node_id: current, node_ip: "?", is_head_node: false, gone: true });
    }
    const options = list.map((n) => el("option", { value: n.node_id },
      [n.node_ip, short(n.node_id, 8), n.is_head_node ? "(head)" : null, n.node_id === ownNode ? "(this dashboard)" : null,
        n.gone ? "(not alive)" : null].filter(Boolean).join(" ")));
    const same = options.length === nodeSelect.options.length &&
      options.every((o, i) => o.value === nodeSelect.options[i].value && o.textContent === nodeSelect.options[i].textContent);
    if (!same) mount(options, nodeSelect);
    if (nodeSelect.value !== current) nodeSelect.value = current;
  }

  function renderFiles(list, node) {
    if (!list.length) {
      mount(el("div", { class: "empty" }, "No log files yet."), files);
      return;
    }
    const sel = chosen().file;
    mount(list.map((f) => {
      const who = f.pid && actorsByPid[f.pid] ? "actor " + actorsByPid[f.pid] : (f.pid ? "pid " + f.pid : "");
      return el("a", { href: hashFor(node, f.filename), class: f.filename === sel ? "sel" : null, "data-file": f.filename },
        f.filename, el("small", {}, [who, bytes(f.size)].filter(Boolean).join(" · ")));
    }), files);
  }

  async function refreshTail() {
    const name = chosen().file;
    const node = chosenNode();
    if (!name) {
      title.textContent = "Choose a log file";
      view.textContent = "";
      shownBody = null;
      return;
    }
    title.textContent = name;
    const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 8;
    let body;
    try {
      const q = nodeQuery(node);
      body = await text("/api/v0/logs/file?format=text&lines=" + LINES + "&filename=" + encodeURIComponent(name) + (q ? "&" + q : ""));
    } catch (e) {
      body = "(cannot read " + name + ": " + e.message + ")";
    }
    if (chosen().file !== name || chosenNode() !== node) return;  // another file was chosen meanwhile
    if (shownBody !== body) {
      shownBody = body;
      // Lines that only say which task or actor printed what follows are dimmed.
      mount(body ? body.split(/(?<=\n)/).map((line) => /^:(task|actor)_name:/.test(line) ? el("span", { class: "marker" }, line) : line)
        : ["(empty)"], view);
      if (atBottom) view.scrollTop = view.scrollHeight;
    }
  }

  async function refresh() {
    if (ownNode === null) {
      const status = await api("/api/cluster_status");
      const head = status.nodes.find((n) => n.is_head_node);
      ownNode = status.dashboard_node_id || (head && head.node_id) || "";
    }
    const want = chosen().node;
    const q = nodeQuery(chosenNode());
    const [list, actors, alive] = await Promise.all([
      api("/api/logs" + (q ? "?" + q : "")).catch((e) => e),
      api("/api/v0/actors?limit=10000"),
      api("/api/v0/nodes?limit=10000&filter_keys=state&filter_predicates=%3D&filter_values=ALIVE"),
    ]);
    nodes = alive.result.slice().sort((a, b) => (b.is_head_node - a.is_head_node) || String(a.node_ip).localeCompare(String(b.node_ip)));
    renderNodes();
    if (chosen().node !== want) return;  // another node was chosen meanwhile
    const node = chosenNode();
    actorsByPid = {};
    for (const a of actors.result) {
      if (a.pid && a.state === "ALIVE" && (!a.node_id || a.node_id === (node || ownNode))) {
        actorsByPid[a.pid] = a.class_name + (a.name ? " " + a.name : "");
      }
    }
    listedNode = node;
    if (list instanceof Error) {
      mount(el("div", { class: "empty" }, "Cannot list the logs of node " + (node || ownNode) + ": " + list.message), files);
      return;
    }
    if (!chosen().file && list.length) {
      const first = list.find((f) => f.stream === "out" && !f.rotation) || list[0];
      history.replaceState(null, "", hashFor(node, first.filename));
    }
    renderFiles(list, node);
    await refreshTail();
  }

  nodeSelect.addEventListener("change", () => {
    const node = nodeSelect.value && nodeSelect.value !== ownNode ? nodeSelect.value : null;
    window.location.hash = node ? hashFor(node, "") : "";
  });
  window.addEventListener("hashchange", () => {
    renderNodes();
    if (chosenNode() !== listedNode) {
      // Another node: its file list, then its first file (errors show on the next periodic refresh).
      listedNode = undefined;
      mount(el("div", { class: "empty" }, "Loading…"), files);
      refresh().catch(() => {});
      return;
    }
    refreshTail();
    for (const a of files.querySelectorAll("a")) a.classList.toggle("sel", a.dataset.file === chosen().file);
  });
  mount([el("div", { class: "toolbar" }, el("label", { for: "log-node" }, "Node"), nodeSelect),
    el("div", { class: "logs" }, files, el("div", {}, title, view))]);
  every(1500, refresh);
})();
