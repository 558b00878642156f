// The call's model, apart from the page: who is in the room, one Peer
// (mesh.js) per person we exchange media with, signaling (signal.js), the
// chat outbox for people with no connection yet, and the recovery that
// keeps connections across a fresh join after the server restarted. No
// DOM here: the session emits events and the view (app.js) renders them.
//
// Events (CustomEvent, detail in brackets):
//   welcome       {room, name, again, resumed}: joined (again: a fresh join
//                 after the session was lost, kept connections are moving)
//   refused       {code, message}: the server turned the join down
//   people        {}: the list of names changed
//   joined / left {id, name}: someone arrived or left (not a kept peer
//                 coming back under a new id)
//   peer-added    {peer}: a connection exists for a person (a tile)
//   peer-removed  {id}: it is gone
//   peer-renamed  {from, to}: a kept connection moved to its new id
//   track         {peer}: a peer's streams changed
//   meta          {peer, meta}: what a peer says of its microphone,
//                 camera and screen changed
//   peer-state    {peer, state}: a connection's state changed
//   chat          {name, text}: a line arrived
//   chat-sent     {line, peer}: a line went to a peer
//   chat-lost     {line, peer, name}: a line will never reach a peer
//   reconnecting  {delay}: signaling is away, retried in delay ms
//   closed        {code, reason}: signaling closed for good
//   sfu-stream    {stream}: in an SFU room, a stream (named after the
//                 peer that owns it) got a track
//   sfu-tracks    {tracks}: in an SFU room, the list of every track
//                 received changed
//   sfu-state     {state}: the SFU connection's state changed
//   speaker       {peer}: in an SFU room, the server names the active
//                 speaker
//   media         {media}: the room moved between mesh and SFU ('mesh'
//                 or 'sfu'); the old connections carry on until the view
//                 says the new ones present each person's video
//                 (sfuShown, meshShown), HANDOVER_MS at most
//
// A move (the server's {"type":"media"}): to the SFU, the page connects
// to it and publishes, and keeps each mesh connection until the SFU's
// video of that person presents frames and they say the same of ours;
// back to a mesh, it connects to everyone again (the larger peer id
// offers, as the impolite side of perfect negotiation) and keeps the SFU
// until every person's mesh video presents frames and each says the
// same of ours (an old connection carries our video to them too). Either way the old connections close after
// HANDOVER_MS at the latest: the server ends the SFU 10 s after a move
// back.

import { Signaling } from './signal.js';
import { Peer } from './mesh.js';
import { SFUConnection, SFU_PEER } from './sfu.js';

/** How long a peer kept across a fresh join waits to say who it is now, in ms. */
export const REBIND_MS = 5000;
/** How long a kept peer that never said who it is lives, in ms. */
export const ORPHAN_MS = 30000;
/** How many signals are held for an id a kept peer may claim. */
const HELD_MAX = 500;
/** How long the old connections of a move between mesh and SFU live at most, in ms (below the server's 10 s). */
export const HANDOVER_MS = 8000;
/** How long the smaller peer id of a pair waits for the other's offer after a move back to a mesh before offering itself, in ms. */
export const MESH_OFFER_MS = 3000;

/**
 * @typedef {import('./mesh.js').Meta} Meta
 * @typedef {{id: string, name: string}} PeerRef
 * @typedef {{type: string, id: string, room: string, resumed?: boolean,
 *   peers: PeerRef[], iceServers?: RTCIceServer[], media?: string}} Welcome
 * @typedef {{
 *   room: string,
 *   mode: 'room'|'call',
 *   rtcConfig: RTCConfiguration,
 *   stream: () => MediaStream|null,
 *   screen: () => MediaStream|null,
 *   meta: () => Meta,
 * }} SessionOptions
 */

