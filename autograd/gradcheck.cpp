// autograd/gradcheck.cpp — see gradcheck.h.
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "tensor/ops.h"

namespace ssm {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options) {
  for (const Tensor& x : inputs)
    SSM_CHECK(!x.defined() || x.dtype() != DType::Float32, "gradcheck: inputs must be float64 (got ", x.describe(),
              "): float32 finite differences are too coarse to check anything");

  const Tensor out = f(inputs);
  SSM_CHECK(out.requires_grad(), "gradcheck: the output does not require grad (no input has requires_grad set?)");
  SSM_CHECK(out.dtype() == DType::Float64, "gradcheck: the output must be float64, got ", out.describe());
  const int64_t n_out = out.numel();

  // Analytical Jacobian, one output element at a time: J[j][input][i] = d out_j / d x_i.
  std::vector<std::vector<std::vector<double>>> analytical(n_out);
  for (int64_t j = 0; j < n_out; ++j) {
    for (const Tensor& x : inputs)
      if (x.defined()) x.set_grad(Tensor());
    Tensor one_hot = Tensor::zeros({n_out}, DType::Float64);
    one_hot.data<double>()[j] = 1.0;
    backward(out, one_hot.view(out.shape()), /*retain_graph=*/true);
    for (const Tensor& x : inputs) {
      if (!x.defined() || !x.requires_grad()) {
        analytical[j].emplace_back();
        continue;
      }
      analytical[j].push_back(x.grad().defined() ? x.grad().to_vector<double>()
                                                 : std::vector<double>(static_cast<size_t>(x.numel()), 0.0));
    }
  }
  for (const Tensor& x : inputs)
    if (x.defined()) x.set_grad(Tensor());

  // Numerical Jacobian by central differences, perturbing each input element in place.
  NoGradGuard no_grad;
  GradcheckResult result;
  double worst = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    if (!x.defined() || !x.requires_grad()) continue;
    const Tensor flat = x.contiguous();
    SSM_CHECK(flat.is_same(x), "gradcheck: input ", k, " must be contiguous");
    double* data = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double saved = data[i];
      data[i] = saved + options.eps;
      const std::vector<double> plus = f(inputs).to_vector<double>();
      data[i] = saved - options.eps;
      const std::vector<double> minus = f(inputs).to_vector<double>();
      data[i] = saved;
      for (int64_t j = 0; j < n_out; ++j) {
        const double numerical = (plus[j] - minus[j]) / (2 * options.eps);
        const double exact = analytical[j][k][i];
        const double error = std::abs(numerical - exact);
        const double allowed = options.atol + options.rtol * std::abs(numerical);
        if (error > allowed && error / allowed > worst) {
          worst = error / allowed;
          std::ostringstream msg;
          msg.precision(12);
          msg << "gradcheck: d out[" << j << "] / d input" << k << "[" << i << "]: backward gives " << exact
              << ", finite differences give " << numerical << " (|error| " << error << " > " << allowed << ")";
          result.ok = false;
          result.message = msg.str();
        }
      }
    }
  }
  return result;
}

}  // namespace ssm
