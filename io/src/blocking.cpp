// SPDX-License-Identifier: Apache-2.0
// io/src/blocking.cpp — the blocking pool (run_blocking) and the file calls built on it.
//
// The pool is one per process, shared by every scheduler (a blocking call's cost is its OS
// thread, not which scheduler asked): a FIFO of jobs under one mutex, and threads that take
// them. A job that finds no idle thread starts one, up to the limit (Loom's compensation, Go's
// hand-off of a blocking syscall to a fresh M); beyond it, jobs queue. A thread idle for 10 s
// exits. The pool object is never destroyed: its detached threads may outlive main()'s statics.
//
// The caller's wait (submit_and_wait): a tasklet parks through the runtime's door (wait_here)
// until the pool thread marks its job done; the job lives in the caller's frame, so the wait
// cannot end early — kill, raise_exception and timeout_scope are held back (irq_mask) and
// delivered when the call returns. Whoever runs the job sets `done` and wakes the record under
// the job's lock; the caller reads `done` only under that lock, so once it has seen it, the
// pool thread no longer touches the job. While it waits, the tasklet counts as waiting for the
// outside world (external_wait), so the deadlock detector does not report it.
#include "stackless/io/blocking.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <system_error>
#include <thread>

#include "stackless/runtime/internal/netpoll.hpp"
#include "stackless/runtime/internal/park.hpp"
#include "stackless/runtime/internal/spin.hpp"

namespace stackless::io {

namespace sd = stackless::detail;

namespace detail {
namespace {

// waiting is a tasklet caller's side of a job.
struct waiting {
  sd::spinlock lk;
  bool done = false;          // guarded by lk
  sd::waiter* rec = nullptr;  // guarded by lk: the parked caller's record, if parked
};

class pool {
 public:
  pool() {
    if (const char* e = std::getenv("STACKLESS_BLOCKING_THREADS")) {
      long n = std::strtol(e, nullptr, 10);
      if (n > 0) max_threads_ = static_cast<std::size_t>(n);
    }
  }

  void push(blocking_job* j) {
    std::unique_lock g(mu_);
    j->next = nullptr;
    if (tail_)
      tail_->next = j;
    else
      head_ = j;
    tail_ = j;
    ++queued_;
    if (idle_ >= queued_) {
      cv_.notify_one();
      return;
    }
    if (threads_ >= max_threads_) return;  // it waits for a thread to come free
    ++threads_;
    try {
      std::thread([this] { loop(); }).detach();
    } catch (...) {
      --threads_;
      if (threads_ == 0) {  // nobody would ever run it: take it back and report
        unlink(j);
        throw;
      }
    }
  }

  blocking_pool_stats stats() {
    std::lock_guard g(mu_);
    return {threads_, max_threads_, idle_, jobs_};
  }
  void set_limit(std::size_t n) {
    std::lock_guard g(mu_);
    max_threads_ = n < 1 ? 1 : n;
  }

 private:
  void unlink(blocking_job* j) {  // mu_ held
    blocking_job** p = &head_;
    blocking_job* prev = nullptr;
    while (*p && *p != j) {
      prev = *p;
      p = &(*p)->next;
    }
    if (!*p) return;
    *p = j->next;
    if (tail_ == j) tail_ = prev;
    --queued_;
  }

  void loop() {
    pthread_setname_np(pthread_self(), "stackless-block");
    std::unique_lock g(mu_);
    for (;;) {
      while (!head_) {
        ++idle_;
        bool got = cv_.wait_for(g, std::chrono::seconds(10), [this] { return head_ != nullptr; });
        --idle_;
        if (!got) {
          --threads_;
          return;
        }
      }
      blocking_job* j = head_;
      head_ = j->next;
      if (!head_) tail_ = nullptr;
      --queued_;
      ++jobs_;
      g.unlock();
      j->run(j);
      finish(j);
      g.lock();
    }
  }

  static void finish(blocking_job* j) noexcept {
    auto* w = static_cast<waiting*>(j->state);
    w->lk.lock();
    w->done = true;
    if (sd::waiter* r = w->rec) {
      w->rec = nullptr;
      sd::wake(*r);
    }
    w->lk.unlock();  // the last touch of the job and of *w: the caller may return now
  }

