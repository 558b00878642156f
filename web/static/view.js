// What the page shows, drawn from the state app.js passes in: which
// screen (pre-join, call, left), the side panels, the control bar, the
// device messages and preview, the list of people and the call bar.

import { initials } from './tiles.js';

/**
 * $ is document.getElementById.
 * @param {string} id
 * @returns {any}
 */
export const $ = (id) => document.getElementById(id);

/**
 * setStatus sets the status line in the top bar.
 * @param {string} text
 */
export function setStatus(text) { $('status').textContent = text; }

/** @type {number} when the announcement fades */
let quiet = 0;

/**
 * announce says something about the call where the eye is (over the
 * tiles, for a few seconds) and to screen readers (a polite live region,
 * which keeps the text until the next one): "Alice joined".
 * @param {string} text
 */
export function announce(text) {
  const el = $('announce');
  el.textContent = text;
  el.classList.remove('quiet');
  clearTimeout(quiet);
  quiet = window.setTimeout(() => el.classList.add('quiet'), 4000);
}

/**
 * renderBanner shows (or, with text '', hides) the network banner over
 * the call; check adds the link to the connectivity check page.
 * @param {string} text
 * @param {boolean} check
 */
export function renderBanner(text, check) {
  $('netbanner').hidden = !text;
  $('netbanner-text').textContent = text;
  $('netbanner-check').hidden = !check;
}

/**
 * renderShare shows whether you share your screen.
 * @param {boolean} on
 * @param {boolean} possible whether this browser can share at all
 */
export function renderShare(on, possible) {
  const b = $('share-screen');
  b.hidden = !possible;
  b.setAttribute('aria-pressed', String(on));
  b.classList.toggle('on', on);
  b.setAttribute('aria-label', on ? 'Stop sharing your screen' : 'Share your screen');
  b.title = on ? 'Stop sharing your screen' : 'Share your screen';
}

/**
 * renderLayout shows the layout button's state.
 * @param {'auto'|'grid'} mode
 */
export function renderLayout(mode) {
  const b = $('layout-toggle');
  b.setAttribute('aria-pressed', String(mode === 'grid'));
  b.classList.toggle('on', mode === 'grid');
}

/**
 * openPanel shows the side panel id ('chat' or 'lobby'), closing the
 * other, or hides it. Opening the chat clears its unread count.
 * @param {string} id
 * @param {boolean} open
 */
export function openPanel(id, open) {
  if (open) for (const other of ['chat', 'lobby']) if (other !== id) openPanel(other, false);
  $(id).hidden = !open;
  $(id === 'chat' ? 'chat-toggle' : 'people-toggle').setAttribute('aria-expanded', String(open));
  if (id === 'chat' && open) {
    $('unread').textContent = '';
    $('unread').hidden = true;
    $('chat-input').focus();
  }
}

/** countUnread counts a line from someone else while the chat is closed. */
export function countUnread() {
  if (!$('chat').hidden) return;
  $('unread').textContent = String(Number($('unread').textContent || 0) + 1);
  $('unread').hidden = false;
}

/**
 * showScreen shows one of 'prejoin', 'call' and 'left'.
 * @param {string} which
 */
export function showScreen(which) {
  $('prejoin').hidden = which !== 'prejoin';
  $('call').hidden = which !== 'call';
  $('left').hidden = which !== 'left';
  $('controls').hidden = which !== 'call';
  // Following the link in a call would leave it without a word: the
  // other mode is offered before joining and after leaving only.
  $('mode-toggle').hidden = which === 'call';
  if (which !== 'call') {
    openPanel('chat', false);
    openPanel('lobby', false);
  }
}

/**
 * renderMedia shows the state of camera and microphone everywhere: the
 * pre-join preview and message, the in-call note, the mic and camera
 * buttons, and your own tile.
 * @param {import('./media.js').LocalMedia} media
 * @param {import('./tiles.js').Tiles} tiles
 * @param {{mic: boolean, cam: boolean}} meta
 * @param {string} name your name
 * @param {boolean} noteClosed the in-call note was dismissed
 */
