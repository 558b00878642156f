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

# busy-q.ivf, busy-h.ivf, busy-f.ivf: two seconds of noise over a moving
# pattern at 15 frame/s, a keyframe every 30 frames, 160×90, 320×180 and
# 640×360 (a 16:9 camera's layers), that the encoder cannot squeeze below
# its target: about 50, 300 and 800 kbit/s, so that a capped link cannot
# carry every layer (sfu.TestLayersUnderCap).
for layer in q:160:90:50:6 h:320:180:300:6 f:640:360:800:4; do
	IFS=: read -r rid w h kbit noise <<E
$layer
E
	python3 - "$w" "$h" "$noise" <<'PY' |
import random, sys
w, h, noise = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(w)
out = sys.stdout.buffer
for n in range(30):
    y = bytes((((x + 4 * n) * 255 // w + (r * 128 // h)) & 255) ^ rnd.getrandbits(noise) for r in range(h) for x in range(w))
    c = bytes([(64 + 4 * n) & 255]) * ((w // 2) * (h // 2))
    out.write(y + c + c)
PY
	vpxenc --codec=vp8 --i420 -w "$w" -h "$h" --fps=15/1 --limit=30 \
		--kf-max-dist=30 --target-bitrate="$kbit" --end-usage=cbr \
		--ivf -o "busy-$rid.ivf" --quiet -
done
