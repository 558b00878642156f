// The probes of the connectivity check page (/check), without the page:
// each ICE server URL is tried on its own, from this browser, against
// icebox only.
//
//   STUN      one RTCPeerConnection gathers with that URL alone: a
//             server-reflexive candidate is the address the server saw.
//   TURN      two RTCPeerConnections in this page, both with
//             iceTransportPolicy "relay" and that URL alone, connect to
//             each other: the time to the first relay candidate, the time
//             until a data channel opens through the relay, and the round
//             trip of a few messages over it.
//
// verdict turns the results into words for people.

/**
 * @typedef {{urls: string|string[], username?: string, credential?: string}} IceServer
 * @typedef {'stun'|'udp'|'tcp'|'tls'} Kind
 * @typedef {{url: string, kind: Kind, server: IceServer, port: number}} Probe
 * @typedef {{
 *   url: string, kind: Kind, port: number,
 *   state: 'ok'|'fail',
 *   detail: string,
 *   candidates: number,
 *   firstCandidateMs: number|null,
 *   openMs: number|null,
 *   rttMs: number|null,
 *   address: string,
 *   relayProtocol: string,
 *   errors: string[],
 * }} Result
 */

/** How long one probe may take, in milliseconds. */
export const PROBE_BUDGET_MS = 12000;

/** Round trips measured over an open data channel. */
const PINGS = 5;

/**
 * probes lists one probe per URL of servers, STUN first, then TURN over
 * UDP, TCP and TLS, as an ICE agent would try them.
 * @param {IceServer[]} servers
 * @returns {Probe[]}
 */
export function probes(servers) {
  /** @type {Probe[]} */
  const out = [];
  for (const server of servers || []) {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    for (const url of urls) {
      const p = classify(url);
      if (p && !out.some((o) => o.url === url)) out.push({ ...p, url, server });
    }
  }
  const order = { stun: 0, udp: 1, tcp: 2, tls: 3 };
  return out.sort((a, b) => order[a.kind] - order[b.kind]);
}

/**
 * classify reads an ICE server URL (RFC 7064, RFC 7065): its kind and
 * port, or null for a URL it does not know.
 * @param {string} url
 * @returns {{kind: Kind, port: number}|null}
 */
export function classify(url) {
  const m = /^(stuns?|turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/i.exec(url);
  if (!m) return null;
  const scheme = m[1].toLowerCase();
  const transport = (m[4] || '').toLowerCase();
  const secure = scheme.endsWith('s');
  const port = m[3] ? Number(m[3]) : secure ? 5349 : 3478;
  if (scheme.startsWith('stun')) return { kind: 'stun', port };
  if (secure) return { kind: 'tls', port };
  return { kind: transport === 'tcp' ? 'tcp' : 'udp', port };
}

/**
 * run runs the probe and never throws: a failure is a Result too.
 * @param {Probe} p
 * @returns {Promise<Result>}
 */
export async function run(p) {
  /** @type {Result} */
  const r = { url: p.url, kind: p.kind, port: p.port, state: 'fail', detail: '', candidates: 0,
    firstCandidateMs: null, openMs: null, rttMs: null, address: '', relayProtocol: '', errors: [] };
  try {
    if (p.kind === 'stun') await stun(p, r);
    else await relay(p, r);
  } catch (e) {
    r.state = 'fail';
    r.detail = `could not test: ${e instanceof Error ? e.message : String(e)}`;
  }
  return r;
}

/**
 * timeout resolves to 'timeout' after ms.
 * @param {number} ms
 * @returns {Promise<'timeout'>}
 */
function timeout(ms) {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms));
}

