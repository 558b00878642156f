// Call mode: the room is a lobby; you call one person, who accepts or
// declines. Call control travels in signal.data as {"call": …}
// (docs/protocol.md): ring, accept, decline, busy, hangup.

export const RING_TIMEOUT_MS = 30000;

/**
 * @typedef {{state: string, peer: string, text: string}} CallView
 * @typedef {{
 *   send: (to: string, data: object) => boolean,
 *   nameOf: (id: string) => string,
 *   startCall: (id: string) => void,
 *   endMedia: (id: string) => void,
 *   render: (view: CallView) => void,
 * }} CallHooks
 */

export class CallControl {
  /**
   * @param {CallHooks} hooks send(to, data) signals a peer; nameOf(id);
   *   startCall(id) makes us offer; endMedia(id) closes the connection;
   *   render(view) shows the call bar.
   */
  constructor(hooks) {
    this.h = hooks;
    this.state = 'idle'; // idle | ringing (we call) | incoming | connected
    this.peer = '';
    this.timer = 0;
  }

  /**
   * inCallWith reports whether media signals from id belong to our call.
   * @param {string} id
   * @returns {boolean}
   */
  inCallWith(id) {
    return (this.state === 'connected' || this.state === 'ringing') && this.peer === id;
  }

  /**
   * @param {string} state
   * @param {string} peer
   * @param {string} text
   */
  #set(state, peer, text) {
    this.state = state;
    this.peer = peer;
    clearTimeout(this.timer);
    this.timer = 0;
    this.h.render({ state, peer, text });
  }

  /**
   * call rings peer id.
   * @param {string} id
   */
  call(id) {
    if (this.state !== 'idle') return;
    this.#set('ringing', id, `Ringing ${this.h.nameOf(id)}…`);
    this.h.send(id, { call: 'ring' });
    this.timer = setTimeout(() => {
      this.h.send(id, { call: 'hangup', reason: 'no-answer' });
      this.#set('idle', '', `No answer from ${this.h.nameOf(id)}`);
    }, RING_TIMEOUT_MS);
  }

  accept() {
    if (this.state !== 'incoming') return;
    const id = this.peer;
    this.h.send(id, { call: 'accept' });
    this.#set('connected', id, `In call with ${this.h.nameOf(id)}`);
  }

  decline() {
    if (this.state !== 'incoming') return;
    this.h.send(this.peer, { call: 'decline' });
    this.#set('idle', '', `Declined the call from ${this.h.nameOf(this.peer)}`);
  }

  // hangup ends a call we are in or are ringing.
  hangup() {
    if (this.state === 'idle') return;
    const id = this.peer;
    this.h.send(id, { call: 'hangup' });
    this.h.endMedia(id);
    this.#set('idle', '', 'Call ended');
  }

  /**
   * onSignal handles {call: …} from a peer.
   * @param {string} from
   * @param {{call: string}} msg
   */
  onSignal(from, msg) {
    const name = this.h.nameOf(from);
    switch (msg.call) {
      case 'ring':
        if (this.state !== 'idle') {
          this.h.send(from, { call: 'busy' });
          return;
        }
        this.#set('incoming', from, `Incoming call from ${name}`);
        this.timer = setTimeout(() => this.#set('idle', '', `Missed call from ${name}`), RING_TIMEOUT_MS);
        return;
      case 'accept':
        if (this.state === 'ringing' && this.peer === from) {
          this.#set('connected', from, `In call with ${name}`);
          this.h.startCall(from);
        }
        return;
      case 'decline':
      case 'busy':
        if (this.state === 'ringing' && this.peer === from) {
          this.#set('idle', '', msg.call === 'busy' ? `${name} is busy` : `${name} declined`);
        }
        return;
      case 'hangup':
        if (this.peer === from && this.state !== 'idle') {
          const missed = this.state === 'incoming';
          this.h.endMedia(from);
          this.#set('idle', '', missed ? `Missed call from ${name}` : `Call ended: ${name} hung up`);
        }
        return;
      default:
    }
  }

  // peerLeft ends any call with a peer that left (or whose signaling
  // stayed away past the resume window).
  /** @param {string} id */
  peerLeft(id) { this.#end(id, `Call ended: ${this.h.nameOf(id)} left`); }

  // connectionLost ends the call when its media connection failed, which
  // shows a lost network sooner than signaling does.
  /** @param {string} id */
  connectionLost(id) { this.#end(id, `Call ended: connection to ${this.h.nameOf(id)} lost`); }

  /**
   * @param {string} id
   * @param {string} text
   */
  #end(id, text) {
    if (this.peer === id && this.state !== 'idle') {
      this.h.endMedia(id);
      this.#set('idle', '', text);
    }
  }
}
