#!/bin/sh
# The .deb's life on a Debian root: install, run, upgrade, remove, purge.
# Run by TestDebInstall as root inside new mount, network and PID
# namespaces (unshare), so nothing here reaches the host: the root is an
# overlay of LOWER (a debootstrapped Debian 12, or / itself) whose writes
# land in a tmpfs, the network is a loopback of its own, and the kernel
# settings postinst applies are this namespace's (net.core, which is
# global, is made read-only).
#
#   debinstall.sh LOWER DEB DEB_NEWER PROBE WORKDIR
#
# PROBE is a command (outside the root, inside the namespace) that fetches
# the call page from http://127.0.0.1:443/ and exits 0 when it is served.
# Prints "ok: …" per check, and "FAIL: …" then exits 1 at the first that
# does not hold.
set -eu
lower=$1 deb=$2 newer=$3 probe=$4 w=$5

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

mount --make-rprivate /
ip link set lo up
mount -t tmpfs tmpfs "$w"
mkdir "$w/upper" "$w/work" "$w/root"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$w/upper,workdir=$w/work" "$w/root"
r=$w/root
mount -t proc proc "$r/proc"
if [ -d "$r/proc/sys/net/core" ]; then
	mount --bind "$r/proc/sys/net/core" "$r/proc/sys/net/core"
	mount -o remount,bind,ro "$r/proc/sys/net/core"
fi
mount --rbind /dev "$r/dev"
mount -t tmpfs tmpfs "$r/run"
mount -t tmpfs tmpfs "$r/tmp"
[ ! -e "$r/var/lib/dpkg/info/icebox.list" ] || fail "icebox is already installed in $lower"
# What a `make install` on this machine may have left, hidden in the overlay.
rm -rf "$r/etc/icebox" "$r/var/lib/icebox"
# man-db's trigger re-indexes every manual page on each dpkg run (tens of
# seconds on a busy machine); Debian's own build roots turn it off so.
rm -f "$r/var/lib/man-db/auto-update"
cp "$deb" "$r/tmp/icebox.deb"
cp "$newer" "$r/tmp/icebox-newer.deb"

inroot() { chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
aptr() { inroot apt-get -q -y -o Dpkg::Use-Pty=0 --no-install-recommends "$@"; }
conf=/etc/icebox/icebox.yaml
unit=/lib/systemd/system/icebox.service

# Install.
start=$(date +%s%N)
aptr install /tmp/icebox.deb >"$w/install.log" 2>&1 || { cat "$w/install.log"; fail "apt-get install ./icebox.deb"; }
cat "$w/install.log" | sed -n 's/^icebox: /postinst: /p'
grep -q '^icebox: the call page is at http://127.0.0.1:8080/$' "$w/install.log" || fail "postinst did not print the call page's URL"
installed=$(date +%s%N)
ok "apt-get install ./$(basename "$deb") ($(( (installed - start) / 1000000 )) ms); postinst printed the URL"

for f in /usr/bin/icebox:755:root:root "$unit":644:root:root /usr/lib/sysusers.d/icebox.conf:644:root:root \
	/usr/lib/sysctl.d/60-icebox.conf:644:root:root "$conf":640:root:icebox /usr/share/man/man8/icebox.8.gz:644:root:root \
	/var/lib/icebox:700:icebox:icebox; do
	path=${f%%:*} want=${f#*:}
	got=$(inroot stat -c '%a:%U:%G' "$path") || fail "$path is missing"
	[ "$got" = "$want" ] || fail "$path: mode:owner:group $got, want $want"
done
ok "files, modes and owners"
inroot dpkg-query -W -f='${Conffiles}\n' icebox | grep -q "^ $conf " || fail "$conf is not a conffile"
ok "$conf is a conffile"
pw=$(inroot getent passwd icebox) || fail "no icebox user"
case $pw in icebox:x:*:*:*:/var/lib/icebox:/usr/sbin/nologin) ;; *) fail "icebox user: $pw" ;; esac
inroot getent group icebox >/dev/null || fail "no icebox group"
uid=$(echo "$pw" | cut -d: -f3)
[ "$uid" -lt 1000 ] || fail "icebox is not a system user (uid $uid)"
ok "system user icebox (uid $uid), home /var/lib/icebox, no login shell"
[ "$(cat "$r/proc/sys/net/ipv4/ip_local_reserved_ports")" = 49152-65535 ] ||
	fail "ip_local_reserved_ports is $(cat "$r/proc/sys/net/ipv4/ip_local_reserved_ports") after postinst"
ok "postinst applied net.ipv4.ip_local_reserved_ports"
[ -L "$r/etc/systemd/system/multi-user.target.wants/icebox.service" ] || fail "the unit is not enabled"
ok "the unit is enabled (multi-user.target.wants)"
if inroot sh -c 'command -v systemd-analyze' >/dev/null; then
	out=$(inroot systemd-analyze verify "$unit" 2>&1) || fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
	ok "systemd-analyze verify $unit"
fi
inroot icebox check-config -config "$conf" >/dev/null || fail "icebox check-config rejects the shipped $conf"
ok "icebox check-config passes on the shipped $conf"

