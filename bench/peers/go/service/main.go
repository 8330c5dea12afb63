// SPDX-License-Identifier: Apache-2.0
// bench/peers/go/service/main.go — the Go peer of the compute service (examples/service.cpp):
// the same three endpoints with net/http and goroutines, the way a Go programmer writes them,
// for tools/bench_service.py.
//
// Usage: peer_go_service [--port P] [--workers N] [--deadline-ms MS] [--max-body BYTES]
// As examples/service.cpp: --port 0 picks a free port, the first line on stdout is
// "listening on 127.0.0.1:PORT", --workers N sets GOMAXPROCS (0: Go's default), SIGTERM or SIGINT
// shuts the server down gracefully (http.Server.Shutdown) and exits 0.
//
//	POST /wordcount  the body's words (tools/wordcount/words.hpp's rule, as
//	                 bench/peers/go/wordcount: [A-Za-z0-9_]+, ASCII lower-cased), cut into 16 KiB
//	                 pieces at word ends, counted by one goroutine per GOMAXPROCS (each its own
//	                 map), merged: {"words", "distinct", "top": the 10 largest, ties by word}
//	GET  /fib/N      fib(N), N <= 50: fib(n-1) in a new goroutine and fib(n-2) here down to the
//	                 same sequential cutoff as ours (18); every split checks the context
//	GET  /stats      {"goroutines", "gomaxprocs"}
//
// Each request's context carries the deadline (503 when it passes) and is cancelled when the
// client goes away (net/http's background read), as ours; a body over --max-body is 413.
//
// Built by tools/bench_service.py, outside any module:
//
//	GO111MODULE=off go build -o <builddir>/peer_go_service bench/peers/go/service/main.go
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	fibCap    = 50
	fibCutoff = 18
	chunkSize = 16 * 1024
)

var (
	deadline time.Duration
	maxBody  int64
	lower    [256]byte // 0 for a byte that separates words, else its lower-case form
)

func init() {
	for c := 0; c < 256; c++ {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
			lower[c] = byte(c)
		case c >= 'A' && c <= 'Z':
			lower[c] = byte(c - 'A' + 'a')
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// ---- fib ----------------------------------------------------------------------------------------

func fibSeq(n int) int64 {
	if n < 2 {
		return int64(n)
	}
	return fibSeq(n-1) + fibSeq(n-2)
}

var errStopped = errors.New("stopped")

func fibPar(ctx context.Context, n int) (int64, error) {
	if n <= fibCutoff {
		return fibSeq(n), nil
	}
	if ctx.Err() != nil {
		return 0, errStopped
	}
	var a int64
	var aerr error
	done := make(chan struct{})
	go func() {
		a, aerr = fibPar(ctx, n-1)
		close(done)
	}()
	b, berr := fibPar(ctx, n-2)
	<-done
	if aerr != nil {
		return 0, aerr
	}
	return a + b, berr
}

// ---- wordcount ------------------------------------------------------------------------------

// pieces cuts text into ~chunkSize pieces, never inside a word.
func pieces(text []byte) [][]byte {
	var out [][]byte
	for len(text) > 0 {
		n := len(text)
		if n > chunkSize {
			n = chunkSize
			cut := n
			for cut > 0 && lower[text[cut-1]] != 0 {
				cut--
			}
			if cut == 0 { // one word longer than a piece: all of it
				cut = n
				for cut < len(text) && lower[text[cut]] != 0 {
					cut++
				}
			}
			n = cut
		}
		out = append(out, text[:n])
		text = text[n:]
	}
	return out
}

// counter is one mapper's counts: word -> index into counts. A lookup m[string(b)] does not
// allocate (the compiler's rule for a map index with a converted []byte); m[string(b)]++ would
// allocate the key every time (bench/peers/go/wordcount does the same).
type counter struct {
	idx    map[string]int32
	counts []int64
}

func (c *counter) add(w []byte) {
	if i, ok := c.idx[string(w)]; ok {
		c.counts[i]++
		return
	}
	c.idx[string(w)] = int32(len(c.counts))
	c.counts = append(c.counts, 1)
}

func countWords(piece []byte, m *counter) int64 {
	var total int64
	scratch := make([]byte, 0, 64)
	p, n := 0, len(piece)
	for p < n {
		for p < n && lower[piece[p]] == 0 {
			p++
		}
		if p == n {
			break
		}
		start, folded := p, false
		for p < n && lower[piece[p]] != 0 {
			if lower[piece[p]] != piece[p] {
				folded = true
			}
			p++
		}
		w := piece[start:p]
		if folded {
			scratch = scratch[:0]
			for _, c := range w {
				scratch = append(scratch, lower[c])
			}
			w = scratch
		}
		m.add(w)
		total++
	}
	return total
}

type wordCount struct {
	Word  string `json:"word"`
	Count int64  `json:"count"`
}

type wordcountResult struct {
	Words    int64       `json:"words"`
	Distinct int         `json:"distinct"`
	Top      []wordCount `json:"top"`
}

func wordcount(ctx context.Context, text []byte) (wordcountResult, error) {
	ps := pieces(text)
	if len(ps) == 0 {
		return wordcountResult{Top: []wordCount{}}, nil
	}
	mappers := runtime.GOMAXPROCS(0)
	if mappers > len(ps) {
		mappers = len(ps)
	}
	maps := make([]*counter, mappers)
	totals := make([]int64, mappers)
	var next int64 = -1
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := 0; i < mappers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			m := &counter{idx: make(map[string]int32)}
			for {
				mu.Lock()
				next++
				k := next
				mu.Unlock()
				if int(k) >= len(ps) || ctx.Err() != nil {
					break
				}
				totals[i] += countWords(ps[k], m)
			}
			maps[i] = m
		}(i)
	}
	wg.Wait()
	if ctx.Err() != nil {
		return wordcountResult{}, errStopped
	}
	res := wordcountResult{Top: []wordCount{}}
	var merged *counter
	for i, m := range maps {
		res.Words += totals[i]
		if merged == nil || len(m.counts) > len(merged.counts) {
			merged, maps[i] = m, merged
		}
	}
	for _, m := range maps {
		if m == nil {
			continue
		}
		for k, i := range m.idx {
			if j, ok := merged.idx[k]; ok {
				merged.counts[j] += m.counts[i]
			} else {
				merged.idx[k] = int32(len(merged.counts))
				merged.counts = append(merged.counts, m.counts[i])
			}
		}
	}
	all := make([]wordCount, 0, len(merged.counts))
	for k, i := range merged.idx {
		all = append(all, wordCount{k, merged.counts[i]})
	}
	res.Distinct = len(all)
	sort.Slice(all, func(a, b int) bool {
		if all[a].Count != all[b].Count {
			return all[a].Count > all[b].Count
		}
		return all[a].Word < all[b].Word
	})
	if len(all) > 10 {
		all = all[:10]
	}
	res.Top = append(res.Top, all...)
	return res, nil
}

