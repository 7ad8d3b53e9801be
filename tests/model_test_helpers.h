// tests/model_test_helpers.h — small language models of every kind and the helpers the model tests share
// (CPU tests in test_ssm_blocks.cpp, GPU tests in test_cuda_models.cpp).
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "autograd/grad_mode.h"
#include "ssm/lm.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace ssm::testing {

struct Variant {
  const char* name;
  const char* json;
};

// small models of every kind; groups > 1, an MLP, rope 1.0 and the output-projection norm are covered
inline const Variant kVariants[] = {
    {"mamba2", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba2", "d_state": 8,
       "headdim": 8, "ngroups": 2, "chunk_size": 4}})"},
    {"mamba3-siso", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "d_intermediate": 24, "ssm_cfg": {"layer":
       "Mamba3", "d_state": 8, "headdim": 8, "chunk_size": 4}})"},
    {"mamba3-siso-norm-rope1", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3",
       "d_state": 8, "headdim": 8, "rope_fraction": 1.0, "is_outproj_norm": true, "chunk_size": 3}})"},
    {"mamba3-mimo", R"({"d_model": 16, "n_layer": 2, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3", "d_state": 8,
       "headdim": 8, "ngroups": 2, "is_mimo": true, "mimo_rank": 3, "chunk_size": 4}})"},
    {"mamba3-mimo-norm", R"({"d_model": 16, "n_layer": 1, "vocab_size": 30, "ssm_cfg": {"layer": "Mamba3",
       "d_state": 8, "headdim": 4, "is_mimo": true, "mimo_rank": 2, "is_outproj_norm": true, "chunk_size": 5}})"},
};

// The official init has symmetric values (ones, 1/R) that can hide a mix-up: perturb every parameter.
inline void perturb(MambaLM& model, Generator& gen) {
  NoGradGuard no_grad;
  for (const Tensor& p : model.parameters()) op::add_(p, op::normal(p.shape(), 0, 0.2, gen));
}

inline Tensor random_tokens(int64_t batch, int64_t L, int64_t vocab, Generator& gen) {
  std::vector<int64_t> ids(batch * L);
  const auto u = op::uniform({batch * L}, 0, static_cast<double>(vocab), gen, DType::Float64).to_vector<double>();
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(u[i]);
  return Tensor::from_vector(ids, {batch, L});
}

inline double max_abs_diff(const Tensor& a, const Tensor& b) { return op::max(op::abs(op::sub(a, b))).item<double>(); }

// A test-name-safe form of a variant's name ("mamba3-siso" → "mamba3_siso"), for INSTANTIATE_TEST_SUITE_P.
inline std::string variant_test_name(const ::testing::TestParamInfo<Variant>& info) {
  std::string name = info.param.name;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

// ../shared/parity, where the parity cases live (absent on a machine without the shared folder).
inline std::filesystem::path parity_root() { return std::filesystem::path(SSM_SHARED_DIR) / "parity"; }

// The case directories under `root` (those holding io.safetensors), in name order.
inline std::vector<std::string> parity_case_dirs(const std::filesystem::path& root) {
  std::vector<std::string> cases;
  for (const auto& entry : std::filesystem::directory_iterator(root))
    if (std::filesystem::is_regular_file(entry.path() / "io.safetensors")) cases.push_back(entry.path().string());
  std::sort(cases.begin(), cases.end());
  return cases;
}

}  // namespace ssm::testing
