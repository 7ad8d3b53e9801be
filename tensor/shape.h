// tensor/shape.h — shapes, strides and the small arithmetic on them.
//
// Convention (stated once, used everywhere): row-major, outermost dimension first, as in PyTorch
// and safetensors. Strides count elements, not bytes. A stride of 0 repeats one element along a
// dimension — that is how broadcasting views (expand) are made without copying.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ssm {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

int64_t numel(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3, 4]"

// Wrap a possibly negative dimension index into [0, rank); `op` names the caller in the error.
int64_t wrap_dim(int64_t dim, int64_t rank, const char* op);

// NumPy broadcasting: align trailing dimensions; each pair must be equal or contain a 1.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace ssm
