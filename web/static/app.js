// The call page: a pre-join screen (camera preview, name, a room password
// when the room asks for one), then a mesh call with everyone in the room
// (or, with ?mode=call, a lobby where you call one person), chat, and a
// control bar. The RTCConfiguration comes from the page (#ice-config) and
// is replaced by the servers of welcome and ice-servers messages.
import { Signaling } from './signal.js';
import { Peer } from './mesh.js';
import { CallControl } from './callmode.js';
import { LocalMedia } from './media.js';
import { Tiles } from './tiles.js';
import { ChatLog } from './chat.js';
import { $, setStatus, openPanel, countUnread, showScreen, renderMedia, renderPeople, renderCallBar } from './view.js';

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/').pop() || '');
const rtcConfig = JSON.parse($('ice-config').textContent);
delete rtcConfig.ttl;
const PASSWORD_KEY = `icebox-password-needed:${room}`;

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
  leaving: false,
  mode: params.get('mode') === 'call' ? 'call' : 'room',
  /** @type {CallControl|null} */
  calls: null,
  noteClosed: false, // the in-call device note was dismissed
};
const media = new LocalMedia();
/** @type {Set<RTCPeerConnection>} every connection since the last join, for the test hook */
const connections = new Set();
const tiles = new Tiles($('tiles'), $('tile-local'));
const chat = new ChatLog($('messages'), countUnread);

// window.icebox is the one global: for the browser console and tests.
// state: the page's state; pairs(): the selected ICE candidate pair of
// each peer connection; tracks(): every local track the page started,
// with its readyState; connections(): every peer connection since the
// last join, with its connectionState.
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
};

/** shareLink is this room's address, in call mode too. */
function shareLink() {
  return `${location.origin}/r/${encodeURIComponent(room)}${state.mode === 'call' ? '?mode=call' : ''}`;
}

/** myMeta is what others should show on your tile. */
function myMeta() {
  return { mic: media.enabled('audio') === true, cam: media.enabled('video') === true };
}

/** renderDevices shows camera and microphone: preview, reasons, buttons, your tile. */
function renderDevices() {
  renderMedia(media, tiles, myMeta(), state.myName || $('name').value, state.noteClosed);
}

/** people redraws the list of people (with Call buttons in call mode). */
function people() {
  renderPeople(state.names, state.mode === 'call' ? state.calls : null, !!state.myId);
}

/** startMedia asks for camera and microphone and shows the outcome. */
async function startMedia() {
  if (!media.stream) $('preview-note').textContent = 'Starting camera…';
  const stream = await media.acquire();
  renderDevices();
  if (stream && state.myId) {
    for (const p of state.peers.values()) {
      p.setLocalStream(stream);
      p.sendMeta(myMeta());
    }
  }
  return stream;
}

// ---- peers

/** closePeer closes a peer's connection; its unsent chat is marked lost. */
function closePeer(id) {
  const name = state.names.get(id) || 'someone';
  const p = state.peers.get(id);
  const lost = p ? p.close() : [];
  for (const m of state.early.get(id) || []) lost.push(m.id);
  for (const line of lost) chat.lost(line, id, name);
  state.peers.delete(id);
  state.early.delete(id);
  tiles.remove(id);
}

