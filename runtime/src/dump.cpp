// SPDX-License-Identifier: Apache-2.0
// runtime/src/dump.cpp — what a scheduler is doing, in words: the label every report gives a
// tasklet (tasklet_label()), scheduler::dump() (Go's goroutine dump), and the same dump on a
// signal (options::dump_signal, STACKLESS_DUMP_SIGNAL).
//
// Reading another worker's tasklets. dump() runs on any thread while the workers go on. It
// holds a reference on each tasklet it lists (for_each_live()), so the control block stays; the
// fields it reads are those the deadlock report reads, after an acquire load of tcb::state that
// pairs with the worker's release store of PARKED (after_switch() in worker.cpp), so a tasklet
// that stays parked is read whole. One that wakes meanwhile may be read torn: the dump says so
// (its door word — the park generation — changed between the first and the last read) and
// prints no frames for it. A dump is a snapshot for a human, not a synchronisation point.
//
// Backtraces of parked tasklets: a frame-pointer walk of the saved stack. context_switch()
// (context.cpp) records its own frame address in context::fp; from there each frame holds the
// caller's frame pointer and the return address. The walk needs every frame between the switch
// and the user's code to keep the frame pointer: the runtime is compiled with
// -fno-omit-frame-pointer when STACKLESS_FRAME_POINTERS is on (the default in Debug and
// sanitizer builds), and the user's code needs the same flag, or the walk stops at the first frame
// without one. Every read of the stack goes through the kernel (a raw write() of the word into a
// pipe: EFAULT instead of SIGSEGV if the stack was unmapped under us, and invisible to the
// sanitizers, which would see a read of another fiber's stack) and stays inside the tasklet's
// stack range, moving up. Names come from dladdr(): exported symbols only (an executable needs
// -rdynamic, CMake's ENABLE_EXPORTS); every frame also prints module+offset, which
// `addr2line -f -C -e <module> <offset>` resolves from the debug info.
//
// The signal: the handler only posts a semaphore (async-signal-safe); a thread started with the
// first scheduler that asks for it waits on it and dumps every live scheduler to stderr. The
// program goes on (unlike Go's SIGQUIT, which exits).
#include <cxxabi.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <mutex>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "scheduler_impl.hpp"
#include "stack.hpp"
#include "stackless/runtime/internal/scheduling.hpp"

