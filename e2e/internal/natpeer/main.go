// Command natpeer is a pion/webrtc peer for icebox's NAT lab (e2e
// natlab tests), run inside a client's network namespace. It does what
// the call page does, without a browser:
//
//  1. GET the page (-page, such as http://203.0.113.10/r/<room>?relay=1)
//     and read its RTCConfiguration from <script id="ice-config">;
//  2. open /ws on the page's host and join the room (protocol v1,
//     docs/protocol.md), taking the iceServers of welcome;
//  3. as the newcomer (welcome lists a peer) create a data channel and
//     offer, otherwise answer the offer that comes; candidates trickle
//     over signal messages as the page's {description} and {candidate};
//  4. on the data channel, send "hello from <name>", answer the other's
//     hello with "ack from <name>", and wait for both from the other;
//  5. print one JSON Report line on standard output, then stay in the
//     call until standard input closes, so the other side can finish.
//
// With -sfu it joins an SFU room instead (sfu.go): it publishes the VP8
// frames of -ivf to the SFU and reports once video from the SFU comes.
// -networks limits ICE to some network types (tcp4: ICE-TCP only).
//
// TLS (an https: page, turns: URLs) trusts the system roots, which the
// test replaces with its own CA through SSL_CERT_FILE. On any failure the
// Report carries Error, with the ICE state and the candidates gathered,
// and the exit status is 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// Candidate is one side of the selected candidate pair.
type Candidate struct {
	Type          string `json:"type"`                    // host, srflx, prflx or relay
	Address       string `json:"address"`                 // ip:port
	Protocol      string `json:"protocol"`                // udp or tcp, between the peers
	RelayProtocol string `json:"relayProtocol,omitempty"` // udp, tcp or tls to the TURN server (local relay only)
}

// Report is what natpeer prints.
type Report struct {
	Name     string     `json:"name"`
	Policy   string     `json:"policy"` // the page's iceTransportPolicy
	URLs     []string   `json:"urls"`   // the ICE server URLs used (no credentials)
	Local    *Candidate `json:"local,omitempty"`
	Remote   *Candidate `json:"remote,omitempty"`
	Gathered []string   `json:"gathered"` // local candidates: type protocol address
	ICEState string     `json:"iceState"`
	Received []string   `json:"received,omitempty"` // data channel messages
	Error    string     `json:"error,omitempty"`
}

