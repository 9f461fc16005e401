// Tensors saved in pieces, one file per rank (detail/tensor_pieces.hpp).
#include "detail/tensor_pieces.hpp"

#include <accelerate/error.hpp>

#include <ATen/ATen.h>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "detail/checkpoint_json.hpp"

namespace accelerate::detail {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

/// The flat run [begin, begin + length) of a tensor of `numel` elements exists; CheckpointError otherwise.
void check_run(const std::string& name, int64_t numel, int64_t begin, int64_t length) {
  ACCELERATE_CHECK(begin >= 0 && length >= 0 && begin + length <= numel, CheckpointError, "tensor '", name, "' has ",
                   numel, " elements; elements [", begin, ", ", begin + length, ") were asked for.");
}

}  // namespace

at::Tensor TensorSource::read_whole(const std::string& name) const {
  const auto s = shape(name);
  return read(name, 0, numel_of(s)).view(s);
}

std::vector<std::string> WholeTensors::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : tensors_) out.push_back(name);
  return out;
}

std::vector<int64_t> WholeTensors::shape(const std::string& name) const { return tensors_.at(name).sizes().vec(); }

c10::ScalarType WholeTensors::dtype(const std::string& name) const { return tensors_.at(name).scalar_type(); }

at::Tensor WholeTensors::read(const std::string& name, int64_t begin, int64_t length) const {
  const auto& t = tensors_.at(name);
  check_run(name, t.numel(), begin, length);
  return t.reshape(-1).narrow(0, begin, length);
}

std::string pieces_index_file(const std::string& stem) { return stem + ".pieces.json"; }
std::string pieces_file(const std::string& stem, int rank) {
  return stem + ".rank_" + std::to_string(rank) + ".safetensors";
}

void write_pieces(const fs::path& dir, const std::string& stem, const PiecesWriter& writer,
                  const std::vector<TensorPiece>& pieces) {
  safetensors::TensorMap tensors;
  json layout = json::object();
  for (const auto& piece : pieces) {
    if (piece.values.numel() == 0 && numel_of(piece.shape) > 0) continue;  // a rank that keeps none of it
    ACCELERATE_CHECK(!tensors.count(piece.name), StateError, "write_pieces: two pieces of '", piece.name,
                     "' on one rank.");
    tensors[piece.name] = piece.values.reshape(-1);
    layout[piece.name] = {{"shape", piece.shape}, {"offset", piece.offset}};
  }
  checkpoint::save_tensors(dir / pieces_file(stem, writer.rank), tensors,
                           {{"format", "accelerate-cpp pieces"},
                            {"rank", std::to_string(writer.rank)},
                            {"world_size", std::to_string(writer.world_size)},
                            {"save_id", writer.save_id},
                            {"pieces", layout.dump()}});
}

void write_pieces_index(const fs::path& dir, const std::string& stem, const PiecesWriter& writer) {
  checkpoint::write_json(dir / pieces_index_file(stem),
                         json{{"world_size", writer.world_size}, {"save_id", writer.save_id}});
}

bool has_pieces(const fs::path& dir, const std::string& stem) { return fs::exists(dir / pieces_index_file(stem)); }

