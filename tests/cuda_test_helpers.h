// tests/cuda_test_helpers.h — what the GPU tests share: a base fixture that skips, saying why, on a machine
// (or a build) without a usable CUDA device, so CI shows the GPU tests as skipped rather than passed.
#pragma once
#include <gtest/gtest.h>

#include "tensor/backend.h"

namespace ssm::testing {

inline constexpr const char* kNoGpu = "no CUDA device on this machine (or a build without CUDA)";

inline bool have_gpu() { return device_available(Device::cuda()); }

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_gpu()) GTEST_SKIP() << kNoGpu;
  }
};

}  // namespace ssm::testing
