// Small utilities shared by every module: strings, time, names, hashing. All functions are
// thread-safe (no shared state) unless a comment says otherwise.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace cairn {

std::string Trim(std::string_view s);
// `s` with every `from` replaced by `to` (left to right; what `to` brings in is not searched
// again).
std::string ReplaceAll(std::string s, std::string_view from, std::string_view to);
std::vector<std::string> Split(std::string_view s, char sep);
bool StartsWith(std::string_view s, std::string_view prefix);
// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool IsValidUtf8(std::string_view s);
// How many bytes of `s` are well-formed UTF-8 before the first that is not (s.size() when all are).
size_t Utf8ValidPrefix(std::string_view s);
bool EndsWith(std::string_view s, std::string_view suffix);
std::string ToLower(std::string_view s);
std::string Join(const std::vector<std::string>& parts, std::string_view sep);
// "1 file", "3 files": a count with its noun, singular when the count is one.
std::string Plural(long long n, const std::string& noun, const std::string& plural = "");

// Levenshtein distance, for "did you mean" suggestions.
size_t EditDistance(std::string_view a, std::string_view b);
// The closest candidate within a distance that scales with the word, or "" when none is close.
std::string ClosestMatch(std::string_view word, const std::vector<std::string>& candidates);

// Wall-clock time as Unix milliseconds, and as ISO 8601 UTC with microseconds like Azure ML prints.
int64_t NowMillis();
std::string IsoTime(int64_t millis);

// Azure ML's generated job names: <adjective>_<noun>_<10 chars of [bcdfghjklmnpqrstvwxyz0-9]>.
std::string GenerateJobName();
// A random token of hex characters (for bearer tokens).
std::string RandomHex(size_t bytes);

// SHA-256 of a byte string, as lower-case hex.
std::string Sha256Hex(std::string_view data);

// What a server answers to prove it holds `secret` (the workspace token, or a supervisor's
// credential) without sending it: bound to the caller's `nonce` and to the port the caller dialled,
// so that a process squatting on a dead server's port can neither answer nor relay the live
// server's answer.
std::string IdentityProof(const std::string& secret, const std::string& nonce,
                          const std::string& port);
// The port of an http(s)://host:port URL ("" when it names none).
std::string PortOfUrl(const std::string& url);

// Incremental SHA-256, for hashing files without reading them whole. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t len);
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// A job, compute or output name as Azure ML allows them: letters, digits, '_' and '-', starting
// with a letter or digit, at most 255 characters.
bool IsValidName(std::string_view name);

}  // namespace cairn
