// What the page watches while in a call: who is speaking (your level from
// WebAudio, everyone else's from the RTP audio level of what arrives,
// RTCRtpReceiver.getSynchronizationSources) and who the active speaker
// is, and how each connection is doing (stats.js), for the tiles' rings
// and badges and the bad-network banner.

import { connectionInfo, badgeText, details, bad } from './stats.js';

/** A level above this is speech (audioLevel, linear, 1 = 0 dBov; ~ -36 dBov). */
export const SPEAKING_LEVEL = 0.016;
/** How long someone counts as speaking after their last loud sample, in ms. */
const HOLD_MS = 1000;
/** How long someone else must be the loudest before taking the stage, in ms. */
const TAKE_STAGE_MS = 1200;
const LEVEL_EVERY_MS = 100;
const STATS_EVERY_MS = 2000;

/**
 * @typedef {import('./mesh.js').Peer} Peer
 * @typedef {import('./stats.js').NetInfo} NetInfo
 */

/**
 * remoteLevel is the audio level of what arrives from p (0 to 1).
 * @param {Peer} p
 * @returns {number}
 */
function remoteLevel(p) {
  if (p.remote.mic === false) return 0;
  for (const r of p.pc.getReceivers()) {
    if (r.track.kind !== 'audio' || !r.getSynchronizationSources) continue;
    const src = r.getSynchronizationSources()[0];
    // A source counts only while its packets keep coming.
    if (src && typeof src.audioLevel === 'number' && performance.timeOrigin + performance.now() - src.timestamp < 1000) return src.audioLevel;
  }
  return 0;
}

export class Monitor {
  /** @type {Map<string, number>} peer id ('' for you) → when last heard loud (performance.now) */
  #heard = new Map();
  /** @type {Map<string, number>} peer id → level with a slow decay (peak hold) */
  #avg = new Map();
  /** @type {{id: string, since: number}} who has been loudest, since when */
  #loudest = { id: '', since: 0 };
  active = '';
  /** @type {Map<string, NetInfo>} peer id → last sample */
  net = new Map();
  #levelTimer = 0;
  #statsTimer = 0;

  /**
   * @param {{
   *   peers: () => Map<string, Peer>,
   *   myLevel: () => number,
   *   onSpeaking: (speaking: Set<string>, active: string) => void,
   *   onNet: (p: Peer, n: NetInfo) => void,
   *   onBanner: (text: string, check: boolean) => void,
   * }} hooks
   */
  constructor(hooks) {
    this.h = hooks;
  }

  start() {
    if (this.#levelTimer) return;
    this.#levelTimer = window.setInterval(() => this.#levels(), LEVEL_EVERY_MS);
    this.#statsTimer = window.setInterval(() => { this.sample(); }, STATS_EVERY_MS);
  }

  stop() {
    clearInterval(this.#levelTimer);
    clearInterval(this.#statsTimer);
    this.#levelTimer = 0;
    this.#statsTimer = 0;
    this.#heard.clear();
    this.#avg.clear();
    this.net.clear();
    this.active = '';
    this.#loudest = { id: '', since: 0 };
  }

  /**
   * levels reports every level now, for the test hook.
   * @returns {Record<string, number>}
   */
  levels() {
    /** @type {Record<string, number>} */
    const out = { '': this.h.myLevel() };
    for (const [id, p] of this.h.peers()) out[id] = remoteLevel(p);
    return out;
  }

  #levels() {
    const now = performance.now();
    const speaking = new Set();
    const peers = this.h.peers();
    for (const [id, level] of Object.entries(this.levels())) {
      if (level > SPEAKING_LEVEL) this.#heard.set(id, now);
      if (now - (this.#heard.get(id) || -1e9) < HOLD_MS) speaking.add(id);
      if (id !== '') this.#avg.set(id, Math.max(level, 0.9 * (this.#avg.get(id) || 0)));
    }
    for (const id of this.#avg.keys()) if (!peers.has(id)) this.#avg.delete(id);
    // The active speaker: whoever has been the loudest of the others
    // speaking for TAKE_STAGE_MS; it stays until someone else is (a
    // pause between words changes nothing).
    let top = '';
    let topLevel = 0;
    for (const [id, a] of this.#avg) if (a > topLevel && speaking.has(id)) { top = id; topLevel = a; }
    if (top && top !== this.#loudest.id) this.#loudest = { id: top, since: now };
    if (top && top !== this.active && now - this.#loudest.since >= TAKE_STAGE_MS) this.active = top;
    if (this.active && !peers.has(this.active)) this.active = '';
    this.h.onSpeaking(speaking, this.active);
  }

  /**
   * sample takes one getStats sample of every connection and updates the
   * badges and the banner.
   * @returns {Promise<void>}
   */
  async sample() {
    const peers = this.h.peers();
    /** @type {string[]} */
    const down = [];
    /** @type {string[]} */
    const poor = [];
    let check = false;
    for (const [id, p] of peers) {
      const s = p.pc.connectionState;
      if (s === 'closed') continue;
      let n;
      try { n = await connectionInfo(p.pc, this.net.get(id) || null); } catch { continue; }
      this.net.set(id, n);
      this.h.onNet(p, n);
      if (s === 'disconnected' || s === 'failed') {
        down.push(p.name);
        if (s === 'failed' || p.restarts >= 2) check = true;
      } else if (s === 'connected' && bad(n)) {
        poor.push(`${p.name} (${n.loss !== null && n.loss > 0.08 ? `${Math.round(n.loss * 100)}% lost` : `${n.rtt} ms`})`);
      }
    }
    for (const id of this.net.keys()) if (!peers.has(id)) this.net.delete(id);
    let text = '';
    if (down.length) text = `Reconnecting to ${down.join(', ')}…`;
    else if (poor.length) text = `Poor connection to ${poor.join(', ')}: video may stall.`;
    this.h.onBanner(text, check);
  }
}

export { badgeText, details };
