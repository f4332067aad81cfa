#include "server/oidc.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <memory>

#include "base/fs.h"
#include "base/http_client.h"
#include "base/json_limits.h"
#include "base/settings.h"
#include "base/util.h"

namespace cairn::server {

using nlohmann::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;

namespace {

constexpr long long kStateMaxAgeMs = 10 * 60 * 1000;
constexpr size_t kMaxAnswer = 1 << 20;    // a provider's JSON answers
constexpr size_t kMaxIdToken = 16 << 10;  // a compact JWS

// A member's text, "" when it is missing or not a string (value() would throw on a number).
std::string Str(const json& j, const char* key) {
  if (!j.is_object()) return "";
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string Base64Url(const unsigned char* data, size_t n) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    unsigned v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63],
            kAlphabet[v & 63]};
  }
  if (i + 1 == n) {
    unsigned v = data[i] << 16;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63]};
  } else if (i + 2 == n) {
    unsigned v = (data[i] << 16) | (data[i + 1] << 8);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63]};
  }
  return out;
}

// Base64url without padding (RFC 7515); nullopt for anything else.
std::optional<std::string> FromBase64Url(const std::string& s) {
  std::string out;
  unsigned v = 0;
  int bits = 0;
  for (char c : s) {
    int d = c >= 'A' && c <= 'Z'   ? c - 'A'
            : c >= 'a' && c <= 'z' ? c - 'a' + 26
            : c >= '0' && c <= '9' ? c - '0' + 52
            : c == '-'             ? 62
            : c == '_'             ? 63
                                   : -1;
    if (d < 0) return std::nullopt;
    v = (v << 6) | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((v >> bits) & 0xff);
    }
  }
  if (bits >= 6) return std::nullopt;  // a lone trailing character
  return out;
}

std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& kv) {
  std::string out;
  for (const auto& [k, v] : kv)
    out += (out.empty() ? "" : "&") + HttpClient::UrlEncode(k) + "=" + HttpClient::UrlEncode(v);
  return out;
}

struct Url {
  bool tls = false;
  std::string host, port, target;
};

Result<Url> ParseUrl(const std::string& u) {
  Url out;
  std::string rest;
  if (StartsWith(u, "https://")) {
    out.tls = true;
    rest = u.substr(8);
  } else if (StartsWith(u, "http://")) {
    rest = u.substr(7);
  } else {
    return InvalidArgument("not an http(s) URL: " + u.substr(0, 200));
  }
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  out.target = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = authority.rfind(':');
  out.host = colon == std::string::npos ? authority : authority.substr(0, colon);
  out.port = colon == std::string::npos ? (out.tls ? "443" : "80") : authority.substr(colon + 1);
  if (out.host.empty()) return InvalidArgument("no host in " + u.substr(0, 200));
  // Plain HTTP only to this machine: anything else could be read or changed on the way.
  if (!out.tls && out.host != "127.0.0.1" && out.host != "localhost" && out.host != "[::1]")
    return InvalidArgument("the OpenID provider must be reached over https (got " +
                           u.substr(0, 200) + ")");
  return out;
}

