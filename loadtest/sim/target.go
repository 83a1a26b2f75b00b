package sim

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// LoopbackRule is the rule CheckTarget enforces, for messages.
const LoopbackRule = "the load test only runs against this machine: the target host must be in 127.0.0.0/8, ::1 or localhost"

// CheckTarget parses a target base URL (http://host:port or https://...) and
// refuses any host that is not loopback: an address in 127.0.0.0/8, ::1, or
// the name localhost. Other names are refused without being resolved, so a
// DNS answer cannot turn the load test on someone else's machine.
func CheckTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("target %q is not a URL: %w", target, err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return nil, fmt.Errorf("target %q: want an http:// or https:// URL such as http://127.0.0.1:8080", target)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("target %q has no host", target)
	}
	if !loopbackHost(host) {
		return nil, fmt.Errorf("refusing target %s: host %q is not a loopback address; %s", target, host, LoopbackRule)
	}
	return u, nil
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return false
	}
	return a.Unmap().IsLoopback()
}