void PieceReader::add_file(const fs::path& dir, const std::string& stem, int r, int world, const std::string& save_id) {
  const auto path = dir / pieces_file(stem, r);
  ACCELERATE_CHECK(fs::exists(path), CheckpointError, "checkpoint ", dir.string(), " is missing ",
                   path.filename().string(), ", rank ", r, "'s shards (of ", world,
                   " ranks; at ZeRO stage 3 each process writes its own). It was deleted, or rank ", r,
                   " wrote it into a folder of its own machine: save to a folder every machine shares (or set "
                   "FsdpOptions::sharded_state_dict = false to have the main process write whole files). Resume "
                   "from another checkpoint.");
  files_.push_back(std::make_unique<safetensors::File>(path.string(), /*copy_on_write=*/false));  // read() copies
  file_names_.push_back(path.filename().string());
  const auto& meta = files_.back()->metadata();
  auto said = [&](const char* key) { return meta.count(key) ? meta.at(key) : std::string("none"); };
  ACCELERATE_CHECK(
      said("rank") == std::to_string(r) && said("world_size") == std::to_string(world) && said("save_id") == save_id,
      CheckpointError, "checkpoint file ", path.string(), " is not rank ", r, "'s shards of this save (", world,
      " ranks, save ", save_id, ") but of rank ", said("rank"), " of ", said("world_size"), " in save ",
      said("save_id"), ": files of different checkpoints were mixed. Resume from another checkpoint.");
  const auto layout = meta.count("pieces") ? json::parse(meta.at("pieces"), nullptr, false) : json();
  ACCELERATE_CHECK(layout.is_object(), CheckpointError, "checkpoint file ", path.string(),
                   " has no valid 'pieces' metadata; it is damaged or not a shard file.");
  for (const auto& name : files_.back()->keys()) {
    ACCELERATE_CHECK(layout.contains(name), CheckpointError, "checkpoint file ", path.string(), ": tensor '", name,
                     "' has no place in its 'pieces' metadata; the file is damaged.");
    const auto values = files_.back()->get(name);
    std::vector<int64_t> shape;
    int64_t offset = -1;
    try {
      shape = layout[name].value("shape", shape);
      offset = layout[name].value("offset", offset);
    } catch (const json::exception&) {
      // left invalid: refused below as pieces that do not tile the tensor
    }
    auto& e = tensors_[name];
    ACCELERATE_CHECK(e.pieces.empty() || (e.shape == shape && e.dtype == values.scalar_type()), CheckpointError,
                     "checkpoint file ", path.string(), ": tensor '", name, "' is ", values.scalar_type(),
                     c10::IntArrayRef(shape), " but ", file_names_[e.pieces.front().file], " has it as ", e.dtype,
                     c10::IntArrayRef(e.shape), "; the files are from different checkpoints.");
    e.shape = shape;
    e.dtype = values.scalar_type();
    e.pieces.push_back({files_.size() - 1, offset, values.numel()});
  }
}

PieceReader::PieceReader(const fs::path& dir, const std::string& stem) {
  const auto index_path = dir / pieces_index_file(stem);
  const auto index = checkpoint::read_json(index_path);
  const int world = checkpoint::field<int>(index, "world_size", index_path, 0);
  ACCELERATE_CHECK(world >= 1, CheckpointError, "checkpoint file ", index_path.string(),
                   " is damaged: its world_size must be at least 1. Resume from another checkpoint.");
  const auto save_id = checkpoint::field<std::string>(index, "save_id", index_path);
  for (int r = 0; r < world; ++r) add_file(dir, stem, r, world, save_id);
  for (auto& [name, e] : tensors_) {
    std::sort(e.pieces.begin(), e.pieces.end(), [](const auto& a, const auto& b) { return a.offset < b.offset; });
    int64_t next = 0;  // the pieces must tile [0, numel) exactly
    for (const auto& p : e.pieces) {
      ACCELERATE_CHECK(p.offset == next, CheckpointError, "checkpoint ", dir.string(), ": the pieces of '", name,
                       "' in the ", stem, ".rank_*.safetensors files ", p.offset < next ? "overlap" : "leave a gap",
                       " at element ", std::min(p.offset, next), " (", file_names_[p.file],
                       "); the files are from different checkpoints or damaged.");
      next += p.numel;
    }
    ACCELERATE_CHECK(next == numel_of(e.shape), CheckpointError, "checkpoint ", dir.string(), ": the pieces of '", name,
                     "' hold ", next, " of its ", numel_of(e.shape), " elements; the files are damaged.");
  }
}

PieceReader::~PieceReader() = default;

const PieceReader::Entry& PieceReader::entry(const std::string& name) const {
  const auto it = tensors_.find(name);
  ACCELERATE_CHECK(it != tensors_.end(), CheckpointError, "the checkpoint's shard files hold no tensor '", name, "'.");
  return it->second;
}

std::vector<std::string> PieceReader::names() const {
  std::vector<std::string> out;
  for (const auto& [name, _] : tensors_) out.push_back(name);
  return out;
}

std::vector<int64_t> PieceReader::shape(const std::string& name) const { return entry(name).shape; }

c10::ScalarType PieceReader::dtype(const std::string& name) const { return entry(name).dtype; }

at::Tensor PieceReader::read(const std::string& name, int64_t begin, int64_t length) const {
  const auto& e = entry(name);
  check_run(name, numel_of(e.shape), begin, length);
  auto out = at::empty({length}, at::TensorOptions().dtype(e.dtype));
  for (const auto& p : e.pieces) {
    const int64_t lo = std::max(begin, p.offset), hi = std::min(begin + length, p.offset + p.numel);
    if (hi <= lo) continue;
    const auto source = files_[p.file]->get(name);
    out.narrow(0, lo - begin, hi - lo).copy_(source.narrow(0, lo - p.offset, hi - lo));
  }
  return out;
}

}  // namespace accelerate::detail
