// Tiles: one <figure> per person in #tiles (and one per screen share),
// with its video, a placeholder with initials when there is no picture, a
// caption, a connection badge and a speaking ring. Click, Enter or Space
// on a tile pins it large (again to unpin). Without a pin the stage goes
// to a screen share, else to the active speaker (when two or more others
// are there and the layout is "auto"); layout.js places them.

import { place } from './layout.js';

/**
 * initials of a display name: up to two letters, upper case.
 * @param {string} name
 * @returns {string}
 */
export function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const first = words.slice(0, 2).map((w) => Array.from(w)[0] || '');
  return (first.join('') || '?').toUpperCase();
}

/**
 * hasPicture reports whether a tile's video shows a live picture.
 * @param {HTMLVideoElement} video
 * @returns {boolean}
 */
function hasPicture(video) {
  const s = video.srcObject;
  if (!(s instanceof MediaStream)) return false;
  const t = s.getVideoTracks().find((x) => x.readyState === 'live');
  return !!t && t.enabled && !t.muted && video.videoWidth > 0;
}

/** How long a stream waiting to take over a tile may take to present its first frame, in ms. */
export const SWAP_MS = 8000;

/** How many frames a stream taking over a tile presents first, on its own: past the first frames' layer changes (SFU simulcast) it runs steadily. */
const STEADY_FRAMES = 8;

/**
 * firstFrames resolves once stream's video has presented STEADY_FRAMES
 * frames in an element of its own, outside the page and muted (true), or
 * after SWAP_MS (false). Frames are counted by requestVideoFrameCallback:
 * Firefox counts none of a MediaStream's in getVideoPlaybackQuality(),
 * which serves only where the callback is missing.
 * @param {MediaStream} stream
 * @returns {Promise<boolean>}
 */
function firstFrames(stream) {
  const v = document.createElement('video');
  v.muted = true;
  v.playsInline = true;
  v.srcObject = stream;
  let presented = 0;
  let done = false;
  if ('requestVideoFrameCallback' in v) {
    const tick = () => { presented++; if (!done) v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
  }
  return new Promise((resolve) => {
    const start = performance.now();
    const poll = setInterval(() => {
      const ok = Math.max(presented, v.getVideoPlaybackQuality().totalVideoFrames) >= STEADY_FRAMES;
      if (!ok && performance.now() - start < SWAP_MS) return;
      clearInterval(poll);
      done = true;
      v.srcObject = null;
      resolve(ok);
    }, 50);
    v.play().catch(() => {});
  });
}

/**
 * nextFrame resolves once video presents a frame (true), or after
 * SWAP_MS (false).
 * @param {HTMLVideoElement} video
 * @returns {Promise<boolean>}
 */
function nextFrame(video) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), SWAP_MS);
    video.requestVideoFrameCallback(() => { clearTimeout(timer); resolve(true); });
  });
}

/**
 * resized resolves once video's size changes (its resize event), or
 * after a second.
 * @param {HTMLVideoElement} video
 * @returns {Promise<void>}
 */
