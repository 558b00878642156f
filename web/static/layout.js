// Tile layout: every tile gets an absolutely positioned box inside the
// #tiles area, recomputed when the area resizes or tiles come and go.
// Grid: the column count that shows the most video (each video is
// contained in its box, never cropped) and boxes that fill the area.
// Stage: one tile large (pinned, a screen share or the active speaker),
// the others in a filmstrip (right on a wide screen, bottom on a tall one). Your own tile is a small picture in the
// corner while others are on the grid.

/** @typedef {{x: number, y: number, w: number, h: number}} Box */

export const GAP = 8;

/**
 * grid picks the column count for n boxes of video aspect ratio aspect in
 * a W×H area that shows the most video, and returns the boxes.
 * @param {number} n
 * @param {number} W
 * @param {number} H
 * @param {number} aspect width / height of the videos
 * @returns {Box[]}
 */
export function grid(n, W, H, aspect) {
  if (n <= 0 || W <= 0 || H <= 0) return [];
  let best = { score: -1, cols: 1, rows: n };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = (W - GAP * (cols - 1)) / cols;
    const h = (H - GAP * (rows - 1)) / rows;
    if (w <= 0 || h <= 0) continue;
    const vw = Math.min(w, h * aspect);
    const score = n * vw * (vw / aspect);
    if (score > best.score * 1.001) best = { score, cols, rows };
  }
  const { cols, rows } = best;
  const w = (W - GAP * (cols - 1)) / cols;
  const h = (H - GAP * (rows - 1)) / rows;
  /** @type {Box[]} */
  const out = [];
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / cols);
    const inRow = r === rows - 1 ? n - cols * (rows - 1) : cols;
    const x0 = (W - (inRow * w + (inRow - 1) * GAP)) / 2;
    out.push({ x: x0 + (i % cols) * (w + GAP), y: r * (h + GAP), w, h });
  }
  return out;
}

/**
 * pinned returns the stage box and n filmstrip boxes for a W×H area.
 * @param {number} n tiles in the filmstrip
 * @param {number} W
 * @param {number} H
 * @returns {{stage: Box, strip: Box[]}}
 */
export function pinned(n, W, H) {
  if (n === 0) return { stage: { x: 0, y: 0, w: W, h: H }, strip: [] };
  const strip = [];
  if (W > H * 1.2) {
    // A column on the right.
    const sw = Math.round(Math.min(240, Math.max(120, W * 0.18)));
    const th = Math.min(sw * 3 / 4, (H - GAP * (n - 1)) / n);
    const y0 = (H - (n * th + (n - 1) * GAP)) / 2;
    for (let i = 0; i < n; i++) strip.push({ x: W - sw, y: y0 + i * (th + GAP), w: sw, h: th });
    return { stage: { x: 0, y: 0, w: W - sw - GAP, h: H }, strip };
  }
  // A row at the bottom.
  const sh = Math.round(Math.min(140, Math.max(72, H * 0.18)));
  const tw = Math.min(sh * 4 / 3, (W - GAP * (n - 1)) / n);
  const x0 = (W - (n * tw + (n - 1) * GAP)) / 2;
  for (let i = 0; i < n; i++) strip.push({ x: x0 + i * (tw + GAP), y: H - sh, w: tw, h: sh });
  return { stage: { x: 0, y: 0, w: W, h: H - sh - GAP }, strip };
}

/**
 * selfView is the corner box of your own tile over the grid.
 * @param {number} W
 * @param {number} H
 * @param {number} aspect
 * @returns {Box}
 */
export function selfView(W, H, aspect) {
  const w = Math.round(W > H ? Math.min(220, Math.max(120, W * 0.18)) : Math.min(150, Math.max(96, W * 0.3)));
  const h = Math.round(w / aspect);
  return { x: W - w - 12, y: H - h - 12, w, h };
}

/**
 * videoAspect is the width/height of a tile's video once known, else 4:3.
 * @param {HTMLElement} tile
 * @returns {number}
 */
export function videoAspect(tile) {
  const v = tile.querySelector('video');
  return v && v.videoWidth && v.videoHeight && !tile.classList.contains('novideo') ? v.videoWidth / v.videoHeight : 4 / 3;
}

/**
 * place sets each tile's box from the layout of area (the #tiles element).
 * @param {HTMLElement} area
 * @param {HTMLElement|null} stage the tile on the stage, if any
 * @param {HTMLElement|null} [pinnedTile] the tile the user pinned, if any
 */
export function place(area, stage, pinnedTile = null) {
  const pin = stage;
  const W = area.clientWidth;
  const H = area.clientHeight;
  const tiles = /** @type {HTMLElement[]} */ ([...area.querySelectorAll(':scope > .tile')]);
  const local = tiles.find((t) => t.classList.contains('local'));
  const remote = tiles.filter((t) => t !== local);
  /** @type {Map<HTMLElement, Box>} */
  const boxes = new Map();
  /** @type {HTMLElement|null} */
  let corner = null;
  if (pin && tiles.includes(pin)) {
    const others = tiles.filter((t) => t !== pin);
    const { stage, strip } = pinned(others.length, W, H);
    boxes.set(pin, stage);
    others.forEach((t, i) => boxes.set(t, strip[i]));
  } else if (remote.length === 0) {
    if (local) boxes.set(local, grid(1, W, H, videoAspect(local))[0]);
  } else {
    const aspects = remote.map(videoAspect).sort((a, b) => a - b);
    const cells = grid(remote.length, W, H, aspects[Math.floor(aspects.length / 2)]);
    remote.forEach((t, i) => boxes.set(t, cells[i]));
    if (local) {
      boxes.set(local, selfView(W, H, videoAspect(local)));
      corner = local;
    }
  }
  for (const t of tiles) {
    const b = boxes.get(t);
    if (!b) continue;
    t.style.left = `${Math.round(b.x)}px`;
    t.style.top = `${Math.round(b.y)}px`;
    t.style.width = `${Math.round(b.w)}px`;
    t.style.height = `${Math.round(b.h)}px`;
    t.classList.toggle('pinned', t === pinnedTile);
    t.classList.toggle('staged', t === pin);
    t.classList.toggle('corner', t === corner);
    t.classList.toggle('small', b.w < 200 || b.h < 120);
    t.setAttribute('aria-pressed', String(t === pinnedTile));
  }
}