export class Session extends EventTarget {
  /** @param {SessionOptions} o */
  constructor(o) {
    super();
    this.o = o;
    this.room = o.room;
    this.mode = o.mode;
    this.rtcConfig = o.rtcConfig;
    /** @type {Signaling|null} */
    this.sig = null;
    this.myId = '';
    this.myName = '';
    /** @type {Map<string, Peer>} peer id → Peer */
    this.peers = new Map();
    /** @type {Map<string, string>} peer id → display name, everyone else */
    this.names = new Map();
    /** @type {Map<string, {id: number, text: string}[]>} chat for people with no Peer yet */
    this.early = new Map();
    /** @type {Map<string, object[]>} signals from ids that may be a kept peer's new id */
    this.held = new Map();
    /** @type {import('./callmode.js').CallControl|null} call mode's control, set by the view */
    this.calls = null;
    /** whether setParameters lowers video as the room grows (adapt.js) */
    this.adapt = true;
    /** how this room's media flows: between every two pages, or through the SFU (the welcome says) */
    this.media = 'mesh';
    /** @type {SFUConnection|null} the connection to the SFU in an SFU room */
    this.sfu = null;
    /** @type {import('./sfu.js').TrackInfo[]} what the SFU last said it sends us */
    this.sfuTracks = [];
    /** ends a move between mesh and SFU: closes the old connections (setTimeout handle) */
    this.handoverTimer = 0;
    /** @type {Set<number>} offers waited for after a move back to a mesh (setTimeout handles) */
    this.offerTimers = new Set();
    /** @type {{data: object, at: number}[]} signals from the SFU before our connection to it exists, and when they came (performance.now) */
    this.sfuEarly = [];
  }

  /**
   * #emit dispatches event type with detail.
   * @param {string} type
   * @param {object} [detail]
   */
  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {string} id */
  nameOf(id) { return this.names.get(id) || 'someone'; }

  /**
   * signal sends data to peer id over signaling.
   * @param {string} id
   * @param {object} data
   * @returns {boolean} whether it was written
   */
  signal(id, data) { return !!this.sig && this.sig.signal(id, data); }

  /** whether signaling is up and this page joined on it */
  get online() { return !!this.sig && this.sig.joined; }

  // ---- joining and leaving

