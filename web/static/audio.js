// Sound made and measured in the page with WebAudio: the microphone level
// (pre-join meter, your own speaking indicator) and the ring of an
// incoming call. One AudioContext for the page, resumed on the first
// click or key press where the browser's autoplay policy held it.

/** @type {AudioContext|null} */
let ctx = null;

/**
 * audioContext returns the page's AudioContext, or null where WebAudio is
 * missing.
 * @returns {AudioContext|null}
 */
export function audioContext() {
  if (ctx) return ctx;
  const AC = window.AudioContext || /** @type {any} */ (window).webkitAudioContext;
  if (!AC) return null;
  ctx = new AC();
  const c = ctx;
  const resume = () => { if (c.state === 'suspended') c.resume().catch(() => {}); };
  for (const ev of ['pointerdown', 'keydown']) document.addEventListener(ev, resume, { capture: true });
  return c;
}

/** A level meter on the audio track of a stream (RMS of the samples). */
export class LevelMeter {
  /** @type {MediaStreamAudioSourceNode|null} */
  #src = null;
  /** @type {AnalyserNode|null} */
  #an = null;
  /** @type {Float32Array<ArrayBuffer>} */
  #buf = new Float32Array(1024);
  /** @type {MediaStreamTrack|null} */
  track = null;

  /**
   * use measures the live audio track of stream (or nothing).
   * @param {MediaStream|null} stream
   */
  use(stream) {
    const track = stream ? stream.getAudioTracks().find((t) => t.readyState === 'live') || null : null;
    if (track === this.track) return;
    this.stop();
    const c = audioContext();
    if (!track || !c) return;
    this.track = track;
    this.#src = c.createMediaStreamSource(new MediaStream([track]));
    this.#an = c.createAnalyser();
    this.#an.fftSize = 1024;
    this.#src.connect(this.#an);
  }

  /**
   * level is the current level, 0 (silence) to 1 (full scale), on the
   * same scale as RTCRtpSynchronizationSource.audioLevel; 0 when the
   * track is off.
   * @returns {number}
   */
  level() {
    if (!this.#an || !this.track || !this.track.enabled || this.track.readyState !== 'live') return 0;
    this.#an.getFloatTimeDomainData(this.#buf);
    let sum = 0;
    for (const x of this.#buf) sum += x * x;
    return Math.min(1, Math.sqrt(sum / this.#buf.length) * Math.SQRT2);
  }

  stop() {
    if (this.#src) this.#src.disconnect();
    this.#src = null;
    this.#an = null;
    this.track = null;
  }
}

/** A ringing tone: 440+480 Hz, 2 s on and 4 s off (ITU-T E.180 ring-back). */
export class Ringer {
  /** @type {{osc: OscillatorNode[], gain: GainNode}|null} */
  #on = null;
  #timer = 0;

  /** start rings until stop. */
  start() {
    if (this.#on) return;
    const c = audioContext();
    if (!c) return;
    if (c.state === 'suspended') c.resume().catch(() => {});
    const gain = c.createGain();
    gain.gain.value = 0;
    gain.connect(c.destination);
    const osc = [440, 480].map((f) => {
      const o = c.createOscillator();
      o.frequency.value = f;
      o.connect(gain);
      o.start();
      return o;
    });
    this.#on = { osc, gain };
    const cycle = () => {
      const t = c.currentTime;
      gain.gain.setValueAtTime(0, t);
      gain.gain.linearRampToValueAtTime(0.12, t + 0.05);
      gain.gain.setValueAtTime(0.12, t + 1.95);
      gain.gain.linearRampToValueAtTime(0, t + 2);
    };
    cycle();
    this.#timer = window.setInterval(cycle, 6000);
  }

  /** @returns {boolean} whether it rings */
  get ringing() { return this.#on !== null; }

  stop() {
    clearInterval(this.#timer);
    if (!this.#on) return;
    for (const o of this.#on.osc) o.stop();
    this.#on.gain.disconnect();
    this.#on = null;
  }
}
