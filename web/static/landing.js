// The landing page, GET /: "New meeting" goes to /new (a fresh room);
// "Join with a code or link" takes a room code as read aloud or typed
// ("k7dm hq2x tpa9w", in any case) or a room's link, and goes to
// /r/<room>. The page's own query (such as name=…) goes along.

/** A room id as icebox makes them now: lower-case, no i, l, o, 0 or 1. */
const NEW_ID = /^[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{5}$/;
/** Any room id (roomname.Valid): 1 to 64 of A-Z a-z 0-9 - _. */
const ANY_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * roomFrom finds the room in what was typed: the room of a link
 * (…/r/<room>, with its query), or a code. Old ids are case-sensitive
 * and kept as typed; a code of today's form is taken in any case.
 * @param {string} text
 * @returns {{room: string, query: string}|null} null when it is neither
 */
export function roomFrom(text) {
  let s = text.trim();
  let query = '';
  const m = s.match(/\/r\/([^/?#\s]+)(\?[^#\s]*)?/);
  if (m) {
    try { s = decodeURIComponent(m[1]); } catch { return null; }
    query = m[2] || '';
  } else {
    s = s.replace(/[\s.]+/g, '-');
  }
  if (NEW_ID.test(s.toLowerCase())) s = s.toLowerCase();
  return ANY_ID.test(s) ? { room: s, query } : null;
}

function setup() {
  const own = location.search;
  const code = /** @type {HTMLInputElement} */ (document.getElementById('code'));
  const error = /** @type {HTMLElement} */ (document.getElementById('code-error'));
  /** @type {HTMLAnchorElement} */ (document.getElementById('new-meeting')).href = '/new' + own;
  /** @type {HTMLFormElement} */ (document.getElementById('join-code-form')).addEventListener('submit', (ev) => {
    ev.preventDefault();
    const got = roomFrom(code.value);
    if (!got) {
      error.textContent = code.value.trim()
        ? 'That is not a room code or link. A code looks like k7dm-hq2x-tpa9w; a link ends in /r/ and the code.'
        : 'Type the code of the meeting, or paste its link.';
      code.setAttribute('aria-invalid', 'true');
      code.focus();
      return;
    }
    code.removeAttribute('aria-invalid');
    error.textContent = '';
    location.assign(`/r/${encodeURIComponent(got.room)}${got.query || own}`);
  });
}

setup();
