// tensor/storage.h — a block of memory on one device, shared by every tensor that views it.
//
// Tensors hold a std::shared_ptr<Storage>: views (reshape, transpose, narrow, expand) share it, and
// the memory goes back to the device's backend when the last view is gone. The version counter
// counts in-place writes; autograd uses it to refuse a backward pass whose saved inputs were
// overwritten after they were saved.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "tensor/device.h"

namespace ssm {

class Backend;

class Storage {
 public:
  Storage(size_t bytes, Device device);  // allocates through backend_for(device)
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

  uint64_t version() const { return version_; }
  void bump_version() { ++version_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  Backend* backend_ = nullptr;
  uint64_t version_ = 0;
};

}  // namespace ssm
