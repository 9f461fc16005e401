// Internal: what the file trackers share: the run folder made (or a clear error), a value as text.
#pragma once

#include <cstdio>
#include <string>

#include <accelerate/tracking.hpp>

#include <nlohmann/json.hpp>

namespace accelerate::detail {

/// Creates `dir` and checks it is writable; ConfigError naming it and the fix otherwise.
void make_run_dir(const std::string& dir);

/// Opens `path` for appending (line buffered by the caller's flushes); ConfigError when it cannot.
FILE* open_for_append(const std::string& path);

/// A number as JSON/CSV text: shortest round-trip form; non-finite as nan, inf, -inf.
std::string number_text(double v);

double wall_time();

/// A logged value as JSON; non-finite numbers as text ("nan", "inf": JSON has none).
nlohmann::json log_value_json(const LogValue& v);

}  // namespace accelerate::detail
