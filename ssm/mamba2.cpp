// ssm/mamba2.cpp — see mamba2.h. The forward follows spec §2.2 step by step.
#include "ssm/mamba2.h"

#include "autograd/functions.h"
#include "nn/init.h"
#include "ssm/ssd_scan.h"

namespace ssm {

Mamba2::Mamba2(int64_t d_model, const MixerConfig& cfg, Generator& gen)
    : Mixer(d_model, cfg), conv_dim(d_inner + 2 * cfg.ngroups * cfg.d_state) {
  dt_bias = register_parameter("dt_bias", initial_dt_bias(heads, cfg, gen));
  A_log = register_parameter("A_log", op::log(op::uniform({heads}, cfg.A_init_min, cfg.A_init_max, gen)));  // A ~ U(1,16)
  D = register_parameter("D", Tensor::ones({heads}));
  in_proj = register_module("in_proj", std::make_shared<nn::Linear>(d_model, 2 * d_inner + 2 * groups * d_state + heads,
                                                                    false, gen));
  conv1d = register_module("conv1d", std::make_shared<nn::CausalConv1d>(conv_dim, cfg.d_conv, true, gen));
  // norm(y ⊙ silu(z)) in groups of d_inner/G (norm_before_gate = false)
  norm = register_module("norm", std::make_shared<nn::GatedRMSNorm>(d_inner, 1e-5, d_inner / groups, false));
  out_proj = register_module("out_proj", std::make_shared<nn::Linear>(d_inner, d_model, false, gen));
}

std::unique_ptr<MixerCache> Mamba2::empty_cache(int64_t batch) const {
  auto cache = std::make_unique<Mamba2Cache>();
  const DType dtype = in_proj->weight.dtype();
  const Device device = in_proj->weight.device();
  cache->conv = Tensor::zeros({batch, conv1d->weight.size(2), conv_dim}, dtype, device);
  cache->ssm = Tensor::zeros({batch, heads, headdim, d_state}, dtype, device);
  return cache;
}

Tensor Mamba2::forward(const Tensor& u, MixerCache* cache_base) const {
  auto* cache = static_cast<Mamba2Cache*>(cache_base);
  if (fused_step(u, cache)) {
    const Tensor zxbcdt = in_proj->forward(u);
    return out_proj->forward(norm->forward(decode_step(zxbcdt, *cache), narrow(zxbcdt, -1, 0, d_inner)));
  }
  const int64_t batch = u.size(0), L = u.size(1), K = conv1d->weight.size(2);
  // 1. zxbcdt = u W_inᵀ, split [z | xBC | dt]
  const auto zxbcdt = in_proj->forward_parts(u, {d_inner, conv_dim, heads});
  const Tensor &z = zxbcdt[0], &xBC = zxbcdt[1], &dt_raw = zxbcdt[2];
  // 2. causal depthwise conv + SiLU; with a cache the K−1 previous columns are the left context
  Tensor conv_in = xBC;
  if (cache) conv_in = cat({narrow(cache->conv, 1, 1, K - 1), xBC}, 1);
  Tensor xBC_act = conv1d->forward(conv_in, /*silu=*/true);
  if (cache) xBC_act = narrow(xBC_act, 1, K - 1, L);
  // 3. split x, B, C and give them their head / group shapes
  const auto xbc = split(xBC_act, {d_inner, groups * d_state, groups * d_state}, -1);
  const Tensor x = reshape(xbc[0], {batch, L, heads, headdim});
  const Tensor B = reshape(xbc[1], {batch, L, groups, d_state});
  const Tensor C = reshape(xbc[2], {batch, L, groups, d_state});
  // 4. dt = softplus(dt_raw + dt_bias), A = −exp(A_log)
  const Tensor dt = softplus(dt_raw + dt_bias);
  const Tensor A = -exp(A_log);
  // 5. the SSD scan (§2.3) with the D skip
  const Tensor h0 = cache ? cache->ssm : Tensor();
  const ScanOutput scan = chunked_scan(u) ? ssd_scan_chunked(x, dt, A, B, C, D, h0, chunk_size)
                                          : ssd_scan_reference(x, dt, A, B, C, D, h0);
  // 6. y = rmsnorm_group(y ⊙ silu(z)) ⊙ w, then 7. out_proj
  const Tensor y = norm->forward(reshape(scan.y, {batch, L, d_inner}), z);
  if (cache) {  // keep the last K pre-conv columns and the final state (§2.5), written in place (ssm/mixer.h)
    const Tensor history = op::cat({cache->conv, xBC.detach()}, 1);
    cache->conv.copy_(history.narrow(1, history.size(1) - K, K));
    cache->ssm.copy_(scan.final_state.detach());
  }
  return out_proj->forward(y);
}

}  // namespace ssm
