// The plans of recent calls, found from the call's own arguments without Python code: a repeated
// small call (1x1x8x8 input, 3x3 kernel) then skips pycnn.ops' argument normalisation and its
// Python key (~3 us of a ~6 us call on a 2.4 GHz Zen 1).
//
// A key is the arrays' shapes and dtypes and the call's options. Weight and bias may be None, the
// weight a tuple of arrays, or a packed weight of the cache's packed type (its `weight` array and
// the attributes it was packed for). Options compare by exact type and value: ints, bools, strs,
// None and tuples of them, so 1, 1.0, True and np.int64(1) never share a plan. Any other type, an
// ndarray subclass, an int past int64 or a key past kMaxKey words is not cached: pycnn.ops takes
// its own path. Every item of a key starts with its tag, so no two calls' keys run together.
// The arrays are those of an earlier call that pycnn.ops validated with equal options, so the
// plan's checks are the only ones left (dtype and contiguity are converted there as for any call).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace pycnn_python {

namespace py = pybind11;

class PlanCache {
 public:
  // Runs a cached plan on (x, weight array, bias, the packed weight's prepared form or None); the
  // plan object is the first argument.
  using Runner = py::object (*)(void* plan, const py::handle& x, const py::handle& weight, const py::handle& bias,
                                const py::handle& prepared);

  static constexpr size_t kMaxEntries = 256;  // then cleared, as pycnn.ops' own caches

  // packed_type: the class of the op's packed weights (None: array weights only); packed_fields:
  // the attributes of one that a plan depends on besides its `weight` array.
  PlanCache(py::object packed_type, const std::vector<std::string>& packed_fields)
      : packed_type_(std::move(packed_type)), weight_name_(py::str("weight")) {
    for (const std::string& f : packed_fields) packed_fields_.push_back(py::str(f));
  }

  // The result of the plan cached for these arguments, or None (not cached, or not cacheable).
  py::object run(const py::handle& x, const py::handle& weight, const py::handle& bias,
                 const py::handle& options) const {
    Key key;
    py::object w;
    if (!make_key(x, weight, bias, options, key, w)) return py::none();
    const auto it = entries_.find(key);
    if (it == entries_.end()) return py::none();
    const Entry entry = it->second;  // holds the plan while the call runs without the GIL
    const py::object prepared =
        entry.prepared.is_none() ? py::object(py::none()) : py::object(weight.attr(entry.prepared));
    return entry.run(entry.plan, x, w, bias, prepared);
  }

  // Caches `plan_object` (whose C++ object `plan` runs through `run`) for these arguments, when they
  // can be keyed. prepared: the packed weight's attribute that the plan also reads, or None.
  void remember(const py::handle& x, const py::handle& weight, const py::handle& bias, const py::handle& options,
                py::object plan_object, void* plan, Runner run, py::object prepared) {
    Key key;
    py::object w;
    if (!make_key(x, weight, bias, options, key, w)) return;
    if (entries_.size() >= kMaxEntries) entries_.clear();
    entries_[key] = Entry{std::move(plan_object), plan, run, std::move(prepared)};
  }

  // A function (x, weight, bias, options) -> run(...), of the cache object `self` (a PlanCache),
  // called without pybind11's dispatcher: its argument matching took ~0.4 us of a 3.7 us call.
  static py::object runner(const py::object& self) {
    static PyMethodDef def = {"run", (PyCFunction)(void (*)(void))call, METH_FASTCALL,
                              "run(x, weight, bias, options): the cached plan's result, or None"};
    // The function holds the capsule, the capsule's context (a reference) the cache's Python object.
    const auto release = [](PyObject* c) { Py_XDECREF((PyObject*)PyCapsule_GetContext(c)); };
    const auto capsule = py::reinterpret_steal<py::object>(PyCapsule_New(self.cast<PlanCache*>(), kCapsule, release));
    if (!capsule) throw py::error_already_set();
    PyCapsule_SetContext(capsule.ptr(), self.inc_ref().ptr());
    PyObject* f = PyCFunction_New(&def, capsule.ptr());
    if (!f) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(f);
  }

  void clear() { entries_.clear(); }
  size_t size() const { return entries_.size(); }

 private:
  static constexpr size_t kMaxKey = 96;  // words; a conv2d call with every option spelled out takes ~60
  static constexpr const char* kCapsule = "pycnn.PlanCache";

  static PyObject* call(PyObject* capsule, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 4) {
      PyErr_SetString(PyExc_TypeError, "run(x, weight, bias, options) takes 4 arguments");
      return nullptr;
    }
    const auto* cache = static_cast<const PlanCache*>(PyCapsule_GetPointer(capsule, kCapsule));
    if (!cache) return nullptr;
    try {
      return cache->run(args[0], args[1], args[2], args[3]).release().ptr();
    } catch (py::error_already_set& e) {
      e.restore();
    } catch (const py::builtin_exception& e) {
      e.set_error();
    } catch (const std::bad_alloc&) {
      PyErr_NoMemory();
    } catch (const std::invalid_argument& e) {  // as pybind11 translates the plan's own errors
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return nullptr;
  }

