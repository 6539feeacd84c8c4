// Starts Swagger UI on the page's #swagger-ui element (LensForge, lensforge/api/docs.py).
// A file, not an inline script, so that the page's Content-Security-Policy can forbid those.
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    oauth2RedirectUrl: window.location.origin + window.location.pathname.replace(/\/?$/, "/oauth2-redirect"),
  });
});
