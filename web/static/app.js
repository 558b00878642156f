// The call page: a pre-join screen (camera preview, device pickers, a
// microphone meter, name, a room password when the room asks for one),
// then a mesh call with everyone in the room (or, with ?mode=call, a
// lobby where you call one person), screen share, chat, and a control
// bar. The RTCConfiguration comes from the page (#ice-config) and is
// replaced by the servers of welcome and ice-servers messages.
import { Signaling } from './signal.js';
import { Peer } from './mesh.js';
import { CallControl } from './callmode.js';
import { LocalMedia } from './media.js';
import { Tiles } from './tiles.js';
import { ChatLog } from './chat.js';
import { LevelMeter, Ringer } from './audio.js';
import { fillPickers, setSpeaker } from './devices.js';
import { Monitor, badgeText, details } from './monitor.js';
import { bad } from './stats.js';
import { $, setStatus, openPanel, countUnread, showScreen, renderMedia, renderPeople, renderCallBar,
  renderBanner, renderShare, renderLayout, renderInvite } from './view.js';

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/').pop() || '');
/** @type {RTCConfiguration & {ttl?: number}} */
const rtcConfig = JSON.parse($('ice-config').textContent);
delete rtcConfig.ttl;
const PASSWORD_KEY = `icebox-password-needed:${room}`;
/** How long a peer kept across a fresh join waits to say who it is now, in ms. */
const REBIND_MS = 5000;
/** How long a kept peer that never said who it is lives, in ms. */
const ORPHAN_MS = 30000;
const TITLE = document.title;

const state = {
  /** @type {Signaling|null} */
  sig: null,
  myId: '',
  myName: '',
  /** @type {Map<string, Peer>} peer id → Peer */
  peers: new Map(),
  /** @type {Map<string, string>} peer id → display name */
  names: new Map(),
  /** @type {Map<string, {id: number, text: string}[]>} chat for peers with no Peer yet */
  early: new Map(),
  /** @type {Map<string, object[]>} signals from ids that may be a kept peer's new id */
  held: new Map(),
  leaving: false,
  mode: params.get('mode') === 'call' ? 'call' : 'room',
  /** @type {CallControl|null} */
  calls: null,
  noteClosed: false, // the in-call device note was dismissed
  adapt: true, // mesh adaptation (adapt.js) on
  /** when the page started, and when the first remote video played (performance.now) */
  timing: { start: performance.now(), mediaReady: 0, firstVideo: 0 },
};
const media = new LocalMedia();
/** @type {Set<RTCPeerConnection>} every connection since the last join, for the test hook */
const connections = new Set();
const tiles = new Tiles($('tiles'), $('tile-local'));
const chat = new ChatLog($('messages'), countUnread);
const meter = new LevelMeter();
const ringer = new Ringer();
const pickers = {
  videoinput: $('pick-videoinput'), audioinput: $('pick-audioinput'), audiooutput: $('pick-audiooutput'),
};
const monitor = new Monitor({
  peers: () => state.peers,
  myLevel: () => meter.level(),
  onSpeaking: (speaking, active) => tiles.setSpeaking(speaking, active),
  onNet: (p, n) => tiles.setNet(p.id, badgeText(n), details(n), `${n.path}${bad(n) ? ' bad' : ''}`),
  onBanner: renderBanner,
});

