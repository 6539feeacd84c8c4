// A form generated from a tool's input JSON Schema: numbers, enums, booleans, arrays, free
// JSON for anything else, and images by drag and drop or file picker.

import { h } from "./dom.js";

function resolve(schema, root) {
  if (schema && schema.$ref && schema.$ref.startsWith("#/$defs/")) {
    return resolve(root.$defs[schema.$ref.slice(8)], root);
  }
  return schema || {};
}

/** {schema, nullable}: an ``anyOf [X, null]`` unwrapped to X. */
function unwrap(schema, root) {
  schema = resolve(schema, root);
  if (Array.isArray(schema.anyOf) && !schema["x-lensforge-media"]) {
    const options = schema.anyOf.map((o) => resolve(o, root));
    const real = options.filter((o) => o.type !== "null");
    if (real.length === 1) {
      return { schema: { ...schema, ...real[0], anyOf: undefined }, nullable: real.length < options.length };
    }
  }
  return { schema, nullable: false };
}

function kindOf(schema) {
  if (schema["x-lensforge-media"]) return `media:${schema["x-lensforge-media"]}`;
  if (Array.isArray(schema.enum)) return "enum";
  if (schema.type === "array") {
    const items = schema.items || {};
    if (Array.isArray(items.enum)) return "enum-array";
    if (["string", "number", "integer"].includes(items.type)) return `list:${items.type}`;
    return "json";
  }
  return ["boolean", "integer", "number", "string"].includes(schema.type) ? schema.type : "json";
}

function mediaField(id, name, accept, required) {
  const input = h("input", { id, name, type: "file", accept, required, "data-input": name });
  const preview = h("div", { class: "preview" });
  const zone = h(
    "div",
    { class: "drop" },
    "Drop an image here, or ",
    input,
    preview,
  );
  const show = () => {
    const file = input.files[0];
    preview.replaceChildren(file ? h("p", {}, `${file.name} · ${Math.round(file.size / 1024)} KB`) : "");
    input.dispatchEvent(new CustomEvent("media-chosen", { bubbles: true }));
  };
  input.addEventListener("change", show);
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      show();
    }
  });
  return zone;
}

function control(id, name, schema, kind, required) {
  const d = schema.default;
  switch (kind) {
    case "boolean":
      return h("input", { id, name, type: "checkbox", checked: d === true, "data-input": name });
    case "integer":
    case "number":
      return h("input", {
        id, name, type: "number", "data-input": name, required,
        step: kind === "integer" ? "1" : "any",
        min: schema.minimum ?? schema.exclusiveMinimum, max: schema.maximum ?? schema.exclusiveMaximum,
        placeholder: d ?? "",
      });
    case "enum":
      return h(
        "select", { id, name, "data-input": name, required },
        required ? null : h("option", { value: "" }, d === undefined || d === null ? "(default)" : `(default: ${d})`),
        schema.enum.map((v) => h("option", { value: JSON.stringify(v) }, String(v))),
      );
    case "enum-array":
      return h(
        "div", { class: "checks", id, role: "group", "data-input": name, "data-array": "enum" },
        schema.items.enum.map((v) => h("label", {}, h("input", { type: "checkbox", value: JSON.stringify(v) }), String(v))),
      );
    case "string":
      return h("input", { id, name, type: "text", "data-input": name, required,
        maxlength: schema.maxLength, placeholder: d ?? "" });
    case "json":
      return h("textarea", { id, name, rows: 3, "data-input": name, "data-json": "", required,
        placeholder: d === undefined ? "JSON" : JSON.stringify(d) });
    default: // list:string, list:number, list:integer
      return h("input", { id, name, type: "text", "data-input": name, "data-list": kind.slice(5), required,
        placeholder: "comma-separated" });
  }
}

/** The fields of a tool's input form (a fragment to put inside a <form>). */
export function schemaFields(inputSchema, prefix = "in") {
  const root = inputSchema || {};
  const required = new Set(root.required || []);
  return Object.entries(root.properties || {}).map(([name, raw]) => {
    const { schema, nullable } = unwrap(raw, root);
    const kind = kindOf(schema);
    const id = `${prefix}-${name}`;
    const must = required.has(name) && !nullable;
    const input = kind.startsWith("media:")
      ? mediaField(id, name, `${kind.slice(6)}/*`, must)
      : control(id, name, schema, kind, must);
    const hint = [schema.description, must ? "required" : null].filter(Boolean).join(" · ");
    return h(
      "div", { class: "field" },
      h("label", { for: id }, schema.title || name),
      input,
      hint ? h("p", { class: "hint" }, hint) : null,
    );
  });
}

/** {inputs, files}: the form's values; empty optional fields are left out (defaults apply). */
export function collect(form) {
  const inputs = {};
  const files = [];
  for (const node of form.querySelectorAll("[data-input]")) {
    const name = node.dataset.input;
    if (node.type === "file") {
      if (node.files[0]) files.push([name, node.files[0]]);
    } else if (node.type === "checkbox") {
      inputs[name] = node.checked;
    } else if (node.dataset.array === "enum") {
      const chosen = [...node.querySelectorAll("input:checked")].map((c) => JSON.parse(c.value));
      if (chosen.length) inputs[name] = chosen;
    } else if (node.value.trim() === "") {
      continue;
    } else if (node.tagName === "SELECT") {
      inputs[name] = JSON.parse(node.value);
    } else if (node.type === "number") {
      inputs[name] = Number(node.value);
    } else if (node.dataset.json !== undefined) {
      inputs[name] = JSON.parse(node.value);
    } else if (node.dataset.list) {
      const parts = node.value.split(",").map((p) => p.trim()).filter(Boolean);
      inputs[name] = node.dataset.list === "string" ? parts : parts.map(Number);
    } else {
      inputs[name] = node.value;
    }
  }
  return { inputs, files };
}
