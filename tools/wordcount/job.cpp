// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/job.cpp — one word-count run: readers → bounded channel of chunks →
// map_reduce() (mappers with a combiner, then reducers) → totals and the top K.
//
//   files ──▶ R reader tasklets ──chunks──▶ work channel ──▶ mappers ──▶ reducers ──▶ top K
//             (reads on the I/O          (bounded:         for_each_word,
//              blocking pool)             Q chunks)        emit(word, 1)
//                    ▲                                         │
//                    └────────────── free channel ◀────────────┘  (a mapped chunk's buffer)
//
// Reading. A reader fills one chunk per trip to the I/O layer's blocking pool: fill() runs there
// (io::run_blocking) and opens and reads files (io::file, whose calls run inline on the pool's
// thread) from the shared index until the chunk is full, so a tree of small files costs one
// hand-off per chunk, not one per file, and a worker never waits for a disk. A file's first read
// asks for at most 64 KiB: looks_binary() on those bytes decides whether it is counted or
// skipped (a binary file is not read further), and a small file is then whole. Files share a
// chunk, separated by '\n'. When a chunk fills up in the middle of a file, the reader (back in
// its tasklet) hands it over up to its last word end (split_at_word_end()) and carries the cut
// word into the next chunk, so no word is split between two mappers; a word longer than a whole
// chunk grows the chunk instead. The file stays open in the reader (open_file) for the next
// fill(). Two readers by default: one fills while the other waits to send.
//
// Memory. Chunks are recycled: a mapper sends the buffer it has counted back on the free
// channel, and a reader takes one from there before it makes a new one; at most max_chunks
// buffers exist (every reader may hold two while it carries a word over, every mapper one, the
// work channel Q), so the job holds about (2R + M + Q + 1) × chunk_bytes however big the input.
// A reader that finds no free buffer parks on the free channel until a mapper returns one.
//
// Invariants: a chunk on the work channel ends at a word end or at the end of a file; c.bytes
// is the number of file bytes in c (its length without the separators); c.files the files
// whose last byte is in c.
//
// Rejected: one input per file (a channel operation and a map call for every small file, and a
// big file would be one mapper's alone); a trip to the pool per file (the 2,955 files of
// /usr/lib/python3 took 0.3 s of hand-offs on the 2-core VM, as long as counting their words);
// mmap (the pages would be read by the mappers, outside the I/O layer, and a file that shrinks
// meanwhile raises SIGBUS); a new buffer per chunk (a fresh 1 MiB allocation is a fresh mmap in
// glibc: 256 page faults per chunk).
#include "job.hpp"

#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stackless/io/blocking.hpp>
#include <stackless/runtime.hpp>
#include <stackless/sync.hpp>
#include <system_error>

#include "words.hpp"

namespace stackless::wordcount {

namespace {

using count_t = std::uint64_t;

/// min_room: a file starts in the current chunk only if that has this much room (it then sends
/// the chunk first): the first read must see at least binary_probe bytes of the file.
constexpr std::size_t min_room = 64 * 1024;
/// first_read: the most a file's first read asks for. A small text file is read whole at once;
/// of a binary file no more than this is read (the rest of a big text file follows into the
/// chunk's room).
constexpr std::size_t first_read = min_room - 1;
static_assert(first_read >= binary_probe);

/// buffer is a chunk's memory: a std::vector<char> that does not zero what it allocates (the
/// reads write it; zeroing 1 MiB is a pass over memory that has not been touched yet).
class buffer {
 public:
  buffer() noexcept = default;
  explicit buffer(std::size_t n) : p_(new char[n]), n_(n) {}
  char* data() noexcept { return p_.get(); }
  const char* data() const noexcept { return p_.get(); }
  std::size_t size() const noexcept { return n_; }
  char& operator[](std::size_t i) noexcept { return p_[i]; }
  /// resize() grows the buffer to n bytes, keeping its contents.
  void resize(std::size_t n) {
    std::unique_ptr<char[]> q(new char[n]);
    std::memcpy(q.get(), p_.get(), std::min(n, n_));
    p_ = std::move(q);
    n_ = n;
  }

