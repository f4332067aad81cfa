#include "base/json_reader.h"

#include "base/util.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace cairn {

void JsonReader::Ws() {
  while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t'))
    ++i_;
}

bool JsonReader::Consume(char c) {
  Ws();
  if (ok_ && i_ < s_.size() && s_[i_] == c) {
    ++i_;
    return true;
  }
  ok_ = false;
  return false;
}

bool JsonReader::AtEnd() {
  Ws();
  return i_ == s_.size();
}

JsonReader::Kind JsonReader::Peek() {
  Ws();
  if (!ok_ || i_ >= s_.size()) return Kind::kBad;
  switch (s_[i_]) {
    case '{':
      return Kind::kObject;
    case '[':
      return Kind::kArray;
    case '"':
      return Kind::kString;
    case 't':
      return Kind::kTrue;
    case 'f':
      return Kind::kFalse;
    case 'n':
      return Kind::kNull;
    default:
      return (s_[i_] == '-' || (s_[i_] >= '0' && s_[i_] <= '9')) ? Kind::kNumber : Kind::kBad;
  }
}

bool JsonReader::BeginObject() {
  if (!Consume('{')) return false;
  first_.push_back('1');
  return true;
}

bool JsonReader::NextKey(std::string* key) {
  Ws();
  if (!ok_ || first_.empty() || i_ >= s_.size()) return ok_ = false;
  if (s_[i_] == '}') {
    ++i_;
    first_.pop_back();
    return false;
  }
  if (first_.back() == '0' && !Consume(',')) return false;
  first_.back() = '0';
  if (!String(key)) return false;
  return Consume(':');
}

bool JsonReader::BeginArray() {
  if (!Consume('[')) return false;
  first_.push_back('1');
  return true;
}

bool JsonReader::NextElement() {
  Ws();
  if (!ok_ || first_.empty() || i_ >= s_.size()) return ok_ = false;
  if (s_[i_] == ']') {
    ++i_;
    first_.pop_back();
    return false;
  }
  if (first_.back() == '0' && !Consume(',')) return false;
  first_.back() = '0';
  return true;
}

namespace {
int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
void Utf8(unsigned cp, std::string* out) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}
}  // namespace

bool JsonReader::String(std::string* out) {
  if (!Consume('"')) return false;
  out->clear();
  for (;;) {
    size_t start = i_;
    unsigned char high = 0;
    while (i_ < s_.size() && s_[i_] != '"' && s_[i_] != '\\' &&
           static_cast<unsigned char>(s_[i_]) >= 0x20)
      high |= static_cast<unsigned char>(s_[i_++]);
    // A run ends at an ASCII byte, so no UTF-8 sequence is split between two runs; an ASCII run is
    // valid.
    if ((high & 0x80) && !IsValidUtf8(s_.substr(start, i_ - start))) return ok_ = false;
    out->append(s_.data() + start, i_ - start);
    if (i_ >= s_.size() || static_cast<unsigned char>(s_[i_]) < 0x20) return ok_ = false;
    if (s_[i_] == '"') {
      ++i_;
      return true;
    }
    if (++i_ >= s_.size()) return ok_ = false;  // after the backslash
    char e = s_[i_++];
    switch (e) {
      case '"':
        *out += '"';
        break;
      case '\\':
        *out += '\\';
        break;
      case '/':
        *out += '/';
        break;
      case 'b':
        *out += '\b';
        break;
      case 'f':
        *out += '\f';
        break;
      case 'n':
        *out += '\n';
        break;
      case 'r':
        *out += '\r';
        break;
      case 't':
        *out += '\t';
        break;
      case 'u': {
        auto hex4 = [&](unsigned* cp) {
          if (i_ + 4 > s_.size()) return false;
          *cp = 0;
          for (int k = 0; k < 4; ++k) {
            int h = Hex(s_[i_ + k]);
            if (h < 0) return false;
            *cp = *cp * 16 + static_cast<unsigned>(h);
          }
          i_ += 4;
          return true;
        };
        unsigned cp;
        if (!hex4(&cp)) return ok_ = false;
        if (cp >= 0xD800 && cp < 0xDC00) {
          unsigned lo;
          if (i_ + 2 > s_.size() || s_[i_] != '\\' || s_[i_ + 1] != 'u') return ok_ = false;
          i_ += 2;
          if (!hex4(&lo) || lo < 0xDC00 || lo >= 0xE000) return ok_ = false;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          return ok_ = false;
        }
        Utf8(cp, out);
        break;
      }
      default:
        return ok_ = false;
    }
  }
}

namespace {
// The extent of a JSON number at `p`: [-] int [frac] [exp]; `integral` says whether it had neither.
size_t NumberLength(std::string_view s, size_t p, bool* integral) {
  size_t i = p;
  *integral = true;
  if (i < s.size() && s[i] == '-') ++i;
  if (i >= s.size()) return 0;
  if (s[i] == '0') {
    ++i;
  } else if (s[i] >= '1' && s[i] <= '9') {
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
  } else {
    return 0;
  }
  if (i < s.size() && s[i] == '.') {
    *integral = false;
    size_t d = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == d) return 0;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    *integral = false;
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    size_t d = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == d) return 0;
  }
  return i - p;
}
}  // namespace

bool JsonReader::Double(double* out) {
  Ws();
  if (!ok_) return false;
  bool integral;
  size_t n = NumberLength(s_, i_, &integral);
  if (n == 0) return ok_ = false;
  auto r = std::from_chars(s_.data() + i_, s_.data() + i_ + n, *out);
  if (r.ec == std::errc::result_out_of_range) {
    // Underflow (1e-400, subnormals) reads as the nearest double; overflow (1e400) is refused. Both
    // as nlohmann::json, the rest of the server, does.
    *out = strtod(std::string(s_.substr(i_, n)).c_str(), nullptr);
    if (std::isinf(*out)) return ok_ = false;
  } else if (r.ec != std::errc()) {
    return ok_ = false;
  }
  i_ += n;
  return true;
}

bool JsonReader::Int(long long* out) {
  Ws();
  if (!ok_) return false;
  bool integral;
  size_t n = NumberLength(s_, i_, &integral);
  if (n == 0 || !integral) return ok_ = false;
  auto r = std::from_chars(s_.data() + i_, s_.data() + i_ + n, *out);
  if (r.ec != std::errc()) return ok_ = false;
  i_ += n;
  return true;
}

bool JsonReader::Null() {
  Ws();
  if (ok_ && s_.substr(i_, 4) == "null") {
    i_ += 4;
    return true;
  }
  return ok_ = false;
}

bool JsonReader::Skip(int depth) {
  if (depth > 256) return ok_ = false;
  std::string tmp;
  switch (Peek()) {
    case Kind::kObject:
      BeginObject();
      while (NextKey(&tmp)) Skip(depth + 1);
      return ok_;
    case Kind::kArray:
      BeginArray();
      while (NextElement()) Skip(depth + 1);
      return ok_;
    case Kind::kString:
      return String(&tmp);
    case Kind::kNumber: {
      double d;
      return Double(&d);
    }
    case Kind::kTrue:
      if (s_.substr(i_, 4) == "true")
        i_ += 4;
      else
        ok_ = false;
      return ok_;
    case Kind::kFalse:
      if (s_.substr(i_, 5) == "false")
        i_ += 5;
      else
        ok_ = false;
      return ok_;
    case Kind::kNull:
      return Null();
    case Kind::kBad:
      return ok_ = false;
  }
  return ok_ = false;
}

}  // namespace cairn
