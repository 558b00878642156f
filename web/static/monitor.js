// What the page watches while in a call: who is speaking (everyone's
// audio energy over each interval from getStats: what arrives from each
// peer, and what your microphone gives; WebAudio before anything is
// sent) and who the active speaker is, and how each connection is doing (stats.js), for the tiles' rings
// and badges and the bad-network banner.

import { connectionInfo, badgeText, details, bad } from './stats.js';

/** A level above this is speech (audioLevel, linear, 1 = 0 dBov; ~ -36 dBov). */
export const SPEAKING_LEVEL = 0.016;
/** How long someone counts as speaking after their last loud sample, in ms. */
const HOLD_MS = 1200;
/** How long someone else must be the loudest before taking the stage, in ms. */
const TAKE_STAGE_MS = 1200;
const LEVEL_EVERY_MS = 200;
const STATS_EVERY_MS = 2000;

/**
 * @typedef {import('./mesh.js').Peer} Peer
 * @typedef {import('./stats.js').NetInfo} NetInfo
 */

/**
 * energyLevel is the RMS audio level over the time since the last sample
 * (webrtc-stats totalAudioEnergy and totalSamplesDuration): unlike the
 * level of the last packet, it does not miss a short sound between two
 * samples.
 * @param {RTCStatsReport} stats
 * @param {string} type 'inbound-rtp' (what arrives) or 'media-source' (what you send)
 * @param {{e: number, d: number}|undefined} prev totals at the last sample
 * @returns {{level: number, e: number, d: number}|null}
 */
function energyLevel(stats, type, prev) {
  /** @type {any} */
  let s = null;
  stats.forEach((x) => { if (x.type === type && x.kind === 'audio' && typeof x.totalAudioEnergy === 'number') s = x; });
  if (!s) return null;
  const e = s.totalAudioEnergy;
  const d = s.totalSamplesDuration || 0;
  const de = prev ? e - prev.e : 0;
  const dd = prev ? d - prev.d : 0;
  return { level: dd > 0 && de > 0 ? Math.min(1, Math.sqrt(de / dd)) : 0, e, d };
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
  /** @type {{pc: RTCPeerConnection, info: NetInfo}|null} the SFU connection's last sample */
  #sfuLast = null;
  #levelTimer = 0;
  #statsTimer = 0;
  /** @type {Map<string, {e: number, d: number}>} audio energy totals at the last sample */
  #energy = new Map();
  /** @type {Record<string, number>} the levels of the last sample */
  #last = {};
  #busy = false;

  /**
   * @param {{
   *   peers: () => Map<string, Peer>,
   *   myLevel: () => number,
   *   onSpeaking: (speaking: Set<string>, active: string) => void,
   *   onNet: (p: Peer, n: NetInfo) => void,
   *   sfu?: () => RTCPeerConnection|null,
   *   onSFUNet?: (n: NetInfo) => void,
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
    this.#energy.clear();
    this.#last = {};
    this.net.clear();
    this.#sfuLast = null;
    this.active = '';
    this.#loudest = { id: '', since: 0 };
  }

  /**
   * levels reports the levels of the last sample ('' is you), for the
   * test hook.
   * @returns {Record<string, number>}
   */
  levels() { return { ...this.#last }; }

  /**
   * #sampleLevels measures everyone's audio level over the last interval.
   * @returns {Promise<Record<string, number>>}
   */
  async #sampleLevels() {
    /** @type {Record<string, number>} */
    const out = { '': 0 };
    let mine = null;
    for (const [id, p] of this.h.peers()) {
      if (p.pc.connectionState === 'closed') continue;
      let stats;
      try { stats = await p.pc.getStats(); } catch { continue; }
      const r = energyLevel(stats, 'inbound-rtp', this.#energy.get(id));
      if (r) this.#energy.set(id, { e: r.e, d: r.d });
      out[id] = r && p.remote.mic !== false ? r.level : 0;
      if (!mine) {
        const m = energyLevel(stats, 'media-source', this.#energy.get(''));
        if (m) {
          this.#energy.set('', { e: m.e, d: m.d });
          mine = m;
        }
      }
    }
    // Before any connection sends, your level comes from WebAudio.
    out[''] = mine ? mine.level : this.h.myLevel();
    return out;
  }

  async #levels() {
    if (this.#busy) return;
    this.#busy = true;
    try {
      this.#last = await this.#sampleLevels();
    } finally {
      this.#busy = false;
    }
    this.#decide();
  }

  #decide() {
    const now = performance.now();
    const speaking = new Set();
    const peers = this.h.peers();
    for (const [id, level] of Object.entries(this.#last)) {
      if (level > SPEAKING_LEVEL) this.#heard.set(id, now);
      if (now - (this.#heard.get(id) || -1e9) < HOLD_MS) speaking.add(id);
      if (id !== '') this.#avg.set(id, Math.max(level, 0.8 * (this.#avg.get(id) || 0)));
    }
    for (const id of this.#avg.keys()) if (!peers.has(id)) this.#avg.delete(id);
    for (const id of this.#energy.keys()) if (id !== '' && !peers.has(id)) this.#energy.delete(id);
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
    const sfu = this.h.sfu ? this.h.sfu() : null;
    // A closed connection is not kept here.
    if (!sfu || sfu.connectionState === 'closed') this.#sfuLast = null;
    else if (this.h.onSFUNet) {
      try {
        const info = await connectionInfo(sfu, this.#sfuLast && this.#sfuLast.pc === sfu ? this.#sfuLast.info : null);
        this.#sfuLast = { pc: sfu, info };
        this.h.onSFUNet(info);
      } catch { /* closed meanwhile */ }
    }
    const who = (/** @type {string[]} */ l) => (l.length > 2 ? `${l.length} people` : l.join(' and '));
    let text = '';
    if (down.length) text = `Reconnecting to ${who(down)}…`;
    else if (poor.length) text = `Poor connection to ${who(poor)}: video may stall.`;
    this.h.onBanner(text, check);
  }
}

export { badgeText, details };
