#include "server/oidc.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "base/json_limits.h"

namespace cairn::server {
namespace {

// The fuzz corpus's seeds: an ID token signed by a key Authlib made (an independent signer), with
// that key's JWK set, and the same claims under alg "none".
std::pair<std::string, nlohmann::json> Seed(const std::string& name) {
  std::ifstream f(std::string(CAIRN_SOURCE_DIR) + "/fuzz/corpus/id_token/" + name);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string in = ss.str();
  size_t nl = in.find('\n');
  return {in.substr(0, nl), ParseJsonOrDiscarded(in.substr(nl + 1))};
}

constexpr long long kNow = 1800000000;

TEST(OidcIdToken, AcceptsOnlyATokenThatChecksOutInEveryRespect) {
  auto [token, jwks] = Seed("valid");
  ASSERT_FALSE(token.empty());
  auto ok =
      Oidc::VerifyIdToken(token, jwks, "https://issuer.example", "cairn-studio", "n0nce", kNow);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ((*ok)["preferred_username"], "alice");
  auto why = [&](const std::string& t, const std::string& iss, const std::string& aud,
                 const std::string& nonce, long long now) {
    auto r = Oidc::VerifyIdToken(t, jwks, iss, aud, nonce, now);
    return r.ok() ? std::string("accepted") : r.status().message();
  };
  EXPECT_NE(why(token, "https://other", "cairn-studio", "n0nce", kNow).find("issuer"),
            std::string::npos);
  EXPECT_NE(why(token, "https://issuer.example", "x", "n0nce", kNow).find("another client"),
            std::string::npos);
  EXPECT_NE(why(token, "https://issuer.example", "cairn-studio", "other", kNow).find("nonce"),
            std::string::npos);
  EXPECT_NE(
      why(token, "https://issuer.example", "cairn-studio", "n0nce", kNow + 3600).find("expired"),
      std::string::npos);
  // One character of the signature changed: it no longer holds.
  std::string tampered = token;
  size_t at = tampered.rfind('.') + 10;
  tampered[at] = tampered[at] == 'A' ? 'B' : 'A';
  EXPECT_NE(
      why(tampered, "https://issuer.example", "cairn-studio", "n0nce", kNow).find("signature"),
      std::string::npos);
  // Keys without their numbers (or not objects at all) verify nothing, and crash nothing.
  nlohmann::json broken = {{"keys", {{{"kty", "RSA"}, {"kid", "k1"}}, 7, nullptr, "x"}}};
  EXPECT_FALSE(
      Oidc::VerifyIdToken(token, broken, "https://issuer.example", "cairn-studio", "n0nce", kNow)
          .ok());
  // Without the key the token names, nothing verifies it.
  nlohmann::json none = {{"keys", nlohmann::json::array()}};
  EXPECT_FALSE(
      Oidc::VerifyIdToken(token, none, "https://issuer.example", "cairn-studio", "n0nce", kNow)
          .ok());
}

TEST(OidcIdToken, RefusesAlgNoneAndGarbage) {
  auto [token, jwks] = Seed("alg_none");
  auto r =
      Oidc::VerifyIdToken(token, jwks, "https://issuer.example", "cairn-studio", "n0nce", kNow);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("'none'"), std::string::npos) << r.status().message();
  for (const std::string& bad :
       std::vector<std::string>{"", "a.b", "a.b.c.d", "!!!.###.$$$", std::string(20000, 'a')})
    EXPECT_FALSE(Oidc::VerifyIdToken(bad, jwks, "i", "c", "n", kNow).ok()) << bad.substr(0, 20);
}

}  // namespace
}  // namespace cairn::server
