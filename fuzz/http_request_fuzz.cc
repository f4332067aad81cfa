// libFuzzer target: a request head as a client sends it, through Beast's parser and the part of
// request handling Cairn owns (the target's path and query, percent-decoding, the UTF-8 check).
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/http_server.h"
#include "base/util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace bhttp = boost::beast::http;
  bhttp::request_parser<bhttp::empty_body> p;
  p.header_limit(64 << 10);
  p.eager(false);
  boost::beast::error_code ec;
  p.put(boost::asio::buffer(data, size), ec);
  cairn::http::Request req;
  std::string target = p.is_header_done() ? std::string(p.get().target())
                                          : std::string(reinterpret_cast<const char*>(data), size);
  if (cairn::http::ParseTarget(target, req)) {
    // What was accepted is valid UTF-8, all of it.
    if (!cairn::IsValidUtf8(req.path)) __builtin_trap();
    for (const auto& [k, v] : req.params)
      if (!cairn::IsValidUtf8(k) || !cairn::IsValidUtf8(v)) __builtin_trap();
  }
  (void)cairn::http::PercentDecode(target, true);
  return 0;
}
