// The connectivity check page (/check): someone whose call fails opens it,
// and from their browser it tries icebox's signaling (/ws) and each ICE
// server URL on its own (checkice.js), then says in plain words what
// works from this network and what calls will use, with a report to copy
// and send to whoever runs the server.
//
// The RTCConfiguration comes from the page (#ice-config), like the call
// page's. When it carries no TURN credential (turn.credentials: on-join),
// the page joins a fresh room over /ws for the credential of welcome, and
// leaves at once.
import { probes, run, verdict, sfuProbe, sfuVerdict, KIND_NAMES, SFU_NAMES, PROBE_BUDGET_MS } from './checkice.js';

/**
 * @typedef {import('./checkice.js').IceServer} IceServer
 * @typedef {import('./checkice.js').Result} Result
 * @typedef {import('./checkice.js').Kind} Kind
 * @typedef {import('./checkice.js').SFUResult} SFUResult
 * @typedef {import('./checkice.js').SFUTransport} SFUTransport
 * @typedef {{ok: boolean, detail: string, openMs: number|null, rttMs: number|null}} SignalingResult
 */

/**
 * $ is document.getElementById.
 * @param {string} id
 * @returns {any}
 */
const $ = (id) => document.getElementById(id);

/** @type {{iceServers: IceServer[]}} */
const pageConfig = JSON.parse($('ice-config').textContent);

/** The media server's ports; null without one. @type {{udp: number, tcp?: number}|null} */
const sfuPorts = JSON.parse($('sfu-check').textContent);

/** @param {number} ms */
const fmt = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/** Labels of a test's state. */
const STATE_LABELS = { running: 'testing…', ok: 'works', fail: 'failed', absent: 'not offered' };

/**
 * row adds a test to the list and returns a function that shows its
 * state and detail.
 * @param {string} name
 * @param {string} url
 * @returns {(state: keyof STATE_LABELS, detail: string) => void}
 */
function row(name, url) {
  const li = document.createElement('li');
  li.className = 'test';
  const head = document.createElement('div');
  head.className = 'test-head';
  const title = document.createElement('span');
  title.className = 'test-name';
  title.textContent = name;
  const badge = document.createElement('span');
  badge.className = 'state';
  head.append(title, badge);
  li.append(head);
  if (url) {
    const code = document.createElement('code');
    code.className = 'test-url';
    code.textContent = url;
    li.append(code);
  }
  const detail = document.createElement('p');
  detail.className = 'test-detail';
  li.append(detail);
  $('tests').append(li);
  return (state, text) => {
    li.dataset.state = state;
    badge.textContent = STATE_LABELS[state];
    detail.textContent = text;
  };
}

/**
 * wsURL is /ws on this page's host.
 * @returns {string}
 */
function wsURL() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/**
 * nextMessage resolves to the next JSON message on ws, or null at close
 * or after ms.
 * @param {WebSocket} ws
 * @param {number} ms
 * @returns {Promise<any>}
 */
function nextMessage(ws, ms) {
  return new Promise((resolve) => {
    const done = (/** @type {any} */ v) => {
      clearTimeout(timer);
      ws.removeEventListener('message', onMessage);
      ws.removeEventListener('close', onClose);
      resolve(v);
    };
    const onMessage = (/** @type {MessageEvent} */ ev) => {
      try { done(JSON.parse(ev.data)); } catch { done(null); }
    };
    const onClose = () => done(null);
    const timer = setTimeout(() => done(null), ms);
    ws.addEventListener('message', onMessage);
    ws.addEventListener('close', onClose);
  });
}

/**
 * signaling opens /ws and measures a ping. It returns the socket, open,
 * for the credential fallback (the caller closes it).
 * @returns {Promise<{res: SignalingResult, ws: WebSocket|null}>}
 */
async function signaling() {
  const t0 = performance.now();
  /** @type {SignalingResult} */
  const res = { ok: false, detail: '', openMs: null, rttMs: null };
  const ws = new WebSocket(wsURL());
  const opened = await new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 10000);
    ws.addEventListener('open', () => { clearTimeout(timer); resolve(true); }, { once: true });
    ws.addEventListener('close', () => { clearTimeout(timer); resolve(false); }, { once: true });
  });
  if (!opened) {
    ws.close();
    res.detail = 'could not open the WebSocket: a proxy or firewall on the way may block WebSockets, and calls need them';
    return { res, ws: null };
  }
  res.openMs = performance.now() - t0;
  const sent = performance.now();
  ws.send(JSON.stringify({ type: 'ping' }));
  const m = await nextMessage(ws, 5000);
  if (!m || m.type !== 'pong') {
    ws.close();
    res.detail = `open in ${fmt(res.openMs)}, but no answer to a ping`;
    return { res, ws: null };
  }
  res.rttMs = performance.now() - sent;
  res.ok = true;
  res.detail = `open in ${fmt(res.openMs)}, round trip ${fmt(res.rttMs)}`;
  return { res, ws };
}

/**
 * hasTURNCredential reports whether servers hold a TURN URL with a
 * credential.
 * @param {IceServer[]} servers
 */
function hasTURNCredential(servers) {
  return servers.some((s) => s.username && [s.urls].flat().some((u) => /^turns?:/i.test(u)));
}

/**
 * credentialsByJoin joins a fresh room over ws for the iceServers of
 * welcome (turn.credentials: on-join), then leaves.
 * @param {WebSocket} ws
 * @returns {Promise<{servers: IceServer[]|null, why: string}>}
 */
