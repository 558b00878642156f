package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/internal/roomname"
)

func TestCluster(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte("  cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.key")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	secrets := "turn: {secrets: [turn-secret-0123456789]}\n"

	t.Run("absent: a single node", func(t *testing.T) {
		cfg, err := FromBytes("t.yaml", []byte(secrets))
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Cluster != nil || cfg.Parsed.Cluster != nil {
			t.Fatalf("got cluster %+v, want none", cfg.Cluster)
		}
	})

	t.Run("valid", func(t *testing.T) {
		yml := secrets + "cluster:\n  node: vm1\n  routes: [\"nats-route://vm2:6222\", \"nats-route://10.0.0.3:6222\"]\n  secret_file: " + key + "\n"
		cfg, err := FromBytes("t.yaml", []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		pc := cfg.Parsed.Cluster
		if pc == nil || pc.Node != "vm1" || pc.Secret != "cluster-secret-0123456789" || len(pc.Routes) != 2 || pc.Routes[0].Host != "vm2:6222" {
			t.Fatalf("got %+v", pc)
		}
		if cfg.Cluster.Listen != DefaultClusterListen {
			t.Fatalf("got listen %q, want %q", cfg.Cluster.Listen, DefaultClusterListen)
		}
	})

	t.Run("node defaults to the host name", func(t *testing.T) {
		cfg, err := FromBytes("t.yaml", []byte(secrets+"cluster: {secret_file: "+key+"}\n"))
		if err != nil {
			t.Fatal(err)
		}
		h, _ := os.Hostname()
		if want := nodeName(h); cfg.Parsed.Cluster.Node != want || !roomname.Valid(want) {
			t.Fatalf("got node %q, want %q", cfg.Parsed.Cluster.Node, want)
		}
	})

	tests := []struct {
		name, yml, key, reason string
	}{
		{"no secret file", secrets + "cluster: {node: vm1}", "cluster.secret_file", "required"},
		{"missing secret file", secrets + "cluster: {secret_file: " + filepath.Join(dir, "nope") + "}", "cluster.secret_file", "no such file"},
		{"short secret", secrets + "cluster: {secret_file: " + short + "}", "cluster.secret_file", "at least 16"},
		{"generated TURN secret", "cluster: {secret_file: " + key + "}", "turn.secrets", "same on every node"},
		{"route without scheme", secrets + "cluster: {secret_file: " + key + ", routes: [\"vm2:6222\"]}", "cluster.routes[0]", "not a route"},
		{"route of the wrong scheme", secrets + "cluster: {secret_file: " + key + ", routes: [\"nats://vm2:4222\"]}", "cluster.routes[0]", "not a route"},
		{"route without port", secrets + "cluster: {secret_file: " + key + ", routes: [\"nats-route://vm2\"]}", "cluster.routes[0]", "host:port"},
		{"route with credentials", secrets + "cluster: {secret_file: " + key + ", routes: [\"nats-route://u:p@vm2:6222\"]}", "cluster.routes[0]", "credentials"},
		{"bad node name", secrets + "cluster: {secret_file: " + key + ", node: \"vm 1\"}", "cluster.node", "node name"},
		{"bad listen", secrets + "cluster: {secret_file: " + key + ", listen: \"6222\"}", "cluster.listen", "host:port"},
		{"half of tls", secrets + "cluster: {secret_file: " + key + ", tls: {cert_file: a.pem}}", "cluster.tls", "go together"},
		{"bad nats_url", secrets + "cluster: {secret_file: " + key + ", nats_url: \"http://x\"}", "cluster.nats_url", "not a URL"},
		{"nats_url with routes", secrets + "cluster: {secret_file: " + key + ", nats_url: \"nats://x:4222\", routes: [\"nats-route://vm2:6222\"]}", "cluster.routes", "leave them out"},
		{"unknown key", secrets + "cluster: {secret_file: " + key + ", rutes: []}", "cluster.rutes", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromBytes("t.yaml", []byte(tt.yml))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want a config error", err)
			}
			if ce.Key != tt.key || !strings.Contains(ce.Reason, tt.reason) {
				t.Fatalf("got key %q reason %q, want key %q reason containing %q", ce.Key, ce.Reason, tt.key, tt.reason)
			}
		})
	}
}
