// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/chart.cpp — speedup_svg() (chart.hpp).
//
// Layout, top to bottom: the title; the plot (y: speedup from 0, x: workers 1…N with half a step
// of room at each end), its legend in the upper left corner (where neither line goes: both
// start at speedup 1 and rise to the right); the x axis label; the caption. Text widths are
// estimated at 0.6 em per character (wider than sans-serif's average), and the width of the
// picture is the widest caption line's, at least 760 px, so no label is clipped.
#include "chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace stackless::wordcount {

namespace {

constexpr double char_w = 0.6;  // estimated glyph width in em

std::string num(double v, int decimals = 1) {
  char b[32];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// wrap() breaks s at spaces into lines of at most `width` characters (a longer word stays
/// whole); later lines are indented by two spaces.
std::vector<std::string> wrap(const std::string& s, std::size_t width) {
  std::vector<std::string> lines;
  std::string cur;
  std::size_t i = 0;
  while (i < s.size()) {
    std::size_t j = s.find(' ', i);
    if (j == std::string::npos) j = s.size();
    const std::string word = s.substr(i, j - i);
    if (!cur.empty() && cur.size() + 1 + word.size() > width) {
      lines.push_back(cur);
      cur = "  " + word;
    } else {
      cur += (cur.empty() ? "" : " ") + word;
    }
    i = j + 1;
  }
  if (!cur.empty()) lines.push_back(cur);
  return lines;
}

double text_width(std::string_view s, double font) {
  // UTF-8 continuation bytes are not characters of their own.
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return static_cast<double>(n) * char_w * font;
}

/// y_step() is a tick step that gives 4 to 10 ticks up to top.
double y_step(double top) {
  for (double step : {0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0})
    if (top / step <= 10) return step;
  return std::ceil(top / 10);
}

}  // namespace

std::string speedup_svg(const std::vector<chart_run>& runs, const std::string& title,
                        const std::vector<std::string>& caption) {
  const double base = runs.empty() ? 1.0 : runs.front().seconds;
  const unsigned first = runs.empty() ? 1 : runs.front().workers;
  unsigned n = 1;
  double top = 1;
  for (const chart_run& r : runs) {
    n = std::max(n, r.workers);
    top = std::max({top, base / r.seconds, static_cast<double>(r.workers) / first});
  }
  const double step = y_step(top * 1.15);
  const double y_max = std::ceil(top * 1.15 / step) * step;

  std::vector<std::string> cap;
  for (const std::string& c : caption)
    for (std::string& l : wrap(c, 120)) cap.push_back(std::move(l));
  const double font = 12, cap_font = 12;
  double width = 760;
  for (const std::string& l : cap) width = std::max(width, text_width(l, cap_font) + 40);
  width = std::max(width, text_width(title, 16) + 40);

  const double left = 70, right = 30, plot_top = 50, plot_h = 320;
  const double plot_w = width - left - right;
  const double plot_bottom = plot_top + plot_h;
  const double height = plot_bottom + 50 + 18.0 * static_cast<double>(cap.size()) + 16;
  const double x_lo = 0.5, x_hi = n + 0.5;
  auto px = [&](double w) { return left + (w - x_lo) / (x_hi - x_lo) * plot_w; };
  auto py = [&](double s) { return plot_bottom - s / y_max * plot_h; };

  std::string o;
  auto add = [&](const std::string& s) { o += s + "\n"; };
  add("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width, 0) + "\" height=\"" +
      num(height, 0) + "\" viewBox=\"0 0 " + num(width, 0) + " " + num(height, 0) +
      "\" font-family=\"sans-serif\" font-size=\"" + num(font, 0) + "\">");
  add("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
  add("<text x=\"" + num(left) + "\" y=\"28\" font-size=\"16\" font-weight=\"bold\">" +
      escape(title) + "</text>");

  // Grid and y ticks.
  for (double s = 0; s <= y_max + 1e-9; s += step) {
    const double y = py(s);
    add("<line x1=\"" + num(left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(left + plot_w) +
        "\" y2=\"" + num(y) + "\" stroke=\"" + (s == 0 ? "black" : "#e0e0e0") + "\"/>");
    add("<text x=\"" + num(left - 8) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">" +
        num(s, step < 1 ? 2 : 0) + "</text>");
  }
  add("<line x1=\"" + num(left) + "\" y1=\"" + num(plot_top) + "\" x2=\"" + num(left) + "\" y2=\"" +
      num(plot_bottom) + "\" stroke=\"black\"/>");
  // x ticks: every worker count, or every k-th when there are many.
  const unsigned every = n <= 16 ? 1 : (n + 15) / 16;
  for (unsigned w = 1; w <= n; ++w) {
    if ((w - 1) % every != 0 && w != n) continue;
    const double x = px(w);
    add("<line x1=\"" + num(x) + "\" y1=\"" + num(plot_bottom) + "\" x2=\"" + num(x) + "\" y2=\"" +
        num(plot_bottom + 5) + "\" stroke=\"black\"/>");
    add("<text x=\"" + num(x) + "\" y=\"" + num(plot_bottom + 19) + "\" text-anchor=\"middle\">" +
        std::to_string(w) + "</text>");
  }
  // Axis labels.
  add("<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(plot_bottom + 40) +
      "\" text-anchor=\"middle\">workers (threads of the scheduler)</text>");
  add("<text transform=\"translate(20 " + num(plot_top + plot_h / 2) +
      ") rotate(-90)\" text-anchor=\"middle\">speedup (time at " + std::to_string(first) +
      " worker" + (first == 1 ? "" : "s") + " / time)</text>");

  // The ideal line: dashed grey, square markers.
  const std::string ideal_colour = "#888888", ours_colour = "#1f77b4";
  std::string pts;
  for (unsigned w = first; w <= n; ++w)
    pts += num(px(w)) + "," + num(py(static_cast<double>(w) / first)) + " ";
  add("<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + ideal_colour +
      "\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>");
  for (unsigned w = first; w <= n; ++w)
    add("<rect x=\"" + num(px(w) - 4) + "\" y=\"" + num(py(static_cast<double>(w) / first) - 4) +
        "\" width=\"8\" height=\"8\" fill=\"" + ideal_colour + "\"/>");

  // The measured line: solid blue, round markers, each labelled below with its speedup and
  // time (when there is room: up to 12 points).
  pts.clear();
  for (const chart_run& r : runs) pts += num(px(r.workers)) + "," + num(py(base / r.seconds)) + " ";
  add("<polyline points=\"" + pts + "\" fill=\"none\" stroke=\"" + ours_colour +
      "\" stroke-width=\"2.5\"/>");
  for (const chart_run& r : runs) {
    const double x = px(r.workers), y = py(base / r.seconds);
    add("<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"5\" fill=\"" + ours_colour +
        "\" stroke=\"white\" stroke-width=\"1.5\"/>");
    if (runs.size() > 12) continue;
    const std::string label = num(base / r.seconds, 2) + "× (" + num(r.seconds, 2) + " s)";
    const double half = text_width(label, font) / 2;
    const double lx = std::clamp(x, left + half + 4, left + plot_w - half - 4);
    add("<text x=\"" + num(lx) + "\" y=\"" + num(std::min(y + 20, plot_bottom - 6)) +
        "\" text-anchor=\"middle\" fill=\"" + ours_colour + "\">" + escape(label) + "</text>");
  }

  // Legend, upper left inside the plot.
  const double lgx = left + 12, lgy = plot_top + 10;
  const std::string l1 = "measured: stackless-wordcount", l2 = "ideal: speedup = workers";
  const double lgw = 50 + std::max(text_width(l1, font), text_width(l2, font)) + 10;
  add("<rect x=\"" + num(lgx) + "\" y=\"" + num(lgy) + "\" width=\"" + num(lgw) +
      "\" height=\"46\" fill=\"white\" stroke=\"#bbbbbb\"/>");
  add("<line x1=\"" + num(lgx + 8) + "\" y1=\"" + num(lgy + 15) + "\" x2=\"" + num(lgx + 40) +
      "\" y2=\"" + num(lgy + 15) + "\" stroke=\"" + ours_colour + "\" stroke-width=\"2.5\"/>");
  add("<circle cx=\"" + num(lgx + 24) + "\" cy=\"" + num(lgy + 15) + "\" r=\"5\" fill=\"" +
      ours_colour + "\"/>");
  add("<text x=\"" + num(lgx + 50) + "\" y=\"" + num(lgy + 19) + "\">" + escape(l1) + "</text>");
  add("<line x1=\"" + num(lgx + 8) + "\" y1=\"" + num(lgy + 33) + "\" x2=\"" + num(lgx + 40) +
      "\" y2=\"" + num(lgy + 33) + "\" stroke=\"" + ideal_colour +
      "\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>");
  add("<rect x=\"" + num(lgx + 20) + "\" y=\"" + num(lgy + 29) +
      "\" width=\"8\" height=\"8\" fill=\"" + ideal_colour + "\"/>");
  add("<text x=\"" + num(lgx + 50) + "\" y=\"" + num(lgy + 37) + "\">" + escape(l2) + "</text>");

  // Caption.
  double cy = plot_bottom + 68;
  for (const std::string& l : cap) {
    // xml:space: the two spaces that indent a wrapped line are kept.
    add("<text x=\"20\" y=\"" + num(cy) + "\" font-size=\"" + num(cap_font, 0) +
        "\" fill=\"#333333\" xml:space=\"preserve\">" + escape(l) + "</text>");
    cy += 18;
  }
  add("</svg>");
  return o;
}

}  // namespace stackless::wordcount
