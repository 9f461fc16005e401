// Batches of named tensors: fields, data/target, apply, send_to_device; collation (default and padding).
#include <accelerate/accelerate.hpp>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

using namespace accelerate;

TEST(Batch, NamedFieldsAndTheDataTargetPair) {
  Batch pair(at::ones({2}), at::zeros({2}));
  EXPECT_EQ(pair.names(), (std::vector<std::string>{"data", "target"}));
  EXPECT_TRUE(at::equal(pair["data"], pair.data));
  Batch named{{"labels", at::ones({3})}, {"input_ids", at::arange(3)}};
  EXPECT_EQ(named.names(), (std::vector<std::string>{"input_ids", "labels"}));  // name order on every rank
  EXPECT_FALSE(named.data.defined());
  try {
    named.at("attention_mask");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no field 'attention_mask'; its fields are: input_ids, labels"),
              std::string::npos)
        << e.what();
  }
  auto doubled = apply(named, [](const at::Tensor& t) { return t * 2; });
  EXPECT_TRUE(at::equal(doubled.at("input_ids"), at::arange(3) * 2));
  auto moved = send_to_device(named, c10::Device(c10::kCPU));
  EXPECT_EQ(moved.names(), named.names());
}

TEST(Collate, DefaultStacksEachFieldAndNamesAMismatch) {
  std::vector<Batch> samples = {{{"x", at::ones({2})}, {"y", at::scalar_tensor(1)}},
                                {{"x", at::zeros({2})}, {"y", at::scalar_tensor(0)}}};
  auto b = default_collate(samples);
  EXPECT_EQ(b.at("x").sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(b.at("y").sizes(), (std::vector<int64_t>{2}));
  samples[1]["x"] = at::zeros({3});
  try {
    default_collate(samples);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("field 'x' has shape [2] in sample 0 but [3] in sample 1"), std::string::npos)
        << e.what();
  }
}

TEST(Collate, PadsToTheLongestAndBuildsTheMask) {
  std::vector<Batch> samples = {{{"input_ids", at::tensor({5, 6, 7}, at::kLong)}, {"labels", at::tensor({1, 2, 3})}},
                                {{"input_ids", at::tensor({8}, at::kLong)}, {"labels", at::tensor({4})}}};
  auto b = pad_collate({.pad_values = {{"labels", -100}}, .pad_to_multiple_of = 4})(samples);
  EXPECT_TRUE(at::equal(b.at("input_ids"), at::tensor({5, 6, 7, 0, 8, 0, 0, 0}, at::kLong).reshape({2, 4})));
  EXPECT_TRUE(at::equal(b.at("labels"), at::tensor({1, 2, 3, -100, 4, -100, -100, -100}).reshape({2, 4})));
  EXPECT_TRUE(at::equal(b.at("attention_mask"), at::tensor({1, 1, 1, 0, 1, 0, 0, 0}, at::kLong).reshape({2, 4})));
  auto left = pad_collate({.pad_left = true})(samples);
  EXPECT_TRUE(at::equal(left.at("input_ids")[1], at::tensor({0, 0, 8}, at::kLong)));
  EXPECT_TRUE(at::equal(left.at("attention_mask")[1], at::tensor({0, 0, 1}, at::kLong)));
}

