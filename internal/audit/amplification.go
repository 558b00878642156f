package audit

import (
	"context"
	"fmt"

	"github.com/pion/stun/v3"
)

// Check names of the amplification checks.
const (
	CheckAmpBinding  = "amplification-binding"
	CheckAmpAllocate = "amplification-allocate"
	// CheckAmpBareAllocate: an Allocate without REQUESTED-TRANSPORT, the
	// smallest Allocate there is (20 bytes).
	CheckAmpBareAllocate = "amplification-allocate-bare"
)

// MaxAmplification is the highest response-to-request byte ratio the
// audit accepts for an unauthenticated request over UDP, where the source
// address may be spoofed and the response lands on a victim. 3 is the
// anti-amplification limit QUIC sets for a server talking to an address
// it has not validated (RFC 9000 §8.1), the one widely deployed UDP
// protocol rule for exactly this risk. A Binding success carries little
// more than XOR-MAPPED-ADDRESS (RFC 8489 §14.2), so it stays far below; a
// 401 to an Allocate must carry ERROR-CODE, REALM and NONCE (RFC 8489
// §9.2.4, RFC 8656 §7.1), which fits within 3 × 28 bytes with a short
// realm and a nonce of up to about 30 characters.
const MaxAmplification = 3.0

// amplification sends the smallest well-formed unauthenticated requests
// an attacker would reflect — a Binding request with no attributes (20
// bytes), an Allocate with only REQUESTED-TRANSPORT (28 bytes) and one
// with no attribute at all (20 bytes) — once
// each on a fresh socket, and compares the bytes of every response
// datagram carrying their transaction ID with the bytes sent.
func amplification(ctx context.Context, cfg Config) []Result {
	tests := []struct {
		check  string
		method stun.Method
		attrs  []stun.Setter
	}{
		{CheckAmpBinding, stun.MethodBinding, nil},
		{CheckAmpAllocate, stun.MethodAllocate, []stun.Setter{requestedTransportUDP}},
		{CheckAmpBareAllocate, stun.MethodAllocate, nil},
	}
	var rs []Result
	for _, tt := range tests {
		rs = append(rs, measure(ctx, cfg, tt.check, tt.method, tt.attrs))
	}
	return rs
}

func measure(ctx context.Context, cfg Config, check string, method stun.Method, attrs []stun.Setter) Result {
	c, err := dialUDP(ctx, cfg.Server, cfg.RTO)
	if err != nil {
		return fail(check, "cannot reach %s: %v", cfg.Server, err)
	}
	defer c.Close()
	req, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)...)
	if err != nil {
		return fail(check, "building the request: %v", err)
	}
	tr, err := c.do(ctx, req)
	if err != nil {
		return fail(check, "unauthenticated %s request to %s: %v", method, cfg.Server, err)
	}
	r := fmt.Sprintf("%d-byte %s request, %s response of %d bytes", tr.sent, method, outcome(tr.resp), tr.received)
	ratio := float64(tr.received) / float64(tr.sent)
	var res Result
	if ratio <= MaxAmplification {
		res = pass(check, "%s: ratio %.2f ≤ %.0f", r, ratio, MaxAmplification)
	} else {
		res = fail(check, "%s: ratio %.2f > %.0f", r, ratio, MaxAmplification)
	}
	res.Ratio = ratio
	return res
}