// window.icebox is the page's one global, for the browser console and
// tests (nothing in the page reads it):
//   state          the page's state (peers, names, ids)
//   pairs()        the selected ICE candidate pair of each connection
//   tracks()       every local track the page started, with readyState
//   connections()  every peer connection since the last join: its state
//   levels()       audio levels now: '' is you, else peer ids
//   net()          the last getStats sample of each connection
//   sample()       takes a getStats sample now (badges, banner)
//   setAdaptation(on)  turns mesh adaptation on or off
//   screen()       your screen share's stream, or null
//   ringing()      whether the ring tone plays
//   timing         when the page started, media was ready, video first played
window.icebox = {
  state,
  async pairs() {
    /** @type {Record<string, any>} */
    const out = {};
    for (const [id, p] of state.peers) out[id] = await p.selectedPair();
    return out;
  },
  tracks: () => media.tracks(),
  connections: () => [...connections].map((pc) => pc.connectionState),
  levels: () => monitor.levels(),
  net: () => Object.fromEntries(monitor.net),
  sample: () => monitor.sample(),
  screen: () => media.screen,
  ringing: () => ringer.ringing,
  /** @param {boolean} on */
  setAdaptation(on) {
    state.adapt = !!on;
    for (const p of state.peers.values()) {
      p.adapt = state.adapt;
      p.applyBudget();
    }
  },
  timing: state.timing,
};

/** shareLink is this room's address, in call mode too. */
function shareLink() {
  return `${location.origin}/r/${encodeURIComponent(room)}${state.mode === 'call' ? '?mode=call' : ''}`;
}

/**
 * myMeta is what others should show on your tile, and who you are.
 * @returns {import('./mesh.js').Meta}
 */
function myMeta() {
  return { id: state.myId, mic: media.enabled('audio') === true, cam: media.enabled('video') === true,
    screen: media.screen ? media.screen.id : null };
}

/** renderDevices shows camera and microphone: preview, reasons, buttons, your tile, pickers, meter. */
function renderDevices() {
  renderMedia(media, tiles, myMeta(), state.myName || $('name').value, state.noteClosed);
  meter.use(media.stream);
  $('meter-row').hidden = !media.has('audio');
  renderShare(!!media.screen, !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia));
}

/** refreshPickers lists the devices, marking the ones in use. */
function refreshPickers() {
  /** @type {Record<string, string>} */
  const inUse = {};
  for (const t of media.stream ? media.stream.getTracks() : []) {
    const id = t.getSettings().deviceId;
    if (id) inUse[t.kind === 'audio' ? 'audioinput' : 'videoinput'] = id;
  }
  return fillPickers(pickers, media.choice, inUse);
}

/** people redraws the list of people (with Call buttons in call mode). */
function people() {
  renderPeople(state.names, state.mode === 'call' ? state.calls : null, !!state.myId, state.myName);
  renderInvite(state.mode === 'room' && !!state.myId && state.names.size === 0);
}

/** startMedia asks for camera and microphone and shows the outcome. */
async function startMedia() {
  if (!media.stream) $('preview-note').textContent = 'Starting camera…';
  const stream = await media.acquire();
  if (stream && !state.timing.mediaReady) state.timing.mediaReady = performance.now();
  renderDevices();
  refreshPickers();
  if (stream && state.myId) {
    for (const p of state.peers.values()) {
      p.setLocalStream(stream);
      p.sendMeta(myMeta());
    }
  }
  return stream;
}

// ---- peers

/**
 * closePeer closes a peer's connection; its unsent chat is marked lost.
 * @param {string} id
 */
function closePeer(id) {
  const name = state.names.get(id) || 'someone';
  const p = state.peers.get(id);
  const lost = p ? p.close() : [];
  for (const m of state.early.get(id) || []) lost.push(m.id);
  for (const line of lost) chat.lost(line, id, name);
  state.peers.delete(id);
  state.early.delete(id);
  state.held.delete(id);
  tiles.remove(id);
  budget();
}

/** budget applies the mesh adaptation for the room's size to every connection. */
function budget() {
  for (const p of state.peers.values()) p.applyBudget();
}

/**
 * showStreams puts what a peer sends on its tiles: its camera on its
 * tile, a screen share on a tile of its own (on the stage).
 * @param {Peer} p
 */
