package daemon

import (
	"slices"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/turnsrv"
	"github.com/icebox-project/icebox/web"
)

// Reload applies a new, validated configuration without dropping calls or
// allocations: TURN secrets, static users, credential TTL, peer lists and
// quotas, and the bitrate cap (for new allocations); room sizes, room
// passwords and allowed origins; turn.credentials and the credential
// minting limits; ipv6_client_prefix, ipv6_aggregate_prefix and
// ipv6_aggregate_factor for the web, signaling and TCP limits
// (open WebSockets stay counted under the key they opened with); the
// shutdown grace; branding.name and the logo, as read from
// branding.logo_file when cfg was loaded. The self-audit runs again. Keys that would need new
// listeners are returned (and logged) as
// needing a restart; their running values stay. On error nothing changes.
func (d *Daemon) Reload(cfg *config.Config) (needRestart []string, err error) {
	p := &cfg.Parsed
	creds, err := Credentials(cfg)
	if err != nil {
		return nil, err
	}
	if err := d.turn.Update(turnsrv.Update{
		Credentials: creds,
		DenyPeers:   p.DenyPeers, AllowPeers: p.AllowPeers,
		MaxAllocationsPerUser: cfg.TURN.MaxAllocationsPerUser, MaxAllocations: cfg.TURN.MaxAllocations,
		MaxAllocationsPerIP: cfg.TURN.MaxAllocationsPerIP, MaxBitratePerAllocation: p.MaxBitrate,
		MaxTCPConnectionsPerIP: cfg.TURN.MaxTCPConnectionsPerIP, MaxTCPConnections: cfg.TURN.MaxTCPConnections,
		IPv6ClientPrefix: cfg.IPv6ClientPrefix, IPv6AggregatePrefix: cfg.IPv6AggregatePrefix,
		IPv6AggregateFactor: cfg.IPv6AggregateFactor,
	}); err != nil {
		return nil, err
	}
	if d.tls != nil && d.tls.files != nil {
		if _, err := d.tls.files.reload(); err != nil {
			d.log.Warn("tls certificate not reloaded; the current one stays", "error", err)
		}
	}
	d.sig.Update(signalingLimits(cfg))
	for _, l := range d.capped {
		l.SetCaps(httpCaps(cfg))
	}
	d.rooms.Store(&cfg.Signaling)
	d.apiKeys.Store(&cfg.HTTP.APIKeys)
	d.setBranding(cfg)
	d.grace.Store(int64(cfg.ShutdownGrace))
	d.onJoin.Store(cfg.TURN.Credentials == config.CredentialsOnJoin)
	d.ipv6Prefix.Store(int64(cfg.IPv6ClientPrefix))
	d.minting.Set(float64(cfg.TURN.CredentialsPerMinute), cfg.TURN.CredentialsBurst)
	d.minting.SetKeyer(cfg.ClientKeyer())
	needRestart = restartKeys(d.bound, cfg)
	if keys, err := d.cluster.reload(cfg); err != nil {
		d.log.Warn("reload: cluster routes not applied", "error", err)
	} else {
		needRestart = append(needRestart, keys...)
	}
	for _, k := range needRestart {
		d.log.Warn("reload: this change needs a restart; the running value stays", "key", k)
	}
	d.audit.request(cfg) // the peer lists or secrets may have changed
	d.log.Info("configuration reloaded", "secrets", len(cfg.TURN.Secrets), "users", len(cfg.TURN.Users),
		"credential_ttl", cfg.TURN.CredentialTTL.String())
	return needRestart, nil
}

// restartKeys lists the keys whose change needs new sockets or would break
// live allocations (the realm is part of every long-term key).
func restartKeys(old, cfg *config.Config) []string {
	oldP, p := &old.Parsed, &cfg.Parsed
	var keys []string
	diff := func(key string, changed bool) {
		if changed {
			keys = append(keys, key)
		}
	}
	diff("public_ip", oldP.PublicIPMode != p.PublicIPMode || oldP.PublicIP != p.PublicIP)
	diff("http.listen", old.HTTP.Listen != cfg.HTTP.Listen)
	diff("turn.listen", !slices.Equal(old.TURN.Listen, cfg.TURN.Listen))
	diff("turn.share_http_listen", !slices.Equal(oldP.TURNListen, p.TURNListen) && slices.Equal(old.TURN.Listen, cfg.TURN.Listen))
	diff("turn.relay_ports", oldP.RelayMin != p.RelayMin || oldP.RelayMax != p.RelayMax)
	diff("turn.realm", old.TURN.Realm != cfg.TURN.Realm)
	diff("turn.udp_sockets", old.TURN.UDPSockets != cfg.TURN.UDPSockets)
	diff("metrics.listen", oldP.MetricsAddr != p.MetricsAddr)
	diff("http.tls", oldP.TLS != p.TLS || old.HTTP.TLS.CertFile != cfg.HTTP.TLS.CertFile ||
		old.HTTP.TLS.KeyFile != cfg.HTTP.TLS.KeyFile || !slices.Equal(old.HTTP.TLS.ACMEDomains, cfg.HTTP.TLS.ACMEDomains))
	diff("public_host", old.PublicHost != cfg.PublicHost)
	diff("http.trusted_proxies", !slices.Equal(oldP.TrustedProxies, p.TrustedProxies))
	diff("sfu.ice_tcp", (oldP.SFU != nil && oldP.SFU.ICETCP) != (p.SFU != nil && p.SFU.ICETCP))
	diff("state_dir", old.StateDir != cfg.StateDir && len(cfg.TURN.Secrets) == 0)
	return keys
}

// setBranding hands the pages branding.name and the logo config read
// from branding.logo_file, and logs them when there are any.
func (d *Daemon) setBranding(cfg *config.Config) {
	b := &cfg.Parsed.Branding
	d.branding.Store(web.NewBranding(b.Name, b.Logo, b.LogoType))
	if b.Name != "" || b.Logo != nil {
		d.log.Info("branding", "name", b.Name, "logo_file", cfg.Branding.LogoFile, "logo_type", b.LogoType, "logo_bytes", len(b.Logo))
	}
}
