#include "commands/flags.hpp"

#include <algorithm>
#include <numeric>

namespace accelerate::cli {

std::string nearest(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    std::iota(row.begin(), row.end(), 0);
    for (size_t i = 1; i <= a.size(); ++i) {
      size_t diagonal = row[0]++;
      for (size_t j = 1; j <= b.size(); ++j) {
        const size_t up = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = up;
      }
    }
    return row[b.size()];
  };
  std::string best;
  size_t best_distance = std::max<size_t>(3, word.size() / 3) + 1;  // farther than that is no suggestion
  for (const auto& c : candidates) {
    const auto d = distance(word, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  return best;
}

std::string nearest_flag(const CLI::App& cmd, const std::string& word) {
  std::vector<std::string> flags;
  for (const auto* opt : cmd.get_options()) {
    for (const auto& l : opt->get_lnames()) flags.push_back("--" + l);
  }
  return nearest(word, flags);
}

}  // namespace accelerate::cli