function showStreams(p) {
  const screens = /** @type {Set<string>} */ (/** @type {any} */ (p).screens || new Set());
  /** @type {any} */ (p).screens = screens;
  if (p.remote.screen) screens.add(p.remote.screen);
  let shown = false;
  for (const [sid, stream] of p.streams) {
    if (sid === p.remote.screen) {
      if (stream.getVideoTracks().some((t) => t.readyState === 'live')) {
        tiles.show(tiles.addScreen(p.id, p.name), stream);
        shown = true;
      }
    } else if (screens.has(sid)) {
      p.streams.delete(sid); // an earlier share
    } else {
      tiles.show(tiles.add(p.id, p.name), stream);
    }
  }
  if (!shown) tiles.removeScreen(p.id);
  setSpeaker(document, media.choice.audiooutput || '');
  tiles.layout();
}

/**
 * createPeer makes the connection to peer id.
 * @param {string} id
 * @returns {Peer}
 */
function createPeer(id) {
  /** @type {Peer} */
  const peer = new Peer({
    id,
    name: state.names.get(id) || 'guest',
    myId: state.myId,
    rtcConfig,
    localStream: media.stream,
    screen: media.screen,
    peers: () => state.peers.size,
    send: (data) => !!state.sig && state.sig.signal(peer.id, data),
    onTrack: (p) => {
      showStreams(p);
      if (!state.timing.firstVideo) {
        const v = /** @type {HTMLVideoElement} */ ($(`tile-${p.id}`).querySelector('video'));
        v.addEventListener('playing', () => { if (!state.timing.firstVideo) state.timing.firstVideo = performance.now(); }, { once: true });
      }
    },
    onChat: (p, text) => chat.incoming(p.name, String(text)),
    onChatSent: (p, lines) => { for (const line of lines) chat.sent(line, p.id); },
    meta: myMeta,
    onMeta: (p, m) => {
      if (m.id && m.id !== p.id) rebind(p, m.id);
      const tile = document.getElementById(`tile-${p.id}`);
      if (tile) tiles.setMeta(tile, m);
      showStreams(p);
    },
    onState: (p, s) => {
      if (s === 'connected') monitor.sample();
      if (s !== 'failed') return;
      setStatus(`connection to ${p.name} failed; retrying`);
      if (state.mode === 'call' && state.calls) state.calls.connectionLost(p.id);
    },
  });
  peer.adapt = state.adapt;
  connections.add(peer.pc);
  state.peers.set(id, peer);
  for (const m of state.early.get(id) || []) if (peer.sendChat(m.id, m.text)) chat.sent(m.id, id);
  state.early.delete(id);
  tiles.add(id, peer.name);
  budget();
  return peer;
}

// ---- keeping connections across a fresh join (the server restarted)

/**
 * rebind moves a kept peer to the id it now has on signaling, as it said
 * over the connection itself (end-to-end, so the claim is its own),
 * once the server names that id with the same name.
 * @param {Peer} p
 * @param {string} to
 */
function rebind(p, to) {
  const any = /** @type {any} */ (p);
  if (!any.orphan || state.names.get(to) !== p.name) {
    // Checked again once our own fresh welcome came and the server names to.
    any.claim = to;
    return;
  }
  const from = p.id;
  const other = state.peers.get(to);
  if (other && other !== p) closePeer(to); // a fresh one made in a race
  state.peers.delete(from);
  p.id = to;
  p.polite = state.myId < to;
  any.orphan = false;
  any.claim = '';
  clearTimeout(any.orphanTimer);
  clearTimeout(any.adoptTimer);
  any.adoptTimer = 0;
  state.peers.set(to, p);
  tiles.rename(from, to);
  if (state.calls && state.calls.peer === from) state.calls.peer = to;
  for (const m of state.early.get(to) || []) if (p.sendChat(m.id, m.text)) chat.sent(m.id, to);
  state.early.delete(to);
  for (const data of state.held.get(to) || []) p.receive(data);
  state.held.delete(to);
  p.resync();
  console.info('kept the connection to', p.name, 'as', to);
}

