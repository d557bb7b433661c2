// pybind11 bindings: array conversion, GIL release, exception translation, and the cache that
// finds a repeated call's plan from its arguments (plan_cache.h). Nothing else.
//
// pycnn/ops.py has already validated and normalised every argument: arrays arrive C-contiguous,
// of one floating dtype, with shapes that match the parameters. The checks here only guard the
// C++ core against a caller that bypasses ops.py (they raise, they never fix things up).
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "pycnn/conv.h"
#include "pycnn/pool.h"
#include "pycnn/conv_transpose.h"
#include "pycnn/depthwise.h"
#include "pycnn/runtime.h"
#include "plan_cache.h"

namespace py = pybind11;

namespace {

// Whether `h` is an ndarray of T in native byte order and C order: array_t<T>'s check without
// its dtype object (PyArray_DescrFromType + PyArray_EquivTypes on each of a call's arrays).
template <class T>
bool is_c_array_of(const py::handle& h) {
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_Check_(h.ptr())) return false;
  const auto* a = py::detail::array_proxy(h.ptr());
  const auto* d = py::detail::array_descriptor_proxy(a->descr);
  return d->type_num == py::detail::npy_format_descriptor<T>::value && d->byteorder != '>' &&
         (a->flags & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_);
}

template <class T>
const T* data_of(const py::array& a, const char* name, int64_t expected_size) {
  if (!is_c_array_of<T>(a))
    throw std::invalid_argument(std::string(name) + ": expected a C-contiguous array of the op's dtype");
  if (a.size() != expected_size)
    throw std::invalid_argument(std::string(name) + ": has " + std::to_string(a.size()) +
                                " elements, expected " + std::to_string(expected_size));
  return static_cast<const T*>(a.data());
}

template <class T>
T* mutable_data_of(py::array& a, const char* name, int64_t expected_size) {
  data_of<T>(a, name, expected_size);
  if (!a.writeable()) throw std::invalid_argument(std::string(name) + ": array is read-only");
  return static_cast<T*>(a.mutable_data());
}

template <class T>
void conv2d_typed(const pycnn::Conv2dParams& p, const py::array& x, const py::array& w,
                  const py::object& bias, py::array& y, const py::object& w_hwio) {
  const int64_t weight_size = p.o * (p.c / p.groups) * p.kh * p.kw;
  const T* xd = data_of<T>(x, "x", p.n * p.c * p.h * p.w);
  const T* wd = data_of<T>(w, "weight", weight_size);
  const T* bd = bias.is_none() ? nullptr : data_of<T>(bias.cast<py::array>(), "bias", p.o);
  const int64_t prepared_size = p.weight_winograd_given ? 16 * p.c * pycnn::winograd_weights_stride(p.o) : weight_size;
  const T* hwio = w_hwio.is_none() ? nullptr : data_of<T>(w_hwio.cast<py::array>(), "weight_hwio", prepared_size);
  T* yd = mutable_data_of<T>(y, "out", p.n * p.o * p.oh * p.ow);
  py::gil_scoped_release release;
  pycnn::conv2d(p, xd, wd, bd, yd, hwio);
}

// (n, c, h, w, o, kh, kw, oh, ow, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left,
// groups) as computed by pycnn._args.conv2d_geometry.
pycnn::Conv2dParams conv2d_params(const py::tuple& geometry, int layout, int activation,
                                  double activation_param, int algorithm, bool weight_hwio_given,
                                  bool weight_winograd_given = false) {
  if (geometry.size() != 16) throw std::invalid_argument("conv2d: geometry must have 16 entries");
  pycnn::Conv2dParams p;
  int64_t* fields[] = {&p.n, &p.c, &p.h, &p.w, &p.o, &p.kh, &p.kw, &p.oh, &p.ow, &p.stride_h,
                       &p.stride_w, &p.dilation_h, &p.dilation_w, &p.pad_top, &p.pad_left, &p.groups};
  for (size_t i = 0; i < 16; ++i) *fields[i] = geometry[i].cast<int64_t>();
  p.layout = (pycnn::Layout)layout;
  p.activation = (pycnn::Activation)activation;
  p.activation_param = activation_param;
  p.algorithm = (pycnn::ConvAlgorithm)algorithm;
  p.weight_hwio_given = weight_hwio_given;
  p.weight_winograd_given = weight_winograd_given;
  if (weight_hwio_given && weight_winograd_given)
    throw std::invalid_argument("conv2d: weights given as HWIO or Winograd-transformed, not both");
  return p;
}

