// JMESPath (https://jmespath.org/specification.html), the query language of `az ... --query`: a
// lexer, a Pratt parser and an evaluator following the reference implementation (Python's
// `jmespath`, which the Azure CLI uses), checked against the official compliance suite and
// differentially against python3-jmespath. Debian packages no C++ implementation, so this one is
// ours (ARCHITECTURE.md) and has a fuzz target (fuzz/jmespath_fuzz.cc).
//
// Values are nlohmann::ordered_json: objects keep their keys' order, as Python's dicts do (keys(),
// values() and multiselect hashes depend on it). Bounded: expressions of at most 64 KiB and 256
// levels of nesting. Pure functions; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cairn::jmespath {

using Json = nlohmann::ordered_json;

struct Node;

// What went wrong, in the compliance suite's terms: "syntax", "invalid-type", "invalid-value",
// "invalid-arity", "unknown-function".
struct Error {
  std::string kind;
  std::string message;
};

class Expression {
 public:
  // Compiles `text`; on failure returns nullptr and fills `error` (a syntax error, or an unknown
  // function).
  static std::unique_ptr<Expression> Compile(std::string_view text, Error* error);
  ~Expression();
  // Evaluates against `data`; on failure (a function given the wrong types or number of arguments,
  // a slice step of 0) returns false and fills `error`.
  bool Search(const Json& data, Json* result, Error* error) const;

 private:
  explicit Expression(std::shared_ptr<const Node> root);
  std::shared_ptr<const Node> root_;
};

// Compile and Search in one call: true with `result`, or false with `error`.
bool Search(std::string_view expression, const Json& data, Json* result, Error* error);

}  // namespace cairn::jmespath
