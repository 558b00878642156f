// A mesh call: one RTCPeerConnection per remote peer, negotiated with the
// perfect negotiation pattern (W3C WebRTC §10.7): the politer side of a
// pair (the smaller peer id) yields when both send an offer at once.

// Chat lines written before the data channel opens wait in an outbox and
// go out when it opens; onChatSent reports them, and close returns the
// ids of those that never went.
//
// A second negotiated channel (id 1, label "state") carries what the
// other side should show on our tile: {"mic": bool, "cam": bool}, sent
// when it opens and on every change.

export class Peer {
  constructor({ id, name, myId, rtcConfig, localStream, send, onTrack, onChat, onState, onChatSent, onMeta, meta }) {
    this.id = id;
    this.name = name;
    this.polite = myId < id;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.queue = Promise.resolve();
    this.send = send;
    this.localStream = localStream;
    this.tracksAdded = false;
    this.pc = new RTCPeerConnection(rtcConfig);
    // A negotiated channel (same id on both sides) needs no extra round.
    this.chat = this.pc.createDataChannel('chat', { negotiated: true, id: 0 });
    this.chat.addEventListener('message', (ev) => onChat(this, ev.data));
    /** @type {{id: number, text: string}[]} */
    this.outbox = [];
    this.meta = this.pc.createDataChannel('state', { negotiated: true, id: 1 });
    this.metaNow = meta;
    this.meta.addEventListener('open', () => this.sendMeta(this.metaNow()));
    this.meta.addEventListener('message', (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m && typeof m === 'object' && onMeta) onMeta(this, { mic: m.mic !== false, cam: m.cam !== false });
    });
    this.chat.addEventListener('open', () => {
      const sent = [];
      for (const m of this.outbox.splice(0)) {
        this.chat.send(m.text);
        sent.push(m.id);
      }
      if (sent.length && onChatSent) onChatSent(this, sent);
    });
    this.pc.addEventListener('track', (ev) => onTrack(this, ev.streams[0] || new MediaStream([ev.track])));
    this.pc.addEventListener('icecandidate', ({ candidate }) => {
      if (candidate) this.send({ candidate: candidate.toJSON() });
    });
    this.pc.addEventListener('connectionstatechange', () => onState(this, this.pc.connectionState));
    this.pc.addEventListener('negotiationneeded', () => this.#offer());
  }

  // start makes this side the offerer: it adds its media at once.
  start() { this.#addMedia(); }

  #addMedia() {
    if (this.tracksAdded) return;
    this.tracksAdded = true;
    const tracks = this.localStream ? this.localStream.getTracks() : [];
    for (const kind of ['audio', 'video']) {
      const track = tracks.find((t) => t.kind === kind);
      if (track) {
        this.pc.addTrack(track, this.localStream);
      } else if (!this.pc.getTransceivers().some((t) => t.receiver.track.kind === kind)) {
        this.pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    }
  }

  async #offer() {
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      this.send({ description: this.pc.localDescription.toJSON() });
    } catch (err) {
      console.warn('offer to', this.id, err);
    } finally {
      this.makingOffer = false;
    }
  }

  // receive handles one signal payload; payloads are handled in order.
  receive(data) {
    this.queue = this.queue.then(() => this.#handle(data)).catch((err) => console.warn('signal from', this.id, err));
    return this.queue;
  }

  async #handle({ description, candidate }) {
    if (description) {
      const collision = description.type === 'offer' && (this.makingOffer || this.pc.signalingState !== 'stable');
      this.ignoreOffer = !this.polite && collision;
      if (this.ignoreOffer) return;
      await this.pc.setRemoteDescription(description);
      if (description.type === 'offer') {
        // Added after the remote offer, our tracks reuse its transceivers,
        // so the answer already sends media: no second round.
        this.#addMedia();
        await this.pc.setLocalDescription();
        this.send({ description: this.pc.localDescription.toJSON() });
      }
    } else if (candidate) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }

  setICEServers(iceServers) {
    const cfg = this.pc.getConfiguration();
    this.pc.setConfiguration({ ...cfg, iceServers });
  }

  /**
   * sendChat sends a chat line now, or queues it until the channel opens.
   * @param {number} id the line's id, reported by onChatSent once it went
   * @param {string} text
   * @returns {boolean} whether it went now
   */
  sendChat(id, text) {
    if (this.chat.readyState === 'open') {
      this.chat.send(text);
      return true;
    }
    this.outbox.push({ id, text });
    return false;
  }

  /**
   * sendMeta tells the other side whether our microphone and camera are on.
   * @param {{mic: boolean, cam: boolean}} m
   */
  sendMeta(m) {
    if (this.meta.readyState === 'open') this.meta.send(JSON.stringify(m));
  }

  /**
   * setLocalStream starts sending stream's tracks on a connection that
   * had none of that kind (media allowed after joining receive-only).
   * @param {MediaStream} stream
   */
  setLocalStream(stream) {
    this.localStream = stream;
    if (!this.tracksAdded) return; // added on start or on the first offer
    for (const track of stream.getTracks()) {
      const tr = this.pc.getTransceivers().find((t) => !t.stopped && t.receiver.track.kind === track.kind);
      if (!tr) {
        this.pc.addTrack(track, stream);
        continue;
      }
      if (tr.sender.track) continue;
      tr.sender.replaceTrack(track).catch((err) => console.warn('replaceTrack', err));
      if (tr.sender.setStreams) tr.sender.setStreams(stream);
      if (tr.direction === 'recvonly' || tr.direction === 'inactive') tr.direction = 'sendrecv';
    }
  }

  // selectedPair reports the local and remote candidate types of the
  // selected ICE candidate pair, or null before one is selected.
  async selectedPair() {
    const stats = await this.pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) {
      stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    }
    if (!pair) return null;
    const local = stats.get(pair.localCandidateId);
    const remote = stats.get(pair.remoteCandidateId);
    return { local: local && local.candidateType, remote: remote && remote.candidateType,
      localAddress: local && `${local.address}:${local.port}`,
      remoteAddress: remote && `${remote.address}:${remote.port}`,
      protocol: local && local.protocol, relayProtocol: local && local.relayProtocol };
  }

  /**
   * close closes the connection.
   * @returns {number[]} ids of chat lines that never went out
   */
  close() {
    this.chat.close();
    this.meta.close();
    this.pc.close();
    return this.outbox.splice(0).map((m) => m.id);
  }
}