// Call plans: an op's resolved parameters, built once by pycnn.ops and reused by calls of that
// shape. A call converts its arrays to the plan's dtype (no copy when they already are),
// allocates the result unless given `out`, and runs. Kept in C++ so a repeated small call costs
// little.
template <class T>
using PlanArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <class T>
PlanArray<T> plan_array(const py::handle& h) {
  if (is_c_array_of<T>(h)) return py::reinterpret_borrow<PlanArray<T>>(h);  // already right: no conversion call
  PlanArray<T> a = PlanArray<T>::ensure(h);
  if (!a) throw py::error_already_set();
  return a;
}

template <class T>
py::object plan_optional(const py::handle& h) {
  return h.is_none() ? py::object(py::none()) : py::object(plan_array<T>(h));
}

// A new C-order result of `shape`, from NumPy directly: array_t's constructor also builds a
// strides vector and a dtype object.
template <class T>
py::array plan_result(const py::object& out, const std::vector<py::ssize_t>& shape) {
  if (!out.is_none()) return out.cast<py::array>();
  const auto& api = py::detail::npy_api::get();
  PyObject* descr = api.PyArray_DescrFromType_(py::detail::npy_format_descriptor<T>::value);
  if (!descr) throw py::error_already_set();
  PyObject* y = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, (int)shape.size(),
                                          const_cast<Py_intptr_t*>(shape.data()), nullptr, nullptr, 0, nullptr);
  if (!y) throw py::error_already_set();
  return py::reinterpret_steal<py::array>(y);
}

// The plan of an op on (x, weight, bias) and, optionally, the weights in a form prepared ahead
// of time by pycnn.ops (conv2d's HWIO copy, conv_transpose2d's phase matrices).
template <class Params,
          void (*RunFloat)(const Params&, const py::array&, const py::array&, const py::object&, py::array&,
                           const py::object&),
          void (*RunDouble)(const Params&, const py::array&, const py::array&, const py::object&, py::array&,
                            const py::object&)>
struct PreparedWeightPlan {
  Params params;
  bool float64 = false;
  std::vector<py::ssize_t> result_shape;

  template <class T>
  py::array run_typed(const py::handle& x, const py::handle& w, const py::handle& bias, const py::object& out,
                      const py::handle& prepared) const {
    const PlanArray<T> xa = plan_array<T>(x), wa = plan_array<T>(w);
    py::array y = plan_result<T>(out, result_shape);
    (std::is_same_v<T, double> ? RunDouble : RunFloat)(params, xa, wa, plan_optional<T>(bias), y,
                                                       plan_optional<T>(prepared));
    return y;
  }

  py::array run(const py::handle& x, const py::handle& w, const py::handle& bias, const py::object& out,
                const py::handle& prepared) const {
    return float64 ? run_typed<double>(x, w, bias, out, prepared) : run_typed<float>(x, w, bias, out, prepared);
  }
};

struct Conv2dPlan : PreparedWeightPlan<pycnn::Conv2dParams, conv2d_typed<float>, conv2d_typed<double>> {
  std::string explain() const {
    std::string why;
    pycnn::choose_conv2d_algorithm(params, &why);
    return why;
  }
};

template <class T>
void pool2d_typed(const pycnn::Pool2dParams& p, const py::array& x, py::array& y) {
  const T* xd = data_of<T>(x, "x", p.n * p.c * p.h * p.w);
  T* yd = mutable_data_of<T>(y, "out", p.n * p.c * p.oh * p.ow);
  py::gil_scoped_release release;
  pycnn::pool2d(p, xd, yd);
}

// geometry: (n, c, h, w, kh, kw, oh, ow, stride_h, stride_w, dil_h, dil_w, pad_top, pad_bottom,
// pad_left, pad_right)
pycnn::Pool2dParams pool2d_params(const py::tuple& geometry, int layout, int kind, bool count_include_pad) {
  if (geometry.size() != 16) throw std::invalid_argument("pool2d: geometry must have 16 entries");
  pycnn::Pool2dParams p;
  int64_t* fields[] = {&p.n, &p.c, &p.h, &p.w, &p.kh, &p.kw, &p.oh, &p.ow, &p.stride_h, &p.stride_w,
                       &p.dilation_h, &p.dilation_w, &p.pad_top, &p.pad_bottom, &p.pad_left, &p.pad_right};
  for (size_t i = 0; i < 16; ++i) *fields[i] = geometry[i].cast<int64_t>();
  p.layout = (pycnn::Layout)layout;
  p.kind = (pycnn::PoolKind)kind;
  p.count_include_pad = count_include_pad;
  return p;
}

