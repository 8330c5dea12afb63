// SPDX-License-Identifier: Apache-2.0
// bench/peers/go/peer.go — the comparison workloads on Go goroutines.
//
// Usage: peer_go <workload> <workers> <n>; output, exit codes and workloads exactly as in
// bench/workloads.cpp (read its header first). Workers = runtime.GOMAXPROCS; `yield` always
// runs with GOMAXPROCS(1). Go has no join: a goroutine's end is awaited with a sync.WaitGroup
// and its result is written to a variable the parent reads after Wait().
//
// Channels: rendezvous channels are unbuffered `chan int64`; mpmc uses `make(chan int64, cap)`
// with exactly the capacity of the workload's name (Go's capacity means what ours means).
// pingpong_x always runs with GOMAXPROCS(2) and forces the cross-thread case with
// runtime.LockOSThread() in both goroutines: a locked goroutine runs only on its own OS thread,
// so the two sides are on different threads and every wake-up crosses them.
//
// mutex: 8 goroutines share one sync.Mutex and one counter, n/8 increments each. sleep: the main
// goroutine calls time.Sleep(time.Millisecond) n times; the RESULT line then reports the p99
// lateness as ns_per_op and adds p50_ns, p99_ns and max_ns (see bench/common.hpp).
//
// preempt and preempt_hard are one program here: GOMAXPROCS goroutines spin on hogUnit() (the
// loop of bench::hog_unit(), nothing else in it) until the main goroutine, the periodic one, has
// slept 1 ms n times (runSleep); Go needs no checkpoint, its scheduler preempts a goroutine that
// ran 10 ms (sysmon) asynchronously, by signal. hog: 2 x GOMAXPROCS goroutines do n units in total.
// hog_q0 (ours with preemption off) has no Go equivalent: not applicable.
//
// Built by tools/bench.py, outside any module:
//   GO111MODULE=off go build -o <builddir>/peer_go bench/peers/go/peer.go
package main

