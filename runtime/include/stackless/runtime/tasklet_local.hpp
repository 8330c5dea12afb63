// SPDX-License-Identifier: Apache-2.0
// stackless/runtime/tasklet_local.hpp — tasklet_local<T>: one value per tasklet
// (stacklesslib util.local).
#pragma once

#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace stackless {

namespace detail {
/// local_new_key() hands out keys that are never reused (a new tasklet_local at the address of a
/// destroyed one must not see its values).
std::uint64_t local_new_key() noexcept;
/// local_find() is the calling tasklet's (or plain thread's) value for `key`, or null.
void* local_find(std::uint64_t key) noexcept;
/// local_insert() stores v for `key`; `destroy` runs when the tasklet (or thread) ends.
void local_insert(std::uint64_t key, void* v, void (*destroy)(void*) noexcept);
/// local_erase() destroys and forgets the calling tasklet's value for `key`, if any.
void local_erase(std::uint64_t key) noexcept;
}  // namespace detail

/// tasklet_local<T> gives every tasklet its own T (stacklesslib util.local; thread_local for
/// tasklets). get() makes the calling tasklet's value on first use (T's default constructor, or
/// the factory given to the constructor) and returns it; every later call in that tasklet returns
/// the same object, on any worker. The value is destroyed when its tasklet ends — on the
/// tasklet's own stack, after its function returned — or by reset(). A plain thread has its own
/// values too, destroyed when the thread exits. Destroying the tasklet_local itself does not
/// destroy the values already made (they go with their tasklets). Value destructors must not
/// throw and should not block.
template <class T>
class tasklet_local {
 public:
  tasklet_local() : make_(+[]() -> T* { return new T(); }) {}
  /// With a factory: `f()` returns the initial T of each tasklet.
  template <class F, class = std::enable_if_t<std::is_invocable_r_v<T, F&>>>
  explicit tasklet_local(F f)
      : factory_(new F(std::move(f))),
        factory_call_(+[](void* p) -> T* { return new T((*static_cast<F*>(p))()); }),
        factory_free_(+[](void* p) noexcept { delete static_cast<F*>(p); }) {}
  ~tasklet_local() {
    if (factory_free_) factory_free_(factory_);
  }
  tasklet_local(const tasklet_local&) = delete;
  tasklet_local& operator=(const tasklet_local&) = delete;

  /// get() is the calling tasklet's value, made on first use.
  T& get() {
    if (void* p = detail::local_find(key_)) return *static_cast<T*>(p);
    T* v = factory_call_ ? factory_call_(factory_) : make_();
    try {
      detail::local_insert(
          key_, v, +[](void* p) noexcept { delete static_cast<T*>(p); });
    } catch (...) {
      delete v;
      throw;
    }
    return *v;
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }
  /// has_value() tells whether the calling tasklet has made its value.
  bool has_value() const noexcept { return detail::local_find(key_) != nullptr; }
  /// reset() destroys the calling tasklet's value (the next get() makes a new one).
  void reset() noexcept { detail::local_erase(key_); }

 private:
  const std::uint64_t key_ = detail::local_new_key();
  T* (*make_)() = nullptr;
  void* factory_ = nullptr;
  T* (*factory_call_)(void*) = nullptr;
  void (*factory_free_)(void*) noexcept = nullptr;
};

}  // namespace stackless
