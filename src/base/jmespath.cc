#include "base/jmespath.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <vector>

namespace cairn::jmespath {

namespace {

constexpr size_t kMaxExpression = 64 << 10;
constexpr int kMaxDepth = 256;

// ---- tokens ----

enum class T {
  kEof,
  kUnquoted,
  kQuoted,
  kLiteral,
  kRbracket,
  kRparen,
  kComma,
  kRbrace,
  kNumber,
  kCurrent,
  kExpref,
  kColon,
  kPipe,
  kOr,
  kAnd,
  kEq,
  kGt,
  kLt,
  kGte,
  kLte,
  kNe,
  kFlatten,
  kStar,
  kFilter,
  kDot,
  kNot,
  kLbrace,
  kLbracket,
  kLparen
};

// Binding powers, as the reference implementation's.
int Bp(T t) {
  switch (t) {
    case T::kPipe:
      return 1;
    case T::kOr:
      return 2;
    case T::kAnd:
      return 3;
    case T::kEq:
    case T::kGt:
    case T::kLt:
    case T::kGte:
    case T::kLte:
    case T::kNe:
      return 5;
    case T::kFlatten:
      return 9;
    case T::kStar:
      return 20;
    case T::kFilter:
      return 21;
    case T::kDot:
      return 40;
    case T::kNot:
      return 45;
    case T::kLbrace:
      return 50;
    case T::kLbracket:
      return 55;
    case T::kLparen:
      return 60;
    default:
      return 0;
  }
}

const char* Name(T t) {
  switch (t) {
    case T::kEof:
      return "the end of the expression";
    case T::kUnquoted:
    case T::kQuoted:
      return "an identifier";
    case T::kLiteral:
      return "a literal";
    case T::kRbracket:
      return "']'";
    case T::kRparen:
      return "')'";
    case T::kComma:
      return "','";
    case T::kRbrace:
      return "'}'";
    case T::kNumber:
      return "a number";
    case T::kCurrent:
      return "'@'";
    case T::kExpref:
      return "'&'";
    case T::kColon:
      return "':'";
    case T::kPipe:
      return "'|'";
    case T::kOr:
      return "'||'";
    case T::kAnd:
      return "'&&'";
    case T::kEq:
      return "'=='";
    case T::kGt:
      return "'>'";
    case T::kLt:
      return "'<'";
    case T::kGte:
      return "'>='";
    case T::kLte:
      return "'<='";
    case T::kNe:
      return "'!='";
    case T::kFlatten:
      return "'[]'";
    case T::kStar:
      return "'*'";
    case T::kFilter:
      return "'[?'";
    case T::kDot:
      return "'.'";
    case T::kNot:
      return "'!'";
    case T::kLbrace:
      return "'{'";
    case T::kLbracket:
      return "'['";
    case T::kLparen:
      return "'('";
  }
  return "?";
}

struct Token {
  T type = T::kEof;
  std::string text;  // identifiers
  Json literal;      // literals and raw strings
  long long number = 0;
  size_t pos = 0;
};

struct Failure {
  Error error;
};

[[noreturn]] void Fail(const std::string& kind, const std::string& message) {
  throw Failure{{kind, message}};
}
[[noreturn]] void Syntax(size_t pos, const std::string& message) {
  Fail("syntax", "syntax error at column " + std::to_string(pos + 1) + ": " + message);
}

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }

std::vector<Token> Lex(std::string_view s) {
  std::vector<Token> out;
  size_t i = 0;
  // Up to an unescaped `delim` (a backslash takes the next character with it); i ends past the
  // delimiter.
  auto until = [&](char delim) {
    size_t start = i;
    ++i;  // the opening delimiter
    std::string buf;
    while (i < s.size() && s[i] != delim) {
      if (s[i] == '\\' && i + 1 < s.size()) {
        buf += s[i++];
      }
      buf += s[i++];
    }
    if (i >= s.size()) Syntax(start, std::string("unclosed ") + delim);
    ++i;
    return buf;
  };
  auto simple = [&](T t, size_t len) {
    Token tok;
    tok.type = t;
    tok.pos = i;
    out.push_back(tok);
    i += len;
  };
  // One character, or two when `next` follows it ("||" beside "|").
  auto pair = [&](char next, T two, T one) {
    if (i + 1 < s.size() && s[i + 1] == next)
      simple(two, 2);
    else
      simple(one, 1);
  };
  while (i < s.size()) {
    char c = s[i];
    size_t pos = i;
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++i;
    } else if (IsIdentStart(c)) {
      while (i < s.size() && IsIdentChar(s[i])) ++i;
      Token t;
      t.type = T::kUnquoted;
      t.text = std::string(s.substr(pos, i - pos));
      t.pos = pos;
      out.push_back(t);
    } else if (c == '.') {
      simple(T::kDot, 1);
    } else if (c == '*') {
      simple(T::kStar, 1);
    } else if (c == ']') {
      simple(T::kRbracket, 1);
    } else if (c == ',') {
      simple(T::kComma, 1);
    } else if (c == ':') {
      simple(T::kColon, 1);
    } else if (c == '@') {
      simple(T::kCurrent, 1);
    } else if (c == '(') {
      simple(T::kLparen, 1);
    } else if (c == ')') {
      simple(T::kRparen, 1);
    } else if (c == '{') {
      simple(T::kLbrace, 1);
    } else if (c == '}') {
      simple(T::kRbrace, 1);
    } else if (c == '[') {
      if (i + 1 < s.size() && s[i + 1] == ']')
        simple(T::kFlatten, 2);
      else if (i + 1 < s.size() && s[i + 1] == '?')
        simple(T::kFilter, 2);
      else
        simple(T::kLbracket, 1);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      size_t start = i;
      if (c == '-') ++i;
      size_t digits = i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
      if (i == digits) Syntax(start, "'-' must be followed by a number");
      Token t;
      t.type = T::kNumber;
      t.pos = start;
      std::string text(s.substr(start, i - start));
      errno = 0;
      char* end = nullptr;
      t.number = strtoll(text.c_str(), &end, 10);
      if (errno == ERANGE) Syntax(start, "the number " + text + " is too large");
      out.push_back(t);
    } else if (c == '\'') {
      std::string raw = until('\'');
      std::string v;
      for (size_t k = 0; k < raw.size(); ++k) {
        if (raw[k] == '\\' && k + 1 < raw.size() && raw[k + 1] == '\'') {
          v += '\'';
          ++k;
        } else {
          v += raw[k];
        }
      }
      Token t;
      t.type = T::kLiteral;
      t.literal = v;
      t.pos = pos;
      out.push_back(t);
    } else if (c == '"') {
      std::string raw = until('"');
      Json v = Json::parse("\"" + raw + "\"", nullptr, false);
      if (v.is_discarded() || !v.is_string())
        Syntax(pos, "invalid quoted identifier \"" + raw + "\"");
      Token t;
      t.type = T::kQuoted;
      t.text = v.get<std::string>();
      t.pos = pos;
      out.push_back(t);
    } else if (c == '`') {
      std::string raw = until('`');
      std::string lexeme;
      for (size_t k = 0; k < raw.size(); ++k) {
        if (raw[k] == '\\' && k + 1 < raw.size() && raw[k + 1] == '`') {
          lexeme += '`';
          ++k;
        } else {
          lexeme += raw[k];
        }
      }
      Json v = Json::parse(lexeme, nullptr, false);
      if (v.is_discarded()) {
        // The deprecated form (JEP 12): text that is not JSON is a string, as the reference reads
        // it.
        size_t lead = lexeme.find_first_not_of(" \t\n\r");
        v = Json::parse(
            "\"" + (lead == std::string::npos ? std::string() : lexeme.substr(lead)) + "\"",
            nullptr, false);
        if (v.is_discarded()) Syntax(pos, "invalid JSON literal `" + lexeme + "`");
      }
      Token t;
      t.type = T::kLiteral;
      t.literal = std::move(v);
      t.pos = pos;
      out.push_back(t);
    } else if (c == '|') {
      pair('|', T::kOr, T::kPipe);
    } else if (c == '&') {
      pair('&', T::kAnd, T::kExpref);
    } else if (c == '!') {
      pair('=', T::kNe, T::kNot);
    } else if (c == '<') {
      pair('=', T::kLte, T::kLt);
    } else if (c == '>') {
      pair('=', T::kGte, T::kGt);
    } else if (c == '=') {
      if (i + 1 < s.size() && s[i + 1] == '=')
        simple(T::kEq, 2);
      else
        Syntax(pos, "'=' is not an operator (did you mean '=='?)");
    } else {
      Syntax(pos, std::string("unexpected character '") + c + "'");
    }
  }
  Token eof;
  eof.type = T::kEof;
  eof.pos = s.size();
  out.push_back(eof);
  return out;
}

}  // namespace

