// Tests for tasks/flags.h: both option forms, negative numbers as values, switches, repeated flags,
// positional arguments and the "--" passthrough, every error path with its exact message, and the
// generated help (layout, every flag, defaults as declared, sections).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tasks/flags.h"
#include "tensor/error.h"

using ssm::tasks::FlagParser;

namespace {

struct Variables {
  int64_t steps = 3000;
  double lr = 0.03;
  bool verbose = false;
  std::string scan = "chunked";
  std::string out;
  std::vector<std::string> sets;
};

FlagParser demo_parser(Variables& v) {
  FlagParser parser("demo", "[options] FILE...", "Does a demo.");
  parser.option("steps", &v.steps, "N", "training steps");
  parser.option("lr", &v.lr, "LR", "learning rate");
  parser.flag("verbose", &v.verbose, "print more");
  parser.section("output");
  parser.option("scan", &v.scan, "PATH", "scan path");
  parser.option("out", &v.out, "DIR", "output folder");
  parser.repeated("set", &v.sets, "KEY=VALUE", "override a key");
  return parser;
}

// The message parse() throws for `args`, or "(parsed)" when it does not throw.
std::string parse_error(const std::vector<std::string>& args) {
  Variables v;
  try {
    demo_parser(v).parse(args);
  } catch (const ssm::Error& e) {
    return e.what();
  }
  return "(parsed)";
}

}  // namespace

TEST(Flags, OptionsTakeTheirValueFromTheNextArgumentOrAfterEquals) {
  Variables v;
  demo_parser(v).parse({"--steps", "12", "--lr=0.5", "--scan", "reference", "--out=runs/a=b"});
  EXPECT_EQ(v.steps, 12);
  EXPECT_DOUBLE_EQ(v.lr, 0.5);
  EXPECT_EQ(v.scan, "reference");
  EXPECT_EQ(v.out, "runs/a=b");  // only the first '=' separates the name
  EXPECT_FALSE(v.verbose);
}

TEST(Flags, UndeclaredVariablesKeepTheirDefaults) {
  Variables v;
  const FlagParser::Result result = demo_parser(v).parse(std::vector<std::string>{});
  EXPECT_EQ(v.steps, 3000);
  EXPECT_DOUBLE_EQ(v.lr, 0.03);
  EXPECT_EQ(v.scan, "chunked");
  EXPECT_FALSE(result.help);
  EXPECT_TRUE(result.positional.empty());
  EXPECT_TRUE(result.passthrough.empty());
}

TEST(Flags, NegativeNumbersAreValues) {
  Variables v;
  demo_parser(v).parse({"--lr", "-1.5e-3", "--steps", "-7"});
  EXPECT_DOUBLE_EQ(v.lr, -1.5e-3);
  EXPECT_EQ(v.steps, -7);
  Variables w;
  demo_parser(w).parse({"--steps=-2", "--out", "-"});
  EXPECT_EQ(w.steps, -2);
  EXPECT_EQ(w.out, "-");
}

TEST(Flags, AValueStartingWithTwoDashesNeedsTheEqualsForm) {
  Variables v;
  demo_parser(v).parse({"--out=--odd"});
  EXPECT_EQ(v.out, "--odd");
  EXPECT_EQ(parse_error({"--out", "--steps", "3"}), "--out: missing value (--out DIR)");
}

TEST(Flags, SwitchesSetTheirBool) {
  Variables v;
  demo_parser(v).parse({"--verbose"});
  EXPECT_TRUE(v.verbose);
}

TEST(Flags, RepeatedFlagsAccumulateAndReplaceTheDefaultList) {
  Variables v;
  v.sets = {"from=default"};
  demo_parser(v).parse({"--set", "a=1", "--steps", "2", "--set=b=2", "--set", "a=3"});
  EXPECT_EQ(v.sets, (std::vector<std::string>{"a=1", "b=2", "a=3"}));
  Variables w;
  w.sets = {"from=default"};
  demo_parser(w).parse(std::vector<std::string>{});
  EXPECT_EQ(w.sets, (std::vector<std::string>{"from=default"}));
}

TEST(Flags, PositionalArgumentsAndPassthrough) {
  Variables v;
  const FlagParser::Result result =
      demo_parser(v).parse({"a.txt", "--steps", "4", "-", "b.txt", "--", "--steps", "9", "--bogus", "--"});
  EXPECT_EQ(result.positional, (std::vector<std::string>{"a.txt", "-", "b.txt"}));
  EXPECT_EQ(result.passthrough, (std::vector<std::string>{"--steps", "9", "--bogus", "--"}));
  EXPECT_EQ(v.steps, 4);  // the --steps after "--" is passed through, not parsed (nor "given twice")
}

TEST(Flags, HelpStopsParsing) {
  for (const char* help : {"-h", "--help"}) {
    Variables v;
    const FlagParser::Result result = demo_parser(v).parse({"--steps", "5", help, "--bogus", "--steps", "x"});
    EXPECT_TRUE(result.help) << help;
    EXPECT_EQ(v.steps, 5);
  }
}

TEST(Flags, ArgvFormSkipsTheProgramName) {
  Variables v;
  const char* argv[] = {"demo", "--steps", "8", "file"};
  const FlagParser::Result result = demo_parser(v).parse(4, argv);
  EXPECT_EQ(v.steps, 8);
  EXPECT_EQ(result.positional, std::vector<std::string>{"file"});
  EXPECT_TRUE(demo_parser(v).parse(0, nullptr).positional.empty());
}

