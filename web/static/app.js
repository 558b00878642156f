// The call page: room by link, a mesh call with everyone in the room, and
// chat over an RTCDataChannel. The RTCConfiguration comes from the page
// (#ice-config) and is refreshed by the signaling server.
import { Signaling } from './signal.js';
import { Peer } from './mesh.js';
import { CallControl } from './callmode.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/').pop());
const rtcConfig = JSON.parse($('ice-config').textContent);
delete rtcConfig.ttl;

const state = {
  sig: null,
  myId: '',
  myName: '',
  localStream: null,
  peers: new Map(), // peer id → Peer
  names: new Map(), // peer id → display name
  leaving: false,
  mode: params.get('mode') === 'call' ? 'call' : 'room',
  calls: null, // CallControl in call mode
};

// Exposed for diagnostics in the browser console and for tests.
window.icebox = {
  state,
  async pairs() {
    const out = {};
    for (const [id, p] of state.peers) out[id] = await p.selectedPair();
    return out;
  },
};

function setStatus(text) { $('status').textContent = text; }

function addChatLine(from, text, system = false) {
  const li = document.createElement('li');
  if (system) {
    li.className = 'system';
    li.textContent = text;
  } else {
    const b = document.createElement('span');
    b.className = 'from';
    b.textContent = from;
    li.append(b, document.createTextNode(text));
  }
  $('messages').append(li);
  li.scrollIntoView({ block: 'end' });
}

function tileFor(peer) {
  let tile = document.getElementById(`tile-${peer.id}`);
  if (!tile) {
    tile = document.createElement('figure');
    tile.className = 'tile remote';
    tile.id = `tile-${peer.id}`;
    tile.dataset.peer = peer.id;
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const cap = document.createElement('figcaption');
    cap.textContent = peer.name || 'guest';
    tile.append(video, cap);
    tile.addEventListener('click', () => {
      if (tile.classList.contains('muted')) {
        video.muted = false;
        tile.classList.remove('muted');
        return;
      }
      toggleStage(tile);
    });
    $('tiles').append(tile);
  }
  return tile;
}

// toggleStage makes a tile the large one, or puts it back.
function toggleStage(tile) {
  const stage = $('stage');
  const current = stage.firstElementChild;
  if (current) $('tiles').append(current);
  if (current !== tile) stage.append(tile);
}

function removePeer(id) {
  const p = state.peers.get(id);
  if (p) p.close();
  state.peers.delete(id);
  const tile = document.getElementById(`tile-${id}`);
  if (tile) tile.remove();
}

function createPeer(id) {
  const peer = new Peer({
    id,
    name: state.names.get(id) || 'guest',
    myId: state.myId,
    rtcConfig,
    localStream: state.localStream,
    send: (data) => state.sig.signal(id, data),
    onTrack: (p, stream) => {
      const tile = tileFor(p);
      const video = tile.querySelector('video');
      if (video.srcObject === stream) return;
      video.srcObject = stream;
      video.play().catch(() => {
        // Autoplay with sound was blocked: play muted until a click.
        video.muted = true;
        tile.classList.add('muted');
        video.play().catch(() => {});
      });
    },
    onChat: (p, text) => addChatLine(p.name, String(text).slice(0, 2000)),
    onState: (p, s) => {
      if (s !== 'failed') return;
      setStatus(`connection to ${p.name} failed`);
      if (state.mode === 'call') state.calls.connectionLost(p.id);
    },
  });
  state.peers.set(id, peer);
  tileFor(peer);
  return peer;
}

async function getMedia() {
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 640, height: 480 } });
  } catch (err) {
    setStatus(`no camera or microphone (${err.name}); joining to watch and listen`);
    return null;
  }
}

// The lobby list of call mode: everyone else, with a Call button.
function renderLobby() {
  if (state.mode !== 'call') return;
  const list = $('people');
  list.replaceChildren();
  for (const [id, name] of state.names) {
    const li = document.createElement('li');
    li.dataset.peer = id;
    const label = document.createElement('span');
    label.textContent = name;
    const btn = document.createElement('button');
    btn.type = 'button';
    btn.textContent = 'Call';
    btn.className = 'call-button';
    btn.disabled = state.calls.state !== 'idle';
    btn.addEventListener('click', () => state.calls.call(id));
    li.append(label, btn);
    list.append(li);
  }
  $('nobody').hidden = state.names.size > 0;
}

