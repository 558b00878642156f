// Signaling client for protocol v1 (docs/protocol.md): one WebSocket to
// /ws on the page's own host, JSON text frames. A connection lost without
// our asking reconnects with backoff (0.5 s doubling to 4 s, each wait
// drawn from its last quarter so pages do not all come back at once) and
// joins with the resume token of the last welcome, so the server keeps
// our id.

export class Signaling extends EventTarget {
  /** @type {WebSocket|null} */
  #ws = null;
  #pingTimer = 0;
  #retryTimer = 0;
  #stopped = true;
  #backoff = 500;
  /** @type {Record<string, string>|null} */
  #join = null;
  resume = '';
  /** whether the socket is open and joined (a welcome came since it opened) */
  joined = false;

  /**
   * start connects and joins with join ({type:'join', room, name, …}).
   * @param {Record<string, string>} join
   */
  start(join) {
    this.#join = join;
    this.#stopped = false;
    this.#open();
  }

  #open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.#ws = ws;
    ws.addEventListener('open', () => {
      const join = { ...this.#join };
      if (this.resume) join.resume = this.resume;
      ws.send(JSON.stringify(join));
      // Application-level keepalive; proxies may drop idle sockets.
      this.#pingTimer = setInterval(() => this.send({ type: 'ping' }), 25000);
    });
    ws.addEventListener('message', (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (!msg || typeof msg.type !== 'string') return;
      if (msg.type === 'welcome') {
        this.resume = msg.resume || '';
        this.#backoff = 500;
        this.joined = ws === this.#ws;
      }
      this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
    });
    ws.addEventListener('close', (ev) => {
      clearInterval(this.#pingTimer);
      if (ws !== this.#ws) return;
      this.joined = false;
      // 1008 is a policy close (flooding, too slow): do not hammer back.
      if (this.#stopped || ev.code === 1008) {
        this.#stopped = true;
        this.dispatchEvent(new CustomEvent('closed', { detail: { code: ev.code, reason: ev.reason } }));
        return;
      }
      const delay = Math.round(this.#backoff * (0.75 + Math.random() / 4));
      this.#backoff = Math.min(this.#backoff * 2, 4000);
      this.dispatchEvent(new CustomEvent('reconnecting', { detail: { delay, code: ev.code } }));
      this.#retryTimer = setTimeout(() => this.#open(), delay);
    });
  }

  /**
   * send writes msg when the socket is open.
   * @param {object} msg
   * @returns {boolean} whether it was written (false while reconnecting)
   */
  send(msg) {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  /**
   * signal sends data to peer to.
   * @param {string} to
   * @param {object} data
   * @returns {boolean} whether it was written
   */
  signal(to, data) { return this.send({ type: 'signal', to, data }); }

  // stop closes for good: no reconnect, no resume.
  stop() {
    this.#stopped = true;
    this.resume = '';
    this.joined = false;
    clearInterval(this.#pingTimer);
    clearTimeout(this.#retryTimer);
    if (this.#ws) this.#ws.close(1000, 'bye');
  }
}