/** @param {number} ms */
const fmt = (ms) => (ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`);

/**
 * stun gathers with one STUN URL and looks for a server-reflexive
 * candidate.
 * @param {Probe} p
 * @param {Result} r
 */
async function stun(p, r) {
  const pc = new RTCPeerConnection({ iceServers: [{ urls: p.url }] });
  try {
    const t0 = performance.now();
    const done = new Promise((resolve) => {
      pc.onicecandidate = (e) => {
        if (!e.candidate) { resolve('complete'); return; }
        if (e.candidate.type !== 'srflx') return;
        r.candidates++;
        if (r.firstCandidateMs === null) {
          r.firstCandidateMs = performance.now() - t0;
          r.address = e.candidate.address || '';
        }
      };
    });
    pc.onicecandidateerror = (e) => { r.errors.push(`${e.errorCode} ${e.errorText}`.trim()); };
    pc.createDataChannel('check');
    await pc.setLocalDescription();
    const how = await Promise.race([done, timeout(PROBE_BUDGET_MS)]);
    if (r.firstCandidateMs !== null) {
      r.state = 'ok';
      r.detail = `the server sees you at ${r.address || 'a hidden address'} (answer in ${fmt(r.firstCandidateMs)})`;
    } else if (how === 'timeout') {
      r.state = 'fail';
      r.detail = `no answer in ${fmt(PROBE_BUDGET_MS)}`;
    } else if (r.errors.length > 0) {
      r.state = 'fail';
      r.detail = `no answer (${r.errors[0]})`;
    } else {
      // Gathering ended at once without an error and without a reflexive
      // candidate: the server answered with an address this browser
      // already has, which it does not repeat (no NAT, or loopback). A
      // server that does not answer keeps gathering going for seconds.
      r.state = 'ok';
      r.detail = 'the server answered: it sees this device\'s own address (no NAT on the way)';
    }
  } finally {
    pc.close();
  }
}

/**
 * relay connects two peer connections through one TURN URL and measures
 * the way.
 * @param {Probe} p
 * @param {Result} r
 */
async function relay(p, r) {
  /** @type {RTCConfiguration} */
  const cfg = {
    iceServers: [{ urls: p.url, username: p.server.username, credential: p.server.credential }],
    iceTransportPolicy: 'relay',
  };
  const a = new RTCPeerConnection(cfg);
  const b = new RTCPeerConnection(cfg);
  const deadline = timeout(PROBE_BUDGET_MS);
  try {
    const t0 = performance.now();
    a.onicecandidate = (e) => {
      if (!e.candidate) return;
      r.candidates++;
      if (r.firstCandidateMs === null && e.candidate.type === 'relay') {
        r.firstCandidateMs = performance.now() - t0;
        r.address = `${e.candidate.address}:${e.candidate.port}`;
      }
      b.addIceCandidate(e.candidate).catch(() => {});
    };
    b.onicecandidate = (e) => { if (e.candidate) a.addIceCandidate(e.candidate).catch(() => {}); };
    a.onicecandidateerror = (e) => { r.errors.push(`${e.errorCode} ${e.errorText}`.trim()); };
    b.ondatachannel = (e) => { e.channel.onmessage = (m) => e.channel.send(m.data); };
    const dc = a.createDataChannel('check');
    const opened = new Promise((resolve) => { dc.onopen = () => resolve('open'); });
    await a.setLocalDescription();
    await b.setRemoteDescription(/** @type {RTCSessionDescription} */ (a.localDescription));
    await b.setLocalDescription();
    await a.setRemoteDescription(/** @type {RTCSessionDescription} */ (b.localDescription));
    if (await Promise.race([opened, deadline]) === 'timeout') {
      r.detail = r.firstCandidateMs === null
        ? `no relay candidate in ${fmt(PROBE_BUDGET_MS)}${r.errors.length ? ` (${r.errors[0]})` : ''}`
        : `relay candidate in ${fmt(r.firstCandidateMs)}, but no data channel through it in ${fmt(PROBE_BUDGET_MS)}`;
      return;
    }
    r.openMs = performance.now() - t0;
    r.rttMs = await roundTrip(dc, deadline);
    if (r.rttMs === null) {
      r.detail = `data channel open in ${fmt(r.openMs)}, but nothing came back through it`;
      return;
    }
    r.relayProtocol = await relayProtocol(a);
    r.state = 'ok';
    r.detail = `relay candidate in ${fmt(/** @type {number} */ (r.firstCandidateMs ?? r.openMs))} ` +
      `(${r.candidates} gathered), data channel open in ${fmt(r.openMs)}, round trip ${fmt(r.rttMs)}`;
  } finally {
    a.close();
    b.close();
  }
}

/**
 * roundTrip sends PINGS messages over dc, which echoes them, each once
 * the last came back, and returns the median round trip in milliseconds,
 * or null when none came back before deadline.
 * @param {RTCDataChannel} dc
 * @param {Promise<'timeout'>} deadline
 * @returns {Promise<number|null>}
 */
async function roundTrip(dc, deadline) {
  /** @type {number[]} */
  const rtts = [];
  for (let i = 0; i < PINGS; i++) {
    const sent = performance.now();
    const back = new Promise((resolve) => { dc.onmessage = (m) => { if (m.data === `ping ${i}`) resolve('back'); }; });
    dc.send(`ping ${i}`);
    if (await Promise.race([back, deadline]) === 'timeout') break;
    rtts.push(performance.now() - sent);
  }
  if (rtts.length === 0) return null;
  rtts.sort((x, y) => x - y);
  return rtts[Math.floor(rtts.length / 2)];
}

/**
 * @typedef {'udp'|'tcp'} SFUTransport
 * @typedef {{transport: SFUTransport, port: number, state: 'ok'|'fail', detail: string,
 *   openMs: number|null, rttMs: number|null}} SFUResult
 */

/** Names of the SFU tests, for people. */
export const SFU_NAMES = {
  udp: 'Media server over UDP',
  tcp: 'Media server over TCP',
};

/**
 * sfuProbe tests whether this browser reaches icebox's media server (the
 * SFU, which carries group calls) over transport: a peer connection with
 * one data channel offers to POST /check/sfu, keeps only the answer's
 * candidates of that transport, and measures the connection and the
 * round trip of the server's echo. It never throws: a failure is a
 * result too.
 * @param {SFUTransport} transport
 * @param {number} port the server's port for it, for the words
 * @returns {Promise<SFUResult>}
 */
export async function sfuProbe(transport, port) {
  /** @type {SFUResult} */
  const r = { transport, port, state: 'fail', detail: '', openMs: null, rttMs: null };
  const pc = new RTCPeerConnection({ iceServers: [] });
  const deadline = timeout(PROBE_BUDGET_MS);
  try {
    const t0 = performance.now();
    const dc = pc.createDataChannel('probe');
    const opened = new Promise((resolve) => { dc.onopen = () => resolve('open'); });
    const gathered = new Promise((resolve) => { pc.onicecandidate = (e) => { if (!e.candidate) resolve('complete'); }; });
    await pc.setLocalDescription();
    await Promise.race([gathered, timeout(3000)]);
    const res = await fetch('/check/sfu', { method: 'POST', headers: { 'Content-Type': 'application/sdp' },
      body: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp });
    const body = await res.text();
    if (res.status !== 201) {
      r.detail = `the server did not take the test (${res.status}: ${body.trim()})`;
      return r;
    }
    const lines = body.split('\r\n');
    const ours = (/** @type {string} */ l) => !l.startsWith('a=candidate:') || (l.split(' ')[2] || '').toLowerCase() === transport;
    if (!lines.some((l) => l.startsWith('a=candidate:') && ours(l))) {
      r.detail = `the server offers no ${transport.toUpperCase()} address for media`;
      return r;
    }
    await pc.setRemoteDescription({ type: 'answer', sdp: lines.filter(ours).join('\r\n') });
    if (await Promise.race([opened, deadline]) === 'timeout') {
      r.detail = `no connection in ${fmt(PROBE_BUDGET_MS)}: ${transport.toUpperCase()} to port ${port} does not get through`;
      return r;
    }
    r.openMs = performance.now() - t0;
    r.rttMs = await roundTrip(dc, deadline);
    if (r.rttMs === null) {
      r.detail = `connected in ${fmt(r.openMs)}, but nothing came back`;
      return r;
    }
    r.state = 'ok';
    r.detail = `connected in ${fmt(r.openMs)}, round trip ${fmt(r.rttMs)}`;
  } catch (e) {
    r.detail = `could not test: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    pc.close();
  }
  return r;
}

