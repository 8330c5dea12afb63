// SPDX-License-Identifier: Apache-2.0
// tools/wordcount/chart.hpp — the --compare chart: speedup over one worker against the number of
// workers, with the ideal (linear) speedup for reference, as a hand-written SVG (no
// dependencies).
#pragma once

#include <string>
#include <vector>

namespace stackless::wordcount {

/// chart_run is one run of the comparison.
struct chart_run {
  unsigned workers = 1;
  double seconds = 0;
};

/// speedup_svg() is the SVG document: a line chart of speedup (seconds at the first run's worker
/// count / seconds) against workers, with the ideal line, axis labels, a legend and the caption
/// lines below the plot (wrapped, and the picture widened, so that no text is clipped).
std::string speedup_svg(const std::vector<chart_run>& runs, const std::string& title,
                        const std::vector<std::string>& caption);

}  // namespace stackless::wordcount
