package testkit

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a TCP proxy on a loopback port to a server that other tests use
// too (PostgreSQL, Redis). A test cuts it or stalls it to make the server
// unreachable, or silent, for the clients behind it without touching the
// server itself.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	cut     bool
	stalled atomic.Bool // pass no byte on, in either direction (a server that does not answer)
	replies atomic.Bool // pass no byte of the server's on (a server whose answers are lost)
	conns   []net.Conn
	wg      sync.WaitGroup
}

// StartProxy starts a proxy to target (host:port); it is closed, with every
// connection through it, when tb ends.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy to %s: %v", target, err)
	}
	p := &Proxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.serve()
	tb.Cleanup(p.close)
	return p
}

// Addr returns the proxy's address, host:port, for the clients.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(c, up, &p.replies)
		go p.pipe(up, c, nil)
	}
}

// pipe passes src's bytes on to dst, holding them while the proxy is
// stalled, or while held is set (the server's side: SetRepliesStalled).
func (p *Proxy) pipe(dst, src net.Conn, held *atomic.Bool) {
	defer p.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && (p.stalled.Load() || held != nil && held.Load()) {
			time.Sleep(5 * time.Millisecond)
			p.mu.Lock()
			cut := p.cut
			p.mu.Unlock()
			if cut {
				return
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// SetStalled holds every byte in flight (true), as a server too slow to
// answer, or lets them through again (false).
func (p *Proxy) SetStalled(stalled bool) { p.stalled.Store(stalled) }

// SetRepliesStalled holds the server's bytes only (true): a request
// reaches the server, which acts on it, and its answer is lost if the
// connection is then cut; false lets them through again.
func (p *Proxy) SetRepliesStalled(stalled bool) { p.replies.Store(stalled) }

// SetCut cuts every connection and refuses new ones (true), as a server
// gone away, or lets them through again (false).
func (p *Proxy) SetCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
	}
}

func (p *Proxy) close() {
	_ = p.ln.Close()
	p.SetCut(true)
	p.wg.Wait()
}
