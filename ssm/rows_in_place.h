// ssm/rows_in_place.h — reading the column ranges of in_proj's output where they lie.
//
// in_proj's output [b, L, W] is split by columns into z, x, B, C, dd_dt, dd_A, trap and the angles. Each part
// is a view [b, L, ...] whose token rows (b, t) are contiguous and evenly spaced, W values apart. The fused
// Mamba-3 ops read such a view in place, row i at data + i · row_stride, instead of copying it to a
// contiguous tensor first (each copy is a full pass over the part, written and read back).
//
// A "row" here is the block of a tensor's last `row_dims` dims (the H values of dd_dt's token, the [H, P]
// of x's), and the leading dims, whatever their number, index the rows.
#pragma once
#include "tensor/tensor.h"

namespace ssm {

// The distance between the rows of a tensor that rows_in_place accepts.
inline int64_t row_stride(const Tensor& t, int64_t row_dims) {
  const int64_t lead = t.dim() - row_dims;
  if (lead == 0) return t.numel();
  // a size-1 dim's stride says nothing: the row stride is the innermost leading dim that walks
  for (int64_t d = lead - 1; d > 0; --d)
    if (t.size(d) != 1) return t.strides()[d];
  return t.strides()[0];
}

// Can t be read as rows of its last row_dims dims, each row contiguous, the rows evenly spaced row_stride(t,
// row_dims) apart? A contiguous tensor can, and so can a column range of a contiguous one; a broadcast or a
// transposed view cannot.
inline bool rows_in_place(const Tensor& t, int64_t row_dims) {
  const int64_t lead = t.dim() - row_dims;
  if (lead < 0) return false;
  const Strides& st = t.strides();
  int64_t width = 1;  // the values of one row
  for (int64_t d = t.dim() - 1; d >= lead; --d) {
    if (t.size(d) != 1 && st[d] != width) return false;
    width *= t.size(d);
  }
  if (width == 0 || t.numel() / width <= 1) return true;  // at most one row: nothing to space
  const int64_t stride = row_stride(t, row_dims);
  if (stride < width) return false;  // overlapping rows: a broadcast
  int64_t walk = stride;             // the leading dims (size-1 ones aside) must walk the rows one by one
  for (int64_t d = lead - 1; d >= 0; --d) {
    if (t.size(d) == 1) continue;
    if (st[d] != walk) return false;
    walk *= t.size(d);
  }
  return true;
}

// t itself when rows_in_place(t, row_dims), else a contiguous copy (which is).
inline Tensor rows_readable(const Tensor& t, int64_t row_dims) {
  return rows_in_place(t, row_dims) ? t : t.contiguous();
}

}  // namespace ssm
