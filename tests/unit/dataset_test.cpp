// TokenDataset against hand-made token files (nanoGPT's raw uint16, llm.c's header, uint32), and its errors.
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

using namespace accelerate;
namespace fs = std::filesystem;

namespace {
template <class T>
fs::path token_file(const std::string& name, const std::vector<T>& tokens, bool llmc_header = false) {
  const auto path = fs::temp_directory_path() / ("accelerate_tokens_" + std::to_string(::getpid()) + name);
  std::ofstream out(path, std::ios::binary);
  if (llmc_header) {
    int32_t header[256] = {20240520, 1, static_cast<int32_t>(tokens.size())};
    out.write(reinterpret_cast<const char*>(header), sizeof header);
  }
  out.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * sizeof(T)));
  return path;
}
}  // namespace

TEST(TokenDataset, WindowsOfBlockSizePlusOne) {
  std::vector<uint16_t> tokens(23);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(60000 + i);  // above int16's range
  for (bool header : {false, true}) {
    const auto path = token_file("w" + std::to_string(header), tokens, header);
    TokenDataset ds(path.string(), {.block_size = 4, .stride = 3});
    EXPECT_EQ(ds.num_tokens(), 23);
    EXPECT_EQ(ds.size(), (23 - 5) / 3 + 1);  // windows of 5 tokens starting every 3
    auto s = ds.get(2);
    EXPECT_TRUE(at::equal(s.at("input_ids"), at::arange(60006, 60010, at::kLong)));
    EXPECT_TRUE(at::equal(s.at("labels"), at::arange(60007, 60011, at::kLong)));
    auto b = ds.get_batch({6, 0});
    EXPECT_TRUE(at::equal(b.at("input_ids")[0], at::arange(60018, 60022, at::kLong)));
    EXPECT_TRUE(at::equal(b.at("labels")[1], at::arange(60001, 60005, at::kLong)));
    fs::remove(path);
  }
  const auto wide = token_file<uint32_t>("u32", {70000, 70001, 70002, 70003});
  TokenDataset ds32(wide.string(), {.block_size = 3, .token_type = TokenType::UInt32});
  EXPECT_TRUE(at::equal(ds32.get(0).at("labels"), at::tensor({70001, 70002, 70003}, at::kLong)));
  fs::remove(wide);
}

TEST(TokenDataset, BadFilesAreCheckpointErrorsNamingTheFile) {
  auto expect_error = [](const std::string& path, TokenDatasetOptions o, const std::string& needle) {
    try {
      TokenDataset ds(path, o);
      FAIL() << needle;
    } catch (const CheckpointError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  };
  expect_error("/nonexistent/train.bin", {}, "cannot open");
  const auto shorter = token_file<uint16_t>("short", {1, 2, 3});
  expect_error(shorter.string(), {.block_size = 4}, "fewer than one window");
  const auto odd = token_file<uint8_t>("odd", {1, 2, 3});
  expect_error(odd.string(), {.block_size = 1}, "not a whole number of 2-byte tokens");
  std::vector<uint16_t> tokens(10, 1);
  const auto lying = token_file("lying", tokens, true);
  fs::resize_file(lying, fs::file_size(lying) - 4);
  expect_error(lying.string(), {.block_size = 2}, "llm.c header announcing 10 tokens");
  for (const auto& p : {shorter, odd, lying}) fs::remove(p);
}

TEST(TokenDataset, InputsAndLabelsShareNoMemory) {
  std::vector<uint16_t> tokens(40);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<uint16_t>(i);
  const auto path = token_file("own", tokens);
  TokenDataset ds(path.string(), {.block_size = 8});
  auto b = ds.get_batch({0, 2});
  auto labels = b.at("labels");
  EXPECT_NO_THROW(labels.view(-1));  // nanoGPT's loss views the labels
  labels.fill_(-100);
  EXPECT_EQ(b.at("input_ids")[0][1].item<int64_t>(), 1) << "filling labels changed input_ids";
  fs::remove(path);
}
