// One job, live: state, progress, events timeline, cancel, and its result or error envelope
// drawn over the input image when this tab submitted it.

import { api, blobUrl, stream } from "./api.js";
import { duration, errorBox, fill, h, json, stateBadge, when } from "./dom.js";
import { artifacts, stage, texts } from "./render.js";

/** Input images this tab uploaded, by job id (object URLs; nothing leaves the browser). */
export const previews = new Map();

const TERMINAL = new Set(["SUCCESS", "FAILED", "CANCELLED"]);

/** A live panel for one job; follows its SSE stream until the job ends or signal aborts. */
export function jobPanel(jobId, signal) {
  const head = h("div", { class: "row" });
  const progress = h("div", { class: "row" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Events" });
  const outcome = h("div", { class: "outcome", "aria-live": "polite" });
  const panel = h(
    "section", { class: "panel job", "data-job": jobId },
    head, progress,
    h("div", { class: "split" },
      h("div", {}, h("h2", {}, "Result"), outcome),
      h("div", {}, h("h2", {}, "Events"), timeline)),
  );
  let shown = null;

  const cancel = h("button", { type: "button", class: "danger", id: "cancel-job" }, "Cancel job");
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      update(await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" }));
    } catch (error) {
      fill(outcome, errorBox(error));
      cancel.disabled = false;
    }
  });

  function update(job) {
    const terminal = TERMINAL.has(job.status);
    fill(head,
      h("strong", {}, `${job.plugin}.${job.tool}`),
      h("span", { class: "job-status", "data-status": job.status }, stateBadge(job.status)),
      h("span", { class: "muted id" }, job.id),
      terminal ? null : cancel,
    );
    fill(progress,
      h("progress", { max: 1, value: job.progress, "aria-label": "Progress" }),
      h("span", {}, `${Math.round(job.progress * 100)}%`),
      job.progress_message ? h("span", { class: "muted" }, job.progress_message) : null,
      h("span", { class: "muted" }, duration(job)),
    );
    if (job.status !== shown) {
      shown = job.status;
      loadEvents().catch(() => {});
      if (terminal) showOutcome(job).catch((error) => fill(outcome, errorBox(error)));
      else fill(outcome, h("p", { class: "muted" }, `${job.status.toLowerCase()}…`), preview());
    }
  }

  async function loadEvents() {
    const { events } = await api(`/v1/jobs/${jobId}/events`, { signal });
    fill(timeline, ...events.map((e) =>
      h("li", {}, `${when(e.at)} · ${e.from || "∅"} → ${e.to}`, e.reason ? h("span", { class: "muted" }, ` · ${e.reason}`) : null)));
  }

  function preview(result) {
    const src = previews.get(jobId);
    return src ? stage(src, result || {}, "input image") : null;
  }

  async function showOutcome(job) {
    if (job.status !== "SUCCESS") {
      fill(outcome, errorBox({ envelope: { error: job.error || { code: job.status.toLowerCase(), message: `The job is ${job.status}.` } } }), preview());
      return;
    }
    const { result } = await api(`/v1/jobs/${jobId}/result`, { signal });
    const found = texts(result);
    const images = h("div", { class: "row" });
    fill(outcome,
      found.length ? h("ul", { class: "texts" }, found.map((t) => h("li", {}, h("code", {}, t)))) : null,
      preview(result),
      images,
      h("details", { open: !previews.has(jobId) }, h("summary", {}, "JSON"), json(result)),
    );
    for (const artifact of artifacts(result)) {
      const url = await blobUrl(artifact.blob, signal);
      images.append(h("figure", { class: "stage" }, h("img", { src: url, alt: "image returned by the tool" })));
    }
  }

  (async () => {
    update(await api(`/v1/jobs/${jobId}`, { signal }));
    if (TERMINAL.has(shown)) return;
    await stream(`/v1/jobs/${jobId}/stream`, (_name, job) => update(job), signal);
    update(await api(`/v1/jobs/${jobId}`, { signal })); // the last word, however the stream ended
  })().catch((error) => {
    if (!signal.aborted) fill(outcome, errorBox(error));
  });
  return panel;
}

/** The job page: #/jobs/{id}. */
export function jobPage(main, [jobId], signal) {
  fill(main,
    h("h1", {}, "Job"),
    h("p", {}, h("a", { href: "#/jobs" }, "← all jobs")),
    jobPanel(decodeURIComponent(jobId), signal),
  );
}