TEST(Collate, PadToAMultipleKeepsScalarsAndFixedFields) {
  std::vector<Batch> samples = {
      {{"input_ids", at::tensor({5, 6, 7}, at::kLong)}, {"score", at::scalar_tensor(1.0)}, {"feature", at::ones({2})}},
      {{"input_ids", at::tensor({8}, at::kLong)}, {"score", at::scalar_tensor(0.0)}, {"feature", at::zeros({2})}}};
  auto b = pad_collate({.pad_to_multiple_of = 4})(samples);
  EXPECT_EQ(b.at("input_ids").sizes(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(b.at("score").sizes(), (std::vector<int64_t>{2}));
  EXPECT_EQ(b.at("feature").sizes(), (std::vector<int64_t>{2, 2}));
}

TEST(Collate, ASamplesOwnAttentionMaskIsKept) {
  std::vector<Batch> samples = {
      {{"input_ids", at::tensor({5, 6}, at::kLong)}, {"attention_mask", at::tensor({1, 0}, at::kLong)}},
      {{"input_ids", at::tensor({8}, at::kLong)}, {"attention_mask", at::tensor({1}, at::kLong)}}};
  auto b = pad_collate()(samples);
  EXPECT_TRUE(at::equal(b.at("attention_mask"), at::tensor({1, 0, 1, 0}, at::kLong).reshape({2, 2})));
}

namespace {
/// `collate(samples)` throws a ConfigError whose message contains `expected`.
void refused(const Collate& collate, const std::vector<Batch>& samples, const std::string& expected) {
  try {
    collate(samples);
    ADD_FAILURE() << "no error, expected: " << expected;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}
}  // namespace

// Only the sequence length may differ between samples: another trailing shape or another dtype is refused with
// the field and the sample named (at::stack and copy_ would broadcast or convert silently).
TEST(Collate, MismatchedTrailingDimsOrDtypesAreRefused) {
  const std::vector<Batch> trailing = {{{"x", at::ones({3, 2})}}, {{"x", at::ones({1, 1})}}};
  refused(pad_collate({.mask_from = "x"}), trailing, "field 'x' has shape [3, 2] in sample 0 but [1, 1] in sample 1");
  const std::vector<Batch> dtypes = {{{"input_ids", at::tensor({1, 2}, at::kLong)}},
                                     {{"input_ids", at::tensor({1.5}, at::kFloat)}}};
  refused(pad_collate(), dtypes, "field 'input_ids' is Long in sample 0 but Float in sample 1");
  const std::vector<Batch> stacked = {{{"y", at::scalar_tensor(1, at::kLong)}},
                                      {{"y", at::scalar_tensor(0.5, at::kDouble)}}};
  refused(default_collate, stacked, "field 'y' is Long in sample 0 but Double in sample 1");
}

// Fields aligned with the mask field (labels, a mask the samples bring) are padded with it to one length, also
// when every sample has the same length and pad_to_multiple_of rounds it up (a batch of one sample, say).
TEST(Collate, FieldsAlignedWithTheSequencePadTogether) {
  std::vector<Batch> samples = {{{"input_ids", at::arange(5, at::kLong)},
                                 {"labels", at::arange(5, at::kLong)},
                                 {"score", at::scalar_tensor(1.0)}},
                                {{"input_ids", at::arange(5, at::kLong)},
                                 {"labels", at::arange(5, at::kLong)},
                                 {"score", at::scalar_tensor(2.0)}}};
  auto b = pad_collate({.pad_values = {{"labels", -100}}, .pad_to_multiple_of = 8})(samples);
  EXPECT_EQ(b.at("input_ids").sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(b.at("labels").sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(b.at("labels")[0][7].item<int64_t>(), -100);
  EXPECT_EQ(b.at("attention_mask").sizes(), (std::vector<int64_t>{2, 8}));
  EXPECT_EQ(b.at("score").sizes(), (std::vector<int64_t>{2}));
}

TEST(Collate, MistakesInTheFieldsAreNamed) {
  const std::vector<Batch> ids = {{{"input_ids", at::arange(2)}}, {{"input_ids", at::arange(3)}}};
  refused(pad_collate({.pad_values = {{"label", -100}}}), ids, "pad_values names 'label', which the samples do not");
  const std::vector<Batch> extra = {{{"input_ids", at::arange(2)}},
                                    {{"input_ids", at::arange(3)}, {"labels", at::arange(3)}}};
  refused(pad_collate(), extra, "sample 1 has the fields input_ids, labels but sample 0 has input_ids");
}
