// The page's one connection to icebox's SFU in an SFU room
// (docs/protocol.md, "SFU rooms"): the page is the only offerer on it. It
// publishes the camera as VP8 simulcast (rids q, h, f), the microphone,
// and a screen share (one layer, its section declared as "screen" in
// each offer's sources), each on its own sendonly section; a share that
// stops leaves its section inactive for the next one. It adds the recvonly
// sections the SFU asks for ({"renegotiate": {audio, video}}). What it
// receives is grouped by stream: the SFU names each stream after the peer
// that owns it ({"type":"tracks"}). No DOM here.

/** The SFU's reserved peer id. */
export const SFU_PEER = 'sfu';

/** The camera's simulcast layers, smallest first (protocol: q, h, f). */
export const LAYERS = /** @type {const} */ (['q', 'h', 'f']);

/**
 * @typedef {{track: string, stream: string, peer: string, kind: string,
 *   source: string, layers?: string[]}} TrackInfo
 * @typedef {{
 *   rtcConfig: RTCConfiguration,
 *   send: (data: object) => boolean,
 *   onStream: (stream: MediaStream) => void,
 *   onState: (state: string) => void,
 * }} SFUOptions
 *   send signals data to the SFU (false: signaling is away); onStream
 *   reports a stream that got a track.
 */