/**
 * orphanNamed is the kept peer with that name, waiting to say its new id.
 * @param {string} name
 * @returns {Peer|undefined}
 */
function orphanNamed(name) {
  return [...state.peers.values()].find((p) => /** @type {any} */ (p).orphan && p.name === name);
}

/** named is called when the server names a peer id: a kept peer may have claimed it. */
function named(/** @type {string} */ id) {
  for (const p of state.peers.values()) if (/** @type {any} */ (p).claim === id) rebind(p, id);
}

/**
 * keepPeers marks every connection as kept across a fresh join: it keeps
 * flowing, and is moved to its new id when the peer says it; one that
 * never does is closed after ORPHAN_MS.
 */
function keepPeers() {
  for (const [id, p] of state.peers) {
    const any = /** @type {any} */ (p);
    // A failed connection is kept too: an ICE restart revives it (a
    // relayed one fails when the server's allocations went with it).
    if (p.pc.connectionState === 'closed') {
      closePeer(id);
      continue;
    }
    any.orphan = true;
    clearTimeout(any.orphanTimer);
    any.orphanTimer = setTimeout(() => {
      if (any.orphan && state.peers.get(p.id) === p) closePeer(p.id);
    }, ORPHAN_MS);
  }
}

/**
 * adopt finds the kept peer that the id the server names may be: one with
 * the same name. A connection still up says who it is over its own data
 * channel (rebind); given REBIND_MS for that, it is then taken by name. A
 * connection that is down cannot say it: it is taken by name at once and
 * its ICE restart goes to the new id (the browser still checks the DTLS
 * fingerprint, so no one else can take over its media).
 * @param {string} id
 * @returns {Peer|null} the peer now at id, or null (none, or waiting)
 */
function adopt(id) {
  const name = state.names.get(id);
  const o = name === undefined ? undefined : orphanNamed(name);
  if (!o) return state.peers.get(id) || null;
  if (o.pc.connectionState !== 'connected') {
    rebind(o, id);
    return state.peers.get(id) || null;
  }
  const any = /** @type {any} */ (o);
  if (!any.adoptTimer) {
    any.adoptTimer = setTimeout(() => {
      any.adoptTimer = 0;
      if (any.orphan && state.names.get(id) === o.name && !state.peers.has(id)) rebind(o, id);
    }, REBIND_MS);
  }
  return null;
}

/**
 * peerFor returns the Peer a signal from id goes to, creating one; null
 * while a kept peer of that name may still say it is id (the signal is
 * held until then).
 * @param {string} id
 * @param {object} data
 * @returns {Peer|null}
 */
function peerFor(id, data) {
  const p = state.peers.get(id) || adopt(id);
  if (p) return p;
  if (orphanNamed(state.names.get(id) || '')) {
    const q = state.held.get(id) || [];
    if (q.length < 500) q.push(data);
    state.held.set(id, q);
    return null;
  }
  return createPeer(id);
}

/**
 * sendChat sends a line to everyone in the room: over the data channels
 * in a room call (queued until each opens), over signaling in call mode,
 * where there is a lobby and no data channel to most people.
 * @param {string} text
 */
function sendChat(text) {
  const me = state.myName || 'me';
  const to = [...state.names.keys()];
  const line = chat.mine(me, text, to);
  for (const id of to) {
    if (state.mode === 'call') {
      if (state.sig && state.sig.signal(id, { chat: text })) chat.sent(line, id);
      else chat.lost(line, id, state.names.get(id) || 'someone');
      continue;
    }
    const p = state.peers.get(id);
    if (p) {
      if (p.sendChat(line, text)) chat.sent(line, id);
    } else {
      // Joined, but has not offered yet: goes when its connection exists.
      const q = state.early.get(id) || [];
      q.push({ id: line, text });
      state.early.set(id, q);
    }
  }
}

// ---- screen share

