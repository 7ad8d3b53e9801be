// tensor/random.cpp — see random.h.
#include "tensor/random.h"

#include <cmath>
#include <numbers>
#include <vector>

namespace ssm {

void Generator::manual_seed(uint64_t seed) {
  // splitmix64 spreads any seed (even 0) over the 256-bit state.
  for (auto& word : s_) {
    seed += 0x9e3779b97f4a7c15ull;
    uint64_t z = seed;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    word = z ^ (z >> 31);
  }
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t Generator::next_u64() {  // xoshiro256** (Blackman & Vigna)
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Generator::next_double() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

double Generator::next_normal() {
  const double u1 = 1.0 - next_double();  // (0, 1]: log is finite
  const double u2 = next_double();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

namespace op {

// Draw numel values on the host in row-major order, then convert and move to the target.
template <class Draw>
static Tensor generate(const Shape& shape, DType dtype, Device device, const char* name, Draw draw) {
  SSM_CHECK(is_floating(dtype), name, ": needs a floating dtype, got ", dtype_name(dtype));
  for (int64_t d : shape) SSM_CHECK(d >= 0, name, ": negative dimension in shape ", shape_str(shape));
  std::vector<double> values(static_cast<size_t>(numel(shape)));
  for (auto& v : values) v = draw();
  return Tensor::from_vector(values, shape).to(dtype).to(device);
}

Tensor uniform(const Shape& shape, double low, double high, Generator& gen, DType dtype, Device device) {
  SSM_CHECK(low <= high, "uniform: low ", low, " > high ", high);
  return generate(shape, dtype, device, "uniform", [&] { return low + (high - low) * gen.next_double(); });
}

Tensor normal(const Shape& shape, double mean, double std, Generator& gen, DType dtype, Device device) {
  SSM_CHECK(std >= 0, "normal: negative std ", std);
  return generate(shape, dtype, device, "normal", [&] { return mean + std * gen.next_normal(); });
}

Tensor randperm(int64_t n, Generator& gen) {
  SSM_CHECK(n >= 0, "randperm: negative length ", n);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[gen.next_u64() % static_cast<uint64_t>(i + 1)]);
  return Tensor::from_vector(perm, {n});
}

}  // namespace op
}  // namespace ssm
