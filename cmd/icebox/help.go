package main

// helpText is `icebox help`: the commands, the files a package installs
// and where to read more. Each command's flags: `icebox COMMAND -h`.
const helpText = `icebox — a self-hosted calling appliance: STUN/TURN, WebSocket signaling
and a browser call page in one daemon.

Usage:
  icebox [-config FILE] [-state-dir DIR] [-log-level LEVEL]    serve (the default)
  icebox check-config -config FILE                             validate a configuration
  icebox credentials -config FILE -user U -ttl 1h              mint TURN credentials (RTCConfiguration JSON)
  icebox selftest -config FILE                                 check a running icebox from this host
  icebox audit -config FILE | turn:HOST:PORT -secret S         probe a server the way an attacker would
  icebox cluster status [-config FILE] [-addr HOST:PORT] [-rooms]
                                                               nodes, rooms and peers of a cluster
  icebox version                                               version, commit, Go and module versions
  icebox help                                                  this text

Each command's flags: icebox COMMAND -h.

Files:
  /etc/icebox/icebox.yaml    the configuration (every key optional; default path of -config)
  /var/lib/icebox            generated state: the TURN secret, ACME certificates (state_dir)

Service (systemd):
  systemctl status icebox        journalctl -u icebox
  systemctl reload icebox        re-read the configuration (SIGHUP); a bad one is refused

Signals: SIGHUP reloads the configuration; SIGTERM drains calls and exits 0.
`