// ---- the tree ----

enum class K {
  kField,
  kSubexpr,
  kIndexExpr,
  kIndex,
  kSlice,
  kProjection,
  kValueProjection,
  kFilterProjection,
  kFlatten,
  kIdentity,
  kCurrent,
  kLiteral,
  kPipe,
  kOr,
  kAnd,
  kNot,
  kComparator,
  kMultiList,
  kMultiHash,
  kFunction,
  kExpref
};

struct Node {
  K kind = K::kIdentity;
  std::string name;  // field, function, or the comparator's operator
  Json literal;
  long long index = 0;
  std::optional<long long> start, stop, step;
  std::vector<std::shared_ptr<Node>> children;
  std::vector<std::string> keys;  // a multiselect hash's keys, one per child
  int depth = 1;                  // of the tree below, bounded (evaluation and destruction recurse)
};

namespace {

using NodeP = std::shared_ptr<Node>;

// Chains of left-associative operators (a | b | c ...) build deep trees without deep parsing: the
// depth is checked as nodes are made.
void Adopt(Node& n, NodeP child) {
  n.depth = std::max(n.depth, child->depth + 1);
  if (n.depth > kMaxDepth)
    Fail("syntax", "the expression nests more than " + std::to_string(kMaxDepth) + " levels");
  n.children.push_back(std::move(child));
}

NodeP Make(K kind, std::vector<NodeP> children = {}) {
  auto n = std::make_shared<Node>();
  n->kind = kind;
  for (auto& c : children) Adopt(*n, std::move(c));
  return n;
}

// The functions, their arities, for the parser's unknown-function check.
struct FunctionSig {
  int min_args;
  bool variadic;
};
const std::map<std::string, FunctionSig>& Functions() {
  static const std::map<std::string, FunctionSig> f = {
      {"abs", {1, false}},      {"avg", {1, false}},         {"ceil", {1, false}},
      {"contains", {2, false}}, {"ends_with", {2, false}},   {"floor", {1, false}},
      {"join", {2, false}},     {"keys", {1, false}},        {"length", {1, false}},
      {"map", {2, false}},      {"max", {1, false}},         {"max_by", {2, false}},
      {"merge", {1, true}},     {"min", {1, false}},         {"min_by", {2, false}},
      {"not_null", {1, true}},  {"reverse", {1, false}},     {"sort", {1, false}},
      {"sort_by", {2, false}},  {"starts_with", {2, false}}, {"sum", {1, false}},
      {"to_array", {1, false}}, {"to_number", {1, false}},   {"to_string", {1, false}},
      {"type", {1, false}},     {"values", {1, false}}};
  return f;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  NodeP Parse() {
    NodeP n = Expr(0);
    if (Cur() != T::kEof) Syntax(t_[i_].pos, "unexpected " + std::string(Name(Cur())));
    return n;
  }

 private:
  T Cur() const { return t_[i_].type; }
  T Ahead(size_t k) const { return i_ + k < t_.size() ? t_[i_ + k].type : T::kEof; }
  void Advance() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  void Match(T t) {
    if (Cur() != t)
      Syntax(t_[i_].pos, "expected " + std::string(Name(t)) + ", found " + Name(Cur()));
    Advance();
  }

  NodeP Expr(int bp) {
    if (++depth_ > kMaxDepth)
      Syntax(t_[i_].pos, "the expression nests more than " + std::to_string(kMaxDepth) + " levels");
    Token tok = t_[i_];
    Advance();
    NodeP left = Nud(tok);
    while (bp < Bp(Cur())) {
      Token op = t_[i_];
      Advance();
      left = Led(op, left);
    }
    --depth_;
    return left;
  }

  NodeP Nud(const Token& tok) {
    switch (tok.type) {
      case T::kLiteral: {
        NodeP n = Make(K::kLiteral);
        n->literal = tok.literal;
        return n;
      }
      case T::kUnquoted: {
        NodeP n = Make(K::kField);
        n->name = tok.text;
        return n;
      }
      case T::kQuoted: {
        if (Cur() == T::kLparen) Syntax(tok.pos, "a quoted identifier cannot name a function");
        NodeP n = Make(K::kField);
        n->name = tok.text;
        return n;
      }
      case T::kStar: {
        NodeP right = Cur() == T::kRbracket ? Make(K::kIdentity) : ProjectionRhs(Bp(T::kStar));
        return Make(K::kValueProjection, {Make(K::kIdentity), right});
      }
      case T::kFilter:
        return Filter(Make(K::kIdentity));
      case T::kLbrace:
        return MultiHash();
      case T::kLparen: {
        NodeP e = Expr(0);
        Match(T::kRparen);
        return e;
      }
      case T::kFlatten: {
        NodeP left = Make(K::kFlatten, {Make(K::kIdentity)});
        return Make(K::kProjection, {left, ProjectionRhs(Bp(T::kFlatten))});
      }
      case T::kNot:
        return Make(K::kNot, {Expr(Bp(T::kNot))});
      case T::kLbracket: {
        if (Cur() == T::kNumber || Cur() == T::kColon)
          return ProjectIfSlice(Make(K::kIdentity), IndexExpr());
        if (Cur() == T::kStar && Ahead(1) == T::kRbracket) {
          Advance();
          Advance();
          return Make(K::kProjection, {Make(K::kIdentity), ProjectionRhs(Bp(T::kStar))});
        }
        return MultiList();
      }
      case T::kCurrent:
        return Make(K::kCurrent);
      case T::kExpref:
        return Make(K::kExpref, {Expr(Bp(T::kExpref))});
      case T::kEof:
        Syntax(tok.pos, "the expression is incomplete");
      default:
        Syntax(tok.pos, "unexpected " + std::string(Name(tok.type)));
    }
  }

  NodeP Led(const Token& tok, NodeP left) {
    switch (tok.type) {
      case T::kDot: {
        if (Cur() != T::kStar) {
          NodeP right = DotRhs(Bp(T::kDot));
          if (left->kind == K::kSubexpr) {
            Adopt(*left, right);
            return left;
          }
          return Make(K::kSubexpr, {left, right});
        }
        Advance();
        return Make(K::kValueProjection, {left, ProjectionRhs(Bp(T::kDot))});
      }
      case T::kPipe:
        return Make(K::kPipe, {left, Expr(Bp(T::kPipe))});
      case T::kOr:
        return Make(K::kOr, {left, Expr(Bp(T::kOr))});
      case T::kAnd:
        return Make(K::kAnd, {left, Expr(Bp(T::kAnd))});
      case T::kLparen: {
        if (left->kind != K::kField) Syntax(tok.pos, "only a name can be called as a function");
        NodeP f = Make(K::kFunction);
        f->name = left->name;
        while (Cur() != T::kRparen) {
          NodeP arg = Expr(0);
          if (Cur() == T::kComma)
            Match(T::kComma);
          else if (Cur() != T::kRparen)
            Syntax(t_[i_].pos, "expected ',' or ')' in the arguments of " + f->name + "()");
          Adopt(*f, arg);
        }
        Match(T::kRparen);
        auto it = Functions().find(f->name);
        if (it == Functions().end())
          Fail("unknown-function", "unknown function: " + f->name + "()");
        int n = static_cast<int>(f->children.size());
        if (it->second.variadic ? n < it->second.min_args : n != it->second.min_args)
          Fail("invalid-arity", f->name + "() takes " + (it->second.variadic ? "at least " : "") +
                                    std::to_string(it->second.min_args) + " argument" +
                                    (it->second.min_args == 1 ? "" : "s") + ", got " +
                                    std::to_string(n));
        return f;
      }
      case T::kFilter:
        return Filter(left);
      case T::kEq:
      case T::kNe:
      case T::kGt:
      case T::kGte:
      case T::kLt:
      case T::kLte: {
        NodeP c = Make(K::kComparator, {left, Expr(Bp(tok.type))});
        c->name = tok.type == T::kEq    ? "=="
                  : tok.type == T::kNe  ? "!="
                  : tok.type == T::kGt  ? ">"
                  : tok.type == T::kGte ? ">="
                  : tok.type == T::kLt  ? "<"
                                        : "<=";
        return c;
      }
      case T::kFlatten: {
        NodeP l = Make(K::kFlatten, {left});
        return Make(K::kProjection, {l, ProjectionRhs(Bp(T::kFlatten))});
      }
      case T::kLbracket: {
        if (Cur() == T::kNumber || Cur() == T::kColon) {
          NodeP right = IndexExpr();
          if (left->kind == K::kIndexExpr) {
            Adopt(*left, right);
            return left;
          }
          return ProjectIfSlice(left, right);
        }
        Match(T::kStar);
        Match(T::kRbracket);
        return Make(K::kProjection, {left, ProjectionRhs(Bp(T::kStar))});
      }
      default:
        Syntax(tok.pos, "unexpected " + std::string(Name(tok.type)));
    }
  }

  NodeP Filter(NodeP left) {
    NodeP cond = Expr(0);
    Match(T::kRbracket);
    NodeP right = Cur() == T::kFlatten ? Make(K::kIdentity) : ProjectionRhs(Bp(T::kFilter));
    return Make(K::kFilterProjection, {left, right, cond});
  }

  NodeP IndexExpr() {
    if (Cur() == T::kColon || Ahead(1) == T::kColon) return SliceExpr();
    if (Cur() != T::kNumber) Syntax(t_[i_].pos, "expected a number");
    NodeP n = Make(K::kIndex);
    n->index = t_[i_].number;
    Advance();
    Match(T::kRbracket);
    return n;
  }

  NodeP SliceExpr() {
    std::optional<long long> parts[3];
    int at = 0;
    while (Cur() != T::kRbracket && at < 3) {
      if (Cur() == T::kColon) {
        ++at;
        if (at == 3) Syntax(t_[i_].pos, "a slice has at most three parts");
        Advance();
      } else if (Cur() == T::kNumber) {
        parts[at] = t_[i_].number;
        Advance();
      } else {
        Syntax(t_[i_].pos,
               "expected a number or ':' in a slice, found " + std::string(Name(Cur())));
      }
    }
    Match(T::kRbracket);
    NodeP n = Make(K::kSlice);
    n->start = parts[0];
    n->stop = parts[1];
    n->step = parts[2];
    return n;
  }

  NodeP ProjectIfSlice(NodeP left, NodeP right) {
    bool slice = right->kind == K::kSlice;
    NodeP ix = Make(K::kIndexExpr, {left, right});
    if (slice) return Make(K::kProjection, {ix, ProjectionRhs(Bp(T::kStar))});
    return ix;
  }

  NodeP MultiList() {
    NodeP n = Make(K::kMultiList);
    for (;;) {
      Adopt(*n, Expr(0));
      if (Cur() == T::kRbracket) break;
      Match(T::kComma);
    }
    Match(T::kRbracket);
    return n;
  }

  NodeP MultiHash() {
    NodeP n = Make(K::kMultiHash);
    for (;;) {
      if (Cur() != T::kQuoted && Cur() != T::kUnquoted)
        Syntax(t_[i_].pos, "expected a key name in {...}, found " + std::string(Name(Cur())));
      std::string key = t_[i_].text;
      Advance();
      Match(T::kColon);
      n->keys.push_back(key);
      Adopt(*n, Expr(0));
      if (Cur() == T::kComma) {
        Match(T::kComma);
      } else {
        Match(T::kRbrace);
        break;
      }
    }
    return n;
  }

  NodeP ProjectionRhs(int bp) {
    if (Bp(Cur()) < 10) return Make(K::kIdentity);
    if (Cur() == T::kLbracket || Cur() == T::kFilter) return Expr(bp);
    if (Cur() == T::kDot) {
      Match(T::kDot);
      return DotRhs(bp);
    }
    Syntax(t_[i_].pos, "unexpected " + std::string(Name(Cur())) + " after a projection");
  }

  NodeP DotRhs(int bp) {
    T c = Cur();
    if (c == T::kQuoted || c == T::kUnquoted || c == T::kStar) return Expr(bp);
    if (c == T::kLbracket) {
      Match(T::kLbracket);
      return MultiList();
    }
    if (c == T::kLbrace) {
      Match(T::kLbrace);
      return MultiHash();
    }
    Syntax(t_[i_].pos, "expected a name, '*', '[' or '{' after '.', found " + std::string(Name(c)));
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

// ---- evaluation ----

bool IsFalse(const Json& v) {
  return v.is_null() || (v.is_boolean() && !v.get<bool>()) ||
         (v.is_string() && v.get_ref<const std::string&>().empty()) ||
         (v.is_array() && v.empty()) || (v.is_object() && v.empty());
}

std::string TypeOf(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "boolean";
    case Json::value_t::string:
      return "string";
    case Json::value_t::array:
      return "array";
    case Json::value_t::object:
      return "object";
    case Json::value_t::discarded:
      return "null";
    default:
      return "number";
  }
}

double Num(const Json& v) { return v.get<double>(); }

// Equality as the reference's: numbers by value (1 == 1.0), never equal to booleans; deep for
// containers.
bool Equal(const Json& a, const Json& b) { return a == b; }

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++n;
  return n;
}

std::vector<std::string> SplitCodePoints(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i + 1;
    while (j < s.size() && (static_cast<unsigned char>(s[j]) & 0xC0) == 0x80) ++j;
    out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A number's JSON: integers stay integers where the value is one (sum of integers, ceil).
Json Number(double d) {
  if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9.007199254740992e15)
    return static_cast<long long>(d);
  return d;
}

Json ParseNumber(const std::string& text) {
  // As Python's int(), else float(): surrounding whitespace allowed, underscores between digits.
  size_t a = text.find_first_not_of(" \t\n\r\f\v"), b = text.find_last_not_of(" \t\n\r\f\v");
  if (a == std::string::npos) return nullptr;
  std::string s = text.substr(a, b - a + 1);
  std::string digits;
  size_t i = 0;
  if (s[0] == '+' || s[0] == '-') digits += s[i++];
  bool ok = i < s.size(), prev_digit = false;
  for (; i < s.size() && ok; ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      digits += s[i];
      prev_digit = true;
    } else if (s[i] == '_' && prev_digit && i + 1 < s.size() && s[i + 1] >= '0' &&
               s[i + 1] <= '9') {
      prev_digit = false;
    } else {
      ok = false;
    }
  }
  if (ok) {
    errno = 0;
    long long v = strtoll(digits.c_str(), nullptr, 10);
    if (errno != ERANGE) return v;
    return strtod(digits.c_str(), nullptr);
  }
  std::string lower;
  for (char c : s) lower += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  if (lower.find('x') != std::string::npos || lower.find('p') != std::string::npos)
    return nullptr;  // no hex
  if (lower.find("inf") != std::string::npos || lower.find("nan") != std::string::npos)
    return nullptr;
  char* end = nullptr;
  double d = strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return nullptr;
  return d;
}

