// SPDX-License-Identifier: Apache-2.0
// bench/peers/go/wordcount/main.go — the word count and the inverted index of the map/reduce
// benchmark in Go: goroutines, channels and maps, the way a Go programmer writes it.
//
// Usage: peer_go_wordcount wordcount|index [-workers T] PATH...
// Prints the one JSON line of bench/wordcount_common.hpp (the same fields, the same digest).
//
// The pipeline:
//
//	walk ──files──▶ reader goroutine ──64 KiB chunks──▶ T mapper goroutines ──maps──▶ merge
//	                (plain reads;       (a buffered        (each its own map;
//	                 binary check,       channel)           buffers go back on a
//	                 words never cut)                       free-list channel)
//
// GOMAXPROCS = T (-workers). A chunk ends at a word's end (the tail is carried into the next
// chunk, as bench/wordcount_common.hpp's scan_file()), so a mapper never sees half a word and the
// chunks of one file may go to different mappers. A mapper's map is map[string]int32 into a
// slice of counts: a lookup with m[string(b)] does not allocate (the compiler's rule for a map
// index with a converted []byte), while m[string(b)]++ would allocate the key every time. The
// merge folds every mapper's map into the largest. Index: each mapper keeps word → file ids
// (a file's chunks may be split over mappers, so the merged lists are sorted and deduplicated, in
// T goroutines).
//
// The three rules of tools/wordcount/words.hpp, exactly: a word is a maximal run of
// [A-Za-z0-9_], lower-cased (ASCII; every other byte separates words); a file with a NUL byte in
// its first 8,192 bytes is binary (counted, not read further); the files are the regular files
// under the paths (directories recursively, each directory's entries sorted by name; symbolic
// links not followed) — filepath.WalkDir visits them in the order of the C++ walk.
//
// Built by tools/bench_wordcount.py, outside any module:
//
//	GO111MODULE=off go build -o <builddir>/peer_go_wordcount bench/peers/go/wordcount/main.go
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"
)

const (
	chunkSize   = 64 * 1024
	binaryProbe = 8192
)

// lower[c] is 0 for a byte that separates words, else its lower-case form.
var lower [256]byte

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

// collectFiles lists the regular files under paths, in the order of the C++ collect_files().
func collectFiles(paths []string) []string {
	var out []string
	for _, root := range paths {
		st, err := os.Lstat(root)
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", root, err)
			continue
		}
		if st.Mode().IsRegular() {
			out = append(out, root)
			continue
		}
		if !st.IsDir() {
			continue
		}
		filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // an unreadable directory: skipped, as skip_permission_denied
			}
			if d.Type().IsRegular() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// chunk is a piece of a file that ends at a word's end; buf goes back to the free list.
type chunk struct {
	id   uint32
	data []byte
	buf  []byte
}

// fileStats is what the reader counted.
type fileStats struct {
	files, binary, unreadable, bytes uint64
}

// splitAtWordEnd is the length of the longest prefix of b that does not end inside a word.
func splitAtWordEnd(b []byte) int {
	n := len(b)
	for n > 0 && lower[b[n-1]] != 0 {
		n--
	}
	return n
}

