// Package loopback tells a host of this machine from any other, for the
// sources that allow plain http only to loopback hosts and the simulator
// that serves only this machine.
package loopback

import (
	"net"
	"strings"
)

// Is reports whether host is "localhost" (in any case) or a loopback IP
// address.
func Is(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
