// bench/peers/go/peer.go — the comparison workloads on Go goroutines.
//
// Usage: peer_go <workload> <workers> <n>; output, exit codes and workloads exactly as in
// bench/workloads.cpp (read its header first). Workers = runtime.GOMAXPROCS; `yield` always
// runs with GOMAXPROCS(1). Go has no join: a goroutine's end is awaited with a sync.WaitGroup
// and its result is written to a variable the parent reads after Wait().
//
// Built by tools/bench.py, outside any module:
//   GO111MODULE=off go build -o <builddir>/peer_go bench/peers/go/peer.go
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

type outcome struct {
	ns    float64 // wall time of the timed part
	check int64   // the workload's result
	ops   int64   // the denominator of ns_per_op
}

func runSpawn(n int64) outcome {
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return outcome{float64(time.Since(t0).Nanoseconds()), n, n}
}

func runYield(n int64) outcome {
	half := n / 2
	var otherDone int64
	t0 := time.Now()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		for i := int64(0); i < half; i++ {
			runtime.Gosched()
		}
		otherDone = half
		wg.Done()
	}()
	for i := int64(0); i < half; i++ {
		runtime.Gosched()
	}
	wg.Wait()
	done := half + otherDone
	return outcome{float64(time.Since(t0).Nanoseconds()), done, done}
}

func fib(n int) int64 {
	if n < 2 {
		return int64(n)
	}
	var a int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		a = fib(n - 1)
		wg.Done()
	}()
	b := fib(n - 2)
	wg.Wait()
	return a + b
}

func fibValue(n int) int64 {
	a, b := int64(0), int64(1)
	for i := 0; i < n; i++ {
		a, b = b, a+b
	}
	return a
}

func runFib(n int64) outcome {
	t0 := time.Now()
	v := fib(int(n))
	return outcome{float64(time.Since(t0).Nanoseconds()), v, fibValue(int(n)+1) - 1}
}

func skynet(num, size int64) int64 {
	if size == 1 {
		return num
	}
	step := size / 10
	var results [10]int64
	var wg sync.WaitGroup
	wg.Add(10)
	for i := int64(0); i < 10; i++ {
		go func(i int64) {
			results[i] = skynet(num+i*step, step)
			wg.Done()
		}(i)
	}
	wg.Wait()
	var sum int64
	for _, v := range results {
		sum += v
	}
	return sum
}

func skynetSpawns(n int64) int64 {
	var total int64
	for level := n; level > 1; level /= 10 {
		total += level
	}
	return total
}

func runSkynet(n int64) outcome {
	t0 := time.Now()
	v := skynet(0, n)
	return outcome{float64(time.Since(t0).Nanoseconds()), v, skynetSpawns(n)}
}

func powerOf10(n int64) bool {
	for n > 1 && n%10 == 0 {
		n /= 10
	}
	return n == 1
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintf(os.Stderr, "usage: %s <spawn|yield|fib|skynet> <workers> <n>\n", os.Args[0])
		os.Exit(64)
	}
	name := os.Args[1]
	workers, err1 := strconv.Atoi(os.Args[2])
	n, err2 := strconv.ParseInt(os.Args[3], 10, 64)
	if err1 != nil || err2 != nil || workers < 1 || n < 1 {
		fmt.Fprintln(os.Stderr, "workers and n must be positive integers")
		os.Exit(64)
	}

	var run func(int64) outcome
	warm, want := n/10, int64(0)
	procs := workers
	switch name {
	case "spawn":
		run, want = runSpawn, n
	case "yield":
		run, want, procs = runYield, n/2*2, 1
	case "fib":
		if n > 40 {
			os.Exit(64)
		}
		run, want = runFib, fibValue(int(n))
		if n > 5 {
			warm = n - 5
		} else {
			warm = n
		}
	case "skynet":
		if !powerOf10(n) {
			fmt.Fprintln(os.Stderr, "skynet: n must be a power of 10")
			os.Exit(64)
		}
		run, want = runSkynet, n*(n-1)/2
		if n < 100 {
			warm = n
		}
	default:
		os.Exit(2) // not implemented here: "not applicable"
	}

	runtime.GOMAXPROCS(procs)
	run(warm)
	r := run(n)

	fmt.Printf("RESULT workload=%s impl=go workers=%d n=%d total_ms=%.3f ns_per_op=%.3f check=%d\n",
		name, workers, n, r.ns/1e6, r.ns/float64(r.ops), r.check)
	if r.check != want {
		fmt.Fprintf(os.Stderr, "%s: %s check mismatch: got %d, want %d\n", os.Args[0], name, r.check, want)
		os.Exit(1)
	}
}
