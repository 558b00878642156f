// The call page's view: a pre-join screen (camera preview, device
// pickers, a microphone meter, name, a room password when the room asks
// for one), then a mesh call with everyone in the room (or, with
// ?mode=call, a lobby where you call one person), screen share, chat,
// and a control bar. The call itself (people, connections, recovery,
// the chat outbox) is session.js; this file renders its events and
// turns clicks into its calls. The RTCConfiguration comes from the page
// (#ice-config) and is replaced by the servers of welcome and
// ice-servers messages.
import { Session } from './session.js';
import { layerFor } from './sfu.js';
import { mediaState, label, REATTACH_GRACE_MS, RESTART_GRACE_MS } from './health.js';
import * as testHook from './testhook.js';
import { CallControl } from './callmode.js';
import { LocalMedia } from './media.js';
import { Tiles } from './tiles.js';
import { ChatLog } from './chat.js';
import { LevelMeter, Ringer } from './audio.js';
import { fillPickers, setSpeaker } from './devices.js';
import { Monitor, badgeText, details } from './monitor.js';
import { bad } from './stats.js';
import { $, setStatus, announce, openPanel, countUnread, showScreen, renderMedia, renderPeople, renderCallBar,
  renderBanner, renderShare, renderLayout, renderInvite } from './view.js';

const params = new URLSearchParams(location.search);
const room = decodeURIComponent(location.pathname.split('/').pop() || '');
/** @type {RTCConfiguration & {ttl?: number}} */
const rtcConfig = JSON.parse($('ice-config').textContent);
delete rtcConfig.ttl;
const PASSWORD_KEY = `icebox-password-needed:${room}`;
const TITLE = document.title;

const mode = params.get('mode') === 'call' ? 'call' : 'room';
const media = new LocalMedia();
const session = new Session({
  room, mode, rtcConfig,
  stream: () => media.stream,
  screen: () => media.screen,
  meta: () => myMeta(),
});
/** What the view alone keeps. */
const view = {
  leaving: false,
  noteClosed: false, // the in-call device note was dismissed
  /** when the page started, and when the first remote video played (performance.now) */
  timing: { start: performance.now(), mediaReady: 0, firstVideo: 0 },
};
const tiles = new Tiles($('tiles'), $('tile-local'));
const chat = new ChatLog($('messages'), countUnread);
const meter = new LevelMeter();
const ringer = new Ringer();
const pickers = {
  videoinput: $('pick-videoinput'), audioinput: $('pick-audioinput'), audiooutput: $('pick-audiooutput'),
};
/** the active speaker the SFU last named ('' none) */
let sfuSpeaker = '';
/** @type {Map<string, string>} SFU track id → the largest layer last asked for */
const asked = new Map();

/** the SFU connection's last getStats sample, for the tiles' badges */
/** @type {import('./stats.js').NetInfo|null} */
let sfuNet = null;

/**
 * sfuBadge puts the SFU connection's badge on person id's tile.
 * @param {string} id
 */
function sfuBadge(id) {
  const n = sfuNet;
  const rtt = n && n.rtt !== null ? ` · ${n.rtt} ms` : '';
  const lines = ['Forwarded by the server (SFU): one connection carries everyone'];
  if (n) lines.push(...details(n).split('\n').slice(1));
  tiles.setNet(id, `Via server${rtt}`, lines.join('\n'), `relay${n && bad(n) ? ' bad' : ''}`);
}

/**
 * showSFU puts what the SFU sends on tiles: one per peer that publishes a
 * camera or microphone (its stream is named after it), a screen tile per
 * screen share (on the stage), and asks for the camera layer that fits
 * the number of tiles (sfu.js layerFor). A tile
 * still showing a mesh connection's video (the room just moved to the
 * SFU) changes over once the SFU's video presents frames, and the mesh
 * connection then closes. After a move back to a mesh the tiles are the
 * mesh's (showStreams).
 */