async function toggleShare() {
  if (media.screen) {
    stopShare();
    return;
  }
  let stream;
  try {
    stream = await media.share(stopShare);
  } catch (err) {
    const e = /** @type {any} */ (err);
    if (e && e.name !== 'NotAllowedError') setStatus(`cannot share the screen: ${e.message || e.name}`);
    return;
  }
  tiles.show(tiles.addScreen('', state.myName), stream);
  for (const p of state.peers.values()) {
    p.sendMeta(myMeta());
    p.addScreen(stream);
  }
  renderDevices();
  setStatus('you are sharing your screen');
}

/** stopShare ends your screen share: from the button or the browser's own bar. */
function stopShare() {
  media.stopShare();
  tiles.removeScreen('');
  for (const p of state.peers.values()) {
    p.removeScreen();
    p.sendMeta(myMeta());
  }
  renderDevices();
  if (state.myId) setStatus('you stopped sharing');
}

// ---- joining and leaving

/**
 * teardown ends everything of a call: peer connections closed, every
 * local track stopped, tiles gone.
 */
function teardown() {
  for (const id of [...state.peers.keys()]) closePeer(id);
  for (const id of [...state.early.keys()]) closePeer(id);
  state.held.clear();
  media.stopAll();
  tiles.removeScreen('');
  meter.stop();
  monitor.stop();
  renderBanner('', false);
  ringer.stop();
  tiles.pin = null;
  state.myId = '';
  state.names = new Map();
  renderInvite(false);
  renderDevices();
}

/**
 * onWelcome handles a welcome: the first join builds the call; a resumed
 * one changes nothing but sends what waited; a fresh one after a lost
 * session (the server restarted) keeps the connections that still carry
 * media and moves them to the peers' new ids (rebind).
 * @param {any} detail
 * @param {string} name
 */
function onWelcome(detail, name) {
  if (Array.isArray(detail.iceServers) && detail.iceServers.length) {
    rtcConfig.iceServers = detail.iceServers;
    for (const p of state.peers.values()) p.setICEServers(detail.iceServers);
  }
  if (detail.resumed) {
    setStatus(`reconnected to room ${detail.room} as ${name}`);
    for (const p of state.peers.values()) p.resync();
    return;
  }
  const again = !!state.myId && state.mode === 'room';
  if (again) keepPeers();
  else for (const id of [...state.peers.keys()]) closePeer(id);
  for (const pc of connections) if (pc.connectionState === 'closed') connections.delete(pc);
  state.myId = detail.id;
  state.myName = name;
  state.names = new Map(detail.peers.map((/** @type {{id: string, name: string}} */ p) => [p.id, p.name]));
  showScreen('call');
  renderDevices();
  monitor.start();
  setStatus(again ? `rejoined room ${detail.room} as ${name}` : `in room ${detail.room} as ${name}`);
  people();
  if (state.mode === 'call') {
    // The lobby is where you start: who is here, and whom to call.
    openPanel('lobby', true);
    return;
  }
  // Tell kept peers who we are now, over their own connections.
  for (const p of state.peers.values()) p.sendMeta(myMeta());
  for (const p of detail.peers) {
    // Same id as before our session was lost: they saw us leave and
    // closed their side.
    if (state.peers.has(p.id)) closePeer(p.id);
    named(p.id);
    if (state.peers.has(p.id) || adopt(p.id) || orphanNamed(p.name)) continue;
    createPeer(p.id).start();
  }
}

/**
 * refused ends a join the server turned down.
 * @param {{code: string, message: string}} detail
 */
function refused(detail) {
  teardown();
  showScreen('prejoin');
  $('join').disabled = false;
  let text = detail.message;
  if (detail.code === 'bad-password') {
    const typed = !$('password-row').hidden && $('password').value !== '';
    sessionStorage.setItem(PASSWORD_KEY, '1');
    $('password-row').hidden = false;
    $('password').required = true;
    $('password').value = '';
    text = typed ? 'Wrong password. Check it and try again (each wrong try waits longer).' : 'This room needs a password. Type it and join.';
    $('password').focus();
  } else if (detail.code === 'name-taken') {
    $('name').select();
  }
  $('join-error').textContent = text;
  setStatus('not joined');
}

