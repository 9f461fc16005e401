// version() is what CMake's package says and what CHANGELOG.md's newest release says, so a release cannot ship
// with a changelog that forgot it.
#include <accelerate/version.hpp>

#include <fstream>
#include <gtest/gtest.h>
#include <regex>
#include <string>

TEST(Version, MatchesTheCMakeProjectAndTheChangelog) {
  EXPECT_STREQ(accelerate::version(), ACCELERATE_PROJECT_VERSION);
  std::ifstream changelog(ACCELERATE_SOURCE_DIR "/CHANGELOG.md");
  ASSERT_TRUE(changelog.good()) << "CHANGELOG.md is missing";
  const std::regex release(R"(^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d{2}-\d{2}$)");
  std::string line;
  std::smatch m;
  while (std::getline(changelog, line) && !std::regex_match(line, m, release)) {
  }
  ASSERT_FALSE(m.empty()) << "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' release heading";
  EXPECT_EQ(m[1].str(), accelerate::version()) << "the newest release in CHANGELOG.md is not version()";
}
