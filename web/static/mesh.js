// A mesh call: one RTCPeerConnection per remote peer, negotiated with the
// perfect negotiation pattern (W3C WebRTC §10.7): the politer side of a
// pair (the smaller peer id) yields when both send an offer at once.

export class Peer {
  constructor({ id, name, myId, rtcConfig, localStream, send, onTrack, onChat, onState }) {
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

  sendChat(text) {
    if (this.chat.readyState === 'open') this.chat.send(text);
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

  close() {
    this.pc.close();
  }
}
