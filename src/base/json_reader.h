// A pull reader for JSON text, for hot paths where building a DOM costs more than the work itself
// (a log-batch of 1000 metrics: nlohmann::json spends 70% of the request allocating and freeing its
// tree). Reads strictly RFC 8259 JSON; any error makes ok() false and every later call a no-op, so
// callers check once at the end. Skip() refuses nesting deeper than 256.
#pragma once

#include <string>
#include <string_view>

namespace cairn {

class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : s_(text) {}

  bool ok() const { return ok_; }
  void Fail() { ok_ = false; }
  // True when only whitespace is left.
  bool AtEnd();

  enum class Kind { kObject, kArray, kString, kNumber, kTrue, kFalse, kNull, kBad };
  // The kind of the next value, without consuming it.
  Kind Peek();

  // Objects: BeginObject(), then NextKey(&k) until it returns false (it consumes the ':' and the
  // ',').
  bool BeginObject();
  bool NextKey(std::string* key);
  // Arrays: BeginArray(), then NextElement() before each element until it returns false.
  bool BeginArray();
  bool NextElement();

  bool String(std::string* out);
  // A JSON number as a double or an exact int64 (false for a fraction, an exponent or overflow).
  bool Double(double* out);
  bool Int(long long* out);
  bool Null();
  // Skips any one value.
  bool Skip(int depth = 0);

 private:
  void Ws();
  bool Consume(char c);
  std::string_view s_;
  size_t i_ = 0;
  bool ok_ = true;
  // Per open container: whether its first member was read.
  std::string first_;
};

}  // namespace cairn