/**
 * sfuVerdict is a sentence on group calls through the media server, from
 * its results (none: no media server).
 * @param {SFUResult[]} results
 * @returns {string}
 */
export function sfuVerdict(results) {
  if (results.length === 0) return '';
  const works = (/** @type {SFUTransport} */ t) => results.find((r) => r.transport === t && r.state === 'ok');
  const udp = works('udp');
  const tcp = works('tcp');
  if (udp) return 'Group calls through the media server work over UDP.';
  if (tcp) return `Group calls through the media server work over TCP on port ${tcp.port}, with a little more delay.`;
  return 'Group calls through the media server will not connect from here (it carries rooms of five people or more): send the report to whoever runs this server.';
}

/**
 * relayProtocol is how pc reaches its TURN server on the selected pair
 * ('udp', 'tcp' or 'tls'), or '' when the stats do not say.
 * @param {RTCPeerConnection} pc
 * @returns {Promise<string>}
 */
async function relayProtocol(pc) {
  const stats = await pc.getStats();
  let proto = '';
  stats.forEach((s) => {
    if (s.type !== 'transport' || !s.selectedCandidatePairId) return;
    const pair = stats.get(s.selectedCandidatePairId);
    const local = pair && stats.get(pair.localCandidateId);
    if (local && local.relayProtocol) proto = local.relayProtocol;
  });
  return proto;
}

