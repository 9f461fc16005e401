#include <accelerate/mixed_precision.hpp>

#include <accelerate/error.hpp>

#include <algorithm>
#include <cctype>

namespace accelerate {

MixedPrecision parse_mixed_precision(const std::string& given, const std::string& where) {
  // Any case, as HF's Accelerator lowercases its argument ("BF16" is bf16).
  std::string value = given;
  std::transform(value.begin(), value.end(), value.begin(), [](unsigned char c) { return std::tolower(c); });
  if (value == "no") return MixedPrecision::No;
  if (value == "fp16") return MixedPrecision::Fp16;
  if (value == "bf16") return MixedPrecision::Bf16;
  const std::string prefix = where.empty() ? "" : where + ": ";
  // An empty value is a flag or key left without one (HF's choices refuse it too), not a request for "no".
  ACCELERATE_CHECK(!value.empty(), ConfigError, prefix, "mixed_precision is empty; give one of ",
                   kMixedPrecisionChoices, " (no: full precision).");
  ACCELERATE_CHECK(value != "fp8", ConfigError, prefix,
                   "mixed_precision fp8 is not supported by accelerate-cpp yet. Use no, fp16 or bf16.");
  // Long values (a corrupt config file) are cut: the message must stay readable.
  std::string shown = given.substr(0, 40);
  if (given.size() > 40) shown.append("...");
  throw ConfigError(
      detail::concat(prefix, "mixed_precision '", shown, "' is not one of ", kMixedPrecisionChoices, "."));
}

std::string to_string(MixedPrecision precision) {
  switch (precision) {
    case MixedPrecision::No: return "no";
    case MixedPrecision::Fp16: return "fp16";
    case MixedPrecision::Bf16: return "bf16";
  }
  return "no";
}

}  // namespace accelerate