// ---- handlers --------------------------------------------------------------------------------

// finish answers a job's outcome: the deadline is 503, a client gone gets nothing.
func finish(w http.ResponseWriter, ctx context.Context, v any, err error) {
	if err == nil {
		writeJSON(w, http.StatusOK, v)
	} else if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		writeError(w, http.StatusServiceUnavailable,
			fmt.Sprintf("deadline of %d ms exceeded", deadline.Milliseconds()))
	}
}

func handleFib(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/fib/"))
	if err != nil || n < 0 {
		writeError(w, http.StatusBadRequest, "N must be a number")
		return
	}
	if n > fibCap {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("N above the cap of %d", fibCap))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), deadline)
	defer cancel()
	v, err := fibPar(ctx, n)
	finish(w, ctx, map[string]int64{"n": int64(n), "fib": v}, err)
}

func handleWordcount(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if r.ContentLength > maxBody {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", maxBody))
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), deadline)
	defer cancel()
	v, err := wordcount(ctx, body)
	finish(w, ctx, v, err)
}

func handleStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"goroutines": runtime.NumGoroutine(),
		"gomaxprocs": runtime.GOMAXPROCS(0)})
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: one per core)")
	deadlineMs := flag.Int("deadline-ms", 2000, "per-request deadline")
	flag.Int64Var(&maxBody, "max-body", 1<<20, "largest request body")
	flag.Parse()
	if flag.NArg() != 0 || *port < 0 || *port > 65535 || *workers < 0 || *deadlineMs <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}
	deadline = time.Duration(*deadlineMs) * time.Millisecond

	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/fib/", handleFib)
	mux.HandleFunc("/wordcount", handleWordcount)
	mux.HandleFunc("/stats", handleStats)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second}
	fmt.Println("listening on", ln.Addr().String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan struct{})
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), deadline+30*time.Second)
		defer cancel()
		srv.Shutdown(ctx) // closes the listener, waits for the requests in flight
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
	<-done
}