namespace stackless::detail {

std::vector<scheduler_impl*>& live_schedulers();  // lifecycle.cpp
std::mutex& live_schedulers_mu();

std::int64_t coarse_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void append_spawn_site(std::string& out, const std::source_location& where) {
  if (!*where.file_name()) return;  // not recorded (spawn with arguments, the C API)
  out += " spawned at ";
  out += where.file_name();
  out += ':';
  out += std::to_string(where.line());
  if (*where.function_name()) {
    out += " in ";
    out += where.function_name();
  }
}

std::string tasklet_label(tcb* t) {
  std::string out = "#";  // not "#" + to_string(): GCC 12's -Wrestrict misfires on it
  out += std::to_string(t->id);
  t->lk.lock();
  const std::string name = t->name;
  t->lk.unlock();
  if (name.empty()) {
    out += " (unnamed)";
  } else {
    out += " '";
    out += name;
    out += '\'';
  }
  append_spawn_site(out, t->spawned_at);
  return out;
}

namespace {

// racy_reads: the fields of a parked tasklet that dump() reads while a waker may let it run
// again (the file comment says why that is allowed and how it is caught). ThreadSanitizer is
// told to ignore this thread's reads for the while; it would report each as a race otherwise.
#if defined(STACKLESS_TSAN)
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
struct racy_reads {
  racy_reads() { AnnotateIgnoreReadsBegin(__FILE__, __LINE__); }
  ~racy_reads() { AnnotateIgnoreReadsEnd(__FILE__, __LINE__); }
};
#else
struct racy_reads {};
#endif

const char* state_name(std::uint32_t s) {
  switch (s) {
    case S_NEW:
      return "new";
    case S_RUNNABLE:
      return "runnable";
    case S_RUNNING:
      return "running";
    case S_PARKED:
      return "parked";
    case S_PAUSED:
    case S_PAUSED_QUEUED:
      return "paused";
    case S_DEAD:
      return "ended";
  }
  return "?";
}

void put_duration(std::ostream& os, std::int64_t ns) {
  if (ns < 0) ns = 0;
  std::ostringstream d;
  d << std::fixed << std::setprecision(ns >= 10'000'000'000 ? 0 : 2);
  if (ns >= 1'000'000'000)
    d << static_cast<double>(ns) / 1e9 << " s";
  else
    d << static_cast<double>(ns) / 1e6 << " ms";
  os << d.str();
}

/// stack_reader reads words of a stack through the kernel (see the file comment).
class stack_reader {
 public:
  stack_reader() {
    if (pipe2(fd_, O_CLOEXEC | O_NONBLOCK) != 0) fd_[0] = fd_[1] = -1;
  }
  ~stack_reader() {
    if (fd_[0] >= 0) {
      close(fd_[0]);
      close(fd_[1]);
    }
  }
  stack_reader(const stack_reader&) = delete;
  stack_reader& operator=(const stack_reader&) = delete;
  bool ok() const { return fd_[0] >= 0; }
  bool read(std::uintptr_t addr, std::uintptr_t* out) {
    // Raw system calls: the sanitizers' write() interceptors would check the range we read.
    if (syscall(SYS_write, fd_[1], reinterpret_cast<const void*>(addr), sizeof *out) !=
        static_cast<long>(sizeof *out))
      return false;
    return syscall(SYS_read, fd_[0], out, sizeof *out) == static_cast<long>(sizeof *out);
  }

 private:
  int fd_[2];
};

/// walk_frames() collects the return addresses of a parked tasklet's stack, innermost first.
std::vector<std::uintptr_t> walk_frames(stack_reader& r, const tcb* t) {
  std::vector<std::uintptr_t> pcs;
  if (!t->stk || !t->ctx.fp || !r.ok()) return pcs;
  const auto lo = reinterpret_cast<std::uintptr_t>(t->stk->lo);
  const auto hi = reinterpret_cast<std::uintptr_t>(t->stk);  // the descriptor sits at the top
  auto fp = reinterpret_cast<std::uintptr_t>(t->ctx.fp);
  while (pcs.size() < 48 && fp >= lo && fp + 2 * sizeof(std::uintptr_t) <= hi &&
         fp % sizeof(std::uintptr_t) == 0) {
    std::uintptr_t next = 0, ret = 0;
    if (!r.read(fp, &next) || !r.read(fp + sizeof next, &ret) || ret == 0) break;
    pcs.push_back(ret);
    if (next <= fp) break;  // frames move up the stack; anything else is not a frame chain
    fp = next;
  }
  return pcs;
}

void put_frame(std::ostream& os, std::size_t i, std::uintptr_t pc) {
  os << "      " << std::setw(2) << i << "  ";
  Dl_info info{};
  // pc - 1: the return address may be the first byte of the next function.
  if (dladdr(reinterpret_cast<void*>(pc - 1), &info) && info.dli_fname) {
    if (info.dli_sname) {
      int status = 0;
      char* dem = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
      os << (status == 0 && dem ? dem : info.dli_sname) << " + 0x" << std::hex
         << (pc - reinterpret_cast<std::uintptr_t>(info.dli_saddr)) << std::dec;
      std::free(dem);
    } else {
      os << "?";
    }
    const char* base = std::strrchr(info.dli_fname, '/');
    os << "  (" << (base ? base + 1 : info.dli_fname) << " + 0x" << std::hex
       << (pc - reinterpret_cast<std::uintptr_t>(info.dli_fbase)) << std::dec << ")\n";
  } else {
    os << "0x" << std::hex << pc << std::dec << "\n";
  }
}

}  // namespace

void scheduler_impl::dump(std::ostream& os) {
  const std::int64_t now = coarse_now_ns();
  std::vector<std::uint64_t> running(nworkers);
  for (unsigned i = 0; i < nworkers; ++i)  // relaxed: a snapshot for a human
    running[i] = workers[i]->running_id.load(std::memory_order_relaxed);
  std::ostringstream body;
  std::size_t n = 0;
  stack_reader reader;
  for_each_live([&](tcb* t) {
    // acquire: pairs with the release stores of tcb::state (PARKED in after_switch()).
    const std::uint32_t s = t->state.load(std::memory_order_acquire);
    if (s == S_DEAD) return;  // ended, still leaving the registry
    ++n;
    const std::uint64_t door = t->door.load(std::memory_order_acquire);
    body << "  " << tasklet_label(t) << "\n    " << state_name(s);
    if (s == S_RUNNING || s == S_RUNNABLE) {
      for (unsigned i = 0; i < nworkers; ++i)
        if (s == S_RUNNING && running[i] == t->id) body << " on worker " << i;
    }
    std::vector<std::uintptr_t> pcs;
    if (s == S_PARKED) {
      [[maybe_unused]] racy_reads racy;
      const char* what = t->wait_what;
      const std::uint64_t target = t->wait_target;
      const std::int64_t since = t->parked_since_ns;
      body << " on " << (what ? what : "?");
      if (target) body << " #" << target;
      if (since) {
        body << " for ";
        put_duration(body, now - since);
      }
      pcs = walk_frames(reader, t);
      // acquire: as above; an unchanged door and state mean the tasklet stayed parked.
      if (t->door.load(std::memory_order_acquire) != door ||
          t->state.load(std::memory_order_acquire) != S_PARKED) {
        pcs.clear();
        body << " (woke during the dump)";
      }
    }
    body << "\n";
    for (std::size_t i = 0; i < pcs.size(); ++i) put_frame(body, i, pcs[i]);
  });
  os << "stackless: dump of scheduler '" << opts.name << "': " << nworkers
     << (nworkers == 1 ? " worker, " : " workers, ") << n << " live tasklet" << (n == 1 ? "" : "s")
     << "\n";
  for (unsigned i = 0; i < nworkers; ++i) {
    const worker& w = *workers[i];
    os << "  worker " << i << ": ";
    // relaxed: a snapshot for a human.
    if (w.idle.load(std::memory_order_relaxed))
      os << "idle";
    else if (running[i])
      os << "last ran #" << running[i];
    else
      os << "searching";
    os << ", " << w.deque.size() << " queued\n";
  }
  os << body.str();
}

// ---- the dump on a signal ----------------------------------------------------------------------

namespace {
sem_t g_dump_sem;
std::once_flag g_dump_once;
int g_dump_signo = 0;

void on_dump_signal(int) {
  const int saved = errno;
  sem_post(&g_dump_sem);  // async-signal-safe
  errno = saved;
}

[[noreturn]] void dump_thread() {
  pthread_setname_np(pthread_self(), "stackless-dump");
  for (;;) {
    while (sem_wait(&g_dump_sem) != 0) {
    }
    std::ostringstream os;
    {
      std::lock_guard g(live_schedulers_mu());
      for (scheduler_impl* s : live_schedulers()) s->dump(os);
    }
    const std::string text = os.str();
    (void)!write(2, text.data(), text.size());
  }
}
}  // namespace

int parse_signal(const std::string& name) {
  struct entry {
    const char* name;
    int signo;
  };
  static constexpr entry table[] = {{"SIGQUIT", SIGQUIT},
                                    {"SIGUSR1", SIGUSR1},
                                    {"SIGUSR2", SIGUSR2},
                                    {"SIGHUP", SIGHUP},
                                    {"SIGWINCH", SIGWINCH}};
  for (const entry& e : table)
    if (name == e.name || name == e.name + 3) return e.signo;
  char* end = nullptr;
  const long v = std::strtol(name.c_str(), &end, 10);
  if (!name.empty() && *end == '\0' && v > 0 && v < NSIG) return static_cast<int>(v);
  throw std::invalid_argument("stackless: dump signal '" + name +
                              "' is not SIGQUIT, SIGUSR1, SIGUSR2, SIGHUP, SIGWINCH or a number");
}

void install_dump_signal(int signo) {
  if (signo <= 0 || signo >= NSIG)
    throw std::invalid_argument("stackless: options::dump_signal " + std::to_string(signo) +
                                " is not a signal number");
  std::call_once(g_dump_once, [signo] {
    sem_init(&g_dump_sem, 0, 0);
    std::thread(dump_thread).detach();
    struct sigaction sa {};
    sa.sa_handler = on_dump_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(signo, &sa, nullptr);
    g_dump_signo = signo;
  });
  if (g_dump_signo != signo)
    throw std::invalid_argument("stackless: the dump signal is already " +
                                std::to_string(g_dump_signo) + " in this process; asked for " +
                                std::to_string(signo));
}

// ---- Stackless's callbacks ---------------------------------------------------------------------

std::atomic<unsigned> channel_callback_schedulers{0};

void scheduler_impl::call_schedule_cb(worker& w, tcb* next) noexcept {
  callbacks_lk.lock();
  std::shared_ptr<const schedule_callback> cb = schedule_cb;
  callbacks_lk.unlock();
  const std::uint64_t prev = std::exchange(w.cb_prev_id, next->id);
  if (!cb) return;
  try {
    (*cb)(prev, next->id, w.index);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stackless: the schedule callback threw (ignored): %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "stackless: the schedule callback threw (ignored)\n");
  }
}

void channel_event_slow(const void* channel, bool sending, bool (*will_block)(const void*)) {
  tcb* t = current_tcb();
  if (!t) return;  // plain threads: not reported (Stackless had no plain threads)
  scheduler_impl* s = t->sched;
  s->callbacks_lk.lock();
  std::shared_ptr<const channel_callback> cb = s->channel_cb;
  s->callbacks_lk.unlock();
  if (cb) (*cb)(channel, t->id, sending, will_block(channel));
}

}  // namespace stackless::detail

namespace stackless {
void scheduler::dump(std::ostream& os) const { impl_->dump(os); }

void scheduler::set_schedule_callback(schedule_callback cb) {
  auto p = cb ? std::make_shared<const schedule_callback>(std::move(cb)) : nullptr;
  detail::scheduler_impl& s = *impl_;
  s.callbacks_lk.lock();
  std::swap(s.schedule_cb, p);
  s.callbacks_lk.unlock();
  // relaxed: a hint read at every switch-in; the callback itself is read under callbacks_lk.
  s.has_schedule_cb.store(s.schedule_cb != nullptr, std::memory_order_relaxed);
}  // the old callback is destroyed here (or by a worker still calling it), outside the lock

void scheduler::set_channel_callback(channel_callback cb) {
  auto p = cb ? std::make_shared<const channel_callback>(std::move(cb)) : nullptr;
  detail::scheduler_impl& s = *impl_;
  s.callbacks_lk.lock();
  const bool had = s.channel_cb != nullptr;
  std::swap(s.channel_cb, p);
  const bool has = s.channel_cb != nullptr;
  // relaxed: a hint (channel_event()); under the lock, so set/unset pairs count right.
  if (has && !had) detail::channel_callback_schedulers.fetch_add(1, std::memory_order_relaxed);
  if (had && !has) detail::channel_callback_schedulers.fetch_sub(1, std::memory_order_relaxed);
  s.callbacks_lk.unlock();
}

}  // namespace stackless
