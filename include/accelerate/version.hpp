// This library's version (Semantic Versioning). CHANGELOG.md lists each release's public API changes; a test keeps
// the three (this header, CMake's project version, the changelog's newest release) the same.
#pragma once

namespace accelerate {
inline constexpr const char* kVersion = "0.2.0";
/// "major.minor.patch", the same as kVersion.
inline constexpr const char* version() noexcept { return kVersion; }
}  // namespace accelerate