class Evaluator {
 public:
  Json Eval(const Node& n, const Json& v) {
    if (++depth_ > kMaxDepth * 4)
      Fail("invalid-value", "the expression nests too deeply for this input");
    Json r = Visit(n, v);
    --depth_;
    return r;
  }

 private:
  struct Arg {
    Json value;
    const Node* expref = nullptr;
  };

  // ==, != between any two values; <, <=, >, >= between two numbers or two strings (else null).
  Json Compare(const Node& n, const Json& v) {
    Json l = Eval(*n.children[0], v), r = Eval(*n.children[1], v);
    if (n.name == "==") return Equal(l, r);
    if (n.name == "!=") return !Equal(l, r);
    int cmp;
    if (l.is_number() && r.is_number()) {
      double a = Num(l), b = Num(r);
      cmp = a < b ? -1 : a > b ? 1 : 0;
    } else if (l.is_string() && r.is_string()) {
      // Strings compare too, as the reference allows (by code point: UTF-8 byte order is the
      // same).
      int c = l.get_ref<const std::string&>().compare(r.get_ref<const std::string&>());
      cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
    } else {
      return nullptr;
    }
    if (n.name == "<") return cmp < 0;
    if (n.name == "<=") return cmp <= 0;
    if (n.name == ">") return cmp > 0;
    return cmp >= 0;
  }

