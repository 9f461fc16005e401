#include <accelerate/mixed_precision.hpp>

#include <accelerate/error.hpp>

namespace accelerate {

MixedPrecision parse_mixed_precision(const std::string& value, const std::string& where) {
  if (value == "no" || value.empty()) return MixedPrecision::No;
  if (value == "fp16") return MixedPrecision::Fp16;
  if (value == "bf16") return MixedPrecision::Bf16;
  const std::string prefix = where.empty() ? "" : where + ": ";
  ACCELERATE_CHECK(value != "fp8", ConfigError, prefix,
                   "mixed_precision fp8 is not supported by accelerate-cpp yet. Use no, fp16 or bf16.");
  // Long values (a corrupt config file) are cut: the message must stay readable.
  std::string shown = value.substr(0, 40);
  if (value.size() > 40) shown.append("...");
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
