// nn/layers.cpp — see layers.h.
#include "nn/layers.h"

#include "autograd/autocast.h"
#include "nn/init.h"

namespace ssm::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool with_bias, Generator& gen) {
  SSM_CHECK(in_features > 0 && out_features > 0, "Linear: sizes must be positive, got ", in_features, " -> ",
            out_features);
  weight = register_parameter("weight", Tensor::empty({out_features, in_features}));
  init::kaiming_uniform_(weight, in_features, gen);
  if (with_bias) {
    bias = register_parameter("bias", Tensor::empty({out_features}));
    init::kaiming_uniform_(bias, in_features, gen);
  }
}

namespace {
void check_features(const Tensor& x, const Tensor& weight) {
  SSM_CHECK(x.size(-1) == weight.size(1), "Linear: input ", x.describe(), " does not end in ", weight.size(1),
            " features");
}
}  // namespace

Tensor Linear::forward(const Tensor& x) const {
  check_features(x, weight);
  // Wᵀ is a view: the GEMM reads it in place; bfloat16 operands inside an AutocastGuard (autograd/autocast.h)
  const Tensor y = autocast_matmul(x, transpose(weight, 0, 1));
  return bias.defined() ? add(y, bias) : y;
}

std::vector<Tensor> Linear::forward_parts(const Tensor& x, const std::vector<int64_t>& sizes) const {
  if (bias.defined()) return split(forward(x), sizes, -1);
  check_features(x, weight);
  return autocast_matmul_parts(x, transpose(weight, 0, 1), sizes);
}

Embedding::Embedding(int64_t num_embeddings, int64_t dim, Generator& gen) {
  weight = register_parameter("weight", Tensor::empty({num_embeddings, dim}));
  init::normal_(weight, 0.0, 1.0, gen);
}

Tensor Embedding::forward(const Tensor& ids) const { return embedding(weight, ids); }

RMSNorm::RMSNorm(int64_t dim, double eps) : eps(eps) { weight = register_parameter("weight", Tensor::ones({dim})); }

Tensor RMSNorm::forward(const Tensor& x) const { return rms_norm(x, weight, eps); }

GatedRMSNorm::GatedRMSNorm(int64_t dim, double eps, int64_t group_size, bool norm_before_gate)
    : eps(eps), group_size(group_size), norm_before_gate(norm_before_gate) {
  weight = register_parameter("weight", Tensor::ones({dim}));
}

Tensor GatedRMSNorm::forward(const Tensor& x, const Tensor& z) const {
  return gated_rms_norm(x, z, weight, eps, group_size, norm_before_gate);
}

CausalConv1d::CausalConv1d(int64_t channels, int64_t kernel_size, bool with_bias, Generator& gen) {
  weight = register_parameter("weight", Tensor::empty({channels, 1, kernel_size}));
  init::kaiming_uniform_(weight, kernel_size, gen);  // fan_in of a depthwise conv = 1 · K
  if (with_bias) {
    bias = register_parameter("bias", Tensor::empty({channels}));
    init::kaiming_uniform_(bias, kernel_size, gen);
  }
}

Tensor CausalConv1d::forward(const Tensor& x, bool silu) const { return causal_conv1d(x, weight, bias, silu); }

GatedMLP::GatedMLP(int64_t d_model, int64_t d_intermediate, Generator& gen, int64_t multiple_of)
    : hidden(multiple_of > 0 ? (d_intermediate + multiple_of - 1) / multiple_of * multiple_of : 0) {
  SSM_CHECK(multiple_of > 0 && d_intermediate > 0, "GatedMLP: d_intermediate (", d_intermediate, ") and multiple_of (",
            multiple_of, ") must be positive");
  fc1 = register_module("fc1", std::make_shared<Linear>(d_model, 2 * hidden, false, gen));
  fc2 = register_module("fc2", std::make_shared<Linear>(hidden, d_model, false, gen));
}

Tensor GatedMLP::forward(const Tensor& x) const {
  const auto parts = fc1->forward_parts(x, {hidden, hidden});  // [value, gate]
  return fc2->forward(mul(parts[0], silu(parts[1])));
}

}  // namespace ssm::nn