/** @type {number} the live reconnect countdown */
let countdown = 0;

/**
 * showCountdown counts down to the next reconnect, each second.
 * @param {number} delay ms
 */
function showCountdown(delay) {
  clearInterval(countdown);
  const at = performance.now() + delay;
  const tick = () => {
    const s = Math.max(0, Math.ceil((at - performance.now()) / 1000));
    if (state.myId) setStatus(s > 0 ? `connection to the server lost; reconnecting in ${s}s` : 'reconnecting…');
    else setStatus(s > 0 ? `cannot reach the server; retrying in ${s}s` : 'retrying…');
    if (s <= 0) clearInterval(countdown);
  };
  tick();
  countdown = window.setInterval(tick, 1000);
}

async function join() {
  const name = $('name').value.trim();
  if (!name) return;
  const needPassword = !$('password-row').hidden;
  const password = $('password').value;
  if (needPassword && !password) {
    // Never spend a throttled guess on an empty password.
    $('join-error').textContent = 'This room needs a password. Type it and join.';
    $('password').focus();
    return;
  }
  localStorage.setItem('icebox-name', name);
  $('join').disabled = true;
  $('join-error').textContent = '';
  setStatus('joining…');
  if (state.mode === 'call' && window.Notification && Notification.permission === 'default') {
    // Asked while the click that joins still counts as the person's.
    Notification.requestPermission().catch(() => {});
  }
  await startMedia();
  const sig = new Signaling();
  state.sig = sig;
  sig.addEventListener('welcome', (ev) => {
    clearInterval(countdown);
    onWelcome(/** @type {CustomEvent} */ (ev).detail, name);
  });
  sig.addEventListener('peer-joined', (ev) => {
    const { detail } = /** @type {CustomEvent} */ (ev);
    state.names.set(detail.id, detail.name);
    named(detail.id);
    adopt(detail.id);
    if (!state.peers.has(detail.id) && !orphanNamed(detail.name)) chat.system(`${detail.name} joined`);
    people();
  });
  sig.addEventListener('peer-left', (ev) => {
    const { detail } = /** @type {CustomEvent} */ (ev);
    chat.system(`${state.names.get(detail.id) || 'someone'} left`);
    if (state.mode === 'call' && state.calls) state.calls.peerLeft(detail.id);
    closePeer(detail.id);
    state.names.delete(detail.id);
    people();
  });
  sig.addEventListener('signal', (ev) => {
    const { detail } = /** @type {CustomEvent} */ (ev);
    const data = detail.data;
    if (!data || typeof data !== 'object') return;
    if (typeof data.chat === 'string') {
      chat.incoming(state.names.get(detail.from) || 'someone', data.chat);
      return;
    }
    if (state.mode === 'call' && state.calls) {
      if (typeof data.call === 'string') {
        state.calls.onSignal(detail.from, data);
        return;
      }
      // Media only from the person we are in a call with.
      if (!state.calls.inCallWith(detail.from)) return;
    }
    const peer = peerFor(detail.from, data);
    if (peer) peer.receive(data);
  });
  sig.addEventListener('ice-servers', (ev) => {
    const { detail } = /** @type {CustomEvent} */ (ev);
    rtcConfig.iceServers = detail.iceServers;
    for (const p of state.peers.values()) p.setICEServers(detail.iceServers);
  });
  sig.addEventListener('error', (ev) => {
    const { detail } = /** @type {CustomEvent} */ (ev);
    if (!state.myId && state.sig === sig) {
      sig.stop();
      refused(detail);
    } else {
      console.warn('signaling error', detail.code, detail.message);
    }
  });
  sig.addEventListener('reconnecting', (ev) => showCountdown(/** @type {CustomEvent} */ (ev).detail.delay));
  sig.addEventListener('closed', (ev) => {
    const { detail } = /** @type {CustomEvent} */ (ev);
    if (!state.leaving && state.myId) setStatus(`signaling closed (${detail.code} ${detail.reason || ''})`);
  });
  /** @type {Record<string, string>} */
  const msg = { type: 'join', room, name };
  if (needPassword) msg.password = password;
  sig.start(msg);
}