async function credentialsByJoin(ws) {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  const room = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
  ws.send(JSON.stringify({ type: 'join', room, name: 'connectivity check' }));
  const m = await nextMessage(ws, 10000);
  if (m && m.type === 'welcome' && Array.isArray(m.iceServers)) {
    ws.send(JSON.stringify({ type: 'leave' }));
    return { servers: m.iceServers, why: '' };
  }
  return { servers: null, why: m && m.type === 'error' ? `${m.code}: ${m.message}` : 'no answer to joining a room' };
}

/**
 * reportText is the copyable report: no credential in it.
 * @param {{title: string, text: string}} v
 * @param {SignalingResult} sig
 * @param {Result[]} results
 * @param {Kind[]} absent
 * @param {SFUResult[]} sfu
 * @param {string} note
 * @param {number} ms
 */
function reportText(v, sig, results, absent, sfu, note, ms) {
  const lines = [
    'icebox connectivity check',
    `date: ${new Date().toISOString()}`,
    `page: ${location.origin}${location.pathname}`,
    `browser: ${navigator.userAgent}`,
    `verdict: ${v.title}. ${v.text}`,
    '',
    `signaling ${wsURL()}: ${sig.ok ? 'works' : 'failed'}: ${sig.detail}`,
  ];
  for (const r of results) {
    let line = `${r.url}: ${STATE_LABELS[r.state]}: ${r.detail}`;
    if (r.relayProtocol) line += ` [relay protocol ${r.relayProtocol}]`;
    if (r.errors.length) line += ` [errors: ${[...new Set(r.errors)].join('; ')}]`;
    lines.push(line);
  }
  for (const k of absent) lines.push(`${KIND_NAMES[k]}: not offered by this server`);
  for (const r of sfu) lines.push(`${SFU_NAMES[r.transport]} (port ${r.port}): ${STATE_LABELS[r.state]}: ${r.detail}`);
  if (note) lines.push(note);
  lines.push(`took ${fmt(ms)}`);
  return lines.join('\n');
}

/** @type {Promise<any>|null} */
let running = null;

/**
 * check runs every test and shows the outcome; one run at a time.
 * @returns {Promise<any>} what the page shows, for tests
 */
function check() {
  if (!running) running = runCheck().finally(() => { running = null; });
  return running;
}

async function runCheck() {
  const t0 = performance.now();
  $('rerun').disabled = true;
  $('copy-report').disabled = true;
  $('tests').replaceChildren();
  $('report').value = '';
  $('verdict').dataset.verdict = 'running';
  $('verdict-title').textContent = 'Checking your network…';
  $('verdict-text').textContent = `This takes up to ${Math.round(PROBE_BUDGET_MS / 1000) + 5} seconds. Every test talks only to this server.`;
  $('status').textContent = 'testing…';

  const showSig = row('Signaling (WebSocket)', wsURL());
  showSig('running', '');
  const { res: sig, ws } = await signaling();
  showSig(sig.ok ? 'ok' : 'fail', sig.detail);

  let servers = pageConfig.iceServers || [];
  let note = '';
  if (!hasTURNCredential(servers)) {
    if (ws) {
      const got = await credentialsByJoin(ws);
      if (got.servers) servers = got.servers;
      else note = `No TURN credential: this server hands them out only on joining a room, and joining failed (${got.why}).`;
    } else {
      note = 'No TURN credential: this server hands them out only on joining a room, over the WebSocket, which failed.';
    }
  }
  if (ws) ws.close(1000, 'check done');

  const list = probes(servers);
  /** @type {Kind[]} */
  const absent = /** @type {Kind[]} */ (['stun', 'udp', 'tcp', 'tls']).filter((k) => !list.some((p) => p.kind === k));
  const relayTests = Promise.all(list.map((p) => {
    const show = row(KIND_NAMES[p.kind], p.url);
    show('running', '');
    return run(p).then((r) => { show(r.state, r.detail); return r; });
  }));
  for (const k of absent) row(KIND_NAMES[k], '')('absent', 'this server lists no such URL');
  /** @type {[SFUTransport, number][]} */
  const sfuList = [];
  if (sfuPorts) {
    sfuList.push(['udp', sfuPorts.udp]);
    if (sfuPorts.tcp) sfuList.push(['tcp', sfuPorts.tcp]);
  }
  const sfuTests = Promise.all(sfuList.map(([transport, port]) => {
    const show = row(SFU_NAMES[transport], `${transport} port ${port}`);
    show('running', '');
    return sfuProbe(transport, port).then((r) => { show(r.state, r.detail); return r; });
  }));
  const [results, sfu] = await Promise.all([relayTests, sfuTests]);

  const v = verdict(results);
  const ms = performance.now() - t0;
  $('verdict').dataset.verdict = v.code;
  $('verdict-title').textContent = v.title;
  $('verdict-text').textContent = [v.text, sfuVerdict(sfu), note].filter(Boolean).join(' ');
  $('report').value = reportText(v, sig, results, absent, sfu, note, ms);
  $('status').textContent = `checked in ${fmt(ms)}`;
  $('rerun').disabled = false;
  $('copy-report').disabled = false;
  return { verdict: v, signaling: sig, results, absent, sfu };
}

/** copyReport puts the report on the clipboard, or selects it to copy. */
async function copyReport() {
  const text = $('report').value;
  try {
    await navigator.clipboard.writeText(text);
    $('copy-status').textContent = 'Copied.';
  } catch {
    $('report').select();
    $('copy-status').textContent = document.execCommand('copy') ? 'Copied.' : 'Selected: press Ctrl+C (⌘C) to copy.';
  }
}

$('rerun').addEventListener('click', () => { check(); });
$('copy-report').addEventListener('click', () => { copyReport(); });

// window.iceboxCheck is the one global, for tests and the console:
// done resolves with the first run's outcome; run() starts another.
/** @type {any} */ (window).iceboxCheck = { done: check(), run: check };