  Json Visit(const Node& n, const Json& v) {
    switch (n.kind) {
      case K::kField:
        if (v.is_object()) {
          auto it = v.find(n.name);
          if (it != v.end()) return *it;
        }
        return nullptr;
      case K::kSubexpr: {
        Json r = v;
        for (const auto& c : n.children) {
          r = Eval(*c, r);
          if (r.is_null()) return nullptr;
        }
        return r;
      }
      case K::kIndexExpr: {
        Json r = v;
        for (const auto& c : n.children) r = Eval(*c, r);
        return r;
      }
      case K::kIndex: {
        if (!v.is_array()) return nullptr;
        long long size = static_cast<long long>(v.size());
        long long i = n.index < 0 ? n.index + size : n.index;
        if (i < 0 || i >= size) return nullptr;
        return v[static_cast<size_t>(i)];
      }
      case K::kSlice:
        return Slice(n, v);
      case K::kProjection: {
        Json base = Eval(*n.children[0], v);
        if (!base.is_array()) return nullptr;
        Json out = Json::array();
        for (const auto& e : base) {
          Json r = Eval(*n.children[1], e);
          if (!r.is_null()) out.push_back(std::move(r));
        }
        return out;
      }
      case K::kValueProjection: {
        Json base = Eval(*n.children[0], v);
        if (!base.is_object()) return nullptr;
        Json out = Json::array();
        for (const auto& [k, e] : base.items()) {
          Json r = Eval(*n.children[1], e);
          if (!r.is_null()) out.push_back(std::move(r));
        }
        return out;
      }
      case K::kFilterProjection: {
        Json base = Eval(*n.children[0], v);
        if (!base.is_array()) return nullptr;
        Json out = Json::array();
        for (const auto& e : base) {
          if (IsFalse(Eval(*n.children[2], e))) continue;
          Json r = Eval(*n.children[1], e);
          if (!r.is_null()) out.push_back(std::move(r));
        }
        return out;
      }
      case K::kFlatten: {
        Json base = Eval(*n.children[0], v);
        if (!base.is_array()) return nullptr;
        Json out = Json::array();
        for (const auto& e : base) {
          if (e.is_array())
            for (const auto& x : e) out.push_back(x);
          else
            out.push_back(e);
        }
        return out;
      }
      case K::kIdentity:
      case K::kCurrent:
        return v;
      case K::kLiteral:
        return n.literal;
      case K::kPipe:
        return Eval(*n.children[1], Eval(*n.children[0], v));
      case K::kOr: {
        Json l = Eval(*n.children[0], v);
        return IsFalse(l) ? Eval(*n.children[1], v) : l;
      }
      case K::kAnd: {
        Json l = Eval(*n.children[0], v);
        return IsFalse(l) ? l : Eval(*n.children[1], v);
      }
      case K::kNot:
        return IsFalse(Eval(*n.children[0], v));
      case K::kComparator:
        return Compare(n, v);
      case K::kMultiList: {
        if (v.is_null()) return nullptr;
        Json out = Json::array();
        for (const auto& c : n.children) out.push_back(Eval(*c, v));
        return out;
      }
      case K::kMultiHash: {
        if (v.is_null()) return nullptr;
        Json out = Json::object();
        for (size_t i = 0; i < n.children.size(); ++i) out[n.keys[i]] = Eval(*n.children[i], v);
        return out;
      }
      case K::kExpref:
        Fail("invalid-type", "an expression reference (&...) can only be a function's argument");
      case K::kFunction:
        return Call(n, v);
    }
    return nullptr;
  }

