// SPDX-License-Identifier: Apache-2.0
// stackless/io/blocking.hpp — run_blocking(): a call that blocks its OS thread, run on the
// blocking pool while only the calling tasklet waits (stacklesslib's threadpool.call_on_thread;
// Go's hand-off of a blocking syscall), and file I/O through it.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace stackless::io {

namespace detail {
/// blocking_job is one call handed to the pool: the pool thread runs `run`, then `done()`.
struct blocking_job {
  void (*run)(blocking_job*) = nullptr;
  void* self = nullptr;   // what `run` works on (run_blocking's frame)
  void* state = nullptr;  // the caller's waiting state (blocking.cpp)
  blocking_job* next = nullptr;
};
/// submit_and_wait() hands `job` to the pool and waits until it has run. A tasklet parks (not
/// interruptibly: a kill or timeout that arrives meanwhile is delivered when the call returns,
/// since the job still uses the caller's frame); a plain thread runs the job itself.
void submit_and_wait(blocking_job& job);
/// submit_and_wait_nothrow() is submit_and_wait() that leaves an interrupt pending instead of
/// throwing it (for the hooks, which return to C code: hooks.cpp).
void submit_and_wait_nothrow(blocking_job& job);
}  // namespace detail

/// blocking_pool_stats: the pool's threads now, at most, idle now, and jobs run so far.
struct blocking_pool_stats {
  std::size_t threads = 0;
  std::size_t max_threads = 0;
  std::size_t idle = 0;
  std::uint64_t jobs = 0;
};
blocking_pool_stats blocking_pool_info();
/// set_blocking_pool_limit() sets the most threads the pool may have (default 64, at least 1;
/// also STACKLESS_BLOCKING_THREADS). Jobs beyond it queue until a thread is free.
void set_blocking_pool_limit(std::size_t n);

/// run_blocking(f) runs f() on a thread of the blocking pool and returns its result (or
/// rethrows its exception) in the calling tasklet, whose worker runs other tasklets meanwhile.
/// The pool grows when every thread is busy, up to its limit, and its threads exit after 10 s
/// idle. From a plain thread, f simply runs on that thread. A kill, raise_exception or the end
/// of a timeout_scope during the call is delivered once f has returned (f may use the caller's
/// stack); f should not wait on tasklets (it runs on a plain thread: it may, but blocks it).
template <class F>
std::invoke_result_t<F&> run_blocking(F&& f) {
  using R = std::invoke_result_t<F&>;
  struct call {
    detail::blocking_job job;
    F* f;
    std::conditional_t<
        std::is_void_v<R>, bool,
        std::optional<std::conditional_t<std::is_reference_v<R>,
                                         std::reference_wrapper<std::remove_reference_t<R>>, R>>>
        result{};
    std::exception_ptr error;
  } c;
  c.f = &f;
  c.job.self = &c;
  c.job.run = [](detail::blocking_job* j) {
    call* self = static_cast<call*>(j->self);
    try {
      if constexpr (std::is_void_v<R>) {
        (*self->f)();
      } else {
        self->result.emplace((*self->f)());
      }
    } catch (...) {
      self->error = std::current_exception();
    }
  };
  detail::submit_and_wait(c.job);
  if (c.error) std::rethrow_exception(c.error);
  if constexpr (!std::is_void_v<R>) {
    if constexpr (std::is_reference_v<R>)
      return c.result->get();
    else
      return std::move(*c.result);
  }
}

/// file is a file opened for positional I/O; every call runs on the blocking pool (regular files
/// have no readiness to wait for: epoll refuses them).
class file {
 public:
  file() noexcept = default;
  /// open(): flags as for open(2) (O_RDONLY, O_WRONLY|O_CREAT|O_TRUNC…), mode for O_CREAT.
  /// Throws std::system_error naming the path.
  static file open(const std::string& path, int flags, mode_t mode = 0644);
  file(file&& o) noexcept : fd_(std::exchange(o.fd_, -1)), path_(std::move(o.path_)) {}
  file& operator=(file&& o) noexcept;
  file(const file&) = delete;
  file& operator=(const file&) = delete;
  ~file();

  /// read_at() reads up to buf.size() bytes at offset (fewer only at the end of the file).
  std::size_t read_at(std::span<std::byte> buf, std::uint64_t offset);
  /// write_at() writes all of buf at offset.
  void write_at(std::span<const std::byte> buf, std::uint64_t offset);
  /// sync(): fdatasync.
  void sync();
  std::uint64_t size() const;
  void close() noexcept;
  int native_handle() const noexcept { return fd_; }

 private:
  int fd_ = -1;
  std::string path_;
};

/// read_file() is the whole content of a file (on the blocking pool).
std::string read_file(const std::string& path);
/// write_file() replaces a file's content (on the blocking pool).
void write_file(const std::string& path, std::string_view data);

}  // namespace stackless::io
