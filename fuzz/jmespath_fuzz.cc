// libFuzzer target: the JMESPath engine behind --query (base/jmespath.h), our own parser. The input
// is an expression, then a NUL, then a JSON document (a fixed one when absent or invalid): compile,
// search, and check that an answer is valid JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/jmespath.h"

using cairn::jmespath::Json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nul = in.find('\0');
  std::string_view expr = in.substr(0, nul);
  Json doc =
      nul == std::string_view::npos ? Json() : Json::parse(in.substr(nul + 1), nullptr, false);
  if (doc.is_discarded() || doc.is_null())
    doc = Json::parse(
        R"({"a":[{"b":1,"c":"x"},{"b":2,"c":"y"},[3,4]],"d":{"e":null,"f":true},"g":"str"})");
  cairn::jmespath::Error e;
  auto x = cairn::jmespath::Expression::Compile(expr, &e);
  if (!x) {
    if (e.kind.empty()) abort();  // every refusal says what kind it is
    return 0;
  }
  Json r;
  if (x->Search(doc, &r, &e)) {
    (void)r.dump(-1, ' ', false, Json::error_handler_t::replace);
  } else if (e.kind.empty()) {
    abort();
  }
  return 0;
}
