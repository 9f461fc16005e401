// The checkpoint's registry of parts: a new kind of object is one entry, and save, checksum verification, load and
// the count in metadata.json follow from it; the one folder listing the Checkpointer numbers, rotates and resumes
// from.
#include <accelerate/accelerate.hpp>

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "detail/checkpoint_json.hpp"
#include "detail/checkpoint_parts.hpp"
#include "detail/checkpointer.hpp"
#include "error_of.hpp"
#include "temp_dir.hpp"

using namespace accelerate;
using accelerate::testing::error_of;
using accelerate::testing::TempDir;
namespace fs = std::filesystem;
namespace ad = accelerate::detail;

namespace {

/// A kind of object no checkpoint had before: a number, in notes.json.
ad::CheckpointPart notes_part(int64_t& value) {
  return {.kind = "notes",
          .count = 1,
          .save =
              [&value](const fs::path& dir) {
                ad::checkpoint::write_json(dir / "notes.json", {{"value", value}});
              },
          .verify = [](const fs::path& dir) { ad::checkpoint::read_json(dir / "notes.json"); },
          .load =
              [&value](const fs::path& dir, const ad::LoadContext&) {
                const auto file = dir / "notes.json";
                value = ad::checkpoint::field<int64_t>(ad::checkpoint::read_json(file), "value", file);
              }};
}

ProjectConfiguration automatic(const fs::path& dir) {
  ProjectConfiguration p;
  p.project_dir = dir.string();
  p.automatic_checkpoint_naming = true;
  return p;
}

}  // namespace

TEST(CheckpointParts, ANewPartIsSavedVerifiedLoadedAndCounted) {
  TempDir tmp{"accelerate_parts"};
  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  int64_t value = 41;
  ad::CheckpointParts parts{notes_part(value)};  // the one edit
  ad::Checkpointer checkpointer(state, automatic(tmp.path));
  const auto dir = checkpointer.save("", parts, {});

  std::ifstream meta(dir / "metadata.json");
  EXPECT_EQ(nlohmann::json::parse(meta).value("notes", -1), 1) << "the part's count is in metadata.json";
  std::ifstream sums(dir / "checksums.json");
  EXPECT_TRUE(nlohmann::json::parse(sums)["files"].contains("notes.json")) << "the part's file has a checksum";

  value = 0;
  EXPECT_EQ(checkpointer.load(dir.string(), parts, {}).folder, dir);
  EXPECT_EQ(value, 41) << "the part was loaded";

  // The registry, not a list in the loader, says what is expected: a kind the run does not have is not asked
  // for, and a count that differs is refused.
  EXPECT_EQ(error_of<CheckpointError>([&] { checkpointer.load(dir.string(), {}, {}); }), "");
  const auto two = error_of<CheckpointError>([&] {
    auto more = parts;
    more[0].count = 2;
    checkpointer.load(dir.string(), more, {});
  });
  EXPECT_NE(two.find("holds 1 notes but 2 are prepared"), std::string::npos) << two;

  // A changed byte in the part's file fails its checksum before anything is loaded.
  std::ofstream(dir / "notes.json") << R"({"value": 7})";
  value = 0;
  const auto damaged = error_of<CheckpointError>([&] { checkpointer.load(dir.string(), parts, {}); });
  EXPECT_NE(damaged.find("notes.json fails its checksum"), std::string::npos) << damaged;
  EXPECT_EQ(value, 0) << "nothing was loaded from a damaged checkpoint";
}

TEST(CheckpointParts, OneListingNumbersRotatesAndSkipsWhatIsNotACheckpoint) {
  TempDir tmp{"accelerate_parts"};
  const auto root = tmp.path / "checkpoints";
  fs::create_directories(root / "checkpoint_2");
  fs::create_directories(root / "checkpoint_10");
  std::ofstream(root / "checkpoint_10" / "COMPLETE") << "format_version 2\n";
  fs::create_directories(root / "checkpoint_3.tmp");
  fs::create_directories(root / "checkpoint_4.deleting");
  fs::create_directories(root / "checkpoint_x");
  std::vector<fs::path> interrupted;
  const auto found = ad::list_checkpoint_folders(root, &interrupted);
  ASSERT_EQ(found.size(), 2u);
  EXPECT_EQ(found[0].index, 2);  // by number, not by name (checkpoint_10 sorts before checkpoint_2 as text)
  EXPECT_FALSE(found[0].complete);
  EXPECT_EQ(found[1].index, 10);
  EXPECT_TRUE(found[1].complete);
  ASSERT_EQ(interrupted.size(), 1u);
  EXPECT_EQ(interrupted[0].filename(), "checkpoint_4.deleting");
  EXPECT_TRUE(ad::list_checkpoint_folders(tmp.path / "absent").empty());

  ProcessState state(EnvironmentVariables{}, ProcessStateOptions{.cpu = true});
  auto project = automatic(tmp.path);
  project.total_limit = 1;
  ad::Checkpointer checkpointer(state, project);
  EXPECT_EQ(checkpointer.latest(), root / "checkpoint_10");
  const auto next = checkpointer.save("", {}, {});
  EXPECT_EQ(next, root / "checkpoint_11") << "numbering continues after the highest folder, complete or not";
  EXPECT_FALSE(fs::exists(root / "checkpoint_10")) << "rotated to total_limit 1";
  EXPECT_FALSE(fs::exists(root / "checkpoint_4.deleting")) << "an interrupted rotation is finished";
  EXPECT_TRUE(fs::exists(root / "checkpoint_2")) << "an incomplete folder is not rotated";
}
