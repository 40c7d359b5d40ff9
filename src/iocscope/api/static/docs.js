// Starts Swagger UI on /openapi.json; a file of its own because the
// Content-Security-Policy allows no inline script.
"use strict";
window.ui = window.SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No badge that would send the document to the public online validator.
  validatorUrl: null,
});
