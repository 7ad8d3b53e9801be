// ssm/rows_in_place.h: which views the fused Mamba-3 ops read in place as rows, and their row strides.
#include <gtest/gtest.h>

#include "ssm/rows_in_place.h"
#include "tensor/ops.h"

using namespace ssm;

TEST(RowsInPlace, ContiguousTensorsAreRowsOfTheirLastDims) {
  const Tensor t = Tensor::zeros({2, 3, 4, 5});
  EXPECT_TRUE(rows_in_place(t, 1));
  EXPECT_EQ(row_stride(t, 1), 5);
  EXPECT_TRUE(rows_in_place(t, 2));
  EXPECT_EQ(row_stride(t, 2), 20);
  EXPECT_TRUE(rows_in_place(t, 4));  // one row: the whole tensor
  EXPECT_EQ(row_stride(t, 4), 120);
  EXPECT_FALSE(rows_in_place(t, 5));  // more row dims than the tensor has
}

TEST(RowsInPlace, ColumnRangesOfAWiderTensorAreReadInPlace) {
  const Tensor wide = Tensor::zeros({2, 3, 20});  // in_proj's output [b, L, W]
  const Tensor part = wide.narrow(2, 4, 6);
  EXPECT_TRUE(rows_in_place(part, 1));
  EXPECT_EQ(row_stride(part, 1), 20);
  const Tensor heads = part.reshape({2, 3, 2, 3});  // [b, L, H, P]
  EXPECT_TRUE(rows_in_place(heads, 2));
  EXPECT_EQ(row_stride(heads, 2), 20);
  EXPECT_EQ(rows_readable(heads, 2).raw_data(), heads.raw_data());  // no copy
  EXPECT_FALSE(rows_in_place(heads, 1));  // its [P] rows are not evenly spaced across H and L
}

TEST(RowsInPlace, SizeOneDimsDoNotDecideTheStride) {
  const Tensor one_token = Tensor::zeros({4, 1, 20}).narrow(2, 0, 6);  // [b, 1, ..]: the rows walk b
  EXPECT_TRUE(rows_in_place(one_token, 1));
  EXPECT_EQ(row_stride(one_token, 1), 20);
  const Tensor one_batch = Tensor::zeros({1, 5, 20}).narrow(2, 0, 6);
  EXPECT_TRUE(rows_in_place(one_batch, 1));
  EXPECT_EQ(row_stride(one_batch, 1), 20);
}

TEST(RowsInPlace, OtherViewsAreCopied) {
  const Tensor transposed = Tensor::zeros({2, 4, 3}).transpose(1, 2);  // rows not contiguous
  EXPECT_FALSE(rows_in_place(transposed, 1));
  const Tensor swapped_lead = Tensor::zeros({3, 2, 5}).transpose(0, 1);  // leading dims out of order
  EXPECT_FALSE(rows_in_place(swapped_lead, 1));
  const Tensor broadcast = Tensor::zeros({1, 1, 5}).expand({2, 3, 5});  // every row the same memory
  EXPECT_FALSE(rows_in_place(broadcast, 1));
  const Tensor copy = rows_readable(swapped_lead, 1);
  EXPECT_TRUE(copy.is_contiguous());
  EXPECT_EQ(row_stride(copy, 1), 5);
}
