//go:build !linux

package sockbuf

// Set returns ErrUnsupported: icebox sizes socket buffers on Linux only.
func Set(_, recv, send int) (Sizes, error) {
	return Sizes{RecvAsked: recv, SendAsked: send}, ErrUnsupported
}
