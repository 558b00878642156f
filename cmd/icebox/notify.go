package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// notifier tells systemd (Type=notify) about start-up, reloads and stops,
// and pings its watchdog. Outside systemd ($NOTIFY_SOCKET unset) every call
// is a no-op.
type notifier struct{ log *slog.Logger }

func (n notifier) send(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		n.log.Warn("sd_notify", "state", state, "error", err)
	}
}

func (n notifier) ready()    { n.send(sd.SdNotifyReady) }
func (n notifier) stopping() { n.send(sd.SdNotifyStopping) }

// reloading marks a reload in progress; systemd expects MONOTONIC_USEC
// with it (sd_notify(3)).
func (n notifier) reloading() {
	n.send(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", sd.SdNotifyReloading, monotonicMicros()))
}

// watchdog pings systemd at half of WatchdogSec while alive() holds, until
// ctx ends.
func (n notifier) watchdog(ctx context.Context, alive func() bool) {
	interval, err := sd.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				n.send(sd.SdNotifyWatchdog)
			}
		}
	}
}