# The operator's edit: HTTP on port 443, TURN on loopback.
cat >"$r$conf" <<'YAML'
# edited by the operator
public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:443"
turn:
  listen: ["udp://127.0.0.1:3478"]
metrics:
  listen: ""
YAML
cp "$r$conf" "$w/edited.yaml"

# The daemon as the unit starts it: its ExecStart, as its User and Group,
# with its AmbientCapabilities as the only capabilities.
user=$(sed -n 's/^User=//p' "$r$unit") group=$(sed -n 's/^Group=//p' "$r$unit")
exec_start=$(sed -n 's/^ExecStart=//p' "$r$unit")
caps=$(sed -n 's/^AmbientCapabilities=//p' "$r$unit" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/\([a-z_]*\)/+\1/g; s/ /,/g')
[ "$caps" = +net_bind_service ] || fail "AmbientCapabilities: $caps"
# Call it in a subshell: it replaces the shell with the command, so $!
# is the daemon's own pid.
run_as_unit() {
	exec chroot "$r" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs \
		--inh-caps=-all,"$caps" --ambient-caps=-all,"$caps" --bounding-set=-all,"$caps" "$@"
}
# shellcheck disable=SC2086 # ExecStart is split into words as systemd does
started=$(date +%s%N)
(run_as_unit $exec_start) 2>"$w/daemon.log" &
pid=$!
n=0
until grep -q 'msg="http listening"' "$w/daemon.log"; do
	kill -0 $pid 2>/dev/null || { cat "$w/daemon.log"; fail "icebox exited"; }
	n=$((n + 1)); [ $n -lt 600 ] || { cat "$w/daemon.log"; fail "icebox did not listen within 60 s"; }
	sleep 0.1
done
$probe || { cat "$w/daemon.log"; fail "the call page is not served on 127.0.0.1:443"; }
served=$(date +%s%N)
echo "timing: apt-get install $(( (installed - start) / 1000000 )) ms; icebox started to the page served on :443 $(( (served - started) / 1000000 )) ms"
ok "icebox as $user serves the call page on port 443"
status=$(cat "$r/proc/$pid/status")
echo "$status" | grep -q "^Uid:[[:space:]]*$uid[[:space:]]" || fail "the daemon does not run as uid $uid: $(echo "$status" | grep ^Uid)"
echo "$status" | grep -q '^CapEff:[[:space:]]*0000000000000400$' || fail "the daemon's capabilities: $(echo "$status" | grep ^Cap)"
ok "the daemon runs as uid $uid with CAP_NET_BIND_SERVICE only (CapEff 0x400)"
out=$(run_as_unit /usr/bin/icebox selftest -config "$conf" 2>&1) || fail "icebox selftest: $out"
ok "icebox selftest: $out"
kill -TERM $pid
wait $pid || fail "icebox exited $? on SIGTERM"
[ -s "$r/var/lib/icebox/turn-secret" ] || fail "no generated secret in /var/lib/icebox"

# Upgrade: a newer version keeps the edited configuration.
aptr install /tmp/icebox-newer.deb >"$w/upgrade.log" 2>&1 || { cat "$w/upgrade.log"; fail "upgrade"; }
newv=$(dpkg-deb -f "$newer" Version)
[ "$(inroot dpkg-query -W -f='${Version}' icebox)" = "$newv" ] || fail "not upgraded to $newv"
cmp -s "$r$conf" "$w/edited.yaml" || fail "the upgrade changed the edited $conf"
ok "upgrade to $newv keeps the edited $conf"

# Remove keeps the configuration and the state; purge deletes both.
aptr remove icebox >"$w/remove.log" 2>&1 || { cat "$w/remove.log"; fail "apt-get remove"; }
[ ! -e "$r/usr/bin/icebox" ] || fail "remove left /usr/bin/icebox"
[ ! -e "$r$unit" ] || fail "remove left $unit"
cmp -s "$r$conf" "$w/edited.yaml" || fail "remove did not keep $conf"
[ -s "$r/var/lib/icebox/turn-secret" ] || fail "remove did not keep /var/lib/icebox"
[ "$(inroot dpkg-query -W -f='${db:Status-Abbrev}' icebox)" = "rc " ] || fail "dpkg status after remove: $(inroot dpkg-query -W -f='${db:Status-Abbrev}' icebox)"
ok "remove deletes the binary and unit, keeps $conf and /var/lib/icebox"
aptr purge icebox >"$w/purge.log" 2>&1 || { cat "$w/purge.log"; fail "apt-get purge"; }
[ ! -e "$r/etc/icebox" ] || fail "purge left /etc/icebox: $(ls -A "$r/etc/icebox")"
[ ! -e "$r/var/lib/icebox" ] || fail "purge left /var/lib/icebox"
[ ! -e "$r/etc/systemd/system/multi-user.target.wants/icebox.service" ] || fail "purge left the unit enabled"
! inroot dpkg-query -W icebox >/dev/null 2>&1 || fail "dpkg still knows icebox after purge"
ok "purge deletes /etc/icebox, /var/lib/icebox and the unit's enablement"