// reader reads every file in chunks onto out, taking buffers from free; it closes out.
func reader(files []string, out chan<- chunk, free chan []byte, st *fileStats) {
	defer close(out)
	st.files = uint64(len(files))
	for id, path := range files {
		f, err := os.Open(path)
		if err != nil {
			st.unreadable++
			continue
		}
		buf := <-free
		have, first, total := 0, true, uint64(0)
		for {
			n, err := io.ReadFull(f, buf[have:])
			end := err == io.EOF || err == io.ErrUnexpectedEOF
			if err != nil && !end {
				// As in C++: counted unreadable, no bytes; the words already sent stay counted.
				st.unreadable++
				free <- buf
				total = 0
				break
			}
			length := have + n
			if first {
				first = false
				probe := buf[:length]
				if len(probe) > binaryProbe {
					probe = probe[:binaryProbe]
				}
				if bytes.IndexByte(probe, 0) >= 0 {
					st.binary++
					free <- buf
					break
				}
			}
			total += uint64(n)
			if end {
				out <- chunk{uint32(id), buf[:length], buf}
				break
			}
			cut := splitAtWordEnd(buf[:length])
			if cut == 0 { // one word fills the buffer: grow it and read on behind it
				bigger := make([]byte, 2*len(buf))
				copy(bigger, buf[:length])
				free <- buf[:chunkSize]
				buf, have = bigger, length
				continue
			}
			next := <-free
			if len(next) < length-cut { // the tail of a grown buffer: too long for a pooled one
				free <- next
				next = make([]byte, len(buf))
			}
			have = copy(next, buf[cut:length])
			out <- chunk{uint32(id), buf[:cut], buf}
			buf = next
		}
		f.Close()
		st.bytes += total
	}
}

// words calls f for every lower-cased word of data (scratch holds folded words).
func words(data []byte, scratch *[]byte, f func(w []byte)) {
	p, n := 0, len(data)
	for p < n {
		for p < n && lower[data[p]] == 0 {
			p++
		}
		if p == n {
			break
		}
		start, folded := p, false
		for p < n {
			c := lower[data[p]]
			if c == 0 {
				break
			}
			if c != data[p] {
				folded = true
			}
			p++
		}
		w := data[start:p]
		if folded {
			s := append((*scratch)[:0], w...)
			for i := range s {
				s[i] = lower[s[i]]
			}
			*scratch = s
			w = s
		}
		f(w)
	}
}

// recycle returns a chunk's buffer to the free list (a grown buffer is dropped).
func recycle(c chunk, free chan []byte) {
	if len(c.buf) == chunkSize {
		free <- c.buf
	}
}

// counter is one mapper's word count: word → index into n.
type counter struct {
	idx   map[string]int32
	n     []uint64
	words uint64
}

// postings is one mapper's index: word → index into lists.
type postings struct {
	idx   map[string]int32
	lists [][]uint32
	words uint64
}

func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func fnv1a(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 0x100000001b3
	}
	return h
}

// start makes the free list (4 buffers per mapper) and starts the reader.
func start(files []string, workers int, st *fileStats) (<-chan chunk, chan []byte) {
	nbuf := 4 * workers
	free := make(chan []byte, nbuf+1)
	for i := 0; i < nbuf; i++ {
		free <- make([]byte, chunkSize)
	}
	chunks := make(chan chunk, 2*workers)
	go reader(files, chunks, free, st)
	return chunks, free
}

func wordcount(files []string, workers int, st *fileStats) (map[string]int32, []uint64, uint64) {
	chunks, free := start(files, workers, st)
	results := make(chan *counter, workers)
	for w := 0; w < workers; w++ {
		go func() {
			c := &counter{idx: make(map[string]int32)}
			var scratch []byte
			for ch := range chunks {
				words(ch.data, &scratch, func(w []byte) {
					c.words++
					if i, ok := c.idx[string(w)]; ok {
						c.n[i]++
					} else {
						c.idx[string(w)] = int32(len(c.n))
						c.n = append(c.n, 1)
					}
				})
				recycle(ch, free)
			}
			results <- c
		}()
	}
	all := make([]*counter, 0, workers)
	for w := 0; w < workers; w++ {
		all = append(all, <-results)
	}
	sort.Slice(all, func(a, b int) bool { return len(all[a].n) > len(all[b].n) })
	into := all[0]
	total := into.words
	for _, c := range all[1:] {
		total += c.words
		for w, i := range c.idx {
			if j, ok := into.idx[w]; ok {
				into.n[j] += c.n[i]
			} else {
				into.idx[w] = int32(len(into.n))
				into.n = append(into.n, c.n[i])
			}
		}
	}
	return into.idx, into.n, total
}

