// Local media: the camera and microphone (the devices picked, kept in
// localStorage), a plain-words reason when one of them is denied or
// missing, a screen share, and every track this page ever started, so
// that leaving (or a refused join) can stop them all.

/**
 * The camera's size: 720p where the camera has it. In an SFU room its
 * simulcast layers q, h and f are then 320×180, 640×360 and 1280×720
 * (Chromium sends as many layers as the input's size allows: three from
 * 960×540 up, two below, so 640×480 would never send f). In a mesh each
 * copy is scaled to at most 480 lines (adapt.js).
 */
const VIDEO = { width: { ideal: 1280 }, height: { ideal: 720 } };
const DEVICES_KEY = 'icebox-devices';

/**
 * @typedef {{audioinput?: string, videoinput?: string, audiooutput?: string}} DeviceChoice
 */

/**
 * loadChoice reads the devices picked last time.
 * @returns {DeviceChoice}
 */
function loadChoice() {
  try {
    const c = JSON.parse(localStorage.getItem(DEVICES_KEY) || '{}');
    /** @type {DeviceChoice} */
    const out = {};
    for (const k of /** @type {const} */ (['audioinput', 'videoinput', 'audiooutput'])) {
      if (c && typeof c[k] === 'string' && c[k].length <= 256) out[k] = c[k];
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * reason turns a getUserMedia error into words for people.
 * @param {any} err
 * @returns {string}
 */
function reason(err) {
  switch (err && err.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'blocked: allow the camera and microphone for this site (the icon in the address bar), then try again';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'not found on this device';
    case 'NotReadableError':
    case 'AbortError':
      return 'in use by another program, or could not start';
    default:
      return `unavailable (${(err && err.name) || err})`;
  }
}

export class LocalMedia {
  /** @type {Set<MediaStreamTrack>} every track acquire ever returned */
  #all = new Set();
  #gen = 0;
  /** @type {Promise<MediaStream|null>|null} */
  #pending = null;
  /** @type {MediaStream|null} */
  stream = null;
  /** What is missing and why, in words; '' when camera and microphone work (see effect). */
  problem = '';
  /** @type {MediaStream|null} your screen share */
  screen = null;
  /** @type {DeviceChoice} devices picked (ids), '' or missing: the default */
  choice = loadChoice();
  /** @type {Set<'audio'|'video'>} kinds whose track ended by itself (unplugged), until one is live again */
  stopped = new Set();

  /**
   * constraints for kind, with the device picked.
   * @param {'audio'|'video'} kind
   * @returns {MediaTrackConstraints|boolean}
   */
  constraints(kind) {
    const id = this.choice[kind === 'audio' ? 'audioinput' : 'videoinput'];
    /** @type {MediaTrackConstraints} */
    const c = kind === 'video' ? { ...VIDEO } : {};
    if (id) c.deviceId = { ideal: id };
    return Object.keys(c).length ? c : true;
  }

  /**
   * effect says what the missing devices mean for the call, or ''.
   * @param {boolean} joined whether you are in the call already
   * @returns {string}
   */
  effect(joined) {
    if (!this.problem) return '';
    const a = this.has('audio');
    const v = this.has('video');
    if (!a && !v) return joined ? 'You are only watching and listening.' : 'You can still join to watch and listen.';
    if (!v) return 'Others hear you but do not see you.';
    if (!a) return 'Others see you but do not hear you.';
    return '';
  }

  /**
   * @param {string} kind 'audio' or 'video'
   * @returns {boolean} whether a live track of kind is held
   */
  has(kind) {
    return !!this.stream && this.stream.getTracks().some((t) => t.kind === kind && t.readyState === 'live');
  }

  /**
   * acquire returns the local stream, asking for whichever of camera and
   * microphone is not held yet. With one of them denied or missing it
   * takes what there is; with neither it resolves to null (receive-only)
   * and problem says why. A stopAll while it waits wins: the late tracks
   * are stopped and null returned.
   * @returns {Promise<MediaStream|null>}
   */
  acquire() {
    if (this.has('audio') && this.has('video')) return Promise.resolve(this.stream);
    if (!this.#pending) this.#pending = this.#ask().finally(() => { this.#pending = null; });
    return this.#pending;
  }

  async #ask() {
    const gen = this.#gen;
    const md = navigator.mediaDevices;
    if (!md || !md.getUserMedia) {
      this.problem = 'This browser offers no camera or microphone here (the page needs https).';
      return this.stream;
    }
    const want = { audio: !this.has('audio'), video: !this.has('video') };
    /** @type {MediaStreamTrack[]} */
    const tracks = [];
    /** @type {Record<string, any>} */
    const errs = {};
    try {
      tracks.push(...(await md.getUserMedia({ audio: want.audio && this.constraints('audio'), video: want.video && this.constraints('video') })).getTracks());
    } catch (err) {
      // With both asked for, one may still work: no camera, or a busy one.
      if (want.audio && want.video) {
        for (const [kind, c] of /** @type {const} */ ([['audio', { audio: this.constraints('audio') }], ['video', { video: this.constraints('video') }]])) {
          try {
            tracks.push(...(await md.getUserMedia(c)).getTracks());
          } catch (e) {
            errs[kind] = e;
          }
        }
      } else {
        errs[want.audio ? 'audio' : 'video'] = err;
      }
    }
    for (const t of tracks) this.#all.add(t);
    if (gen !== this.#gen) {
      for (const t of tracks) t.stop();
      return null;
    }
    const words = [];
    if (errs.audio && errs.video && reason(errs.audio) === reason(errs.video)) {
      words.push(`Camera and microphone ${reason(errs.audio)}.`);
    } else {
      if (errs.video) words.push(`Camera ${reason(errs.video)}.`);
      if (errs.audio) words.push(`Microphone ${reason(errs.audio)}.`);
    }
    this.problem = words.join(' ');
    for (const t of tracks) this.stopped.delete(/** @type {'audio'|'video'} */ (t.kind));
    if (tracks.length) {
      if (this.stream) for (const t of tracks) this.stream.addTrack(t);
      else this.stream = new MediaStream(tracks);
    }
    return this.stream;
  }

  /**
   * use switches kind to the device deviceId ('' for the default) and
   * remembers it. A live track of that kind is replaced: the new one is
   * started (keeping the old one's on/off), the old one stopped.
   * @param {'audioinput'|'videoinput'|'audiooutput'} kind
   * @param {string} deviceId
   * @returns {Promise<MediaStreamTrack|null>} the new track, for the senders; null when none was replaced
   */
  async use(kind, deviceId) {
    this.choice[kind] = deviceId;
    localStorage.setItem(DEVICES_KEY, JSON.stringify(this.choice));
    if (kind === 'audiooutput') return null;
    const k = kind === 'audioinput' ? 'audio' : 'video';
    const old = this.stream && this.stream.getTracks().find((t) => t.kind === k && t.readyState === 'live');
    if (!old || !this.stream) return null;
    if (old.getSettings().deviceId === deviceId) return null;
    const gen = this.#gen;
    const got = await navigator.mediaDevices.getUserMedia({ [k]: deviceId ? { ...(k === 'video' ? VIDEO : {}), deviceId: { exact: deviceId } } : this.constraints(k) });
    const track = got.getTracks()[0];
    this.#all.add(track);
    if (gen !== this.#gen || !this.stream) {
      track.stop();
      return null;
    }
    track.enabled = old.enabled;
    this.stream.removeTrack(old);
    old.stop();
    this.stream.addTrack(track);
    return track;
  }

  /**
   * lost takes a track that ended by itself (its device unplugged, or
   * taken by another program) out of the stream and says so in problem.
   * @param {MediaStreamTrack} track
   * @returns {boolean} whether it was one of the stream's tracks
   */
  lost(track) {
    if (!this.stream || !this.stream.getTracks().includes(track)) return false;
    this.stream.removeTrack(track);
    const kind = /** @type {'audio'|'video'} */ (track.kind);
    this.stopped.add(kind);
    this.problem = `${kind === 'video' ? 'Your camera' : 'Your microphone'} stopped: it was unplugged, or another program took it.`;
    return true;
  }

  /**
   * share asks for a screen, window or tab (getDisplayMedia). onEnded
   * runs when the browser's own "Stop sharing" ends it.
   * @param {() => void} onEnded
   * @returns {Promise<MediaStream>}
   */
  async share(onEnded) {
    const md = navigator.mediaDevices;
    if (!md || !md.getDisplayMedia) throw new Error('this browser cannot share a screen');
    const s = await md.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    const track = s.getVideoTracks()[0];
    for (const t of s.getTracks()) this.#all.add(t);
    if (!track) throw new Error('no video in the share');
    track.contentHint = 'detail';
    // The handler attribute, as for the camera (app.js watchLocal): in Firefox it also gets an ended event dispatched by script.
    track.onended = () => { if (this.screen === s) onEnded(); };
    this.screen = s;
    return s;
  }

  /** stopShare ends the screen share. */
  stopShare() {
    if (this.screen) for (const t of this.screen.getTracks()) t.stop();
    this.screen = null;
  }

  /** stopAll stops every track this page started and forgets the streams. */
  stopAll() {
    this.#gen++;
    this.stopped.clear();
    for (const t of this.#all) t.stop();
    this.stream = null;
    this.screen = null;
  }

  /** @returns {{kind: string, readyState: string, width: number, height: number}[]} every track ever started (a live camera's size in pixels, else 0) */
  tracks() {
    return [...this.#all].map((t) => {
      const { width = 0, height = 0 } = t.kind === 'video' && t.readyState === 'live' ? t.getSettings() : {};
      return { kind: t.kind, readyState: t.readyState, width, height };
    });
  }

  /**
   * toggle flips the enabled flag of the tracks of kind.
   * @param {'audio'|'video'} kind
   * @returns {boolean|null} whether they are now on; null when there are none
   */
  toggle(kind) {
    const tracks = this.stream ? this.stream.getTracks().filter((t) => t.kind === kind && t.readyState === 'live') : [];
    if (!tracks.length) return null;
    const on = !tracks[0].enabled;
    for (const t of tracks) t.enabled = on;
    return on;
  }

  /**
   * @param {string} kind 'audio' or 'video'
   * @returns {boolean|null} whether the tracks of kind are on; null without any
   */
  enabled(kind) {
    const t = this.stream && this.stream.getTracks().find((x) => x.kind === kind && x.readyState === 'live');
    return t ? t.enabled : null;
  }
}