function leave() {
  state.leaving = true;
  if (state.mode === 'call' && state.calls) state.calls.hangup();
  clearInterval(countdown);
  if (state.sig) {
    state.sig.send({ type: 'leave' });
    state.sig.stop();
    state.sig = null;
  }
  teardown();
  showScreen('left');
  $('join').disabled = false;
  setStatus('left the room');
  $('rejoin').focus();
  state.leaving = false;
}

// ---- wiring

/** @param {'audio'|'video'} kind */
function toggleMedia(kind) {
  if (media.toggle(kind) === null) return;
  renderDevices();
  for (const p of state.peers.values()) p.sendMeta(myMeta());
}

/**
 * pick switches to the device chosen in a picker.
 * @param {'audioinput'|'videoinput'|'audiooutput'} kind
 */
async function pick(kind) {
  const id = pickers[kind].value;
  if (kind === 'audiooutput') {
    await media.use(kind, id);
    setSpeaker(document, id);
    return;
  }
  try {
    const track = await media.use(kind, id);
    if (!track) return;
    for (const p of state.peers.values()) p.replaceTrack(track);
    $('preview-video').dataset.tracks = '';
    $('local-video').dataset.tracks = '';
    renderDevices();
  } catch (err) {
    const e = /** @type {any} */ (err);
    $('device-status').textContent = `That device could not start (${e.name || e}).`;
  }
}

/**
 * ring shows an incoming call where the eye is: a tone, the title, and
 * a system notification when permitted and the page is not in view.
 * @param {{state: string, text: string}} view
 */
function ring(view) {
  if (view.state !== 'incoming') {
    ringer.stop();
    document.title = TITLE;
    return;
  }
  ringer.start();
  document.title = `📞 ${view.text} · ${TITLE}`;
  if (window.Notification && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
    const n = new Notification('Incoming call', { body: view.text, tag: 'icebox-call', icon: '/static/icon.svg' });
    n.addEventListener('click', () => { window.focus(); n.close(); });
  }
}

