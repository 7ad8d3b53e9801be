// tools/ssm-safetensors.cpp — inspect a safetensors checkpoint, or re-write it with our writer.
//
//   ssm-safetensors FILE                 list metadata and tensors (name, dtype, shape, first values)
//   ssm-safetensors FILE --copy OUT      validate FILE and write its tensors and metadata to OUT
//
// Every read goes through the validating reader (nn/safetensors.h): a truncated or hostile file
// gets a one-line error and exit code 1, never a crash.
#include <cstdio>
#include <string>

#include "nn/safetensors.h"

using namespace ssm;

static void usage(FILE* out) {
  std::fprintf(out,
               "usage: ssm-safetensors FILE [--copy OUT]\n"
               "  Lists the __metadata__ and tensors (name, dtype, shape, first values) of a safetensors file.\n"
               "  --copy OUT  also writes the same tensors and metadata to OUT with this engine's writer\n"
               "              (atomically: a temp file renamed into place).\n");
}

int main(int argc, char** argv) try {
  if (argc >= 2 && (std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h")) {
    usage(stdout);
    return 0;
  }
  if (!(argc == 2 || (argc == 4 && std::string(argv[2]) == "--copy"))) {
    usage(stderr);
    return 2;
  }
  const safetensors::Contents contents = safetensors::load(argv[1]);
  for (const auto& [key, value] : contents.metadata) std::printf("metadata %s = %s\n", key.c_str(), value.c_str());
  for (const auto& [name, t] : contents.tensors) {
    std::printf("%-48s %-4s %-16s", name.c_str(), safetensors::format_dtype_name(t.dtype()), shape_str(t.shape()).c_str());
    const auto values = t.to_vector<double>();
    for (size_t i = 0; i < values.size() && i < 3; ++i) std::printf(" %.6g", values[i]);
    std::printf("%s\n", values.size() > 3 ? " ..." : "");
  }
  std::printf("%zu tensors\n", contents.tensors.size());
  if (argc == 4) {
    safetensors::save(argv[3], contents.tensors, contents.metadata);
    std::printf("wrote %s\n", argv[3]);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "ssm-safetensors: %s\n", e.what());
  return 1;
}
