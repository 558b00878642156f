// A mesh call: one RTCPeerConnection per remote peer, negotiated with the
// perfect negotiation pattern (W3C WebRTC §10.7): the politer side of a
// pair (the smaller peer id) yields when both send an offer at once.
//
// Chat lines written before the data channel opens wait in an outbox and
// go out when it opens; onChatSent reports them, and close returns the
// ids of those that never went.
//
// A second negotiated channel (id 1, label "state") carries what the
// other side should show on our tile and who we are on signaling:
// {"id": "<our peer id>", "mic": bool, "cam": bool, "screen": "<stream
// id>"|null, "shown": "sfu"|"mesh" (during a move between mesh and SFU,
// the way we present the other side's video now)}, sent when it opens and
// on every change. The id lets a pair
// whose signaling ids changed (the server restarted) keep its connection:
// the channel is end-to-end, so a claim made on it comes from the peer.
//
// Recovery: ICE candidates that arrive before the remote description wait
// for it; a connection that stays disconnected for DISCONNECTED_MS, or
// fails, restarts ICE (restartIce, with the configuration's current
// servers); an offer that could not be sent while signaling was away is
// sent again by resync.

import { encodingFor } from './adapt.js';

/** How long a connection may stay disconnected before ICE restarts, in ms. */
export const DISCONNECTED_MS = 3000;
/** How long the polite side of a pair waits for the other's ICE restart offer before making its own, in ms. */
export const POLITE_RESTART_MS = 1500;

/**
 * @typedef {{mic: boolean, cam: boolean, id?: string, screen?: string|null, shown?: 'sfu'|'mesh'}} Meta
 *   shown: while the room moves between mesh and SFU, the way the sender
 *   now presents the receiver's video (session.js)
 * @typedef {{
 *   id: string, name: string, myId: string, rtcConfig: RTCConfiguration,
 *   localStream: MediaStream|null, screen?: MediaStream|null,
 *   send: (data: object) => boolean|null|undefined,
 *   onTrack: (p: Peer, stream: MediaStream, track: MediaStreamTrack) => void,
 *   onChat: (p: Peer, text: string) => void,
 *   onState: (p: Peer, state: string) => void,
 *   onChatSent?: (p: Peer, lines: number[]) => void,
 *   onMeta?: (p: Peer, m: Meta) => void,
 *   meta: () => Meta,
 *   peers?: () => number,
 *   online?: () => boolean,
 * }} PeerOptions
 *   online reports whether signaling is up (default: always): an ICE
 *   restart waits for it.
 */

/**
 * setupOf is the first a=setup value of an SDP ('' if none).
 * @param {string|undefined} sdp
 * @returns {string}
 */
function setupOf(sdp) {
  const m = /^a=setup:(\w+)\r?$/m.exec(sdp || '');
  return m ? m[1] : '';
}

/**
 * keepSetup rewrites an answer's a=setup lines to role (active or
 * passive) when they say the other one: an answer may not change the
 * DTLS role of an association that exists (RFC 8842 §5.5), yet Firefox
 * (ESR 153) answers an ICE restart offer with a=setup:active even where
 * it is the DTLS server, and Chromium then refuses that answer ("Failed
 * to set SSL role for the transport") and every later description on the
 * connection. An ICE restart does not renegotiate the DTLS association,
 * so each side keeps the role its descriptions in effect give it. With
 * role '' the SDP is returned as it is.
 * @param {string} sdp
 * @param {string} role
 * @returns {string}
 */
export function keepSetup(sdp, role) {
  if (role !== 'active' && role !== 'passive') return sdp;
  return sdp.replace(/^a=setup:(active|passive)(\r?)$/gm, (line, _, cr) => `a=setup:${role}${cr}`);
}