  Json Slice(const Node& n, const Json& v) {
    if (!v.is_array()) return nullptr;
    long long len = static_cast<long long>(v.size());
    long long step = n.step.value_or(1);
    if (step == 0) Fail("invalid-value", "a slice's step cannot be 0");
    long long lower = step < 0 ? -1 : 0, upper = step < 0 ? len - 1 : len;
    auto clamp = [&](std::optional<long long> x, long long dflt) {
      if (!x) return dflt;
      long long i = *x;
      if (i < 0) {
        i += len;
        if (i < lower) i = lower;
      } else if (i > upper) {
        i = upper;
      }
      return i;
    };
    long long start = clamp(n.start, step < 0 ? upper : lower);
    long long stop = clamp(n.stop, step < 0 ? lower : upper);
    Json out = Json::array();
    // The steps may be as large as an int64 is: an overflowing step ends the slice.
    if (step > 0) {
      for (long long i = start; i < stop;) {
        out.push_back(v[static_cast<size_t>(i)]);
        if (__builtin_add_overflow(i, step, &i)) break;
      }
    } else {
      for (long long i = start; i > stop;) {
        out.push_back(v[static_cast<size_t>(i)]);
        if (__builtin_add_overflow(i, step, &i)) break;
      }
    }
    return out;
  }

