// safetensors: round trips for every dtype, and strict rejection of malformed files with the file and tensor named.
#include <accelerate/error.hpp>
#include <accelerate/safetensors.hpp>

#include <ATen/ATen.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

namespace st = accelerate::safetensors;
namespace fs = std::filesystem;

namespace {
std::string temp(const std::string& name) {
  return (fs::temp_directory_path() / ("accelerate_st_unit_" + std::to_string(::getpid()) + "_" + name)).string();
}

// A file made of a raw header and a data section.
std::string raw_file(const std::string& name, const std::string& header, const std::string& data,
                     std::optional<uint64_t> declared = std::nullopt) {
  const auto path = temp(name);
  std::ofstream out(path, std::ios::binary);
  uint64_t n = declared.value_or(header.size());
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
  return path;
}

void expect_rejected(const std::string& path, const std::string& needle) {
  try {
    st::File f(path);
    FAIL() << "accepted a malformed file; expected: " << needle;
  } catch (const accelerate::CheckpointError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(needle), std::string::npos) << what;
    EXPECT_NE(what.find(path), std::string::npos) << "the message must name the file: " << what;
  }
  fs::remove(path);
}
}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  st::TensorMap tensors;
  for (auto type : {at::kBool, at::kByte, at::kChar, at::kShort, at::kHalf, at::kBFloat16, at::kInt, at::kFloat,
                    at::kLong, at::kDouble}) {
    tensors[std::string("t_") + c10::toString(type)] = (at::randn({3, 5}) * 10).to(type);
  }
  tensors["odd.size.bytes"] = at::arange(7, at::kByte);  // followed by wider tensors in name order
  tensors["wide"] = at::randn({2, 3}, at::kDouble);
  tensors["strided"] = at::randn({4, 6}).t();  // written contiguous
  tensors["scalar"] = at::scalar_tensor(2.5, at::kFloat);
  tensors["empty"] = at::zeros({0, 3});
  const auto path = temp("roundtrip.safetensors");
  st::save_file(tensors, path, {{"step", "42"}});
  st::File file(path);
  EXPECT_EQ(file.metadata().at("step"), "42");
  EXPECT_EQ(file.keys().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    auto got = file.get(name);
    EXPECT_EQ(got.scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(at::equal(got, t.contiguous())) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data_ptr()) % got.element_size(), 0u) << name << " misaligned";
  }
  auto view = file.get("wide");
  view.fill_(0);  // copy-on-write: the file is unchanged
  EXPECT_TRUE(at::equal(st::load_file(path).at("wide"), tensors["wide"]));
  EXPECT_THROW(file.get("missing"), accelerate::CheckpointError);
  fs::remove(path);
}

TEST(Safetensors, TensorsOutliveTheFileObject) {
  const auto path = temp("lifetime.safetensors");
  st::save_file({{"a", at::arange(5, at::kFloat)}}, path);
  at::Tensor a;
  { a = st::File(path).get("a"); }
  fs::remove(path);
  EXPECT_TRUE(at::equal(a, at::arange(5, at::kFloat)));  // the mapping lives as long as the tensor
}

TEST(Safetensors, RejectsMalformedFiles) {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data(8, '\0');
  {
    const auto path = temp("short");
    std::ofstream(path) << "abc";
    expect_rejected(path, "shorter than the 8-byte header length");
  }
  expect_rejected(raw_file("beyond", ok, data, 4096), "only");
  expect_rejected(raw_file("huge", ok, data, uint64_t{1} << 40), "over the");
  expect_rejected(raw_file("json", "{\"a\": [", data), "not valid JSON");
  expect_rejected(raw_file("array", "[1,2]", ""), "not a JSON object");
  expect_rejected(raw_file("dtype", R"({"a":{"dtype":"F12","shape":[2],"data_offsets":[0,8]}})", data),
                  "tensor 'a' has unknown dtype 'F12'");
  expect_rejected(raw_file("range", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", data),
                  "outside the 8-byte data section");
  expect_rejected(raw_file("size", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data),
                  "holds 8 bytes but its dtype and shape need 12");
  expect_rejected(raw_file("negative", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data),
                  "non-negative");
  expect_rejected(raw_file("overlap",
                           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           data),
                  "overlapping or gapped");
  expect_rejected(raw_file("gap", R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", data),
                  "overlapping or gapped");
  expect_rejected(raw_file("tail", ok, data + "junk"), "cover 8 bytes of a 12-byte data section");
  expect_rejected(raw_file("meta", R"({"__metadata__":{"n":1}})", ""), "is not a string");
  expect_rejected(
      raw_file("overflow", R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", data),
      "too large");
  EXPECT_THROW(st::File("/nonexistent/model.safetensors"), accelerate::CheckpointError);
}

TEST(Safetensors, WriteFailureIsReported) {
  EXPECT_THROW(st::save_file({{"a", at::ones({2})}}, "/nonexistent/dir/model.safetensors"),
               accelerate::CheckpointError);
  if (fs::exists("/dev/full")) {  // "no space left on device" on every write
    try {
      st::save_file({{"a", at::ones({1 << 20})}}, "/dev/full");
      FAIL() << "a full disk was not reported";
    } catch (const accelerate::CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find("/dev/full"), std::string::npos) << e.what();
    }
  }
}
