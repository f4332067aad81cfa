#include "server/mlflow_api.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/beneath.h"
#include "base/json_limits.h"
#include "base/http_server.h"

#include <charconv>

#include "base/json_reader.h"
#include "base/json_writer.h"

#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <string_view>
#include <unordered_map>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/util.h"
#include "server/access.h"
#include "tracking/tracking_store.h"

namespace cairn::server {

using nlohmann::json;
using tracking::KeyValue;
using tracking::Metric;
namespace fs = std::filesystem;

namespace {

void Reply(http::Response& res, const json& body) {
  res.status = 200;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void ReplyError(http::Response& res, const Status& s) {
  std::string code = "INTERNAL_ERROR";
  int http = 500;
  switch (s.code()) {
    case Code::kInvalidArgument:
      code = "INVALID_PARAMETER_VALUE";
      http = 400;
      break;
    case Code::kNotFound:
      code = "RESOURCE_DOES_NOT_EXIST";
      http = 404;
      break;
    case Code::kAlreadyExists:
      code = "RESOURCE_ALREADY_EXISTS";
      http = 400;
      break;
    case Code::kFailedPrecondition:
      code = "INVALID_STATE";
      http = 400;
      break;
    case Code::kPermissionDenied:
      code = "PERMISSION_DENIED";
      http = 403;
      break;
    case Code::kUnauthenticated:
      code = "UNAUTHENTICATED";
      http = 401;
      break;
    default:
      break;
  }
  res.status = http;
  res.set_content(json{{"error_code", code}, {"message", s.message()}}.dump(), "application/json");
}

// A request message: the JSON body of a POST, or the query string of a GET.
class Msg {
 public:
  explicit Msg(const http::Request& req) : req_(req) {
    if (req.method != "GET" && !req.body.empty()) {
      body_ = ParseJsonOrDiscarded(req.body);
      bad_ = !body_.is_object();
    }
  }
  bool bad() const { return bad_; }
  // Who is calling (the router attached them), and the job a job's token limits them to ("" for
  // a person).
  const Caller& Who() const { return CallerOf(req_); }
  std::optional<std::string> Str(const std::string& k) const {
    if (body_.is_object() && body_.contains(k) && !body_[k].is_null()) {
      const json& v = body_[k];
      if (v.is_string()) return v.get<std::string>();
      if (v.is_number_integer()) return std::to_string(v.get<long long>());
      return v.dump();
    }
    if (req_.has_param(k)) return req_.get_param_value(k);
    return std::nullopt;
  }
  std::string StrOr(const std::string& k, const std::string& d = "") const {
    return Str(k).value_or(d);
  }
  // int64 as a JSON number or a numeric string.
  Result<std::optional<long long>> Int(const std::string& k) const {
    auto s = Str(k);
    if (!s) return std::optional<long long>();
    char* end;
    errno = 0;
    long long v = strtoll(s->c_str(), &end, 10);
    if (errno || *end || s->empty())
      return InvalidArgument("Invalid value \"" + *s + "\" for parameter '" + k +
                             "' supplied: expected an integer");
    return std::optional<long long>(v);
  }
  std::vector<std::string> All(const std::string& k) const {
    std::vector<std::string> out;
    if (body_.is_object() && body_.contains(k)) {
      const json& v = body_[k];
      if (v.is_array())
        for (const auto& x : v) out.push_back(x.is_string() ? x.get<std::string>() : x.dump());
      else if (v.is_string())
        out.push_back(v);
      return out;
    }
    auto range = req_.params.equal_range(k);
    for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
    return out;
  }
  const json& Body() const { return body_; }
  const std::string& Method() const { return req_.method; }
  // The path after /api/2.0/mlflow/.
  std::string Path() const { return req_.matches[1]; }
  // run_id, or the old run_uuid.
  std::string RunId() const {
    auto r = Str("run_id");
    return r ? *r : StrOr("run_uuid");
  }

 private:
  const http::Request& req_;
  json body_;
  bool bad_ = false;
};

Result<double> ParseDouble(const json& v, const std::string& field) {
  if (v.is_number()) return v.get<double>();
  if (v.is_string()) {
    std::string s = v;
    if (s == "NaN") return NAN;
    if (s == "Infinity") return INFINITY;
    if (s == "-Infinity") return -INFINITY;
    char* end;
    double d = strtod(s.c_str(), &end);
    if (!s.empty() && !*end) return d;
  }
  return InvalidArgument("Invalid value " + v.dump() + " for parameter '" + field +
                         "' supplied: expected a number");
}

Result<long long> ParseInt(const json& v, const std::string& field) {
  // 64-bit signed, as MLflow's protobuf int64: 2^63 is refused, not wrapped to -2^63.
  if (v.is_number_unsigned()) {
    if (v.get<unsigned long long>() <= static_cast<unsigned long long>(LLONG_MAX))
      return static_cast<long long>(v.get<unsigned long long>());
  } else if (v.is_number_integer()) {
    return v.get<long long>();
  }
  if (v.is_number_float() && v.get<double>() == std::floor(v.get<double>()) &&
      v.get<double>() >= -9.2233720368547758e18 && v.get<double>() < 9.2233720368547758e18)
    return static_cast<long long>(v.get<double>());
  if (v.is_string()) {
    std::string s = v;
    char* end;
    errno = 0;
    long long x = strtoll(s.c_str(), &end, 10);
    if (!s.empty() && !*end && errno == 0) return x;
  }
  return InvalidArgument("Invalid value " + v.dump() + " for parameter '" + field +
                         "' supplied: expected an integer");
}

Result<std::vector<KeyValue>> KeyValues(const json& arr, const std::string& field) {
  std::vector<KeyValue> out;
  if (arr.is_null()) return out;
  if (!arr.is_array())
    return InvalidArgument("Invalid value for parameter '" + field + "': expected a list");
  for (const auto& x : arr) {
    if (!x.is_object() || !x.contains("key") || !x["key"].is_string())
      return InvalidArgument("Missing value for required parameter '" + field + "[].key'");
    json v = x.value("value", json(""));
    out.push_back({x["key"], v.is_string() ? v.get<std::string>() : v.dump()});
  }
  return out;
}

Result<Metric> MetricFrom(const json& x) {
  if (!x.is_object() || !x.contains("key") || !x["key"].is_string())
    return InvalidArgument("Missing value for required parameter 'key'");
  Metric m;
  m.key = x["key"];
  if (!x.contains("value")) return InvalidArgument("Missing value for required parameter 'value'");
  auto v = ParseDouble(x["value"], "value");
  if (!v.ok()) return v.status();
  m.value = *v;
  if (!x.contains("timestamp"))
    return InvalidArgument("Missing value for required parameter 'timestamp'");
  auto t = ParseInt(x["timestamp"], "timestamp");
  if (!t.ok()) return t.status();
  m.timestamp = *t;
  if (x.contains("step") && !x["step"].is_null()) {
    auto st = ParseInt(x["step"], "step");
    if (!st.ok()) return st.status();
    m.step = *st;
  }
  // MLflow 3.x: the logged model and dataset a metric belongs to.
  for (auto [field, out] :
       {std::pair{"model_id", &m.model_id}, std::pair{"dataset_name", &m.dataset_name},
        std::pair{"dataset_digest", &m.dataset_digest}})
    if (x.contains(field) && x[field].is_string()) *out = x[field];
  return m;
}

// A log-batch body read without building a DOM: the hot path of every training loop. Returns
// nothing when the body is anything but the plain well-formed shape (a missing field, a value of
// another type, a repeated member); the caller then takes the general path, which gives the precise
// error.
struct LogBatchBody {
  std::string run_id;
  std::vector<Metric> metrics;
  std::vector<KeyValue> params, tags;
};

std::optional<LogBatchBody> ReadLogBatch(std::string_view text) {
  JsonReader r(text);
  LogBatchBody b;
  std::string key, s;
  bool seen_run = false, seen_uuid = false, seen_metrics = false, seen_params = false,
       seen_tags = false;
  std::string run_uuid;
  auto kvs = [&](std::vector<KeyValue>& out) {
    if (r.Peek() == JsonReader::Kind::kNull) return r.Null();
    if (!r.BeginArray()) return false;
    while (r.NextElement()) {
      KeyValue kv;
      bool has_key = false, has_value = false;
      if (!r.BeginObject()) return false;
      while (r.NextKey(&key)) {
        if (key == "key" && !has_key) {
          has_key = r.String(&kv.key);
        } else if (key == "value" && !has_value) {
          has_value = r.String(&kv.value);
        } else if (key == "key" || key == "value") {
          return false;
        } else {
          r.Skip();
        }
      }
      if (!r.ok() || !has_key) return false;
      out.push_back(std::move(kv));
    }
    return r.ok();
  };
  auto number = [&](double* v) {
    if (r.Peek() == JsonReader::Kind::kNumber) return r.Double(v);
    if (!r.String(&s)) return false;
    if (s == "NaN")
      *v = NAN;
    else if (s == "Infinity")
      *v = INFINITY;
    else if (s == "-Infinity")
      *v = -INFINITY;
    else
      return false;
    return true;
  };
  auto integer = [&](long long* v) {
    if (r.Peek() == JsonReader::Kind::kNumber) return r.Int(v);
    if (!r.String(&s) || s.empty()) return false;
    auto res = std::from_chars(s.data(), s.data() + s.size(), *v);
    return res.ec == std::errc() && res.ptr == s.data() + s.size();
  };
  if (!r.BeginObject()) return std::nullopt;
  while (r.NextKey(&key)) {
    if (key == "run_id" && !seen_run) {
      seen_run = r.String(&b.run_id);
    } else if (key == "run_uuid" && !seen_uuid) {
      seen_uuid = r.String(&run_uuid);
    } else if (key == "metrics" && !seen_metrics) {
      seen_metrics = true;
      if (r.Peek() == JsonReader::Kind::kNull) {
        r.Null();
        continue;
      }
      if (!r.BeginArray()) return std::nullopt;
      while (r.NextElement()) {
        Metric m;
        bool k = false, v = false, t = false, st = false;
        if (!r.BeginObject()) return std::nullopt;
        while (r.NextKey(&key)) {
          bool fine = true;
          if (key == "key")
            fine = !k && (k = r.String(&m.key));
          else if (key == "value")
            fine = !v && (v = number(&m.value));
          else if (key == "timestamp")
            fine = !t && (t = integer(&m.timestamp));
          else if (key == "step")
            fine = !st && (st = integer(&m.step));
          else if (key == "model_id" && r.Peek() == JsonReader::Kind::kString)
            fine = r.String(&m.model_id);
          else if (key == "dataset_name" && r.Peek() == JsonReader::Kind::kString)
            fine = r.String(&m.dataset_name);
          else if (key == "dataset_digest" && r.Peek() == JsonReader::Kind::kString)
            fine = r.String(&m.dataset_digest);
          else
            r.Skip();  // anything newer clients add (3.x also sends run_id)
          if (!fine) return std::nullopt;
        }
        if (!r.ok() || !k || !v || !t) return std::nullopt;
        b.metrics.push_back(std::move(m));
      }
    } else if (key == "params" && !seen_params) {
      seen_params = true;
      if (!kvs(b.params)) return std::nullopt;
    } else if (key == "tags" && !seen_tags) {
      seen_tags = true;
      if (!kvs(b.tags)) return std::nullopt;
    } else if (key == "run_id" || key == "run_uuid" || key == "metrics" || key == "params" ||
               key == "tags") {
      return std::nullopt;
    } else {
      r.Skip();
    }
  }
  if (!r.ok() || !r.AtEnd()) return std::nullopt;
  if (!seen_run) b.run_id = run_uuid;
  return b;
}

// The route a path takes: the path itself, or for MLflow 3.x's logged models (ids in the path) its
// pattern.
std::string RouteOf(const std::string& path) {
  const std::string prefix = "logged-models/";
  if (path.rfind(prefix, 0) != 0 || path == "logged-models/search") return path;
  auto parts = Split(path.substr(prefix.size()), '/');
  if (parts.empty() || parts[0].empty()) return path;
  if (parts.size() == 1) return "logged-models/{id}";
  if (parts.size() == 2 && (parts[1] == "params" || parts[1] == "tags"))
    return "logged-models/{id}/" + parts[1];
  if (parts.size() == 3 && parts[1] == "tags") return "logged-models/{id}/tags/{key}";
  if (parts.size() == 3 && parts[1] == "artifacts" && parts[2] == "directories")
    return "logged-models/{id}/artifacts/directories";
  return path;
}

// The {id} (part 0) or {key} (part 2) of a logged-models path.
std::string ModelPathPart(const std::string& path, size_t n) {
  auto parts = Split(path.substr(std::string("logged-models/").size()), '/');
  return n < parts.size() ? parts[n] : "";  // httplib has decoded the path
}

json MetricJson(const Metric& m) {
  json v = std::isnan(m.value) ? json("NaN") : json(m.value);
  return {{"key", m.key}, {"value", v}, {"timestamp", m.timestamp}, {"step", m.step}};
}

json KvJson(const std::vector<KeyValue>& kvs) {
  json a = json::array();
  for (const auto& kv : kvs) a.push_back({{"key", kv.key}, {"value", kv.value}});
  return a;
}

json ExperimentJson(const tracking::Experiment& e) {
  json j = {{"experiment_id", e.experiment_id},         {"name", e.name},
            {"artifact_location", e.artifact_location}, {"lifecycle_stage", e.lifecycle_stage},
            {"last_update_time", e.last_update_time},   {"creation_time", e.creation_time}};
  if (!e.tags.empty()) j["tags"] = KvJson(e.tags);
  return j;
}

json RunInfoJson(const tracking::RunInfo& r) {
  json j = {{"run_uuid", r.run_id},
            {"run_id", r.run_id},
            {"experiment_id", r.experiment_id},
            {"run_name", r.run_name},
            {"user_id", r.user_id},
            {"status", r.status},
            {"artifact_uri", r.artifact_uri},
            {"lifecycle_stage", r.lifecycle_stage}};
  if (r.start_time) j["start_time"] = *r.start_time;
  if (r.end_time) j["end_time"] = *r.end_time;
  return j;
}

json RunInputsJson(const tracking::Run& r) {
  json in = json::object();
  if (!r.dataset_inputs.empty()) in["dataset_inputs"] = r.dataset_inputs;
  if (!r.model_inputs.empty()) {
    in["model_inputs"] = json::array();
    for (const auto& m : r.model_inputs) in["model_inputs"].push_back({{"model_id", m}});
  }
  return in;
}

json RunOutputsJson(const tracking::Run& r) {
  json out = {{"model_outputs", json::array()}};
  for (const auto& [m, step] : r.model_outputs)
    out["model_outputs"].push_back({{"model_id", m}, {"step", step}});
  return out;
}

json LoggedModelJson(const tracking::LoggedModel& m) {
  json info = {{"model_id", m.model_id},
               {"experiment_id", m.experiment_id},
               {"name", m.name},
               {"creation_timestamp_ms", m.creation_timestamp_ms},
               {"last_updated_timestamp_ms", m.last_updated_timestamp_ms},
               {"artifact_uri", m.artifact_uri},
               {"status", m.status},
               {"creator_id", m.creator_id},
               {"model_type", m.model_type},
               {"source_run_id", m.source_run_id},
               {"status_message", m.status_message},
               {"tags", KvJson(m.tags)},
               {"registrations", json::array()}};
  json metrics = json::array();
  for (const auto& x : m.metrics) {
    json j = MetricJson(x.metric);
    j["model_id"] = m.model_id;
    if (!x.run_id.empty()) j["run_id"] = x.run_id;
    if (!x.metric.dataset_name.empty()) j["dataset_name"] = x.metric.dataset_name;
    if (!x.metric.dataset_digest.empty()) j["dataset_digest"] = x.metric.dataset_digest;
    metrics.push_back(j);
  }
  return {{"info", info}, {"data", {{"params", KvJson(m.params)}, {"metrics", metrics}}}};
}

json RunJson(const tracking::Run& r) {
  json data = json::object();
  if (!r.metrics.empty()) {
    json m = json::array();
    for (const auto& x : r.metrics) m.push_back(MetricJson(x));
    data["metrics"] = m;
  }
  if (!r.params.empty()) data["params"] = KvJson(r.params);
  if (!r.tags.empty()) data["tags"] = KvJson(r.tags);
  json j = {{"info", RunInfoJson(r.info)}, {"data", data}};
  j["inputs"] = RunInputsJson(r);
  if (!r.model_outputs.empty()) j["outputs"] = RunOutputsJson(r);
  return j;
}

// RunJson's text, written directly: a search answer holds up to 50,000 runs.
void AppendRunJson(std::string& out, const tracking::Run& r) {
  auto field = [&](const char* name, const std::string& v) {
    out += '"';
    out += name;
    out += "\":";
    AppendJsonString(out, v);
  };
  const auto& i = r.info;
  out += "{\"info\":{";
  field("run_uuid", i.run_id);
  out += ',';
  field("run_id", i.run_id);
  out += ',';
  field("experiment_id", i.experiment_id);
  out += ',';
  field("run_name", i.run_name);
  out += ',';
  field("user_id", i.user_id);
  out += ',';
  field("status", i.status);
  out += ',';
  field("artifact_uri", i.artifact_uri);
  out += ',';
  field("lifecycle_stage", i.lifecycle_stage);
  if (i.start_time) {
    out += ",\"start_time\":";
    AppendJsonInt(out, *i.start_time);
  }
  if (i.end_time) {
    out += ",\"end_time\":";
    AppendJsonInt(out, *i.end_time);
  }
  out += "},\"data\":{";
  bool first = true;
  if (!r.metrics.empty()) {
    out += "\"metrics\":[";
    for (size_t k = 0; k < r.metrics.size(); ++k) {
      const Metric& m = r.metrics[k];
      if (k) out += ',';
      out += "{\"key\":";
      AppendJsonString(out, m.key);
      out += ",\"value\":";
      if (std::isnan(m.value))
        out += "\"NaN\"";
      else
        AppendJsonDouble(out, m.value);
      out += ",\"timestamp\":";
      AppendJsonInt(out, m.timestamp);
      out += ",\"step\":";
      AppendJsonInt(out, m.step);
      out += '}';
    }
    out += ']';
    first = false;
  }
  for (auto [name, list] : {std::pair{"params", &r.params}, std::pair{"tags", &r.tags}}) {
    if (list->empty()) continue;
    if (!first) out += ',';
    first = false;
    out += '"';
    out += name;
    out += "\":[";
    for (size_t k = 0; k < list->size(); ++k) {
      if (k) out += ',';
      out += "{\"key\":";
      AppendJsonString(out, (*list)[k].key);
      out += ",\"value\":";
      AppendJsonString(out, (*list)[k].value);
      out += '}';
    }
    out += ']';
  }
  out += "},\"inputs\":";
  if (r.dataset_inputs.empty() && r.model_inputs.empty())
    out += "{}";
  else
    out += RunInputsJson(r).dump(-1, ' ', false, json::error_handler_t::replace);
  if (!r.model_outputs.empty()) {
    out += ",\"outputs\":";
    out += RunOutputsJson(r).dump();
  }
  out += '}';
}

std::string PageToken(long long offset) {
  static const char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string in = json{{"offset", offset}}.dump(), out;
  for (size_t i = 0; i < in.size(); i += 3) {
    unsigned n = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) n |= static_cast<unsigned char>(in[i + 1]) << 8;
    if (i + 2 < in.size()) n |= static_cast<unsigned char>(in[i + 2]);
    out += kB64[(n >> 18) & 63];
    out += kB64[(n >> 12) & 63];
    out += i + 1 < in.size() ? kB64[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? kB64[n & 63] : '=';
  }
  return out;
}

Result<long long> OffsetOf(const std::string& token) {
  if (token.empty()) return 0LL;
  std::string out;
  unsigned buf = 0;
  int bits = 0;
  for (char c : token) {
    const char* p = strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", c);
    if (c == '=' || !p || !c) break;
    buf = (buf << 6) | static_cast<unsigned>(
                           p - "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buf >> bits) & 0xff);
    }
  }
  json j = json::parse(out, nullptr, false);
  if (!j.is_object() || !j["offset"].is_number_integer() || j["offset"].get<long long>() < 0)
    return InvalidArgument("Invalid page token, could not base64-decode");
  return j["offset"].get<long long>();
}

}  // namespace

std::string ArtifactFile(const MlflowContext& ctx, const std::string& path) {
  auto at = ArtifactAt(ctx, path);
  return at ? at->root + (at->rel.empty() ? "" : "/" + at->rel) : "";
}

std::optional<ArtifactPlace> ArtifactAt(const MlflowContext& ctx, const std::string& path) {
  std::string p = path;
  while (!p.empty() && p.back() == '/') p.pop_back();
  if (!Beneath::IsClean(p)) return std::nullopt;
  auto parts = p.empty() ? std::vector<std::string>{} : Split(p, '/');
  if (parts.size() >= 3 && parts[2] == "artifacts" && IsValidName(parts[1]) &&
      IsDir(ctx.workspace + "/runs/" + parts[1])) {
    std::string rest;
    for (size_t i = 3; i < parts.size(); ++i) rest += (rest.empty() ? "" : "/") + parts[i];
    return ArtifactPlace{ctx.workspace + "/runs/" + parts[1] + "/artifacts", rest};
  }
  return ArtifactPlace{ctx.workspace + "/mlartifacts", p};
}

namespace {
// A folder's entries as MLflow lists them: links and uploads in progress are left out.
json ListArtifacts(const ArtifactPlace& at, const std::string& shown_prefix) {
  json files = json::array();
  auto root = Beneath::Open(at.root);
  if (!root.ok()) return files;
  auto entries = root->List(at.rel);
  if (!entries.ok()) return files;
  for (const auto& e : *entries) {
    if (e.path.find(".cairn-upload.") != std::string::npos) continue;
    if (e.type != Beneath::Type::kFile && e.type != Beneath::Type::kDir) continue;
    json f = {{"path", shown_prefix + e.path}, {"is_dir", e.type == Beneath::Type::kDir}};
    if (e.type == Beneath::Type::kFile) f["file_size"] = e.size;
    files.push_back(f);
  }
  return files;
}
}  // namespace

Result<std::string> RunsUriToPath(const MlflowContext& ctx, const std::string& uri) {
  std::string rest = uri.substr(std::string("runs:/").size());
  while (!rest.empty() && rest.front() == '/') rest.erase(rest.begin());
  std::string run_id = rest.substr(0, rest.find('/'));
  std::string rel = rest.size() > run_id.size() ? rest.substr(run_id.size() + 1) : "";
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  auto run = ctx.store->GetRun(run_id);
  if (!run.ok())
    return NotFound("path: " + uri + ": no MLflow run '" + run_id + "' in this workspace");
  auto local = [&](const std::string& artifact_uri, const std::string& sub) -> std::string {
    const std::string scheme = "mlflow-artifacts:/";
    if (artifact_uri.rfind(scheme, 0) != 0) return "";
    std::string base = artifact_uri.substr(scheme.size());
    while (!base.empty() && base.front() == '/') base.erase(base.begin());
    std::string file = ArtifactFile(ctx, sub.empty() ? base : base + "/" + sub);
    return !file.empty() && PathExists(file) ? file : "";
  };
  if (std::string p = local(run->info.artifact_uri, rel); !p.empty()) return p;
  // MLflow 3: log_model(name="model") keeps the files with a logged model whose source run is this
  // one.
  std::string name = rel.substr(0, rel.find('/'));
  std::string sub = rel.size() > name.size() ? rel.substr(name.size() + 1) : "";
  tracking::ModelSearch q;
  q.experiment_ids = {run->info.experiment_id};
  q.filter = "source_run_id = '" + run_id + "' AND name = '" + name + "'";
  q.max_results = 1;
  bool more = false;
  if (name.find('\'') == std::string::npos) {
    if (auto models = ctx.store->SearchLoggedModels(q, &more); models.ok() && !models->empty())
      if (std::string p = local(models->front().artifact_uri, sub); !p.empty()) return p;
  }
  return NotFound("path: " + uri + ": run '" + run_id + "' has no artifact '" + rel +
                  "' and no logged model named '" + name + "'");
}

namespace {
// A search's max_results, when given, is 1 to 50,000 (MLflow's bound), refused as MLflow's server
// refuses it.
Status MaxResultsInRange(const std::optional<long long>& max) {
  if (!max || (*max >= 1 && *max <= 50000)) return Status::Ok();
  return InvalidArgument("Invalid value for request parameter max_results. It must be " +
                         std::string(*max < 1 ? "at least 1" : "at most 50000") +
                         ", but got value " + std::to_string(*max));
}
// ---- who may change what ----

// A job's token writes only to its own run; a Contributor only to runs they created.
Status MayWriteRun(const MlflowContext& ctx, const Caller& c, const std::string& run_id) {
  if (c.kind == Caller::Kind::kJob) {
    if (c.job == run_id) return Status::Ok();
    return Status(Code::kPermissionDenied, "this token belongs to job '" + c.job +
                                               "' and may write only to its run, not to run '" +
                                               run_id + "'");
  }
  if (c.IsOwner()) return Status::Ok();
  return MayChange(c, ctx.user_of ? ctx.user_of(run_id) : "", "run '" + run_id + "'");
}

// What a person does, never a job's token; `owner_only` for what changes everyone's view.
Status WorkspaceOnly(const Caller& c, const char* what, bool owner_only = false) {
  if (c.kind == Caller::Kind::kJob)
    return Status(Code::kPermissionDenied, std::string("a job's token cannot ") + what);
  return owner_only ? Check(Access::kOwner, c) : Status::Ok();
}

// A job's token may create models and change those its own run logged.
Status MayWriteModel(const MlflowContext& ctx, const Caller& c, const std::string& model_id) {
  if (c.IsOwner()) return Status::Ok();
  if (Status s = Check(Access::kRunWrite, c); !s.ok()) return s;
  auto m = ctx.store->GetLoggedModel(model_id);
  if (!m.ok()) return m.status();
  if (c.kind == Caller::Kind::kJob) {
    if (m->source_run_id == c.job) return Status::Ok();
    return Status(Code::kPermissionDenied, "this token belongs to job '" + c.job +
                                               "' and may change only the models its run logged");
  }
  std::string creator =
      m->source_run_id.empty() || !ctx.user_of ? m->creator_id : ctx.user_of(m->source_run_id);
  return MayChange(c, creator, "model '" + model_id + "'");
}

// A run's artifacts (<experiment>/<run>/artifacts/...) change as the run does; anything else
// only by an Owner.
Status ArtifactWritable(const MlflowContext& ctx, const Caller& c, const std::string& path) {
  if (c.IsOwner()) return Status::Ok();
  auto parts = Split(path, '/');
  if (parts.size() >= 3 && parts[2] == "artifacts") return MayWriteRun(ctx, c, parts[1]);
  if (c.kind == Caller::Kind::kJob)
    return Status(Code::kPermissionDenied, "this token belongs to job '" + c.job +
                                               "' and may write only its run's artifacts");
  return Check(Access::kOwner, c);
}

using MsgHandler = void (*)(const MlflowContext&, const Msg&, http::Response&);
using RawHandler = void (*)(const MlflowContext&, const http::Request&, http::Response&);

// Tracking calls are small JSON messages: a huge one is a 4xx (not a dropped connection, which
// the mlflow client would retry for a minute), answered without parsing it.
void WithMessage(const MlflowContext& ctx, const http::Request& req, http::Response& res,
                 MsgHandler fn) {
  // Tracking calls are small JSON messages: a huge one is a 4xx (not a dropped connection, which
  // the mlflow client would retry for a minute), answered without parsing it.
  constexpr size_t kMaxBody = 32u << 20;
  if (req.body.size() > kMaxBody)
    return ReplyError(
        res, InvalidArgument("request body of " + std::to_string(req.body.size()) +
                             " bytes exceeds the 32 MiB limit for tracking calls; split it "
                             "(log-batch takes at most 1000 metrics)"));
  Msg m(req);
  if (m.bad())
    return ReplyError(res, InvalidArgument("Malformed request body: expected a JSON object"));
  fn(ctx, m, res);
}

// ---- handlers: one per endpoint ----

// ---- experiments ----
void ExperimentsGetByName(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  auto e = ctx.store->GetExperimentByName(m.StrOr("experiment_name"));
  if (!e.ok()) return ReplyError(res, e.status());
  Reply(res, {{"experiment", ExperimentJson(*e)}});
}

void ExperimentsGet(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  auto e = ctx.store->GetExperiment(m.StrOr("experiment_id"));
  if (!e.ok()) return ReplyError(res, e.status());
  Reply(res, {{"experiment", ExperimentJson(*e)}});
}

void ExperimentsCreate(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  if (Status s = WorkspaceOnly(m.Who(), "create experiments"); !s.ok()) return ReplyError(res, s);
  auto tags = KeyValues(m.Body().value("tags", json()), "tags");
  if (!tags.ok()) return ReplyError(res, tags.status());
  auto id = ctx.store->CreateExperiment(m.StrOr("name"), m.StrOr("artifact_location"), *tags);
  if (!id.ok()) return ReplyError(res, id.status());
  Reply(res, {{"experiment_id", *id}});
}

void ExperimentsSearch(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  auto max = m.Int("max_results");
  if (!max.ok()) return ReplyError(res, max.status());
  auto offset = OffsetOf(m.StrOr("page_token"));
  if (!offset.ok()) return ReplyError(res, offset.status());
  bool more = false;
  int n = static_cast<int>(max->value_or(1000));
  if (n < 1 || n > 50000)
    return ReplyError(res, InvalidArgument("max_results must be between 1 and 50000"));
  auto found = ctx.store->SearchExperiments(m.StrOr("view_type", "ACTIVE_ONLY"), m.StrOr("filter"),
                                            m.All("order_by"), n, *offset, &more);
  if (!found.ok()) return ReplyError(res, found.status());
  json exps = json::array();
  for (const auto& e : *found) exps.push_back(ExperimentJson(e));
  json out = {{"experiments", exps}};
  if (more) out["next_page_token"] = PageToken(*offset + n);
  Reply(res, out);
}

void ExperimentsList(const MlflowContext& ctx, const Msg& m,
                     http::Response& res) {  // removed in 2.x; old clients call it
  bool more = false;
  json exps = json::array();
  auto found =
      ctx.store->SearchExperiments(m.StrOr("view_type", "ACTIVE_ONLY"), "", {}, 50000, 0, &more);
  if (found.ok())
    for (const auto& e : *found) exps.push_back(ExperimentJson(e));
  Reply(res, {{"experiments", exps}});
}

void ExperimentsUpdate(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  if (Status s = WorkspaceOnly(m.Who(), "rename experiments", true); !s.ok())
    return ReplyError(res, s);
  Status s = ctx.store->RenameExperiment(m.StrOr("experiment_id"), m.StrOr("new_name"));
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void ExperimentsSetExperimentTag(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  if (Status s = WorkspaceOnly(m.Who(), "tag experiments"); !s.ok()) return ReplyError(res, s);
  Status s =
      ctx.store->SetExperimentTag(m.StrOr("experiment_id"), m.StrOr("key"), m.StrOr("value"));
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void ExperimentsDeleteExperimentTag(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  if (Status s = WorkspaceOnly(m.Who(), "tag experiments"); !s.ok()) return ReplyError(res, s);
  Status s = ctx.store->DeleteExperimentTag(m.StrOr("experiment_id"), m.StrOr("key"));
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void LoggedModels(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  if (m.Method() != "POST")
    return ReplyError(
        res, Status(Code::kNotFound, "No API endpoint for " + m.Method() + " logged-models"));
  auto params = KeyValues(m.Body().value("params", json()), "params");
  if (!params.ok()) return ReplyError(res, params.status());
  auto tags = KeyValues(m.Body().value("tags", json()), "tags");
  if (!tags.ok()) return ReplyError(res, tags.status());
  std::string source_run = m.StrOr("source_run_id");
  const std::string scope = m.Who().kind == Caller::Kind::kJob ? m.Who().job : "";
  if (!scope.empty() && !source_run.empty() && source_run != scope)
    return ReplyError(
        res, Status(Code::kPermissionDenied, "this token belongs to job '" + scope +
                                                 "' and may log models only for its own run"));
  if (!scope.empty() && source_run.empty()) source_run = scope;
  if (scope.empty() && !source_run.empty())
    if (Status s = MayWriteRun(ctx, m.Who(), source_run); !s.ok()) return ReplyError(res, s);
  std::string user;
  for (const auto& t : *tags)
    if (t.key == "mlflow.user") user = t.value;
  auto model =
      ctx.store->CreateLoggedModel(m.StrOr("experiment_id", "0"), m.StrOr("name"),
                                   m.StrOr("model_type"), source_run, user, *params, *tags);
  if (!model.ok()) return ReplyError(res, model.status());
  Reply(res, {{"model", LoggedModelJson(*model)}});
}

void LoggedModelsSearch(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  tracking::ModelSearch q;
  q.experiment_ids = m.All("experiment_ids");
  q.filter = m.StrOr("filter");
  json order = m.Body().value("order_by", json::array());
  if (order.is_array())
    for (const auto& o : order)
      if (o.is_object() && o.contains("field_name") && o["field_name"].is_string())
        q.order_by.push_back({o["field_name"], o.value("ascending", true)});
  auto max = m.Int("max_results");
  if (!max.ok()) return ReplyError(res, max.status());
  if (Status range = MaxResultsInRange(*max); !range.ok()) return ReplyError(res, range);
  q.max_results = static_cast<int>(max->value_or(50));
  auto offset = OffsetOf(m.StrOr("page_token"));
  if (!offset.ok()) return ReplyError(res, offset.status());
  q.offset = *offset;
  bool more = false;
  auto models = ctx.store->SearchLoggedModels(q, &more);
  if (!models.ok()) return ReplyError(res, models.status());
  json out = {{"models", json::array()}};
  for (const auto& x : *models) out["models"].push_back(LoggedModelJson(x));
  if (more) out["next_page_token"] = PageToken(q.offset + q.max_results);
  Reply(res, out);
}

void LoggedModelsId(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = ModelPathPart(m.Path(), 0);
  if (m.Method() == "GET") {
    auto model = ctx.store->GetLoggedModel(id);
    if (!model.ok()) return ReplyError(res, model.status());
    return Reply(res, {{"model", LoggedModelJson(*model)}});
  }
  if (Status s = MayWriteModel(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  if (m.Method() == "PATCH") {  // finalize
    auto model = ctx.store->FinalizeLoggedModel(id, m.StrOr("status"));
    if (!model.ok()) return ReplyError(res, model.status());
    return Reply(res, {{"model", LoggedModelJson(*model)}});
  }
  if (m.Method() == "DELETE") {
    Status s = ctx.store->DeleteLoggedModel(id);
    if (!s.ok()) return ReplyError(res, s);
    return Reply(res, json::object());
  }
  ReplyError(res, Status(Code::kNotFound,
                         "No API endpoint for " + m.Method() + " logged-models/{model_id}"));
}

void LoggedModelsIdParams(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = ModelPathPart(m.Path(), 0);
  if (Status s = MayWriteModel(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  auto params = KeyValues(m.Body().value("params", json()), "params");
  if (!params.ok()) return ReplyError(res, params.status());
  Status s = ctx.store->LogModelParams(id, *params);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void LoggedModelsIdTags(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = ModelPathPart(m.Path(), 0);
  if (Status s = MayWriteModel(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  auto tags = KeyValues(m.Body().value("tags", json()), "tags");
  if (!tags.ok()) return ReplyError(res, tags.status());
  Status s = ctx.store->SetModelTags(id, *tags);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void LoggedModelsIdTagsKey(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = ModelPathPart(m.Path(), 0);
  if (Status s = MayWriteModel(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  Status s = ctx.store->DeleteModelTag(id, ModelPathPart(m.Path(), 2));
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void LoggedModelsIdArtifactsDirectories(const MlflowContext& ctx, const Msg& m,
                                        http::Response& res) {
  auto model = ctx.store->GetLoggedModel(ModelPathPart(m.Path(), 0));
  if (!model.ok()) return ReplyError(res, model.status());
  // mlflow-artifacts:/<rest> lives where the artifact proxy keeps <rest>.
  std::string root =
      model->artifact_uri.rfind("mlflow-artifacts:/", 0) == 0 ? model->artifact_uri.substr(18) : "";
  std::string sub = m.StrOr("artifact_directory_path");
  auto at = ArtifactAt(ctx, sub.empty() ? root : root + "/" + sub);
  if (root.empty() || !at) return ReplyError(res, InvalidArgument("Invalid artifact path"));
  json files = ListArtifacts(*at, sub.empty() ? "" : sub + "/");
  Reply(res, {{"root_uri", model->artifact_uri}, {"files", files}});
}

// ---- runs ----
void RunsOutputs(const MlflowContext& ctx, const Msg& m, http::Response& res) {  // MLflow 3.x
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  std::vector<std::pair<std::string, long long>> models;
  json ms = m.Body().value("models", json::array());
  if (!ms.is_array())
    return ReplyError(res,
                      InvalidArgument("Invalid value for parameter 'models': expected a list"));
  for (const auto& x : ms) {
    if (!x.is_object() || !x.contains("model_id") || !x["model_id"].is_string())
      return ReplyError(
          res, InvalidArgument("Missing value for required parameter 'models[].model_id'"));
    long long step = 0;
    if (x.contains("step") && !x["step"].is_null()) {
      auto v = ParseInt(x["step"], "step");
      if (!v.ok()) return ReplyError(res, v.status());
      step = *v;
    }
    models.push_back({x["model_id"], step});
  }
  Status s = ctx.store->LogOutputs(id, models);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsCreate(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  if (Status s = WorkspaceOnly(m.Who(), "create runs (it may write only to its own run)"); !s.ok())
    return ReplyError(res, s);
  auto tags = KeyValues(m.Body().value("tags", json()), "tags");
  if (!tags.ok()) return ReplyError(res, tags.status());
  auto start = m.Int("start_time");
  if (!start.ok()) return ReplyError(res, start.status());
  std::string user = m.StrOr("user_id");
  if (ctx.team) {
    // On a team server a run is its creator's: the client's user_id and mlflow.user cannot
    // name someone else.
    user = m.Who().name;
    tags->erase(std::remove_if(tags->begin(), tags->end(),
                               [](const KeyValue& t) { return t.key == "mlflow.user"; }),
                tags->end());
    tags->push_back({"mlflow.user", user});
  }
  auto run = ctx.store->CreateRun(
      m.StrOr("experiment_id", "0"), "", m.StrOr("run_name"), user,
      start->has_value() ? *start : std::optional<long long>(NowMillis()), *tags);
  if (!run.ok()) return ReplyError(res, run.status());
  auto full = ctx.store->GetRun(run->run_id);
  if (!full.ok()) return ReplyError(res, full.status());
  Reply(res, {{"run", RunJson(*full)}});
}

void RunsGet(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  auto run = ctx.store->GetRun(m.RunId());
  if (!run.ok()) return ReplyError(res, run.status());
  Reply(res, {{"run", RunJson(*run)}});
}

void RunsUpdate(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  auto end = m.Int("end_time");
  if (!end.ok()) return ReplyError(res, end.status());
  auto info = ctx.store->UpdateRun(id, m.StrOr("status"), *end, m.StrOr("run_name"));
  if (!info.ok()) return ReplyError(res, info.status());
  Reply(res, {{"run_info", RunInfoJson(*info)}});
}

void RunsLogMetric(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  auto metric = MetricFrom(m.Body());
  if (!metric.ok()) return ReplyError(res, metric.status());
  Status s = ctx.store->LogBatch(id, {*metric}, {}, {});
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsLogParameter(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  if (!m.Str("key"))
    return ReplyError(res, InvalidArgument("Missing value for required parameter 'key'"));
  Status s = ctx.store->LogBatch(id, {}, {{m.StrOr("key"), m.StrOr("value")}}, {});
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsSetTag(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  if (!m.Str("key"))
    return ReplyError(res, InvalidArgument("Missing value for required parameter 'key'"));
  Status s = ctx.store->LogBatch(id, {}, {}, {{m.StrOr("key"), m.StrOr("value")}});
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsDeleteTag(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  Status s = ctx.store->DeleteTag(id, m.StrOr("key"));
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

// log-batch through the JSON DOM: what the fast reader (ReadLogBatch) does not take.
void LogBatchMessage(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (id.empty())
    return ReplyError(res, InvalidArgument("Missing value for required parameter 'run_id'"));
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  std::vector<Metric> metrics;
  const json& body = m.Body();
  if (body.contains("metrics") && body["metrics"].is_array()) {
    for (const auto& x : body["metrics"]) {
      auto metric = MetricFrom(x);
      if (!metric.ok()) return ReplyError(res, metric.status());
      metrics.push_back(*metric);
    }
  }
  auto params = KeyValues(body.value("params", json()), "params");
  if (!params.ok()) return ReplyError(res, params.status());
  auto tags = KeyValues(body.value("tags", json()), "tags");
  if (!tags.ok()) return ReplyError(res, tags.status());
  Status s = ctx.store->LogBatch(id, metrics, *params, *tags);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsLogBatch(const MlflowContext& ctx, const http::Request& req, http::Response& res) {
  std::optional<LogBatchBody> b;
  if (req.method != "GET" && req.body.size() <= (32u << 20)) b = ReadLogBatch(req.body);
  if (!b || b->run_id.empty()) {
    WithMessage(ctx, req, res, LogBatchMessage);
    return;
  }
  if (Status s = MayWriteRun(ctx, CallerOf(req), b->run_id); !s.ok()) return ReplyError(res, s);
  Status s = ctx.store->LogBatch(b->run_id, b->metrics, b->params, b->tags);
  if (!s.ok()) return ReplyError(res, s);
  res.status = 200;
  res.set_content("{}", "application/json");
}

void RunsLogInputs(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  std::vector<std::string> models;
  json ms = m.Body().value("models", json::array());
  if (ms.is_array())
    for (const auto& x : ms)
      if (x.is_object() && x.contains("model_id") && x["model_id"].is_string())
        models.push_back(x["model_id"]);
  Status s = ctx.store->LogInputs(id, m.Body().value("datasets", json::array()), models);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsLogModel(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  json model = json::parse(m.StrOr("model_json"), nullptr, false);
  if (!model.is_object())
    return ReplyError(res, InvalidArgument("model_json must be a JSON object"));
  auto run = ctx.store->GetRun(id);
  if (!run.ok()) return ReplyError(res, run.status());
  json history = json::array();
  for (const auto& t : run->tags)
    if (t.key == "mlflow.log-model.history") history = json::parse(t.value, nullptr, false);
  if (!history.is_array()) history = json::array();
  history.push_back(model);
  Status s = ctx.store->LogBatch(id, {}, {}, {{"mlflow.log-model.history", history.dump()}});
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void RunsSearch(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  tracking::RunSearch q;
  q.experiment_ids = m.All("experiment_ids");
  q.filter = m.StrOr("filter");
  q.order_by = m.All("order_by");
  q.view = m.StrOr("run_view_type", "ACTIVE_ONLY");
  auto max = m.Int("max_results");
  if (!max.ok()) return ReplyError(res, max.status());
  // Checked before it is narrowed: 30000001619870003 would become a negative int.
  if (Status range = MaxResultsInRange(*max); !range.ok()) return ReplyError(res, range);
  q.max_results = static_cast<int>(max->value_or(1000));
  auto offset = OffsetOf(m.StrOr("page_token"));
  if (!offset.ok()) return ReplyError(res, offset.status());
  q.offset = *offset;
  bool more = false;
  auto runs = ctx.store->SearchRuns(q, &more);
  if (!runs.ok()) return ReplyError(res, runs.status());
  std::string out = "{";
  if (!runs->empty()) {
    out += "\"runs\":[";
    for (size_t i = 0; i < runs->size(); ++i) {
      if (i) out += ',';
      AppendRunJson(out, (*runs)[i]);
    }
    out += ']';
  }
  if (more) {
    if (!runs->empty()) out += ',';
    out += "\"next_page_token\":";
    AppendJsonString(out, PageToken(q.offset + q.max_results));
  }
  out += '}';
  res.status = 200;
  res.body = std::move(out);
  res.set_header("Content-Type", "application/json");
}

void MetricsGetHistory(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  auto h = ctx.store->GetHistory(m.RunId(), m.StrOr("metric_key"));
  if (!h.ok()) return ReplyError(res, h.status());
  auto max = m.Int("max_results");
  if (!max.ok()) return ReplyError(res, max.status());
  auto offset = OffsetOf(m.StrOr("page_token"));
  if (!offset.ok()) return ReplyError(res, offset.status());
  size_t begin = std::min(static_cast<size_t>(*offset), h->size());
  size_t end = h->size();
  if (max->has_value() && **max > 0) end = std::min(end, begin + static_cast<size_t>(**max));
  // Written by hand: a 100k-point history is the hot path of every chart.
  using namespace std::string_view_literals;
  std::string key_json = "{\"key\":";
  AppendJsonString(key_json, m.StrOr("metric_key"));
  key_json += ",\"value\":"sv;
  std::string out = "{\"metrics\":[";
  out.reserve(64 + (end - begin) * (key_json.size() + 64));
  for (size_t i = begin; i < end; ++i) {
    const tracking::Point& x = (*h)[i];
    if (i > begin) out += ',';
    out += key_json;
    if (std::isnan(x.value))
      out += "\"NaN\""sv;
    else if (std::isinf(x.value))
      out += x.value > 0 ? "1.7976931348623157e+308"sv : "-1.7976931348623157e+308"sv;
    else
      AppendJsonDouble(out, x.value);
    out += ",\"timestamp\":"sv;
    AppendJsonInt(out, x.timestamp);
    out += ",\"step\":"sv;
    AppendJsonInt(out, x.step);
    out += '}';
  }
  out += ']';
  if (end < h->size())
    out += ",\"next_page_token\":\"" + PageToken(static_cast<long long>(end)) + "\"";
  out += "}";
  res.status = 200;
  res.body = std::move(out);  // set_content would copy the megabytes
  res.set_header("Content-Type", "application/json");
}

void ArtifactsList(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  auto run = ctx.store->GetRun(m.RunId());
  if (!run.ok()) return ReplyError(res, run.status());
  std::string rel = m.StrOr("path");
  std::string prefix = run->info.experiment_id + "/" + run->info.run_id + "/artifacts";
  auto at = ArtifactAt(ctx, prefix + (rel.empty() ? "" : "/" + rel));
  if (!at) return ReplyError(res, InvalidArgument("Invalid path '" + rel + "'"));
  json files = ListArtifacts(*at, rel.empty() ? "" : rel + "/");
  json out = {{"root_uri", run->info.artifact_uri}};
  if (!files.empty()) out["files"] = files;
  Reply(res, out);
}

void SetExperimentStage(const MlflowContext& ctx, const Msg& m, http::Response& res,
                        const char* stage) {
  if (Status s = WorkspaceOnly(m.Who(), "delete or restore experiments", true); !s.ok())
    return ReplyError(res, s);
  Status s = ctx.store->SetExperimentStage(m.StrOr("experiment_id"), stage);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}
void ExperimentsDelete(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  SetExperimentStage(ctx, m, res, "deleted");
}
void ExperimentsRestore(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  SetExperimentStage(ctx, m, res, "active");
}

void SetRunStage(const MlflowContext& ctx, const Msg& m, http::Response& res, const char* stage) {
  std::string id = m.RunId();
  if (Status s = MayWriteRun(ctx, m.Who(), id); !s.ok()) return ReplyError(res, s);
  Status s = ctx.store->SetRunStage(id, stage);
  if (!s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}
void RunsDelete(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  SetRunStage(ctx, m, res, "deleted");
}
void RunsRestore(const MlflowContext& ctx, const Msg& m, http::Response& res) {
  SetRunStage(ctx, m, res, "active");
}

// ---- the artifact proxy (/api/2.0/mlflow-artifacts/...) ----

void PutArtifact(const MlflowContext& ctx, const http::Request& req, http::Response& res,
                 const http::ContentReader& reader) {
  std::string rel = req.matches[1];
  auto at = ArtifactAt(ctx, rel);
  if (!at || at->rel.empty()) return ReplyError(res, InvalidArgument("Invalid path '" + rel + "'"));
  if (Status s = ArtifactWritable(ctx, CallerOf(req), rel); !s.ok()) return ReplyError(res, s);
  auto root = Beneath::OpenOrCreate(at->root);
  if (!root.ok()) return ReplyError(res, root.status());
  std::string dir = Dirname(at->rel) == "." ? "" : Dirname(at->rel);
  if (at->rel.find('/') == std::string::npos) dir = "";
  if (Status s = root->MakeDirs(dir); !s.ok())
    return ReplyError(res, InvalidArgument("Invalid path '" + rel + "': " + s.message()));
  std::string tmp = at->rel + ".cairn-upload." + RandomHex(4);
  auto fd = root->OpenWrite(tmp, O_TRUNC | O_EXCL);
  if (!fd.ok()) return ReplyError(res, fd.status());
  // Spliced from the socket into the file where the server can (no copy through user space), and
  // written back while the rest arrives (sync_file_range starts the disk on what is written,
  // without waiting), so the fdatasync at the end waits only for the last few megabytes: the
  // upload then takes about as long as the disk's own write rather than the network's time plus
  // the disk's.
  uint64_t started = 0;
  bool write_failed = false;
  // A client that stops sending leaves nothing behind: only a whole body becomes the artifact.
  bool whole = reader.ToFile(
      *fd,
      [&](uint64_t written) {
        if (written - started < (8 << 20)) return;
        (void)sync_file_range(*fd, static_cast<off_t>(started),
                              static_cast<off_t>(written - started), SYNC_FILE_RANGE_WRITE);
        started = written;
      },
      &write_failed);
  bool ok = !write_failed;
  if (write_failed) whole = true;  // the body may have arrived: the disk refused it
  // On disk before it is answered: an artifact the client saw stored survives a crash.
  if (whole && ok && fdatasync(*fd) != 0) ok = false;
  close(*fd);
  if (!whole || !ok) {
    (void)root->Remove(tmp);
    return ReplyError(
        res, !whole ? InvalidArgument("the upload of '" + rel + "' ended before its body did")
                    : Unavailable("cannot write artifact " + rel));
  }
  if (Status s = root->Rename(tmp, at->rel); !s.ok()) {
    (void)root->Remove(tmp);
    return ReplyError(res, s);
  }
  Reply(res, json::object());
}

void GetArtifact(const MlflowContext& ctx, const http::Request& req, http::Response& res) {
  std::string rel = req.matches[1];
  auto at = ArtifactAt(ctx, rel);
  if (!at) return ReplyError(res, InvalidArgument("Invalid path '" + rel + "'"));
  auto root = Beneath::Open(at->root);
  if (!root.ok()) return ReplyError(res, NotFound("Artifact '" + rel + "' does not exist"));
  auto fd = root->OpenRead(at->rel);
  if (!fd.ok()) return ReplyError(res, NotFound("Artifact '" + rel + "' does not exist"));
  struct stat st;
  fstat(*fd, &st);
  res.set_header("Content-Disposition", "attachment; filename=" + Basename(rel));
  res.set_file_content(*fd, static_cast<size_t>(st.st_size), "application/octet-stream");
}

void ListArtifactsAt(const MlflowContext& ctx, const http::Request& req, http::Response& res) {
  std::string rel = req.get_param_value("path");
  auto at = ArtifactAt(ctx, rel);
  if (!at) return ReplyError(res, InvalidArgument("Invalid path '" + rel + "'"));
  json files = ListArtifacts(*at, "");
  if (files.empty()) return Reply(res, json::object());
  Reply(res, {{"files", files}});
}

void DeleteArtifact(const MlflowContext& ctx, const http::Request& req, http::Response& res) {
  std::string rel = req.matches[1];
  auto at = ArtifactAt(ctx, rel);
  if (!at || at->rel.empty()) return ReplyError(res, InvalidArgument("Invalid path '" + rel + "'"));
  if (Status s = ArtifactWritable(ctx, CallerOf(req), rel); !s.ok()) return ReplyError(res, s);
  auto root = Beneath::Open(at->root);
  if (!root.ok()) return Reply(res, json::object());
  if (Status s = root->Remove(at->rel); !s.ok()) return ReplyError(res, s);
  Reply(res, json::object());
}

void MultipartUpload(const MlflowContext&, const http::Request&, http::Response& res) {
  res.status = 501;
  res.set_content(
      json{{"error_code", "NOT_IMPLEMENTED"},
           {"message", "Multipart upload is not supported for the current artifact repository"}}
          .dump(),
      "application/json");
}

// The tracking API's table: each endpoint under /api/2.0/mlflow/, who may call it (access.h), and
// its handler (of a parsed message, or of the raw request). An endpoint that changes something
// answers 405 to GET (a link or an <img> must not delete a run).
struct Endpoint {
  const char* path;
  Access access;
  MsgHandler handler;
  RawHandler raw = nullptr;
};
const Endpoint kEndpoints[] = {
    {"experiments/get-by-name", Access::kRunRead, ExperimentsGetByName},
    {"experiments/get", Access::kRunRead, ExperimentsGet},
    {"experiments/create", Access::kRunWrite, ExperimentsCreate},
    {"experiments/search", Access::kRunRead, ExperimentsSearch},
    {"experiments/list", Access::kRunRead, ExperimentsList},
    {"experiments/update", Access::kRunWrite, ExperimentsUpdate},
    {"experiments/delete", Access::kRunWrite, ExperimentsDelete},
    {"experiments/restore", Access::kRunWrite, ExperimentsRestore},
    {"experiments/set-experiment-tag", Access::kRunWrite, ExperimentsSetExperimentTag},
    {"experiments/delete-experiment-tag", Access::kRunWrite, ExperimentsDeleteExperimentTag},
    {"logged-models", Access::kRunWrite, LoggedModels},
    {"logged-models/search", Access::kRunRead, LoggedModelsSearch},
    {"logged-models/{id}", Access::kRunRead, LoggedModelsId},
    {"logged-models/{id}/params", Access::kRunWrite, LoggedModelsIdParams},
    {"logged-models/{id}/tags", Access::kRunWrite, LoggedModelsIdTags},
    {"logged-models/{id}/tags/{key}", Access::kRunWrite, LoggedModelsIdTagsKey},
    {"logged-models/{id}/artifacts/directories", Access::kRunRead,
     LoggedModelsIdArtifactsDirectories},
    {"runs/outputs", Access::kRunWrite, RunsOutputs},
    {"runs/create", Access::kRunWrite, RunsCreate},
    {"runs/get", Access::kRunRead, RunsGet},
    {"runs/update", Access::kRunWrite, RunsUpdate},
    {"runs/delete", Access::kRunWrite, RunsDelete},
    {"runs/restore", Access::kRunWrite, RunsRestore},
    {"runs/log-metric", Access::kRunWrite, RunsLogMetric},
    {"runs/log-parameter", Access::kRunWrite, RunsLogParameter},
    {"runs/set-tag", Access::kRunWrite, RunsSetTag},
    {"runs/delete-tag", Access::kRunWrite, RunsDeleteTag},
    {"runs/log-batch", Access::kRunWrite, nullptr, RunsLogBatch},
    {"runs/log-inputs", Access::kRunWrite, RunsLogInputs},
    {"runs/log-model", Access::kRunWrite, RunsLogModel},
    {"runs/search", Access::kRunRead, RunsSearch},
    {"metrics/get-history", Access::kRunRead, MetricsGetHistory},
    {"artifacts/list", Access::kRunRead, ArtifactsList},
};

// The artifact proxy's table.
struct ArtifactRoute {
  const char* method;
  const char* path;
  Access access;
  RawHandler handler;
  void (*reader)(const MlflowContext&, const http::Request&, http::Response&,
                 const http::ContentReader&) = nullptr;
  size_t max_body = 0;
};
const ArtifactRoute kArtifactRoutes[] = {
    // Streamed to disk: artifacts may be large.
    {"PUT", "/api/2.0/mlflow-artifacts/artifacts/(.+)", Access::kRunWrite, nullptr, PutArtifact,
     size_t{64} << 30},
    {"GET", "/api/2.0/mlflow-artifacts/artifacts/(.+)", Access::kRunRead, GetArtifact},
    {"GET", "/api/2.0/mlflow-artifacts/artifacts", Access::kRunRead, ListArtifactsAt},
    {"DELETE", "/api/2.0/mlflow-artifacts/artifacts/(.+)", Access::kRunWrite, DeleteArtifact},
    {"POST", "/api/2.0/mlflow-artifacts/mpu/create/(.+)", Access::kRunWrite, MultipartUpload},
    {"POST", "/api/2.0/mlflow-artifacts/mpu/complete/(.+)", Access::kRunWrite, MultipartUpload},
    {"POST", "/api/2.0/mlflow-artifacts/mpu/abort/(.+)", Access::kRunWrite, MultipartUpload},
};

}  // namespace

void RegisterMlflowRoutes(http::Server& svr, MlflowContext& ctx) {
  // Both GET and POST forms reach the same handler. One pattern per method dispatches through a
  // hash map: trying routes one regex at a time costs more than a tracking call itself.
  auto table = std::make_shared<std::unordered_map<std::string_view, const Endpoint*>>();
  for (const Endpoint& e : kEndpoints) {
    (*table)[e.path] = &e;
    ctx.endpoints.emplace_back(e.path, e.access);
  }
  const MlflowContext* cp = &ctx;  // long-lived: the server owns it
  auto dispatch = [table, cp](const http::Request& req, http::Response& res) {
    auto it = table->find(RouteOf(req.matches[1]));
    if (it == table->end()) {
      res.status = 404;
      res.set_content(
          json{{"error_code", "ENDPOINT_NOT_FOUND"}, {"message", "No API endpoint " + req.path}}
              .dump(),
          "application/json");
      return;
    }
    const Endpoint& e = *it->second;
    if (e.access == Access::kRunWrite && req.method == "GET") {
      res.status = 405;
      res.set_header("Allow", "POST");
      res.set_content(json{{"error_code", "BAD_REQUEST"},
                           {"message", req.path + " changes something: send it as POST, not GET"}}
                          .dump(),
                      "application/json");
      return;
    }
    if (Status s = Check(e.access, CallerOf(req)); !s.ok()) return ReplyError(res, s);
    if (e.raw) return e.raw(*cp, req, res);
    WithMessage(*cp, req, res, e.handler);
  };
  // One row per method reaches the table above, where each endpoint says who may call it.
  for (const char* method : {"GET", "POST", "PATCH", "DELETE"})
    svr.Add(method, "/api/2.0/mlflow/(.+)", dispatch, 0, static_cast<int>(Access::kRunRead));
  for (const ArtifactRoute& r : kArtifactRoutes) {
    if (r.reader)
      svr.AddReader(
          r.method, r.path,
          [cp, fn = r.reader](const http::Request& req, http::Response& res,
                              const http::ContentReader& reader) { fn(*cp, req, res, reader); },
          r.max_body, static_cast<int>(r.access));
    else
      svr.Add(
          r.method, r.path,
          [cp, fn = r.handler](const http::Request& req, http::Response& res) {
            fn(*cp, req, res);
          },
          r.max_body, static_cast<int>(r.access));
  }
}

}  // namespace cairn::server
