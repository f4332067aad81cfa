// MLflow 3.x logged models: a model is an entity of its own (id "m-<uuid hex>") with artifacts
// under <experiment artifact location>/models/<id>/artifacts, created PENDING and finalized READY
// or UPLOAD_FAILED by the client once its files are uploaded.
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "base/util.h"
#include "tracking/run_filter.h"
#include "tracking/tracking_store.h"

namespace cairn::tracking {

using store::Db;
using store::Stmt;

namespace {

std::string ModelId() { return "m-" + Uuid4Hex(); }

bool ValidStatus(const std::string& s) {
  return s == "LOGGED_MODEL_PENDING" || s == "LOGGED_MODEL_READY" ||
         s == "LOGGED_MODEL_UPLOAD_FAILED";
}

Status CheckKeyValues(const std::vector<KeyValue>& kvs) {
  for (const auto& kv : kvs)
    if (std::string e = KeyError(kv.key); !e.empty()) return InvalidArgument(e);
  return Status::Ok();
}

class ModelFields : public FieldSource {
 public:
  explicit ModelFields(const LoggedModel& m) : m_(m) {}
  std::optional<std::string_view> String(const std::string& kind,
                                         const std::string& key) const override {
    const std::vector<KeyValue>* list = kind == "param" ? &m_.params
                                        : kind == "tag" ? &m_.tags
                                                        : nullptr;
    if (list) {
      for (const auto& kv : *list)
        if (kv.key == key) return kv.value;
      return std::nullopt;
    }
    if (key == "model_id") return m_.model_id;
    if (key == "name") return m_.name;
    if (key == "model_type") return m_.model_type;
    if (key == "status") return m_.status;
    if (key == "source_run_id") return m_.source_run_id;
    return std::nullopt;
  }
  std::optional<double> Number(const std::string& kind, const std::string& key) const override {
    if (kind == "metric") {
      // The newest value of the key (greatest step, then timestamp), as MLflow compares a model's
      // metrics.
      const Metric* best = nullptr;
      for (const auto& mm : m_.metrics)
        if (mm.metric.key == key && (!best || std::tie(mm.metric.step, mm.metric.timestamp) >
                                                  std::tie(best->step, best->timestamp)))
          best = &mm.metric;
      if (best) return best->value;
      return std::nullopt;
    }
    if (key == "creation_timestamp") return static_cast<double>(m_.creation_timestamp_ms);
    if (key == "last_updated_timestamp") return static_cast<double>(m_.last_updated_timestamp_ms);
    return std::nullopt;
  }