function resized(video) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 1000);
    video.addEventListener('resize', () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

export class Tiles {
  /** @type {WeakMap<HTMLElement, {stream: MediaStream, done: Promise<boolean>}>} the stream about to take over each tile */
  #next = new WeakMap();
  /** @type {WeakSet<HTMLElement>} tiles whose video just took a new stream, live, over another: no placeholder until it presents */
  #swapping = new WeakSet();
  /** @type {WeakMap<HTMLVideoElement, number>} when each video last presented a frame (performance.now) */
  #frameAt = new WeakMap();
  /** @type {WeakMap<HTMLVideoElement, number>} when each video last presented a frame (performance.now) */
  #presentedAt = new WeakMap();
  /** @type {HTMLElement|null} */
  pin = null;
  /** @type {string} peer id of the active speaker, '' for none */
  speaker = '';
  /** @type {'auto'|'grid'} auto: a share or the active speaker takes the stage */
  mode = 'auto';

  /**
   * @param {HTMLElement} area #tiles
   * @param {HTMLElement} local your own tile (already in area)
   */
  constructor(area, local) {
    this.area = area;
    this.local = local;
    this.#wire(local, () => {});
    new ResizeObserver(() => this.layout()).observe(area);
  }

  /**
   * #wire makes a tile pinnable by click and keyboard, and keeps its
   * placeholder in step with its video.
   * @param {HTMLElement} tile
   * @param {() => boolean|void} onClick returns true when it handled the click
   */
  #wire(tile, onClick) {
    tile.tabIndex = 0;
    tile.setAttribute('role', 'button');
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const toggle = () => { if (!onClick()) this.toggle(tile); };
    tile.addEventListener('click', toggle);
    tile.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        toggle();
      }
    });
    for (const ev of ['resize', 'loadeddata', 'emptied', 'playing']) video.addEventListener(ev, () => this.refresh(tile));
  }

  /**
   * add returns the tile of a remote peer, creating it.
   * @param {string} id
   * @param {string} name
   * @returns {HTMLElement}
   */
  add(id, name) {
    let tile = document.getElementById(`tile-${id}`);
    if (tile) return tile;
    tile = this.#make(`tile-${id}`, 'tile remote novideo', name, name || 'guest');
    tile.dataset.peer = id;
    return tile;
  }

  /**
   * addScreen returns the tile of a screen share, creating it: a peer's
   * (id) or, with id '', your own.
   * @param {string} id
   * @param {string} name whose screen
   * @returns {HTMLElement}
   */
  addScreen(id, name) {
    const dom = id ? `screen-${id}` : 'screen-local';
    let tile = document.getElementById(dom);
    if (tile) return tile;
    const label = id ? `${name || 'guest'}'s screen` : 'Your screen';
    tile = this.#make(dom, id ? 'tile remote screen novideo' : 'tile mine screen novideo', label, label);
    tile.dataset.peer = id;
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    video.muted = true;
    return tile;
  }

  /**
   * #make builds a tile and adds it to the area.
   * @param {string} dom element id
   * @param {string} cls classes
   * @param {string} label accessible name
   * @param {string} caption
   * @returns {HTMLElement}
   */
  #make(dom, cls, label, caption) {
    const name = caption;
    const tile = document.createElement('figure');
    tile.className = cls;
    tile.id = dom;
    tile.setAttribute('aria-label', label);
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    const ph = document.createElement('div');
    ph.className = 'placeholder';
    const ini = document.createElement('span');
    ini.className = 'initials';
    ini.setAttribute('aria-hidden', 'true');
    ini.textContent = initials(name);
    ph.append(ini);
    const cap = document.createElement('figcaption');
    cap.textContent = name;
    // What the page measures of the media, when it is not simply playing.
    const state = document.createElement('div');
    state.className = 'media-state';
    state.hidden = true;
    const net = document.createElement('span');
    net.className = 'net';
    net.setAttribute('role', 'note');
    net.tabIndex = -1;
    tile.append(video, ph, state, cap, net);
    this.#watchFrames(video);
    const t = tile;
    this.#wire(t, () => {
      if (!t.classList.contains('autoplay-muted')) return false;
      video.muted = false;
      t.classList.remove('autoplay-muted');
      return true;
    });
    this.area.append(tile);
    this.layout();
    return tile;
  }

  /**
   * #watchFrames records when video presents a frame, for as long as it
   * is in the page.
   * @param {HTMLVideoElement} video
   */
  #watchFrames(video) {
    if (!('requestVideoFrameCallback' in video)) return;
    const tick = () => {
      const now = performance.now();
      this.#frameAt.set(video, now);
      this.#presentedAt.set(video, now);
      if (video.isConnected) video.requestVideoFrameCallback(tick);
    };
    video.requestVideoFrameCallback(tick);
  }

  /**
   * frameAt is when a tile's video last presented a frame, or was given
   * its stream (performance.now); 0 for never.
   * @param {HTMLElement} tile
   * @returns {number}
   */
  frameAt(tile) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    return this.#frameAt.get(video) || 0;
  }

  /**
   * presentedAt is when a tile's video last presented a frame
   * (performance.now); 0 for never. Unlike frameAt, being given a stream
   * does not count.
   * @param {HTMLElement} tile
   * @returns {number}
   */
  presentedAt(tile) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    return this.#presentedAt.get(video) || 0;
  }

  /**
   * setState shows what the page measures of a tile's media: text ('' for
   * nothing to say), with a link to the connectivity check when check.
   * @param {HTMLElement} tile
   * @param {string} state a MediaState (health.js), also the tile's data-state
   * @param {string} text
   * @param {boolean} check
   */
  setState(tile, state, text, check) {
    const el = /** @type {HTMLElement} */ (tile.querySelector('.media-state'));
    if (tile.dataset.state === state && el.dataset.text === text) return;
    tile.dataset.state = state;
    el.dataset.text = text;
    el.hidden = !text;
    const span = document.createElement('span');
    span.textContent = text;
    el.replaceChildren(span);
    if (check) {
      const a = document.createElement('a');
      a.href = '/check';
      a.target = '_blank';
      a.rel = 'noopener';
      a.textContent = 'Check your network';
      el.append(a);
    }
  }

  /**
   * show plays stream in tile.
   * @param {HTMLElement} tile
   * @param {MediaStream} stream
   */
  show(tile, stream) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    if (video.srcObject === stream) return;
    video.srcObject = stream;
    // Frames are due from now: a stream that never presents one stalls too.
    this.#frameAt.set(video, performance.now());
    const watch = (/** @type {MediaStreamTrack} */ t) => {
      for (const ev of ['mute', 'unmute', 'ended']) t.addEventListener(ev, () => this.refresh(tile));
    };
    stream.getTracks().forEach(watch);
    stream.addEventListener('addtrack', (ev) => { watch(ev.track); this.refresh(tile); });
    video.play().catch(() => {
      // Autoplay with sound was blocked: play muted until a click.
      video.muted = true;
      tile.classList.add('autoplay-muted');
      video.play().catch(() => {});
    });
    this.refresh(tile);
  }

  /**
   * swap plays stream in tile without a blank picture between: while the
   * tile presents another stream's video, stream takes over once its own
   * video presents frames. Resolves to whether the tile then presented a
   * frame of stream (false: another stream took the tile meanwhile, or
   * no frame came within SWAP_MS).
   * @param {HTMLElement} tile
   * @param {MediaStream} stream
   * @returns {Promise<boolean>}
   */
  swap(tile, stream) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const pending = this.#next.get(tile);
    if (pending && pending.stream === stream) return pending.done;
    const live = video.srcObject instanceof MediaStream && video.srcObject !== stream &&
      video.srcObject.getVideoTracks().some((t) => t.readyState === 'live') &&
      performance.now() - this.presentedAt(tile) < 1000;
    // Its video track is still to come (each track arrives on its own): asked again then.
    if (live && !stream.getVideoTracks().length) return Promise.resolve(false);
    /** @type {{stream: MediaStream, done: Promise<boolean>}} */
    const entry = { stream, done: Promise.resolve(false) };
    this.#next.set(tile, entry);
    entry.done = (async () => {
      try {
        if (video.srcObject !== stream) {
          if (live && !await firstFrames(stream)) return false;
          if (this.#next.get(tile) !== entry) return false;
          if (live) this.#swapping.add(tile);
          this.show(tile, stream);
        }
        const shown = await nextFrame(video) && video.srcObject === stream;
        // Firefox may call back for the first frame before it sets
        // videoWidth: the picture is there once the element resizes.
        if (shown && !video.videoWidth) await resized(video);
        return shown;
      } finally {
        if (this.#next.get(tile) === entry) this.#next.delete(tile);
        if (this.#swapping.delete(tile)) this.refresh(tile);
      }
    })();
    return entry.done;
  }

  /**
   * setLocal shows your own stream (or none) under name.
   * @param {MediaStream|null} stream
   * @param {string} name
   */
  setLocal(stream, name) {
    const video = /** @type {HTMLVideoElement} */ (this.local.querySelector('video'));
    // Set again too when tracks were added to the same stream.
    const n = String(stream ? stream.getTracks().length : 0);
    if (video.srcObject !== stream || video.dataset.tracks !== n) {
      video.srcObject = null;
      video.srcObject = stream;
      video.dataset.tracks = n;
    }
    /** @type {HTMLElement} */ (this.local.querySelector('.initials')).textContent = initials(name);
    this.refresh(this.local);
  }

  /**
   * setMeta shows what a peer says of its microphone and camera: a camera
   * turned off shows the placeholder (its video is black frames), a
   * microphone turned off a muted mark.
   * @param {HTMLElement} tile
   * @param {{mic: boolean, cam: boolean}} m
   */
  setMeta(tile, m) {
    tile.classList.toggle('mic-off', !m.mic);
    tile.classList.toggle('cam-off', !m.cam);
    const name = tile.querySelector('figcaption');
    if (name) name.title = m.mic ? '' : 'microphone off';
    this.refresh(tile);
  }

  /**
   * refresh shows the placeholder when a tile has no picture.
   * @param {HTMLElement} tile
   */
  refresh(tile) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const before = tile.classList.contains('novideo');
    const none = tile.classList.contains('cam-off') || !hasPicture(video);
    // A stream taking over from a live one: the picture is due any moment.
    if (none && !before && this.#swapping.has(tile)) return;
    if (before !== none) {
      tile.classList.toggle('novideo', none);
      this.layout();
    }
  }

  /**
   * remove takes a peer's tiles (camera and screen) away.
   * @param {string} id
   */
  remove(id) {
    for (const tile of [document.getElementById(`tile-${id}`), document.getElementById(`screen-${id}`)]) {
      if (!tile) continue;
      if (this.pin === tile) this.pin = null;
      tile.remove();
    }
    if (this.speaker === id) this.speaker = '';
    this.layout();
  }

  /**
   * removeScreen takes a screen tile away: a peer's (id) or yours ('').
   * @param {string} id
   */
  removeScreen(id) {
    const tile = document.getElementById(id ? `screen-${id}` : 'screen-local');
    if (!tile) return;
    if (this.pin === tile) this.pin = null;
    const v = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    v.srcObject = null;
    tile.remove();
    this.layout();
  }

  /**
   * rename moves a peer's tiles to a new peer id (the same person, whose
   * signaling id changed).
   * @param {string} from
   * @param {string} to
   */
  rename(from, to) {
    const cam = document.getElementById(`tile-${from}`);
    if (cam) { cam.id = `tile-${to}`; cam.dataset.peer = to; }
    const scr = document.getElementById(`screen-${from}`);
    if (scr) { scr.id = `screen-${to}`; scr.dataset.peer = to; }
    if (this.speaker === from) this.speaker = to;
  }

  /**
   * setSpeaking marks who is speaking now (a ring on their tile) and the
   * active speaker (the stage in auto layout).
   * @param {Set<string>} speaking peer ids, '' for you
   * @param {string} active peer id of the active speaker, '' for none
   */
  setSpeaking(speaking, active) {
    for (const t of this.area.querySelectorAll(':scope > .tile:not(.screen)')) {
      const id = t === this.local ? '' : /** @type {HTMLElement} */ (t).dataset.peer || '';
      t.classList.toggle('speaking', speaking.has(id));
    }
    if (active !== this.speaker) {
      this.speaker = active;
      this.layout();
    }
  }

  /**
   * setNet shows a connection badge on a peer's tile.
   * @param {string} id
   * @param {string} text short, '' hides the badge
   * @param {string} title the details
   * @param {string} cls 'relay', 'direct', plus ' bad' when poor
   */
  setNet(id, text, title, cls) {
    const tile = document.getElementById(`tile-${id}`);
    const net = tile && /** @type {HTMLElement|null} */ (tile.querySelector('.net'));
    if (!net) return;
    // The round trip in a part of its own, which small tiles leave out.
    const [via, rtt] = text.split(' · ');
    const a = document.createElement('span');
    a.textContent = via || '';
    const b = document.createElement('span');
    b.className = 'rtt';
    b.textContent = rtt ? ` · ${rtt}` : '';
    if (text) net.replaceChildren(a, b);
    else net.replaceChildren();
    net.title = title;
    // Read out without the candidates' addresses, which say nothing to a person.
    const said = title.split('\n').filter((l) => !/^(Local|Remote):/.test(l)).join('; ');
    net.setAttribute('aria-label', `Connection: ${said}`);
    net.className = `net ${cls}`;
  }

  /**
   * toggle pins tile large, or unpins it.
   * @param {HTMLElement} tile
   */
  toggle(tile) {
    this.pin = this.pin === tile ? null : tile;
    this.layout();
  }

  /**
   * stage is the tile on the stage: the pin, else (auto layout) a screen
   * share, else the active speaker once two or more others are here.
   * @returns {HTMLElement|null}
   */
  stage() {
    if (this.pin && this.pin.isConnected) return this.pin;
    if (this.mode !== 'auto') return null;
    const screen = /** @type {HTMLElement|null} */ (this.area.querySelector(':scope > .tile.remote.screen:not(.novideo)'));
    if (screen) return screen;
    if (this.area.querySelectorAll(':scope > .tile.remote').length < 2 || !this.speaker) return null;
    return document.getElementById(`tile-${this.speaker}`);
  }

  layout() { place(this.area, this.stage(), this.pin); }
}
