// Device pickers: the cameras, microphones and speakers the browser lists
// (enumerateDevices; labels only once a permission was granted), in
// <select> elements. Speakers are offered only where audio output can be
// chosen (HTMLMediaElement.setSinkId).

/** @typedef {'audioinput'|'videoinput'|'audiooutput'} DeviceKind */

/** @returns {boolean} whether the audio output can be chosen here */
export function canPickSpeaker() {
  return typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;
}

const WORDS = { audioinput: 'Microphone', videoinput: 'Camera', audiooutput: 'Speaker' };

/**
 * fillPickers lists the devices in the selects, keeping the choice.
 * @param {Record<DeviceKind, HTMLSelectElement>} selects
 * @param {Partial<Record<DeviceKind, string>>} choice device ids picked
 * @param {Partial<Record<DeviceKind, string>>} inUse device ids of the live tracks
 * @returns {Promise<void>}
 */
export async function fillPickers(selects, choice, inUse) {
  const md = navigator.mediaDevices;
  /** @type {MediaDeviceInfo[]} */
  let list = [];
  if (md && md.enumerateDevices) {
    try { list = await md.enumerateDevices(); } catch { list = []; }
  }
  for (const kind of /** @type {DeviceKind[]} */ (['videoinput', 'audioinput', 'audiooutput'])) {
    const sel = selects[kind];
    const devices = list.filter((d) => d.kind === kind && d.deviceId);
    const row = /** @type {HTMLElement} */ (sel.closest('.picker') || sel);
    row.hidden = devices.length === 0 || (kind === 'audiooutput' && !canPickSpeaker());
    const want = inUse[kind] || choice[kind] || '';
    sel.replaceChildren();
    devices.forEach((d, i) => {
      const o = document.createElement('option');
      o.value = d.deviceId === 'default' ? '' : d.deviceId;
      o.textContent = d.label || `${WORDS[kind]} ${i + 1}`;
      sel.append(o);
    });
    if ([...sel.options].some((o) => o.value === want)) sel.value = want;
  }
}

/**
 * setSpeaker sends the audio of every media element under root to the
 * output device id ('' for the default); a no-op where not supported.
 * @param {ParentNode} root
 * @param {string} id
 */
export function setSpeaker(root, id) {
  if (!canPickSpeaker()) return;
  for (const el of root.querySelectorAll('video, audio')) {
    const m = /** @type {HTMLMediaElement & {setSinkId: (id: string) => Promise<void>, sinkId: string}} */ (el);
    if (m.sinkId !== id) m.setSinkId(id).catch((err) => console.warn('setSinkId', err));
  }
}
