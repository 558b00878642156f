// How a peer connection is doing, from getStats (W3C webrtc-stats): the
// path of the selected candidate pair (direct, or relayed by icebox over
// UDP, TCP or TLS), its round-trip time, the share of packets lost
// since the last sample, and what goes out per sender.

/**
 * @typedef {{
 *   path: 'direct'|'relay'|'', transport: string, rtt: number|null, loss: number|null,
 *   local: string, remote: string, sent: {kind: string, kbps: number, width: number, height: number}[],
 *   at: number, totals: Record<string, {bytes: number, lost: number, received: number}>
 * }} NetInfo
 */

/**
 * connectionInfo samples pc; prev is the last sample, for rates.
 * @param {RTCPeerConnection} pc
 * @param {NetInfo|null} prev
 * @returns {Promise<NetInfo>}
 */
export async function connectionInfo(pc, prev) {
  const stats = await pc.getStats();
  /** @type {any} */
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
  });
  if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  const at = performance.now();
  /** @type {NetInfo} */
  const info = { path: '', transport: '', rtt: null, loss: null, local: '', remote: '', sent: [], at, totals: {} };
  if (pair) {
    const l = stats.get(pair.localCandidateId);
    const r = stats.get(pair.remoteCandidateId);
    const relayed = (l && l.candidateType === 'relay') || (r && r.candidateType === 'relay');
    info.path = relayed ? 'relay' : 'direct';
    // A local relay candidate knows how it reaches icebox; a remote one only says relay.
    info.transport = l && l.candidateType === 'relay' ? String(l.relayProtocol || l.protocol || '') : String((l && l.protocol) || '');
    if (typeof pair.currentRoundTripTime === 'number') info.rtt = Math.round(pair.currentRoundTripTime * 1000);
    if (l) info.local = `${l.candidateType} ${l.address || l.ip}:${l.port}`;
    if (r) info.remote = `${r.candidateType} ${r.address || r.ip}:${r.port}`;
  }
  let lost = 0;
  let received = 0;
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      lost += s.packetsLost || 0;
      received += s.packetsReceived || 0;
    } else if (s.type === 'remote-inbound-rtp' && info.rtt === null && typeof s.roundTripTime === 'number') {
      info.rtt = Math.round(s.roundTripTime * 1000);
    } else if (s.type === 'outbound-rtp') {
      const key = String(s.id);
      info.totals[key] = { bytes: s.bytesSent || 0, lost: 0, received: 0 };
      const before = prev && prev.totals[key];
      const dt = prev ? (at - prev.at) / 1000 : 0;
      const kbps = before && dt > 0 ? Math.max(0, Math.round(((s.bytesSent - before.bytes) * 8) / dt / 1000)) : 0;
      info.sent.push({ kind: s.kind, kbps, width: s.frameWidth || 0, height: s.frameHeight || 0 });
    }
  });
  info.totals.inbound = { bytes: 0, lost, received };
  const p = prev && prev.totals.inbound;
  if (p) {
    const dl = lost - p.lost;
    const dr = received - p.received;
    info.loss = dl + dr > 0 ? Math.max(0, dl) / (dl + dr) : 0;
  }
  return info;
}

/**
 * badgeText is the short text of a tile's connection badge: the path,
 * and the round trip after a " · ".
 * @param {NetInfo} n
 * @returns {string}
 */
export function badgeText(n) {
  if (!n.path) return '';
  const via = n.path === 'relay' ? 'Via server' : 'Direct';
  return n.rtt === null ? via : `${via} · ${n.rtt} ms`;
}

/**
 * details is the long description of a connection, for the badge's title.
 * @param {NetInfo} n
 * @returns {string}
 */
export function details(n) {
  if (!n.path) return 'connecting';
  const lines = [
    n.path === 'relay' ? `Relayed by the server${n.transport ? ` over ${n.transport.toUpperCase()}` : ''}` : 'Direct between the two browsers',
    `Round trip: ${n.rtt === null ? 'unknown' : n.rtt + ' ms'}`,
    `Packets lost: ${n.loss === null ? 'unknown' : (n.loss * 100).toFixed(1) + '%'}`,
    `Local: ${n.local}`,
    `Remote: ${n.remote}`,
  ];
  return lines.join('\n');
}

/**
 * bad reports whether a sample shows a network people will notice.
 * @param {NetInfo} n
 * @returns {boolean}
 */
export function bad(n) {
  return (n.loss !== null && n.loss > 0.08) || (n.rtt !== null && n.rtt > 500);
}
