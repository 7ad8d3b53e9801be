// Tests for tasks/progress.h.
//
//   ProgressFormat   format_duration / format_bytes at their unit boundaries, unknown durations
//   ProgressEta      eta_seconds: the average-rate arithmetic and every "unknown" case
//   ProgressLine     the exact bytes written in terminal and plain mode (throttling made deterministic
//                    with an interval of 0 or of a day), and terminal detection on a real pty
#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <optional>
#include <string>

#include "tasks/progress.h"

namespace {

using ssm::tasks::eta_seconds;
using ssm::tasks::format_bytes;
using ssm::tasks::format_duration;
using ssm::tasks::ProgressLine;

constexpr double kDay = 86400.0;  // an interval no test outlives

// An in-memory FILE*; take() returns what was written since the last take(). ProgressLine flushes
// after every write, which is when open_memstream publishes the bytes.
class MemoryFile {
 public:
  MemoryFile() : file_(open_memstream(&buffer_, &size_)) {}
  ~MemoryFile() {
    std::fclose(file_);
    std::free(buffer_);
  }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  std::FILE* get() const { return file_; }
  std::string take() {
    std::string fresh(buffer_ + taken_, size_ - taken_);
    taken_ = size_;
    return fresh;
  }

 private:
  char* buffer_ = nullptr;
  size_t size_ = 0;
  size_t taken_ = 0;
  std::FILE* file_;
};

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value, 1);
  }
  ~ScopedEnv() { old_ ? setenv(name_, old_->c_str(), 1) : unsetenv(name_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ProgressFormat, DurationUnits) {
  EXPECT_EQ(format_duration(0), "0s");
  EXPECT_EQ(format_duration(12), "12s");
  EXPECT_EQ(format_duration(59.4), "59s");
  EXPECT_EQ(format_duration(59.5), "1m00s");  // rounded to the second before picking the unit
  EXPECT_EQ(format_duration(60), "1m00s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3599), "59m59s");
  EXPECT_EQ(format_duration(3599.6), "1h00m");
  EXPECT_EQ(format_duration(3600 + 2 * 60 + 5), "1h02m");
  EXPECT_EQ(format_duration(100 * 3600 + 59 * 60 + 59), "100h59m");  // minutes are not rounded up
}

TEST(ProgressFormat, UnknownDurations) {
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_duration(std::nan("")), "?");
  EXPECT_EQ(format_duration(std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_duration(-std::numeric_limits<double>::infinity()), "?");
  EXPECT_EQ(format_duration(1e300), "?");
}

TEST(ProgressFormat, BytesUnits) {
  constexpr uint64_t KiB = 1024, MiB = KiB * KiB, GiB = MiB * KiB;
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(KiB), "1.0 KiB");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(20 * MiB), "20.0 MiB");
  EXPECT_EQ(format_bytes(static_cast<uint64_t>(1.9 * GiB)), "1.9 GiB");
  EXPECT_EQ(format_bytes(std::numeric_limits<uint64_t>::max()), "16.0 EiB");  // 2^64 B = 16 EiB
}

TEST(ProgressFormat, BytesNeverPrint1024OfAUnit) {
  // 1048524 B = 1023.949 KiB prints as such; one byte more would round to "1024.0 KiB": a MiB then.
  EXPECT_EQ(format_bytes(1048524), "1023.9 KiB");
  EXPECT_EQ(format_bytes(1048525), "1.0 MiB");
  EXPECT_EQ(format_bytes(1024 * 1024 - 1), "1.0 MiB");
}

TEST(ProgressEta, AverageRateSoFar) {
  EXPECT_DOUBLE_EQ(eta_seconds(25, 100, 10), 30.0);  // 2.5 units/s, 75 left
  EXPECT_DOUBLE_EQ(eta_seconds(1, 3, 0.5), 1.0);
  EXPECT_EQ(eta_seconds(100, 100, 5), 0.0);
  EXPECT_EQ(eta_seconds(150, 100, 5), 0.0);
}

