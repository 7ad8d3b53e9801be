// The Mamba-2 and Mamba-3 blocks inside the language model: decoding one token at a time from the
// cache equals the full forward (spec §2.5, §3.9, at every split point between prefill and steps),
// the chunked and reference scan paths give the same model, and the parity cases of ../shared/parity
// (an independent PyTorch implementation of the official math) match in float32.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "ssm/decoder.h"
#include "ssm/lm.h"
#include "ssm/parity.h"
#include "model_test_helpers.h"
#include "tensor/ops.h"

using namespace ssm;
using namespace ssm::testing;
namespace fs = std::filesystem;

class BlockVariants : public ::testing::TestWithParam<Variant> {};

TEST_P(BlockVariants, DecodingStepByStepEqualsTheFullForward) {
  Generator gen(11);
  MambaLM model(LMConfig::from_json(GetParam().json), gen);
  perturb(model, gen);
  const int64_t L = 11;
  const Tensor tokens = random_tokens(2, L, 30, gen);
  NoGradGuard no_grad;
  const Tensor full = model.forward(tokens);
  const double scale = op::max(op::abs(full)).item<double>();
  for (int64_t split : {0, 1, 5, 10}) {  // prefill [0, split), then step one token at a time
    SCOPED_TRACE("prefill " + std::to_string(split));
    Decoder decoder(model, 2);
    std::vector<Tensor> outputs;
    if (split > 0) outputs.push_back(decoder.prefill(tokens.narrow(1, 0, split).contiguous()));
    for (int64_t t = split; t < L; ++t) outputs.push_back(decoder.step(tokens.select(1, t).contiguous()).unsqueeze(1));
    EXPECT_LT(max_abs_diff(op::cat(outputs, 1), full), 2e-5 * scale);
  }
}

TEST_P(BlockVariants, ChunkedAndReferenceScansGiveTheSameModel) {
  Generator gen(12);
  MambaLM model(LMConfig::from_json(GetParam().json), gen);
  perturb(model, gen);
  const Tensor tokens = random_tokens(2, 13, 30, gen);
  std::vector<Tensor> logits;
  std::vector<std::vector<Tensor>> grads;  // per path, every parameter's gradient
  for (ScanPath path : {ScanPath::Reference, ScanPath::Chunked}) {
    model.set_scan_path(path);
    model.zero_grad();
    const Tensor out = model.forward(tokens);
    backward(lm_loss(out, tokens));
    logits.push_back(out.detach());
    grads.emplace_back();
    for (const Tensor& p : model.parameters()) grads.back().push_back(p.grad());
  }
  EXPECT_LT(max_abs_diff(logits[0], logits[1]), 1e-5 * op::max(op::abs(logits[0])).item<double>());
  const auto names = model.named_parameters();
  for (size_t i = 0; i < names.size(); ++i)
    EXPECT_LE(max_abs_diff(grads[0][i], grads[1][i]), 1e-4 * op::max(op::abs(grads[0][i])).item<double>())
        << names[i].first;
}

INSTANTIATE_TEST_SUITE_P(Models, BlockVariants, ::testing::ValuesIn(kVariants), variant_test_name);

// Every case directory in ../shared/parity, in float32, through both scan paths.
TEST(Parity, EveryCaseMatchesTheReferenceImplementation) {
  const fs::path parity = parity_root();
  if (!fs::is_directory(parity)) GTEST_SKIP() << "no parity folder at " << parity;
  const std::vector<std::string> cases = parity_case_dirs(parity);
  EXPECT_GE(cases.size(), 4u) << "expected the four parity cases in " << parity;
  for (const std::string& dir : cases)
    for (ScanPath path : {ScanPath::Chunked, ScanPath::Reference}) {
      ParityOptions options;
      options.scan_path = path;
      const ParityReport report = run_parity_case(dir, options);
      EXPECT_TRUE(report.ok()) << report.table();
      EXPECT_GT(report.checks.size(), 4u);
    }
}

TEST(Parity, AMissingOrBrokenCaseIsAnErrorNotACrash) {
  EXPECT_THROW(run_parity_case("/nonexistent/case"), Error);
  const fs::path dir = fs::temp_directory_path() / "ssm_parity_broken";
  fs::create_directories(dir);
  {
    std::ofstream(dir / "config.json") << R"({"d_model": 8, "n_layer": 1, "vocab_size": 10, "ssm_cfg": {"layer": "Mamba2", "headdim": 4, "d_state": 4}})";
    std::ofstream(dir / "model.safetensors") << "garbage";
  }
  EXPECT_THROW(run_parity_case(dir.string()), Error);
  fs::remove_all(dir);
}
