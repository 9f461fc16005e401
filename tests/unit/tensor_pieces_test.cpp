// Tensors saved in pieces, one file per rank (ZeRO stage 3's save_state): any run of a tensor's flat elements is
// read back from the pieces that hold it, at any other split; missing files and pieces that do not tile a tensor
// are refused by name.
#include <accelerate/accelerate.hpp>

#include <filesystem>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "detail/tensor_pieces.hpp"
#include "error_of.hpp"
#include "temp_dir.hpp"

using namespace accelerate;
using accelerate::testing::error_of;
using accelerate::testing::TempDir;
namespace fs = std::filesystem;
namespace ad = accelerate::detail;

namespace {

/// `t` (any shape) cut into `world` equal runs of its flat elements (the last shorter), one per rank, as ZeRO's
/// shards are; the buffer `b` whole in rank 0's file only.
void save_split(const fs::path& dir, const torch::Tensor& t, const torch::Tensor& b, int world) {
  const int64_t n = t.numel(), shard = (n + world - 1) / world;
  for (int r = 0; r < world; ++r) {
    const int64_t lo = std::min(n, r * shard), hi = std::min(n, lo + shard);
    std::vector<ad::TensorPiece> pieces{{"w", t.sizes().vec(), lo, t.reshape(-1).narrow(0, lo, hi - lo)}};
    if (r == 0) pieces.push_back({"b", b.sizes().vec(), 0, b});
    ad::write_pieces(dir, "model", {r, world, "save-a"}, pieces);
  }
  ad::write_pieces_index(dir, "model", {0, world, "save-a"});
}

}  // namespace

TEST(TensorPieces, AnyRunReadsBackAcrossPieces) {
  TempDir tmp;
  const auto w = torch::arange(7 * 5, torch::kFloat).reshape({7, 5});
  const auto b = torch::tensor({3.5});
  save_split(tmp.path, w, b, 3);  // runs of 12, 12, 11
  ASSERT_TRUE(ad::has_pieces(tmp.path, "model"));
  const ad::PieceReader reader(tmp.path, "model");
  EXPECT_EQ(reader.world_size(), 3);
  EXPECT_EQ(reader.names(), (std::vector<std::string>{"b", "w"}));
  EXPECT_EQ(reader.shape("w"), (std::vector<int64_t>{7, 5}));
  EXPECT_EQ(reader.dtype("w"), torch::kFloat);
  EXPECT_TRUE(torch::equal(reader.read_whole("w"), w));
  EXPECT_TRUE(torch::equal(reader.read_whole("b"), b));
  // Runs that another world size's shards would take: inside one piece, across two, across all three.
  for (auto [begin, length] : std::vector<std::pair<int64_t, int64_t>>{{0, 5}, {10, 4}, {11, 14}, {2, 33}, {35, 0}}) {
    EXPECT_TRUE(torch::equal(reader.read("w", begin, length), w.reshape(-1).narrow(0, begin, length)))
        << begin << "+" << length;
  }
  EXPECT_NE(error_of<CheckpointError>([&] { reader.read("w", 30, 6); }).find("has 35 elements"), std::string::npos);
}

TEST(TensorPieces, AMissingRanksFileIsNamed) {
  TempDir tmp;
  save_split(tmp.path, torch::ones({4, 4}), torch::zeros({1}), 2);
  fs::remove(tmp.path / "model.rank_1.safetensors");
  const auto error = error_of<CheckpointError>([&] { ad::PieceReader(tmp.path, "model"); });
  EXPECT_NE(error.find("is missing model.rank_1.safetensors, rank 1's shards (of 2 ranks"), std::string::npos) << error;
}

TEST(TensorPieces, PiecesThatDoNotTileATensorAreRefused) {
  TempDir tmp;
  const auto w = torch::ones({10});
  // Rank 1's piece starts one element late (a wrong shard boundary): a gap.
  ad::write_pieces(tmp.path, "model", {0, 2, "s"}, {{"w", {10}, 0, w.narrow(0, 0, 5)}});
  ad::write_pieces(tmp.path, "model", {1, 2, "s"}, {{"w", {10}, 6, w.narrow(0, 6, 4)}});
  ad::write_pieces_index(tmp.path, "model", {0, 2, "s"});
  auto error = error_of<CheckpointError>([&] { ad::PieceReader(tmp.path, "model"); });
  EXPECT_NE(error.find("the pieces of 'w' in the model.rank_*.safetensors files leave a gap at element 5"),
            std::string::npos)
      << error;
  // The same tensor with another shape.
  ad::write_pieces(tmp.path, "model", {1, 2, "s"}, {{"w", {2, 5}, 5, w.narrow(0, 5, 5)}});
  error = error_of<CheckpointError>([&] { ad::PieceReader(tmp.path, "model"); });
  EXPECT_NE(error.find("the files are from different checkpoints"), std::string::npos) << error;
}

TEST(TensorPieces, FilesOfAnotherSaveAreRefused) {
  TempDir tmp;
  const auto w = torch::arange(10, torch::kFloat);
  ad::write_pieces(tmp.path, "model", {0, 2, "s1"}, {{"w", {10}, 0, w.narrow(0, 0, 5)}});
  ad::write_pieces(tmp.path, "model", {1, 2, "s1"}, {{"w", {10}, 5, w.narrow(0, 5, 5)}});
  ad::write_pieces_index(tmp.path, "model", {0, 2, "s1"});
  EXPECT_TRUE(torch::equal(ad::PieceReader(tmp.path, "model").read_whole("w"), w));
  // Rank 1's file of another save that tiles the tensor just as well (the same world size).
  ad::write_pieces(tmp.path, "model", {1, 2, "s2"}, {{"w", {10}, 5, w.narrow(0, 5, 5) + 1}});
  auto error = error_of<CheckpointError>([&] { ad::PieceReader(tmp.path, "model"); });
  EXPECT_NE(error.find("model.rank_1.safetensors is not rank 1's shards of this save (2 ranks, save s1) but of rank 1 "
                       "of 2 in save s2"),
            std::string::npos)
      << error;
  // Another rank's file under this rank's name.
  ad::write_pieces(tmp.path, "model", {0, 2, "s1"}, {{"w", {10}, 5, w.narrow(0, 5, 5)}});
  fs::rename(tmp.path / "model.rank_0.safetensors", tmp.path / "model.rank_1.safetensors");
  ad::write_pieces(tmp.path, "model", {0, 2, "s1"}, {{"w", {10}, 0, w.narrow(0, 0, 5)}});
  error = error_of<CheckpointError>([&] { ad::PieceReader(tmp.path, "model"); });
  EXPECT_NE(error.find("is not rank 1's shards of this save (2 ranks, save s1) but of rank 0 of 2 in save s1"),
            std::string::npos)
      << error;
}
