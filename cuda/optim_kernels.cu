// cuda/optim_kernels.cu — fused optimiser updates for a whole table of parameters in one launch
// (math: nn/optim.h).
//
//   AdamW:  p ← p(1 − lr·wd) − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε),
//           m ← β1 m + (1−β1) g,  v ← β2 v + (1−β2) g²   (moments updated first)
//   SGD:    d = g + wd·p;  b ← μ b + d (b = d at the first step);  p ← p − lr·b   (d itself without momentum)
//
// A step touches every parameter once; launched per tensor, a model's hundred small vectors (norm
// weights, biases) would each cost a launch. Instead a launch takes a table of up to kSlotsPerLaunch
// (param, grad, state, numel) slots as a kernel argument (by value: no upload, no wait for the
// stream) and the grid is 2-D: blockIdx.y picks the slot, blockIdx.x and threadIdx.x stride over its
// elements. Each element is read and written by one thread, so the update is the CPU loop's
// arithmetic, element for element.
#include <algorithm>
#include <cmath>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/device_math.cuh"
#include "cuda/launch.cuh"
#include "cuda/ssm_fused.h"

namespace ssm::cuda {
namespace {

// Kernel arguments are limited to 4 KiB: 48 slots of at most 48 bytes leave room for the scalars.
constexpr int64_t kSlotsPerLaunch = 48;
constexpr int64_t kMaxBlocksPerSlot = 1024;  // the x-stride loop covers larger tensors

template <class Slot>
struct SlotTable {
  Slot slot[kSlotsPerLaunch];
};
static_assert(sizeof(SlotTable<SgdSlot<double>>) <= 3 * 1024, "the table must fit the kernel argument space");

// A table of the `count` (≤ kSlotsPerLaunch) slots at `slots`, and the grid that covers the largest of them.
template <class Slot>
SlotTable<Slot> table_of(const Slot* slots, int64_t count) {
  SlotTable<Slot> table{};
  std::copy(slots, slots + count, table.slot);
  return table;
}
template <class Slot>
dim3 grid_for(const Slot* slots, int64_t count) {
  int64_t largest = 0;
  for (int64_t i = 0; i < count; ++i) largest = std::max(largest, slots[i].numel);
  return dim3(static_cast<unsigned>(std::min<int64_t>(blocks_for(largest), kMaxBlocksPerSlot)),
              static_cast<unsigned>(count));
}

template <class T>
struct AdamWScalars {
  T decay, beta1, beta2, step_size, inv_sqrt_bias2, eps;
};

template <class T>
__global__ void adamw_kernel(const SlotTable<AdamWSlot<T>> table, AdamWScalars<T> k) {
  const AdamWSlot<T>& slot = table.slot[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < slot.numel;
       i += int64_t{gridDim.x} * blockDim.x) {
    const T g = slot.grad[i];
    const T m = k.beta1 * slot.exp_avg[i] + (1 - k.beta1) * g;
    const T v = k.beta2 * slot.exp_avg_sq[i] + (1 - k.beta2) * g * g;
    slot.exp_avg[i] = m;
    slot.exp_avg_sq[i] = v;
    slot.param[i] = slot.param[i] * k.decay - k.step_size * m / (sqrt_of(v) * k.inv_sqrt_bias2 + k.eps);
  }
}

template <class T>
__global__ void sgd_kernel(const SlotTable<SgdSlot<T>> table, T lr, T weight_decay, T momentum) {
  const SgdSlot<T>& slot = table.slot[blockIdx.y];
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < slot.numel;
       i += int64_t{gridDim.x} * blockDim.x) {
    T d = slot.grad[i] + weight_decay * slot.param[i];
    if (slot.momentum_buffer) d = slot.momentum_buffer[i] = slot.first_step ? d : momentum * slot.momentum_buffer[i] + d;
    slot.param[i] -= lr * d;
  }
}

}  // namespace

template <class T>
void adamw_multi_tensor(const AdamWSlot<T>* slots, int64_t count, const AdamWHyper& hyper) {
  // The scalars as the CPU loop rounds them (nn/optim.cpp), so both devices do the same arithmetic.
  const AdamWScalars<T> k{static_cast<T>(1.0 - hyper.lr * hyper.weight_decay),
                          static_cast<T>(hyper.beta1),
                          static_cast<T>(hyper.beta2),
                          static_cast<T>(hyper.lr / hyper.bias_correction1),
                          static_cast<T>(1.0 / std::sqrt(hyper.bias_correction2)),
                          static_cast<T>(hyper.eps)};
  for (int64_t first = 0; first < count; first += kSlotsPerLaunch) {
    const int64_t n = std::min(count - first, kSlotsPerLaunch);
    adamw_kernel<T><<<grid_for(slots + first, n), kThreads, 0, stream()>>>(table_of(slots + first, n), k);
    SSM_CUDA_CHECK_LAUNCH();
  }
}

template <class T>
void sgd_multi_tensor(const SgdSlot<T>* slots, int64_t count, const SgdHyper& hyper) {
  for (int64_t first = 0; first < count; first += kSlotsPerLaunch) {
    const int64_t n = std::min(count - first, kSlotsPerLaunch);
    sgd_kernel<T><<<grid_for(slots + first, n), kThreads, 0, stream()>>>(
        table_of(slots + first, n), static_cast<T>(hyper.lr), static_cast<T>(hyper.weight_decay),
        static_cast<T>(hyper.momentum));
    SSM_CUDA_CHECK_LAUNCH();
  }
}

template void adamw_multi_tensor<float>(const AdamWSlot<float>*, int64_t, const AdamWHyper&);
template void adamw_multi_tensor<double>(const AdamWSlot<double>*, int64_t, const AdamWHyper&);
template void sgd_multi_tensor<float>(const SgdSlot<float>*, int64_t, const SgdHyper&);
template void sgd_multi_tensor<double>(const SgdSlot<double>*, int64_t, const SgdHyper&);

}  // namespace ssm::cuda
