// Swagger UI for chatd's OpenAPI schema. Loaded as a file (no inline script), so the page
// works under Content-Security-Policy default-src 'self'. BaseLayout rather than the
// standalone one: the standalone top bar (a box to load another schema by URL) brings an
// inline <style> in its logo, which that policy blocks.
window.ui = SwaggerUIBundle({
  url: '/api/schema/',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // A token pasted into Authorize is forgotten with the page: this origin is the chat
  // client's too, and a token kept in localStorage would outlive the tab.
  persistAuthorization: false,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
  displayRequestDuration: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: 'BaseLayout',
});
