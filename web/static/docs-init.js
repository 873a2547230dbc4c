// Starts Swagger UI on /openapi.json (a file, not inline: the CSP allows only 'self' scripts).
'use strict';
window.ui = window.SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // Requests from "Try it out" carry the dashboard's session cookie (same origin).
  withCredentials: true,
  validatorUrl: null,  // the default validator is another host
});
