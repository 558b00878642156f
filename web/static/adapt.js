// Mesh adaptation: in a mesh call each sender encodes its camera once per
// other person, so its uplink carries n copies. encodingFor picks, per
// copy, a bitrate, a resolution scale and a frame rate that keep all n
// copies inside UPLINK_KBPS with audio first: audio is never capped and
// goes out at high priority (RTCRtpEncodingParameters.priority and
// networkPriority, W3C WebRTC Priority Control), video at low.
//
// For an 8-person mesh (n = 7) a camera copy gets about 500 kbit/s at
// two thirds of its resolution: 7 × (500 + ≤64 audio) ≈ 4 Mbit/s, inside
// a 5 Mbit/s uplink with room for RTP/ICE overhead and retransmissions.

/** The uplink every sender is sized for, in kbit/s. */
export const UPLINK_KBPS = 5000;
/** What audio and overhead keep per copy, in kbit/s. */
const AUDIO_KBPS = 64;
/** A camera copy never gets more than this, in kbit/s. */
const CAMERA_MAX_KBPS = 1500;
/** Of what is left for video, the share the camera gets while you share your screen. */
const CAMERA_SHARE_WHILE_SCREEN = 0.35;

/**
 * @typedef {{maxBitrate?: number, scaleResolutionDownBy?: number, maxFramerate?: number,
 *   priority?: RTCPriorityType, networkPriority?: RTCPriorityType}} Encoding
 */

/**
 * videoKbps is the bitrate of one copy of your camera (or screen) for n
 * other people in the room, in kbit/s.
 * @param {number} n other people (1 or more)
 * @param {boolean} [sharing] whether a screen share is sent too
 * @returns {{camera: number, screen: number}}
 */
export function videoKbps(n, sharing = false) {
  const per = Math.floor((UPLINK_KBPS * 0.8) / n - AUDIO_KBPS);
  if (!sharing) return { camera: Math.min(CAMERA_MAX_KBPS, per), screen: 0 };
  const camera = Math.min(CAMERA_MAX_KBPS, Math.max(100, Math.floor(per * CAMERA_SHARE_WHILE_SCREEN)));
  return { camera, screen: Math.min(2500, per - camera) };
}

/**
 * encodingFor returns the encoding parameters of one sender: its kind,
 * what it carries, the number of other people n, and whether adaptation
 * is on (off: no caps at all, the browser's defaults).
 * @param {string} kind 'audio' or 'video'
 * @param {'camera'|'screen'} what
 * @param {number} n
 * @param {boolean} on
 * @param {boolean} [sharing] whether you share your screen too
 * @param {number} [height] the camera's height in pixels (its track's
 *   settings); a copy is scaled to at most 480 lines, so a 720p camera
 *   costs a mesh what a 640×480 one did
 * @returns {Encoding}
 */
export function encodingFor(kind, what, n, on, sharing = false, height = 480) {
  if (kind === 'audio') return { priority: 'high', networkPriority: 'high' };
  if (!on) return { maxBitrate: undefined, scaleResolutionDownBy: undefined, maxFramerate: undefined };
  const k = videoKbps(n, sharing || what === 'screen');
  if (what === 'screen') {
    // Text must stay readable: full resolution, few frames.
    return { maxBitrate: Math.max(300, k.screen) * 1000, scaleResolutionDownBy: 1, maxFramerate: 15,
      priority: 'medium', networkPriority: 'medium' };
  }
  const kbps = k.camera;
  // 480 lines need ~800 kbit/s to look right; below, fewer pixels look better.
  const scale = (kbps >= 800 ? 1 : kbps >= 450 ? 1.5 : 2) * Math.max(1, height / 480);
  return { maxBitrate: kbps * 1000, scaleResolutionDownBy: scale, maxFramerate: kbps >= 300 ? 30 : 15,
    priority: 'low', networkPriority: 'low' };
}
