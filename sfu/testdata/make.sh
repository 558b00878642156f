#!/bin/sh
# Makes the simulcast VP8 test clips q.ivf, h.ivf, f.ivf: one second of a
# moving pattern at 15 frame/s, a keyframe every 15 frames, the three sizes
# a page sends with scaleResolutionDownBy 4, 2, 1. Needs python3 and vpxenc
# (Debian: apt-get install vpx-tools). Run once from this folder; the
# outputs are committed.
set -eu
for layer in q:80:60:40 h:160:120:100 f:320:240:250; do
	IFS=: read -r rid w h kbit <<E
$layer
E
	python3 - "$w" "$h" <<'PY' |
import sys
w, h = int(sys.argv[1]), int(sys.argv[2])
out = sys.stdout.buffer
for n in range(15):
    y = bytes(((x + 4 * n) * 255 // w + (r * 128 // h)) & 255 for r in range(h) for x in range(w))
    c = bytes([(64 + 8 * n) & 255]) * ((w // 2) * (h // 2))
    out.write(y + c + c)
PY
	vpxenc --codec=vp8 --i420 -w "$w" -h "$h" --fps=15/1 --limit=15 \
		--kf-max-dist=15 --target-bitrate="$kbit" --end-usage=cbr \
		--ivf -o "$rid.ivf" --quiet - 
done