/** Names of the kinds, for people. */
export const KIND_NAMES = {
  stun: 'STUN',
  udp: 'TURN over UDP',
  tcp: 'TURN over TCP',
  tls: 'TURN over TLS',
};

/**
 * @typedef {{code: 'udp'|'tcp'|'tls'|'none'|'no-relay', title: string, text: string}} Verdict
 */

/**
 * verdict says in plain words what works from this network and what
 * calls will use. A kind the server lists no URL of is "not offered".
 * @param {Result[]} results
 * @returns {Verdict}
 */
export function verdict(results) {
  /** @param {Kind} k */
  const works = (k) => results.find((r) => r.kind === k && r.state === 'ok');
  /** @param {Kind} k */
  const offered = (k) => results.some((r) => r.kind === k);
  const udp = works('udp');
  const tcp = works('tcp');
  const tls = works('tls');
  if (!offered('udp') && !offered('tcp') && !offered('tls')) {
    return { code: 'no-relay', title: 'Only part of the check could run',
      text: 'This server gave this page no relay (TURN) to test, so only STUN was tried. Calls between two networks that block each other will fail.' };
  }
  if (udp) {
    return { code: 'udp', title: 'Calls work on this network',
      text: 'Your network lets calls through. Calls connect directly when both sides allow it, and otherwise through the relay over UDP, the fastest way.' };
  }
  const blocked = offered('udp') ? 'UDP is blocked on your network' : 'This server offers no relay over UDP';
  if (tcp) {
    return { code: 'tcp', title: 'Calls work, with a little more delay',
      text: `${blocked}; calls will use TURN over TCP on port ${tcp.port} (the relay over TCP) and still connect.` };
  }
  if (tls) {
    return { code: 'tls', title: 'Calls work, with a little more delay',
      text: `${blocked}; calls will use TURN over TLS on ${tls.port} (the relay over TLS) and still connect.` };
  }
  const missing = offered('tls') ? '' : ' This server offers no TURN over TLS on 443, which gets through most strict networks; its operator can turn it on.';
  return { code: 'none', title: 'Calls to other networks will fail from here',
    text: `Neither UDP nor TCP nor TLS reaches this server's relay from here, so calls to anyone outside your network will fail. Try another network, or send the report below to whoever runs this server.${missing}` };
}
