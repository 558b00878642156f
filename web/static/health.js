// What a tile says of its media, from what the page measures, never from
// what it hopes: the peer connection's and ICE's states, the remote video
// track's muted/ended state, whether the other side says its camera is
// on, and whether the <video> element presents new frames
// (requestVideoFrameCallback). No DOM here: the view feeds it samples and
// renders the state it returns.

/** How long a connection may stay in new or checking before "can't connect", in ms. */
export const CANT_CONNECT_MS = 10000;
/** How long a video may present no new frame, its sender's camera on, before "stalled", in ms. */
export const STALL_MS = 3000;
/** How long after re-attaching a stalled video's track an ICE restart follows, in ms. */
export const REATTACH_GRACE_MS = 3000;
/** How long an ICE restart is given to finish before recovery starts another, in ms. */
export const RESTART_GRACE_MS = 8000;

/**
 * @typedef {'ok'|'connecting'|'cant-connect'|'reconnecting'|'no-video'|'camera-off'|'stalled'} MediaState
 * @typedef {{
 *   now: number,
 *   since: number,
 *   everConnected: boolean,
 *   connectionState: string,
 *   iceConnectionState: string,
 *   camOn: boolean,
 *   track: 'live'|'muted'|'ended'|'none',
 *   lastFrameAt: number,
 * }} Sample
 *   now, since (when the connection was made) and lastFrameAt (when the
 *   element last presented a frame or was given its stream, 0: never) are
 *   performance.now() ms.
 */

/**
 * mediaState is what a remote tile should say.
 * @param {Sample} s
 * @returns {MediaState}
 */
export function mediaState(s) {
  const pc = s.connectionState;
  const ice = s.iceConnectionState;
  if (!s.everConnected) {
    if (pc === 'connected') return videoState(s);
    // Still new or checking (or failed, with no path at all) after
    // CANT_CONNECT_MS: no path is coming by itself.
    return s.now - s.since >= CANT_CONNECT_MS ? 'cant-connect' : 'connecting';
  }
  if (pc === 'disconnected' || pc === 'failed' || pc === 'connecting' || ice === 'disconnected' || ice === 'checking') return 'reconnecting';
  return videoState(s);
}

/**
 * @param {Sample} s
 * @returns {MediaState}
 */
function videoState(s) {
  if (!s.camOn) return 'camera-off';
  if (s.track === 'none' || s.track === 'ended') return 'no-video';
  if (!s.lastFrameAt) return 'no-video';
  // No new frame for STALL_MS while the sender's camera is on: frozen,
  // whether nothing arrives (muted) or the element is on a stale track.
  if (s.now - s.lastFrameAt >= STALL_MS) return 'stalled';
  return 'ok';
}

/**
 * label is the words a tile shows for a state ('' for none).
 * @param {MediaState} state
 * @param {string} name the other person
 * @returns {string}
 */
export function label(state, name) {
  switch (state) {
    case 'connecting': return 'Connecting…';
    case 'cant-connect': return `Can't connect to ${name}`;
    case 'reconnecting': return 'Reconnecting…';
    case 'no-video': return 'No video';
    case 'stalled': return 'Video stalled, recovering…';
    default: return '';
  }
}
