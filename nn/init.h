// nn/init.h — parameter initialisation, always from the run's seeded Generator (reproducible runs).
//
// The official Mamba LM initialisation (spec §1 "Default PyTorch inits" and §4.3) is built from
// these: Linear and Conv1d weights kaiming-uniform U(±1/√fan_in), zeroed Linear biases, embeddings
// N(0, 0.02), and the output projections re-drawn and divided by √n_layer (ssm/ applies that rule).
// Each function overwrites the tensor's values in place without recording a graph.
#pragma once
#include "nn/module.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace ssm::nn::init {

void uniform_(const Tensor& t, double low, double high, Generator& gen);
void normal_(const Tensor& t, double mean, double std, Generator& gen);
// U(±1/√fan_in): PyTorch's kaiming_uniform_ with a = √5, its default for Linear and Conv1d.
void kaiming_uniform_(const Tensor& t, int64_t fan_in, Generator& gen);
void constant_(const Tensor& t, double value);

// The official language-model initialisation (spec §4.3, `_init_weights`), applied to a whole model
// after its layers have their default init:
//   * every Linear bias is zeroed; every Embedding weight is drawn from N(0, 0.02);
//   * every Linear named `out_proj` or `fc2` is re-drawn kaiming-uniform and divided by √n_layer
//     (the official code applies the rule twice; the second pass, with one residual per layer, wins).
// Mixer-internal parameters (dt_bias, A_log, D, norms, conv) are left as their layers made them.
void official_lm_init(Module& model, int64_t n_layer, Generator& gen);

}  // namespace ssm::nn::init