 private:
  std::unique_ptr<char[]> p_;
  std::size_t n_ = 0;
};

/// chunk is a buffer of text for a mapper (see the glossary in job.hpp).
struct chunk {
  buffer buf;           // buf.size(): the capacity in use
  std::size_t len = 0;  // bytes of text in buf
  count_t bytes = 0;    // file bytes in it (len minus the separators)
  count_t files = 0;    // files whose last byte is in it
  std::string_view text() const { return {buf.data(), len}; }
  std::span<std::byte> room() {
    return std::as_writable_bytes(std::span<char>(buf.data() + len, buf.size() - len));
  }
};

/// open_file is the file a reader is in the middle of, from one chunk to the next.
struct open_file {
  io::file fh;
  const input_file* f = nullptr;  // null: none
  count_t off = 0;                // bytes read so far
};

/// filled says why fill() returned: c is full at a file's end (or before a file's start), c is
/// full in the middle of a file (a word may be cut), or the files are all read.
enum class filled : std::uint8_t { at_file_end, mid_file, done };

/// counted is the map_reduce() result container: the total of the values, the number of keys
/// and the top K.
struct counted {
  explicit counted(std::size_t k) : top(k) {}
  void emplace(std::string word, count_t n) {
    words += n;
    ++distinct;
    top.emplace(std::move(word), n);
  }
  top_k<std::string, count_t> top;
  count_t words = 0;
  count_t distinct = 0;
};

/// pipeline is the readers' side of a run: the file index, the channels and the totals.
class pipeline {
 public:
  pipeline(const std::vector<input_file>& files, const job_config& cfg, job_live& live,
           const std::function<void(std::string_view)>& report)
      : files_(files),
        cfg_(cfg),
        chunk_bytes_(std::max(cfg.chunk_bytes, 2 * min_room)),
        live_(live),
        report_(report),
        readers_(std::max<std::size_t>(1, cfg.readers)),
        work_(cfg.workers + 1),
        free_(channel<chunk>::unbounded()),
        max_chunks_(2 * readers_ + cfg.workers + (cfg.workers + 1) + 1),
        readers_left_(readers_) {}

  /// readers() is the number of reader tasklets to run (each calls read(), then reader_done()).
  std::size_t readers() const { return readers_; }

  /// work() is the channel the mappers receive chunks from.
  channel<chunk>& work() { return work_; }

  /// read() is a reader tasklet's body: it fills chunks from the files of the shared index,
  /// one trip to the blocking pool per chunk, and hands them over until the files run out.
  void read() {
    chunk c = take();
    open_file cur;
    for (;;) {
      const filled r = io::run_blocking([&] { return fill(c, cur); });
      if (r == filled::done) break;
      if (r == filled::mid_file)
        carry_over(c);
      else
        send(c);
    }
    if (c.len > 0)
      work_.send(std::move(c));
    else
      give_back(std::move(c));
  }

  /// reader_done() is called once per reader as it ends, however it ends: the last one closes
  /// the work channel, so that the mappers end.
  void reader_done() {
    // acq_rel: the last reader's close() comes after every reader's last send.
    if (readers_left_.fetch_sub(1, std::memory_order_acq_rel) == 1) work_.close();
  }

  /// give_back() returns a counted chunk's buffer for reuse (never parks: unbounded).
  void give_back(chunk&& c) { free_.send(std::move(c)); }

  /// add_totals() writes the readers' totals into r (after the readers have ended).
  void add_totals(job_result& r) const {
    // relaxed: read after the readers were joined (task_group::wait() orders their writes).
    r.files = files_read_.load(std::memory_order_relaxed);
    r.bytes = bytes_read_.load(std::memory_order_relaxed);
    r.skipped = skipped_.load(std::memory_order_relaxed);
    r.unreadable = unreadable_.load(std::memory_order_relaxed);
    r.named_unreadable = named_unreadable_.load(std::memory_order_relaxed);
  }

