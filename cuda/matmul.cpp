// cuda/matmul.cpp — batched matmul through cuBLAS.
//
// cuBLAS is column-major; our tensors are row-major. A row-major [M, N] matrix is the column-major
// [N, M] matrix of its transpose, so out = x·y (row-major) is computed as outᵀ = yᵀ·xᵀ (column-major):
// cuBLAS's "A" is y and its "B" is x. Each operand keeps its strides when cuBLAS can read them (a unit
// stride in one of its two matrix dims; a transposed weight is just a transposed operand) and is
// copied contiguous otherwise. One call covers the whole batch (strided batched; a batch stride of 0
// broadcasts a weight).
//
// Types: float32 (TF32 tensor cores when context.h's tf32() is on), float64, and bfloat16 operands with
// float32 accumulation and a bfloat16 or float32 product.
#include <cublas_v2.h>

#include <algorithm>

#include "cuda/check.h"
#include "cuda/context.h"
#include "cuda/kernels.h"

namespace ssm::cuda {
namespace {

// A column-major view of a rows × cols matrix whose element (i, j) sits at i·row_stride + j·col_stride.
struct Operand {
  cublasOperation_t op = CUBLAS_OP_N;
  int64_t ld = 1;
  bool readable = false;
};

Operand as_operand(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  // Column-major as it is: unit stride down a column.
  if ((row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= rows)) {
    return {CUBLAS_OP_N, cols == 1 ? std::max<int64_t>(rows, 1) : col_stride, true};
  }
  // Stored as the column-major cols × rows transpose: unit stride along a row.
  if ((col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= cols)) {
    return {CUBLAS_OP_T, rows == 1 ? std::max<int64_t>(cols, 1) : row_stride, true};
  }
  return {};
}

}  // namespace

void matmul(const Tensor& x_in, const Tensor& y_in, const Tensor& out) {
  const int64_t batch = x_in.size(0), M = x_in.size(1), K = x_in.size(2), N = y_in.size(2);
  if (batch == 0 || M == 0 || N == 0) return;
  // cuBLAS's A is yᵀ (N × K: element (n, k) = y[k][n]); its B is xᵀ (K × M: element (k, m) = x[m][k]).
  Tensor x = x_in, y = y_in;
  Operand a = as_operand(N, K, y.strides()[2], y.strides()[1]);
  if (!a.readable || (batch > 1 && y.strides()[0] < 0)) {
    y = y.contiguous();
    a = as_operand(N, K, y.strides()[2], y.strides()[1]);
  }
  Operand b = as_operand(K, M, x.strides()[2], x.strides()[1]);
  if (!b.readable || (batch > 1 && x.strides()[0] < 0)) {
    x = x.contiguous();
    b = as_operand(K, M, x.strides()[2], x.strides()[1]);
  }
  const long long stride_a = batch == 1 ? 0 : y.strides()[0], stride_b = batch == 1 ? 0 : x.strides()[0];

  cudaDataType_t type;  // of the operands
  cublasComputeType_t compute;
  switch (x.dtype()) {
    case DType::Float32:
      type = CUDA_R_32F;
      compute = tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
      break;
    case DType::Float64:
      type = CUDA_R_64F;
      compute = CUBLAS_COMPUTE_64F;
      break;
    case DType::BFloat16:
      type = CUDA_R_16BF;
      compute = CUBLAS_COMPUTE_32F;
      break;
    default:
      throw Error(detail::concat("matmul: needs float32, float64 or bfloat16 on cuda, got ", dtype_name(x.dtype())));
  }
  const cudaDataType_t out_type = out.dtype() == DType::Float32 ? CUDA_R_32F : type;  // bf16 operands: either
  const float one_f = 1.0f, zero_f = 0.0f;
  const double one_d = 1.0, zero_d = 0.0;
  const bool f64 = out.dtype() == DType::Float64;
  const void* alpha = f64 ? static_cast<const void*>(&one_d) : static_cast<const void*>(&one_f);
  const void* beta = f64 ? static_cast<const void*>(&zero_d) : static_cast<const void*>(&zero_f);
  // K == 0: cuBLAS still writes beta·C = 0, which is the right (empty-sum) answer.
  SSM_CUBLAS_CHECK(cublasGemmStridedBatchedEx(cublas(), a.op, b.op, static_cast<int>(N), static_cast<int>(M),
                                              static_cast<int>(K), alpha, y.raw_data(), type, static_cast<int>(a.ld),
                                              stride_a, x.raw_data(), type, static_cast<int>(b.ld), stride_b, beta,
                                              out.raw_data(), out_type, static_cast<int>(N),
                                              static_cast<long long>(M) * N, static_cast<int>(batch), compute,
                                              CUBLAS_GEMM_DEFAULT));
}

}  // namespace ssm::cuda
