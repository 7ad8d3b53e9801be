// cuda/kernels.h — the CUDA backend's primitive kernels, one family per file (the GPU twin of
// tensor/cpu/kernels.h, with the same contracts from tensor/backend.h):
//   elementwise.cu  copy (with dtype conversion), fill, unary, binary, where
//   reduce.cu       sum/max/min over any dims, cumsum
//   index.cu        index_select, index_add, gather, scatter_add
//   matmul.cpp      batched matmul through cuBLAS
// cuda_backend.cpp binds them to the Backend interface. All run asynchronously on context.h's stream.
#pragma once
#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace ssm::cuda {

void copy(const Tensor& src, const Tensor& dst);
void fill(const Tensor& dst, double value);
void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b);
void binary(BinaryOp op, const Tensor& x, const Tensor& y, const Tensor& out);
void where(const Tensor& cond, const Tensor& x, const Tensor& y, const Tensor& out);

void reduce(ReduceOp op, const Tensor& x, const Tensor& out);
void cumsum(const Tensor& x, int64_t dim, bool reverse, const Tensor& out);

void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
void gather(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out);
void scatter_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
// Waits for the GPU, then throws if an index kernel met an out-of-range index since the last call.
void check_index_faults();

void matmul(const Tensor& x, const Tensor& y, const Tensor& out);

}  // namespace ssm::cuda
