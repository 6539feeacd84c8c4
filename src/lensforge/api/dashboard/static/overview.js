// The overview: jobs by state, the last hour, queue depth, workers and plugin states,
// re-read from GET /v1/stats every two seconds.

import { api } from "./api.js";
import { errorBox, h, stateBadge } from "./dom.js";

const REFRESH_MS = 2000;

function card(label, value, name) {
  return h("div", { class: "card", "data-stat": name },
    h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}

function render(stats) {
  const hour = stats.last_hour;
  return [
    h("h2", {}, "Jobs"),
    h("div", { class: "cards" }, Object.entries(stats.jobs).map(([state, n]) =>
      card(state.toLowerCase(), stats.jobs_complete ? n : `≥ ${n}`, state))),
    h("h2", {}, "Last hour"),
    hour.complete ? null : h("p", { class: "muted" },
      `Estimated from the newest jobs, which cover the last ${Math.round(hour.covered_s)} s.`),
    h("div", { class: "cards" },
      card("finished", hour.finished, "finished"),
      card("jobs / minute", hour.throughput_per_min.toFixed(2), "throughput"),
      card("error rate", `${(hour.error_rate * 100).toFixed(1)}%`, "error_rate"),
      card("queue depth", stats.queue_depth, "queue_depth"),
      card(`workers alive (${stats.executor})`, stats.workers_alive, "workers_alive")),
    h("h2", {}, "Plugins"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Plugin"), h("th", {}, "State"), h("th", {}, "Why"))),
      h("tbody", {}, Object.entries(stats.plugins).map(([name, p]) => h("tr", { "data-plugin": name },
        h("td", {}, h("a", { href: `#/plugins/${name}` }, name)),
        h("td", {}, stateBadge(p.state)),
        h("td", { class: "muted" }, p.reason || "")))))),
  ];
}

export async function overviewPage(main, _params, signal) {
  const body = h("div", { id: "overview" });
  const note = h("p", { class: "muted" });
  main.replaceChildren(h("h1", {}, "Overview"), body, note);
  let timer = null;
  signal.addEventListener("abort", () => clearTimeout(timer), { once: true });
  async function load() {
    try {
      body.replaceChildren(...render(await api("/v1/stats", { signal })));
      note.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      if (signal.aborted) return;
      body.replaceChildren(errorBox(error));
      if (error.status === 401) return; // polling resumes once a key is given (the view reloads)
    }
    if (!signal.aborted) timer = setTimeout(load, REFRESH_MS);
  }
  await load();
}