function renderCall({ state: s, text }) {
  $('callbar').hidden = false;
  $('call-status').textContent = text;
  $('accept').hidden = s !== 'incoming';
  $('decline').hidden = s !== 'incoming';
  $('hangup').hidden = s !== 'ringing' && s !== 'connected';
  renderLobby();
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
  for (const id of [...state.peers.keys()]) removePeer(id);
  state.myId = detail.id;
  state.myName = name;
  state.names = new Map(detail.peers.map((p) => [p.id, p.name]));
  $('join-form').hidden = true;
  $('call').hidden = false;
  $('chat').hidden = false;
  $('lobby').hidden = state.mode !== 'call';
  setStatus(`in room ${detail.room} as ${name}`);
  if (state.mode === 'call') {
    renderLobby();
  } else {
    for (const p of detail.peers) createPeer(p.id).start();
  }
}

async function join(name) {
  $('join').disabled = true;
  $('join-error').textContent = '';
  if (!state.localStream) {
    state.localStream = await getMedia();
    if (state.localStream) $('local-video').srcObject = state.localStream;
  }
  const sig = new Signaling();
  state.sig = sig;
  sig.addEventListener('welcome', ({ detail }) => onWelcome(detail, name));
  sig.addEventListener('peer-joined', ({ detail }) => {
    state.names.set(detail.id, detail.name);
    addChatLine('', `${detail.name} joined`, true);
    renderLobby();
  });
  sig.addEventListener('peer-left', ({ detail }) => {
    addChatLine('', `${state.names.get(detail.id) || 'someone'} left`, true);
    if (state.mode === 'call') state.calls.peerLeft(detail.id);
    state.names.delete(detail.id);
    removePeer(detail.id);
    renderLobby();
  });
  sig.addEventListener('signal', ({ detail }) => {
    const data = detail.data;
    if (!data || typeof data !== 'object') return;
    if (state.mode === 'call') {
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
    if (!state.myId) {
      $('join-error').textContent = detail.message;
      $('join').disabled = false;
      if (detail.code === 'name-taken') $('name').select();
      sig.stop();
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
  sig.start({ type: 'join', room, name });
}

function leave() {
  state.leaving = true;
  if (state.mode === 'call') state.calls.hangup();
  if (state.sig) {
    state.sig.send({ type: 'leave' });
    state.sig.stop();
  }
  for (const id of [...state.peers.keys()]) removePeer(id);
  state.myId = '';
  state.names = new Map();
  $('call').hidden = true;
  $('chat').hidden = true;
  $('lobby').hidden = true;
  $('join-form').hidden = false;
  $('join').disabled = false;
  setStatus('left the room');
  state.leaving = false;
}

function setup() {
  if (state.mode === 'call') {
    state.calls = new CallControl({
      send: (to, data) => state.sig.signal(to, data),
      nameOf: (id) => state.names.get(id) || 'someone',
      startCall: (id) => createPeer(id).start(),
      endMedia: (id) => removePeer(id),
      render: renderCall,
    });
    $('accept').addEventListener('click', () => state.calls.accept());
    $('decline').addEventListener('click', () => state.calls.decline());
    $('hangup').addEventListener('click', () => state.calls.hangup());
    $('mode-toggle').textContent = 'Switch to room mode';
    $('mode-toggle').href = '?';
  }
  $('name').value = params.get('name') || localStorage.getItem('icebox-name') || '';
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('name').value.trim();
    if (!name) return;
    localStorage.setItem('icebox-name', name);
    join(name);
  });
  $('leave').addEventListener('click', leave);
  $('mute').addEventListener('click', () => {
    const tracks = state.localStream ? state.localStream.getAudioTracks() : [];
    for (const t of tracks) t.enabled = !t.enabled;
    $('mute').textContent = tracks.some((t) => !t.enabled) ? 'Unmute' : 'Mute';
  });
  $('camera').addEventListener('click', () => {
    const tracks = state.localStream ? state.localStream.getVideoTracks() : [];
    for (const t of tracks) t.enabled = !t.enabled;
    $('camera').textContent = tracks.some((t) => !t.enabled) ? 'Camera on' : 'Camera off';
  });
  $('copy-link').addEventListener('click', async () => {
    const link = `${location.origin}/r/${encodeURIComponent(room)}`;
    try {
      await navigator.clipboard.writeText(link);
      setStatus('link copied');
    } catch {
      setStatus(link);
    }
  });
  $('chat-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const text = $('chat-input').value.trim();
    if (!text) return;
    for (const p of state.peers.values()) p.sendChat(text);
    addChatLine(state.myName || 'me', text);
    $('chat-input').value = '';
  });
  $('tile-local').addEventListener('click', () => toggleStage($('tile-local')));
  if (rtcConfig.iceTransportPolicy === 'relay') setStatus('relay only');
  if (params.get('autojoin') === '1' && $('name').value.trim()) {
    join($('name').value.trim());
  }
}

setup();
