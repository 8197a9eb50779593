// Swagger UI over this service's own /openapi.json, with no request to any other origin:
// validatorUrl null (the default posts the schema to an online validator for a badge). Requests
// made with "Try it out" carry the web app's API key (localStorage) unless one is set here.
/* global SwaggerUIBundle */
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
  requestInterceptor: (req) => {
    const key = window.localStorage.getItem("aeserve.apiKey");
    if (key && !req.headers.Authorization) req.headers.Authorization = `Bearer ${key}`;
    return req;
  },
});
