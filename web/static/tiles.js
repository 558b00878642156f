// Tiles: one <figure> per person in #tiles, with its video, a placeholder
// with initials when there is no picture, and a caption. Click, Enter or
// Space on a tile pins it large (again to unpin); layout.js places them.

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

export class Tiles {
  /** @type {HTMLElement|null} */
  pin = null;

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
    tile = document.createElement('figure');
    tile.className = 'tile remote novideo';
    tile.id = `tile-${id}`;
    tile.dataset.peer = id;
    tile.setAttribute('aria-label', name);
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
    cap.textContent = name || 'guest';
    tile.append(video, ph, cap);
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
   * show plays stream in tile.
   * @param {HTMLElement} tile
   * @param {MediaStream} stream
   */
  show(tile, stream) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    if (video.srcObject === stream) return;
    video.srcObject = stream;
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

  /** refresh shows the placeholder when a tile has no picture. */
  refresh(tile) {
    const video = /** @type {HTMLVideoElement} */ (tile.querySelector('video'));
    const before = tile.classList.contains('novideo');
    const none = tile.classList.contains('cam-off') || !hasPicture(video);
    if (before !== none) {
      tile.classList.toggle('novideo', none);
      this.layout();
    }
  }

  /** remove takes a peer's tile away. */
  remove(id) {
    const tile = document.getElementById(`tile-${id}`);
    if (!tile) return;
    if (this.pin === tile) this.pin = null;
    tile.remove();
    this.layout();
  }

  /** toggle pins tile large, or unpins it. */
  toggle(tile) {
    this.pin = this.pin === tile ? null : tile;
    this.layout();
  }

  layout() { place(this.area, this.pin); }
}