  /**
   * join connects to signaling and joins the room as name.
   * @param {string} name
   * @param {string|null} password null when the room asks for none
   */
  join(name, password) {
    const sig = new Signaling();
    this.sig = sig;
    /** @param {string} type @param {(d: any) => void} fn */
    const on = (type, fn) => sig.addEventListener(type, (ev) => fn(/** @type {CustomEvent} */ (ev).detail));
    on('welcome', (d) => this.#welcome(d, name));
    on('peer-joined', (d) => this.#peerJoined(String(d.id), String(d.name)));
    on('peer-left', (d) => this.#peerLeft(String(d.id)));
    on('signal', (d) => this.#signal(String(d.from), d.data));
    on('ice-servers', (d) => { if (Array.isArray(d.iceServers)) this.setICEServers(d.iceServers); });
    on('tracks', (d) => {
      if (!Array.isArray(d.tracks)) return;
      this.sfuTracks = d.tracks.filter((/** @type {any} */ t) => t && typeof t.track === 'string' && typeof t.peer === 'string');
      this.#emit('sfu-tracks', { tracks: this.sfuTracks });
    });
    on('speaker', (d) => { if (typeof d.peer === 'string') this.#emit('speaker', { peer: d.peer }); });
    on('media', (d) => {
      if (d.media === 'sfu' && d.renew === true) this.#renewSFU();
      else if (d.media === 'sfu' || d.media === 'mesh') this.#move(d.media);
    });
    on('error', (d) => {
      if (!this.myId && this.sig === sig) {
        sig.stop();
        this.sig = null;
        this.#emit('refused', { code: String(d.code), message: String(d.message) });
      } else {
        console.warn('signaling error', d.code, d.message);
      }
    });
    on('reconnecting', (d) => this.#emit('reconnecting', { delay: d.delay }));
    on('closed', (d) => this.#emit('closed', { code: d.code, reason: d.reason || '' }));
    /** @type {Record<string, string>} */
    const msg = { type: 'join', room: this.room, name };
    if (password !== null) msg.password = password;
    sig.start(msg);
  }

  /** leave says goodbye to the room and closes every connection. */
  leave() {
    if (this.sig) {
      this.sig.send({ type: 'leave' });
      this.sig.stop();
      this.sig = null;
    }
    this.reset();
  }

  /** reset closes every connection and forgets the room. */
  reset() {
    this.#endHandover();
    this.sfuEarly = [];
    this.#closeSFU();
    for (const id of [...this.peers.keys()]) this.closePeer(id);
    for (const id of [...this.early.keys()]) this.closePeer(id);
    this.held.clear();
    this.myId = '';
    this.names = new Map();
  }

  /**
   * #welcome handles a welcome: the first join builds the call; a resumed
   * one changes nothing but sends what waited; a fresh one after a lost
   * session (the server restarted) keeps the connections that still carry
   * media and moves them to the peers' new ids (rebind).
   * @param {Welcome} d
   * @param {string} name
   */
  #welcome(d, name) {
    if (Array.isArray(d.iceServers) && d.iceServers.length) this.setICEServers(d.iceServers);
    if (d.resumed) {
      for (const p of this.peers.values()) p.resync();
      if (this.sfu) this.sfu.resync();
      this.#emit('welcome', { room: d.room, name, again: false, resumed: true });
      return;
    }
    const again = !!this.myId && this.mode === 'room';
    this.#endHandover();
    this.sfuEarly = [];
    this.media = this.mode === 'room' && d.media === 'sfu' ? 'sfu' : 'mesh';
    // A fresh join is a fresh participant at the SFU too.
    this.#closeSFU();
    if (again && this.media === 'mesh') this.#keepPeers();
    else for (const id of [...this.peers.keys()]) this.closePeer(id);
    this.myId = String(d.id);
    this.myName = name;
    const peers = Array.isArray(d.peers) ? d.peers : [];
    this.names = new Map(peers.map((p) => [String(p.id), String(p.name)]));
    this.#emit('welcome', { room: d.room, name, again, resumed: false });
    this.#emit('people');
    if (this.mode === 'call') return;
    if (this.media === 'sfu') {
      this.#openSFU();
      return;
    }
    // Tell kept peers who we are now, over their own connections.
    for (const p of this.peers.values()) p.sendMeta(this.o.meta());
    for (const { id, name: n } of peers) {
      // Same id as before our session was lost: they saw us leave and
      // closed their side.
      if (this.peers.has(id)) this.closePeer(id);
      this.#named(id);
      if (this.peers.has(id) || this.#adopt(id) || this.#orphanNamed(n)) continue;
      this.createPeer(id).start();
    }
  }

  /** @param {string} id @param {string} name */
  #peerJoined(id, name) {
    this.names.set(id, name);
    if (this.media === 'sfu') {
      this.#emit('joined', { id, name });
      this.#emit('people');
      return;
    }
    this.#named(id);
    this.#adopt(id);
    if (!this.peers.has(id) && !this.#orphanNamed(name)) this.#emit('joined', { id, name });
    this.#emit('people');
  }

  /** @param {string} id */
  #peerLeft(id) {
    this.#emit('left', { id, name: this.nameOf(id) });
    if (this.mode === 'call' && this.calls) this.calls.peerLeft(id);
    this.closePeer(id);
    this.names.delete(id);
    this.#emit('people');
  }

  /**
   * #signal routes a signal: chat over signaling, call control, or media
   * signals to the Peer they are for.
   * @param {string} from
   * @param {any} data
   */
  #signal(from, data) {
    if (!data || typeof data !== 'object') return;
    if (from === SFU_PEER) {
      if (this.sfu) this.sfu.receive(data);
      // The SFU may speak before the media event that moves us to it
      // arrives (it asks for sections as soon as the room has tracks).
      else if (this.sfuEarly.length < 16) this.sfuEarly.push({ data, at: performance.now() });
      return;
    }
    if (typeof data.chat === 'string') {
      this.#emit('chat', { name: this.nameOf(from), text: data.chat });
      return;
    }
    // In an SFU room media goes through the SFU only; the mesh
    // connections kept while it takes over still get their signals.
    if (this.media === 'sfu') {
      const p = this.peers.get(from);
      if (p) p.receive(data);
      return;
    }
    if (this.mode === 'call' && this.calls) {
      if (typeof data.call === 'string') {
        this.calls.onSignal(from, data);
        return;
      }
      // Media only from the person we are in a call with.
      if (!this.calls.inCallWith(from)) return;
    }
    const peer = this.#peerFor(from, data);
    if (peer) peer.receive(data);
  }

  /** @param {RTCIceServer[]} iceServers */
  setICEServers(iceServers) {
    this.rtcConfig.iceServers = iceServers;
    for (const p of this.peers.values()) p.setICEServers(iceServers);
  }

  // ---- peers

  /**
   * createPeer makes the connection to peer id.
   * @param {string} id
   * @returns {Peer}
   */
  createPeer(id) {
    /** @type {Peer} */
    const peer = new Peer({
      id,
      name: this.names.get(id) || 'guest',
      myId: this.myId,
      rtcConfig: this.rtcConfig,
      localStream: this.o.stream(),
      screen: this.o.screen(),
      peers: () => this.peers.size,
      online: () => this.online,
      send: (data) => this.signal(peer.id, data),
      onTrack: (p) => this.#emit('track', { peer: p }),
      onChat: (p, text) => this.#emit('chat', { name: p.name, text: String(text) }),
      onChatSent: (p, lines) => { for (const line of lines) this.#emit('chat-sent', { line, peer: p.id }); },
      meta: this.o.meta,
      onMeta: (p, m) => {
        if (m.id && m.id !== p.id) this.#rebind(p, m.id);
        this.#emit('meta', { peer: p, meta: m });
        if (m.shown) this.#settle();
      },
      onState: (p, s) => this.#emit('peer-state', { peer: p, state: s }),
    });
    peer.adapt = this.adapt;
    this.peers.set(id, peer);
    this.#emit('peer-added', { peer });
    this.#flushEarly(peer);
    this.budget();
    return peer;
  }

  /**
   * closePeer closes a peer's connection and forgets it; its unsent chat
   * is reported lost.
   * @param {string} id
   */
  closePeer(id) {
    const name = this.nameOf(id);
    const p = this.peers.get(id);
    const lost = p ? p.close() : [];
    for (const m of this.early.get(id) || []) lost.push(m.id);
    for (const line of lost) this.#emit('chat-lost', { line, peer: id, name });
    this.peers.delete(id);
    this.early.delete(id);
    this.held.delete(id);
    if (p) this.#emit('peer-removed', { id });
    this.budget();
  }

  /** budget applies the mesh adaptation for the room's size to every connection. */
  budget() {
    for (const p of this.peers.values()) p.applyBudget();
  }

  /** @param {boolean} on mesh adaptation on or off */
  setAdaptation(on) {
    this.adapt = on;
    for (const p of this.peers.values()) {
      p.adapt = on;
      p.applyBudget();
    }
  }

  /**
   * #flushEarly sends the chat that waited for peer's connection.
   * @param {Peer} peer
   */
  #flushEarly(peer) {
    for (const m of this.early.get(peer.id) || []) {
      if (peer.sendChat(m.id, m.text)) this.#emit('chat-sent', { line: m.id, peer: peer.id });
    }
    this.early.delete(peer.id);
  }

  /**
   * sendChat sends line (its id in the view's log) to everyone in the
   * room: over the data channels in a room call (queued until each
   * opens), over signaling in call mode, where there is a lobby and no
   * data channel to most people.
   * @param {number} line
   * @param {string} text
   */
  sendChat(line, text) {
    for (const id of this.names.keys()) {
      if (this.mode === 'call' || this.media === 'sfu') {
        if (this.signal(id, { chat: text })) this.#emit('chat-sent', { line, peer: id });
        else this.#emit('chat-lost', { line, peer: id, name: this.nameOf(id) });
        continue;
      }
      const p = this.peers.get(id);
      if (p) {
        if (p.sendChat(line, text)) this.#emit('chat-sent', { line, peer: id });
      } else {
        // Joined, but has not offered yet: goes when its connection exists.
        const q = this.early.get(id) || [];
        q.push({ id: line, text });
        this.early.set(id, q);
      }
    }
  }

  // ---- SFU rooms

  /** #openSFU makes the connection to the SFU and publishes our media. */
  #openSFU() {
    const sfu = new SFUConnection({
      rtcConfig: this.rtcConfig,
      send: (data) => this.signal(SFU_PEER, data),
      onStream: (stream) => this.#emit('sfu-stream', { stream }),
      onState: (state) => this.#emit('sfu-state', { state }),
    });
    this.sfu = sfu;
    sfu.publish(this.o.stream());
    const screen = this.o.screen();
    if (screen) sfu.publishScreen(screen).catch((err) => console.warn('screen share to the SFU', err));
    // Those of the participant that a move just made; not the last words of one kept after a move back.
    const recent = performance.now() - 5000;
    for (const e of this.sfuEarly.splice(0)) if (e.at > recent) sfu.receive(e.data);
  }

  /**
   * #renewSFU starts over with the SFU: the server made a new participant
   * for us (the node hosting the room's SFU is gone and another took
   * over), so the old connection leads nowhere. What the new participant
   * says from now on is for the new connection.
   */
  #renewSFU() {
    if (this.mode !== 'room' || !this.myId || this.media !== 'sfu') return;
    this.#closeSFU();
    this.#openSFU();
  }

  #closeSFU() {
    if (!this.sfu) return;
    this.sfu.close();
    this.sfu = null;
    this.sfuTracks = [];
    this.#emit('sfu-tracks', { tracks: [] });
  }

  /**
   * shareScreen sends stream, a screen share, to everyone: on each mesh
   * connection, and to the SFU in an SFU room.
   * @param {MediaStream} stream
   */
  shareScreen(stream) {
    for (const p of this.peers.values()) p.addScreen(stream);
    if (this.sfu) this.sfu.publishScreen(stream).catch((err) => console.warn('screen share to the SFU', err));
  }

  /** stopScreen stops sending the screen share, everywhere. */
  stopScreen() {
    for (const p of this.peers.values()) p.removeScreen();
    if (this.sfu) this.sfu.unpublishScreen().catch((err) => console.warn('screen share to the SFU', err));
  }

  /**
   * setLayer asks the SFU for at most layer of a video track it sends us
   * ('none' pauses it).
   * @param {string} track
   * @param {'q'|'h'|'f'|'none'} layer
   */
  setLayer(track, layer) {
    if (this.sig) this.sig.send({ type: 'layer', track, layer });
  }

  // ---- moving between mesh and SFU

  /**
   * #move follows the room to media: the new connections start, the old
   * ones stay until the new ones present video (sfuShown, meshShown) or
   * HANDOVER_MS has passed.
   * @param {'mesh'|'sfu'} media
   */
  #move(media) {
    if (this.mode !== 'room' || !this.myId || media === this.media) return;
    this.#endHandover();
    this.media = media;
    this.#emit('media', { media });
    if (media === 'sfu') {
      for (const p of this.peers.values()) p.shownVia = '';
      // Left from the last move back, if the server moved again that soon.
      this.#closeSFU();
      this.#openSFU();
      this.handoverTimer = setTimeout(() => this.#endHandover(), HANDOVER_MS);
      return;
    }
    this.sfuEarly = [];
    for (const id of this.names.keys()) {
      if (this.peers.has(id)) continue;
      if (this.myId > id) {
        this.createPeer(id).start();
        continue;
      }
      // The other side offers; should its offer not come, this one does.
      const timer = setTimeout(() => {
        this.offerTimers.delete(timer);
        if (this.media === 'mesh' && this.names.has(id) && !this.peers.has(id)) this.createPeer(id).start();
      }, MESH_OFFER_MS);
      this.offerTimers.add(timer);
    }
    this.handoverTimer = setTimeout(() => this.#endHandover(), HANDOVER_MS);
  }

  /**
   * #endHandover ends a move: the connections of the mode the room left
   * close.
   */
  #endHandover() {
    clearTimeout(this.handoverTimer);
    this.handoverTimer = 0;
    for (const t of this.offerTimers) clearTimeout(t);
    this.offerTimers.clear();
    if (this.media === 'sfu') {
      for (const id of [...this.peers.keys()]) this.closePeer(id);
    } else {
      this.#closeSFU();
    }
  }

  /**
   * sfuShown is told by the view that the SFU's video of person id
   * presents frames. The mesh connection to them kept across the move
   * closes once they say the same of ours (its meta, "shown"): it
   * carries our video to them until then.
   * @param {string} id
   */
  sfuShown(id) { this.#shown(id, 'sfu'); }

  /**
   * meshShown is told by the view that the mesh video of person id
   * presents frames. The SFU connection, which carries our video to
   * everyone still on it, closes once every person says the same of ours.
   * @param {string} id
   */
  meshShown(id) { this.#shown(id, 'mesh'); }

  /**
   * #shown notes that person id's video presents over via, tells them,
   * and closes what the move no longer needs.
   * @param {string} id
   * @param {'sfu'|'mesh'} via
   */
  #shown(id, via) {
    const p = this.peers.get(id);
    if (this.media !== via || !p || !this.moving) return;
    if (p.shownVia !== via) {
      p.shownVia = via;
      p.sendMeta(this.o.meta());
    }
    this.#settle();
  }

  /**
   * #settle closes the old connections of a move that both sides of
   * have changed over: a kept mesh connection once each side presents
   * the other over the SFU (or its channel to say so is gone), the SFU
   * connection once everyone presents each other over the mesh.
   */
  #settle() {
    if (!this.moving) return;
    if (this.media === 'sfu') {
      for (const [id, p] of [...this.peers]) {
        if (p.shownVia === 'sfu' && (p.remote.shown === 'sfu' || p.meta.readyState !== 'open')) this.closePeer(id);
      }
      if (!this.peers.size) this.#endHandover();
      return;
    }
    const done = [...this.names.keys()].every((id) => {
      const p = this.peers.get(id);
      return !!p && p.shownVia === 'mesh' && p.remote.shown === 'mesh';
    });
    if (done) this.#endHandover();
  }

  /** whether the room is moving between mesh and SFU (both kinds of connection are up) */
  get moving() { return !!this.handoverTimer; }

  // ---- keeping connections across a fresh join (the server restarted)

  /**
   * #rebind moves a kept peer to the id it now has on signaling, as it
   * said over the connection itself (end-to-end, so the claim is its
   * own), once the server names that id with the same name.
   * @param {Peer} p
   * @param {string} to
   */
  #rebind(p, to) {
    if (!p.orphan || this.names.get(to) !== p.name) {
      // Checked again once our own fresh welcome came and the server names to.
      p.claim = to;
      return;
    }
    const from = p.id;
    const other = this.peers.get(to);
    if (other && other !== p) this.closePeer(to); // a fresh one made in a race
    this.peers.delete(from);
    p.id = to;
    p.polite = this.myId < to;
    p.orphan = false;
    p.claim = '';
    clearTimeout(p.orphanTimer);
    clearTimeout(p.adoptTimer);
    p.adoptTimer = 0;
    this.peers.set(to, p);
    this.#emit('peer-renamed', { from, to });
    if (this.calls && this.calls.peer === from) this.calls.peer = to;
    this.#flushEarly(p);
    for (const data of this.held.get(to) || []) p.receive(data);
    this.held.delete(to);
    p.resync(this.#relayed(p));
    console.info('kept the connection to', p.name, 'as', to);
  }

  /**
   * #relayed reports whether p's media went through a relay of the server
   * (measured, or all of them: relay only).
   * @param {Peer} p
   */
  #relayed(p) { return p.relayed || this.rtcConfig.iceTransportPolicy === 'relay'; }

  /**
   * #orphanNamed is the kept peer with that name, waiting to say its new id.
   * @param {string} name
   * @returns {Peer|undefined}
   */
  #orphanNamed(name) {
    for (const p of this.peers.values()) if (p.orphan && p.name === name) return p;
    return undefined;
  }

  /**
   * #named is called when the server names a peer id: a kept peer may
   * have claimed it.
   * @param {string} id
   */
  #named(id) {
    for (const p of [...this.peers.values()]) if (p.claim === id) this.#rebind(p, id);
  }

  /**
   * #keepPeers marks every connection as kept across a fresh join: it
   * keeps flowing, and is moved to its new id when the peer says it; one
   * that never does is closed after ORPHAN_MS.
   */
  #keepPeers() {
    for (const [id, p] of this.peers) {
      // A failed connection is kept too: an ICE restart revives it (a
      // relayed one fails when the server's allocations went with it).
      if (p.pc.connectionState === 'closed') {
        this.closePeer(id);
        continue;
      }
      p.orphan = true;
      clearTimeout(p.orphanTimer);
      p.orphanTimer = setTimeout(() => {
        if (p.orphan && this.peers.get(p.id) === p) this.closePeer(p.id);
      }, ORPHAN_MS);
    }
  }

