// What several multi-process test programs share: the GPT job's batches and a folder every rank agrees on.
#pragma once

#include <accelerate/accelerate.hpp>

#include <filesystem>
#include <string>
#include <unistd.h>

namespace accelerate::testing {

/// Sequences of tokens as the GPT job's batches: "input_ids" and "labels" (shifted by one).
class TokenWindows final : public Dataset {
 public:
  explicit TokenWindows(at::Tensor windows) : windows_(std::move(windows)) {}
  int64_t size() const override { return windows_.size(0); }
  Batch get(int64_t i) const override {
    const int64_t t = windows_.size(1) - 1;
    return Batch{{"input_ids", windows_[i].narrow(0, 0, t)}, {"labels", windows_[i].narrow(0, 1, t)}};
  }

 private:
  at::Tensor windows_;
};

/// A fresh folder in the temporary directory that every rank agrees on (rank 0 picks and empties it).
inline std::string shared_temp_dir(const ProcessState& state, const std::string& name) {
  std::vector<c10::IValue> dir{c10::IValue(std::string())};
  if (state.is_main_process()) {
    auto path = std::filesystem::temp_directory_path() / ("accelerate_test_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(path);
    dir[0] = path.string();
  }
  broadcast_object_list(state, dir, 0);
  return dir[0].toStringRef();
}

}  // namespace accelerate::testing