function showSFU() {
  if (session.media !== 'sfu') return;
  const sfu = session.sfu;
  /** @type {Set<string>} */
  const owners = new Set();
  /** @type {Set<string>} peers whose screen share the SFU sends */
  const sharing = new Set();
  for (const t of session.sfuTracks) {
    if (!session.names.has(t.peer)) continue;
    const stream = sfu && sfu.streamOf(t.stream);
    if (t.source === 'screen') {
      sharing.add(t.peer);
      // A share still shown from a mesh connection stays until this one presents.
      if (stream && stream.getVideoTracks().some((x) => x.readyState === 'live')) {
        tiles.swap(tiles.addScreen(t.peer, session.nameOf(t.peer)), stream);
      }
      continue;
    }
    if (!stream) continue;
    owners.add(t.peer);
    const peer = t.peer;
    tiles.swap(tiles.add(peer, session.nameOf(peer)), stream).then((shown) => { if (shown) session.sfuShown(peer); });
    sfuBadge(peer);
  }
  for (const el of document.querySelectorAll('.tile.remote')) {
    const id = /** @type {HTMLElement} */ (el).dataset.peer || '';
    if (!owners.has(id) && !sharing.has(id) && !session.peers.has(id)) tiles.remove(id);
    else if (el.classList.contains('screen') && !sharing.has(id) && !session.peers.has(id)) tiles.removeScreen(id);
  }
  const layer = layerFor(owners.size);
  for (const t of session.sfuTracks) {
    if (t.kind !== 'video' || t.source === 'screen' || asked.get(t.track) === layer) continue;
    asked.set(t.track, layer);
    session.setLayer(t.track, layer);
  }
  for (const id of [...asked.keys()]) if (!session.sfuTracks.some((t) => t.track === id)) asked.delete(id);
  setSpeaker(document, media.choice.audiooutput || '');
  tiles.layout();
}

const monitor = new Monitor({
  peers: () => session.peers,
  myLevel: () => meter.level(),
  onSpeaking: (speaking, active) => {
    // In an SFU room the server names the active speaker (from the audio
    // levels of what everyone publishes).
    if (session.media === 'sfu') {
      if (sfuSpeaker) speaking.add(sfuSpeaker);
      active = sfuSpeaker;
    }
    tiles.setSpeaking(speaking, active);
  },
  sfu: () => (session.sfu ? session.sfu.pc : null),
  onSFUNet: (n) => {
    sfuNet = n;
    if (session.media !== 'sfu') return;
    for (const t of session.sfuTracks) if (session.names.has(t.peer)) sfuBadge(t.peer);
  },
  onNet: (p, n) => {
    p.relayed = n.path === 'relay';
    // In an SFU room (a mesh connection kept while the SFU takes over) the tile says the SFU's.
    if (session.media === 'sfu') return;
    tiles.setNet(p.id, badgeText(n), details(n), `${n.path}${bad(n) ? ' bad' : ''}`);
  },
  onBanner: renderBanner,
});
if (testHook.wanted(params)) {
  testHook.install({ session, media, monitor, ringing: () => ringer.ringing, timing: view.timing });
}

/** shareLink is this room's address, in call mode too. */
function shareLink() {
  return `${location.origin}/r/${encodeURIComponent(room)}${mode === 'call' ? '?mode=call' : ''}`;
}

/**
 * myMeta is what others should show on your tile, and who you are.
 * @returns {import('./mesh.js').Meta}
 */
function myMeta() {
  return { id: session.myId, mic: media.enabled('audio') === true, cam: media.enabled('video') === true,
    screen: media.screen ? media.screen.id : null };
}

/** renderDevices shows camera and microphone: preview, reasons, buttons, your tile, pickers, meter. */
function renderDevices() {
  watchLocal();
  renderMedia(media, tiles, myMeta(), session.myName || $('name').value, view.noteClosed);
  meter.use(media.stream);
  $('meter-row').hidden = !media.has('audio');
  renderShare(!!media.screen, !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia));
}

/** @type {WeakSet<MediaStreamTrack>} local tracks whose end is watched */
const watched = new WeakSet();

/**
 * watchLocal notices a camera or microphone track that ends by itself
 * (the device unplugged, or taken by another program): it leaves the
 * stream, your tile and buttons say so, the others are told, and the
 * note offers "Try again" (and the settings another device).
 * Watched through the track's onended handler, which every ended event
 * reaches in Chromium and Firefox alike: Firefox (ESR 153) gives an event
 * dispatched to a MediaStreamTrack by script (as the test hook's endTrack
 * does) to the handler attribute only, not to addEventListener's.
 */