// One request to the provider: its status and body (at most 1 MiB), within 10 s.
Result<std::pair<int, std::string>> Fetch(const std::string& method, const std::string& url,
                                          const std::string& body = "",
                                          const std::string& content_type = "",
                                          const std::string& authorization = "") {
  auto u = ParseUrl(url);
  if (!u.ok()) return u.status();
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    bhttp::request<bhttp::string_body> req{method == "POST" ? bhttp::verb::post : bhttp::verb::get,
                                           u->target, 11};
    req.set(bhttp::field::host, u->host);
    req.set(bhttp::field::user_agent, "cairn-server");
    req.set(bhttp::field::accept, "application/json");
    if (!authorization.empty()) req.set(bhttp::field::authorization, authorization);
    if (!content_type.empty()) req.set(bhttp::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(kMaxAnswer);
    beast::flat_buffer buf;
    auto endpoints = resolver.resolve(u->host, u->port);
    if (u->tls) {
      asio::ssl::context ctx(asio::ssl::context::tls_client);
      ctx.set_default_verify_paths();
      ctx.set_verify_mode(asio::ssl::verify_peer);
      beast::ssl_stream<beast::tcp_stream> stream(io, ctx);
      if (!SSL_set_tlsext_host_name(stream.native_handle(), u->host.c_str()))
        return Unavailable("TLS: cannot set the server name " + u->host);
      stream.set_verify_callback(asio::ssl::host_name_verification(u->host));
      beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(10));
      beast::get_lowest_layer(stream).connect(endpoints);
      stream.handshake(asio::ssl::stream_base::client);
      bhttp::write(stream, req);
      bhttp::read(stream, buf, parser);
      beast::error_code ec;
      stream.shutdown(ec);
    } else {
      beast::tcp_stream stream(io);
      stream.expires_after(std::chrono::seconds(10));
      stream.connect(endpoints);
      bhttp::write(stream, req);
      bhttp::read(stream, buf, parser);
    }
    return std::make_pair(static_cast<int>(parser.get().result_int()), parser.get().body());
  } catch (const std::exception& e) {
    return Unavailable("the OpenID provider at " + u->host + " did not answer: " + e.what());
  }
}

Result<json> FetchJson(const std::string& method, const std::string& url,
                       const std::string& body = "", const std::string& content_type = "",
                       const std::string& authorization = "") {
  auto r = Fetch(method, url, body, content_type, authorization);
  if (!r.ok()) return r.status();
  json j = ParseJsonOrDiscarded(r->second);
  if (!j.is_object())
    return Unavailable("the OpenID provider's answer from " + url.substr(0, 200) +
                       " is not a JSON object (HTTP " + std::to_string(r->first) + ")");
  if (r->first != 200) {
    std::string why =
        !Str(j, "error_description").empty() ? Str(j, "error_description") : Str(j, "error");
    return Status(r->first >= 500 ? Code::kUnavailable : Code::kPermissionDenied,
                  "the OpenID provider refused (HTTP " + std::to_string(r->first) +
                      (why.empty() ? "" : ": " + why.substr(0, 300)) + ")");
  }
  return j;
}

using PkeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

// An RSA public key from a JWK's n and e; null when they are not one.
PkeyPtr RsaKey(const json& jwk) {
  PkeyPtr none(nullptr, EVP_PKEY_free);
  // contains() first: a const json's operator[] on a missing key is undefined (the fuzzer found
  // it).
  auto text = [&](const char* k) { return jwk.contains(k) && jwk[k].is_string(); };
  if (!jwk.is_object() || !text("kty") || jwk["kty"] != "RSA" || !text("n") || !text("e"))
    return none;
  auto n = FromBase64Url(jwk["n"].get<std::string>());
  auto e = FromBase64Url(jwk["e"].get<std::string>());
  if (!n || !e || n->size() < 256 || n->size() > 1024 || e->empty() || e->size() > 8)
    return none;  // at least 2048 bits
  BIGNUM* bn = BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()),
                         static_cast<int>(n->size()), nullptr);
  BIGNUM* be = BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()),
                         static_cast<int>(e->size()), nullptr);
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM* params = nullptr;
  EVP_PKEY_CTX* ctx = nullptr;
  EVP_PKEY* key = nullptr;
  if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
      (params = OSSL_PARAM_BLD_to_param(bld)) &&
      (ctx = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr)) &&
      EVP_PKEY_fromdata_init(ctx) == 1)
    (void)EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  BN_free(bn);
  BN_free(be);
  return PkeyPtr(key, EVP_PKEY_free);
}

bool VerifyRs256(EVP_PKEY* key, const std::string& signed_part, const std::string& sig) {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md && EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                             reinterpret_cast<const unsigned char*>(signed_part.data()),
                             signed_part.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

Status Refused(const std::string& why) {
  return Status(Code::kPermissionDenied, "sign-in refused: " + why);
}

}  // namespace

