// tasks/progress.h — human-readable durations, sizes and ETAs, and one status line that updates in place.
//
// Long jobs (a dataset download, a training run) report progress through a ProgressLine. On a
// terminal the line is redrawn in place ("\r" + text + clear to end of line); anywhere else (a log
// file, a pipe, CI) carriage returns would pile up into one endless line, so the line is printed as
// ordinary lines instead, at most one per `plain_interval_s` seconds so a log stays short.
// Progress output is best effort: write errors are ignored, because a broken progress display must
// never stop the job it reports on.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ssm::tasks {

// "12s", "3m05s", "1h02m" (rounded to the second first); "?" for negative, NaN, infinite or
// absurd (over a million hours) values, which is what an unknown ETA looks like.
std::string format_duration(double seconds);

// "512 B" below 1 KiB, else one decimal in the largest binary unit that keeps it below 1024:
// "1.5 KiB", "20.0 MiB", "1.9 GiB" (up to EiB).
std::string format_bytes(uint64_t bytes);

// Seconds left for `done` of `total` after `elapsed_s` at the average rate so far; 0 once
// done >= total; NaN when unknown (nothing done yet, no total, no time elapsed, non-finite input).
double eta_seconds(double done, double total, double elapsed_s);

// One status line. update() replaces the status text, print() writes an ordinary line without
// losing the status, finish() ends the status line with a newline (a later update() starts a new
// one). Every write is flushed. Not thread-safe: one owner writes to it.
//
// On a terminal: update() draws "\r" + text + "\x1b[K", at most once per `redraw_interval_s` (the
// newest text is kept and shown by the next draw); print() overwrites the status with the line,
// ends it, and redraws the status below; finish() always draws its text.
// Elsewhere: the first update() after construction or finish() prints text + "\n", later ones only
// when `plain_interval_s` has passed since the last printed one; print() and finish() always print.
class ProgressLine {
 public:
  // A terminal is a tty whose TERM is not "dumb" (a dumb terminal does not understand "\x1b[K").
  explicit ProgressLine(std::FILE* out, double plain_interval_s = 10.0);
  // Forced mode, for tests and for callers that know better than isatty.
  ProgressLine(std::FILE* out, bool is_terminal, double plain_interval_s, double redraw_interval_s = 0.1);

  void update(const std::string& text);
  void print(const std::string& line);
  void finish(const std::string& text);
  bool is_terminal() const { return is_terminal_; }

 private:
  using Clock = std::chrono::steady_clock;

  void write(const std::string& bytes);
  bool interval_passed(double interval_s) const;

  std::FILE* out_;
  bool is_terminal_;
  double plain_interval_s_;
  double redraw_interval_s_;
  std::string status_;          // the newest update() text since the last finish()
  bool status_shown_ = false;   // some update() was written since the last finish()
  Clock::time_point last_shown_{};
};

}  // namespace ssm::tasks
