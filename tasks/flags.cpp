// tasks/flags.cpp — the declarative flag parser: declaration, parsing, suggestions, generated help.
#include "tasks/flags.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>
#include <set>

#include "tensor/error.h"

namespace ssm::tasks {

namespace {

// The shortest text that reads back as the same double, for defaults in help: plain decimals
// (0.03, 0.0001, 3000) unless that would need long runs of zeros (1e-05, 1e+15).
std::string shortest_text(double value) {
  const double magnitude = std::fabs(value);
  const bool scientific = magnitude != 0 && (magnitude < 1e-4 || magnitude >= 1e15);
  char buffer[64];
  const auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value,
                                       scientific ? std::chars_format::scientific : std::chars_format::fixed);
  return std::string(buffer, end);
}

int64_t parse_integer(const std::string& name, const std::string& text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  SSM_CHECK(ec != std::errc::result_out_of_range, "--", name, ": ", text, " is outside the 64-bit integer range");
  SSM_CHECK(ec == std::errc() && end == text.data() + text.size(), "--", name, ": expected an integer, got \"", text,
            "\"");
  return value;
}

// Finite values only: no option of ours means anything with inf or nan.
double parse_number(const std::string& name, const std::string& text) {
  double value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  SSM_CHECK(ec == std::errc() && end == text.data() + text.size() && std::isfinite(value), "--", name,
            ": expected a number, got \"", text, "\"");
  return value;
}

// Levenshtein distance: insertions, deletions and substitutions each cost 1.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);  // row[j] = distance(a[0, i), b[0, j)) for the current i
  std::iota(row.begin(), row.end(), size_t{0});
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];  // distance(a[0, i-1), b[0, j-1))
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

FlagParser::FlagParser(std::string program, std::string usage, std::string description)
    : program_(std::move(program)), usage_(std::move(usage)), description_(std::move(description)),
      sections_{"options"} {}

void FlagParser::section(std::string title) { sections_.push_back(std::move(title)); }

void FlagParser::flag(std::string name, bool* value, std::string help) {
  add(std::move(name), value, "", std::move(help), "");  // a switch is off unless given: no default to show
}

void FlagParser::option(std::string name, std::string* value, std::string metavar, std::string help) {
  add(std::move(name), value, std::move(metavar), std::move(help), *value);
}

void FlagParser::option(std::string name, int64_t* value, std::string metavar, std::string help) {
  add(std::move(name), value, std::move(metavar), std::move(help), std::to_string(*value));
}

void FlagParser::option(std::string name, double* value, std::string metavar, std::string help) {
  add(std::move(name), value, std::move(metavar), std::move(help), shortest_text(*value));
}

void FlagParser::repeated(std::string name, std::vector<std::string>* values, std::string metavar,
                          std::string help) {
  std::string joined;
  for (const std::string& v : *values) joined += (joined.empty() ? "" : ", ") + v;
  add(std::move(name), values, std::move(metavar), std::move(help), joined);
}

void FlagParser::add(std::string name, Target target, std::string metavar, std::string help,
                     std::string default_text) {
  // Declaration mistakes are the tool author's: fail loudly on the first run.
  SSM_CHECK(!name.empty() && name[0] != '-' && name.find('=') == std::string::npos, program_,
            ": flag name \"", name, "\" must be given without dashes and without '='");
  SSM_CHECK(name != "help", program_, ": --help is built in and cannot be declared");
  SSM_CHECK(!find(name), program_, ": --", name, " is declared twice");
  flags_.push_back({std::move(name), target, std::move(metavar), std::move(help), std::move(default_text),
                    sections_.size() - 1});
}

const FlagParser::Flag* FlagParser::find(const std::string& name) const {
  const auto it = std::find_if(flags_.begin(), flags_.end(), [&](const Flag& f) { return f.name == name; });
  return it == flags_.end() ? nullptr : &*it;
}