TEST(ProgressEta, UnknownIsNan) {
  const double inf = std::numeric_limits<double>::infinity();
  EXPECT_TRUE(std::isnan(eta_seconds(0, 100, 5)));   // no rate yet
  EXPECT_TRUE(std::isnan(eta_seconds(50, 0, 5)));    // no total
  EXPECT_TRUE(std::isnan(eta_seconds(50, -1, 5)));
  EXPECT_TRUE(std::isnan(eta_seconds(50, 100, 0)));  // no time elapsed
  EXPECT_TRUE(std::isnan(eta_seconds(std::nan(""), 100, 5)));
  EXPECT_TRUE(std::isnan(eta_seconds(50, inf, 5)));
  EXPECT_TRUE(std::isnan(eta_seconds(50, 100, inf)));
}

TEST(ProgressLine, TerminalRedrawsInPlace) {
  MemoryFile out;
  ProgressLine line(out.get(), /*is_terminal=*/true, kDay, /*redraw_interval_s=*/0);
  EXPECT_TRUE(line.is_terminal());
  line.print("before");  // no status yet: nothing to clear or redraw
  EXPECT_EQ(out.take(), "before\n");
  line.update("a long status");
  EXPECT_EQ(out.take(), "\ra long status\x1b[K");
  line.update("short");
  EXPECT_EQ(out.take(), "\rshort\x1b[K");
  line.print("a log line");
  EXPECT_EQ(out.take(), "\ra log line\x1b[K\n\rshort\x1b[K");
  line.finish("done");
  EXPECT_EQ(out.take(), "\rdone\x1b[K\n");
  line.print("after");  // the status line was ended: nothing to redraw
  EXPECT_EQ(out.take(), "after\n");
}

TEST(ProgressLine, TerminalRedrawsAtMostOncePerInterval) {
  MemoryFile out;
  ProgressLine line(out.get(), /*is_terminal=*/true, 0, /*redraw_interval_s=*/kDay);
  line.update("1");
  EXPECT_EQ(out.take(), "\r1\x1b[K");
  line.update("2");
  line.update("3");
  EXPECT_EQ(out.take(), "");
  line.print("log");  // redraws the newest status, which was never shown
  EXPECT_EQ(out.take(), "\rlog\x1b[K\n\r3\x1b[K");
  line.finish("end");
  EXPECT_EQ(out.take(), "\rend\x1b[K\n");
  line.update("next");  // a new status line is drawn at once
  EXPECT_EQ(out.take(), "\rnext\x1b[K");
}

TEST(ProgressLine, PlainPrintsEveryUpdateWithZeroInterval) {
  MemoryFile out;
  ProgressLine line(out.get(), /*is_terminal=*/false, 0);
  EXPECT_FALSE(line.is_terminal());
  line.update("a");
  line.update("b");
  EXPECT_EQ(out.take(), "a\nb\n");
  line.print("log");
  EXPECT_EQ(out.take(), "log\n");
  line.finish("done");
  EXPECT_EQ(out.take(), "done\n");
}

TEST(ProgressLine, PlainSuppressesUpdatesWithinInterval) {
  MemoryFile out;
  ProgressLine line(out.get(), /*is_terminal=*/false, kDay);
  line.update("first");
  line.update("second");
  line.update("third");
  EXPECT_EQ(out.take(), "first\n");
  line.print("log");
  EXPECT_EQ(out.take(), "log\n");
  line.finish("done");
  EXPECT_EQ(out.take(), "done\n");
  line.update("again");  // the first update after finish() is printed
  line.update("suppressed");
  EXPECT_EQ(out.take(), "again\n");
}

TEST(ProgressLine, DetectsTerminals) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  EXPECT_FALSE(ProgressLine(file).is_terminal());
  std::fclose(file);

  const int master = posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0) << "no pseudo-terminal available";
  ASSERT_EQ(grantpt(master), 0);
  ASSERT_EQ(unlockpt(master), 0);
  const int slave_fd = open(ptsname(master), O_RDWR | O_NOCTTY);
  ASSERT_GE(slave_fd, 0);
  std::FILE* slave = fdopen(slave_fd, "w");
  ASSERT_NE(slave, nullptr);
  {
    ScopedEnv term("TERM", "xterm-256color");
    EXPECT_TRUE(ProgressLine(slave).is_terminal());
  }
  {
    ScopedEnv term("TERM", "dumb");
    EXPECT_FALSE(ProgressLine(slave).is_terminal());
  }
  std::fclose(slave);
  close(master);
}

}  // namespace