export class Peer {
  /** @param {PeerOptions} o */
  constructor(o) {
    this.id = o.id;
    this.name = o.name;
    this.polite = o.myId < o.id;
    this.makingOffer = false;
    this.ignoreOffer = false;
    /** @type {Promise<any>} */
    this.queue = Promise.resolve();
    this.send = o.send;
    this.localStream = o.localStream;
    /** @type {MediaStream|null} your screen share, sent to this peer */
    this.screen = o.screen || null;
    /** @type {RTCRtpSender|null} */
    this.screenSender = null;
    this.tracksAdded = false;
    /** @type {RTCIceCandidateInit[]} candidates waiting for the remote description */
    this.early = [];
    /** whether an offer could not be sent (signaling away): resync sends it */
    this.unsent = false;
    /** ICE restarts so far */
    this.restarts = 0;
    /** when ICE last restarted (performance.now() ms; 0: never) */
    this.restartedAt = 0;
    /** whether an ICE restart waits for signaling (resync makes it) */
    this.restartWanted = false;
    this.online = o.online || (() => true);
    /** the polite side's own ICE restart, if no offer comes first (setTimeout handle) */
    this.politeTimer = 0;
    /** session descriptions (offers and answers) sent and received so far: each round of negotiation adds two */
    this.descriptions = 0;
    /** when this connection was made (performance.now) */
    this.createdAt = performance.now();
    /** whether this connection was ever connected */
    this.everConnected = false;
    /** whether its selected candidate pair went through a relay, as last measured (stats.js) */
    this.relayed = false;
    /** the last stalled-video recovery step taken (health.js), and when: 0 none, 1 re-attached, 2 ICE restarted */
    this.recovery = { step: 0, at: 0 };
    /** packets received when the stalled-video recovery last looked (getStats, inbound) */
    this.stallPackets = 0;
    /** when the sample stallPackets came from was taken (performance.now) */
    this.stallSampleAt = 0;
    this.disconnectTimer = 0;
    /** @type {Meta} what the other side last said of itself */
    this.remote = { mic: true, cam: true, screen: null };
    /** @type {Map<string, MediaStream>} streams received, by id */
    this.streams = new Map();
    /** @type {Set<string>} ids of every screen share this peer sent (an old one is not a camera) */
    this.screens = new Set();
    // Recovery across a fresh join (session.js): a kept connection is an
    // orphan until the peer says its new id (claim) and the server names it.
    /** whether this connection was kept across our fresh join and awaits its peer's new id */
    this.orphan = false;
    /** the new id the peer claimed over the connection, not yet named by the server */
    this.claim = '';
    /** closes a kept connection whose peer never says its new id (setTimeout handle) */
    this.orphanTimer = 0;
    /** takes a kept connection by name once the peer had time to say its id (setTimeout handle; 0: none) */
    this.adoptTimer = 0;
    /** whether setParameters lowers video as the room grows */
    this.adapt = true;
    /** @type {''|'sfu'|'mesh'} during a move between mesh and SFU, the way we now present this peer's video (told to it with our meta) */
    this.shownVia = '';
    this.peerCount = o.peers || (() => 1);
    /** removes every listener this Peer added, on close (a closed connection's channels
     * may stay alive a while in the browser, and their listeners would keep this Peer) */
    this.listening = new AbortController();
    const on = { signal: this.listening.signal };
    this.pc = new RTCPeerConnection(o.rtcConfig);
    // A negotiated channel (same id on both sides) needs no extra round.
    this.chat = this.pc.createDataChannel('chat', { negotiated: true, id: 0 });
    this.chat.addEventListener('message', (ev) => o.onChat(this, ev.data), on);
    /** @type {{id: number, text: string}[]} */
    this.outbox = [];
    this.meta = this.pc.createDataChannel('state', { negotiated: true, id: 1 });
    this.metaNow = o.meta;
    this.meta.addEventListener('open', () => this.sendMeta(this.metaNow()), on);
    this.meta.addEventListener('message', (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (!m || typeof m !== 'object') return;
      this.remote = {
        mic: m.mic !== false, cam: m.cam !== false,
        id: typeof m.id === 'string' && m.id.length <= 64 ? m.id : undefined,
        screen: typeof m.screen === 'string' && m.screen.length <= 128 ? m.screen : null,
        shown: m.shown === 'sfu' || m.shown === 'mesh' ? m.shown : undefined,
      };
      if (o.onMeta) o.onMeta(this, this.remote);
    }, on);
    this.chat.addEventListener('open', () => {
      /** @type {number[]} */
      const sent = [];
      for (const m of this.outbox.splice(0)) {
        this.chat.send(m.text);
        sent.push(m.id);
      }
      if (sent.length && o.onChatSent) o.onChatSent(this, sent);
    }, on);
    this.pc.addEventListener('track', (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      this.streams.set(stream.id, stream);
      o.onTrack(this, stream, ev.track);
    }, on);
    this.pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate) this.send({ candidate: candidate.toJSON() });
    }, on);
    this.pc.addEventListener('connectionstatechange', () => {
      const s = this.pc.connectionState;
      if (s === 'connected') this.everConnected = true;
      clearTimeout(this.disconnectTimer);
      if (s === 'disconnected') {
        // Often back by itself (a lost packet train); if not, restart.
        this.disconnectTimer = setTimeout(() => this.restart('disconnected'), DISCONNECTED_MS);
      } else if (s === 'failed') {
        this.restart('failed');
      }
      o.onState(this, s);
    }, on);
    this.pc.addEventListener('signalingstatechange', () => {
      if (this.pc.signalingState === 'stable') this.applyBudget();
    }, on);
    this.pc.addEventListener('negotiationneeded', () => this.#offer(), on);
  }

  // start makes this side the offerer: it adds its media at once.
  start() { this.#addMedia(); }

  #addMedia() {
    if (this.tracksAdded) return;
    this.tracksAdded = true;
    const tracks = this.localStream ? this.localStream.getTracks() : [];
    for (const kind of ['audio', 'video']) {
      const track = tracks.find((t) => t.kind === kind);
      if (track && this.localStream) {
        this.pc.addTrack(track, this.localStream);
      } else if (!this.pc.getTransceivers().some((t) => t.receiver.track.kind === kind)) {
        this.pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
    if (this.screen) this.addScreen(this.screen);
  }

  async #offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.#sendDescription();
    } catch (err) {
      console.warn('offer to', this.id, err);
    } finally {
      this.makingOffer = false;
    }
  }

  #sendDescription() {
    const d = this.pc.localDescription;
    if (!d) return;
    this.descriptions++;
    let description = d.toJSON();
    if (description.type === 'offer' && typeof description.sdp === 'string') {
      // A later offer names the DTLS role this side holds, not actpass: the
      // association stays (RFC 8842 §5.5). Firefox answers actpass with
      // active even where it is the DTLS server and then starts a new
      // handshake as a client, which fails against a side that is the
      // client already.
      const mine = { active: 'passive', passive: 'active' }[this.#remoteSetup()];
      if (mine) description = { type: 'offer', sdp: description.sdp.replace(/^a=setup:actpass(\r?)$/gm, `a=setup:${mine}$1`) };
    }
    // Which of our streams is a screen share, known before its track arrives.
    this.unsent = !this.send({ description, screen: this.screen ? this.screen.id : null });
  }

  /**
   * receive handles one signal payload; payloads are handled in order.
   * @param {{description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit, screen?: string|null}} data
   * @returns {Promise<void>}
   */
  receive(data) {
    this.queue = this.queue.then(() => this.#handle(data)).catch((err) => console.warn('signal from', this.id, err));
    return this.queue;
  }

  /** @param {{description?: RTCSessionDescriptionInit, candidate?: RTCIceCandidateInit, screen?: string|null}} data */
  async #handle({ description, candidate, screen }) {
    if (description && typeof description === 'object') {
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      if (screen !== undefined) this.remote.screen = typeof screen === 'string' && screen.length <= 128 ? screen : null;
      if (description.type === 'answer' && typeof description.sdp === 'string') {
        const sdp = keepSetup(description.sdp, this.#remoteSetup());
        if (sdp !== description.sdp) console.info('answer from', this.id, 'changed its DTLS role: kept', this.#remoteSetup());
        description = { type: 'answer', sdp };
      }
      await this.pc.setRemoteDescription(description);
      this.descriptions++;
      // Candidates that came first (a client that trickles before its
      // offer, or reordering) apply now.
      for (const c of this.early.splice(0)) await this.#addCandidate(c);
      if (description.type === 'offer') {
        // Added after the remote offer, our tracks reuse its transceivers,
        // so the answer already sends media: no second round.
        this.#addMedia();
        await this.pc.setLocalDescription();
        this.#sendDescription();
      }
    } else if (candidate && typeof candidate === 'object') {
      if (!this.pc.remoteDescription) {
        if (this.early.length < 200) this.early.push(candidate);
        return;
      }
      await this.#addCandidate(candidate);
    }
  }

  /** @param {RTCIceCandidateInit} c */
  async #addCandidate(c) {
    try {
      await this.pc.addIceCandidate(c);
    } catch (err) {
      if (!this.ignoreOffer) console.warn('candidate from', this.id, err);
    }
  }

  /**
   * #remoteSetup is the DTLS role the other side holds now ('active': it
   * is the DTLS client, 'passive': the server; '' before any), from the
   * descriptions in effect (RFC 8842 §5).
   * @returns {string}
   */
  #remoteSetup() {
    const r = this.pc.currentRemoteDescription;
    const l = this.pc.currentLocalDescription;
    if (r && r.type === 'answer') return setupOf(r.sdp);
    if (l && l.type === 'answer') return { active: 'passive', passive: 'active' }[setupOf(l.sdp)] || '';
    return '';
  }

  /**
   * restart restarts ICE (new ufrag and password, gathering again with the
   * configuration's servers). The impolite side of the pair offers; the
   * polite one restarts too, so whichever notices first recovers.
   * @param {string} why
   */
  restart(why) {
    if (this.pc.connectionState === 'closed') return;
    if (!this.online()) {
      // Its offer could go nowhere, and it would gather with the
      // credentials of a server that may be gone: resync restarts once
      // signaling is back, with the welcome's fresh ones.
      this.restartWanted = true;
      return;
    }
    this.restartWanted = false;
    this.restarts++;
    this.restartedAt = performance.now();
    console.info('ICE restart to', this.id, why);
    this.queue = this.queue.then(() => this.#restartIce()).catch((err) => console.warn('ICE restart to', this.id, err));
  }

  async #restartIce() {
    if (this.pc.signalingState === 'have-local-offer') {
      // An offer still unanswered may have been lost (sent to an id the
      // server no longer knew), and its candidates were gathered with the
      // configuration of then: take it back and offer afresh.
      await this.pc.setLocalDescription({ type: 'rollback' });
    }
    // Fires negotiationneeded: a new offer with new ICE credentials,
    // gathered with the configuration's servers of now.
    this.pc.restartIce();
  }

  /**
   * resync runs after signaling is back: an offer that could not be sent
   * is sent again, and a connection still down restarts ICE; with restart,
   * ICE restarts whatever its state (its relay is known to be gone).
   * @param {boolean} [restart]
   */
  resync(restart = false) {
    if (this.pc.connectionState === 'closed') return;
    if (restart || this.restartWanted) {
      if (!this.polite) {
        this.restart('resync');
        return;
      }
      // Both sides resync at once after a server restart: the impolite
      // one offers the ICE restart and the polite one answers it with
      // fresh credentials of its own. The polite side restarts itself
      // only if no offer came meanwhile; two crossing restart offers
      // make Chromium roll one back, after which its remote video can
      // stay frozen while frames are still decoded.
      const seen = this.descriptions;
      this.restartWanted = true;
      clearTimeout(this.politeTimer);
      this.politeTimer = setTimeout(() => {
        if (this.restartWanted && this.descriptions === seen) this.restart('resync');
        else this.restartWanted = false;
      }, POLITE_RESTART_MS);
      return;
    }
    if (this.pc.signalingState === 'have-local-offer') {
      this.#sendDescription();
      return;
    }
    if (this.unsent) this.#sendDescription();
    const s = this.pc.connectionState;
    if (s === 'disconnected' || s === 'failed') this.restart('resync');
  }

  /** @param {RTCIceServer[]} iceServers */
  setICEServers(iceServers) {
    const cfg = this.pc.getConfiguration();
    this.pc.setConfiguration({ ...cfg, iceServers });
  }

  /**
   * sendChat sends a chat line now, or queues it until the channel opens.
   * @param {number} id the line's id, reported by onChatSent once it went
   * @param {string} text
   * @returns {boolean} whether it went now
   */
  sendChat(id, text) {
    if (this.chat.readyState === 'open') {
      this.chat.send(text);
      return true;
    }
    this.outbox.push({ id, text });
    return false;
  }

  /**
   * sendMeta tells the other side who we are and whether our microphone
   * and camera are on.
   * @param {Meta} m
   */
  sendMeta(m) {
    if (this.meta.readyState === 'open') this.meta.send(JSON.stringify(this.shownVia ? { ...m, shown: this.shownVia } : m));
  }

  /**
   * setLocalStream starts sending stream's tracks on a connection that
   * had none of that kind (media allowed after joining receive-only).
   * @param {MediaStream} stream
   */
  setLocalStream(stream) {
    this.localStream = stream;
    if (!this.tracksAdded) return; // added on start or on the first offer
    for (const track of stream.getTracks()) {
      const tr = this.pc.getTransceivers().find((t) => t.currentDirection !== 'stopped' && t.receiver.track.kind === track.kind && t.sender !== this.screenSender);
      if (!tr) {
        this.pc.addTrack(track, stream);
        continue;
      }
      // A track that ended (its device unplugged) is replaced too.
      if (tr.sender.track && tr.sender.track.readyState === 'live') continue;
      tr.sender.replaceTrack(track).catch((err) => console.warn('replaceTrack', err));
      if (tr.sender.setStreams) tr.sender.setStreams(stream);
      if (tr.direction === 'recvonly' || tr.direction === 'inactive') tr.direction = 'sendrecv';
    }
  }

  /**
   * replaceTrack sends track instead of the camera or microphone track
   * of its kind (another device picked), without renegotiation.
   * @param {MediaStreamTrack} track
   */
  replaceTrack(track) {
    const s = this.pc.getSenders().find((x) => x !== this.screenSender && x.track && x.track.kind === track.kind);
    if (s) s.replaceTrack(track).catch((err) => console.warn('replaceTrack', err));
  }

  /**
   * addScreen sends a screen share as a second video track.
   * @param {MediaStream} stream
   */
  addScreen(stream) {
    this.screen = stream;
    if (!this.tracksAdded || this.screenSender) return;
    const track = stream.getVideoTracks()[0];
    if (track) this.screenSender = this.pc.addTrack(track, stream);
  }

  /** removeScreen stops sending the screen share. */
  removeScreen() {
    this.screen = null;
    if (this.screenSender && this.pc.connectionState !== 'closed') this.pc.removeTrack(this.screenSender);
    this.screenSender = null;
  }

  /**
   * applyBudget sets each video sender's bitrate, resolution and frame
   * rate for the size of the room (adapt.js); audio goes first.
   */
  applyBudget() {
    if (this.pc.signalingState === 'closed') return;
    const n = Math.max(1, this.peerCount());
    for (const s of this.pc.getSenders()) {
      if (!s.track) continue;
      const want = encodingFor(s.track.kind, s === this.screenSender ? 'screen' : 'camera', n, this.adapt, !!this.screenSender,
        s.track.kind === 'video' ? s.track.getSettings().height : undefined);
      const p = s.getParameters();
      if (!p.encodings || !p.encodings.length) continue;
      const e = p.encodings[0];
      let changed = false;
      for (const [k, v] of Object.entries(want)) {
        const cur = /** @type {any} */ (e)[k];
        if (cur !== v) {
          if (v === undefined) delete /** @type {any} */ (e)[k];
          else /** @type {any} */ (e)[k] = v;
          changed = true;
        }
      }
      if (changed) s.setParameters(p).catch((err) => console.warn('setParameters', err));
    }
  }

  /**
   * selectedPair reports the local and remote candidates of the selected
   * ICE candidate pair, or null before one is selected.
   * @returns {Promise<object|null>}
   */
  async selectedPair() {
    const stats = await this.pc.getStats();
    /** @type {any} */
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) {
      stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    }
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { local: local && local.candidateType, remote: remote && remote.candidateType,
      localAddress: local && `${local.address}:${local.port}`,
      remoteAddress: remote && `${remote.address}:${remote.port}`,
      protocol: local && local.protocol, relayProtocol: local && local.relayProtocol };
  }

  /**
   * close closes the connection.
   * @returns {number[]} ids of chat lines that never went out
   */
  close() {
    this.listening.abort();
    clearTimeout(this.disconnectTimer);
    clearTimeout(this.orphanTimer);
    clearTimeout(this.politeTimer);
    clearTimeout(this.adoptTimer);
    this.chat.close();
    this.meta.close();
    this.pc.close();
    return this.outbox.splice(0).map((m) => m.id);
  }
}