function watchLocal() {
  for (const t of media.stream ? media.stream.getTracks() : []) {
    if (watched.has(t)) continue;
    watched.add(t);
    t.onended = () => {
      if (!media.lost(t)) return;
      view.noteClosed = false;
      renderDevices();
      refreshPickers();
      for (const p of session.peers.values()) p.sendMeta(myMeta());
    };
  }
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
  renderPeople(session.names, mode === 'call' ? session.calls : null, !!session.myId, session.myName);
  renderInvite(mode === 'room' && !!session.myId && session.names.size === 0);
}

/** startMedia asks for camera and microphone and shows the outcome. */
async function startMedia() {
  if (!media.stream) $('preview-note').textContent = 'Starting camera…';
  const stream = await media.acquire();
  if (stream && !view.timing.mediaReady) view.timing.mediaReady = performance.now();
  renderDevices();
  refreshPickers();
  if (stream && session.myId) {
    for (const p of session.peers.values()) {
      p.setLocalStream(stream);
      p.sendMeta(myMeta());
    }
    if (session.sfu && !session.sfu.senders.length) session.sfu.publish(stream);
  }
  return stream;
}

/**
 * showStreams puts what a peer sends on its tiles: its camera on its
 * tile, a screen share on a tile of its own (on the stage).
 * @param {import('./mesh.js').Peer} p
 */
function showStreams(p) {
  // Kept while the SFU takes over the tile.
  if (session.media === 'sfu') return;
  if (p.remote.screen) p.screens.add(p.remote.screen);
  let shown = false;
  for (const [sid, stream] of p.streams) {
    if (sid === p.remote.screen) {
      if (stream.getVideoTracks().some((t) => t.readyState === 'live')) {
        tiles.show(tiles.addScreen(p.id, p.name), stream);
        shown = true;
      }
    } else if (p.screens.has(sid)) {
      p.streams.delete(sid); // an earlier share
    } else {
      // Right after a move back from the SFU, its video stays until this one presents.
      tiles.swap(tiles.add(p.id, p.name), stream).then((ok) => { if (ok && p.streams.get(sid) === stream) session.meshShown(p.id); });
    }
  }
  if (!shown) tiles.removeScreen(p.id);
  setSpeaker(document, media.choice.audiooutput || '');
  tiles.layout();
}

/**
 * cameraTracks are the tracks a peer's camera arrives on now: the first
 * audio and video receivers (a screen share comes on later ones).
 * @param {import('./mesh.js').Peer} p
 * @returns {MediaStreamTrack[]}
 */
function cameraTracks(p) {
  /** @type {MediaStreamTrack[]} */
  const out = [];
  for (const kind of ['audio', 'video']) {
    const tr = p.pc.getTransceivers().find((t) => t.receiver.track.kind === kind && t.currentDirection !== 'stopped');
    if (tr) out.push(tr.receiver.track);
  }
  return out;
}

/** @type {Map<string, boolean>} peer id → whether its microphone was on, as it last said */
const mics = new Map();

/** @type {Map<string, string>} peer id → the media state last announced */
const announced = new Map();

/**
 * checkMedia says on each remote tile what the page measures of its media
 * (health.js), and recovers a stalled video: first its element is given
 * the receiver's current tracks again, then, still stalled, ICE restarts.
 */
function checkMedia() {
  const now = performance.now();
  for (const p of session.peers.values()) {
    const tile = document.getElementById(`tile-${p.id}`);
    if (!tile) continue;
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const src = video.srcObject instanceof MediaStream ? video.srcObject : null;
    // Still the SFU's video (the room is moving back to a mesh): not this connection's to judge.
    if (session.media === 'sfu' || (src && session.sfu && session.sfu.from(src))) continue;
    const vt = src ? src.getVideoTracks()[0] : undefined;
    const state = mediaState({
      now, since: p.createdAt, everConnected: p.everConnected,
      connectionState: p.pc.connectionState, iceConnectionState: p.pc.iceConnectionState,
      camOn: p.remote.cam !== false,
      track: !vt ? 'none' : vt.readyState === 'ended' ? 'ended' : vt.muted ? 'muted' : 'live',
      lastFrameAt: tiles.frameAt(tile),
    });
    tiles.setState(tile, state, label(state, p.name), state === 'cant-connect');
    if (state === 'stalled') recover(p, tile, now, video);
    // Recovered once a frame is presented after the last step (a stream
    // just given counts as ok for STALL_MS, not as recovered).
    else if (state === 'ok' && tiles.presentedAt(tile) > p.recovery.at) p.recovery = { step: 0, at: 0 };
    const said = announced.get(p.id) || 'ok';
    if (state !== said && (state === 'cant-connect' || state === 'stalled' || (state === 'ok' && said === 'stalled'))) {
      setStatus(state === 'ok' ? `${p.name}'s video is back` : label(state, p.name).replace('…', ''));
    }
    announced.set(p.id, state);
  }
  for (const id of announced.keys()) if (!session.peers.has(id)) announced.delete(id);
}