 private:
  /// take() is a free buffer: a recycled one, a new one while fewer than max_chunks exist, or
  /// the next one a mapper gives back (parking until then).
  chunk take() {
    std::optional<chunk> c = free_.try_receive();
    if (!c) {
      // relaxed: a counter compared with a limit; the buffers themselves go through channels.
      if (made_.fetch_add(1, std::memory_order_relaxed) < max_chunks_)
        return chunk{buffer(chunk_bytes_)};
      c.emplace(free_.receive());
    }
    c->len = 0;
    c->bytes = 0;
    c->files = 0;
    return std::move(*c);
  }

  /// send() hands c to the mappers and replaces it with a free buffer.
  void send(chunk& c) {
    chunk next = take();
    work_.send(std::move(c));
    c = std::move(next);
  }

  /// carry_over() is called when c is full in the middle of a file: it hands c over up to its
  /// last word end and starts the next chunk with the rest (the start of a word the file goes
  /// on with); a chunk that is one word grows instead.
  void carry_over(chunk& c) {
    const std::size_t k = split_at_word_end(c.text());
    if (k == 0) {
      c.buf.resize(c.buf.size() * 2);
      return;
    }
    const std::size_t tail = c.len - k;  // word bytes of the current file (a '\n' precedes them)
    chunk next = take();
    if (next.buf.size() < tail + min_room) next.buf.resize(tail + min_room);
    std::memcpy(next.buf.data(), c.buf.data() + k, tail);
    next.len = tail;
    next.bytes = tail;
    c.len = k;
    c.bytes -= tail;
    work_.send(std::move(c));
    c = std::move(next);
  }

  /// fill() runs on the blocking pool: it appends files to c (going on with cur, the file a
  /// previous fill() stopped in) until c is full or there are no files left.
  filled fill(chunk& c, open_file& cur) {
    for (;;) {
      if (!cur.f) {
        if (c.buf.size() - c.len < min_room) return filled::at_file_end;
        // relaxed: each index is handed out once by the FAA; the listing is not written.
        const std::size_t i = next_.fetch_add(1, std::memory_order_relaxed);
        if (i >= files_.size()) return filled::done;
        start_file(files_[i], c, cur);
        continue;
      }
      const std::span<std::byte> room = c.room();
      if (room.empty()) return filled::mid_file;
      std::size_t got = 0;
      try {
        got = cur.fh.read_at(room, cur.off);
      } catch (const std::system_error& e) {
        // What was read of it is counted (its words are in chunks already); the file is not.
        bytes_read_.fetch_add(cur.off, std::memory_order_relaxed);
        unreadable(*cur.f, e);
        cur = {};
        continue;
      }
      c.len += got;
      c.bytes += got;
      cur.off += got;
      if (got < room.size()) end_file(c, cur);
    }
  }

  /// start_file() opens f and reads its first bytes into c (after a '\n' if c holds text): a
  /// binary or unreadable file leaves c as it was; a text file is appended, and stays open in
  /// cur if it may go on.
  void start_file(const input_file& f, chunk& c, open_file& cur) {
    const bool sep = c.len > 0;
    const std::size_t start = c.len + (sep ? 1 : 0);
    const std::size_t ask = std::min(first_read, c.buf.size() - start);
    io::file fh;
    std::size_t got = 0;
    try {
      fh = io::file::open(f.path.string(), O_RDONLY);
      got = fh.read_at(std::as_writable_bytes(std::span<char>(c.buf.data() + start, ask)), 0);
    } catch (const std::system_error& e) {
      unreadable(f, e);
      return;
    }
    if (looks_binary({c.buf.data() + start, got})) {
      skipped_.fetch_add(1, std::memory_order_relaxed);
      passed_over(f);
      return;
    }
    if (sep) c.buf[c.len] = '\n';
    c.len = start + got;
    c.bytes += got;
    cur = {std::move(fh), &f, got};
    if (got < ask) end_file(c, cur);
  }

  /// end_file() counts cur's file as read (its last byte is in c) and closes it.
  void end_file(chunk& c, open_file& cur) {
    ++c.files;
    files_read_.fetch_add(1, std::memory_order_relaxed);
    bytes_read_.fetch_add(cur.off, std::memory_order_relaxed);
    cur = {};
  }

