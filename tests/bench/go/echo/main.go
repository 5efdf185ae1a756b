// Command echo is the neutral baseline server of `bun run bench` (tests/bench/run.ts): a Go
// net/http mTLS server (HTTP/2 and HTTP/1.1) that answers every request with its body.
//
// It requires a client certificate chaining to -ca (no SPIFFE ID check: the bench measures the
// transport, the SPIFFE checks are covered by tests). Prints "READY <port>" once listening.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	cert := flag.String("cert", "", "PEM certificate chain")
	key := flag.String("key", "", "PEM private key")
	ca := flag.String("ca", "", "PEM client CA bundle")
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()

	pair, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatalf("key pair: %v", err)
	}
	roots, err := os.ReadFile(*ca)
	if err != nil {
		log.Fatalf("ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(roots) {
		log.Fatal("ca: no certificates")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(body)
		}),
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pair},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pool,
			MinVersion:   tls.VersionTLS12,
			NextProtos:   []string{"h2", "http/1.1"},
		},
	}
	fmt.Printf("READY %d\n", ln.Addr().(*net.TCPAddr).Port)
	if err := server.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
