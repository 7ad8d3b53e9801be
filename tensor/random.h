// tensor/random.h — the seeded, reproducible random generator.
//
// One Generator per run (architecture: "Determinism"). It is xoshiro256** seeded through
// splitmix64: fast, statistically strong, and with a 256-bit state that checkpoints save so a
// resumed run draws exactly the numbers it would have drawn. Values are generated on the host in
// a fixed order, so the same seed gives the same tensor on every device and thread count.
#pragma once
#include <array>
#include <cstdint>

#include "tensor/tensor.h"

namespace ssm {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) { manual_seed(seed); }
  void manual_seed(uint64_t seed);

  uint64_t next_u64();
  double next_double();  // uniform in [0, 1), 53 random bits
  double next_normal();  // standard normal (Box–Muller; one value per call keeps the state just 4 words)

  using State = std::array<uint64_t, 4>;
  State state() const { return s_; }
  void set_state(const State& state) { s_ = state; }

 private:
  State s_{};
};

namespace op {
Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype = DType::Float32,
               Device device = Device::cpu());
Tensor normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype = DType::Float32,
              Device device = Device::cpu());
// A random permutation of 0..n-1 (Fisher–Yates), int64.
Tensor randperm(int64_t n, Generator& gen);
}  // namespace op

}  // namespace ssm
