#!/bin/sh
# Makes the VP8 test clips (see README.md): the light simulcast set q.ivf,
# h.ivf, f.ivf and the busy one busy-q.ivf, busy-h.ivf, busy-f.ivf. Needs
# python3 and vpxenc (Debian: apt-get install vpx-tools). Run once from
# this folder; the outputs are committed.
set -eu

# clip OUT W H KBIT FRAMES NOISE CSTEP: FRAMES frames of a moving pattern,
# W×H at 15 frame/s, a keyframe every FRAMES, encoded for KBIT kbit/s.
# NOISE bits of noise are mixed into each luma sample (0: none), which
# the encoder cannot squeeze; the chroma planes step by CSTEP a frame.
clip() {
	python3 - "$2" "$3" "$5" "$6" "$7" <<'PY' |
import random, sys
w, h, frames, noise, cstep = (int(a) for a in sys.argv[1:])
rnd = random.Random(w)
out = sys.stdout.buffer
for n in range(frames):
    y = bytes((((x + 4 * n) * 255 // w + (r * 128 // h)) & 255) ^ (rnd.getrandbits(noise) if noise else 0)
              for r in range(h) for x in range(w))
    c = bytes([(64 + cstep * n) & 255]) * ((w // 2) * (h // 2))
    out.write(y + c + c)
PY
	vpxenc --codec=vp8 --i420 -w "$2" -h "$3" --fps=15/1 --limit="$5" \
		--kf-max-dist="$5" --target-bitrate="$4" --end-usage=cbr \
		--ivf -o "$1" --quiet -
}

# One second at the three sizes a page sends (scaleResolutionDownBy 4,
# 2, 1): about 20, 50 and 100 kbit/s.
clip q.ivf 80 60 40 15 0 8
clip h.ivf 160 120 100 15 0 8
clip f.ivf 320 240 250 15 0 8

# Two seconds of a 16:9 camera's layers that a capped link cannot all
# carry (sfu.TestLayersUnderCap): about 57, 285 and 635 kbit/s.
clip busy-q.ivf 160 90 50 30 6 4
clip busy-h.ivf 320 180 300 30 6 4
clip busy-f.ivf 640 360 800 30 4 4
