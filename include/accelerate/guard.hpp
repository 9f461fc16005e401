// Base of the RAII guards (accumulate, no_sync, autocast, main_process_first): a guard restores state in its
// destructor, so it is neither copied nor moved. Factories still return guards by value (guaranteed elision).
#pragma once

namespace accelerate {

class Guard {
 protected:
  Guard() = default;
  ~Guard() = default;

 public:
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  Guard(Guard&&) = delete;
  Guard& operator=(Guard&&) = delete;
};

}  // namespace accelerate
