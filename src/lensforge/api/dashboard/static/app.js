// The dashboard shell: hash routes to views, the API key dialog, error display.

import { apiKey, whenUnauthorized } from "./api.js";
import { errorBox, h } from "./dom.js";
import { jobPage } from "./job.js";
import { jobsPage } from "./jobs.js";
import { overviewPage } from "./overview.js";
import { pluginsPage } from "./plugins.js";
import { tryPage } from "./try.js";

const ROUTES = [
  [/^#?\/?$/, "overview", overviewPage],
  [/^#\/plugins(?:\/([^/]+))?$/, "plugins", pluginsPage],
  [/^#\/try(?:\/([^/]+)\/([^/]+))?$/, "try", tryPage],
  [/^#\/jobs\/([^/]+)$/, "jobs", jobPage],
  [/^#\/jobs$/, "jobs", jobsPage],
];

const main = document.getElementById("main");
const dialog = document.getElementById("key-dialog");
const keyInput = document.getElementById("key-input");
const keyReason = document.getElementById("key-reason");
const keyButton = document.getElementById("key-button");
let current = null; // the AbortController of the view shown

function showKeyState() {
  keyButton.textContent = apiKey.get() ? "API key ✓" : "API key";
}

function askForKey(reason) {
  if (dialog.open) return; // another call refused while the dialog is up: keep what it says
  keyReason.textContent = reason || "Enter an API key.";
  keyInput.value = "";
  dialog.showModal();
  keyInput.focus();
}

function route() {
  if (current) current.abort();
  current = new AbortController();
  const hash = location.hash || "#/";
  const match = ROUTES.map(([re, nav, view]) => [hash.match(re), nav, view]).find(([m]) => m);
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.toggleAttribute("aria-current", Boolean(match && link.dataset.nav === match[1]));
    if (match && link.dataset.nav === match[1]) link.setAttribute("aria-current", "page");
  }
  if (!match) {
    main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/" }, "Overview")));
    return;
  }
  const [m, , view] = match;
  const signal = current.signal;
  Promise.resolve(view(main, m.slice(1).filter(Boolean), signal)).catch((error) => {
    if (!signal.aborted) main.replaceChildren(errorBox(error));
  });
}

whenUnauthorized((error) => {
  const message = apiKey.get() ? `Refused: ${error.message}` : "This server requires an API key.";
  apiKey.clear(); // a refused key is not kept
  showKeyState();
  askForKey(message);
});

document.getElementById("key-form").addEventListener("submit", (event) => {
  const key = keyInput.value.trim();
  if (event.submitter && event.submitter.value === "save" && key) {
    apiKey.set(key);
    showKeyState();
    route();
  }
});
document.getElementById("key-forget").addEventListener("click", () => {
  apiKey.clear();
  showKeyState();
  dialog.close();
  route();
});
document.getElementById("key-cancel").addEventListener("click", () => dialog.close());
keyButton.addEventListener("click", () => askForKey("Enter an API key, or forget the one in use."));
window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});
showKeyState();
route();