func main() {
	page := flag.String("page", "", "the call page URL to take the ICE configuration from")
	name := flag.String("name", "", "display name to join with")
	timeout := flag.Duration("timeout", 45*time.Second, "give up after this long")
	sfu := flag.Bool("sfu", false, "join an SFU room: publish -ivf, receive from the SFU")
	ivf := flag.String("ivf", "", "with -sfu, the VP8 IVF file to publish in a loop")
	networks := flag.String("networks", "", "ICE network types, a comma list of udp4, udp6, tcp4, tcp6 (default: pion's)")
	flag.Parse()
	if *page == "" || *name == "" {
		fmt.Fprintln(os.Stderr, "usage: natpeer -page URL -name NAME [-timeout D]")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	p := &peer{rep: Report{Name: *name, Gathered: []string{}}, msgs: make(chan string, 16)}
	var err error
	if p.networks, err = parseNetworks(*networks); err == nil && *sfu {
		p.sfuFrames, err = readIVF(*ivf)
	}
	if err == nil {
		err = p.run(ctx, *page)
	}
	if err != nil {
		p.rep.Error = err.Error()
	}
	if p.pc != nil {
		p.rep.ICEState = p.pc.ICEConnectionState().String()
	}
	p.mu.Lock()
	line, _ := json.Marshal(p.rep)
	p.mu.Unlock()
	os.Stdout.Write(append(line, '\n'))
	if err == nil {
		// Stay in the call until the test has both reports.
		_, _ = io.Copy(io.Discard, os.Stdin)
	}
	p.leave()
	// Closing the peer connection waits for candidate gathering, and
	// pion dials TCP TURN servers without a deadline: behind a firewall
	// that drops the SYN that is the kernel's two minutes. Do not wait.
	closed := make(chan struct{})
	go func() { p.closePC(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		fmt.Fprintln(os.Stderr, "natpeer: the peer connection did not close in 3 s (a TURN server still being dialled?); leaving anyway")
	}
	if err != nil {
		os.Exit(1)
	}
}

type peer struct {
	mu   sync.Mutex // rep.Gathered, rep.Received, to
	rep  Report
	sig  *sigclient.Client
	pc   *webrtc.PeerConnection
	to   string // the other peer's id; "" until known
	msgs chan string

	networks  []webrtc.NetworkType // nil: pion's default
	sfuFrames [][]byte             // -sfu: the frames to publish
}

var iceConfigRe = regexp.MustCompile(`<script id="ice-config" type="application/json">(.*?)</script>`)

// rtcConfiguration is the page's RTCConfiguration.
type rtcConfiguration struct {
	ICEServers         []webrtc.ICEServer `json:"iceServers"`
	ICETransportPolicy string             `json:"iceTransportPolicy"`
}

func (p *peer) run(ctx context.Context, page string) error {
	u, err := url.Parse(page)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(u.Path, "/r/") {
		return fmt.Errorf("-page %q: want http(s)://host/r/<room>", page)
	}
	room := strings.TrimPrefix(u.Path, "/r/")
	cfg, err := fetchConfig(ctx, page)
	if err != nil {
		return err
	}
	p.rep.Policy = cfg.ICETransportPolicy

	wsURL := "ws://" + u.Host + "/ws"
	if u.Scheme == "https" {
		wsURL = "wss://" + u.Host + "/ws"
	}
	origin := u.Scheme + "://" + u.Host
	sig, err := sigclient.Dial(ctx, wsURL, sigclient.DialOptions{Origin: origin})
	if err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	p.sig = sig
	welcome, err := sig.Join(ctx, wire.Join{Room: room, Name: p.rep.Name})
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if len(welcome.ICEServers) > 0 {
		// Fresh, as the page takes them.
		cfg.ICEServers = cfg.ICEServers[:0]
		for _, s := range welcome.ICEServers {
			cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
		}
	}
	for _, s := range cfg.ICEServers {
		p.rep.URLs = append(p.rep.URLs, s.URLs...)
	}
	if p.sfuFrames != nil {
		return p.runSFU(ctx, cfg, welcome, p.sfuFrames)
	}
	if err := p.newPeerConnection(cfg); err != nil {
		return err
	}
	dcOpen := make(chan *webrtc.DataChannel, 1)
	if len(welcome.Peers) > 0 {
		p.other(welcome.Peers[0].ID)
		dc, err := p.pc.CreateDataChannel("lab", nil)
		if err != nil {
			return err
		}
		p.watch(dc, dcOpen)
		offer, err := p.pc.CreateOffer(nil)
		if err == nil {
			err = p.pc.SetLocalDescription(offer)
		}
		if err != nil {
			return fmt.Errorf("offer: %w", err)
		}
		if err := p.signal(map[string]any{"description": p.pc.LocalDescription()}); err != nil {
			return err
		}
	} else {
		p.pc.OnDataChannel(func(dc *webrtc.DataChannel) { p.watch(dc, dcOpen) })
	}
	sigErr := make(chan error, 1)
	go func() { sigErr <- p.serve(ctx) }()

	var dc *webrtc.DataChannel
	select {
	case dc = <-dcOpen:
	case err := <-sigErr:
		return fmt.Errorf("signaling ended before the data channel opened: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("data channel did not open: %w", ctx.Err())
	}
	if err := dc.SendText("hello from " + p.rep.Name); err != nil {
		return err
	}
	var hello, ack bool
	for !hello || !ack {
		select {
		case m := <-p.msgs:
			switch {
			case strings.HasPrefix(m, "hello from "):
				hello = true
				if err := dc.SendText("ack from " + p.rep.Name); err != nil {
					return err
				}
			case strings.HasPrefix(m, "ack from "):
				ack = true
			}
		case err := <-sigErr:
			return fmt.Errorf("signaling ended during the exchange: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("data channel exchange (hello %v, ack %v): %w", hello, ack, ctx.Err())
		}
	}
	return p.selected()
}

// fetchConfig loads the page and reads its RTCConfiguration.
func fetchConfig(ctx context.Context, page string) (rtcConfiguration, error) {
	var cfg rtcConfiguration
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, page, nil)
	if err != nil {
		return cfg, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return cfg, fmt.Errorf("page: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return cfg, fmt.Errorf("page: %w", err)
	}
	m := iceConfigRe.FindSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		return cfg, fmt.Errorf("page %s: status %d, ice-config found: %v", page, resp.StatusCode, m != nil)
	}
	if err := json.Unmarshal(m[1], &cfg); err != nil {
		return cfg, fmt.Errorf("page ice-config: %w", err)
	}
	return cfg, nil
}

// maxBindingRequests is how many connectivity checks natpeer sends on a
// candidate pair before it gives the pair up. pion's default, 7 at one
// every 200 ms, gives up after 1.4 s, before the far end may have its
// remote description or its TURN permission on a loaded machine; a
// browser keeps checking a pair for tens of seconds. 75 is 15 s.
const maxBindingRequests = 75

func (p *peer) newPeerConnection(cfg rtcConfiguration) error {
	var se webrtc.SettingEngine
	se.SetICEMaxBindingRequests(maxBindingRequests)
	if p.networks != nil {
		se.SetNetworkTypes(p.networks)
	}
	conf := webrtc.Configuration{ICEServers: cfg.ICEServers, ICETransportPolicy: webrtc.NewICETransportPolicy(cfg.ICETransportPolicy)}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(conf)
	if err != nil {
		return err
	}
	p.pc = pc
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c == nil {
			return
		}
		p.mu.Lock()
		p.rep.Gathered = append(p.rep.Gathered, fmt.Sprintf("%s %s %s:%d", c.Typ, c.Protocol, c.Address, c.Port))
		p.mu.Unlock()
		_ = p.signal(map[string]any{"candidate": c.ToJSON()})
	})
	return nil
}

func (p *peer) watch(dc *webrtc.DataChannel, open chan<- *webrtc.DataChannel) {
	dc.OnOpen(func() { open <- dc })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		p.mu.Lock()
		p.rep.Received = append(p.rep.Received, string(m.Data))
		p.mu.Unlock()
		select {
		case p.msgs <- string(m.Data):
		default:
		}
	})
}