// global_avg_pool2d's and global_max_pool2d's: x (n, c, h, w in `layout`) -> its n*c values.
struct GlobalPool2dParams {
  int kind = 0, layout = 0;
  int64_t n = 0, c = 0, h = 0, w = 0;
};

template <class T>
void global_pool2d_typed(const GlobalPool2dParams& p, const py::array& x, py::array& y) {
  const T* xd = data_of<T>(x, "x", p.n * p.c * p.h * p.w);
  T* yd = mutable_data_of<T>(y, "out", p.n * p.c);
  py::gil_scoped_release release;
  pycnn::global_pool2d((pycnn::PoolKind)p.kind, (pycnn::Layout)p.layout, p.n, p.c, p.h, p.w, xd, yd);
}

template <class T>
void depth_max_pool2d_typed(int layout, int64_t n, int64_t c, int64_t h, int64_t w, int64_t k, const py::array& x,
                            py::array& y) {
  if (k < 1 || c % k) throw std::invalid_argument("depth_max_pool2d: pool_size must divide the channels");
  const T* xd = data_of<T>(x, "x", n * c * h * w);
  T* yd = mutable_data_of<T>(y, "out", n * (c / k) * h * w);
  py::gil_scoped_release release;
  pycnn::depth_max_pool2d((pycnn::Layout)layout, n, c, h, w, k, xd, yd);
}

void depth_max_pool2d(const py::array& x, py::array& y, int64_t n, int64_t c, int64_t h, int64_t w,
                      int64_t pool_size, int layout) {
  if (x.dtype().is(py::dtype::of<float>())) depth_max_pool2d_typed<float>(layout, n, c, h, w, pool_size, x, y);
  else if (x.dtype().is(py::dtype::of<double>())) depth_max_pool2d_typed<double>(layout, n, c, h, w, pool_size, x, y);
  else throw std::invalid_argument("depth_max_pool2d: x must be float32 or float64");
}

// geometry: (n, c, h, w, multiplier, kh, kw, oh, ow, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left)
pycnn::DepthwiseConv2dParams depthwise_params(const py::tuple& geometry, int layout, int activation,
                                              double activation_param) {
  if (geometry.size() != 15) throw std::invalid_argument("depthwise geometry must have 15 entries");
  pycnn::DepthwiseConv2dParams p;
  int64_t* fields[] = {&p.n, &p.c, &p.h, &p.w, &p.multiplier, &p.kh, &p.kw, &p.oh, &p.ow, &p.stride_h,
                       &p.stride_w, &p.dilation_h, &p.dilation_w, &p.pad_top, &p.pad_left};
  for (size_t i = 0; i < 15; ++i) *fields[i] = geometry[i].cast<int64_t>();
  p.layout = (pycnn::Layout)layout;
  p.activation = (pycnn::Activation)activation;
  p.activation_param = activation_param;
  return p;
}

template <class T>
void depthwise_typed(const pycnn::DepthwiseConv2dParams& p, const py::array& x, const py::array& w,
                     const py::object& bias, py::array& y) {
  const int64_t cm = p.c * p.multiplier;
  const T* xd = data_of<T>(x, "x", p.n * p.c * p.h * p.w);
  const T* wd = data_of<T>(w, "weight", cm * p.kh * p.kw);
  const T* bd = bias.is_none() ? nullptr : data_of<T>(bias.cast<py::array>(), "bias", cm);
  T* yd = mutable_data_of<T>(y, "out", p.n * cm * p.oh * p.ow);
  py::gil_scoped_release release;
  pycnn::depthwise_conv2d(p, xd, wd, bd, yd);
}


template <class T>
void separable_typed(const pycnn::SeparableConv2dParams& sp, const py::array& x, const py::array& dw,
                     const py::array& pw, const py::object& bias, py::array& y) {
  const pycnn::DepthwiseConv2dParams& p = sp.depthwise;
  const int64_t cm = p.c * p.multiplier;
  const T* xd = data_of<T>(x, "x", p.n * p.c * p.h * p.w);
  const T* dwd = data_of<T>(dw, "depthwise_weight", cm * p.kh * p.kw);
  const T* pwd = data_of<T>(pw, "pointwise_weight", cm * sp.o);
  const T* bd = bias.is_none() ? nullptr : data_of<T>(bias.cast<py::array>(), "bias", sp.o);
  T* yd = mutable_data_of<T>(y, "out", p.n * sp.o * p.oh * p.ow);
  py::gil_scoped_release release;
  pycnn::separable_conv2d(sp, xd, dwd, pwd, bd, yd);
}

