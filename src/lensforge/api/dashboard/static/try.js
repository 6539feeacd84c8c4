// Try a tool: pick it, fill the form generated from its input schema, submit a job and
// watch it run; the result is drawn over the image.

import { api } from "./api.js";
import { errorBox, h } from "./dom.js";
import { collect, schemaFields } from "./form.js";
import { jobPanel, previews } from "./job.js";

export async function tryPage(main, [pluginName, toolName], signal) {
  const { plugins } = await api("/v1/plugins", { signal });
  const tools = plugins.flatMap((p) => p.tools.map((t) => ({ plugin: p, tool: t })));
  const picker = h("select", { id: "tool-picker", "aria-label": "Tool" },
    tools.map(({ tool }) => h("option", { value: tool.qualified_name }, tool.qualified_name)));
  const chosen = tools.find((t) => t.plugin.name === pluginName && t.tool.name === toolName) || tools[0];
  const slot = h("div", { id: "job-slot" });
  main.replaceChildren(h("h1", {}, "Try it"), h("div", { class: "row panel" }, h("label", { for: "tool-picker" }, "Tool"), picker));
  if (!chosen) {
    main.append(h("p", {}, "No tools are enabled."));
    return;
  }
  picker.value = chosen.tool.qualified_name;
  picker.addEventListener("change", () => {
    location.hash = `#/try/${picker.value.replace(".", "/")}`;
  });
  const submit = h("button", { type: "submit", id: "submit-job" }, "Run");
  const problem = h("div");
  const form = h("form", { class: "panel", id: "tool-form" },
    h("p", {}, chosen.tool.description),
    schemaFields(chosen.tool.input_schema),
    h("div", { class: "row" }, submit), problem);
  main.append(form, slot);

  let run = null; // the AbortController of the job panel shown
  signal.addEventListener("abort", () => run && run.abort(), { once: true });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    problem.replaceChildren();
    let values;
    try {
      values = collect(form);
    } catch (error) {
      problem.replaceChildren(errorBox({ code: "validation_error", message: `Not valid JSON: ${error.message}` }));
      return;
    }
    const body = new FormData();
    body.append("plugin", chosen.plugin.name);
    body.append("tool", chosen.tool.name);
    body.append("inputs", JSON.stringify(values.inputs));
    for (const [name, file] of values.files) body.append(name, file, file.name);
    submit.disabled = true;
    try {
      const { job_id: jobId } = await api("/v1/jobs", { method: "POST", body, signal });
      const image = values.files.find(([, f]) => f.type.startsWith("image/"));
      if (image) previews.set(jobId, URL.createObjectURL(image[1]));
      if (run) run.abort();
      run = new AbortController();
      slot.replaceChildren(jobPanel(jobId, run.signal));
    } catch (error) {
      problem.replaceChildren(errorBox(error));
    } finally {
      submit.disabled = false;
    }
  });
}