func (p *peer) signal(data any) error {
	to := p.other("")
	if to == "" {
		return errors.New("no peer to signal yet")
	}
	return p.sig.Signal(to, data)
}

// other returns the other peer's id, setting it to id when unknown.
func (p *peer) other(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.to == "" {
		p.to = id
	}
	return p.to
}

// serve handles signaling until the socket closes or ctx ends.
// Candidates that come before the remote description wait for it.
func (p *peer) serve(ctx context.Context) error {
	var pending []webrtc.ICECandidateInit
	for {
		msg, err := p.sig.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *wire.Error:
			return m
		case *wire.PeerJoined:
			p.other(m.ID)
		case *wire.Signal:
			if m.From != p.other("") {
				continue
			}
			var data struct {
				Description *webrtc.SessionDescription `json:"description"`
				Candidate   *webrtc.ICECandidateInit   `json:"candidate"`
			}
			if err := json.Unmarshal(m.Data, &data); err != nil {
				return fmt.Errorf("signal from %s: %w", m.From, err)
			}
			if d := data.Description; d != nil {
				if err := p.pc.SetRemoteDescription(*d); err != nil {
					return fmt.Errorf("remote description: %w", err)
				}
				for _, c := range pending {
					if err := p.pc.AddICECandidate(c); err != nil {
						return fmt.Errorf("remote candidate: %w", err)
					}
				}
				pending = nil
				if d.Type == webrtc.SDPTypeOffer {
					answer, err := p.pc.CreateAnswer(nil)
					if err == nil {
						err = p.pc.SetLocalDescription(answer)
					}
					if err != nil {
						return fmt.Errorf("answer: %w", err)
					}
					if err := p.signal(map[string]any{"description": p.pc.LocalDescription()}); err != nil {
						return err
					}
				}
			}
			if c := data.Candidate; c != nil {
				if p.pc.RemoteDescription() == nil {
					pending = append(pending, *c)
				} else if err := p.pc.AddICECandidate(*c); err != nil {
					return fmt.Errorf("remote candidate: %w", err)
				}
			}
		}
	}
}

// selected fills Local and Remote from the selected candidate pair, with
// the relay protocol and URL of the local candidate from the stats.
func (p *peer) selected() error {
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return fmt.Errorf("no selected candidate pair: %v", err)
	}
	side := func(c *webrtc.ICECandidate) *Candidate {
		return &Candidate{Type: c.Typ.String(), Address: fmt.Sprintf("%s:%d", c.Address, c.Port), Protocol: c.Protocol.String()}
	}
	p.rep.Local, p.rep.Remote = side(pair.Local), side(pair.Remote)
	for _, s := range p.pc.GetStats() {
		cs, ok := s.(webrtc.ICECandidateStats)
		if ok && cs.Type == webrtc.StatsTypeLocalCandidate && cs.IP == pair.Local.Address &&
			int(cs.Port) == int(pair.Local.Port) && cs.CandidateType == pair.Local.Typ {
			p.rep.Local.RelayProtocol = cs.RelayProtocol
		}
	}
	return nil
}

// leave leaves the room and closes the WebSocket.
func (p *peer) leave() {
	if p.sig != nil {
		_ = p.sig.Send(&wire.Leave{})
		_ = p.sig.Close()
	}
}

// closePC closes the peer connection, releasing its TURN allocations.
func (p *peer) closePC() {
	if p.pc != nil {
		_ = p.pc.Close()
	}
}