/**
 * reattach gives a tile's element the receiver's current camera tracks if
 * it is on a stale one (a track the connection no longer receives on).
 * An element already on them is left alone: given the same tracks in a
 * new stream, Chromium may present nothing more at all. The new stream
 * replaces the camera's in p.streams, so showStreams keeps it.
 * @param {import('./mesh.js').Peer} p
 * @param {HTMLElement} tile
 * @param {HTMLVideoElement} video the tile's
 * @returns {boolean} whether the element was given new tracks
 */
function reattach(p, tile, video) {
  const tracks = cameraTracks(p);
  const current = tracks.find((t) => t.kind === 'video');
  const shown = video.srcObject instanceof MediaStream ? video.srcObject.getVideoTracks()[0] : undefined;
  if (!current || current === shown) return false;
  const stream = new MediaStream(tracks);
  for (const sid of [...p.streams.keys()]) if (sid !== p.remote.screen && !p.screens.has(sid)) p.streams.delete(sid);
  p.streams.set(stream.id, stream);
  tiles.show(tile, stream);
  return true;
}

/**
 * recover takes the next step for a stalled video.
 * @param {import('./mesh.js').Peer} p
 * @param {HTMLElement} tile
 * @param {number} now
 * @param {HTMLVideoElement} video the tile's
 */
function recover(p, tile, now, video) {
  const r = p.recovery;
  if (r.step === 0) {
    p.recovery = { step: 1, at: now };
    if (reattach(p, tile, video)) {
      console.info('video from', p.name, 'stalled: re-attached its tracks');
    } else {
      p.recovery = { step: 1, at: now - REATTACH_GRACE_MS };
      console.info('video from', p.name, 'stalled on its current track');
    }
  } else if (r.step === 1 && now - r.at >= REATTACH_GRACE_MS) {
    // An ICE restart needs signaling to carry its offer, and one already
    // under way (after a server restart the session restarts every kept
    // connection itself) must not be cut short by another: a second
    // restart throws away the relay candidates the first is gathering.
    if (!session.online || p.orphan || now - p.restartedAt < RESTART_GRACE_MS) return;
    // Packets still arriving mean the path works (a slow decoder, a busy
    // machine): an ICE restart would only interrupt it.
    // Judged on each new getStats sample (monitor.js, every 2 s).
    const n = monitor.net.get(p.id);
    if (n) {
      if (n.at === p.stallSampleAt) return;
      p.stallSampleAt = n.at;
      const packets = n.totals.inbound ? n.totals.inbound.received : 0;
      if (packets > p.stallPackets) {
        p.stallPackets = packets;
        return;
      }
    }
    p.recovery = { step: 2, at: now };
    p.restart('video stalled');
  } else if (r.step === 2 && now - r.at >= 10000) {
    p.recovery = { step: 0, at: now }; // try again from the start
  }
}

/**
 * sendChat writes a line in the log and sends it to everyone in the room.
 * @param {string} text
 */
function sendChat(text) {
  const line = chat.mine(session.myName || 'me', text, [...session.names.keys()]);
  session.sendChat(line, text);
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
    const e = /** @type {{name?: string, message?: string}} */ (err);
    if (e && e.name !== 'NotAllowedError') setStatus(`cannot share the screen: ${e.message || e.name}`);
    return;
  }
  const v = /** @type {HTMLVideoElement} */ ($('presenting-video'));
  v.srcObject = stream;
  $('presenting').hidden = false;
  session.shareScreen(stream);
  for (const p of session.peers.values()) p.sendMeta(myMeta());
  renderDevices();
  setStatus('you are sharing your screen');
}

