// Package straybytes serves HTTP/1.1 the way a misbehaving service does, for
// tests: after each answer, in the same write, it sends bytes nobody asked
// for that echo the request's Authorization header, and keeps the
// connection open. Go's HTTP transport reads such bytes on an idle
// keep-alive connection and logs them through the standard log package.
package straybytes

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// Server is a running stray-bytes server.
type Server struct {
	URL    string        // http://127.0.0.1:port
	Closed chan struct{} // receives once for each connection the client closed
}

// Start serves h on a loopback address until t ends.
func Start(t testing.TB, h http.Handler) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{URL: "http://" + ln.Addr().String(), Closed: make(chan struct{}, 1024)}
	var (
		mu    sync.Mutex
		conns = map[net.Conn]bool{}
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c, h)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return s
}

// serve answers the requests of one connection until the client closes it.
func (s *Server) serve(c net.Conn, h http.Handler) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			s.Closed <- struct{}{}
			return
		}
		// The handler gets the body (a batch request has one); the
		// connection is free for the next request once it is read.
		reqBody, err := io.ReadAll(req.Body)
		if err != nil {
			s.Closed <- struct{}{}
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(reqBody))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		var out bytes.Buffer
		out.WriteString("HTTP/1.1 " + strconv.Itoa(rec.Code) + " " + http.StatusText(rec.Code) + "\r\n")
		hdr := rec.Header().Clone()
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
		hdr.Del("Connection")
		_ = hdr.Write(&out)
		out.WriteString("\r\n")
		out.Write(body)
		// The stray bytes: what looks like a second answer, carrying the
		// credentials of the request.
		out.WriteString("HTTP/1.1 200 OK\r\nX-Echo: Authorization: " + req.Header.Get("Authorization") + "\r\nX-Api-Key: " + req.Header.Get("X-API-Key") + "\r\n\r\n")
		if _, err := c.Write(out.Bytes()); err != nil {
			return
		}
	}
}
