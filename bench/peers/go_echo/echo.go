// SPDX-License-Identifier: Apache-2.0
// bench/peers/go_echo/echo.go — the Go peer of the echo benchmark (tools/bench_echo.py): a TCP
// echo server with one goroutine per connection, the model that examples/echo.cpp follows with
// tasklets, served by Go's own netpoller.
//
// Usage: peer_go_echo [--port P] [--workers N]; as examples/echo.cpp: --port 0 picks a free
// port, the first line on stdout is "listening on 127.0.0.1:PORT", SIGTERM or SIGINT ends it
// with exit code 0. --workers N sets GOMAXPROCS (0: Go's default, one per core). Each
// connection reads what is there into a 16 KiB buffer and writes all of it back, with
// TCP_NODELAY (Go's default for TCP connections, set anyway to say so).
//
// In its own directory, apart from bench/peers/go/peer.go: each is a `package main`. Built by
// tools/bench_echo.py, outside any module:
//
//	GO111MODULE=off go build -o <builddir>/peer_go_echo bench/peers/go_echo/echo.go
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

const bufferSize = 16 * 1024 // as in every server of the benchmark

// serve echoes one connection until the peer closes it (or resets it: the error ends only this
// connection).
func serve(c *net.TCPConn) {
	defer c.Close()
	c.SetNoDelay(true)
	buf := make([]byte, bufferSize)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			// Write writes all of buf[:n] (it loops over partial writes) or fails.
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func main() {
	// Go's flag package accepts --port as well as -port.
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: any free port)")
	workers := flag.Int("workers", 0, "GOMAXPROCS (0: one per core)")
	flag.Parse()
	if flag.NArg() != 0 || *port < 0 || *port > 65535 || *workers < 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *workers > 0 {
		runtime.GOMAXPROCS(*workers)
	}

	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: *port})
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
	// os.Stdout is not buffered: the line is out as soon as Println returns.
	fmt.Println("listening on", ln.Addr().String())

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		os.Exit(0) // the kernel closes the sockets; nothing else needs saving
	}()

	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			// EMFILE and friends: back off a little rather than spin, as ours does.
			fmt.Fprintln(os.Stderr, "echo:", err, "(retrying)")
			time.Sleep(10 * time.Millisecond)
			continue
		}
		go serve(c)
	}
}
