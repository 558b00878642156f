// Globals of the call page for the type checker (web/tsconfig.json).

interface Window {
  /**
   * The test hook (static/testhook.js): set only when the page is loaded
   * with ?test=1. Nothing in the page reads it.
   */
  icebox?: import('./static/testhook.js').TestHook;
}
