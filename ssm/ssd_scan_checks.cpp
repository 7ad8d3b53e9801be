// ssm/ssd_scan_checks.cpp — the argument validation shared by every SSD scan implementation.
#include "ssm/ssd_scan.h"

namespace ssm {

void check_ssd_inputs(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B, const Tensor& C,
                      const Tensor& D, const Tensor& initial_state) {
  SSM_CHECK(x.defined() && dt.defined() && A.defined() && B.defined() && C.defined() && D.defined(),
            "ssd_scan: undefined input");
  SSM_CHECK(x.dim() == 4, "ssd_scan: x must be [batch, L, H, P], got ", x.describe());
  const int64_t batch = x.size(0), L = x.size(1), H = x.size(2), P = x.size(3);
  SSM_CHECK(B.dim() == 4 && B.size(0) == batch && B.size(1) == L, "ssd_scan: B must be [", batch, ", ", L,
            ", G, N], got ", B.describe());
  const int64_t G = B.size(2), N = B.size(3);
  SSM_CHECK(G > 0 && H % G == 0, "ssd_scan: ", G, " groups do not divide ", H, " heads");
  SSM_CHECK(C.shape() == B.shape(), "ssd_scan: C ", C.describe(), " must match B ", B.describe());
  SSM_CHECK(dt.shape() == (Shape{batch, L, H}), "ssd_scan: dt must be [", batch, ", ", L, ", ", H, "], got ",
            dt.describe());
  SSM_CHECK(A.shape() == Shape{H} && D.shape() == Shape{H}, "ssd_scan: A and D must be [", H, "], got ", A.describe(),
            " and ", D.describe());
  SSM_CHECK(!initial_state.defined() || initial_state.shape() == (Shape{batch, H, P, N}),
            "ssd_scan: initial state must be [", batch, ", ", H, ", ", P, ", ", N, "], got ", initial_state.describe());
  for (const Tensor& t : {dt, A, B, C, D})
    SSM_CHECK(t.dtype() == x.dtype() && t.device() == x.device(), "ssd_scan: ", t.describe(),
              " must be on x's device with x's dtype ", dtype_name(x.dtype()));
  SSM_CHECK(!initial_state.defined() || (initial_state.dtype() == x.dtype() && initial_state.device() == x.device()),
            "ssd_scan: initial state ", initial_state.describe(), " must be on x's device with x's dtype");
}

}  // namespace ssm