  struct Key {
    std::array<int64_t, kMaxKey> words;
    size_t size = 0;

    bool push(int64_t v) {
      if (size == kMaxKey) return false;
      words[size++] = v;
      return true;
    }
    bool operator==(const Key& k) const {
      return size == k.size && std::memcmp(words.data(), k.words.data(), size * sizeof(int64_t)) == 0;
    }
  };

  struct KeyHash {
    size_t operator()(const Key& k) const {
      uint64_t h = 1469598103934665603ull;  // FNV-1a over the words
      for (size_t i = 0; i < k.size; ++i) h = (h ^ (uint64_t)k.words[i]) * 1099511628211ull;
      return (size_t)h;
    }
  };

  struct Entry {
    py::object plan_object;  // keeps `plan` alive
    void* plan;
    Runner run;
    py::object prepared;  // the name of the packed weight's prepared form, or None
  };

  enum Tag : int64_t { kNone = 1, kBool, kInt, kStr, kTuple, kPacked, kArray };

  // An exact ndarray's rank, dims and dtype number.
  static bool push_array(const py::handle& a, Key& key) {
    const auto& api = py::detail::npy_api::get();
    if (Py_TYPE(a.ptr()) != (PyTypeObject*)api.PyArray_Type_) return false;
    const auto* proxy = py::detail::array_proxy(a.ptr());
    if (!key.push(kArray) || !key.push(proxy->nd)) return false;
    for (int i = 0; i < proxy->nd; ++i)
      if (!key.push((int64_t)proxy->dimensions[i])) return false;
    return key.push(py::detail::array_descriptor_proxy(proxy->descr)->type_num);
  }

  static bool push_option(const py::handle& o, Key& key, int depth) {
    PyObject* p = o.ptr();
    if (p == Py_None) return key.push(kNone);
    if (p == Py_True || p == Py_False) return key.push(kBool) && key.push(p == Py_True);
    if (PyLong_CheckExact(p)) {
      int overflow = 0;
      const long long v = PyLong_AsLongLongAndOverflow(p, &overflow);
      return !overflow && key.push(kInt) && key.push(v);
    }
    if (PyUnicode_CheckExact(p)) {
      Py_ssize_t n = 0;
      const char* s = PyUnicode_AsUTF8AndSize(p, &n);
      if (!s) {
        PyErr_Clear();  // a lone surrogate: not keyed, pycnn.ops says what is wrong with it
        return false;
      }
      if (!key.push(kStr) || !key.push(n)) return false;
      for (Py_ssize_t i = 0; i < n; i += 8) {
        int64_t word = 0;
        std::memcpy(&word, s + i, (size_t)std::min<Py_ssize_t>(8, n - i));
        if (!key.push(word)) return false;
      }
      return true;
    }
    if (PyTuple_CheckExact(p) && depth < 3) {
      const Py_ssize_t n = PyTuple_GET_SIZE(p);
      if (!key.push(kTuple) || !key.push(n)) return false;
      for (Py_ssize_t i = 0; i < n; ++i)
        if (!push_option(PyTuple_GET_ITEM(p, i), key, depth + 1)) return false;
      return true;
    }
    return false;
  }

  // An attribute of `o`, or null (and no Python error) when it has none.
  static py::object attribute(const py::handle& o, const py::object& name) {
    PyObject* v = PyObject_GetAttr(o.ptr(), name.ptr());
    if (!v) PyErr_Clear();
    return py::reinterpret_steal<py::object>(v);
  }

  // The key of a call, and its weight as an array (a packed weight's `weight`) in `w`.
  bool make_key(const py::handle& x, const py::handle& weight, const py::handle& bias, const py::handle& options,
                Key& key, py::object& w) const {
    if (!push_array(x, key)) return false;
    if (weight.is_none()) {
      if (!key.push(kNone)) return false;
    } else if (!packed_type_.is_none() && Py_TYPE(weight.ptr()) == (PyTypeObject*)packed_type_.ptr()) {
      w = attribute(weight, weight_name_);
      if (!w || !key.push(kPacked) || !push_array(w, key)) return false;
      for (const py::object& field : packed_fields_) {
        const py::object v = attribute(weight, field);
        if (!v || !push_option(v, key, 1)) return false;
      }
    } else if (PyTuple_CheckExact(weight.ptr())) {  // several weight arrays (separable_conv2d's two)
      const Py_ssize_t n = PyTuple_GET_SIZE(weight.ptr());
      if (!key.push(kTuple) || !key.push(n)) return false;
      for (Py_ssize_t i = 0; i < n; ++i)
        if (!push_array(PyTuple_GET_ITEM(weight.ptr(), i), key)) return false;
    } else {
      if (!push_array(weight, key)) return false;
    }
    if (!w) w = py::reinterpret_borrow<py::object>(weight);
    if (bias.is_none() ? !key.push(kNone) : !push_array(bias, key)) return false;
    return PyTuple_CheckExact(options.ptr()) && push_option(options, key, 0);
  }

  py::object packed_type_;
  py::object weight_name_;
  std::vector<py::object> packed_fields_;
  std::unordered_map<Key, Entry, KeyHash> entries_;
};

}  // namespace pycnn_python
