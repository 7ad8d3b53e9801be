// tools/ssm-parity.cpp — check the engine against a parity case (ssm/parity.h).
//
//   ssm-parity CASE_DIR [CASE_DIR ...] [--tolerance T] [--scan chunked|reference] [--device cpu|cuda]
//
// Prints the relative error of every compared tensor and exits 0 when all are within tolerance,
// 1 when any is not, 2 on a usage error (a case that cannot be read counts as a failure).
#include <cstdio>
#include <string>
#include <vector>

#include "ssm/parity.h"
#include "tasks/flags.h"
#include "tensor/backend.h"
#include "tensor/error.h"

using namespace ssm;

int main(int argc, char** argv) {
  ParityOptions options;
  std::string scan = "chunked", device = "cpu";
  tasks::FlagParser flags(
      "ssm-parity", "CASE_DIR [CASE_DIR ...] [--tolerance T] [--scan chunked|reference] [--device cpu|cuda]",
      "Loads each case (config.json, model.safetensors, io.safetensors), runs the forward pass,\n"
      "the backward pass and token-by-token decoding in float32, and prints the relative error\n"
      "max|ours - ref| / max|ref| of the logits, the loss, every parameter's gradient and the\n"
      "decoded logits. With --device cuda the model runs on the GPU (the chunked scan).\n\n"
      "Exit status: 0 all cases pass, 1 a case fails or cannot be read, 2 usage error.");
  flags.option("tolerance", &options.tolerance, "T", "the largest relative error that passes");
  flags.option("scan", &scan, "PATH", "the scan implementation to run: chunked or reference");
  flags.option("device", &device, "DEVICE", "where the model runs: cpu or cuda");
  std::vector<std::string> cases;
  try {
    const tasks::FlagParser::Result args = flags.parse(argc, argv);
    if (args.help) {
      std::printf("%s", flags.help().c_str());
      return 0;
    }
    SSM_CHECK(options.tolerance > 0, "--tolerance needs a positive number, got ", options.tolerance);
    SSM_CHECK(scan == "chunked" || scan == "reference", "--scan must be chunked or reference, got '", scan, "'");
    SSM_CHECK(device == "cpu" || device == "cuda", "--device must be cpu or cuda, got '", device, "'");
    SSM_CHECK(args.passthrough.empty(), "unexpected arguments after -- (see --help)");
    cases = args.positional;
  } catch (const Error& e) {
    std::fprintf(stderr, "ssm-parity: %s\n", e.what());
    return 2;
  }
  if (cases.empty()) {
    std::fprintf(stderr, "%s", flags.help().c_str());
    return 2;
  }
  options.scan_path = scan == "chunked" ? ScanPath::Chunked : ScanPath::Reference;
  options.device = device == "cuda" ? Device::cuda() : Device::cpu();
  if (!device_available(options.device)) {
#if SSM_WITH_CUDA
    std::fprintf(stderr, "ssm-parity: --device cuda, but no usable NVIDIA GPU was found\n");
#else
    std::fprintf(stderr, "ssm-parity: --device cuda, but this build has no CUDA backend\n");
#endif
    return 1;
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