 private:
  const LoggedModel& m_;
};

}  // namespace

Result<LoggedModel> TrackingStore::ReadLoggedModel(Db& db, const std::string& model_id) {
  Stmt& s = db.Prepare(
      "SELECT model_id, experiment_id, name, artifact_uri, status, status_message, creator_id, "
      "model_type, "
      "source_run_id, creation_time, last_updated_time FROM logged_models WHERE model_id = ? AND "
      "lifecycle_stage = 'active'");
  s.Bind(1, model_id);
  if (!s.Step()) {
    s.Reset();
    return NotFound("Logged Model with ID '" + model_id + "' not found");
  }
  LoggedModel m;
  m.model_id = s.Text(0);
  m.experiment_id = std::to_string(s.Int(1));
  m.name = s.Text(2);
  m.artifact_uri = s.Text(3);
  m.status = s.Text(4);
  m.status_message = s.Text(5);
  m.creator_id = s.Text(6);
  m.model_type = s.Text(7);
  m.source_run_id = s.Text(8);
  m.creation_timestamp_ms = s.Int(9);
  m.last_updated_timestamp_ms = s.Int(10);
  s.Reset();
  for (const char* table : {"logged_model_params", "logged_model_tags"}) {
    Stmt& kv = db.Prepare(std::string("SELECT key, value FROM ") + table +
                          " WHERE model_id = ? ORDER BY key");
    kv.Bind(1, model_id);
    while (kv.Step())
      (std::string(table) == "logged_model_params" ? m.params : m.tags)
          .push_back({kv.Text(0), kv.Text(1)});
    kv.Reset();
  }
  Stmt& mm = db.Prepare(
      "SELECT key, value, is_nan, timestamp, step, run_id, dataset_name, dataset_digest FROM "
      "logged_model_metrics "
      "WHERE model_id = ? ORDER BY key, step, timestamp");
  mm.Bind(1, model_id);
  while (mm.Step()) {
    ModelMetric x;
    x.metric.key = mm.Text(0);
    x.metric.value = mm.Int(2) ? NAN : mm.Double(1);
    x.metric.timestamp = mm.Int(3);
    x.metric.step = mm.Int(4);
    x.run_id = mm.Text(5);
    x.metric.dataset_name = mm.Text(6);
    x.metric.dataset_digest = mm.Text(7);
    x.metric.model_id = model_id;
    m.metrics.push_back(std::move(x));
  }
  mm.Reset();
  return m;
}

Result<LoggedModel> TrackingStore::CreateLoggedModel(
    const std::string& experiment_id, const std::string& name_in, const std::string& model_type,
    const std::string& source_run_id, const std::string& creator_id,
    const std::vector<KeyValue>& params, const std::vector<KeyValue>& tags) {
  auto exp = GetExperiment(experiment_id);
  if (!exp.ok()) return exp.status();
  if (exp->lifecycle_stage != "active")
    return InvalidArgument("The experiment " + experiment_id +
                           " must be in the 'active' state. Current state is " +
                           exp->lifecycle_stage + ".");
  if (params.size() > kMaxParamsPerBatch)
    return InvalidArgument(
        "A logged model can be created with at most 100 params; log the rest with "
        "logged-models/{model_id}/params");
  if (Status s = CheckKeyValues(params); !s.ok()) return s;
  if (Status s = CheckKeyValues(tags); !s.ok()) return s;
  std::string name = name_in;
  if (name.empty()) {
    std::string generated = GenerateJobName();
    name = generated.substr(0, generated.rfind('_'));
  }
  std::string id = ModelId();
  std::string uri = exp->artifact_location + "/models/" + id + "/artifacts";
  long long now = NowMillis();
  Status s = Write([&](Db& db) -> Status {
    Status st = db.Prepare(
                      "INSERT INTO logged_models (model_id, experiment_id, name, artifact_uri, "
                      "creator_id, model_type, "
                      "source_run_id, creation_time, last_updated_time) VALUES (?,?,?,?,?,?,?,?,?)")
                    .Bind(1, id)
                    .Bind(2, std::stoll(experiment_id))
                    .Bind(3, name)
                    .Bind(4, uri)
                    .Bind(5, creator_id)
                    .Bind(6, model_type)
                    .Bind(7, source_run_id)
                    .Bind(8, now)
                    .Bind(9, now)
                    .Run();
    for (const auto& p : params) {
      if (!st.ok()) break;
      st = db.Prepare("INSERT OR REPLACE INTO logged_model_params VALUES (?,?,?)")
               .Bind(1, id)
               .Bind(2, p.key)
               .Bind(3, p.value.substr(0, kMaxParamValueLength))
               .Run();
    }
    for (const auto& t : tags) {
      if (!st.ok()) break;
      st = db.Prepare("INSERT OR REPLACE INTO logged_model_tags VALUES (?,?,?)")
               .Bind(1, id)
               .Bind(2, t.key)
               .Bind(3, t.value.substr(0, kMaxTagValueLength))
               .Run();
    }
    return st;
  });
  if (!s.ok()) return s;
  return GetLoggedModel(id);
}

Result<LoggedModel> TrackingStore::GetLoggedModel(const std::string& model_id) {
  return ReadLoggedModel(Reader(), model_id);
}

Result<LoggedModel> TrackingStore::FinalizeLoggedModel(const std::string& model_id,
                                                       const std::string& status) {
  if (!ValidStatus(status) || status == "LOGGED_MODEL_PENDING")
    return InvalidArgument("Invalid value \"" + status +
                           "\" for parameter 'status' supplied: expected "
                           "LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED");
  Status s = Write([&](Db& db) -> Status {
    if (auto m = ReadLoggedModel(db, model_id); !m.ok()) return m.status();
    return db
        .Prepare("UPDATE logged_models SET status = ?, last_updated_time = ? WHERE model_id = ?")
        .Bind(1, status)
        .Bind(2, NowMillis())
        .Bind(3, model_id)
        .Run();
  });
  if (!s.ok()) return s;
  return GetLoggedModel(model_id);
}

Status TrackingStore::LogModelParams(const std::string& model_id,
                                     const std::vector<KeyValue>& params) {
  if (Status s = CheckKeyValues(params); !s.ok()) return s;
  return Write([&](Db& db) -> Status {
    if (auto m = ReadLoggedModel(db, model_id); !m.ok()) return m.status();
    for (const auto& p : params) {
      std::string value = p.value.substr(0, kMaxParamValueLength);
      Stmt& q = db.Prepare("SELECT value FROM logged_model_params WHERE model_id = ? AND key = ?");
      q.Bind(1, model_id).Bind(2, p.key);
      bool exists = q.Step();
      std::string old = exists ? q.Text(0) : "";
      q.Reset();
      if (exists && old != value)
        return InvalidArgument("Changing param values is not allowed. Param with key='" + p.key +
                               "' was already logged with value='" + old +
                               "' for logged model ID='" + model_id + "'.");
      if (exists) continue;
      Status st = db.Prepare("INSERT INTO logged_model_params VALUES (?,?,?)")
                      .Bind(1, model_id)
                      .Bind(2, p.key)
                      .Bind(3, value)
                      .Run();
      if (!st.ok()) return st;
    }
    return Status::Ok();
  });
}

Status TrackingStore::SetModelTags(const std::string& model_id, const std::vector<KeyValue>& tags) {
  if (Status s = CheckKeyValues(tags); !s.ok()) return s;
  return Write([&](Db& db) -> Status {
    if (auto m = ReadLoggedModel(db, model_id); !m.ok()) return m.status();
    for (const auto& t : tags) {
      Status st = db.Prepare("INSERT OR REPLACE INTO logged_model_tags VALUES (?,?,?)")
                      .Bind(1, model_id)
                      .Bind(2, t.key)
                      .Bind(3, t.value.substr(0, kMaxTagValueLength))
                      .Run();
      if (!st.ok()) return st;
    }
    return db.Prepare("UPDATE logged_models SET last_updated_time = ? WHERE model_id = ?")
        .Bind(1, NowMillis())
        .Bind(2, model_id)
        .Run();
  });
}

Status TrackingStore::DeleteModelTag(const std::string& model_id, const std::string& key) {
  return Write([&](Db& db) -> Status {
    if (auto m = ReadLoggedModel(db, model_id); !m.ok()) return m.status();
    Status s = db.Prepare("DELETE FROM logged_model_tags WHERE model_id = ? AND key = ?")
                   .Bind(1, model_id)
                   .Bind(2, key)
                   .Run();
    if (s.ok() && db.Changes() == 0)
      return NotFound("No tag with key '" + key + "' on logged model '" + model_id + "'");
    return s;
  });
}

Status TrackingStore::DeleteLoggedModel(const std::string& model_id) {
  return Write([&](Db& db) -> Status {
    if (auto m = ReadLoggedModel(db, model_id); !m.ok()) return m.status();
    return db
        .Prepare(
            "UPDATE logged_models SET lifecycle_stage = 'deleted', last_updated_time = ? WHERE "
            "model_id = ?")
        .Bind(1, NowMillis())
        .Bind(2, model_id)
        .Run();
  });
}

Result<std::vector<LoggedModel>> TrackingStore::SearchLoggedModels(const ModelSearch& q,
                                                                   bool* more) {
  auto filter = ParseFilter(q.filter, LoggedModelSchema());
  if (!filter.ok()) return filter.status();
  for (const auto& [field, asc] : q.order_by) {
    bool metric = field.rfind("metrics.", 0) == 0 && field.size() > 8;
    const auto& attrs = LoggedModelSchema();
    bool attr = std::find(attrs.string_attrs.begin(), attrs.string_attrs.end(), field) !=
                    attrs.string_attrs.end() ||
                std::find(attrs.number_attrs.begin(), attrs.number_attrs.end(), field) !=
                    attrs.number_attrs.end();
    if (!metric && !attr) return InvalidArgument("Invalid order_by field_name '" + field + "'");
  }
  if (q.max_results < 1 || q.max_results > 50000)
    return InvalidArgument("Invalid value for max_results: it must be between 1 and 50000");
  Db& db = Reader();
  std::vector<LoggedModel> all;
  for (const auto& exp : q.experiment_ids) {
    if (!ValidExperimentId(exp)) continue;
    Stmt& s = db.Prepare(
        "SELECT model_id FROM logged_models WHERE experiment_id = ? AND lifecycle_stage = "
        "'active'");
    s.Bind(1, std::stoll(exp));
    std::vector<std::string> ids;
    while (s.Step()) ids.push_back(s.Text(0));
    s.Reset();
    for (const auto& id : ids)
      if (auto m = ReadLoggedModel(db, id); m.ok() && Matches(*filter, ModelFields(*m)))
        all.push_back(std::move(*m));
  }
  auto order = q.order_by;
  if (order.empty()) order.push_back({"creation_timestamp", false});
  std::stable_sort(all.begin(), all.end(), [&](const LoggedModel& a, const LoggedModel& b) {
    ModelFields fa(a), fb(b);
    for (const auto& [field, asc] : order) {
      bool metric = field.rfind("metrics.", 0) == 0;
      std::string kind = metric ? "metric" : "attribute", key = metric ? field.substr(8) : field;
      auto x = fa.Number(kind, key), y = fb.Number(kind, key);
      if (x || y || metric) {
        if (!x && !y) continue;
        if (!x) return false;  // missing last
        if (!y) return true;
        if (*x != *y) return asc ? *x < *y : *x > *y;
        continue;
      }
      auto sx = fa.String(kind, key), sy = fb.String(kind, key);
      if (sx && sy && *sx != *sy) return asc ? *sx < *sy : *sx > *sy;
    }
    return a.model_id < b.model_id;
  });
  long long start = std::min<long long>(q.offset, static_cast<long long>(all.size()));
  long long end = std::min<long long>(start + q.max_results, static_cast<long long>(all.size()));
  *more = end < static_cast<long long>(all.size());
  return std::vector<LoggedModel>(std::make_move_iterator(all.begin() + start),
                                  std::make_move_iterator(all.begin() + end));
}

Status TrackingStore::LogOutputs(const std::string& run_id,
                                 const std::vector<std::pair<std::string, long long>>& models) {
  return Write([&](Db& db) -> Status {
    auto info = ReadRunInfo(db, run_id);
    if (!info.ok()) return info.status();
    for (const auto& [model, step] : models) {
      if (auto m = ReadLoggedModel(db, model); !m.ok()) return m.status();
      Status s = db.Prepare("INSERT OR IGNORE INTO run_outputs VALUES (?,?,?)")
                     .Bind(1, run_id)
                     .Bind(2, model)
                     .Bind(3, step)
                     .Run();
      if (!s.ok()) return s;
    }
    return Status::Ok();
  });
}

}  // namespace cairn::tracking
