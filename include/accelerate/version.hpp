#pragma once

namespace accelerate {
inline constexpr const char* kVersion = "0.1.0";
}
