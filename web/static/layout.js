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
 * pinned returns the stage box and n filmstrip boxes for a W×H area. The
 * filmstrip is a column on the right of a wide area and a row at the
 * bottom of a tall one; with many people it takes up to three columns
 * (rows), whichever shows each picture largest, rather than pictures
 * too small to tell a face or read a name.
 * @param {number} n tiles in the filmstrip
 * @param {number} W
 * @param {number} H
 * @returns {{stage: Box, strip: Box[]}}
 */
export function pinned(n, W, H) {
  if (n === 0) return { stage: { x: 0, y: 0, w: W, h: H }, strip: [] };
  /** @type {Box[]} */
  const strip = [];
  if (W > H * 1.2) {
    // Columns on the right, filled top to bottom.
    const colW = Math.round(Math.min(240, Math.max(120, W * 0.18)));
    const best = bestLines(n, (cols) => {
      const cw = cols === 1 ? colW : Math.round(colW * 0.75);
      const rows = Math.ceil(n / cols);
      const th = Math.min(cw * 3 / 4, (H - GAP * (rows - 1)) / rows);
      return { size: Math.min(cw, th * 4 / 3), cw, th };
    });
    const { lines: cols, cw, th } = best;
    const rows = Math.ceil(n / cols);
    const sw = cols * cw + (cols - 1) * GAP;
    const y0 = (H - (rows * th + (rows - 1) * GAP)) / 2;
    for (let i = 0; i < n; i++) {
      const c = Math.floor(i / rows);
      strip.push({ x: W - sw + c * (cw + GAP), y: y0 + (i % rows) * (th + GAP), w: cw, h: th });
    }
    return { stage: { x: 0, y: 0, w: W - sw - GAP, h: H }, strip };
  }
  // Rows at the bottom, filled left to right.
  const rowH = Math.round(Math.min(140, Math.max(72, H * 0.18)));
  const best = bestLines(n, (rows) => {
    const rh = rows === 1 ? rowH : Math.round(rowH * 0.8);
    const cols = Math.ceil(n / rows);
    const tw = Math.min(rh * 4 / 3, (W - GAP * (cols - 1)) / cols);
    return { size: tw, cw: tw, th: Math.min(rh, tw * 3 / 4) };
  });
  const { lines: rows, cw: tw, th } = best;
  const cols = Math.ceil(n / rows);
  const sh = rows * th + (rows - 1) * GAP;
  for (let i = 0; i < n; i++) {
    const r = Math.floor(i / cols);
    const inRow = r === rows - 1 ? n - cols * (rows - 1) : cols;
    const x0 = (W - (inRow * tw + (inRow - 1) * GAP)) / 2;
    strip.push({ x: x0 + (i % cols) * (tw + GAP), y: H - sh + r * (th + GAP), w: tw, h: th });
  }
  return { stage: { x: 0, y: 0, w: W, h: H - sh - GAP }, strip };
}

/** The least width of a filmstrip picture worth keeping the stage smaller for, px: a face and a name. */
const STRIP_MIN_W = 96;

/**
 * bestLines picks how many columns (or rows) of 1 to 3 a filmstrip takes:
 * the fewest whose pictures are STRIP_MIN_W wide, else the most.
 * @param {number} n tiles
 * @param {(lines: number) => {size: number, cw: number, th: number}} measure a picture's width, and a tile's width and height, for that many lines
 * @returns {{lines: number, size: number, cw: number, th: number}}
 */
function bestLines(n, measure) {
  const options = [1, 2, 3].filter((k) => k === 1 || k <= n).map((lines) => ({ lines, ...measure(lines) }));
  return options.find((o) => o.size >= STRIP_MIN_W) || options[options.length - 1];
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
