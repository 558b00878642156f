//go:build !(linux && (amd64 || arm64))

package main

import "errors"

func serveFloor(string, int) error {
	return errors.New("the floor server needs Linux on amd64 or arm64")
}
