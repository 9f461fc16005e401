// The progress bar: plain lines when not a terminal, one redrawn line in a terminal.
#include <accelerate/accelerate.hpp>

#include <cstdio>
#include <gtest/gtest.h>

using namespace accelerate;

TEST(Progress, PlainLinesWhenNotATerminal) {
  ProcessState state(ProcessStateOptions{.cpu = true});
  std::FILE* out = std::tmpfile();
  {
    ProgressBar bar(state, 10, {.description = "train", .stream = out, .plain_interval_s = 1e9, .terminal = false});
    bar.update(5);
    bar.set_postfix({{"loss", 0.5}});
    const auto line = bar.render();
    EXPECT_NE(line.find("train: 50%|##########          | 5/10 ["), std::string::npos) << line;
    EXPECT_NE(line.find("it/s, loss=0.5]"), std::string::npos) << line;
    bar.update(5);
  }  // closing draws the final state once, as a plain line
  std::rewind(out);
  char buffer[512] = {};
  const auto n = std::fread(buffer, 1, sizeof buffer - 1, out);
  const std::string text(buffer, n);
  std::fclose(out);
  EXPECT_NE(text.find("100%|####################| 10/10"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos) << text;
}

TEST(Progress, RedrawsOneLineInATerminal) {
  ProcessState state(ProcessStateOptions{.cpu = true});
  std::FILE* out = std::tmpfile();
  {
    ProgressBar bar(state, 3, {.stream = out, .redraw_interval_s = 0, .terminal = true});
    for (int i = 0; i < 3; ++i) bar.update();
  }
  std::rewind(out);
  char buffer[1024] = {};
  const std::string text(buffer, std::fread(buffer, 1, sizeof buffer - 1, out));
  std::fclose(out);
  // Each draw returns to the line start and clears it; one newline at the end.
  EXPECT_GE(std::count(text.begin(), text.end(), '\r'), 3) << text;
  EXPECT_NE(text.find("\r\033[K100%|####################| 3/3"), std::string::npos) << text;
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
}
