// ssm/mamba3_scan_checks.cpp — the argument validation shared by every Mamba-3 scan implementation.
#include "ssm/mamba3_scan.h"

namespace ssm {

void check_mamba3_inputs(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& adt, const Tensor& gamma,
                         const Tensor& eta, const Tensor& initial_state, const Tensor& k_prev, const Tensor& v_prev) {
  SSM_CHECK(q.defined() && k.defined() && v.defined() && adt.defined() && gamma.defined() && eta.defined(),
            "mamba3_scan: undefined input (only initial_state, k_prev and v_prev may be left out)");
  SSM_CHECK(q.dim() == 5, "mamba3_scan: q must be [batch, L, R, H, N], got ", q.describe());
  const int64_t batch = q.size(0), L = q.size(1), R = q.size(2), H = q.size(3), N = q.size(4);
  SSM_CHECK(k.shape() == q.shape(), "mamba3_scan: k ", k.describe(), " must match q ", q.describe());
  SSM_CHECK(v.dim() == 5 && v.size(0) == batch && v.size(1) == L && v.size(2) == R && v.size(3) == H,
            "mamba3_scan: v must be [", batch, ", ", L, ", ", R, ", ", H, ", P], got ", v.describe());
  const int64_t P = v.size(4);
  const Shape per_token{batch, L, H};
  for (const Tensor* t : {&adt, &gamma, &eta})
    SSM_CHECK(t->shape() == per_token, "mamba3_scan: adt, gamma and eta must be [", batch, ", ", L, ", ", H,
              "], got ", t->describe());
  SSM_CHECK(!initial_state.defined() || initial_state.shape() == (Shape{batch, H, P, N}),
            "mamba3_scan: initial state must be [", batch, ", ", H, ", ", P, ", ", N, "], got ",
            initial_state.describe());
  SSM_CHECK(!k_prev.defined() || k_prev.shape() == (Shape{batch, R, H, N}), "mamba3_scan: k_prev must be [", batch,
            ", ", R, ", ", H, ", ", N, "], got ", k_prev.describe());
  SSM_CHECK(!v_prev.defined() || v_prev.shape() == (Shape{batch, R, H, P}), "mamba3_scan: v_prev must be [", batch,
            ", ", R, ", ", H, ", ", P, "], got ", v_prev.describe());
  SSM_CHECK(q.dtype() == DType::Float32 || q.dtype() == DType::Float64,
            "mamba3_scan: needs float32 or float64, got ", q.describe());
  for (const Tensor& t : {q, k, v, adt, gamma, eta, initial_state, k_prev, v_prev})
    SSM_CHECK(!t.defined() || (t.dtype() == q.dtype() && t.device() == q.device()), "mamba3_scan: ", t.describe(),
              " must be on q's device with q's dtype ", dtype_name(q.dtype()));
}

}  // namespace ssm
