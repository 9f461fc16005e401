// Internal: tensors saved in pieces, one file per rank, as ZeRO stage 3's save_state writes them (each rank its own
// shards, in parallel, none gathering the model), and read back at any world size: the role of torch's
// distributed checkpoint (DCP) and DeepSpeed's per-rank ZeRO files, with safetensors files.
//
//   <stem>.pieces.json            {"world_size": W, "save_id": id} (the main process)
//   <stem>.rank_<r>.safetensors   rank r's pieces: for each tensor, one flat run of elements of it, with its full
//                                 shape and first element in the header's "pieces" metadata, and its rank, the
//                                 world size and the save's id (files of two saves are never mixed)
//
// A reader maps every file and reads any run of a tensor's flat elements, so a process at another world size or
// stage reads only the elements it keeps (the pages it touches).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <accelerate/safetensors.hpp>

namespace accelerate::detail {

/// Tensors by name, read whole or as a run of their flat elements: a checkpoint's whole tensors or tensors in pieces.
class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual std::vector<std::string> names() const = 0;
  virtual bool contains(const std::string& name) const = 0;
  virtual std::vector<int64_t> shape(const std::string& name) const = 0;
  virtual c10::ScalarType dtype(const std::string& name) const = 0;
  /// Elements [begin, begin + length) of the tensor's flat (row-major) view, 1-D, of its dtype on the CPU. May
  /// view a mapped file: copy it before the source is gone.
  virtual at::Tensor read(const std::string& name, int64_t begin, int64_t length) const = 0;
  /// The whole tensor, in its shape.
  at::Tensor read_whole(const std::string& name) const;
};

/// Whole tensors (a safetensors file's, a map's).
class WholeTensors final : public TensorSource {
 public:
  explicit WholeTensors(safetensors::TensorMap tensors) : tensors_(std::move(tensors)) {}
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override { return tensors_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) const override;
  c10::ScalarType dtype(const std::string& name) const override;
  at::Tensor read(const std::string& name, int64_t begin, int64_t length) const override;

 private:
  safetensors::TensorMap tensors_;
};

/// One rank's piece of a tensor: elements [offset, offset + values.numel()) of the flat view of a tensor of
/// `shape`. `values` may have any shape; it is written flat.
struct TensorPiece {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0;
  at::Tensor values;
};

/// File names of the layout above.
std::string pieces_index_file(const std::string& stem);
std::string pieces_file(const std::string& stem, int rank);

/// Which save wrote a set of pieces: rank `rank` of `world_size`, in the save `save_id` (the same on every rank).
struct PiecesWriter {
  int rank = 0;
  int world_size = 1;
  std::string save_id;
};

/// Writes this rank's pieces into `dir` (every rank, each its own file; fsync'd). At most one piece per tensor
/// per rank. Throws CheckpointError on a failed write.
void write_pieces(const std::filesystem::path& dir, const std::string& stem, const PiecesWriter& writer,
                  const std::vector<TensorPiece>& pieces);
/// The index (the main process).
void write_pieces_index(const std::filesystem::path& dir, const std::string& stem, const PiecesWriter& writer);
/// Whether `dir` holds tensors saved in pieces under `stem`.
bool has_pieces(const std::filesystem::path& dir, const std::string& stem);

/// Every rank's pieces of `stem` in `dir`, mapped. The constructor checks what a load needs: the index, each
/// rank's file (a missing one is named with its rank and the fix) and that it is that rank's of the same save,
/// and that each tensor's pieces agree on shape and dtype and cover it exactly once; CheckpointError naming the
/// file otherwise.
class PieceReader final : public TensorSource {
 public:
  PieceReader(const std::filesystem::path& dir, const std::string& stem);
  ~PieceReader() override;
  int world_size() const { return static_cast<int>(files_.size()); }
  std::vector<std::string> names() const override;
  bool contains(const std::string& name) const override { return tensors_.count(name) > 0; }
  std::vector<int64_t> shape(const std::string& name) const override;
  c10::ScalarType dtype(const std::string& name) const override;
  /// Copies the run from the pieces that hold it (only those pages of the mapped files are read).
  at::Tensor read(const std::string& name, int64_t begin, int64_t length) const override;

 private:
  struct Piece {
    size_t file = 0;
    int64_t offset = 0, numel = 0;
  };
  struct Entry {
    std::vector<int64_t> shape;
    c10::ScalarType dtype{};
    std::vector<Piece> pieces;  // by offset
  };
  const Entry& entry(const std::string& name) const;
  /// Maps rank r's file and adds its pieces, checking that it is that rank's of this save.
  void add_file(const std::filesystem::path& dir, const std::string& stem, int r, int world,
                const std::string& save_id);
  std::vector<std::unique_ptr<safetensors::File>> files_;
  std::vector<std::string> file_names_;
  std::map<std::string, Entry> tensors_;
};

}  // namespace accelerate::detail
