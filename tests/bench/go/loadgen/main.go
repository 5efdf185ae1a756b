// Command loadgen is the neutral load generator of `bun run bench` (tests/bench/run.ts): a
// closed loop over mTLS with a fixed concurrency, HTTP/2 (-conns connections × -streams
// requests in flight on each) or HTTP/1.1 (-clients connections, one request in flight each).
//
// The server chain is verified against -ca without a host-name check (SVIDs carry a SPIFFE ID,
// not a DNS name). Only 200 answers count as successes; everything else is an error. After
// -warmup, it measures for -seconds and prints one JSON line:
//
//	{"requests":N,"errors":N,"rps":F,"p50ms":F,"p99ms":F,"total":N}
//
// where total counts every 200 answer, warm-up included.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	target := flag.String("url", "", "https URL of the request")
	proto := flag.String("proto", "h2", "h2 or h1")
	conns := flag.Int("conns", 4, "HTTP/2 connections")
	streams := flag.Int("streams", 16, "HTTP/2 requests in flight per connection")
	clients := flag.Int("clients", 64, "HTTP/1.1 connections (one request in flight each)")
	seconds := flag.Float64("seconds", 5, "measured seconds")
	warmup := flag.Float64("warmup", 1, "warm-up seconds (not measured)")
	method := flag.String("method", "POST", "request method")
	body := flag.String("body", "", "request body")
	contentType := flag.String("content-type", "application/json", "request Content-Type")
	cert := flag.String("cert", "", "PEM client certificate chain")
	key := flag.String("key", "", "PEM client private key")
	ca := flag.String("ca", "", "PEM server CA bundle")
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
	tlsConfig := func(alpn string) *tls.Config {
		return &tls.Config{
			Certificates:       []tls.Certificate{pair},
			NextProtos:         []string{alpn},
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: true, // replaced by the chain check below (no host name in SVIDs)
			VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
				if len(raw) == 0 {
					return errors.New("no server certificate")
				}
				certs := make([]*x509.Certificate, len(raw))
				for i, der := range raw {
					c, err := x509.ParseCertificate(der)
					if err != nil {
						return err
					}
					certs[i] = c
				}
				inter := x509.NewCertPool()
				for _, c := range certs[1:] {
					inter.AddCert(c)
				}
				_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter})
				return err
			},
		}
	}

	// One transport per HTTP/2 connection (MaxConnsPerHost 1 pins it to one TCP connection);
	// one shared transport with -clients connections for HTTP/1.1.
	type worker struct{ client *http.Client }
	var workers []worker
	switch *proto {
	case "h2":
		for i := 0; i < *conns; i++ {
			var protocols http.Protocols
			protocols.SetHTTP2(true)
			t := &http.Transport{
				TLSClientConfig:     tlsConfig("h2"),
				Protocols:           &protocols,
				MaxConnsPerHost:     1,
				MaxIdleConnsPerHost: 1,
			}
			c := &http.Client{Transport: t}
			for j := 0; j < *streams; j++ {
				workers = append(workers, worker{c})
			}
		}
	case "h1":
		var protocols http.Protocols
		protocols.SetHTTP1(true)
		t := &http.Transport{
			TLSClientConfig:     tlsConfig("http/1.1"),
			Protocols:           &protocols,
			MaxConnsPerHost:     *clients,
			MaxIdleConnsPerHost: *clients,
		}
		c := &http.Client{Transport: t}
		for j := 0; j < *clients; j++ {
			workers = append(workers, worker{c})
		}
	default:
		log.Fatalf("unknown -proto %q", *proto)
	}

	payload := []byte(*body)
	var measuring, stop atomic.Bool
	var errs, total atomic.Int64
	lat := make([][]time.Duration, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func(i int, c *http.Client) {
			defer wg.Done()
			for !stop.Load() {
				var rd io.Reader
				if len(payload) > 0 || *method == "POST" || *method == "PUT" {
					rd = bytes.NewReader(payload)
				}
				req, err := http.NewRequest(*method, *target, rd)
				if err != nil {
					log.Fatal(err)
				}
				if rd != nil {
					req.Header.Set("Content-Type", *contentType)
				}
				t0 := time.Now()
				res, err := c.Do(req)
				ok := false
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					ok = err == nil && res.StatusCode == http.StatusOK
				}
				if ok {
					total.Add(1)
				}
				if !measuring.Load() {
					continue
				}
				if ok {
					lat[i] = append(lat[i], time.Since(t0))
				} else {
					errs.Add(1)
				}
			}
		}(i, w.client)
	}
	time.Sleep(time.Duration(*warmup * float64(time.Second)))
	measuring.Store(true)
	t0 := time.Now()
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	measuring.Store(false)
	elapsed := time.Since(t0).Seconds()
	stop.Store(true)
	wg.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return -1
		}
		i := int(float64(len(all)) * p)
		if i >= len(all) {
			i = len(all) - 1
		}
		return float64(all[i].Microseconds()) / 1000
	}
	out, _ := json.Marshal(map[string]any{
		"requests": len(all),
		"errors":   errs.Load(),
		"rps":      float64(len(all)) / elapsed,
		"p50ms":    pct(0.5),
		"p99ms":    pct(0.99),
		"total":    total.Load(),
	})
	os.Stdout.Write(append(out, '\n'))
}
