#include "detail/safetensors_format.hpp"

#include <accelerate/error.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

namespace accelerate::detail::safetensors {
namespace {

constexpr uint64_t kMaxHeader = 100u << 20;  // as the reference implementation: a larger header is an attack

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw CheckpointError(concat("safetensors file ", path, ": ", what));
}

size_t dtype_size(const std::string& d) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}, {"C64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

/// One tensor's entry of the header, checked against the data section's size.
Entry parse_entry(const std::string& name, const nlohmann::json& value, uint64_t data_size, const std::string& path) {
  const std::string where = "tensor '" + name + "'";
  if (!value.is_object()) fail(path, where + " is not an object");
  Entry e;
  e.name = name;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) fail(path, where + " has no dtype string");
  e.dtype = dtype->get<std::string>();
  const size_t element = dtype_size(e.dtype);
  if (element == 0) fail(path, concat(where, " has unknown dtype '", e.dtype, "'"));
  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) fail(path, where + " has no shape array");
  uint64_t bytes = element;
  for (const auto& d : *shape) {
    if (!d.is_number_unsigned()) fail(path, where + " has a shape entry that is not a non-negative integer");
    const uint64_t dim = d.get<uint64_t>();
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (dim != 0 && bytes > std::numeric_limits<uint64_t>::max() / dim)) {
      fail(path, where + " has a shape too large to address");
    }
    bytes *= dim;
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned()) {
    fail(path, where + " has no data_offsets [begin, end] of non-negative integers");
  }
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  if (e.begin > e.end || e.end > data_size) {
    fail(path, concat(where, " has data_offsets [", e.begin, ", ", e.end, "] outside the ", data_size,
                      "-byte data section (truncated or corrupt)"));
  }
  if (e.end - e.begin != bytes) {
    fail(path, concat(where, " holds ", e.end - e.begin, " bytes but its dtype and shape need ", bytes));
  }
  return e;
}

/// The tensors must tile the data section: sorted by offset, each starting where the previous ended.
void check_tiling(std::vector<Entry>& entries, uint64_t data_size, const std::string& path) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  for (const auto& e : entries) {
    if (e.begin != expected) {
      fail(path, concat("tensor '", e.name, "' starts at ", e.begin, " but the previous tensor ends at ", expected,
                        " (overlapping or gapped offsets)"));
    }
    expected = e.end;
  }
  if (expected != data_size) {
    fail(path, concat("the tensors cover ", expected, " bytes of a ", data_size, "-byte data section"));
  }
}

}  // namespace

Header parse(const uint8_t* data, size_t size, const std::string& path) {
  if (size < 8) fail(path, concat("is ", size, " bytes long, shorter than the 8-byte header length (truncated?)"));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];  // little-endian
  if (n > kMaxHeader) fail(path, concat("declares a header of ", n, " bytes, over the ", kMaxHeader, "-byte limit"));
  if (n > size - 8)
    fail(path, concat("declares a header of ", n, " bytes but only ", size - 8, " follow (truncated?)"));
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(data + 8, data + 8 + n);
  } catch (const nlohmann::json::exception& e) {
    fail(path, concat("header is not valid JSON: ", e.what()));
  }
  if (!json.is_object()) fail(path, "header is not a JSON object");

  Header header;
  header.data_start = 8 + n;
  const uint64_t data_size = size - header.data_start;
  for (auto& [name, value] : json.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(path, "__metadata__ is not an object");
      for (auto& [k, v] : value.items()) {
        if (!v.is_string()) fail(path, concat("__metadata__ value of '", k, "' is not a string"));
        header.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    header.entries.push_back(parse_entry(name, value, data_size, path));
  }
  check_tiling(header.entries, data_size, path);
  return header;
}

std::string serialize_header(const std::vector<Entry>& entries, const std::map<std::string, std::string>& metadata) {
  nlohmann::json json = nlohmann::json::object();
  if (!metadata.empty()) json["__metadata__"] = metadata;
  for (const auto& e : entries) {
    json[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  }
  std::string text = json.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

}  // namespace accelerate::detail::safetensors
