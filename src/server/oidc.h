// Signing in to a team server's studio with OpenID Connect: the authorization code flow with PKCE
// (S256), a state bound to the browser by a cookie, a nonce bound to the ID token, and the ID token
// checked here (RS256 against the provider's published keys; issuer, audience, expiry, nonce).
// Sessions are refreshed with the provider's refresh token, so a person disabled there is signed
// out at the next refresh.
//
// Thread-safe. Talks to the provider over HTTPS (or HTTP on loopback, for tests and a provider on
// the same machine) with Beast, verifying its certificate against the system's CAs.
#pragma once

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace cairn::server {

struct OidcConfig {
  std::string issuer, client_id, client_secret, redirect_url;
  std::string username_claim = "preferred_username", groups_claim = "groups";
  long long refresh_seconds = 300;
  bool enabled() const { return !issuer.empty(); }
};
// From the settings (CAIRN_OIDC_*); `default_redirect` when CAIRN_OIDC_REDIRECT_URL is unset. An
// error names the setting that is missing or unreadable.
Result<OidcConfig> OidcFromSettings(const std::string& default_redirect);

// What a verified sign-in says about the person.
struct OidcIdentity {
  std::string name, subject;
  std::vector<std::string> groups;
  std::string refresh_token;
  std::string next;  // where the browser goes once signed in
};

class Oidc {
 public:
  explicit Oidc(OidcConfig c) : c_(std::move(c)) {}
  const OidcConfig& config() const { return c_; }

  // Starts a sign-in: the provider's authorization URL to send the browser to, and the state (also
  // set as a cookie, which the callback must carry back).
  struct Start {
    std::string url, state;
  };
  Result<Start> Begin(const std::string& next);
  // The callback: exchanges `code` (with the PKCE verifier) and checks the ID token. `state` must
  // be one this server issued, unused and under 10 minutes old, and equal the browser's cookie.
  Result<OidcIdentity> Finish(const std::string& code, const std::string& state,
                              const std::string& state_cookie);
  // A fresh refresh token, when the provider still accepts the person; PermissionDenied when it
  // refuses (disabled, revoked).
  Result<std::string> Refresh(const std::string& refresh_token);

  // Checks a compact JWS ID token against `jwks` (a JWK set): RS256 only, the issuer, this client
  // in its audience, not expired (60 s of clock skew), and its nonce. The claims, or why not.
  static Result<nlohmann::json> VerifyIdToken(const std::string& token, const nlohmann::json& jwks,
                                              const std::string& issuer,
                                              const std::string& client_id,
                                              const std::string& nonce, long long now_s);

 private:
  Status Discover();
  Result<nlohmann::json> TokenRequest(const std::string& form);

  OidcConfig c_;
  std::mutex mu_;
  nlohmann::json discovery_, jwks_;
  long long jwks_at_ = 0;
  struct Pending {
    std::string nonce, verifier, next;
    long long at;
  };
  std::map<std::string, Pending> pending_;  // by state
};

}  // namespace cairn::server