struct SeparablePlan {
  pycnn::SeparableConv2dParams params;
  bool float64 = false;
  std::vector<py::ssize_t> result_shape;

  template <class T>
  py::array run_typed(const py::handle& x, const py::handle& dw, const py::handle& pw, const py::handle& bias,
                      const py::object& out) const {
    const PlanArray<T> xa = plan_array<T>(x), da = plan_array<T>(dw), pa = plan_array<T>(pw);
    py::array y = plan_result<T>(out, result_shape);
    separable_typed<T>(params, xa, da, pa, plan_optional<T>(bias), y);
    return y;
  }

  py::array run(const py::handle& x, const py::handle& dw, const py::handle& pw, const py::handle& bias,
                const py::object& out) const {
    return float64 ? run_typed<double>(x, dw, pw, bias, out) : run_typed<float>(x, dw, pw, bias, out);
  }
};

int64_t separable_scratch_bytes(py::tuple geometry, int64_t o, int layout, int element_size) {
  pycnn::SeparableConv2dParams sp;
  sp.depthwise = depthwise_params(geometry, layout, 0, 0.0);
  sp.o = o;
  return pycnn::separable_conv2d_scratch_bytes(sp, element_size);
}

template <class T>
void conv_transpose_typed(const pycnn::ConvTranspose2dParams& p, const py::array& x, const py::array& w,
                          const py::object& bias, py::array& y, const py::object& w_phases) {
  const int64_t weight_size = p.c * (p.o / p.groups) * p.kh * p.kw;
  const T* xd = data_of<T>(x, "x", p.n * p.c * p.h * p.w);
  const T* wd = data_of<T>(w, "weight", weight_size);
  const T* bd = bias.is_none() ? nullptr : data_of<T>(bias.cast<py::array>(), "bias", p.o);
  const int64_t prepared_size =
      p.weight_winograd_given ? 16 * p.c * pycnn::winograd_weights_stride(p.stride_h * p.stride_w * p.o) : weight_size;
  const T* phases =
      w_phases.is_none() ? nullptr : data_of<T>(w_phases.cast<py::array>(), "weight_phases", prepared_size);
  T* yd = mutable_data_of<T>(y, "out", p.n * p.o * p.oh * p.ow);
  py::gil_scoped_release release;
  pycnn::conv_transpose2d(p, xd, wd, bd, yd, phases);
}

// geometry: (n, c, h, w, o, kh, kw, oh, ow, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left, groups)
pycnn::ConvTranspose2dParams conv_transpose_params(const py::tuple& geometry, int layout, int activation,
                                                   double activation_param, int algorithm,
                                                   bool weight_winograd_given) {
  if (geometry.size() != 16) throw std::invalid_argument("conv_transpose2d: geometry must have 16 entries");
  pycnn::ConvTranspose2dParams p;
  int64_t* fields[] = {&p.n, &p.c, &p.h, &p.w, &p.o, &p.kh, &p.kw, &p.oh, &p.ow, &p.stride_h,
                       &p.stride_w, &p.dilation_h, &p.dilation_w, &p.pad_top, &p.pad_left, &p.groups};
  for (size_t i = 0; i < 16; ++i) *fields[i] = geometry[i].cast<int64_t>();
  p.layout = (pycnn::Layout)layout;
  p.activation = (pycnn::Activation)activation;
  p.activation_param = activation_param;
  p.algorithm = (pycnn::ConvTransposeAlgorithm)algorithm;
  p.weight_winograd_given = weight_winograd_given;
  return p;
}

// The plan of an op on (x, weight, bias): depthwise_conv2d.
template <class Params, void (*RunFloat)(const Params&, const py::array&, const py::array&, const py::object&,
                                         py::array&),
          void (*RunDouble)(const Params&, const py::array&, const py::array&, const py::object&, py::array&)>
struct WeightedPlan {
  Params params;
  bool float64 = false;
  std::vector<py::ssize_t> result_shape;

  template <class T>
  py::array run_typed(const py::handle& x, const py::handle& w, const py::handle& bias, const py::object& out) const {
    const PlanArray<T> xa = plan_array<T>(x), wa = plan_array<T>(w);
    py::array y = plan_result<T>(out, result_shape);
    (std::is_same_v<T, double> ? RunDouble : RunFloat)(params, xa, wa, plan_optional<T>(bias), y);
    return y;
  }

  py::array run(const py::handle& x, const py::handle& w, const py::handle& bias, const py::object& out) const {
    return float64 ? run_typed<double>(x, w, bias, out) : run_typed<float>(x, w, bias, out);
  }
};