/** stopShare ends your screen share: from the button or the browser's own bar. */
function stopShare() {
  media.stopShare();
  /** @type {HTMLVideoElement} */ ($('presenting-video')).srcObject = null;
  $('presenting').hidden = true;
  session.stopScreen();
  for (const p of session.peers.values()) p.sendMeta(myMeta());
  renderDevices();
  if (session.myId) setStatus('you stopped sharing');
}

// ---- joining and leaving

/**
 * teardown ends everything of a call: peer connections closed, every
 * local track stopped, tiles gone.
 */
function teardown() {
  endCall();
  media.stopAll();
  /** @type {HTMLVideoElement} */ ($('presenting-video')).srcObject = null;
  $('presenting').hidden = true;
  renderDevices();
}

/**
 * endCall ends the call but keeps camera and microphone on (the preview
 * stays, as after a refused join whose fix is typing).
 */
function endCall() {
  clearInterval(mediaTimer);
  session.reset();
  tiles.removeScreen('');
  meter.stop();
  monitor.stop();
  renderBanner('', false);
  ringer.stop();
  tiles.pin = null;
  renderInvite(false);
}

/**
 * refused ends a join the server turned down.
 * @param {{code: string, message: string}} detail
 */
function refused(detail) {
  // A wrong password or a name taken is fixed by typing: the preview
  // stays on meanwhile. Anything else ends it.
  if (detail.code === 'bad-password' || detail.code === 'name-taken') endCall();
  else teardown();
  renderDevices();
  showScreen('prejoin');
  $('join').disabled = false;
  let text = peopleWords(detail);
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

/**
 * peopleWords says why a join was refused, for people.
 * @param {{code: string, message: string}} detail
 * @returns {string}
 */
function peopleWords(detail) {
  switch (detail.code) {
    case 'room-full': {
      const n = /\((\d+) peers\)/.exec(detail.message);
      return `This room is full${n ? ` (${n[1]} people)` : ''}. Try again when someone leaves.`;
    }
    case 'name-taken': return 'That name is taken in this room. Add a letter or pick another.';
    case 'room-limit': return 'This server has as many rooms open as it allows. Try again later.';
    case 'rate-limited': return 'Too many tries in a short time. Wait a moment and join again.';
    default: return detail.message;
  }
}

/** @type {number} the live reconnect countdown */
let countdown = 0;
/** @type {number} the tiles' media check (checkMedia) */
let mediaTimer = 0;

/**
 * showCountdown counts down to the next reconnect, each second.
 * @param {number} delay ms
 */
function showCountdown(delay) {
  clearInterval(countdown);
  const at = performance.now() + delay;
  const tick = () => {
    const s = Math.max(0, Math.ceil((at - performance.now()) / 1000));
    if (session.myId) setStatus(s > 0 ? `connection to the server lost; reconnecting in ${s}s` : 'reconnecting…');
    else setStatus(s > 0 ? `cannot reach the server; retrying in ${s}s` : 'retrying…');
    if (s <= 0) clearInterval(countdown);
  };
  tick();
  countdown = window.setInterval(tick, 1000);
}

/**
 * on renders a session event.
 * @param {string} type
 * @param {(detail: any) => void} fn
 */
function on(type, fn) {
  session.addEventListener(type, (ev) => fn(/** @type {CustomEvent} */ (ev).detail));
}

/** wireSession renders what the session says. */
function wireSession() {
  on('welcome', (d) => {
    clearInterval(countdown);
    if (d.resumed) {
      setStatus(`reconnected to room ${d.room} as ${d.name}`);
      return;
    }
    showScreen('call');
    renderDevices();
    monitor.start();
    clearInterval(mediaTimer);
    mediaTimer = window.setInterval(checkMedia, 500);
    setStatus(d.again ? `rejoined room ${d.room} as ${d.name}` : `in room ${d.room} as ${d.name}`);
    // Focus goes where the call is (keyboard and screen reader users
    // land on it, not on the gone Join button).
    if (!d.again) $('tiles').focus();
    // In call mode the lobby is where you start: who is here, and whom to call.
    if (mode === 'call') openPanel('lobby', true);
  });
  on('refused', refused);
  on('people', people);
  on('joined', (d) => { chat.system(`${d.name} joined`); announce(`${d.name} joined`); });
  on('left', (d) => {
    chat.system(`${d.name} left`);
    announce(`${d.name} left`);
    mics.delete(d.id);
    tiles.remove(d.id);
  });
  on('media', (d) => {
    renderDevices();
    // The top bar keeps it short (a phone has room for a few words);
    // the whole sentence shows over the tiles and reaches screen readers.
    setStatus(d.media === 'sfu' ? 'via the server' : 'peer to peer');
    announce(d.media === 'sfu' ? 'The call now goes through the server' : 'The call is peer to peer again');
    showSFU();
  });
  on('sfu-stream', () => showSFU());
  on('sfu-tracks', () => showSFU());
  on('speaker', (d) => { sfuSpeaker = d.peer; });
  on('peer-added', (d) => tiles.add(d.peer.id, d.peer.name));
  on('peer-removed', (d) => {
    // A mesh connection closed once the SFU took over: the person stays,
    // and so does their screen share if the SFU carries it.
    if (session.media === 'sfu' && session.names.has(d.id)) {
      if (!session.sfuTracks.some((t) => t.peer === d.id && t.source === 'screen')) tiles.removeScreen(d.id);
    } else tiles.remove(d.id);
  });
  on('peer-renamed', (d) => tiles.rename(d.from, d.to));
  on('track', (d) => {
    const p = /** @type {import('./mesh.js').Peer} */ (d.peer);
    showStreams(p);
    if (!view.timing.firstVideo) {
      const v = /** @type {HTMLVideoElement} */ ($(`tile-${p.id}`).querySelector('video'));
      v.addEventListener('playing', () => { if (!view.timing.firstVideo) view.timing.firstVideo = performance.now(); }, { once: true });
    }
  });
  on('meta', (d) => {
    const was = mics.get(d.peer.id);
    if (was !== undefined && was !== d.meta.mic) announce(`${d.peer.name} ${d.meta.mic ? 'turned on' : 'muted'} their microphone`);
    mics.set(d.peer.id, d.meta.mic);
    const tile = document.getElementById(`tile-${d.peer.id}`);
    if (tile) tiles.setMeta(tile, d.meta);
    showStreams(d.peer);
  });
  on('peer-state', (d) => {
    // The tile's words follow the connection now, not at the next check.
    if (mediaTimer) checkMedia();
    if (d.state === 'connected') monitor.sample();
    if (d.state === 'connected' && d.peer.restarts > 0) {
      // Back after an ICE restart: an element left on a stale track gets
      // the receiver's current ones.
      const tile = document.getElementById(`tile-${d.peer.id}`);
      const video = tile && tile.querySelector('video');
      if (tile && video) reattach(d.peer, tile, video);
    }
    if (d.state !== 'failed') return;
    setStatus(`connection to ${d.peer.name} failed; retrying`);
    if (mode === 'call' && session.calls) session.calls.connectionLost(d.peer.id);
  });
  on('chat', (d) => chat.incoming(d.name, d.text));
  on('chat-sent', (d) => chat.sent(d.line, d.peer));
  on('chat-lost', (d) => chat.lost(d.line, d.peer, d.name));
  on('reconnecting', (d) => showCountdown(d.delay));
  on('closed', (d) => {
    if (!view.leaving && session.myId) setStatus(`signaling closed (${d.code} ${d.reason})`);
  });
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
  if (mode === 'call' && window.Notification && Notification.permission === 'default') {
    // Asked while the click that joins still counts as the person's.
    Notification.requestPermission().catch(() => {});
  }
  await startMedia();
  session.join(name, needPassword ? password : null);
}

function leave() {
  view.leaving = true;
  if (mode === 'call' && session.calls) session.calls.hangup();
  clearInterval(countdown);
  session.leave();
  teardown();
  showScreen('left');
  $('join').disabled = false;
  setStatus('left the room');
  $('rejoin').focus();
  view.leaving = false;
}

// ---- wiring

/** @param {'audio'|'video'} kind */
function toggleMedia(kind) {
  if (media.toggle(kind) === null) return;
  renderDevices();
  for (const p of session.peers.values()) p.sendMeta(myMeta());
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
    if (!track) {
      // No live track of that kind (it stopped, or never started): start the one picked.
      if (!media.has(kind === 'audioinput' ? 'audio' : 'video')) await startMedia();
      return;
    }
    for (const p of session.peers.values()) p.replaceTrack(track);
    if (session.sfu) await session.sfu.replaceTrack(track);
    $('preview-video').dataset.tracks = '';
    $('local-video').dataset.tracks = '';
    renderDevices();
  } catch (err) {
    const e = /** @type {{name?: string}} */ (err);
    $('device-status').textContent = `That device could not start (${e.name || e}).`;
  }
}

