/* Each worker's log tail: the files under <session>/logs/ on the left
 * (worker-<pid>.out / .err, rotated .1, .2), the chosen file's last lines
 * on the right, following new output. The chosen file is the URL's hash. */
"use strict";
(function () {
  const { el, api, text, mount, bytes, every } = Dash;
  const LINES = 1000;
  const files = el("div", { class: "panel files" });
  const title = el("h2", {}, "");
  const view = el("pre", { class: "logview", id: "logview" }, "");
  let actorsByPid = {};
  let shownBody = null;

  function chosen() { return decodeURIComponent(window.location.hash.slice(1)); }

  function renderFiles(list) {
    if (!list.length) {
      mount(el("div", { class: "empty" }, "No worker log files yet."), files);
      return;
    }
    const sel = chosen();
    mount(list.map((f) => {
      const who = f.pid && actorsByPid[f.pid] ? "actor " + actorsByPid[f.pid] : (f.pid ? "pid " + f.pid : "");
      return el("a", { href: "#" + encodeURIComponent(f.filename), class: f.filename === sel ? "sel" : null, "data-file": f.filename },
        f.filename, el("small", {}, [who, bytes(f.size)].filter(Boolean).join(" · ")));
    }), files);
  }

  async function refreshTail() {
    const name = chosen();
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
      body = await text("/api/v0/logs/file?format=text&lines=" + LINES + "&filename=" + encodeURIComponent(name));
    } catch (e) {
      body = "(cannot read " + name + ": " + e.message + ")";
    }
    if (shownBody !== body) {
      shownBody = body;
      // Lines that only say which task or actor printed what follows are dimmed.
      mount(body ? body.split(/(?<=\n)/).map((line) => /^:(task|actor)_name:/.test(line) ? el("span", { class: "marker" }, line) : line)
        : ["(empty)"], view);
      if (atBottom) view.scrollTop = view.scrollHeight;
    }
  }

  async function refresh() {
    const [list, actors] = await Promise.all([api("/api/logs"), api("/api/v0/actors?limit=10000")]);
    actorsByPid = {};
    for (const a of actors.result) if (a.pid && a.state === "ALIVE") actorsByPid[a.pid] = a.class_name + (a.name ? " " + a.name : "");
    if (!chosen() && list.length) {
      const first = list.find((f) => f.stream === "out" && !f.rotation) || list[0];
      history.replaceState(null, "", "#" + encodeURIComponent(first.filename));
    }
    renderFiles(list);
    await refreshTail();
  }

  window.addEventListener("hashchange", () => { refreshTail(); for (const a of files.querySelectorAll("a")) a.classList.toggle("sel", a.dataset.file === chosen()); });
  mount(el("div", { class: "logs" }, files, el("div", {}, title, view)));
  every(1500, refresh);
})();