  std::mutex mu_;
  std::condition_variable cv_;
  blocking_job* head_ = nullptr;  // guarded by mu_, as every field below
  blocking_job* tail_ = nullptr;
  std::size_t queued_ = 0;
  std::size_t threads_ = 0;
  std::size_t idle_ = 0;
  std::size_t max_threads_ = 64;
  std::uint64_t jobs_ = 0;
};

pool& the_pool() {
  static pool* p = new pool;  // never destroyed (see the top of the file)
  return *p;
}

}  // namespace

void submit_and_wait(blocking_job& job) {
  submit_and_wait_nothrow(job);
  sd::throw_if_interrupted();  // what arrived meanwhile
}

void submit_and_wait_nothrow(blocking_job& job) {
  if (!sd::current_tcb()) {  // a plain thread may block: run it here
    job.run(&job);
    return;
  }
  waiting w;
  job.state = &w;
  the_pool().push(&job);
  {
    sd::external_wait ext;
    sd::irq_mask mask;  // the job uses this frame: no early exit (see the top of the file)
    for (;;) {
      w.lk.lock();
      if (w.done) {
        w.lk.unlock();
        break;
      }
      sd::wait_here wh("run_blocking");
      w.rec = wh.record();
      sd::wake_reason r = wh.wait([&w] { w.lk.unlock(); }, sd::no_deadline);
      if (r != sd::wake_reason::notified) {  // a kill under the mask woke us once: wait again
        w.lk.lock();
        w.rec = nullptr;
        w.lk.unlock();
      }
    }
  }
}

}  // namespace detail

blocking_pool_stats blocking_pool_info() { return detail::the_pool().stats(); }
void set_blocking_pool_limit(std::size_t n) { detail::the_pool().set_limit(n); }

// ---- files -----------------------------------------------------------------------------------

namespace {
[[noreturn]] void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::generic_category(), what);
}
}  // namespace

file file::open(const std::string& path, int flags, mode_t mode) {
  auto [fd, err] = run_blocking([&] {
    int r = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    return std::pair{r, r < 0 ? errno : 0};  // errno of the pool thread, read there
  });
  if (fd < 0) throw_errno(err, "open " + path);
  file f;
  f.fd_ = fd;
  f.path_ = path;
  return f;
}

file& file::operator=(file&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
    path_ = std::move(o.path_);
  }
  return *this;
}

file::~file() { close(); }

void file::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::size_t file::read_at(std::span<std::byte> buf, std::uint64_t offset) {
  if (fd_ < 0) throw std::system_error(EBADF, std::generic_category(), "read_at: file not open");
  int err = 0;
  std::size_t got = run_blocking([&] {
    std::size_t n = 0;
    while (n < buf.size()) {
      ssize_t r = ::pread(fd_, buf.data() + n, buf.size() - n, static_cast<off_t>(offset + n));
      if (r < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      if (r == 0) break;
      n += static_cast<std::size_t>(r);
    }
    return n;
  });
  if (err) throw_errno(err, "read_at " + path_);
  return got;
}

void file::write_at(std::span<const std::byte> buf, std::uint64_t offset) {
  if (fd_ < 0) throw std::system_error(EBADF, std::generic_category(), "write_at: file not open");
  int err = run_blocking([&] {
    std::size_t n = 0;
    while (n < buf.size()) {
      ssize_t r = ::pwrite(fd_, buf.data() + n, buf.size() - n, static_cast<off_t>(offset + n));
      if (r < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      n += static_cast<std::size_t>(r);
    }
    return 0;
  });
  if (err) throw_errno(err, "write_at " + path_);
}

void file::sync() {
  if (fd_ < 0) throw std::system_error(EBADF, std::generic_category(), "sync: file not open");
  int err = run_blocking([&] { return ::fdatasync(fd_) < 0 ? errno : 0; });
  if (err) throw_errno(err, "sync " + path_);
}

std::uint64_t file::size() const {
  struct stat st {};
  if (::fstat(fd_, &st) < 0) throw_errno(errno, "fstat " + path_);
  return static_cast<std::uint64_t>(st.st_size);
}

std::string read_file(const std::string& path) {
  file f = file::open(path, O_RDONLY);
  std::string out;
  std::uint64_t off = 0;
  for (;;) {
    out.resize(off + 65536);
    std::size_t n = f.read_at(std::as_writable_bytes(std::span(out.data() + off, 65536)), off);
    off += n;
    if (n < 65536) break;
  }
  out.resize(off);
  return out;
}

void write_file(const std::string& path, std::string_view data) {
  file f = file::open(path, O_WRONLY | O_CREAT | O_TRUNC);
  f.write_at(std::as_bytes(std::span(data.data(), data.size())), 0);
}

}  // namespace stackless::io
