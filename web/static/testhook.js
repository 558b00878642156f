// The test hook: window.icebox, installed only when the page is loaded
// with ?test=1 (TEST_FLAG). Tests read the page through it; nothing in
// the page reads it. It hands out snapshots (plain, JSON-safe objects),
// never the page's own objects, so a test cannot change the call by
// accident and the page's internals can change without breaking tests.

/** TEST_FLAG is the query parameter, set to 1, that installs the hook. */
export const TEST_FLAG = 'test';

/**
 * @typedef {{kind: string, deviceId: string, label: string, enabled: boolean,
 *   readyState: string, encoding: RTCRtpEncodingParameters|null}} SenderSnapshot
 * @typedef {{id: string, name: string, kept: boolean, claim: string,
 *   connectionState: string, iceConnectionState: string, iceGatheringState: string, signalingState: string,
 *   restarts: number, descriptions: number, chat: string, mic: boolean, cam: boolean,
 *   recovery: {step: number, ago: number}, restartWanted: boolean,
 *   senders: SenderSnapshot[]}} PeerSnapshot
 *   recovery is the stalled-video recovery step last taken (0 none, 1
 *   re-attached, 2 ICE restarted) and how long ago, in ms.
 * @typedef {{
 *   myId: string, myName: string,
 *   names: Record<string, string>,
 *   peers: PeerSnapshot[],
 *   held: string[],
 *   tracks: {kind: string, readyState: string, width: number, height: number}[],
 *   screen: boolean,
 *   ringing: boolean,
 *   levels: Record<string, number>,
 *   timing: {start: number, mediaReady: number, firstVideo: number},
 *   media: string,
 *   moving: boolean,
 *   sfu: {connectionState: string, senders: number, streams: string[], tracks: number, layers: Record<string, string[]>,
 *     sections: number, inactive: string[], screens: string[]}|null,
 * }} Snapshot
 *   media is how the room's media flows ('mesh' or 'sfu'); moving, whether
 *   the connections of the mode it left are still up (a move); sfu is the
 *   connection to the SFU in an SFU room (null otherwise), with the
 *   simulcast layers each peer's camera sends, by peer id; how many media
 *   sections (transceivers) it has, the mids of those negotiated inactive
 *   (free for the SFU's next track of their kind) and of those receiving
 *   a screen share. stats gives
 *   every connection's getStats reports by peer id, the SFU's as "sfu".
 * @typedef {{
 *   snapshot: () => Snapshot,
 *   pairs: () => Promise<Record<string, object|null>>,
 *   stats: () => Promise<Record<string, Record<string, any>[]>>,
 *   sample: () => Promise<Record<string, import('./stats.js').NetInfo>>,
 *   setAdaptation: (on: boolean) => void,
 *   endTrack: (which: 'audio'|'video'|'screen') => boolean,
 * }} TestHook
 * @typedef {{
 *   session: import('./session.js').Session,
 *   media: import('./media.js').LocalMedia,
 *   monitor: import('./monitor.js').Monitor,
 *   ringing: () => boolean,
 *   timing: {start: number, mediaReady: number, firstVideo: number},
 * }} HookSources
 */

/**
 * wanted reports whether the page was loaded with the test flag.
 * @param {URLSearchParams} params
 */
export function wanted(params) { return params.get(TEST_FLAG) === '1'; }

/**
 * screenMids lists the mids of the sections on which sfu receives a
 * screen share (a track of a stream "<peer>-screen").
 * @param {import('./sfu.js').SFUConnection} sfu
 * @returns {string[]}
 */
function screenMids(sfu) {
  const screens = [...sfu.streams.values()].filter((s) => s.id.endsWith('-screen'));
  return sfu.pc.getTransceivers()
    .filter((t) => screens.some((s) => s.getTracks().includes(t.receiver.track)))
    .map((t) => t.mid || '');
}

/**
 * @param {import('./mesh.js').Peer} p
 * @returns {PeerSnapshot}
 */
function peerSnapshot(p) {
  return {
    id: p.id, name: p.name, kept: p.orphan, claim: p.claim,
    connectionState: p.pc.connectionState, iceConnectionState: p.pc.iceConnectionState,
    iceGatheringState: p.pc.iceGatheringState,
    signalingState: p.pc.signalingState, restarts: p.restarts, descriptions: p.descriptions, chat: p.chat.readyState,
    mic: p.remote.mic, cam: p.remote.cam,
    recovery: { step: p.recovery.step, ago: p.recovery.at ? performance.now() - p.recovery.at : 0 },
    restartWanted: p.restartWanted,
    senders: p.pc.getSenders().filter((s) => s.track).map((s) => {
      const t = /** @type {MediaStreamTrack} */ (s.track);
      const e = s.getParameters().encodings;
      return { kind: t.kind, label: t.label, readyState: t.readyState, deviceId: t.getSettings().deviceId || '',
        enabled: t.enabled, encoding: e && e[0] ? { ...e[0] } : null };
    }),
  };
}

/**
 * install sets window.icebox.
 * @param {HookSources} src
 */
export function install(src) {
  const { session, media, monitor } = src;
  /** @type {TestHook} */
  const hook = {
    snapshot: () => ({
      myId: session.myId,
      myName: session.myName,
      names: Object.fromEntries(session.names),
      peers: [...session.peers.values()].map(peerSnapshot),
      held: [...session.held.keys()],
      tracks: media.tracks(),
      screen: !!media.screen,
      ringing: src.ringing(),
      levels: monitor.levels(),
      timing: { ...src.timing },
      media: session.media,
      moving: session.moving,
      sfu: session.sfu ? {
        connectionState: session.sfu.pc.connectionState,
        senders: session.sfu.senders.length,
        streams: [...session.sfu.streams.keys()],
        tracks: session.sfuTracks.length,
        layers: Object.fromEntries(session.sfuTracks.filter((t) => t.kind === 'video').map((t) => [t.peer, t.layers || []])),
        sections: session.sfu.pc.getTransceivers().length,
        inactive: session.sfu.pc.getTransceivers().filter((t) => t.currentDirection === 'inactive').map((t) => t.mid || ''),
        screens: screenMids(session.sfu),
      } : null,
    }),
    async pairs() {
      /** @type {Record<string, object|null>} */
      const out = {};
      for (const [id, p] of session.peers) out[id] = await p.selectedPair();
      return out;
    },
    async stats() {
      /** @type {Record<string, Record<string, any>[]>} */
      const out = {};
      /** @type {[string, RTCPeerConnection][]} */
      const pcs = [...session.peers].map(([id, p]) => [id, p.pc]);
      if (session.sfu) pcs.push(['sfu', session.sfu.pc]);
      for (const [id, pc] of pcs) {
        /** @type {Record<string, any>[]} */
        const list = [];
        (await pc.getStats()).forEach((s) => list.push({ ...s }));
        out[id] = list;
      }
      return out;
    },
    async sample() {
      await monitor.sample();
      return Object.fromEntries(monitor.net);
    },
    setAdaptation: (on) => session.setAdaptation(!!on),
    endTrack(which) {
      const stream = which === 'screen' ? media.screen : media.stream;
      const t = stream && stream.getTracks().find((x) => x.kind === (which === 'audio' ? 'audio' : 'video') && x.readyState === 'live');
      if (!t) return false;
      // As a device unplugged: the track ends, and says so.
      t.stop();
      t.dispatchEvent(new Event('ended'));
      return true;
    },
  };
  window.icebox = Object.freeze(hook);
}