function setup() {
  if (state.mode === 'call') {
    const calls = new CallControl({
      send: (/** @type {string} */ to, /** @type {object} */ data) => !!state.sig && state.sig.signal(to, data),
      nameOf: (/** @type {string} */ id) => state.names.get(id) || 'someone',
      startCall: (/** @type {string} */ id) => createPeer(id).start(),
      endMedia: (/** @type {string} */ id) => closePeer(id),
      render: (/** @type {import('./callmode.js').CallView} */ view) => { renderCallBar(view); ring(view); people(); },
    });
    state.calls = calls;
    $('accept').addEventListener('click', () => calls.accept());
    $('decline').addEventListener('click', () => calls.decline());
    $('hangup').addEventListener('click', () => calls.hangup());
    $('mode-toggle').textContent = 'Switch to room mode';
    $('mode-toggle').href = '?';
    $('mode-toggle').title = 'Room mode: everyone who opens the link is in one call together';
  }
  const link = shareLink();
  $('share-link').value = link;
  $('share-link').dataset.link = link;
  $('name').value = params.get('name') || localStorage.getItem('icebox-name') || '';
  if (document.body.dataset.password === 'required' || sessionStorage.getItem(PASSWORD_KEY)) {
    $('password-row').hidden = false;
    $('password').required = true;
  }
  $('name').addEventListener('input', () => renderDevices());
  $('join-form').addEventListener('submit', (/** @type {Event} */ ev) => {
    ev.preventDefault();
    join();
  });
  $('device-retry').addEventListener('click', () => {
    media.stopAll();
    startMedia();
  });
  for (const kind of /** @type {const} */ (['videoinput', 'audioinput', 'audiooutput'])) {
    pickers[kind].addEventListener('change', () => pick(kind));
  }
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener('devicechange', () => refreshPickers());
  // The pre-join meter: how loud the microphone is, while it shows.
  setInterval(() => {
    if (!$('prejoin').hidden && !$('meter-row').hidden) $('mic-meter').value = Math.min(1, meter.level() * 4);
  }, 100);
  // In the call: ask again; tracks that come are sent on every connection.
  $('media-retry').addEventListener('click', () => startMedia());
  $('media-note-close').addEventListener('click', () => {
    state.noteClosed = true;
    $('media-note').hidden = true;
  });
  $('rejoin').addEventListener('click', () => {
    showScreen('prejoin');
    setStatus('');
    startMedia();
  });
  $('leave').addEventListener('click', leave);
  $('mute').addEventListener('click', () => toggleMedia('audio'));
  $('camera').addEventListener('click', () => toggleMedia('video'));
  $('share-screen').addEventListener('click', () => toggleShare());
  const toggleLayout = () => {
    tiles.mode = tiles.mode === 'auto' ? 'grid' : 'auto';
    renderLayout(tiles.mode);
    tiles.layout();
  };
  $('layout-toggle').addEventListener('click', toggleLayout);
  $('chat-toggle').addEventListener('click', () => openPanel('chat', $('chat').hidden));
  $('people-toggle').addEventListener('click', () => openPanel('lobby', $('lobby').hidden));
  for (const b of document.querySelectorAll('[data-close]')) {
    b.addEventListener('click', () => openPanel(/** @type {HTMLElement} */ (b).dataset.close || '', false));
  }
  document.addEventListener('keydown', (ev) => {
    if ($('call').hidden || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = /** @type {HTMLElement} */ (ev.target);
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (ev.key === 'm' || ev.key === 'M') toggleMedia('audio');
    else if (ev.key === 'v' || ev.key === 'V') toggleMedia('video');
    else if (ev.key === 'g' || ev.key === 'G') toggleLayout();
    else if (ev.key === 'Escape') { openPanel('chat', false); openPanel('lobby', false); }
  });
  // A network change (Wi-Fi to mobile, back online): new paths may be
  // needed at once, before the old ones time out.
  const renew = () => { for (const p of state.peers.values()) p.restart('network change'); };
  window.addEventListener('online', renew);
  const conn = /** @type {any} */ (navigator).connection;
  if (conn && conn.addEventListener) conn.addEventListener('change', renew);
  /** @param {HTMLButtonElement} button */
  const copyLink = async (button) => {
    try {
      await navigator.clipboard.writeText(link);
      setStatus('link copied');
      button.textContent = 'Copied';
      setTimeout(() => { button.textContent = 'Copy link'; }, 2000);
    } catch {
      $('share-link').select();
      setStatus('select and copy the link');
    }
  };
  $('copy-link').addEventListener('click', () => copyLink($('copy-link')));
  $('invite-copy').addEventListener('click', () => copyLink($('invite-copy')));
  $('chat-form').addEventListener('submit', (/** @type {Event} */ ev) => {
    ev.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    sendChat(text);
    $('chat-input').value = '';
  });
  if (rtcConfig.iceTransportPolicy === 'relay') setStatus('relay only');
  renderDevices();
  renderLayout(tiles.mode);
  if (params.get('autojoin') === '1' && $('name').value.trim() && $('password-row').hidden) {
    join();
  } else {
    // A room known to need a password is not joined with an empty one.
    if (!$('password-row').hidden && $('name').value.trim()) $('password').focus();
    else if (!$('name').value.trim()) $('name').focus();
    startMedia();
  }
}

setup();
