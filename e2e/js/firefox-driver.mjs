// A Firefox ESR for Go tests to drive (e2e/firefox_driver_test.go):
// launched headless with its fake devices (browsers.mjs), then driven by
// requests on stdin, one JSON object a line, each answered on stdout by
// one line with the same id. The first line out is
// {"ready": true, "version": "<Firefox's>"} (or {"error": "…"}).
//
//   {"id": 1, "op": "open", "url": "…"}            → {"id": 1, "value": <page number>}
//   {"id": 2, "op": "eval", "page": 0, "expr": "…"} → {"id": 2, "value": <the expression's value, awaited>}
//   {"id": 3, "op": "wait", "page": 0, "expr": "…", "ms": 10000}
//        → {"id": 3, "value": true} once expr is true in the page (checked
//          there every 50 ms), or {"id": 3, "error": "…"} after ms
//   {"id": 4, "op": "console", "page": 0}          → {"id": 4, "value": ["<time> <type> <text>", …]}
//   {"id": 5, "op": "close", "page": 0}            → {"id": 5, "value": true}
//
// Requests are answered in order. End of stdin (or SIGTERM) closes Firefox
// and exits.
import { createInterface } from 'node:readline';
import { launchFirefox } from './browsers.mjs';

/** How many console lines a page keeps for a failure's log. */
const CONSOLE_KEEP = 200;

/**
 * @typedef {{page: import('puppeteer-core').Page, console: string[]}} Open
 * @typedef {{id: number, op: string, url?: string, page?: number, expr?: string, ms?: number}} Request
 */

/** @param {object} m */
function reply(m) { process.stdout.write(JSON.stringify(m) + '\n'); }

let browser;
try {
  browser = await launchFirefox(process.env.FIREFOX);
  reply({ ready: true, version: await browser.version() });
} catch (err) {
  reply({ error: `launching Firefox: ${err && /** @type {any} */ (err).message || err}` });
  process.exit(1);
}

/** @type {Open[]} */
const pages = [];

/**
 * @param {Request} r
 * @returns {Open}
 */
function pageOf(r) {
  const p = pages[r.page ?? -1];
  if (!p) throw new Error(`no page ${r.page}`);
  return p;
}

/**
 * handle answers one request.
 * @param {Request} r
 */
async function handle(r) {
  switch (r.op) {
    case 'open': {
      const page = await browser.newPage();
      /** @type {Open} */
      const o = { page, console: [] };
      page.on('console', (m) => {
        o.console.push(`${new Date().toISOString().slice(11, 23)} ${m.type()} ${m.text()}`);
        if (o.console.length > CONSOLE_KEEP) o.console.shift();
      });
      page.on('pageerror', (err) => o.console.push(`${new Date().toISOString().slice(11, 23)} pageerror ${err}`));
      pages.push(o);
      await page.goto(String(r.url));
      return pages.length - 1;
    }
    case 'eval':
      return await pageOf(r).page.evaluate(String(r.expr));
    case 'wait':
      await pageOf(r).page.waitForFunction(String(r.expr), { timeout: r.ms || 10000, polling: 50 });
      return true;
    case 'console':
      return pageOf(r).console;
    case 'close':
      await pageOf(r).page.close();
      return true;
    default:
      throw new Error(`unknown op ${r.op}`);
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  /** @type {Request} */
  let r;
  try {
    r = JSON.parse(line);
  } catch (err) {
    reply({ id: -1, error: `bad request: ${err}` });
    continue;
  }
  try {
    const value = await handle(r);
    reply({ id: r.id, value: value === undefined ? null : value });
  } catch (err) {
    reply({ id: r.id, error: String(err && /** @type {any} */ (err).message || err) });
  }
}
await browser.close();