using DepthwisePlan = WeightedPlan<pycnn::DepthwiseConv2dParams, depthwise_typed<float>, depthwise_typed<double>>;

// The plan of an op on x alone (pooling): x -> y.
template <class Params, void (*RunFloat)(const Params&, const py::array&, py::array&),
          void (*RunDouble)(const Params&, const py::array&, py::array&)>
struct InputPlan {
  Params params;
  bool float64 = false;
  std::vector<py::ssize_t> result_shape;

  template <class T>
  py::array run_typed(const py::handle& x, const py::object& out) const {
    const PlanArray<T> xa = plan_array<T>(x);
    py::array y = plan_result<T>(out, result_shape);
    (std::is_same_v<T, double> ? RunDouble : RunFloat)(params, xa, y);
    return y;
  }

  py::array run(const py::handle& x, const py::object& out) const {
    return float64 ? run_typed<double>(x, out) : run_typed<float>(x, out);
  }
};

using Pool2dPlan = InputPlan<pycnn::Pool2dParams, pool2d_typed<float>, pool2d_typed<double>>;
// Its result_shape holds the n*c values.
using GlobalPool2dPlan = InputPlan<GlobalPool2dParams, global_pool2d_typed<float>, global_pool2d_typed<double>>;

// conv_transpose2d's, whose prepared form is a PackedConvTranspose2dWeight's phase matrices or,
// with params.weight_winograd_given, its Winograd transform.
struct ConvTranspose2dPlan
    : PreparedWeightPlan<pycnn::ConvTranspose2dParams, conv_transpose_typed<float>, conv_transpose_typed<double>> {
  std::string explain() const {
    std::string why;
    pycnn::choose_conv_transpose2d_algorithm(params, &why);
    return why;
  }
};

template <class Plan>
void bind_weighted_plan(py::module_& m, const char* name,
                        decltype(Plan::params) (*make)(const py::tuple&, int, int, double)) {
  py::class_<Plan>(m, name)
      .def(py::init([make](const py::tuple& geometry, int layout, int activation, double param, bool float64,
                           std::vector<py::ssize_t> result_shape) {
             return Plan{make(geometry, layout, activation, param), float64, std::move(result_shape)};
           }),
           py::arg("geometry"), py::arg("layout"), py::arg("activation"), py::arg("activation_param"),
           py::arg("float64"), py::arg("result_shape"))
      .def("__call__", &Plan::run, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(),
           py::arg("out") = py::none());
}