func index(files []string, workers int, st *fileStats) (map[string]int32, [][]uint32, uint64) {
	chunks, free := start(files, workers, st)
	results := make(chan *postings, workers)
	for w := 0; w < workers; w++ {
		go func() {
			p := &postings{idx: make(map[string]int32)}
			var scratch []byte
			for ch := range chunks {
				id := ch.id
				words(ch.data, &scratch, func(w []byte) {
					p.words++
					i, ok := p.idx[string(w)]
					if !ok {
						i = int32(len(p.lists))
						p.idx[string(w)] = i
						p.lists = append(p.lists, nil)
					}
					if l := p.lists[i]; len(l) == 0 || l[len(l)-1] != id {
						p.lists[i] = append(l, id)
					}
				})
				recycle(ch, free)
			}
			results <- p
		}()
	}
	all := make([]*postings, 0, workers)
	for w := 0; w < workers; w++ {
		all = append(all, <-results)
	}
	sort.Slice(all, func(a, b int) bool { return len(all[a].lists) > len(all[b].lists) })
	into := all[0]
	total := into.words
	for _, p := range all[1:] {
		total += p.words
		for w, i := range p.idx {
			if j, ok := into.idx[w]; ok {
				into.lists[j] = append(into.lists[j], p.lists[i]...)
			} else {
				into.idx[w] = int32(len(into.lists))
				into.lists = append(into.lists, p.lists[i])
			}
		}
	}
	// Sort and deduplicate every list, a share of them per goroutine.
	var wg sync.WaitGroup
	n := len(into.lists)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for k := lo; k < hi; k++ {
				l := into.lists[k]
				sort.Slice(l, func(a, b int) bool { return l[a] < l[b] })
				out := l[:0]
				for x, id := range l {
					if x == 0 || id != l[x-1] {
						out = append(out, id)
					}
				}
				into.lists[k] = out
			}
		}(n*w/workers, n*(w+1)/workers)
	}
	wg.Wait()
	return into.idx, into.lists, total
}

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "wordcount" && os.Args[1] != "index") {
		fmt.Fprintln(os.Stderr, "usage: peer_go_wordcount wordcount|index [-workers T] PATH...")
		os.Exit(64)
	}
	job := os.Args[1]
	flags := flag.NewFlagSet(job, flag.ExitOnError)
	workers := flags.Int("workers", 1, "GOMAXPROCS and the number of mapper goroutines")
	flags.Parse(os.Args[2:])
	if *workers < 1 || flags.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: peer_go_wordcount wordcount|index [-workers T] PATH...")
		os.Exit(64)
	}
	runtime.GOMAXPROCS(*workers)

	var st fileStats
	var distinct, postingsTotal, digest, total uint64
	t0 := time.Now()
	files := collectFiles(flags.Args())
	var secs float64
	if job == "wordcount" {
		idx, n, words := wordcount(files, *workers, &st)
		secs = time.Since(t0).Seconds()
		total = words
		distinct = uint64(len(idx))
		for w, i := range idx {
			digest += mix(fnv1a(w) + n[i])
		}
	} else {
		idx, lists, words := index(files, *workers, &st)
		secs = time.Since(t0).Seconds()
		total = words
		distinct = uint64(len(idx))
		for w, i := range idx {
			h := uint64(0)
			for _, id := range lists[i] {
				h = h*31 + uint64(id) + 1
			}
			postingsTotal += uint64(len(lists[i]))
			digest += mix(fnv1a(w) + h)
		}
	}
	fmt.Printf("{\"impl\": \"go\", \"job\": \"%s\", \"layout\": \"\", \"workers\": %d, \"files\": %d, "+
		"\"binary\": %d, \"unreadable\": %d, \"bytes\": %d, \"words\": %d, \"distinct\": %d, "+
		"\"postings\": %d, \"digest\": %d, \"seconds\": %.6f}\n",
		job, *workers, st.files, st.binary, st.unreadable, st.bytes, total, distinct,
		postingsTotal, digest, secs)
}