TEST(Flags, UnknownFlagsSuggestTheClosestName) {
  EXPECT_EQ(parse_error({"--stpes", "3"}), "unknown flag --stpes (did you mean --steps?)");
  EXPECT_EQ(parse_error({"--verbos"}), "unknown flag --verbos (did you mean --verbose?)");
  EXPECT_EQ(parse_error({"--lr2=3"}), "unknown flag --lr2 (did you mean --lr?)");
  EXPECT_EQ(parse_error({"-steps", "3"}), "unknown flag -steps (did you mean --steps?)");
  EXPECT_EQ(parse_error({"--hepl"}), "unknown flag --hepl (did you mean --help?)");
  EXPECT_EQ(parse_error({"--bogus"}), "unknown flag --bogus (see --help)");
  EXPECT_EQ(parse_error({"--x"}), "unknown flag --x (see --help)");  // too short to guess from
  EXPECT_EQ(parse_error({"-v"}), "unknown flag -v (see --help)");
}

TEST(Flags, MissingValue) {
  EXPECT_EQ(parse_error({"--steps"}), "--steps: missing value (--steps N)");
  EXPECT_EQ(parse_error({"--scan", "--verbose"}), "--scan: missing value (--scan PATH)");
}

TEST(Flags, MalformedNumbers) {
  EXPECT_EQ(parse_error({"--steps", "1o"}), "--steps: expected an integer, got \"1o\"");
  EXPECT_EQ(parse_error({"--steps", "1.5"}), "--steps: expected an integer, got \"1.5\"");
  EXPECT_EQ(parse_error({"--steps="}), "--steps: expected an integer, got \"\"");
  EXPECT_EQ(parse_error({"--steps", " 1"}), "--steps: expected an integer, got \" 1\"");
  EXPECT_EQ(parse_error({"--steps", "99999999999999999999"}),
            "--steps: 99999999999999999999 is outside the 64-bit integer range");
  EXPECT_EQ(parse_error({"--lr", "fast"}), "--lr: expected a number, got \"fast\"");
  EXPECT_EQ(parse_error({"--lr", "0.1x"}), "--lr: expected a number, got \"0.1x\"");
  EXPECT_EQ(parse_error({"--lr", "nan"}), "--lr: expected a number, got \"nan\"");
  EXPECT_EQ(parse_error({"--lr=inf"}), "--lr: expected a number, got \"inf\"");
}

TEST(Flags, NonRepeatedFlagGivenTwice) {
  EXPECT_EQ(parse_error({"--steps", "1", "--steps=2"}), "--steps given twice");
  EXPECT_EQ(parse_error({"--verbose", "--verbose"}), "--verbose given twice");
}

TEST(Flags, SwitchGivenAValue) {
  EXPECT_EQ(parse_error({"--verbose=yes"}), "--verbose is a switch and takes no value, got \"--verbose=yes\"");
}

TEST(Flags, DeclarationMistakesAreCaught) {
  int64_t n = 0;
  FlagParser parser("tool", "", "");
  parser.option("n", &n, "N", "a number");
  const auto message = [&](auto declare) -> std::string {
    try {
      declare();
    } catch (const ssm::Error& e) {
      return e.what();
    }
    return "(declared)";
  };
  EXPECT_EQ(message([&] { parser.option("n", &n, "N", "again"); }), "tool: --n is declared twice");
  EXPECT_EQ(message([&] { parser.option("help", &n, "N", "mine"); }),
            "tool: --help is built in and cannot be declared");
  EXPECT_EQ(message([&] { parser.option("--m", &n, "N", "dashes"); }),
            "tool: flag name \"--m\" must be given without dashes and without '='");
  EXPECT_EQ(message([&] { parser.option("a=b", &n, "N", "equals"); }),
            "tool: flag name \"a=b\" must be given without dashes and without '='");
}

TEST(Flags, HelpLayout) {
  Variables v;
  v.sets = {"a=1", "b=2"};
  const std::string expected =
      "usage: demo [options] FILE...\n"
      "\n"
      "Does a demo.\n"
      "\n"
      "options:\n"
      "  -h, --help       show this help and exit\n"
      "  --steps N        training steps (default: 3000)\n"
      "  --lr LR          learning rate (default: 0.03)\n"
      "  --verbose        print more\n"
      "\n"
      "output:\n"
      "  --scan PATH      scan path (default: chunked)\n"
      "  --out DIR        output folder\n"
      "  --set KEY=VALUE  override a key (repeatable; default: a=1, b=2)\n";
  EXPECT_EQ(demo_parser(v).help(), expected);
}

TEST(Flags, HelpShowsDefaultsAsDeclared) {
  Variables v;
  v.lr = 1e-4;
  v.steps = -5;
  FlagParser parser = demo_parser(v);
  parser.parse({"--steps", "7", "--lr", "2"});  // changes the variables, not the documented defaults
  const std::string help = parser.help();
  EXPECT_NE(help.find("--steps N        training steps (default: -5)\n"), std::string::npos) << help;
  EXPECT_NE(help.find("--lr LR          learning rate (default: 0.0001)\n"), std::string::npos) << help;
}

TEST(Flags, EmptySectionsAreLeftOutOfHelp) {
  bool quiet = false;
  FlagParser parser("tool", "", "");
  parser.section("empty");
  parser.section("logging");
  parser.flag("quiet", &quiet, "say less");
  EXPECT_EQ(parser.help(),
            "usage: tool\n"
            "\n"
            "options:\n"
            "  -h, --help  show this help and exit\n"
            "\n"
            "logging:\n"
            "  --quiet     say less\n");
}
