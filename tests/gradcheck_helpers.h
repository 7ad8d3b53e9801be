// tests/gradcheck_helpers.h — what the gradcheck test files share: float64 leaves from a seeded generator.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "autograd/engine.h"
#include "autograd/functions.h"
#include "autograd/gradcheck.h"
#include "tensor/random.h"

namespace ssm::testing {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

inline Tensor leaf(Tensor t, bool requires_grad = true) {
  t.set_requires_grad(requires_grad);
  return t;
}
inline Tensor randn(const Shape& s, Generator& g) { return leaf(op::normal(s, 0.0, 1.0, g, DType::Float64)); }
inline Tensor randu(const Shape& s, double lo, double hi, Generator& g) {
  return leaf(op::uniform(s, lo, hi, g, DType::Float64));
}

// gradcheck with the default (tight) tolerances, failing the test with the worst mismatch
inline void expect_gradcheck(const Fn& f, const std::vector<Tensor>& inputs) {
  const GradcheckResult r = gradcheck(f, inputs);
  EXPECT_TRUE(r.ok) << r.message;
}

// f on inputs that are views (column ranges of a wider tensor, as Mamba3::forward passes in_proj's parts, or
// any other strides) against f on contiguous copies of them: the very same bits, value and every input's
// gradient (of sum(f · weights)). Undefined inputs stay undefined.
inline void expect_views_give_the_contiguous_result(const Fn& f, const std::vector<Tensor>& views,
                                                    const Tensor& weights) {
  std::vector<Tensor> as_views, as_copies;
  for (const Tensor& t : views) {
    as_views.push_back(t.defined() ? leaf(t.detach()) : Tensor());  // fresh leaves, still views
    as_copies.push_back(t.defined() ? leaf(t.is_contiguous() ? t.detach().clone() : t.detach().contiguous())
                                    : Tensor());
  }
  const Tensor a = f(as_views), b = f(as_copies);
  EXPECT_EQ(a.to_vector<double>(), b.to_vector<double>());
  backward(sum(a * weights));
  backward(sum(b * weights));
  for (size_t i = 0; i < views.size(); ++i) {
    if (!views[i].defined()) continue;
    EXPECT_EQ(as_views[i].grad().to_vector<double>(), as_copies[i].grad().to_vector<double>()) << "input " << i;
  }
}

}  // namespace ssm::testing
