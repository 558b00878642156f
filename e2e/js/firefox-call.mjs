// A relay-only call between Firefox ESR (driven over WebDriver BiDi) and
// Chromium (over CDP), both with puppeteer-core, through the icebox at
// ICEBOX_URL. Run by e2e/firefox_test.go; prints one JSON object with
// what it saw and exits 1 on the first failed step.
//
//   ICEBOX_URL=http://127.0.0.1:PORT FIREFOX=/usr/bin/firefox-esr CHROMIUM=/usr/bin/chromium node firefox-call.mjs
import { launchChromium, launchFirefox } from './browsers.mjs';

const base = process.env.ICEBOX_URL;
const room = process.env.ROOM || `ff${Date.now()}`;
const out = { steps: [] };
const STEP_MS = 20000;

/** @param {string} what */
function step(what) {
  out.steps.push(what);
  process.stderr.write(`firefox-call: ${what}\n`);
}

/**
 * waitTrue polls expr in page until it is true.
 * @param {import('puppeteer-core').Page} page
 * @param {string} what
 * @param {string} expr
 */
async function waitTrue(page, what, expr) {
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    let ok = false;
    try { ok = await page.evaluate(expr); } catch (err) { ok = false; out.lastError = String(err); }
    if (ok === true) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${STEP_MS / 1000}s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const videoPlays = `(() => { const v = document.querySelector('.tile.remote video');
  if (!v || !v.videoWidth || !(v.currentTime > 0)) return false;
  if (window.__t0 === undefined) { window.__t0 = v.currentTime; return false; }
  return v.currentTime > window.__t0; })()`;

/**
 * say types a chat line and submits it.
 * @param {import('puppeteer-core').Page} page
 * @param {string} text
 */
async function say(page, text) {
  await page.evaluate((t) => {
    const i = /** @type {HTMLInputElement} */ (document.getElementById('chat-input'));
    i.value = t;
    /** @type {HTMLFormElement} */ (i.form).requestSubmit();
  }, text);
}

/** @param {string} text */
const heard = (text) => `[...document.querySelectorAll('#messages li')].some(li => li.textContent === ${JSON.stringify(text)})`;

let firefox;
let chromium;
try {
  firefox = await launchFirefox(process.env.FIREFOX);
  chromium = await launchChromium(process.env.CHROMIUM);
  out.firefox = await firefox.version();
  const ff = await firefox.newPage();
  const cr = await chromium.newPage();
  await cr.goto(`${base}/r/${room}?test=1&name=chromium&autojoin=1&relay=1`);
  await ff.goto(`${base}/r/${room}?test=1&name=firefox&autojoin=1&relay=1`);
  step('pages open');

  await waitTrue(ff, 'Firefox plays Chromium\'s video', videoPlays);
  await waitTrue(cr, 'Chromium plays Firefox\'s video', videoPlays);
  step('video both ways');
  out.timing = await ff.evaluate(() => {
    const t = /** @type {any} */ (window).icebox.snapshot().timing;
    return { mediaReadyToVideoMs: Math.round(t.firstVideo - t.mediaReady), openToVideoMs: Math.round(t.firstVideo - t.start) };
  });

  const pairs = async (/** @type {import('puppeteer-core').Page} */ p) => p.evaluate(async () => Object.values(await /** @type {any} */ (window).icebox.pairs()));
  out.pairs = { firefox: await pairs(ff), chromium: await pairs(cr) };
  for (const [who, list] of Object.entries(out.pairs)) {
    if (list.length !== 1 || !list[0] || list[0].local !== 'relay') throw new Error(`${who}: selected pair ${JSON.stringify(list)}, want a relay candidate`);
  }
  step('relayed both ways');
  await waitTrue(ff, 'Firefox\'s badge says Via server', `(document.querySelector('.tile.remote .net')?.textContent || '').startsWith('Via server')`);
  out.badge = await ff.evaluate(() => document.querySelector('.tile.remote .net')?.textContent);

  await say(ff, 'hello from firefox');
  await waitTrue(cr, 'Chromium reads Firefox\'s chat', heard('firefoxhello from firefox'));
  await say(cr, 'hello from chromium');
  await waitTrue(ff, 'Firefox reads Chromium\'s chat', heard('chromiumhello from chromium'));
  step('chat both ways');

  // Screen share from Chromium (its fake screen), seen by Firefox on the stage.
  await cr.click('#share-screen');
  await waitTrue(ff, 'Firefox shows Chromium\'s screen on the stage', `(() => { const t = document.querySelector('.tile.remote.screen');
    const v = t && t.querySelector('video'); return !!v && v.videoWidth > 0 && v.currentTime > 0 && t.classList.contains('staged'); })()`);
  step('Chromium\'s screen share on Firefox\'s stage');
  await cr.click('#share-screen');
  await waitTrue(ff, 'Chromium\'s screen tile goes', `document.querySelector('.tile.screen') === null`);

  // Screen share from Firefox: it has no fake screen, so it may refuse.
  await ff.click('#share-screen');
  const shared = await (async () => {
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const on = await ff.evaluate(() => /** @type {any} */ (window).icebox.snapshot().screen);
      if (on) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  })();
  out.firefoxShare = shared ? 'shared' : await ff.evaluate(() => document.getElementById('status')?.textContent || 'no share');
  if (shared) {
    await waitTrue(cr, 'Chromium shows Firefox\'s screen on the stage', `(() => { const t = document.querySelector('.tile.remote.screen');
      const v = t && t.querySelector('video'); return !!v && v.videoWidth > 0 && t.classList.contains('staged'); })()`);
    step('Firefox\'s screen share on Chromium\'s stage');
  } else {
    step(`Firefox did not share a screen: ${out.firefoxShare}`);
  }
  out.ok = true;
} catch (err) {
  out.ok = false;
  out.error = String(err && /** @type {any} */ (err).message || err);
}
await Promise.allSettled([firefox && firefox.close(), chromium && chromium.close()]);
process.stdout.write(JSON.stringify(out) + '\n');
process.exit(out.ok ? 0 : 1);
