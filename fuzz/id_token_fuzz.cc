// libFuzzer: an ID token and a provider's key set, as bytes from outside (the token endpoint's
// answer and the JWKS address), through the checks a team server's sign-in makes. The input is
// "<compact JWS>\n<JWK set as JSON>"; nothing may crash, read out of bounds or take long.
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "base/json_limits.h"
#include "server/oidc.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string token = in.substr(0, nl);
  nlohmann::json jwks =
      nl == std::string::npos ? nlohmann::json() : cairn::ParseJsonOrDiscarded(in.substr(nl + 1));
  (void)cairn::server::Oidc::VerifyIdToken(token, jwks, "https://issuer.example", "cairn-studio",
                                           "n0nce", 1800000000);
  return 0;
}
