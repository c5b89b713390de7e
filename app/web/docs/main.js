// Starts Swagger UI on /openapi.json. A file of its own, not an inline script: the page's
// Content-Security-Policy allows scripts from this origin only.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  tryItOutEnabled: false,
  // The reference's own examples, not ones Swagger UI would make up from the schemas.
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
});
