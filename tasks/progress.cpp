// tasks/progress.cpp — see progress.h.
#include "tasks/progress.h"

#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace ssm::tasks {

std::string format_duration(double seconds) {
  constexpr double kLongest = 3600.0 * 1e6;  // beyond this an ETA means nothing (and would overflow)
  if (!std::isfinite(seconds) || seconds < 0 || seconds > kLongest) return "?";
  const long long total = std::llround(seconds);
  const long long h = total / 3600, m = total / 60 % 60, s = total % 60;
  char text[32];
  if (total < 60) {
    std::snprintf(text, sizeof text, "%llds", s);
  } else if (total < 3600) {
    std::snprintf(text, sizeof text, "%lldm%02llds", m, s);
  } else {
    std::snprintf(text, sizeof text, "%lldh%02lldm", h, m);
  }
  return text;
}

std::string format_bytes(uint64_t bytes) {
  char text[32];
  if (bytes < 1024) {
    std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
    return text;
  }
  static constexpr std::array<const char*, 6> kUnits = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  // Move up while the printed value would read 1024.0 or more (1023.96 KiB prints as "1.0 MiB").
  while (value >= 1023.95 && unit + 1 < kUnits.size()) {
    value /= 1024;
    ++unit;
  }
  std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

double eta_seconds(double done, double total, double elapsed_s) {
  const double unknown = std::nan("");
  if (!std::isfinite(done) || !std::isfinite(total) || !std::isfinite(elapsed_s)) return unknown;
  if (total <= 0 || elapsed_s <= 0) return unknown;
  if (done >= total) return 0.0;
  if (done <= 0) return unknown;
  return (total - done) * elapsed_s / done;
}

// Terminal mode's way to show `text`: back to the start of the line, text, clear what an older, longer text left.
static std::string overwrite(const std::string& text) { return "\r" + text + "\x1b[K"; }

static bool stream_is_terminal(std::FILE* out) {
  if (!::isatty(::fileno(out))) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

ProgressLine::ProgressLine(std::FILE* out, double plain_interval_s)
    : ProgressLine(out, stream_is_terminal(out), plain_interval_s) {}

ProgressLine::ProgressLine(std::FILE* out, bool is_terminal, double plain_interval_s, double redraw_interval_s)
    : out_(out),
      is_terminal_(is_terminal),
      plain_interval_s_(plain_interval_s),
      redraw_interval_s_(redraw_interval_s) {}

void ProgressLine::update(const std::string& text) {
  status_ = text;
  const double interval = is_terminal_ ? redraw_interval_s_ : plain_interval_s_;
  if (status_shown_ && !interval_passed(interval)) return;
  if (is_terminal_) {
    write(overwrite(status_));
  } else {
    write(status_ + "\n");
  }
  status_shown_ = true;
  last_shown_ = Clock::now();
}

void ProgressLine::print(const std::string& line) {
  if (is_terminal_ && status_shown_) {
    write(overwrite(line) + "\n" + overwrite(status_));  // the line takes the status's place, which moves below
  } else {
    write(line + "\n");
  }
}

void ProgressLine::finish(const std::string& text) {
  if (is_terminal_) {
    write(overwrite(text) + "\n");
  } else {
    write(text + "\n");
  }
  status_.clear();
  status_shown_ = false;
}

void ProgressLine::write(const std::string& bytes) {
  std::fwrite(bytes.data(), 1, bytes.size(), out_);
  std::fflush(out_);
}

bool ProgressLine::interval_passed(double interval_s) const {
  return std::chrono::duration<double>(Clock::now() - last_shown_).count() >= interval_s;
}

}  // namespace ssm::tasks