  [[noreturn]] void TypeError(const std::string& fn, int arg, const std::string& expected,
                              const Json& got) {
    Fail("invalid-type", fn + "(): argument " + std::to_string(arg + 1) + " must be " + expected +
                             ", got " + TypeOf(got));
  }

  // `types`: "number", "string", "array", "object", "boolean", "expref", "any", "array-number",
  // "array-string", several separated by '|'.
  void Check(const std::string& fn, int i, const Arg& a, const std::string& types) {
    if (types == "any") {
      if (a.expref) TypeError(fn, i, "a value", "an expression reference");
      return;
    }
    if (a.expref) {
      if (types != "expref")
        Fail("invalid-type", fn + "(): argument " + std::to_string(i + 1) + " must be " + types +
                                 ", got an expression reference");
      return;
    }
    if (types == "expref") TypeError(fn, i, "an expression reference (&...)", a.value);
    std::string t = TypeOf(a.value);
    std::vector<std::string> allowed;
    for (size_t p = 0; p <= types.size();) {
      size_t q = types.find('|', p);
      if (q == std::string::npos) q = types.size();
      allowed.push_back(types.substr(p, q - p));
      p = q + 1;
    }
    if (std::find(allowed.begin(), allowed.end(), t) != allowed.end()) return;
    // Typed arrays: every element of one type, the first element's deciding which where several are
    // allowed.
    if (t == "array") {
      std::vector<std::string> sub;
      for (const auto& x : allowed)
        if (x.rfind("array-", 0) == 0) sub.push_back(x.substr(6));
      if (!sub.empty()) {
        if (a.value.empty()) return;
        std::string want = TypeOf(a.value[0]);
        if (std::find(sub.begin(), sub.end(), want) != sub.end() &&
            std::all_of(a.value.begin(), a.value.end(),
                        [&](const Json& e) { return TypeOf(e) == want; }))
          return;
      }
    }
    TypeError(fn, i, types, a.value);
  }

