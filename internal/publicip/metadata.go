package publicip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"
)

// DefaultMetadataBase is where every supported cloud serves instance
// metadata: the link-local address 169.254.169.254 (RFC 3927), over plain
// HTTP. Only public_ip: metadata sends anything there.
const DefaultMetadataBase = "http://169.254.169.254"

// MetadataTimeout bounds Resolve's metadata query as a whole: the services
// answer on the host's own hypervisor within milliseconds, and start-up
// should not wait on a host that has none.
const MetadataTimeout = 300 * time.Millisecond

// maxBody bounds a metadata answer read: an address, or Oracle's short
// list of VNICs.
const maxBody = 16 << 10

// provider asks one cloud's metadata service for the public IPv4 address.
type provider struct {
	name string
	ask  func(ctx context.Context, c *http.Client, base string) (string, error)
}

// providers are the clouds asked, each at its documented endpoint.
var providers = []provider{
	// AWS EC2, IMDSv2: a session token (PUT, with its lifetime in
	// seconds), then the public address with the token; an instance with
	// no public address answers 404.
	{"aws", func(ctx context.Context, c *http.Client, base string) (string, error) {
		token, err := fetch(ctx, c, http.MethodPut, base+"/latest/api/token",
			map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "")
		if err != nil {
			return "", err
		}
		return fetch(ctx, c, http.MethodGet, base+"/latest/meta-data/public-ipv4",
			map[string]string{"X-aws-ec2-metadata-token": strings.TrimSpace(token)}, "")
	}},
	// Google Compute Engine: the first access config's external address;
	// the answer must carry Metadata-Flavor: Google too.
	{"gcp", func(ctx context.Context, c *http.Client, base string) (string, error) {
		return fetch(ctx, c, http.MethodGet, base+"/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip",
			map[string]string{"Metadata-Flavor": "Google"}, "Google")
	}},
	// Azure IMDS: the first interface's first public address, as text
	// (only public IPs of the Basic SKU are listed there).
	{"azure", func(ctx context.Context, c *http.Client, base string) (string, error) {
		return fetch(ctx, c, http.MethodGet,
			base+"/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text",
			map[string]string{"Metadata": "true"}, "")
	}},
	// DigitalOcean: the first public interface's IPv4 address.
	{"digitalocean", func(ctx context.Context, c *http.Client, base string) (string, error) {
		return fetch(ctx, c, http.MethodGet, base+"/metadata/v1/interfaces/public/0/ipv4/address", nil, "")
	}},
	// Hetzner Cloud: the server's public IPv4 address.
	{"hetzner", func(ctx context.Context, c *http.Client, base string) (string, error) {
		return fetch(ctx, c, http.MethodGet, base+"/hetzner/v1/metadata/public-ipv4", nil, "")
	}},
	// Oracle Cloud, IMDSv2: the VNICs as JSON. OCI documents each VNIC's
	// private address; a public one is taken from the first VNIC's
	// "publicIp" when present, else Oracle gives no answer (set public_ip
	// on OCI).
	{"oracle", func(ctx context.Context, c *http.Client, base string) (string, error) {
		body, err := fetch(ctx, c, http.MethodGet, base+"/opc/v2/vnics/",
			map[string]string{"Authorization": "Bearer Oracle"}, "")
		if err != nil {
			return "", err
		}
		var vnics []struct {
			PublicIP string `json:"publicIp"`
		}
		if err := json.Unmarshal([]byte(body), &vnics); err != nil {
			return "", fmt.Errorf("not a VNIC list: %w", err)
		}
		if len(vnics) == 0 || vnics[0].PublicIP == "" {
			return "", errors.New("no publicIp on the first VNIC")
		}
		return vnics[0].PublicIP, nil
	}},
}

// Metadata asks every provider's instance metadata service at base (such
// as DefaultMetadataBase) at once and returns the first public IPv4
// address one of them gives, and that provider's name; the others are
// cancelled. An answer must be 200 OK with a global unicast IPv4 address
// that is not private or shared (RFC 1918, RFC 6598). ctx bounds the
// whole query. Errors: ErrNoAnswer, wrapping what each provider said.
func Metadata(ctx context.Context, base string) (netip.Addr, string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil, // never through a proxy from the environment
			DialContext:       (&net.Dialer{}).DialContext,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	type answer struct {
		provider string
		addr     netip.Addr
		err      error
	}
	answers := make(chan answer, len(providers))
	for _, p := range providers {
		go func() {
			body, err := p.ask(ctx, client, base)
			a := answer{provider: p.name, err: err}
			if err == nil {
				a.addr, a.err = publicAddr(body)
			}
			answers <- a
		}()
	}
	// Why each provider gave nothing, providers with the same reason
	// together, in the order they answered.
	var reasons []string
	who := map[string][]string{}
	for range providers {
		a := <-answers
		if a.err == nil {
			return a.addr, a.provider, nil
		}
		why := a.err.Error()
		if who[why] == nil {
			reasons = append(reasons, why)
		}
		who[why] = append(who[why], a.provider)
	}
	if ctx.Err() != nil {
		return netip.Addr{}, "", fmt.Errorf("%w: none answered in time", ErrNoAnswer)
	}
	parts := make([]string, len(reasons))
	for i, why := range reasons {
		parts[i] = strings.Join(who[why], ", ") + ": " + why
	}
	return netip.Addr{}, "", fmt.Errorf("%w (%s)", ErrNoAnswer, strings.Join(parts, "; "))
}

// fetch sends one request and returns the body of a 200 answer, which
// must carry the header Metadata-Flavor: flavor when flavor is not "".
func fetch(ctx context.Context, c *http.Client, method, url string, header map[string]string, flavor string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return "", err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			err = ue.Unwrap() // without the URL, which every provider repeats
		}
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	if flavor != "" && resp.Header.Get("Metadata-Flavor") != flavor {
		return "", fmt.Errorf("answer without Metadata-Flavor: %s", flavor)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return "", err
	}
	if len(body) > maxBody {
		return "", fmt.Errorf("answer longer than %d bytes", maxBody)
	}
	return string(body), nil
}

// publicAddr parses an answer as a public IPv4 address.
func publicAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("answer is not an IP address")
	}
	a = a.Unmap()
	cgnat := netip.MustParsePrefix("100.64.0.0/10")
	if !a.Is4() || !a.IsGlobalUnicast() || a.IsPrivate() || cgnat.Contains(a) {
		return netip.Addr{}, fmt.Errorf("%s is not a public IPv4 address", a)
	}
	return a, nil
}