import (
	"fmt"
	"math"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type outcome struct {
	ns    float64 // wall time of the timed part
	check int64   // the workload's result
	ops   int64   // the denominator of ns_per_op
}

// lateness holds the percentiles (ns) the lateness workloads (sleep) measured in their last run,
// nil for the others. When set, ns_per_op is p99 and the RESULT line carries all three.
var lateness *struct{ p50, p99, max float64 }

// extra holds optional name=value fields the last run adds to the RESULT line (preempt:
// hog_ns_per_unit).
var extra []string

// percentile is the nearest-rank pct-th percentile of sorted (ascending, not empty): the value
// of rank ceil(pct*len/100), in integers (as bench::percentile()).
func percentile(sorted []float64, pct int) float64 {
	rank := (pct*len(sorted) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

const mutexGoroutines = 8

// mutex: mutexGoroutines goroutines, each makes n/mutexGoroutines increments of one counter
// under one sync.Mutex. The clock covers starting them, the increments and the wait.
func runMutex(n int64) outcome {
	per := n / mutexGoroutines
	var mu sync.Mutex
	var counter int64 // guarded by mu
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(mutexGoroutines)
	for k := 0; k < mutexGoroutines; k++ {
		go func() {
			for i := int64(0); i < per; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	ns := float64(time.Since(t0).Nanoseconds())
	mu.Lock()
	v := counter
	mu.Unlock()
	return outcome{ns, v, per * mutexGoroutines}
}

// sleep: one goroutine sleeps 1 ms n times in a row; lateness = wake-up - (start + 1 ms).
func runSleep(n int64) outcome {
	late := make([]float64, 0, n)
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		start := time.Now()
		time.Sleep(time.Millisecond)
		late = append(late, float64(time.Since(start.Add(time.Millisecond)).Nanoseconds()))
	}
	r := outcome{float64(time.Since(t0).Nanoseconds()), int64(len(late)), n}
	sort.Float64s(late)
	lateness = &struct{ p50, p99, max float64 }{
		percentile(late, 50), percentile(late, 99), late[len(late)-1]}
	return r
}

// hogUnit is bench::hog_unit() (bench/common.hpp): hogUnitSteps steps of a 64-bit LCG and a
// float mixing in its high bits. x and f are locals so that Go keeps them in registers (through
// the pointer it would load and store them every step, 2.4x slower than the C++ loop); with
// locals both take the same time.
type hogState struct {
	x uint64
	f float64
}

const hogUnitSteps = 256

func hogUnit(s *hogState) {
	x, f := s.x, s.f
	for i := 0; i < hogUnitSteps; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		f = f*0.5 + float64(x>>11)*(1.0/(1<<53))
	}
	s.x, s.f = x, f
}

// hogSink keeps every hog's result alive.
var hogSink uint64

func keep(s *hogState) { atomic.AddUint64(&hogSink, s.x^math.Float64bits(s.f)) }

// hogCounter is one hog's count of finished units, padded to its own cache line.
type hogCounter struct {
	units int64
	_     [56]byte
}

// preempt / preempt_hard: GOMAXPROCS hogs spin until the main goroutine has slept 1 ms n times;
// the clock starts once every hog has done a unit (as ours). Adds hog_ns_per_unit (wall time x
// hogs / units the hogs did while the clock ran), as ours.
func runPreempt(n int64) outcome {
	hogs := runtime.GOMAXPROCS(0)
	var stop int32
	done := make([]hogCounter, hogs)
	var wg sync.WaitGroup
	wg.Add(hogs)
	for i := 0; i < hogs; i++ {
		go func(d *hogCounter) {
			var s hogState = hogState{1, 0}
			units := int64(0)
			for atomic.LoadInt32(&stop) == 0 {
				hogUnit(&s)
				units++
				atomic.StoreInt64(&d.units, units)
			}
			keep(&s)
			wg.Done()
		}(&done[i])
	}
	sum := func() (total int64, all bool) {
		all = true
		for i := range done {
			u := atomic.LoadInt64(&done[i].units)
			total += u
			all = all && u > 0
		}
		return
	}
	for wait0 := time.Now(); ; time.Sleep(200 * time.Microsecond) {
		if _, all := sum(); all {
			break
		}
		if time.Since(wait0) > 10*time.Second {
			fmt.Fprintln(os.Stderr, "preempt: the hogs did not all start within 10 s")
			os.Exit(1)
		}
	}
	units0, _ := sum()
	r := runSleep(n)
	units1, _ := sum()
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	if units1 > units0 {
		extra = append(extra, fmt.Sprintf("hog_ns_per_unit=%d",
			int64(r.ns*float64(hogs)/float64(units1-units0))))
	}
	return r
}

// hog: GOMAXPROCS goroutines do n units in total (n/hogs each, the first n%hogs one more).
func runHog(n int64) outcome {
	hogs := 2 * int64(runtime.GOMAXPROCS(0)) // two per P, as ours: they take turns
	var total int64
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(int(hogs))
	for i := int64(0); i < hogs; i++ {
		mine := n / hogs
		if i < n%hogs {
			mine++
		}
		go func(mine int64) {
			s := hogState{1, 0}
			for u := int64(0); u < mine; u++ {
				hogUnit(&s)
			}
			keep(&s)
			atomic.AddInt64(&total, mine)
			wg.Done()
		}(mine)
	}
	wg.Wait()
	return outcome{float64(time.Since(t0).Nanoseconds()), atomic.LoadInt64(&total), n}
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

// pingpong: the pinger sends v on ping, the ponger answers v+1 on pong; n round trips take v
// from 0 to n. One untimed round trip first, so both sides are running (and, with lock, locked
// to their threads) when the clock starts; the ponger therefore answers n+1 times.
func pingpong(n int64, lock bool) outcome {
	ping, pong := make(chan int64), make(chan int64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		if lock {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		for i := int64(0); i <= n; i++ {
			pong <- 1 + <-ping
		}
		wg.Done()
	}()
	var r outcome
	wg.Add(1)
	go func() {
		if lock {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
		}
		ping <- 0
		<-pong
		t0 := time.Now()
		v := int64(0)
		for i := int64(0); i < n; i++ {
			ping <- v
			v = <-pong
		}
		r = outcome{float64(time.Since(t0).Nanoseconds()), v, n}
		wg.Done()
	}()
	wg.Wait()
	return r
}

func runPingpong(n int64) outcome  { return pingpong(n, false) }
func runPingpongX(n int64) outcome { return pingpong(n, true) }

// chain: n goroutines in a line, each receives from its left channel and sends that+1 on its
// right one. The clock covers creating every channel and goroutine and the value's trip.
func runChain(n int64) outcome {
	t0 := time.Now()
	first := make(chan int64)
	left := first
	for i := int64(0); i < n; i++ {
		right := make(chan int64)
		go func(in, out chan int64) { out <- 1 + <-in }(left, right)
		left = right
	}
	first <- 0
	v := <-left
	return outcome{float64(time.Since(t0).Nanoseconds()), v, n}
}

const mpmcProducers, mpmcConsumers = 4, 4

// mpmc: P producers send 1..n/P each into one buffered channel of capacity cap; C consumers
// range over it until it is closed and drained. It is closed once every producer is done.
func runMpmc(capacity int, n int64) outcome {
	per := n / mpmcProducers
	t0 := time.Now()
	ch := make(chan int64, capacity)
	var producers, consumers sync.WaitGroup
	producers.Add(mpmcProducers)
	for p := 0; p < mpmcProducers; p++ {
		go func() {
			for v := int64(1); v <= per; v++ {
				ch <- v
			}
			producers.Done()
		}()
	}
	var sums [mpmcConsumers]int64
	consumers.Add(mpmcConsumers)
	for c := 0; c < mpmcConsumers; c++ {
		go func(c int) {
			var sum int64
			for v := range ch {
				sum += v
			}
			sums[c] = sum
			consumers.Done()
		}(c)
	}
	producers.Wait()
	close(ch)
	consumers.Wait()
	var total int64
	for _, s := range sums {
		total += s
	}
	return outcome{float64(time.Since(t0).Nanoseconds()), total, per * mpmcProducers}
}

func mpmcSum(n int64) int64 {
	per := n / mpmcProducers
	return mpmcProducers * (per * (per + 1) / 2)
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
		fmt.Fprintf(os.Stderr, "usage: %s <spawn|yield|pingpong|pingpong_x|chain|fib|skynet|"+
			"mpmc_c1|mpmc_c64|mpmc_c1024|mutex|sleep|preempt|preempt_hard|hog> <workers> <n>\n", os.Args[0])
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
	case "pingpong":
		run, want = runPingpong, n
	case "pingpong_x":
		// Always two Ps, reported as workers=2 (as the other programs do).
		run, want, procs, workers = runPingpongX, n, 2, 2
	case "chain":
		run, want = runChain, n
	case "mpmc_c1", "mpmc_c64", "mpmc_c1024":
		if n%mpmcProducers != 0 {
			fmt.Fprintf(os.Stderr, "%s: n must be a multiple of %d (the producers)\n", name, mpmcProducers)
			os.Exit(64)
		}
		capacity := map[string]int{"mpmc_c1": 1, "mpmc_c64": 64, "mpmc_c1024": 1024}[name]
		run = func(n int64) outcome { return runMpmc(capacity, n) }
		want = mpmcSum(n)
		warm = n / 10 / mpmcProducers * mpmcProducers
		if warm == 0 {
			warm = mpmcProducers
		}
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
	case "mutex", "mutex_tp":
		if n%mutexGoroutines != 0 {
			fmt.Fprintf(os.Stderr, "mutex: n must be a multiple of %d (the goroutines)\n", mutexGoroutines)
			os.Exit(64)
		}
		run, want = runMutex, n
		warm = n / 10 / mutexGoroutines * mutexGoroutines
		if warm == 0 {
			warm = mutexGoroutines
		}
	case "sleep":
		run, want = runSleep, n
		if warm == 0 {
			warm = 1
		}
	case "preempt", "preempt_hard":
		run, want = runPreempt, n
		if warm == 0 {
			warm = 1
		}
	case "hog":
		run, want = runHog, n
		if warm == 0 {
			warm = 1
		}
	default:
		os.Exit(2) // not implemented here: "not applicable"
	}

	runtime.GOMAXPROCS(procs)
	run(warm)
	extra = nil // the timed run's only
	r := run(n)

	perOp := r.ns / float64(r.ops)
	if lateness != nil {
		perOp = lateness.p99
	}
	fmt.Printf("RESULT workload=%s impl=go workers=%d n=%d total_ms=%.3f ns_per_op=%.3f check=%d",
		name, workers, n, r.ns/1e6, perOp, r.check)
	if lateness != nil {
		fmt.Printf(" p50_ns=%.3f p99_ns=%.3f max_ns=%.3f", lateness.p50, lateness.p99, lateness.max)
	}
	for _, field := range extra {
		fmt.Printf(" %s", field)
	}
	fmt.Println()
	if r.check != want {
		fmt.Fprintf(os.Stderr, "%s: %s check mismatch: got %d, want %d\n", os.Args[0], name, r.check, want)
		os.Exit(1)
	}
}
