// The examples' flags: `--name value` pairs and `--switch`es bound to variables. A value that is not whole of its
// type ("2x" for a number), a missing value or an unknown flag is a ConfigError naming the flag, which
// accelerate::run_main turns into exit code 2. The GPT example uses CLI11 instead, for its many flags and --help.
#pragma once

#include <accelerate/error.hpp>

#include <cstdlib>
#include <functional>
#include <iostream>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace example {

/// The whole of `v` as a T (std::stoll and friends stop at the first bad character: "2x" would be 2); throws
/// std::invalid_argument or std::out_of_range.
template <class T>
T whole(const std::string& v) {
  if constexpr (std::is_same_v<T, std::string>) {
    return v;
  } else {
    size_t used = 0;
    T x{};
    if constexpr (std::is_floating_point_v<T>) {
      x = static_cast<T>(std::stod(v, &used));
    } else if constexpr (std::is_unsigned_v<T>) {
      if (v.find('-') != std::string::npos) throw std::out_of_range(v);
      x = static_cast<T>(std::stoull(v, &used));
    } else {
      const long long parsed = std::stoll(v, &used);
      if (parsed < std::numeric_limits<T>::min() || parsed > std::numeric_limits<T>::max()) throw std::out_of_range(v);
      x = static_cast<T>(parsed);
    }
    if (used != v.size()) throw std::invalid_argument(v);
    return x;
  }
}

class Flags {
 public:
  /// `usage` is printed by --help (then the program exits with 0).
  explicit Flags(std::string usage) : usage_(std::move(usage)) {}

  /// `--flag V` sets `target` to whole<T>(V) (T: a number or std::string; std::optional<T> too).
  template <class T>
  Flags& add(const std::string& flag, T& target) {
    values_[flag] = [&target](const std::string& v) {
      if constexpr (requires { typename T::value_type; } && !std::is_same_v<T, std::string>) {
        target = whole<typename T::value_type>(v);
      } else {
        target = whole<T>(v);
      }
    };
    return *this;
  }
  /// `--flag V` sets `target` to check(V), which throws a ConfigError for a value it refuses.
  Flags& add(const std::string& flag, std::string& target, std::string (*check)(const std::string&)) {
    values_[flag] = [&target, check](const std::string& v) { target = check(v); };
    return *this;
  }
  /// `--flag` (no value) sets `target` to true.
  Flags& add_switch(const std::string& flag, bool& target) {
    switches_[flag] = &target;
    return *this;
  }

  /// Reads argv[1..argc); throws accelerate::ConfigError on a mistake.
  void parse(int argc, char** argv) const {
    for (int i = 1; i < argc; ++i) {
      const std::string flag = argv[i];
      if (flag == "--help" || flag == "-h") {
        std::cout << usage_ << std::endl;
        std::exit(0);
      }
      if (auto s = switches_.find(flag); s != switches_.end()) {
        *s->second = true;
        continue;
      }
      const auto setter = values_.find(flag);
      if (setter == values_.end()) throw accelerate::ConfigError("unknown flag " + flag + " (see --help)");
      ACCELERATE_CHECK(i + 1 < argc, ConfigError, "flag ", flag, " needs a value");
      const std::string v = argv[++i];
      try {
        setter->second(v);
      } catch (const std::logic_error&) {  // std::stoi and friends: not a number, or out of range
        throw accelerate::ConfigError("flag " + flag + ": '" + v.substr(0, 40) + "' is not a valid number");
      }
    }
  }

 private:
  std::string usage_;
  std::map<std::string, std::function<void(const std::string&)>> values_;
  std::map<std::string, bool*> switches_;
};

}  // namespace example
