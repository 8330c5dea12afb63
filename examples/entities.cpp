// SPDX-License-Identifier: Apache-2.0
// examples/entities.cpp — a game's frame loop that pumps the scheduler, EVE-style.
//
// 10,000 entities, each a tasklet running a looping AI script: wander (a little arithmetic),
// sleep a few frames of *game* time, now and then talk to a neighbour over a channel. The host
// owns the clock (options::clock = clock_source::host): once per frame it pumps the scheduler
// for a fixed budget (run_for(4 ms)) and then advances game time by one frame (1/60 s), so
// sleeps follow the game, not the wall clock, and pausing the game would pause every script.
//
// One scripted entity turns into a runaway at frame 30: it loops forever (with the safe points
// a script interpreter would have: checkpoint()). run_for() returns it, paused, when it overruns
// the frame's budget; the host names it and kills it, and the other entities go on — Stackless's
// watchdog did the same with run(timeout).
//
// Prints frame-time p50 / p99 / max, the frames that overran the budget and by how much, and
// what the entities did. --frames N (default 600: ten seconds of game time, run as fast as the
// pump allows), --entities N, --budget-ms N, --no-runaway. Exit 1 if the runaway was not caught.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stackless/runtime.hpp>
#include <stackless/sync/channel.hpp>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace tt = stackless::this_tasklet;
using wall = std::chrono::steady_clock;

struct config {
  int entities = 10'000;
  int frames = 600;
  std::chrono::microseconds budget = 4ms;
  bool runaway = true;
};

// The world the scripts share: positions, and an inbox per entity (capacity 4; a full inbox
// drops the message, as a game's chatter would).
struct world {
  std::vector<float> x, y;
  std::vector<std::unique_ptr<stackless::channel<int>>> inbox;
  std::uint64_t wanders = 0, said = 0, heard = 0, dropped = 0;
};

std::uint32_t next_rand(std::uint32_t& s) {
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  return s;
}

constexpr auto frame = std::chrono::nanoseconds(1'000'000'000 / 60);

// script() is one entity's AI: wander, sleep 1–20 frames of game time, sometimes talk.
void script(world& w, int me, std::uint32_t seed) {
  const int n = static_cast<int>(w.x.size());
  for (;;) {
    const float dx = static_cast<float>(next_rand(seed) % 200) / 100.0f - 1.0f;
    const float dy = static_cast<float>(next_rand(seed) % 200) / 100.0f - 1.0f;
    w.x[me] += dx;
    w.y[me] += dy;
    ++w.wanders;
    if (next_rand(seed) % 4 == 0) {  // talk to the neighbour
      int msg = me;
      if (w.inbox[(me + 1) % n]->try_send(msg))
        ++w.said;
      else
        ++w.dropped;
    }
    while (auto m = w.inbox[me]->try_receive()) ++w.heard;
    tt::sleep_for((1 + next_rand(seed) % 20) * frame);
  }
}

// runaway() behaves until frame 30 of game time, then loops forever — with checkpoint(), the
// safe point a script interpreter offers between instructions.
void runaway(wall::time_point game_start) {
  tt::sleep_until(game_start + 30 * frame);
  volatile std::uint64_t h = 1;
  for (;;) {
    h = h * 6364136223846793005ULL + 1;
    tt::checkpoint();
  }
}

double ms(wall::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

int run(const config& c) {
  stackless::options o;
  o.workers = 1;  // the host's thread is the worker (pump mode)
  o.clock = stackless::clock_source::host;
  o.name = "entities";
  stackless::scheduler s(o);
  world w;
  w.x.assign(static_cast<std::size_t>(c.entities), 0.0f);
  w.y.assign(static_cast<std::size_t>(c.entities), 0.0f);
  for (int i = 0; i < c.entities; ++i)
    w.inbox.push_back(std::make_unique<stackless::channel<int>>(4));
  const auto game_start = s.now();
  for (int i = 0; i < c.entities; ++i) {
    auto t = s.spawn(script, std::ref(w), i, static_cast<std::uint32_t>(2654435761u * (i + 1)));
    t.set_name("entity-" + std::to_string(i));
  }
  if (c.runaway) s.spawn(runaway, game_start).set_name("entity-runaway (scripted)");

  std::vector<double> frame_ms;
  frame_ms.reserve(static_cast<std::size_t>(c.frames));
  int overruns = 0, killed_at = -1;
  double worst_overrun = 0;
  std::string killed_name;
  const auto t_all = wall::now();
  for (int f = 0; f < c.frames; ++f) {
    const auto t0 = wall::now();
    stackless::tasklet<void> over = s.run_for(c.budget);
    const double took = ms(wall::now() - t0);
    if (over) {
      killed_name = over.name();
      killed_at = f;
      std::printf("frame %d: '%s' overran the %.1f ms budget: killed; the others go on\n", f,
                  killed_name.c_str(), ms(c.budget));
      over.kill();  // from the host: it pumps until the tasklet has ended
    }
    frame_ms.push_back(took);
    if (took > ms(c.budget)) {
      ++overruns;
      worst_overrun = std::max(worst_overrun, took - ms(c.budget));
    }
    s.advance(frame);  // one frame of game time: the sleeps that came due run next frame
  }
  const double total = ms(wall::now() - t_all);
  const auto report = s.shutdown(wall::now() + 1s);  // the scripts loop forever: killed here

  std::vector<double> sorted = frame_ms;
  std::sort(sorted.begin(), sorted.end());
  auto pct = [&](double p) { return sorted[static_cast<std::size_t>(p * (sorted.size() - 1))]; };
  std::printf(
      "%d entities, %d frames of 1/60 s game time (%.1f s), pumped in %.0f ms of wall time\n",
      c.entities, c.frames, c.frames / 60.0, total);
  std::printf("frame time (run_for(%.1f ms)): p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
              ms(c.budget), pct(0.50), pct(0.99), sorted.back());
  std::printf("frames over the budget: %d, worst by %.3f ms; p99 overrun %.3f ms\n", overruns,
              worst_overrun, std::max(0.0, pct(0.99) - ms(c.budget)));
  std::printf("entities: %llu wanders, %llu messages said, %llu heard, %llu dropped (full inbox)\n",
              static_cast<unsigned long long>(w.wanders), static_cast<unsigned long long>(w.said),
              static_cast<unsigned long long>(w.heard), static_cast<unsigned long long>(w.dropped));
  std::printf("shutdown: %llu scripts killed, %llu finished\n",
              static_cast<unsigned long long>(report.killed),
              static_cast<unsigned long long>(report.finished));
  if (c.runaway && killed_at < 0) {
    std::fprintf(stderr, "entities: the runaway entity was never returned by run_for()\n");
    return 1;
  }
  if (w.wanders == 0) {
    std::fprintf(stderr, "entities: no entity ran\n");
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> int {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "entities: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v <= 0 || v > 10'000'000) {
        std::fprintf(stderr, "entities: %s wants a positive number, not '%s'\n", a.c_str(),
                     argv[i]);
        std::exit(2);
      }
      return static_cast<int>(v);
    };
    if (a == "--frames")
      c.frames = value();
    else if (a == "--entities")
      c.entities = value();
    else if (a == "--budget-ms")
      c.budget = std::chrono::milliseconds(value());
    else if (a == "--no-runaway")
      c.runaway = false;
    else {
      std::fprintf(stderr,
                   "usage: stackless_entities [--frames N] [--entities N] [--budget-ms N] "
                   "[--no-runaway]\n");
      return 2;
    }
  }
  return run(c);
}
