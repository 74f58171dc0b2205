/* Jobs: submitted jobs (when job submission runs) and the drivers whose
 * tasks the cluster lists. */
"use strict";
(function () {
  const { el, api, mount, table, badge, ident, details, time, duration, every } = Dash;

  function message(j) {
    if (!j.message) return null;
    const text = String(j.message);
    const cls = j.status === "FAILED" ? "bad-text" : null;
    if (!text.includes("\n") && text.length <= 100) return el("span", { class: cls }, text);
    return details("job:" + (j.submission_id || j.job_id), text.split("\n")[0].slice(0, 80) + "…", el("pre", {}, text));
  }

  function sec(t) { return t ? (t > 1e11 ? t : t * 1000) : null; }  // Ray's job times are ms

  async function refresh() {
    const [jobs, status] = await Promise.all([api("/api/v0/jobs?detail=true&limit=10000"), api("/api/cluster_status")]);
    const rows = jobs.result.slice().sort((a, b) => (sec(b.start_time) || 0) - (sec(a.start_time) || 0) ||
      String(b.job_id || "").localeCompare(String(a.job_id || "")));
    const empty = status.features && status.features.jobs
      ? "No jobs yet. Submit one with `oxray job submit` or the JobSubmissionClient."
      : "No jobs yet: drivers appear here once they run tasks (job submission is not available on this dashboard).";
    mount([
      el("p", { class: "muted" }, jobs.total + " job(s)"),
      table([
        { label: "Job ID", get: (j) => j.job_id ? el("span", { class: "mono" }, j.job_id) : null },
        { label: "Submission ID", get: (j) => j.submission_id ? el("span", { class: "mono" }, j.submission_id) : null },
        { label: "Type", get: (j) => j.type },
        { label: "Status", get: (j) => badge(j.status) },
        { label: "Entrypoint", get: (j) => j.entrypoint ? el("code", {}, j.entrypoint) : null },
        { label: "Driver", get: (j) => j.driver_info ? (j.driver_info.node_ip_address || "") + " pid " + (j.driver_info.pid || "?") : null },
        { label: "Started", get: (j) => time(sec(j.start_time)) },
        { label: "Duration", get: (j) => sec(j.start_time) ? duration((sec(j.end_time) || Date.now()) - sec(j.start_time)) : null, cls: "num" },
        { label: "Message", get: message },
      ], rows, empty, (j) => ({ "data-job-id": j.job_id || "", "data-submission-id": j.submission_id || "" })),
    ]);
  }

  every(2000, refresh);
})();
