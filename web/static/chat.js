// The chat log: lines as text nodes (links made clickable, never
// innerHTML), and for your own lines whether they reached everyone:
// "sending…" while a peer's data channel is still opening, nothing once
// delivered, "not delivered to …" when a connection closed first.

const LINK = /\bhttps?:\/\/[^\s<>"]+/g;

/**
 * textWithLinks appends text to el, with http(s) links as <a> elements.
 * @param {HTMLElement} el
 * @param {string} text
 */
function textWithLinks(el, text) {
  let at = 0;
  for (const m of text.matchAll(LINK)) {
    const i = m.index || 0;
    if (i > at) el.append(document.createTextNode(text.slice(at, i)));
    const a = document.createElement('a');
    a.href = m[0];
    a.textContent = m[0];
    a.target = '_blank';
    a.rel = 'noopener noreferrer';
    el.append(a);
    at = i + m[0].length;
  }
  if (at < text.length) el.append(document.createTextNode(text.slice(at)));
}

export class ChatLog {
  #next = 1;
  /** @type {Map<number, {li: HTMLLIElement, waiting: Set<string>, lost: string[]}>} */
  #pending = new Map();

  /**
   * @param {HTMLOListElement} list
   * @param {() => void} onIncoming called for each line from someone else
   */
  constructor(list, onIncoming) {
    this.list = list;
    this.onIncoming = onIncoming;
  }

  /**
   * #line appends a line.
   * @param {string} from
   * @param {string} text
   * @param {string} cls
   * @returns {HTMLLIElement}
   */
  #line(from, text, cls) {
    const li = document.createElement('li');
    if (cls) li.className = cls;
    // The time it was written or arrived, shown by the style sheet.
    const now = new Date();
    li.dataset.time = now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    li.title = now.toLocaleString();
    if (cls === 'system') {
      li.textContent = text;
    } else {
      const b = document.createElement('span');
      b.className = 'from';
      b.textContent = from;
      li.append(b);
      textWithLinks(li, text);
    }
    this.list.append(li);
    li.scrollIntoView({ block: 'end' });
    return li;
  }

  /**
   * system adds a line about the room ("bob joined").
   * @param {string} text
   */
  system(text) { this.#line('', text, 'system'); }

  /**
   * incoming adds a line someone else wrote.
   * @param {string} from
   * @param {string} text
   */
  incoming(from, text) {
    this.#line(from, String(text).slice(0, 2000), '');
    this.onIncoming();
  }

  /**
   * mine adds a line you wrote, waiting for the peers in to.
   * @param {string} from your name
   * @param {string} text
   * @param {string[]} to peer ids it is going to
   * @returns {number} the line's id for sent and lost
   */
  mine(from, text, to) {
    const id = this.#next++;
    const li = this.#line(from, text, 'mine');
    li.dataset.line = String(id);
    const mark = document.createElement('span');
    mark.className = 'delivery';
    li.append(mark);
    if (to.length === 0) {
      li.classList.add('undelivered');
      mark.textContent = 'not delivered: nobody else is here';
      return id;
    }
    this.#pending.set(id, { li, waiting: new Set(to), lost: [] });
    this.#render(id);
    return id;
  }

  /**
   * sent records that line id reached peer.
   * @param {number} id
   * @param {string} peer
   */
  sent(id, peer) {
    const p = this.#pending.get(id);
    if (!p) return;
    p.waiting.delete(peer);
    this.#render(id);
  }

  /**
   * lost records that line id will never reach peer (named name).
   * @param {number} id
   * @param {string} peer
   * @param {string} name
   */
  lost(id, peer, name) {
    const p = this.#pending.get(id);
    if (!p || !p.waiting.delete(peer)) return;
    p.lost.push(name);
    this.#render(id);
  }

  /** @param {number} id */
  #render(id) {
    const p = this.#pending.get(id);
    if (!p) return;
    const mark = /** @type {HTMLElement} */ (p.li.querySelector('.delivery'));
    const waiting = p.waiting.size > 0;
    p.li.classList.toggle('pending', waiting);
    p.li.classList.toggle('undelivered', !waiting && p.lost.length > 0);
    if (waiting) mark.textContent = 'sending…';
    else if (p.lost.length) mark.textContent = `not delivered to ${p.lost.join(', ')}`;
    else mark.textContent = '';
    if (!waiting) this.#pending.delete(id);
  }
}
