// ssm/parity.cpp — see parity.h.
#include "ssm/parity.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "nn/safetensors.h"
#include "ssm/lm.h"

namespace ssm {
namespace {

ParityCheck compare(const std::string& name, const Tensor& ours, const Tensor& ref) {
  if (!ours.defined()) return {name, std::numeric_limits<double>::infinity(), "missing from our side"};
  if (ours.numel() != ref.numel())
    return {name, std::numeric_limits<double>::infinity(),
            "shape " + shape_str(ours.shape()) + " vs reference " + shape_str(ref.shape())};
  const auto a = ours.to(Device::cpu()).to(DType::Float64).to_vector<double>();
  const auto b = ref.to(DType::Float64).to_vector<double>();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  const double rel = scale > 0 ? diff / scale : diff;
  return {name, std::isnan(rel) ? std::numeric_limits<double>::infinity() : rel, ""};
}

const Tensor& required(const safetensors::TensorMap& io, const std::string& key, const std::string& file) {
  const auto it = io.find(key);
  SSM_CHECK(it != io.end(), file, ": has no tensor \"", key, "\"");
  return it->second;
}

}  // namespace

bool ParityReport::ok() const { return worst() <= tolerance; }

double ParityReport::worst() const {
  double w = 0;
  for (const ParityCheck& c : checks) w = std::max(w, c.rel_error);
  return w;
}

std::string ParityReport::table() const {
  std::string out;
  char line[512];
  for (const ParityCheck& c : checks) {
    std::snprintf(line, sizeof line, "  %-52s rel %.3e  %s%s\n", c.name.c_str(), c.rel_error,
                  c.rel_error <= tolerance ? "ok" : "FAIL", c.problem.empty() ? "" : ("  (" + c.problem + ")").c_str());
    out += line;
  }
  std::snprintf(line, sizeof line, "%s: %zu tensors, worst rel %.3e, tolerance %.1e: %s\n", case_dir.c_str(),
                checks.size(), worst(), tolerance, ok() ? "PASS" : "FAIL");
  return out + line;
}

ParityReport run_parity_case(const std::string& case_dir, const ParityOptions& options) {
  ParityReport report{case_dir, {}, options.tolerance};
  const LMConfig config = LMConfig::load(case_dir + "/config.json");
  Generator gen(0);  // the weights are loaded over the initialisation
  MambaLM model(config, gen);
  model.set_scan_path(options.scan_path);
  model.load_state_dict(safetensors::load(case_dir + "/model.safetensors").tensors, {MambaLM::kTiedHeadKey});
  model.to(options.device);

  const std::string io_file = case_dir + "/io.safetensors";
  const safetensors::TensorMap io = safetensors::load(io_file).tensors;
  const Tensor tokens = required(io, "tokens", io_file).to(DType::Int64);
  SSM_CHECK(tokens.dim() == 2, io_file, ": tokens must be [batch, L], got ", tokens.describe());

  // forward and backward
  const Tensor logits = model.forward(tokens);
  const Tensor loss = lm_loss(logits, tokens);
  backward(loss);
  report.checks.push_back(compare("logits", logits.detach(), required(io, "logits", io_file)));
  report.checks.push_back(compare("loss", loss.detach().reshape({1}), required(io, "loss", io_file)));
  for (const auto& [key, param] : model.named_parameters()) {
    const auto ref = io.find("grad." + key);
    if (ref == io.end())
      report.checks.push_back({"grad." + key, std::numeric_limits<double>::infinity(), "no reference gradient"});
    else
      report.checks.push_back(compare("grad." + key, param.grad(), ref->second));
  }
  const auto params = model.state_dict();
  for (const auto& [key, _] : io)  // a reference gradient for a parameter we do not have
    if (key.rfind("grad.", 0) == 0 && !params.count(key.substr(5)))
      report.checks.push_back({key, std::numeric_limits<double>::infinity(), "no such parameter in our model"});

  // token-by-token decoding from an empty cache
  NoGradGuard no_grad;
  LMCache cache = model.empty_cache(tokens.size(0));
  std::vector<Tensor> steps;
  for (int64_t t = 0; t < tokens.size(1); ++t) steps.push_back(model.step(tokens.select(1, t).contiguous(), cache));
  report.checks.push_back(compare("step_logits", op::stack(steps, 1), required(io, "step_logits", io_file)));
  return report;
}

}  // namespace ssm
