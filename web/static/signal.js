// Signaling client for protocol v1 (docs/protocol.md): one WebSocket to
// /ws on the page's own host, JSON text frames.

export class Signaling extends EventTarget {
  #ws = null;
  #pingTimer = 0;

  // open connects and resolves once the socket is open.
  open() {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    const ws = new WebSocket(`${scheme}://${location.host}/ws`);
    this.#ws = ws;
    ws.addEventListener('message', (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg && typeof msg.type === 'string') {
        this.dispatchEvent(new CustomEvent(msg.type, { detail: msg }));
      }
    });
    ws.addEventListener('close', (ev) => {
      clearInterval(this.#pingTimer);
      this.dispatchEvent(new CustomEvent('closed', { detail: { code: ev.code, reason: ev.reason } }));
    });
    // Application-level keepalive; proxies may drop idle sockets.
    this.#pingTimer = setInterval(() => this.send({ type: 'ping' }), 25000);
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error('could not reach the signaling server')), { once: true });
    });
  }

  send(msg) {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) {
      this.#ws.send(JSON.stringify(msg));
    }
  }

  signal(to, data) { this.send({ type: 'signal', to, data }); }

  close() {
    clearInterval(this.#pingTimer);
    if (this.#ws) this.#ws.close(1000, 'bye');
    this.#ws = null;
  }
}