// Suggests the closest declared name when it is within two edits and the typo is not mostly edits
// (so "--x" does not suggest "--lr"). "-steps" is at distance 0 from "steps" and gets "--steps".
std::string FlagParser::unknown_flag_message(const std::string& arg) const {
  const std::string shown = arg.substr(0, arg.find('='));
  const std::string name = shown.substr(std::min(shown.find_first_not_of('-'), shown.size()));
  std::string best = "help";
  size_t best_distance = edit_distance(name, best);
  for (const Flag& f : flags_) {
    const size_t distance = edit_distance(name, f.name);
    if (distance < best_distance) {
      best = f.name;
      best_distance = distance;
    }
  }
  if (best_distance <= std::min<size_t>(2, name.size() / 2))
    return "unknown flag " + shown + " (did you mean --" + best + "?)";
  return "unknown flag " + shown + " (see --help)";
}

FlagParser::Result FlagParser::parse(int argc, const char* const* argv) const {
  return parse(std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
}

FlagParser::Result FlagParser::parse(const std::vector<std::string>& args) const {
  Result result;
  std::set<std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      result.passthrough.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (arg == "-h" || arg == "--help") {
      result.help = true;
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      result.positional.push_back(arg);
      continue;
    }
    SSM_CHECK(arg.starts_with("--"), unknown_flag_message(arg));
    const size_t equals = arg.find('=');
    const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    const Flag* flag = find(name);
    SSM_CHECK(flag, unknown_flag_message(arg));
    const bool first_time = seen.insert(name).second;
    const auto* list = std::get_if<std::vector<std::string>*>(&flag->target);
    SSM_CHECK(first_time || list, "--", name, " given twice");

    if (bool* const* on = std::get_if<bool*>(&flag->target)) {
      SSM_CHECK(equals == std::string::npos, "--", name, " is a switch and takes no value, got \"", arg, "\"");
      **on = true;
      continue;
    }
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else {
      SSM_CHECK(i + 1 < args.size() && !args[i + 1].starts_with("--"), "--", name, ": missing value (--", name, " ",
                flag->metavar, ")");
      value = args[++i];
    }
    if (auto* text = std::get_if<std::string*>(&flag->target)) **text = value;
    else if (auto* integer = std::get_if<int64_t*>(&flag->target)) **integer = parse_integer(name, value);
    else if (auto* number = std::get_if<double*>(&flag->target)) **number = parse_number(name, value);
    else {
      if (first_time) (*list)->clear();  // the values given replace the declared defaults
      (*list)->push_back(value);
    }
  }
  return result;
}

std::string FlagParser::help() const {
  const auto left_column = [](const Flag& f) { return "--" + f.name + (f.metavar.empty() ? "" : " " + f.metavar); };
  const std::string help_left = "-h, --help";
  size_t width = help_left.size();
  for (const Flag& f : flags_) width = std::max(width, left_column(f).size());
  const auto line = [&](const std::string& left, const std::string& text) {
    return "  " + left + std::string(width - left.size() + 2, ' ') + text + "\n";
  };

  std::string out = "usage: " + program_ + (usage_.empty() ? "" : " " + usage_) + "\n";
  if (!description_.empty()) out += "\n" + description_ + (description_.back() == '\n' ? "" : "\n");
  for (size_t s = 0; s < sections_.size(); ++s) {
    std::string lines = s == 0 ? line(help_left, "show this help and exit") : "";
    for (const Flag& f : flags_) {
      if (f.section != s) continue;
      std::string notes;
      if (std::holds_alternative<std::vector<std::string>*>(f.target)) notes = "repeatable";
      if (!f.default_text.empty()) notes += (notes.empty() ? "" : "; ") + ("default: " + f.default_text);
      lines += line(left_column(f), f.help + (notes.empty() ? "" : " (" + notes + ")"));
    }
    if (!lines.empty()) out += "\n" + sections_[s] + ":\n" + lines;
  }
  return out;
}

}  // namespace ssm::tasks