export class SFUConnection {
  /** @param {SFUOptions} o */
  constructor(o) {
    this.o = o;
    this.pc = new RTCPeerConnection(o.rtcConfig);
    /** @type {Map<string, MediaStream>} streams received and still holding a track, by id (the owner's peer id, or "<peer>-screen") */
    this.streams = new Map();
    /** @type {Promise<any>} offers and answers, one at a time */
    this.queue = Promise.resolve();
    /** whether another offer is due once the current one is answered */
    this.again = false;
    /** @type {RTCRtpSender[]} the camera's and the microphone's */
    this.senders = [];
    /** @type {RTCRtpTransceiver|null} the screen share's section, kept once made */
    this.screen = null;
    /** whether an offer is being made or awaits its answer */
    this.busy = false;
    /** whether the last offer could not be sent (signaling away): resync sends it */
    this.unsent = false;
    this.listening = new AbortController();
    const on = { signal: this.listening.signal };
    /** @type {WeakSet<MediaStream>} every stream received, those forgotten too */
    this.received = new WeakSet();
    this.pc.addEventListener('track', (ev) => {
      const stream = ev.streams[0];
      if (!stream) return;
      if (!this.received.has(stream)) {
        this.received.add(stream);
        // A section the SFU stops sending on goes inactive, and its track
        // leaves the stream: a stream left with none is forgotten, so
        // the map holds only what the SFU sends now.
        stream.addEventListener('removetrack', () => {
          if (stream.getTracks().length === 0 && this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
        }, on);
      }
      this.streams.set(stream.id, stream);
      o.onStream(stream);
    }, on);
    this.pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate) o.send({ candidate: candidate.toJSON() });
    }, on);
    this.pc.addEventListener('connectionstatechange', () => o.onState(this.pc.connectionState), on);
  }

  /**
   * publish sends stream's camera (simulcast) and microphone, and offers.
   * @param {MediaStream|null} stream
   */
  publish(stream) {
    // With nothing to send, the first offer waits for the SFU to ask.
    if (!stream) return;
    for (const track of stream.getTracks()) {
      /** @type {RTCRtpTransceiverInit} */
      const init = { direction: 'sendonly', streams: [stream] };
      if (track.kind === 'video') {
        init.sendEncodings = [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
          { rid: 'f', maxBitrate: 1500000 },
        ];
      }
      this.senders.push(this.pc.addTransceiver(track, init).sender);
    }
    this.offer();
  }

  /**
   * replaceTrack puts track on the sender of its kind (a device switch),
   * with no renegotiation.
   * @param {MediaStreamTrack} track
   */
  async replaceTrack(track) {
    const s = this.senders.find((x) => x.track && x.track.kind === track.kind);
    if (s) await s.replaceTrack(track);
  }

  /**
   * publishScreen sends a screen share's video (one layer, at most
   * 1.5 Mbit/s and 15 frames per second: with the camera's three layers,
   * under the SFU's default publish cap of 4 Mbit/s), and offers. A
   * second share reuses the first one's section.
   * @param {MediaStream} stream
   */
  async publishScreen(stream) {
    const track = stream.getVideoTracks()[0];
    if (!track) return;
    if (this.screen) {
      this.screen.direction = 'sendonly';
      await this.screen.sender.replaceTrack(track);
    } else {
      this.screen = this.pc.addTransceiver(track, { direction: 'sendonly', streams: [stream],
        sendEncodings: [{ maxBitrate: 1500000, maxFramerate: 15 }] });
    }
    this.offer();
  }

  /** unpublishScreen stops sending the screen share: its section goes inactive, and the SFU drops the track. */
  async unpublishScreen() {
    const tr = this.screen;
    if (!tr || tr.direction === 'inactive') return;
    tr.direction = 'inactive';
    await tr.sender.replaceTrack(null);
    this.offer();
  }

  /**
   * sources says which of our sections carries the screen share (the
   * others are the camera's and the microphone's, which the SFU tells by
   * kind), for an offer.
   * @returns {Record<string, string>|undefined}
   */
  sources() {
    const mid = this.screen && this.screen.mid;
    return mid ? { [mid]: 'screen' } : undefined;
  }

  /** offer sends an offer for the connection as it is, after any in flight. */
  offer() {
    if (this.pc.signalingState !== 'stable' || this.busy) {
      this.again = true;
      return;
    }
    this.busy = true;
    this.queue = this.queue.then(async () => {
      await this.pc.setLocalDescription();
      if (!this.o.send({ sdp: this.pc.localDescription && this.pc.localDescription.toJSON(), sources: this.sources() })) {
        // Signaling is away: the offer goes again once it is back (resync).
        this.unsent = true;
      }
    }).catch((err) => {
      console.warn('offer to the SFU', err);
      this.busy = false;
    });
  }

  /**
   * receive handles a signal from the SFU: its answer, or a request for
   * recvonly sections.
   * @param {any} data
   */
  receive(data) {
    if (!data || typeof data !== 'object') return;
    const r = data.renegotiate;
    if (r && typeof r === 'object') {
      const audio = Math.min(Number(r.audio) || 0, 64);
      const video = Math.min(Number(r.video) || 0, 64);
      for (let i = 0; i < audio; i++) this.pc.addTransceiver('audio', { direction: 'recvonly' });
      for (let i = 0; i < video; i++) this.pc.addTransceiver('video', { direction: 'recvonly' });
      this.offer();
      return;
    }
    const sdp = data.sdp;
    if (sdp && typeof sdp === 'object' && sdp.type === 'answer' && typeof sdp.sdp === 'string') {
      this.queue = this.queue.then(async () => {
        if (this.pc.signalingState !== 'have-local-offer') return;
        await this.pc.setRemoteDescription(sdp);
        // The SFU starts sending on the sections this answer opened now,
        // not after a delay: before it is applied, Chromium would take
        // their packets for another section's.
        this.o.send({ applied: true });
        this.busy = false;
        if (this.again) {
          this.again = false;
          this.offer();
        }
      }).catch((err) => {
        console.warn('answer from the SFU', err);
        this.busy = false;
      });
    }
  }

  /** resync sends again an offer that could not go, once signaling is back. */
  resync() {
    if (!this.unsent) return;
    this.unsent = false;
    const d = this.pc.localDescription;
    if (d && this.pc.signalingState === 'have-local-offer') this.o.send({ sdp: d.toJSON(), sources: this.sources() });
  }

  /**
   * streamOf is a stream the SFU sends, by id: a peer's camera and
   * microphone arrive on the one named after it, its screen share on
   * "<peer>-screen".
   * @param {string} peer
   * @returns {MediaStream|undefined}
   */
  streamOf(peer) { return this.streams.get(peer); }

  /**
   * from reports whether stream came from the SFU on this connection,
   * even if it has since lost its tracks.
   * @param {MediaStream} stream
   */
  from(stream) { return this.received.has(stream); }

  close() {
    this.listening.abort();
    this.pc.close();
    this.streams.clear();
  }
}

/**
 * layerFor is the largest camera layer worth receiving for a room showing
 * tiles remote tiles: the full picture for one or two, half size up to
 * six, the quarter size above.
 * @param {number} tiles
 * @returns {'q'|'h'|'f'}
 */
export function layerFor(tiles) {
  if (tiles <= 2) return 'f';
  if (tiles <= 6) return 'h';
  return 'q';
}