function createPeer(id) {
  const peer = new Peer({
    id,
    name: state.names.get(id) || 'guest',
    myId: state.myId,
    rtcConfig,
    localStream: media.stream,
    send: (data) => state.sig && state.sig.signal(id, data),
    onTrack: (p, stream) => tiles.show(tiles.add(p.id, p.name), stream),
    onChat: (p, text) => chat.incoming(p.name, String(text)),
    onChatSent: (p, lines) => { for (const line of lines) chat.sent(line, p.id); },
    meta: myMeta,
    onMeta: (p, m) => tiles.setMeta(tiles.add(p.id, p.name), m),
    onState: (p, s) => {
      if (s !== 'failed') return;
      setStatus(`connection to ${p.name} failed`);
      if (state.mode === 'call' && state.calls) state.calls.connectionLost(p.id);
    },
  });
  connections.add(peer.pc);
  state.peers.set(id, peer);
  for (const m of state.early.get(id) || []) if (peer.sendChat(m.id, m.text)) chat.sent(m.id, id);
  state.early.delete(id);
  tiles.add(id, peer.name);
  return peer;
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

// ---- joining and leaving

/**
 * teardown ends everything of a call: peer connections closed, every
 * local track stopped, tiles gone.
 */
function teardown() {
  for (const id of [...state.peers.keys()]) closePeer(id);
  for (const id of [...state.early.keys()]) closePeer(id);
  media.stopAll();
  tiles.pin = null;
  state.myId = '';
  state.names = new Map();
  renderDevices();
}

// onWelcome handles a welcome: a fresh join (first, or after the resume
// window passed) rebuilds everything; a resumed one changes nothing.
function onWelcome(detail, name) {
  if (Array.isArray(detail.iceServers) && detail.iceServers.length) {
    rtcConfig.iceServers = detail.iceServers;
    for (const p of state.peers.values()) p.setICEServers(detail.iceServers);
  }
  if (detail.resumed) {
    setStatus(`reconnected to room ${detail.room} as ${name}`);
    return;
  }
  for (const id of [...state.peers.keys()]) closePeer(id);
  for (const pc of connections) if (pc.connectionState === 'closed') connections.delete(pc);
  state.myId = detail.id;
  state.myName = name;
  state.names = new Map(detail.peers.map((p) => [p.id, p.name]));
  showScreen('call');
  renderDevices();
  setStatus(`in room ${detail.room} as ${name}`);
  people();
  if (state.mode === 'call') {
    // The lobby is where you start: who is here, and whom to call.
    openPanel('lobby', true);
  } else {
    for (const p of detail.peers) createPeer(p.id).start();
  }
}

/** refused ends a join the server turned down. */
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
  await startMedia();
  const sig = new Signaling();
  state.sig = sig;
  sig.addEventListener('welcome', ({ detail }) => onWelcome(detail, name));
  sig.addEventListener('peer-joined', ({ detail }) => {
    state.names.set(detail.id, detail.name);
    chat.system(`${detail.name} joined`);
    people();
  });
  sig.addEventListener('peer-left', ({ detail }) => {
    chat.system(`${state.names.get(detail.id) || 'someone'} left`);
    if (state.mode === 'call' && state.calls) state.calls.peerLeft(detail.id);
    closePeer(detail.id);
    state.names.delete(detail.id);
    people();
  });
  sig.addEventListener('signal', ({ detail }) => {
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
    const peer = state.peers.get(detail.from) || createPeer(detail.from);
    peer.receive(data);
  });
  sig.addEventListener('ice-servers', ({ detail }) => {
    rtcConfig.iceServers = detail.iceServers;
    for (const p of state.peers.values()) p.setICEServers(detail.iceServers);
  });
  sig.addEventListener('error', ({ detail }) => {
    if (!state.myId && state.sig === sig) {
      sig.stop();
      refused(detail);
    } else {
      console.warn('signaling error', detail.code, detail.message);
    }
  });
  sig.addEventListener('reconnecting', ({ detail }) => {
    if (state.myId) setStatus(`connection lost; reconnecting in ${detail.delay / 1000}s`);
    else setStatus('cannot reach the server; retrying');
  });
  sig.addEventListener('closed', ({ detail }) => {
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

function toggleMedia(kind) {
  if (media.toggle(kind) === null) return;
  renderDevices();
  for (const p of state.peers.values()) p.sendMeta(myMeta());
}

function setup() {
  if (state.mode === 'call') {
    const calls = new CallControl({
      send: (to, data) => state.sig && state.sig.signal(to, data),
      nameOf: (id) => state.names.get(id) || 'someone',
      startCall: (id) => createPeer(id).start(),
      endMedia: (id) => closePeer(id),
      render: (view) => { renderCallBar(view); people(); },
    });
    state.calls = calls;
    $('accept').addEventListener('click', () => calls.accept());
    $('decline').addEventListener('click', () => calls.decline());
    $('hangup').addEventListener('click', () => calls.hangup());
    $('mode-toggle').textContent = 'Switch to room mode';
    $('mode-toggle').href = '?';
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
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    join();
  });
  $('device-retry').addEventListener('click', () => {
    media.stopAll();
    startMedia();
  });
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
    else if (ev.key === 'Escape') { openPanel('chat', false); openPanel('lobby', false); }
  });
  $('copy-link').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(link);
      setStatus('link copied');
    } catch {
      $('share-link').select();
      setStatus('select and copy the link');
    }
  });
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    sendChat(text);
    $('chat-input').value = '';
  });
  if (rtcConfig.iceTransportPolicy === 'relay') setStatus('relay only');
  renderDevices();
  if (params.get('autojoin') === '1' && $('name').value.trim() && $('password-row').hidden) {
    join();
  } else {
    // A room known to need a password is not joined with an empty one.
    if (!$('password-row').hidden && $('name').value.trim()) $('password').focus();
    startMedia();
  }
}

setup();