Result<OidcConfig> OidcFromSettings(const std::string& default_redirect) {
  OidcConfig c;
  c.issuer = settings::Text("CAIRN_OIDC_ISSUER");
  if (c.issuer.empty()) return c;
  while (!c.issuer.empty() && c.issuer.back() == '/') c.issuer.pop_back();
  if (Status s = ParseUrl(c.issuer).status(); !s.ok())
    return InvalidArgument("CAIRN_OIDC_ISSUER: " + s.message());
  c.client_id = settings::Text("CAIRN_OIDC_CLIENT_ID");
  if (c.client_id.empty()) return InvalidArgument("CAIRN_OIDC_CLIENT_ID: not set");
  std::string secret_file = settings::Text("CAIRN_OIDC_CLIENT_SECRET_FILE");
  if (secret_file.empty()) return InvalidArgument("CAIRN_OIDC_CLIENT_SECRET_FILE: not set");
  auto secret = ReadFile(secret_file, 4096);
  if (!secret.ok())
    return InvalidArgument("CAIRN_OIDC_CLIENT_SECRET_FILE: " + secret.status().message());
  c.client_secret = Trim(*secret);
  // Its documented default is prose: only a value set in the environment counts.
  c.redirect_url = settings::Get("CAIRN_OIDC_REDIRECT_URL").value_or("");
  if (c.redirect_url.empty()) c.redirect_url = default_redirect;
  if (std::string v = settings::Text("CAIRN_OIDC_USERNAME_CLAIM"); !v.empty()) c.username_claim = v;
  if (std::string v = settings::Text("CAIRN_OIDC_GROUPS_CLAIM"); !v.empty()) c.groups_claim = v;
  if (settings::Get("CAIRN_OIDC_REFRESH_SECONDS"))
    c.refresh_seconds = std::max(0LL, settings::Integer("CAIRN_OIDC_REFRESH_SECONDS"));
  return c;
}

Status Oidc::Discover() {
  {
    std::lock_guard<std::mutex> l(mu_);
    if (discovery_.is_object()) return Status::Ok();
  }
  auto d = FetchJson("GET", c_.issuer + "/.well-known/openid-configuration");
  if (!d.ok()) return d.status();
  // The document must be the issuer's own (OpenID Connect Discovery, 4.3).
  if (Str(*d, "issuer") != c_.issuer)
    return Unavailable("the OpenID provider's discovery names issuer '" +
                       Str(*d, "issuer").substr(0, 200) + "', not " + c_.issuer);
  for (const char* k : {"authorization_endpoint", "token_endpoint", "jwks_uri"})
    if (!(*d)[k].is_string())
      return Unavailable(std::string("the provider's discovery has no ") + k);
  std::lock_guard<std::mutex> l(mu_);
  discovery_ = *d;
  return Status::Ok();
}

Result<Oidc::Start> Oidc::Begin(const std::string& next) {
  if (Status s = Discover(); !s.ok()) return s;
  Pending p{RandomHex(16), "", next, NowMillis()};
  // PKCE: a 64-character verifier; the provider gets its SHA-256 (S256), never the verifier.
  p.verifier = RandomHex(32);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(p.verifier.data()), p.verifier.size(), digest);
  std::string state = RandomHex(16);
  std::string url;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto it = pending_.begin(); it != pending_.end();)
      it = NowMillis() - it->second.at > kStateMaxAgeMs ? pending_.erase(it) : std::next(it);
    if (pending_.size() > 10000) pending_.erase(pending_.begin());
    pending_[state] = p;
    url = discovery_["authorization_endpoint"].get<std::string>();
  }
  url += (url.find('?') == std::string::npos ? "?" : "&") +
         FormEncode({{"response_type", "code"},
                     {"client_id", c_.client_id},
                     {"redirect_uri", c_.redirect_url},
                     // offline_access: a refresh token, so that the session can be checked again.
                     {"scope", "openid profile offline_access " + c_.groups_claim},
                     {"state", state},
                     {"nonce", p.nonce},
                     {"code_challenge", Base64Url(digest, sizeof digest)},
                     {"code_challenge_method", "S256"}});
  return Start{url, state};
}

