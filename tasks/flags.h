// tasks/flags.h — one command-line parser for every tool.
//
// Flags are declarative: a tool lists each flag once, pointing at the variable it fills, and both
// parse() and help() read that one list, so the help can never disagree with the parser. The
// variable's value at declaration time is the default that --help shows; the variables must outlive
// the parser.
//
// Syntax accepted by parse():
//   --name              a switch (flag()): sets the bool to true; "--name=..." is an error
//   --name VALUE        an option; also --name=VALUE. The next argument is taken as the value even
//                       when it starts with "-" (so `--lr -1` works), unless it starts with "--":
//                       `--out --steps 3` is a missing value, and `--out=--x` passes such a value
//   -h, --help          Result::help; parsing stops there (the caller prints help() and exits 0)
//   --                  everything after it is Result::passthrough, untouched
//   -x                  any other argument starting with "-" (but "-" alone) is an unknown flag
//   anything else       Result::positional
// A non-repeated flag given twice is an error (a silently ignored value hides typos in scripts);
// a repeated() flag accumulates, and the values given replace the declared default list.
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace ssm::tasks {

class FlagParser {
 public:
  // usage: what follows the program name on the "usage:" line, e.g. "CASE_DIR... [options]".
  FlagParser(std::string program, std::string usage, std::string description);

  void section(std::string title);  // groups the flags declared after it in --help
  void flag(std::string name, bool* value, std::string help);
  void option(std::string name, std::string* value, std::string metavar, std::string help);
  void option(std::string name, int64_t* value, std::string metavar, std::string help);
  void option(std::string name, double* value, std::string metavar, std::string help);
  void repeated(std::string name, std::vector<std::string>* values, std::string metavar, std::string help);

  struct Result {
    bool help = false;                     // -h/--help seen: the caller prints help() and exits 0
    std::vector<std::string> positional;   // arguments that are not flags, in order
    std::vector<std::string> passthrough;  // everything after a bare "--"
  };
  // Fills the declared variables. Throws ssm::Error with a one-line cause naming the flag: an unknown
  // flag (with "did you mean --x?" when one is close), a missing value, a malformed number
  // (--steps: expected an integer, got "1o"), a switch given a value, a non-repeated flag given twice.
  Result parse(int argc, const char* const* argv) const;     // argv[0] is the program
  Result parse(const std::vector<std::string>& args) const;  // the arguments alone

  // "usage: PROGRAM USAGE", the description, then each section's flags as aligned
  // "--name METAVAR  help (default: X)" lines; -h/--help is listed first.
  std::string help() const;

 private:
  using Target = std::variant<bool*, std::string*, int64_t*, double*, std::vector<std::string>*>;
  struct Flag {
    std::string name;  // without the leading "--"
    Target target;
    std::string metavar;
    std::string help;
    std::string default_text;  // the variable's value at declaration, as shown in help ("" = none shown)
    size_t section;            // index into sections_
  };

  void add(std::string name, Target target, std::string metavar, std::string help, std::string default_text);
  const Flag* find(const std::string& name) const;
  std::string unknown_flag_message(const std::string& arg) const;

  std::string program_, usage_, description_;
  std::vector<std::string> sections_;
  std::vector<Flag> flags_;
};

}  // namespace ssm::tasks