export function renderMedia(media, tiles, meta, name, noteClosed) {
  const problem = media.problem;
  $('device-status').textContent = problem ? `${problem} ${media.effect(false)}` : (media.stream ? 'Camera and microphone are ready.' : '');
  $('device-retry').hidden = !problem && !!media.stream;
  $('device-retry').textContent = problem ? 'Try camera and microphone again' : 'Turn camera and microphone on';
  $('media-note-text').textContent = problem ? `${problem} ${media.effect(true)}` : '';
  $('media-note').hidden = !problem || noteClosed;
  const preview = $('preview');
  const pv = $('preview-video');
  // Set again only when the stream or its tracks changed (setting
  // srcObject reloads the element).
  const n = String(media.stream ? media.stream.getTracks().length : 0);
  if (pv.srcObject !== media.stream || pv.dataset.tracks !== n) {
    pv.srcObject = media.stream;
    pv.dataset.tracks = n;
  }
  preview.classList.toggle('novideo', !media.has('video'));
  preview.querySelector('.initials').textContent = initials(name);
  $('preview-note').textContent = media.has('video') ? '' : (media.stream || problem ? 'No camera' : 'Camera off');
  for (const [id, kind, what] of [['mute', 'audio', 'microphone'], ['camera', 'video', 'camera']]) {
    const on = media.enabled(kind);
    const b = $(id);
    b.disabled = on === null;
    b.classList.toggle('off', on !== true);
    b.setAttribute('aria-label', on === null ? `No ${what}` : `Turn ${on ? 'off' : 'on'} ${what}`);
    b.title = on === null ? `No ${what}: ${problem || 'none found'}` : `${on ? 'Turn off' : 'Turn on'} ${what} (${kind === 'audio' ? 'M' : 'V'})`;
  }
  tiles.setLocal(media.stream, name);
  tiles.setMeta(tiles.local, meta);
}

/**
 * renderPeople draws the list of people; in call mode each has a Call
 * button, enabled while no call is on.
 * @param {Map<string, string>} names peer id → name, everyone else
 * @param {import('./callmode.js').CallControl|null} calls
 * @param {boolean} joined whether you are in the room (counted too)
 * @param {string} [myName] your name, listed first when joined
 */
export function renderPeople(names, calls, joined, myName = '') {
  const list = $('people');
  list.replaceChildren();
  if (joined && myName) {
    // The count includes you, so the list does too.
    const me = document.createElement('li');
    me.className = 'me';
    me.textContent = `${myName} (you)`;
    list.append(me);
  }
  for (const [id, name] of names) {
    const li = document.createElement('li');
    li.dataset.peer = id;
    const label = document.createElement('span');
    label.textContent = name;
    li.append(label);
    if (calls) {
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.textContent = 'Call';
      btn.className = 'call-button';
      btn.setAttribute('aria-label', `Call ${name}`);
      btn.disabled = calls.state !== 'idle';
      btn.addEventListener('click', () => calls.call(id));
      li.append(btn);
    }
    list.append(li);
  }
  $('nobody').hidden = names.size > 0;
  $('people-count').textContent = String(names.size + (joined ? 1 : 0));
}

/**
 * renderInvite shows, in a room call, while nobody else is there, how to
 * bring others in: the room's link to send.
 * @param {boolean} alone
 */
export function renderInvite(alone) {
  $('invite').hidden = !alone;
}

/**
 * renderCallBar shows call mode's bar: ringing, incoming (Accept and
 * Decline, focused), ringing (Cancel), or how the last call ended. In a
 * call the control bar's red button is the one end-call control: it
 * says "End call" then, and "Leave" otherwise.
 * @param {{state: string, text: string}} view
 */
export function renderCallBar({ state, text }) {
  $('callbar').hidden = false;
  $('callbar').className = state;
  $('call-status').textContent = text;
  $('accept').hidden = state !== 'incoming';
  $('decline').hidden = state !== 'incoming';
  $('hangup').hidden = state !== 'ringing';
  $('hangup').textContent = 'Cancel';
  const inCall = state === 'connected';
  $('leave').setAttribute('aria-label', inCall ? 'End the call' : 'Leave the room');
  $('leave').title = inCall ? 'End call' : 'Leave';
  $('leave').dataset.action = inCall ? 'hangup' : 'leave';
  if (state === 'incoming') $('accept').focus();
  // On a phone the list of people covers the call: out of the way once
  // a call is on; back when it ends, since the lobby is what is left.
  if (!matchMedia('(min-width: 800px)').matches) openPanel('lobby', state === 'idle');
}
