// ssm/parity.h — check the language model against a parity case written by an independent
// implementation of the official math (../shared/parity/README.md).
//
// A case directory holds config.json (the official MambaConfig), model.safetensors (the weights under
// the official keys, lm_head.weight left out) and io.safetensors (tokens, logits, loss, step_logits and
// grad.<key> for every parameter). We build the model from the config, load the weights, and compare:
//   logits        the full forward                 loss          mean next-token cross-entropy
//   grad.<key>    d loss / d parameter, for every parameter (a missing or extra one fails)
//   step_logits   token-by-token decoding from an empty cache
// Each comparison is rel = max|ours − ref| / max|ref|, against one tolerance (1e-4 for float32).
#pragma once
#include <string>
#include <vector>

#include "ssm/mixer.h"

namespace ssm {

struct ParityCheck {
  std::string name;
  double rel_error;  // max|ours − ref| / max|ref|; +inf when the tensor is missing or misshapen
  std::string problem;  // non-empty when it could not be compared
};

struct ParityReport {
  std::string case_dir;
  std::vector<ParityCheck> checks;
  double tolerance;
  bool ok() const;
  double worst() const;
  std::string table() const;  // one line per check, the verdict last
};

struct ParityOptions {
  double tolerance = 1e-4;
  ScanPath scan_path = ScanPath::Chunked;
  Device device = Device::cpu();  // where the model runs; the comparison is always on the host
};

// Throws ssm::Error when the case itself cannot be read (missing file, bad config, wrong shapes).
ParityReport run_parity_case(const std::string& case_dir, const ParityOptions& options = {});

}  // namespace ssm
