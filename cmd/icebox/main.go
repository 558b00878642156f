// Command icebox is a self-hosted calling appliance: STUN/TURN, WebSocket
// signaling and a browser call page in one daemon.
//
//	icebox [-config FILE] [-state-dir DIR] [-log-level LEVEL]   serve
//	icebox check-config -config FILE                             validate
//	icebox credentials -config FILE -user U -ttl 1h               mint
//	icebox selftest -config FILE                                  check a running icebox
//	icebox audit -config FILE | turn:HOST:PORT -secret S           check a running server as an attacker would
//	icebox cluster status [-config FILE] [-addr HOST:PORT] [-rooms] nodes, room and peer counts (-rooms: peers per room) of a cluster
//	icebox version
//	icebox help
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/daemon"
	"github.com/icebox-project/icebox/turnsrv"
	"github.com/icebox-project/icebox/web"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "icebox:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "check-config":
		return checkConfig(args, stdout, stderr)
	case "credentials":
		return credentials(args, stdout, stderr)
	case "selftest":
		return selftest(ctx, args, stdout, stderr)
	case "audit":
		return auditCmd(ctx, args, stdout, stderr)
	case "cluster":
		return clusterCmd(ctx, args, stdout, stderr)
	case "version":
		printVersion(stdout)
		return nil
	case "help":
		_, err := io.WriteString(stdout, helpText)
		return err
	default:
		return fmt.Errorf("unknown command %q (serve, check-config, credentials, selftest, audit, cluster, version, help)", cmd)
	}
}

type commonFlags struct {
	fs         *flag.FlagSet
	configPath string
	source     string // the file load read; "" for none
	stateDir   string
	logLevel   string // serve only; overrides log.level
}

// setLevel applies log.level, or -log-level when given.
func (f *commonFlags) setLevel(level *slog.LevelVar, cfg *config.Config) error {
	name := cfg.Log.Level
	if f.logLevel != "" {
		name = f.logLevel
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(name)); err != nil {
		return fmt.Errorf("log level %q: %w", name, err)
	}
	level.Set(lv)
	return nil
}

func newFlags(name string, stderr io.Writer) *commonFlags {
	f := &commonFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.StringVar(&f.configPath, "config", config.DefaultPath, "configuration `file` (YAML); \"\" for none: the built-in defaults")
	f.fs.StringVar(&f.stateDir, "state-dir", "", "override state_dir: where generated state such as the TURN secret is kept")
	return f
}

// load parses the flags' config and applies -state-dir.
func (f *commonFlags) load() (*config.Config, error) {
	explicit := false
	f.fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "config" {
			explicit = true
		}
	})
	path := f.configPath
	if !explicit {
		if _, err := os.Stat(config.DefaultPath); errors.Is(err, fs.ErrNotExist) {
			path = ""
		} else {
			path = config.DefaultPath
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	f.source = path
	if f.stateDir != "" {
		cfg.StateDir = f.stateDir
	}
	return cfg, nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	f := newFlags("icebox", stderr)
	f.fs.StringVar(&f.logLevel, "log-level", "", "override log.level: debug, info, warn, error")
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	if err := f.setLevel(level, cfg); err != nil {
		return err
	}
	opts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(stderr, opts)
	if cfg.Log.Format == "json" {
		handler = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(handler)
	source := "none: built-in defaults"
	if f.source != "" {
		source = f.source
	}
	log.Info("icebox starting", "version", versionString(), "config", source)
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Version: versionString(), Cores: runtime.GOMAXPROCS(0)})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	n := notifier{log: log}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				n.reloading()
				reload(f, d, level, log)
				n.ready()
			}
		}
	}()
	go n.watchdog(ctx, func() bool { return d.Healthy() })
	n.ready()
	go func() {
		<-ctx.Done()
		n.stopping()
	}()
	if err := d.Serve(ctx); err != nil {
		return err
	}
	log.Info("icebox stopped")
	return nil
}

// reload re-reads the configuration on SIGHUP. An invalid file is refused
// and the running configuration kept. log.level applies at once; a
// log.format change needs a restart.
func reload(f *commonFlags, d *daemon.Daemon, level *slog.LevelVar, log *slog.Logger) {
	cfg, err := f.load()
	if err == nil {
		_, err = d.Reload(cfg)
	}
	if err == nil {
		err = f.setLevel(level, cfg)
	}
	if err != nil {
		log.Error("reload refused; the running configuration stays", "error", err)
	}
}

func checkConfig(args []string, stdout, stderr io.Writer) error {
	f := newFlags("check-config", stderr)
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(f.configPath)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok\n", f.configPath)
	u, ok := pageURL(cfg)
	if !ok {
		u += " (public_host or public_ip names the host)"
	}
	fmt.Fprintf(stdout, "call page: %s\n", u)
	return nil
}

func credentials(args []string, stdout, stderr io.Writer) error {
	f := newFlags("credentials", stderr)
	user := f.fs.String("user", "", "user id carried in the TURN REST username (required)")
	ttl := f.fs.Duration("ttl", 0, "credential lifetime (default: turn.credential_ttl)")
	relay := f.fs.Bool("relay", false, `set iceTransportPolicy to "relay"`)
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	if *user == "" {
		return errors.New("-user is required")
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	if *ttl != 0 {
		if *ttl < time.Second || *ttl > config.MaxCredentialTTL {
			return fmt.Errorf("-ttl %s is outside 1s to %s", *ttl, config.MaxCredentialTTL)
		}
		cfg.TURN.CredentialTTL = *ttl
	}
	creds, err := daemon.ExistingCredentials(cfg)
	if err != nil {
		return err
	}
	adv, skipped := daemon.ConfigAdvertised(context.Background(), cfg, "")
	for _, l := range skipped {
		fmt.Fprintf(stderr, "icebox credentials: turn.listen %s://%s is left out: its port is chosen when icebox starts\n", l.Network, l.Addr)
	}
	if len(adv.TURNURLs) == 0 {
		return errors.New("no turn.listen entry has a fixed port: the URLs are known only to the running icebox (GET /api/v1/ice-servers)")
	}
	username, password, _ := creds.Mint(*user, time.Now())
	servers, ttlOut := adv.ICEServers(username, password), creds.TTL()
	policy := "all"
	if *relay {
		policy = "relay"
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(web.RTCConfiguration{ICEServers: servers, ICETransportPolicy: policy, TTL: int64(ttlOut / time.Second)})
}

// selftest checks a running icebox with its own configuration: an
// allocation at public_ip on the first UDP listener, and a packet relayed
// to a local peer and back.
func selftest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f := newFlags("selftest", stderr)
	if err := f.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := f.load()
	if err != nil {
		return err
	}
	creds, err := daemon.ExistingCredentials(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	adv, _ := daemon.ConfigAdvertised(ctx, cfg, "")
	at, ok := adv.First("udp")
	if !ok {
		return errors.New("selftest needs a udp:// listener with a fixed port in turn.listen")
	}
	res, err := turnsrv.SelfTest(ctx, creds, cfg.TURN.Realm, at.Addr(), int(at.Port()))
	if err != nil {
		return fmt.Errorf("self-test against %s failed: %w", res.Server, err)
	}
	fmt.Fprintf(stdout, "ok: allocated %s at %s; a packet went through the relay and back in %s\n",
		res.RelayedAddr, res.Server, res.RoundTripped.Round(time.Microsecond))
	return nil
}