// PlanCache runners: a cached plan's call with no out=.
py::object run_conv2d_plan(void* plan, const py::handle& x, const py::handle& w, const py::handle& bias,
                           const py::handle& prepared) {
  return static_cast<const Conv2dPlan*>(plan)->run(x, w, bias, py::none(), prepared);
}
py::object run_depthwise_plan(void* plan, const py::handle& x, const py::handle& w, const py::handle& bias,
                              const py::handle&) {
  return static_cast<const DepthwisePlan*>(plan)->run(x, w, bias, py::none());
}
py::object run_pool2d_plan(void* plan, const py::handle& x, const py::handle&, const py::handle&, const py::handle&) {
  return static_cast<const Pool2dPlan*>(plan)->run(x, py::none());
}
py::object run_global_pool2d_plan(void* plan, const py::handle& x, const py::handle&, const py::handle&,
                                  const py::handle&) {
  return static_cast<const GlobalPool2dPlan*>(plan)->run(x, py::none());
}
py::object run_separable_plan(void* plan, const py::handle& x, const py::handle& weights, const py::handle& bias,
                              const py::handle&) {
  const py::tuple w = py::reinterpret_borrow<py::tuple>(weights);  // (depthwise, pointwise), as keyed
  return static_cast<const SeparablePlan*>(plan)->run(x, w[0], w[1], bias, py::none());
}
py::object run_conv_transpose2d_plan(void* plan, const py::handle& x, const py::handle& w, const py::handle& bias,
                                     const py::handle& prepared) {
  return static_cast<const ConvTranspose2dPlan*>(plan)->run(x, w, bias, py::none(), prepared);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "pycnn C++ core (use pycnn.ops; these entry points assume validated arguments)";

  py::class_<Conv2dPlan>(m, "Conv2dPlan")
      .def(py::init([](const py::tuple& geometry, int layout, int activation, double param, int algorithm,
                       bool weight_hwio_given, bool float64, std::vector<py::ssize_t> result_shape,
                       bool weight_winograd_given) {
             return Conv2dPlan{{conv2d_params(geometry, layout, activation, param, algorithm, weight_hwio_given,
                                              weight_winograd_given),
                                float64, std::move(result_shape)}};
           }),
           py::arg("geometry"), py::arg("layout"), py::arg("activation"), py::arg("activation_param"),
           py::arg("algorithm"), py::arg("weight_hwio_given") = false, py::arg("float64") = false,
           py::arg("result_shape") = std::vector<py::ssize_t>{}, py::arg("weight_winograd_given") = false)
      .def("__call__", &Conv2dPlan::run, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(),
           py::arg("out") = py::none(), py::arg("weight_hwio") = py::none())
      .def_property_readonly("uses_hwio", [](const Conv2dPlan& plan) { return plan.params.weight_hwio_given; })
      // The `stride` of the Winograd weights a Winograd call takes (pycnn::conv2d_winograd_stride).
      .def_property_readonly("winograd_stride",
                             [](const Conv2dPlan& plan) { return pycnn::conv2d_winograd_stride(plan.params); })
      // The algorithm a call runs (`Auto` resolved; Winograd may still recompute directly when a
      // value is not finite).
      .def_property_readonly("algorithm",
                             [](const Conv2dPlan& plan) {
                               return (int)(plan.params.algorithm == pycnn::ConvAlgorithm::Auto
                                                ? pycnn::choose_conv2d_algorithm(plan.params)
                                                : plan.params.algorithm);
                             })
      .def("explain", &Conv2dPlan::explain);
  bind_weighted_plan<DepthwisePlan>(m, "DepthwisePlan", depthwise_params);
  py::class_<ConvTranspose2dPlan>(m, "ConvTranspose2dPlan")
      .def(py::init([](const py::tuple& geometry, int layout, int activation, double param, bool float64,
                       std::vector<py::ssize_t> result_shape, int algorithm, bool weight_winograd_given) {
             return ConvTranspose2dPlan{
                 {conv_transpose_params(geometry, layout, activation, param, algorithm, weight_winograd_given),
                  float64, std::move(result_shape)}};
           }),
           py::arg("geometry"), py::arg("layout"), py::arg("activation"), py::arg("activation_param"),
           py::arg("float64"), py::arg("result_shape"), py::arg("algorithm") = 0,
           py::arg("weight_winograd_given") = false)
      .def("__call__", &ConvTranspose2dPlan::run, py::arg("x"), py::arg("weight"), py::arg("bias") = py::none(),
           py::arg("out") = py::none(), py::arg("weight_phases") = py::none())
      .def("explain", &ConvTranspose2dPlan::explain)
      // The algorithm a call runs (`Auto` resolved; Winograd may still recompute when a value
      // comes out non-finite).
      .def_property_readonly("algorithm", [](const ConvTranspose2dPlan& plan) {
        return (int)(plan.params.algorithm == pycnn::ConvTransposeAlgorithm::Auto
                         ? pycnn::choose_conv_transpose2d_algorithm(plan.params)
                         : plan.params.algorithm);
      });
  py::class_<Pool2dPlan>(m, "Pool2dPlan")
      .def(py::init([](const py::tuple& geometry, int layout, int kind, bool count_include_pad, bool float64,
                       std::vector<py::ssize_t> result_shape) {
             return Pool2dPlan{pool2d_params(geometry, layout, kind, count_include_pad), float64,
                               std::move(result_shape)};
           }),
           py::arg("geometry"), py::arg("layout"), py::arg("kind"), py::arg("count_include_pad"), py::arg("float64"),
           py::arg("result_shape"))
      .def("__call__", &Pool2dPlan::run, py::arg("x"), py::arg("out") = py::none());
  py::class_<GlobalPool2dPlan>(m, "GlobalPool2dPlan")
      .def(py::init([](int kind, int layout, int64_t n, int64_t c, int64_t h, int64_t w, bool float64,
                       std::vector<py::ssize_t> result_shape) {
             return GlobalPool2dPlan{{kind, layout, n, c, h, w}, float64, std::move(result_shape)};
           }),
           py::arg("kind"), py::arg("layout"), py::arg("n"), py::arg("c"), py::arg("h"), py::arg("w"),
           py::arg("float64"), py::arg("result_shape"))
      .def("__call__", &GlobalPool2dPlan::run, py::arg("x"), py::arg("out") = py::none());
  m.def("depth_max_pool2d", &depth_max_pool2d, py::arg("x"), py::arg("out"), py::arg("n"), py::arg("c"),
        py::arg("h"), py::arg("w"), py::arg("pool_size"), py::arg("layout"));
  py::class_<SeparablePlan>(m, "SeparablePlan")
      .def(py::init([](const py::tuple& geometry, int64_t o, int layout, int activation, double param, bool float64,
                       std::vector<py::ssize_t> result_shape) {
             pycnn::SeparableConv2dParams sp;
             sp.depthwise = depthwise_params(geometry, layout, activation, param);
             sp.o = o;
             return SeparablePlan{sp, float64, std::move(result_shape)};
           }),
           py::arg("geometry"), py::arg("o"), py::arg("layout"), py::arg("activation"), py::arg("activation_param"),
           py::arg("float64"), py::arg("result_shape"))
      .def("__call__", &SeparablePlan::run, py::arg("x"), py::arg("depthwise_weight"), py::arg("pointwise_weight"),
           py::arg("bias") = py::none(), py::arg("out") = py::none());
  // A cache of plans by call arguments (plan_cache.h): Conv2dPlans, DepthwisePlans (depthwise_conv2d,
  // and conv2d's groups == channels), SeparablePlans (weight: the tuple of both weights),
  // ConvTranspose2dPlans, Pool2dPlans or GlobalPool2dPlans (weight and bias None),
  // run on (x, weight, bias) as pycnn.ops validated them for equal options.
  py::class_<pycnn_python::PlanCache>(m, "PlanCache")
      .def(py::init<py::object, const std::vector<std::string>&>(), py::arg("packed_type") = py::none(),
           py::arg("packed_fields") = std::vector<std::string>{})
      // cache.runner()(x, weight, bias, options): the result, or None when nothing is cached.
      .def("runner", [](const py::object& self) { return pycnn_python::PlanCache::runner(self); })
      .def(
          "remember",
          [](pycnn_python::PlanCache& cache, const py::handle& x, const py::handle& w, const py::handle& bias,
             const py::handle& options, const py::object& plan, const py::object& prepared) {
            // Caches `plan` with `run` when it is a Plan (tag: a null Plan*); whether it was one.
            const auto remember_as = [&](auto* tag, pycnn_python::PlanCache::Runner run) {
              using Plan = std::remove_pointer_t<decltype(tag)>;
              if (!py::isinstance<Plan>(plan)) return false;
              cache.remember(x, w, bias, options, plan, &plan.cast<Plan&>(), run, prepared);
              return true;
            };
            if (!(remember_as((Conv2dPlan*)nullptr, run_conv2d_plan) ||
                  remember_as((DepthwisePlan*)nullptr, run_depthwise_plan) ||
                  remember_as((SeparablePlan*)nullptr, run_separable_plan) ||
                  remember_as((ConvTranspose2dPlan*)nullptr, run_conv_transpose2d_plan) ||
                  remember_as((Pool2dPlan*)nullptr, run_pool2d_plan) ||
                  remember_as((GlobalPool2dPlan*)nullptr, run_global_pool2d_plan)))
              throw std::invalid_argument("PlanCache.remember: plan must be a Conv2dPlan, DepthwisePlan, "
                                          "SeparablePlan, ConvTranspose2dPlan, Pool2dPlan or GlobalPool2dPlan");
          },
          py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("options"), py::arg("plan"),
          py::arg("prepared") = py::none())
      .def("clear", &pycnn_python::PlanCache::clear)
      .def("__len__", &pycnn_python::PlanCache::size);
  m.def("separable_scratch_bytes", &separable_scratch_bytes, py::arg("geometry"), py::arg("o"),
        py::arg("layout"), py::arg("element_size"));

  // Winograd weights of a 3x3, one-group conv2d weight (OIHW for layout 0, HWIO for 1) for calls
  // at stride 1 or 2 (F(2x2, 3x3), each stride its own transform) into u: (16, C,
  // winograd_weights_stride(O)), C-contiguous, of the weight's dtype.
  m.def("winograd_weights_stride", &pycnn::winograd_weights_stride, py::arg("o"));
  m.def(
      "conv2d_winograd_weights",
      [](const py::array& w, int layout, int64_t stride, py::array& u) {
        if (w.ndim() != 4) throw std::invalid_argument("conv2d_winograd_weights: weight must be 4-D");
        const bool nchw = layout == 0;
        const int64_t o = w.shape(nchw ? 0 : 3), c = w.shape(nchw ? 1 : 2);
        if (w.shape(nchw ? 2 : 0) != 3 || w.shape(nchw ? 3 : 1) != 3)
          throw std::invalid_argument("conv2d_winograd_weights: weight must be 3x3");
        auto run = [&](auto zero) {
          using T = decltype(zero);
          const T* wd = data_of<T>(w, "weight", o * c * 9);
          T* ud = mutable_data_of<T>(u, "u", 16 * c * pycnn::winograd_weights_stride(o));
          py::gil_scoped_release release;
          pycnn::conv2d_winograd_weights((pycnn::Layout)layout, c, o, stride, wd, ud);
        };
        if (stride != 1 && stride != 2) throw std::invalid_argument("conv2d_winograd_weights: stride must be 1 or 2");
        if (w.dtype().is(py::dtype::of<double>())) run(0.0);
        else run(0.0f);
      },
      py::arg("weight"), py::arg("layout"), py::arg("stride"), py::arg("u"));
  // Winograd F(3x3, 2x2) weights of a conv_transpose2d weight with a kernel twice the stride and
  // one group ((C, O, KH, KW) for layout 0, (KH, KW, O, C) for 1) into u: (16, C,
  // winograd_weights_stride(stride_h * stride_w * O)), C-contiguous, of the weight's dtype.
  m.def(
      "conv_transpose2d_winograd_weights",
      [](const py::array& w, int layout, int64_t stride_h, int64_t stride_w, py::array& u) {
        if (w.ndim() != 4) throw std::invalid_argument("conv_transpose2d_winograd_weights: weight must be 4-D");
        const bool nchw = layout == 0;
        const int64_t c = w.shape(nchw ? 0 : 3), o = w.shape(nchw ? 1 : 2);
        if (stride_h < 1 || stride_w < 1 || w.shape(nchw ? 2 : 0) != 2 * stride_h ||
            w.shape(nchw ? 3 : 1) != 2 * stride_w)
          throw std::invalid_argument("conv_transpose2d_winograd_weights: the kernel must be twice the stride");
        auto run = [&](auto zero) {
          using T = decltype(zero);
          const T* wd = data_of<T>(w, "weight", c * o * 4 * stride_h * stride_w);
          T* ud = mutable_data_of<T>(u, "u", 16 * c * pycnn::winograd_weights_stride(stride_h * stride_w * o));
          py::gil_scoped_release release;
          pycnn::conv_transpose2d_winograd_weights((pycnn::Layout)layout, c, o, stride_h, stride_w, wd, ud);
        };
        if (w.dtype().is(py::dtype::of<double>())) run(0.0);
        else run(0.0f);
      },
      py::arg("weight"), py::arg("layout"), py::arg("stride_h"), py::arg("stride_w"), py::arg("u"));
  m.def("cpu_features", &pycnn::cpu_features);
  m.def("cpu_vendor", &pycnn::cpu_vendor);
  m.def("available_isas", [] {
    py::list out;
    for (pycnn::Isa isa : pycnn::available_isas()) out.append(pycnn::isa_name(isa));
    return out;
  });
  m.def("get_isa", [] { return std::string(pycnn::isa_name(pycnn::current_isa())); });
  m.def("set_isa", [](const std::string& name) { pycnn::set_isa(pycnn::isa_from_name(name)); },
        py::arg("isa"));
  m.def("l2_cache_bytes", &pycnn::l2_cache_bytes);
  m.def("set_l2_cache_bytes", &pycnn::set_l2_cache_bytes, py::arg("bytes"));
  m.def("zmm_shuffles_cheap", &pycnn::zmm_shuffles_cheap);
  m.def("set_zmm_shuffles_cheap", &pycnn::set_zmm_shuffles_cheap, py::arg("cheap"));
  m.def("hardware_follows_rows", &pycnn::hardware_follows_rows);
  m.def("set_hardware_follows_rows", &pycnn::set_hardware_follows_rows, py::arg("follows"));
  m.def("get_num_threads", &pycnn::num_threads);
  m.def("set_num_threads", &pycnn::set_num_threads, py::arg("n"));
  m.def("fma_peak_gflops", [](int threads, double seconds) {
    py::gil_scoped_release release;
    return pycnn::measure_fma_peak_gflops(threads, seconds);
  }, py::arg("threads"), py::arg("seconds") = 0.2);
  m.def("copy_bandwidth_gbs", [](int threads, size_t bytes) {
    py::gil_scoped_release release;
    return pycnn::measure_copy_bandwidth_gbs(threads, bytes);
  }, py::arg("threads"), py::arg("bytes") = size_t(512) << 20);
  m.def("openmp_runtime", &pycnn::openmp_runtime);
  m.def("compiler", &pycnn::compiler);
  m.def("compile_flags", &pycnn::compile_flags);

  // Fail at import, with PYCNN_ISA named, rather than at the first op call.
  pycnn::current_isa();
}