  /// passed_over() counts a file that will not be counted as done for the progress display.
  void passed_over(const input_file& f) {
    // relaxed: progress counters; they order nothing.
    live_.files.fetch_add(1, std::memory_order_relaxed);
    live_.passed_bytes.fetch_add(f.size, std::memory_order_relaxed);
  }

  void unreadable(const input_file& f, const std::system_error& e) {
    passed_over(f);
    unreadable_.fetch_add(1, std::memory_order_relaxed);
    if (f.named) named_unreadable_.store(true, std::memory_order_relaxed);
    if (cfg_.report_unreadable && report_)
      report("stackless-wordcount: " + f.path.string() + ": " + e.code().message());
  }
  void report(const std::string& line) { report_(line); }

  const std::vector<input_file>& files_;
  const job_config& cfg_;
  const std::size_t chunk_bytes_;  // at least 2 × min_room: a chunk always takes a file
  job_live& live_;
  const std::function<void(std::string_view)>& report_;
  const std::size_t readers_;
  channel<chunk> work_;  // readers → mappers, bounded: the readers park when mappers lag
  channel<chunk> free_;  // mappers → readers: counted buffers
  const std::size_t max_chunks_;
  std::atomic<std::size_t> made_{0};
  std::atomic<std::size_t> next_{0};
  std::atomic<std::size_t> readers_left_;
  // The readers' totals (relaxed: summed while they run, read once they have ended).
  std::atomic<count_t> files_read_{0};
  std::atomic<count_t> bytes_read_{0};
  std::atomic<count_t> skipped_{0};
  std::atomic<count_t> unreadable_{0};
  std::atomic<bool> named_unreadable_{false};
};

/// reader_exit calls pipeline::reader_done() when a reader ends, also by an exception or a
/// kill (the mappers would wait for the channel's close forever otherwise).
struct reader_exit {
  pipeline& p;
  ~reader_exit() { p.reader_done(); }
};

}  // namespace

std::string reducers_name(const reducer_layout& r, unsigned workers) {
  if (r.kind == reducer_layout::kind_t::per_key) return "per-key";
  return "partitions:" + std::to_string(r.count ? r.count : 4 * std::size_t{workers});
}

job_result run_job(const std::vector<input_file>& files, const job_config& cfg, job_live& live,
                   const std::function<void(std::string_view)>& report) {
  options so;
  so.workers = cfg.workers;
  so.name = "wordcount";
  scheduler sched(so);
  pipeline p(files, cfg, live, report);

  map_reduce_options o;
  o.reducers = cfg.reducers;
  o.combiner = cfg.combiner;
  o.progress = &live.mr;

  auto map = [&](chunk& c, auto& emit) {
    for_each_word(c.text(), [&](std::string_view w) { emit(w, count_t{1}); });
    emit.bytes(c.bytes);
    // relaxed: a progress counter; it orders nothing.
    live.files.fetch_add(c.files, std::memory_order_relaxed);
    p.give_back(std::move(c));
    // Let the readers the blocking pool woke meanwhile ask for their next read before this
    // mapper takes the next chunk (a receive that finds a chunk waiting does not switch).
    this_tasklet::yield();
  };
  auto reduce = [](count_t& acc, count_t n) { acc += n; };

  const auto t0 = std::chrono::steady_clock::now();
  counted out = sched.block_on([&] {
    task_group g;  // its destructor kills and joins the readers if map_reduce() throws
    for (std::size_t r = 0; r < p.readers(); ++r)
      g.run([&p] {
        reader_exit done{p};
        p.read();
      });
    counted c = map_reduce<std::string, count_t>(p.work(), map, reduce, o, counted(cfg.top));
    g.wait();  // rethrows a reader's unexpected error (bad_alloc…)
    return c;
  });
  const auto t1 = std::chrono::steady_clock::now();

  job_result r;
  p.add_totals(r);
  r.words = out.words;
  r.distinct = out.distinct;
  r.top = out.top.sorted();
  r.seconds = std::chrono::duration<double>(t1 - t0).count();
  r.workers = cfg.workers;
  r.reducers = reducers_name(cfg.reducers, cfg.workers);
  return r;
}

}  // namespace stackless::wordcount