  Json Key(const std::string& fn, const Node* expref, const Json& e,
           const std::vector<std::string>& allowed) {
    Json k = Eval(*expref, e);
    std::string t = TypeOf(k);
    if (std::find(allowed.begin(), allowed.end(), t) == allowed.end())
      Fail("invalid-type", fn + "(): the expression must give " + allowed[0] +
                               (allowed.size() > 1 ? " or " + allowed[1] : "") +
                               " for every element, got " + t);
    return k;
  }

  static bool Less(const Json& a, const Json& b) {
    if (a.is_number() && b.is_number()) return Num(a) < Num(b);
    if (a.is_string() && b.is_string())
      return a.get_ref<const std::string&>() < b.get_ref<const std::string&>();
    Fail("invalid-type", "cannot compare " + TypeOf(a) + " with " + TypeOf(b));
  }

  Json Call(const Node& n, const Json& v) {
    std::vector<Arg> args;
    for (const auto& c : n.children) {
      if (c->kind == K::kExpref)
        args.push_back({nullptr, c->children[0].get()});
      else
        args.push_back({Eval(*c, v), nullptr});
    }
    const std::string& f = n.name;
    auto check = [&](std::initializer_list<const char*> types) {
      int i = 0;
      for (const char* t : types) Check(f, i, args[static_cast<size_t>(i)], t), ++i;
    };
    if (f == "abs") {
      check({"number"});
      const Json& x = args[0].value;
      if (x.is_number_integer() && x.get<long long>() != LLONG_MIN)
        return std::llabs(x.get<long long>());
      if (x.is_number_integer()) return -static_cast<double>(LLONG_MIN);
      if (x.is_number_unsigned()) return x;
      return std::fabs(Num(x));
    }
    if (f == "avg") {
      check({"array-number"});
      if (args[0].value.empty()) return nullptr;
      double s = 0;
      for (const auto& e : args[0].value) s += Num(e);
      return s / static_cast<double>(args[0].value.size());
    }
    if (f == "ceil" || f == "floor") {
      check({"number"});
      const Json& x = args[0].value;
      if (x.is_number_integer() || x.is_number_unsigned()) return x;
      return Number(f == "ceil" ? std::ceil(Num(x)) : std::floor(Num(x)));
    }
    if (f == "contains") {
      check({"array|string", "any"});
      const Json& s = args[0].value;
      if (s.is_string()) {
        if (!args[1].value.is_string()) return false;
        return s.get_ref<const std::string&>().find(args[1].value.get_ref<const std::string&>()) !=
               std::string::npos;
      }
      for (const auto& e : s)
        if (Equal(e, args[1].value)) return true;
      return false;
    }
    if (f == "ends_with" || f == "starts_with") {
      check({"string", "string"});
      const std::string& s = args[0].value.get_ref<const std::string&>();
      const std::string& x = args[1].value.get_ref<const std::string&>();
      if (x.size() > s.size()) return false;
      return f == "ends_with" ? s.compare(s.size() - x.size(), x.size(), x) == 0
                              : s.compare(0, x.size(), x) == 0;
    }
    if (f == "join") {
      check({"string", "array-string"});
      std::string out;
      bool first = true;
      for (const auto& e : args[1].value) {
        if (!first) out += args[0].value.get_ref<const std::string&>();
        out += e.get_ref<const std::string&>();
        first = false;
      }
      return out;
    }
    if (f == "keys" || f == "values") {
      check({"object"});
      Json out = Json::array();
      for (const auto& [k, e] : args[0].value.items()) out.push_back(f == "keys" ? Json(k) : e);
      return out;
    }
    if (f == "length") {
      check({"string|array|object"});
      const Json& x = args[0].value;
      if (x.is_string()) return static_cast<long long>(CodePoints(x.get_ref<const std::string&>()));
      return static_cast<long long>(x.size());
    }
    if (f == "map") {
      check({"expref", "array"});
      Json out = Json::array();
      for (const auto& e : args[1].value) out.push_back(Eval(*args[0].expref, e));
      return out;
    }
    if (f == "max" || f == "min") {
      check({"array-number|array-string"});
      const Json& a = args[0].value;
      if (a.empty()) return nullptr;
      size_t best = 0;
      for (size_t i = 1; i < a.size(); ++i)
        if (f == "max" ? Less(a[best], a[i]) : Less(a[i], a[best])) best = i;
      return a[best];
    }
    if (f == "max_by" || f == "min_by") {
      check({"array", "expref"});
      const Json& a = args[0].value;
      if (a.empty()) return nullptr;
      size_t best = 0;
      // Numbers or strings, every key of the first key's type (as sort_by).
      Json best_key = Key(f, args[1].expref, a[0], {"number", "string"});
      std::string kind = TypeOf(best_key);
      for (size_t i = 1; i < a.size(); ++i) {
        Json k = Key(f, args[1].expref, a[i], {kind});
        if (f == "max_by" ? Less(best_key, k) : Less(k, best_key)) {
          best = i;
          best_key = k;
        }
      }
      return a[best];
    }
    if (f == "merge") {
      Json out = Json::object();
      for (size_t i = 0; i < args.size(); ++i) {
        Check(f, static_cast<int>(i), args[i], "object");
        for (const auto& [k, e] : args[i].value.items()) out[k] = e;
      }
      return out;
    }
    if (f == "not_null") {
      for (size_t i = 0; i < args.size(); ++i) {
        Check(f, static_cast<int>(i), args[i], "any");
        if (!args[i].value.is_null()) return args[i].value;
      }
      return nullptr;
    }
    if (f == "reverse") {
      check({"array|string"});
      const Json& x = args[0].value;
      if (x.is_string()) {
        auto cps = SplitCodePoints(x.get_ref<const std::string&>());
        std::string out;
        for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
        return out;
      }
      Json out = Json::array();
      for (auto it = x.rbegin(); it != x.rend(); ++it) out.push_back(*it);
      return out;
    }
    if (f == "sort") {
      check({"array-number|array-string"});
      std::vector<Json> a(args[0].value.begin(), args[0].value.end());
      std::stable_sort(a.begin(), a.end(), [](const Json& x, const Json& y) { return Less(x, y); });
      return Json(a);
    }
    if (f == "sort_by") {
      check({"array", "expref"});
      const Json& a = args[0].value;
      if (a.empty()) return a;
      std::string first = TypeOf(Eval(*args[1].expref, a[0]));
      if (first != "number" && first != "string")
        Fail("invalid-type",
             "sort_by(): the expression must give a number or a string, got " + first);
      std::vector<std::pair<Json, size_t>> keyed;
      for (size_t i = 0; i < a.size(); ++i)
        keyed.push_back({Key(f, args[1].expref, a[i], {first}), i});
      std::stable_sort(keyed.begin(), keyed.end(),
                       [](const auto& x, const auto& y) { return Less(x.first, y.first); });
      Json out = Json::array();
      for (const auto& [k, i] : keyed) out.push_back(a[i]);
      return out;
    }
    if (f == "sum") {
      check({"array-number"});
      bool ints = true;
      long long si = 0;
      for (const auto& e : args[0].value)
        if (!ints || !e.is_number_integer() || __builtin_add_overflow(si, e.get<long long>(), &si))
          ints = false;
      if (ints) return si;
      double sd = 0;
      for (const auto& e : args[0].value) sd += Num(e);
      return sd;
    }
    if (f == "to_array") {
      check({"any"});
      if (args[0].value.is_array()) return args[0].value;
      return Json::array({args[0].value});
    }
    if (f == "to_number") {
      check({"any"});
      const Json& x = args[0].value;
      if (x.is_number()) return x;
      if (x.is_string()) return ParseNumber(x.get_ref<const std::string&>());
      return nullptr;
    }
    if (f == "to_string") {
      check({"any"});
      if (args[0].value.is_string()) return args[0].value;
      // As Python's json.dumps(separators=(',', ':')): compact, non-ASCII escaped.
      return args[0].value.dump(-1, ' ', true, Json::error_handler_t::replace);
    }
    if (f == "type") {
      check({"any"});
      return TypeOf(args[0].value);
    }
    Fail("unknown-function", "unknown function: " + f + "()");
  }

  int depth_ = 0;
};

}  // namespace

Expression::Expression(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
Expression::~Expression() = default;

std::unique_ptr<Expression> Expression::Compile(std::string_view text, Error* error) {
  try {
    if (text.size() > kMaxExpression) Fail("syntax", "the expression is longer than 64 KiB");
    Parser p(Lex(text));
    return std::unique_ptr<Expression>(new Expression(p.Parse()));
  } catch (const Failure& f) {
    if (error) *error = f.error;
    return nullptr;
  }
}

bool Expression::Search(const Json& data, Json* result, Error* error) const {
  try {
    Evaluator e;
    *result = e.Eval(*root_, data);
    return true;
  } catch (const Failure& f) {
    if (error) *error = f.error;
    return false;
  } catch (const Json::exception& x) {
    if (error) *error = {"invalid-value", x.what()};
    return false;
  }
}

bool Search(std::string_view expression, const Json& data, Json* result, Error* error) {
  auto e = Expression::Compile(expression, error);
  return e && e->Search(data, result, error);
}

}  // namespace cairn::jmespath
