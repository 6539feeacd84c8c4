// Plugins and their tools: state (and why), description, metrics, input and output schemas.

import { api } from "./api.js";
import { fill, h, json, stateBadge } from "./dom.js";

function metrics(m) {
  const errors = Object.values(m.errors || {}).reduce((a, b) => a + b, 0);
  const l = m.latency_ms || {};
  const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);
  return h("p", { class: "muted" },
    `${m.calls} calls · ${m.successes} ok · ${errors} errors · p50 ${ms(l.p50)} · p95 ${ms(l.p95)}`);
}

function tool(plugin, t) {
  return h("div", { class: "tool", "data-tool": t.qualified_name },
    h("div", { class: "row" }, h("h3", {}, t.qualified_name),
      h("a", { class: "button", href: `#/try/${plugin.name}/${t.name}` }, "Try it")),
    h("p", {}, t.description),
    h("details", {}, h("summary", {}, "Input schema"), json(t.input_schema)),
    h("details", {}, h("summary", {}, "Output schema"), json(t.output_schema)));
}

export async function pluginsPage(main, [only], signal) {
  const { plugins, load_errors: failed } = await api("/v1/plugins", { signal });
  const shown = only ? plugins.filter((p) => p.name === only) : plugins;
  fill(main,
    h("h1", {}, "Plugins"),
    ...shown.map((p) => h("section", { class: "panel plugin", id: `plugin-${p.name}` },
      h("div", { class: "row" }, h("h2", {}, `${p.name} ${p.version}`), stateBadge(p.state)),
      p.reason ? h("p", { class: "error" }, p.reason) : null,
      h("p", {}, p.description),
      metrics(p.metrics),
      p.tools.map((t) => tool(p, t)))),
    Object.keys(failed || {}).length
      ? h("section", { class: "panel" }, h("h2", {}, "Failed to register"),
          Object.entries(failed).map(([name, why]) => h("p", {}, h("strong", {}, name), ": ", why)))
      : null,
  );
}
