// Lifetime: lets the Accelerator, which keeps references to the data loaders, schedulers and checkpoint objects a
// user prepared or registered (Python keeps them alive by reference counting; C++ cannot), see whether one still
// exists before it reads it, and tell a new object at a freed address from the old one.
#pragma once

#include <memory>

namespace accelerate {

/// A member of each object the Accelerator refers to without owning it. Every object has a token of its own: a
/// copy or a move gets a new one (it is another object), and the token ends with the object.
class Lifetime {
 public:
  Lifetime() : token_(std::make_shared<char>()) {}
  Lifetime(const Lifetime&) : Lifetime() {}
  Lifetime& operator=(const Lifetime&) { return *this; }  // the object keeps its own token
  ~Lifetime() = default;
  /// Expires when the object is destroyed.
  std::weak_ptr<const void> watch() const { return token_; }

 private:
  std::shared_ptr<char> token_;
};

/// A reference to an object that has a Lifetime, which knows when the object is gone.
template <class T>
class Watched {
 public:
  Watched(T& object, const Lifetime& lifetime) : object_(&object), alive_(lifetime.watch()) {}
  bool alive() const { return !alive_.expired(); }
  /// The object; only while alive().
  T& get() const { return *object_; }
  bool refers_to(const T& object) const { return alive() && object_ == &object; }

 private:
  T* object_;
  std::weak_ptr<const void> alive_;
};

}  // namespace accelerate