/**
 * ring shows an incoming call where the eye is: a tone, the title, and
 * a system notification when permitted and the page is not in view.
 * @param {{state: string, text: string}} call
 */
function ring(call) {
  if (call.state !== 'incoming') {
    ringer.stop();
    document.title = TITLE;
    return;
  }
  ringer.start();
  document.title = `📞 ${call.text} · ${TITLE}`;
  if (window.Notification && Notification.permission === 'granted' && document.visibilityState !== 'visible') {
    const n = new Notification('Incoming call', { body: call.text, tag: 'icebox-call', icon: '/static/icon.svg' });
    n.addEventListener('click', () => { window.focus(); n.close(); });
  }
}

function setup() {
  wireSession();
  if (mode === 'call') {
    const calls = new CallControl({
      send: (to, data) => session.signal(to, data),
      nameOf: (id) => session.nameOf(id),
      startCall: (id) => session.createPeer(id).start(),
      endMedia: (id) => session.closePeer(id),
      render: (cv) => { renderCallBar(cv); ring(cv); people(); },
    });
    session.calls = calls;
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
    // In a call only what is missing is asked for again: what works
    // (and a screen share) stays on.
    if (!session.myId) media.stopAll();
    startMedia();
  });
  for (const kind of /** @type {const} */ (['videoinput', 'audioinput', 'audiooutput'])) {
    pickers[kind].addEventListener('change', () => pick(kind));
  }
  if (navigator.mediaDevices) navigator.mediaDevices.addEventListener('devicechange', () => refreshPickers());
  // The microphone meter (before joining, and in the settings): how loud it is, while it shows.
  setInterval(() => {
    if ((!$('prejoin').hidden || !$('settings').hidden) && !$('meter-row').hidden) $('mic-meter').value = Math.min(1, meter.level() * 4);
  }, 100);
  // In the call: ask again; tracks that come are sent on every connection.
  $('media-retry').addEventListener('click', () => startMedia());
  $('media-note-close').addEventListener('click', () => {
    view.noteClosed = true;
    $('media-note').hidden = true;
  });
  $('rejoin').addEventListener('click', () => {
    showScreen('prejoin');
    setStatus('');
    startMedia();
  });
  // In call mode during a call, the red button ends the call (one end control).
  $('leave').addEventListener('click', () => {
    if ($('leave').dataset.action === 'hangup' && session.calls) session.calls.hangup();
    else leave();
  });
  $('mute').addEventListener('click', () => toggleMedia('audio'));
  $('camera').addEventListener('click', () => toggleMedia('video'));
  $('share-screen').addEventListener('click', () => toggleShare());
  $('presenting-stop').addEventListener('click', () => stopShare());
  const toggleLayout = () => {
    tiles.mode = tiles.mode === 'auto' ? 'grid' : 'auto';
    renderLayout(tiles.mode);
    tiles.layout();
  };
  $('layout-toggle').addEventListener('click', toggleLayout);
  $('chat-toggle').addEventListener('click', () => openPanel('chat', $('chat').hidden));
  $('people-toggle').addEventListener('click', () => openPanel('lobby', $('lobby').hidden));
  $('settings-toggle').addEventListener('click', () => {
    if ($('settings').hidden) refreshPickers();
    openPanel('settings', $('settings').hidden);
  });
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
    else if (ev.key === 'Escape') for (const id of ['chat', 'lobby', 'settings']) openPanel(id, false);
  });
  // Esc in the chat's input closes the chat, and the focus goes back to its button.
  $('chat-input').addEventListener('keydown', (/** @type {KeyboardEvent} */ ev) => {
    if (ev.key !== 'Escape') return;
    ev.preventDefault();
    openPanel('chat', false);
    $('chat-toggle').focus();
  });
  // A network change (Wi-Fi to mobile, back online): new paths may be
  // needed at once, before the old ones time out.
  const renew = () => { for (const p of session.peers.values()) p.restart('network change'); };
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
