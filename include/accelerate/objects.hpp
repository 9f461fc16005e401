// Plain C++ values carried by the object collectives (broadcast_object_list, gather_object): numbers, strings,
// std::vector, std::map / std::unordered_map with string keys, nested, and any JSON type with dump() and parse()
// (nlohmann::json), as HF's pickled Python objects. They travel as c10::IValue, the form torch pickles.
#pragma once

#include <map>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include <ATen/core/Dict.h>
#include <ATen/core/List.h>
#include <ATen/core/ivalue.h>

namespace accelerate::detail {

template <class T>
struct IsVector : std::false_type {};
template <class E, class A>
struct IsVector<std::vector<E, A>> : std::true_type {};

template <class T>
struct IsStringMap : std::false_type {};
template <class V>
struct IsStringMap<std::map<std::string, V>> : std::true_type {};
template <class V>
struct IsStringMap<std::unordered_map<std::string, V>> : std::true_type {};

/// A JSON document type (nlohmann::json): sent as its text.
template <class T>
concept JsonLike = requires(const T& value, const std::string& text) {
  { value.dump() } -> std::convertible_to<std::string>;
  { T::parse(text) } -> std::convertible_to<T>;
};

template <class T>
c10::IValue to_ivalue(const T& value) {
  if constexpr (std::is_same_v<T, c10::IValue>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    return c10::IValue(value);
  } else if constexpr (std::is_integral_v<T>) {
    return c10::IValue(static_cast<int64_t>(value));
  } else if constexpr (std::is_floating_point_v<T>) {
    return c10::IValue(static_cast<double>(value));
  } else if constexpr (std::is_convertible_v<const T&, std::string> && !JsonLike<T>) {
    return c10::IValue(std::string(value));
  } else if constexpr (JsonLike<T>) {
    return c10::IValue(std::string(value.dump()));
  } else if constexpr (IsVector<T>::value) {
    c10::impl::GenericList list(c10::AnyType::get());
    for (const auto& e : value) list.push_back(to_ivalue(e));
    return c10::IValue(std::move(list));
  } else if constexpr (IsStringMap<T>::value) {
    c10::impl::GenericDict dict(c10::StringType::get(), c10::AnyType::get());
    for (const auto& [k, v] : value) dict.insert(k, to_ivalue(v));
    return c10::IValue(std::move(dict));
  } else {
    static_assert(sizeof(T) == 0,
                  "an object collective carries numbers, strings, vectors, string-keyed maps, "
                  "JSON documents or c10::IValue");
  }
}

template <class T>
T from_ivalue(const c10::IValue& value) {
  if constexpr (std::is_same_v<T, c10::IValue>) {
    return value;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value.toBool();
  } else if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(value.toInt());
  } else if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(value.toDouble());
  } else if constexpr (JsonLike<T>) {
    return T::parse(value.toStringRef());
  } else if constexpr (std::is_same_v<T, std::string>) {
    return value.toStringRef();
  } else if constexpr (IsVector<T>::value) {
    T out;
    for (const auto& e : value.toListRef()) out.push_back(from_ivalue<typename T::value_type>(e));
    return out;
  } else if constexpr (IsStringMap<T>::value) {
    T out;
    for (const auto& entry : value.toGenericDict())
      out.emplace(entry.key().toStringRef(), from_ivalue<typename T::mapped_type>(entry.value()));
    return out;
  } else {
    static_assert(sizeof(T) == 0,
                  "an object collective carries numbers, strings, vectors, string-keyed maps, "
                  "JSON documents or c10::IValue");
  }
}

}  // namespace accelerate::detail
