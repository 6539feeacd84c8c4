// The jobs list: filters, keyset paging, refreshed live (no reloads): the page is re-read
// every two seconds and running rows follow their SSE stream for progress.

import { api, stream } from "./api.js";
import { duration, errorBox, h, stateBadge, when } from "./dom.js";

const REFRESH_MS = 2000;
const STREAMED_ROWS = 3; // a browser opens ~6 connections per host: leave room for the rest
const STATES = ["PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"];
const filters = { status: "", plugin: "", tool: "" };

function row(job) {
  return h(
    "tr", { "data-job": job.id, "data-status": job.status },
    h("td", { class: "id" }, h("a", { href: `#/jobs/${job.id}` }, job.id.slice(0, 13))),
    h("td", {}, `${job.plugin}.${job.tool}`),
    h("td", {}, stateBadge(job.status)),
    h("td", {}, h("progress", { max: 1, value: job.progress, "aria-label": "Progress" })),
    h("td", { class: "wide" }, when(job.created_at)),
    h("td", {}, duration(job)),
  );
}

export async function jobsPage(main, _params, signal) {
  const cursors = [null]; // keyset paging: the cursor of each page seen, newest first
  const body = h("tbody");
  const status = h("select", { id: "filter-status", "aria-label": "Status" },
    h("option", { value: "" }, "any status"), STATES.map((s) => h("option", { value: s }, s)));
  const plugin = h("select", { id: "filter-plugin", "aria-label": "Plugin" }, h("option", { value: "" }, "any plugin"));
  const tool = h("input", { id: "filter-tool", type: "search", placeholder: "tool", "aria-label": "Tool", size: 10 });
  const newer = h("button", { type: "button", class: "quiet", disabled: true }, "← Newer");
  const older = h("button", { type: "button", class: "quiet", disabled: true }, "Older →");
  const note = h("p", { class: "muted", "aria-live": "polite" });
  const problem = h("div");
  main.replaceChildren(
    h("h1", {}, "Jobs"),
    h("div", { class: "row panel" }, status, plugin, tool, newer, older),
    problem,
    h("div", { class: "table-wrap" }, h("table", { id: "jobs" },
      h("thead", {}, h("tr", {}, ["Job", "Tool", "State", "Progress", "Created", "Duration"].map(
        (t) => h("th", { class: t === "Created" ? "wide" : null }, t)))),
      body)),
    note,
  );
  status.value = filters.status;
  tool.value = filters.tool;
  api("/v1/plugins", { signal }).then(({ plugins }) => {
    plugin.append(...plugins.map((p) => h("option", { value: p.name }, p.name)));
    plugin.value = filters.plugin;
  }).catch(() => {});

  const streams = new Map(); // job id -> AbortController of its SSE reader
  let next = null;
  let timer = null;

  function follow(jobs) {
    const running = new Set(jobs.filter((j) => j.status === "RUNNING").slice(0, STREAMED_ROWS).map((j) => j.id));
    for (const [id, control] of streams) if (!running.has(id)) { control.abort(); streams.delete(id); }
    for (const id of running) {
      if (streams.has(id)) continue;
      const control = new AbortController();
      signal.addEventListener("abort", () => control.abort(), { once: true });
      streams.set(id, control);
      stream(`/v1/jobs/${id}/stream`, (_name, job) => {
        const old = body.querySelector(`tr[data-job="${job.id}"]`);
        if (old) old.replaceWith(row(job));
      }, control.signal).catch(() => {}).finally(() => streams.delete(id));
    }
  }

  async function load() {
    clearTimeout(timer);
    const query = new URLSearchParams({ limit: "25" });
    for (const [k, v] of Object.entries(filters)) if (v) query.set(k, v);
    const cursor = cursors[cursors.length - 1];
    if (cursor) query.set("cursor", cursor);
    try {
      const page = await api(`/v1/jobs?${query}`, { signal });
      body.replaceChildren(...page.jobs.map(row));
      next = page.next_cursor;
      older.disabled = !next;
      newer.disabled = cursors.length === 1;
      note.textContent = page.jobs.length ? `Live · updated ${new Date().toLocaleTimeString()}` : "No jobs match.";
      problem.replaceChildren();
      follow(page.jobs);
    } catch (error) {
      if (signal.aborted) return;
      problem.replaceChildren(errorBox(error));
      if (error.status === 401) return; // polling resumes once a key is given (the view reloads)
    }
    if (!signal.aborted) timer = setTimeout(load, REFRESH_MS);
  }
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });

  const refilter = () => {
    Object.assign(filters, { status: status.value, plugin: plugin.value, tool: tool.value.trim() });
    cursors.splice(1);
    load();
  };
  status.addEventListener("change", refilter);
  plugin.addEventListener("change", refilter);
  tool.addEventListener("change", refilter);
  older.addEventListener("click", () => { if (next) { cursors.push(next); load(); } });
  newer.addEventListener("click", () => { if (cursors.length > 1) { cursors.pop(); load(); } });
  await load();
}
