// tensor/cpu/kernels.h — the CPU backend's kernels, one family per file:
//   elementwise.cpp  copy (with dtype conversion), fill, unary, binary, where
//   reduce.cpp       sum/max/min over any dims, cumsum
//   index.cpp        index_select, index_add, gather, scatter_add
//   gemm.cpp         the matrix multiply (see gemm.h)
// cpu_backend.cpp binds them to the Backend interface. Argument checks happened in tensor/ops.cpp.
#pragma once
#include "tensor/backend.h"
#include "tensor/tensor.h"

namespace ssm::cpu {

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

void matmul(const Tensor& x, const Tensor& y, const Tensor& out);

}  // namespace ssm::cpu