Result<json> Oidc::TokenRequest(const std::string& form) {
  if (Status s = Discover(); !s.ok()) return s;
  std::string endpoint;
  {
    std::lock_guard<std::mutex> l(mu_);
    endpoint = discovery_["token_endpoint"].get<std::string>();
  }
  std::string basic =
      HttpClient::UrlEncode(c_.client_id) + ":" + HttpClient::UrlEncode(c_.client_secret);
  std::string b64;
  {
    // Standard base64 with padding for the Basic scheme.
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < basic.size(); i += 3) {
      unsigned v = (static_cast<unsigned char>(basic[i]) << 16) |
                   (static_cast<unsigned char>(basic[i + 1]) << 8) |
                   static_cast<unsigned char>(basic[i + 2]);
      b64 += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], k[v & 63]};
    }
    if (i + 1 == basic.size()) {
      unsigned v = static_cast<unsigned char>(basic[i]) << 16;
      b64 += {k[v >> 18], k[(v >> 12) & 63], '=', '='};
    } else if (i + 2 == basic.size()) {
      unsigned v = (static_cast<unsigned char>(basic[i]) << 16) |
                   (static_cast<unsigned char>(basic[i + 1]) << 8);
      b64 += {k[v >> 18], k[(v >> 12) & 63], k[(v >> 6) & 63], '='};
    }
  }
  return FetchJson("POST", endpoint, form, "application/x-www-form-urlencoded", "Basic " + b64);
}

Result<json> Oidc::VerifyIdToken(const std::string& token, const json& jwks,
                                 const std::string& issuer, const std::string& client_id,
                                 const std::string& nonce, long long now_s) {
  if (token.empty() || token.size() > kMaxIdToken) return Refused("no ID token, or one too long");
  auto parts = Split(token, '.');
  if (parts.size() != 3) return Refused("the ID token is not a signed JWT");
  auto header_text = FromBase64Url(parts[0]);
  auto payload_text = FromBase64Url(parts[1]);
  auto sig = FromBase64Url(parts[2]);
  if (!header_text || !payload_text || !sig) return Refused("the ID token is not base64url");
  json header = ParseJsonOrDiscarded(*header_text);
  json claims = ParseJsonOrDiscarded(*payload_text);
  if (!header.is_object() || !claims.is_object()) return Refused("the ID token is not JSON");
  // Only the algorithm this server asked for: never "none", never an HMAC keyed with a public key.
  if (Str(header, "alg") != "RS256")
    return Refused("the ID token is signed with '" + Str(header, "alg").substr(0, 20) +
                   "', not RS256");
  std::string kid = header.contains("kid") && header["kid"].is_string() ? header["kid"] : "";
  bool verified = false;
  if (jwks.is_object() && jwks.contains("keys") && jwks["keys"].is_array())
    for (const auto& k : jwks["keys"]) {
      if (!k.is_object()) continue;
      if (!kid.empty() && k.contains("kid") && k["kid"] != kid) continue;
      if (k.contains("use") && k["use"] != "sig") continue;
      PkeyPtr key = RsaKey(k);
      if (key && VerifyRs256(key.get(), parts[0] + "." + parts[1], *sig)) {
        verified = true;
        break;
      }
    }
  if (!verified) return Refused("the ID token's signature is not the provider's");
  if (Str(claims, "iss") != issuer) return Refused("the ID token is from another issuer");
  const json& aud = claims["aud"];
  bool ours = (aud.is_string() && aud == client_id) ||
              (aud.is_array() && std::find(aud.begin(), aud.end(), client_id) != aud.end());
  if (!ours) return Refused("the ID token is for another client");
  if (aud.is_array() && aud.size() > 1 && !Str(claims, "azp").empty() &&
      Str(claims, "azp") != client_id)
    return Refused("the ID token was issued to another client (azp)");
  constexpr long long kSkew = 60;
  if (!claims["exp"].is_number() || claims["exp"].get<double>() + kSkew < now_s)
    return Refused("the ID token has expired");
  if (claims["iat"].is_number() && claims["iat"].get<double>() > now_s + kSkew)
    return Refused("the ID token was issued in the future");
  if (Str(claims, "nonce") != nonce || nonce.empty())
    return Refused("the ID token's nonce is not this sign-in's");
  return claims;
}

