// tensor/storage.cpp — see storage.h.
#include "tensor/storage.h"

#include "tensor/backend.h"

namespace ssm {

Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device), backend_(&backend_for(device)) {
  data_ = backend_->allocate(bytes);
}

Storage::~Storage() { backend_->deallocate(data_, bytes_); }

}  // namespace ssm
