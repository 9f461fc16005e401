// The mixed-precision choice (no, fp16, bf16) and its one parser: torch-free, shared by the library, the
// launcher's flags and the config file.
#pragma once

#include <string>

namespace accelerate {

enum class MixedPrecision { No, Fp16, Bf16 };

/// The choices accepted, as HF Accelerate spells them ("fp8" is HF's too, but not supported here yet).
inline constexpr const char* kMixedPrecisionChoices = "no, fp16, bf16";

/// "no" (or empty), "fp16", "bf16", in any case (HF lowercases it too). Anything else is a ConfigError that starts with
/// `where` (a flag, a variable, a config file's line) and lists the choices; "fp8" gets its own message saying it is
/// not supported yet.
MixedPrecision parse_mixed_precision(const std::string& value, const std::string& where = "");
std::string to_string(MixedPrecision precision);

}  // namespace accelerate
