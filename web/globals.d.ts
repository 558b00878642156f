// Globals of the call page for the type checker (web/tsconfig.json).

interface Window {
  /**
   * The page's one global object: hooks for the browser console and
   * tests, documented in static/app.js. Nothing in the page reads it.
   */
  icebox: Record<string, unknown>;
}
