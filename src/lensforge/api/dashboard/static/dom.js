// Building DOM nodes without innerHTML, so text from results and errors is never markup.

const SVG = "http://www.w3.org/2000/svg";

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** h("a", {href: "#/"}, "text", child...) */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

export function stateBadge(state) {
  return h("span", { class: `state state-${state}` }, state);
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

export function duration(job) {
  if (!job.started_at) return "";
  const end = job.finished_at ? Date.parse(job.finished_at) : Date.now();
  const ms = end - Date.parse(job.started_at);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function errorBox(error) {
  const envelope = (error && error.envelope && error.envelope.error) || error;
  return h(
    "div",
    { class: "panel error", role: "alert" },
    h("strong", {}, envelope.code || "error"),
    ": ",
    envelope.message || String(error),
    envelope.details && Object.keys(envelope.details).length ? json(envelope.details) : null,
  );
}

/** node.replaceChildren, skipping null/undefined/false (which it would print as text). */
export function fill(node, ...children) {
  node.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}