Result<OidcIdentity> Oidc::Finish(const std::string& code, const std::string& state,
                                  const std::string& state_cookie) {
  Pending p;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pending_.find(state);
    if (state.empty() || it == pending_.end())
      return Refused("unknown or already used state (start again from the studio)");
    p = it->second;
    pending_.erase(it);  // one use, whatever follows
  }
  if (NowMillis() - p.at > kStateMaxAgeMs) return Refused("the sign-in took over 10 minutes");
  // The browser that began the sign-in must be the one finishing it (no login CSRF).
  if (state_cookie.size() != state.size() || state_cookie != state)
    return Refused("this browser did not start this sign-in");
  if (code.empty()) return Refused("the provider sent no code");
  auto tok = TokenRequest(FormEncode({{"grant_type", "authorization_code"},
                                      {"code", code},
                                      {"redirect_uri", c_.redirect_url},
                                      {"code_verifier", p.verifier}}));
  if (!tok.ok()) return tok.status();
  std::string id_token = Str(*tok, "id_token");
  json jwks;
  {
    std::lock_guard<std::mutex> l(mu_);
    jwks = jwks_;
  }
  long long now_s = NowMillis() / 1000;
  auto claims = jwks.is_object()
                    ? VerifyIdToken(id_token, jwks, c_.issuer, c_.client_id, p.nonce, now_s)
                    : Result<json>(Refused("no keys yet"));
  if (!claims.ok()) {
    // The provider may have rotated its keys: fetch them (at most every 30 s) and try once more.
    std::string uri;
    bool refetch = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      uri = discovery_["jwks_uri"].get<std::string>();
      refetch = NowMillis() - jwks_at_ > 30000 || !jwks_.is_object();
    }
    if (refetch) {
      auto fresh = FetchJson("GET", uri);
      if (!fresh.ok()) return fresh.status();
      {
        std::lock_guard<std::mutex> l(mu_);
        jwks_ = *fresh;
        jwks_at_ = NowMillis();
      }
      claims = VerifyIdToken(id_token, *fresh, c_.issuer, c_.client_id, p.nonce, now_s);
    }
    if (!claims.ok()) return claims.status();
  }
  OidcIdentity who;
  who.subject = Str(*claims, "sub");
  const json& name = (*claims)[c_.username_claim];
  who.name = name.is_string() ? name.get<std::string>() : "";
  if (who.name.empty() || who.name.size() > 256)
    return Refused("the ID token has no usable '" + c_.username_claim + "' claim");
  for (unsigned char ch : who.name)
    if (ch < 0x21 || ch == 0x7f)
      return Refused("the person's name has spaces or control characters");
  const json& groups = (*claims)[c_.groups_claim];
  if (groups.is_array())
    for (const auto& g : groups)
      if (g.is_string() && g.get<std::string>().size() <= 256 && who.groups.size() < 256)
        who.groups.push_back(g);
  who.refresh_token = Str(*tok, "refresh_token");
  who.next = p.next;
  return who;
}

Result<std::string> Oidc::Refresh(const std::string& refresh_token) {
  if (refresh_token.empty()) return Refused("the provider gave no refresh token");
  auto tok =
      TokenRequest(FormEncode({{"grant_type", "refresh_token"}, {"refresh_token", refresh_token}}));
  if (!tok.ok()) return tok.status();
  // Providers that do not rotate refresh tokens keep the old one valid.
  std::string fresh = Str(*tok, "refresh_token");
  return fresh.empty() ? refresh_token : fresh;
}

}  // namespace cairn::server