  /**
   * #adopt finds the kept peer that the id the server names may be: one
   * with the same name. A connection still up says who it is over its own
   * data channel (rebind); given REBIND_MS for that, it is then taken by
   * name. A connection that is down cannot say it: it is taken by name at
   * once and its ICE restart goes to the new id (the browser still checks
   * the DTLS fingerprint, so no one else can take over its media).
   * @param {string} id
   * @returns {Peer|null} the peer now at id, or null (none, or waiting)
   */
  #adopt(id) {
    const name = this.names.get(id);
    const o = name === undefined ? undefined : this.#orphanNamed(name);
    if (!o) return this.peers.get(id) || null;
    // A relayed connection is down too, whatever its state says yet: its
    // allocation went with the server.
    if (o.pc.connectionState !== 'connected' || this.#relayed(o)) {
      this.#rebind(o, id);
      return this.peers.get(id) || null;
    }
    if (!o.adoptTimer) {
      o.adoptTimer = setTimeout(() => {
        o.adoptTimer = 0;
        if (o.orphan && this.names.get(id) === o.name && !this.peers.has(id)) this.#rebind(o, id);
      }, REBIND_MS);
    }
    return null;
  }

  /**
   * #peerFor returns the Peer a signal from id goes to, creating one;
   * null while a kept peer of that name may still say it is id (the
   * signal is held until then).
   * @param {string} id
   * @param {object} data
   * @returns {Peer|null}
   */
  #peerFor(id, data) {
    const p = this.peers.get(id) || this.#adopt(id);
    if (p) return p;
    if (this.#orphanNamed(this.names.get(id) || '')) {
      const q = this.held.get(id) || [];
      if (q.length < HELD_MAX) q.push(data);
      this.held.set(id, q);
      return null;
    }
    return this.createPeer(id);
  }
}
