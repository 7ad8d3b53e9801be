// autograd/grad_mode.cpp — see grad_mode.h.
#include "autograd/grad_mode.h"

namespace ssm {

namespace {
thread_local bool grad_enabled = true;
}

bool GradMode::enabled() { return grad_enabled; }
void GradMode::set_enabled(bool on) { grad_enabled = on; }

}  // namespace ssm
