// tools/ssm-parity.cpp — check the engine against a parity case (ssm/parity.h).
//
//   ssm-parity CASE_DIR [CASE_DIR ...] [--tolerance T] [--scan chunked|reference]
//
// Prints the relative error of every compared tensor and exits 0 when all are within tolerance,
// 1 when any is not, 2 on a usage error (a case that cannot be read counts as a failure).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ssm/parity.h"

using namespace ssm;

static void usage(FILE* out) {
  std::fprintf(out,
               "usage: ssm-parity CASE_DIR [CASE_DIR ...] [--tolerance T] [--scan chunked|reference]\n"
               "  Loads each case (config.json, model.safetensors, io.safetensors), runs the forward pass,\n"
               "  the backward pass and token-by-token decoding in float32, and prints the relative error\n"
               "  max|ours - ref| / max|ref| of the logits, the loss, every parameter's gradient and the\n"
               "  decoded logits.\n"
               "  --tolerance T   the largest relative error that passes (default 1e-4)\n"
               "  --scan PATH     the scan implementation to run: chunked (default) or reference\n"
               "  Exit status: 0 all cases pass, 1 a case fails or cannot be read, 2 usage error.\n");
}

int main(int argc, char** argv) {
  ParityOptions options;
  std::vector<std::string> cases;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage(stdout);
      return 0;
    } else if (arg == "--tolerance" && i + 1 < argc) {
      char* end = nullptr;
      options.tolerance = std::strtod(argv[++i], &end);
      if (*end != '\0' || !(options.tolerance > 0)) {
        std::fprintf(stderr, "ssm-parity: --tolerance needs a positive number, got '%s'\n", argv[i]);
        return 2;
      }
    } else if (arg == "--scan" && i + 1 < argc) {
      const std::string path = argv[++i];
      if (path != "chunked" && path != "reference") {
        std::fprintf(stderr, "ssm-parity: --scan must be chunked or reference, got '%s'\n", path.c_str());
        return 2;
      }
      options.scan_path = path == "chunked" ? ScanPath::Chunked : ScanPath::Reference;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "ssm-parity: unknown option '%s' (see --help)\n", arg.c_str());
      return 2;
    } else {
      cases.push_back(arg);
    }
  }
  if (cases.empty()) {
    usage(stderr);
    return 2;
  }
  bool all_ok = true;
  for (const std::string& dir : cases) {
    try {
      const ParityReport report = run_parity_case(dir, options);
      std::printf("%s", report.table().c_str());
      all_ok = all_ok && report.ok();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ssm-parity: %s\n", e.what());
      all_ok = false;
    }
  }
  return all_ok ? 0 : 1;
}
