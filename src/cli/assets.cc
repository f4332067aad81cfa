#include "cli/assets.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "base/fs.h"
#include "base/http_client.h"
#include "base/util.h"
#include "cli/client.h"
#include "cli/snapshot.h"
#include "spec/asset_spec.h"
#include "spec/job_spec.h"
#include "spec/yaml_tree.h"

namespace cairn::cli {

using nlohmann::json;

namespace {

int Fail(const Status& s) { return ReportFailure(s); }

struct AssetArgs {
  std::string file, name, version, label, path, type, description, stage, datastore,
      download_path = ".";
  std::string image, build_context, dockerfile_path = "Dockerfile", conda_file, os_type;
  std::vector<std::string> sets, tags;
  bool include_archived = false, archived_only = false, skip_validation = false;
  int max_results = 0;
};

const std::vector<Column> kDataColumns = {{"Name", "name"},
                                          {"Version", "version"},
                                          {"Type", "type"},
                                          {"Path", "path"},
                                          {"Created", "creation_context.created_at"}};
const std::vector<Column> kEnvColumns = {{"Name", "name"},
                                         {"Version", "version"},
                                         {"Image", "image"},
                                         {"Build", "build.path"},
                                         {"Created", "creation_context.created_at"}};
const std::vector<Column> kStoreColumns = {{"Name", "name"}, {"Type", "type"}, {"Path", "path"}};
const std::vector<Column> kImageColumns = {{"Image", "image"},
                                           {"Available", "available"},
                                           {"Checked", "checked_at"},
                                           {"Reason", "reason"}};

// The asset the flags and the file describe; the flags win.
// Exit codes for a bad path, whatever kind of path it is and whoever finds it: 3 when it names
// nothing (az's "resource not found"), 2 when it is malformed.
int PathErrorCode(const std::string& message) {
  return message.find("no such file or folder") != std::string::npos ||
                 message.find("does not exist") != std::string::npos ||
                 message.find(" has no ") != std::string::npos ||
                 message.find("no job named") != std::string::npos
             ? 3
             : 2;
}

std::optional<spec::AssetSpec> Describe(const std::string& kind, const AssetArgs& a,
                                        int* rc = nullptr) {
  spec::Diagnostics d;
  spec::AssetSpec s;
  if (!a.file.empty()) {
    auto parsed = spec::ParseAssetFile(kind, a.file, a.sets, d);
    if (!parsed) {
      fputs(d.ToString().c_str(), stderr);
      return std::nullopt;
    }
    s = *parsed;
  }
  s.kind = kind;
  if (!a.name.empty()) s.name = a.name;
  if (!a.version.empty()) s.version = a.version;
  if (!a.description.empty()) s.description = a.description;
  if (!a.type.empty()) s.type = ToLower(a.type);
  if (!a.stage.empty()) s.stage = a.stage;
  if (!a.path.empty())
    s.path = spec::ClassifyPath(a.path) == spec::PathKind::kLocal ? AbsPath(a.path) : a.path;
  if (!a.image.empty()) s.environment.image = a.image;
  if (!a.build_context.empty()) {
    s.environment.build_path = AbsPath(a.build_context);
    s.environment.dockerfile_path = a.dockerfile_path;
  }
  if (!a.conda_file.empty()) s.environment.conda_file = AbsPath(a.conda_file);
  if (!a.os_type.empty()) s.os_type = ToLower(a.os_type);
  for (const auto& t : a.tags) {
    auto eq = t.find('=');
    s.tags[t.substr(0, eq)] = eq == std::string::npos ? "" : t.substr(eq + 1);
  }
  if (kind == "environment") {
    if (!s.environment.image.empty() && !s.environment.build_path.empty())
      d.Error("--flags", 0, 0, "give either --image or --build-context, not both");
    if (!s.environment.conda_file.empty() && s.environment.image.empty())
      d.Error("--flags", 0, 0,
              "--conda-file needs --image (a conda file is applied on top of an image)");
  }
  spec::ValidateAsset(s, a.file.empty() ? "--flags" : a.file, d);
  if (d.HasErrors()) {
    fputs(d.ToString().c_str(), stderr);
    if (rc) {
      *rc = 2;
      if (std::all_of(d.all().begin(), d.all().end(),
                      [](const auto& x) { return x.message.rfind("path: ", 0) == 0; }))
        *rc = PathErrorCode(d.all().front().message);
    }
    return std::nullopt;
  }
  return s;
}

int Create(const std::string& kind, const AssetArgs& a, const AssetCommandHooks& hooks) {
  if (a.file.empty() && a.name.empty())
    return Fail(InvalidArgument(kind + " create: give --file, or --name and " +
                                (kind == "environment" ? "--image or --build-context" : "--path")));
  int rc = 2;
  auto s = Describe(kind, a, &rc);
  if (!s) return rc;
  auto client = Connect();
  if (!client.ok()) return Fail(client.status());
  json body = spec::ToJson(*s);
  if (s->version.empty()) body.erase("version");
  // Local content goes to the workspace's blob store first: only what it lacks is sent.
  std::string local;
  if ((kind == "data" || kind == "model") && spec::ClassifyPath(s->path) == spec::PathKind::kLocal)
    local = s->path;
  if (kind == "environment" && !s->environment.build_path.empty() &&
      spec::ClassifyPath(s->environment.build_path) == spec::PathKind::kLocal)
    local = s->environment.build_path;
  if (!local.empty()) {
    UploadStats stats;
    long long t0 = NowMillis();
    auto id = UploadSnapshot(**client, local, kind == "environment",
                             kind == "environment" ? "build" : "path", &stats);
    if (!id.ok()) return Fail(id.status());
    body["snapshot"] = *id;
    if (!IsDir(local)) body["single_file"] = Basename(local);
    fprintf(stderr, "%s: %s, %zu new (%.1f MB) stored in %.2f s\n", local.c_str(),
            Plural(static_cast<long long>(stats.files), "file").c_str(), stats.uploaded,
            static_cast<double>(stats.uploaded_bytes) / 1e6,
            static_cast<double>(NowMillis() - t0) / 1000.0);
  }
  if (kind == "environment" && !s->environment.conda_file.empty()) {
    auto conda = ReadFile(s->environment.conda_file, 1 << 20);
    if (!conda.ok()) return Fail(conda.status());
    body["conda_file_content"] = *conda;
  }
  auto made = (*client)->Post("/api/v1/assets/" + kind, body);
  if (!made.ok()) {
    // A path the workspace cannot resolve is reported as the local checks report one (one format,
    // one exit code for each kind of failure: PathErrorCode), whichever kind of path it was.
    const std::string& m = made.status().message();
    if (StartsWith(m, "path: ")) {
      spec::Diagnostics d;
      d.Error(a.file.empty() ? "--flags" : a.file, 0, 0, m);
      fputs(d.ToString().c_str(), stderr);
      return made.status().code() == Code::kNotFound ? 3 : PathErrorCode(m);
    }
    return Fail(made.status());
  }
  return hooks.print(*made, kind == "environment" ? kEnvColumns : kDataColumns);
}

std::string Enc(const std::string& s) { return HttpClient::UrlEncode(s); }

int Show(const std::string& kind, const AssetArgs& a, const AssetCommandHooks& hooks) {
  if (!a.version.empty() && !a.label.empty())
    return Fail(InvalidArgument("give --version or --label, not both"));
  auto client = Connect();
  if (!client.ok()) return Fail(client.status());
  std::string path = "/api/v1/assets/" + kind + "/" + Enc(a.name);
  path += a.version.empty() ? "?label=" + Enc(a.label.empty() ? "latest" : a.label)
                            : "/versions/" + Enc(a.version);
  auto got = (*client)->Get(path);
  if (!got.ok()) return Fail(got.status());
  return hooks.print(*got, kind == "environment" ? kEnvColumns : kDataColumns);
}

int List(const std::string& kind, const AssetArgs& a, const AssetCommandHooks& hooks) {
  auto client = Connect();
  if (!client.ok()) return Fail(client.status());
  std::string q = "/api/v1/assets/" + kind + "?name=" + Enc(a.name);
  if (a.include_archived) q += "&include_archived=true";
  if (a.archived_only) q += "&archived_only=true";
  auto got = (*client)->Get(q);
  if (!got.ok()) return Fail(got.status());
  json out = *got;
  if (a.max_results > 0 && static_cast<int>(out.size()) > a.max_results)
    out.erase(out.begin() + a.max_results, out.end());
  return hooks.print(out, kind == "environment" ? kEnvColumns : kDataColumns);
}

int Archive(const std::string& kind, const AssetArgs& a, bool archive) {
  auto client = Connect();
  if (!client.ok()) return Fail(client.status());
  std::string q =
      "/api/v1/assets/" + kind + "/" + Enc(a.name) + (archive ? "/archive" : "/restore");
  if (!a.version.empty()) q += "?version=" + Enc(a.version);
  auto r = (*client)->Post(q, json::object());
  if (!r.ok()) return Fail(r.status());
  return 0;
}

// `model download`: the version's files under <download-path>/<name>/.
int Download(const std::string& kind, const AssetArgs& a) {
  auto client = Connect();
  if (!client.ok()) return Fail(client.status());
  std::string version = a.version;
  if (version.empty()) {
    auto latest = (*client)->Get("/api/v1/assets/" + kind + "/" + Enc(a.name) + "?label=latest");
    if (!latest.ok()) return Fail(latest.status());
    version = latest->value("version", "");
  }
  auto files = (*client)->Get("/api/v1/assets/" + kind + "/" + Enc(a.name) + "/versions/" +
                              Enc(version) + "/files");
  if (!files.ok()) return Fail(files.status());
  std::string root = AbsPath(a.download_path) + "/" + a.name;
  for (const auto& f : (*files)["files"]) {
    std::string rel = f.value("path", "");
    Status s = (*client)->Fetch("/api/v1/blobs/" + f.value("sha256", ""), rel, root, rel);
    if (!s.ok()) return Fail(s);
    if (f.value("executable", false)) chmod((root + "/" + rel).c_str(), 0755);
  }
  fprintf(stderr, "%s:%s: %s in %s\n", a.name.c_str(), version.c_str(),
          Plural(static_cast<long long>((*files)["files"].size()), "file").c_str(), root.c_str());
  return 0;
}

void AddAssetGroup(CLI::App& app, const std::string& kind, const AssetCommandHooks& hooks, int& rc,
                   const std::shared_ptr<AssetArgs>& a) {
  std::string what = kind == "data" ? "data assets" : kind == "model" ? "models" : "environments";
  auto* group = app.add_subcommand(kind, "Manage " + what)->require_subcommand(1);
  auto* create = group->add_subcommand(
      "create", "Create a new version of a " + (kind == "data" ? std::string("data asset") : kind));
  create->add_option("-f,--file", a->file, "a " + kind + " YAML file");
  create->add_option("-n,--name", a->name, "its name (wins over the file's)");
  create->add_option("-v,--version", a->version,
                     "its version (default: one more than the highest)");
  create->add_option("-d,--description", a->description, "a description");
  create->add_option("--tags", a->tags, "key=value tags")->allow_extra_args(false);
  create->add_option("--set", a->sets, "override a field of the file: --set description=x")
      ->allow_extra_args(false);
  if (kind == "environment") {
    create->add_option("-i,--image", a->image, "a container image (docker reference)");
    create->add_option("-b,--build-context", a->build_context,
                       "a folder with a Dockerfile to build");
    create
        ->add_option("--dockerfile-path", a->dockerfile_path,
                     "the Dockerfile, relative to the build context")
        ->capture_default_str();
    create->add_option("-c,--conda-file", a->conda_file, "a conda file applied on top of --image");
    create->add_option("--os-type", a->os_type, "linux (default) or windows");
  } else {
    create->add_option(
        "-p,--path", a->path,
        "a local file or folder, an http(s) URL, a datastore URI" +
            std::string(kind == "model" ? ", runs:/<run>/<path> or a job output URI" : ""));
    create->add_option("-t,--type", a->type,
                       kind == "data" ? "uri_file, uri_folder (default) or mltable"
                                      : "custom_model (default), mlflow_model or triton_model");
    create->add_option("--datastore", a->datastore,
                       "accepted for compatibility (local content goes to the workspace)");
    create->add_flag("--skip-validation", a->skip_validation, "accepted for compatibility");
    if (kind == "model") create->add_option("-s,--stage", a->stage, "a stage, e.g. Development");
  }
  hooks.add_globals(create);
  create->callback([&rc, hooks, kind, a] { rc = Create(kind, *a, hooks); });

  auto* show =
      group->add_subcommand("show", "Show one version (--version) or the latest (--label latest)");
  show->add_option("-n,--name", a->name, "the name")->required();
  show->add_option("-v,--version", a->version, "a version");
  show->add_option("-l,--label", a->label, "latest");
  hooks.add_globals(show);
  show->callback([&rc, hooks, kind, a] { rc = Show(kind, *a, hooks); });

  auto* list =
      group->add_subcommand("list", "List the latest version of each, or every version of --name");
  list->add_option("-n,--name", a->name, "every version of this one, newest first");
  list->add_option("-r,--max-results", a->max_results, "at most this many");
  list->add_flag("--include-archived", a->include_archived, "archived ones too");
  list->add_flag("--archived-only", a->archived_only, "only archived ones");
  hooks.add_globals(list);
  list->callback([&rc, hooks, kind, a] { rc = List(kind, *a, hooks); });

  for (bool archive : {true, false}) {
    auto* c = group->add_subcommand(
        archive ? "archive" : "restore",
        archive ? "Hide a version (--version) or every version from lists and 'latest'"
                : "Undo an archive");
    c->add_option("-n,--name", a->name, "the name")->required();
    c->add_option("-v,--version", a->version, "one version (default: every version)");
    c->add_option("-l,--label", a->label, "accepted for compatibility");
    c->callback([&rc, hooks, kind, a, archive] { rc = Archive(kind, *a, archive); });
  }
  if (kind == "environment") {
    // The image cache: an image the runtime could not have is remembered, so later jobs do not try
    // again.
    auto* check =
        group->add_subcommand("check",
                              "Look for an image now (local, else pull), or again for every image "
                              "remembered as unavailable; jobs use the answer at once");
    check->add_option("-i,--image", a->image,
                      "the image (default: every image remembered as unavailable)");
    hooks.add_globals(check);
    check->callback([&rc, hooks, a] {
      auto client = Connect();
      if (!client.ok()) {
        rc = Fail(client.status());
        return;
      }
      json body = json::object();
      if (!a->image.empty()) body["image"] = a->image;
      auto r = (*client)->Post("/api/v1/images/check", body);
      if (!r.ok()) {
        rc = Fail(r.status());
        return;
      }
      json rows = (*r)["value"];
      rc = hooks.print(rows, kImageColumns);
      if (rc == 0 && rows.empty()) fprintf(stderr, "No image is remembered as unavailable.\n");
    });
    auto* images =
        group->add_subcommand("list-images",
                              "List the images remembered as unavailable (jobs run on this "
                              "host instead) and when they were looked for");
    hooks.add_globals(images);
    images->callback([&rc, hooks] {
      auto client = Connect();
      if (!client.ok()) {
        rc = Fail(client.status());
        return;
      }
      auto r = (*client)->Get("/api/v1/images");
      rc = r.ok() ? hooks.print((*r)["value"], kImageColumns) : Fail(r.status());
    });
  }
  if (kind == "model") {
    auto* dl =
        group->add_subcommand("download", "Download a model's files to <download-path>/<name>/");
    dl->add_option("-n,--name", a->name, "the model")->required();
    dl->add_option("-v,--version", a->version, "its version (default: the latest)");
    dl->add_option("-p,--download-path", a->download_path, "where (default: the current folder)");
    dl->callback([&rc, hooks, kind, a] { rc = Download(kind, *a); });
  }
}

}  // namespace

// `cairn component create | list | show | archive | restore`: command components, versioned and
// immutable.
const std::vector<Column> kComponentColumns = {{"Name", "name"},
                                               {"Version", "version"},
                                               {"Display name", "display_name"},
                                               {"Deterministic", "is_deterministic"},
                                               {"Created", "creation_context.created_at"}};

// cairn component create: the file parsed as the job it stands for, its code uploaded, a version
// registered. Returns the exit code.
int CreateComponent(const AssetArgs& a, const AssetCommandHooks& hooks) {
  spec::Diagnostics d;
  spec::ParseOptions opt;
  opt.overrides = a.sets;
  opt.name = a.name;
  auto text = ReadFile(a.file, spec::YamlLimits().max_bytes);
  if (!text.ok()) {
    fprintf(
        stderr, "%s: error: %s\n", a.file.c_str(),
        text.status().code() == Code::kNotFound ? "no such file" : text.status().message().c_str());
    return 2;
  }
  auto info = spec::ParseComponentText(*text, a.file, Dirname(AbsPath(a.file)), opt, d);
  if (std::string diags = d.ToString(); !diags.empty()) fputs(diags.c_str(), stderr);
  if (!info) {
    return 2;
  }
  auto client = Connect();
  if (!client.ok()) {
    return Fail(client.status());
  }
  json body = {{"yaml", *text},
               {"name", info->name},
               {"version", a.version.empty() ? info->version : a.version}};
  if (!info->code.empty()) {
    auto id = UploadSnapshot(**client, info->code, true, "code");
    if (!id.ok()) {
      return Fail(id.status());
    }
    body["code_snapshot"] = *id;
  } else if (!info->code_snapshot.empty()) {
    body["code_snapshot"] = info->code_snapshot;
  }
  auto made = (*client)->Post("/api/v1/assets/component", body);
  if (!made.ok()) {
    if (made.status().code() == Code::kInvalidArgument ||
        made.status().code() == Code::kAlreadyExists) {
      fprintf(stderr, "%s: error: %s\n", a.file.c_str(), made.status().message().c_str());
      return 2;
    }
    return Fail(made.status());
  }
  json shown = *made;
  shown.erase("yaml");
  return hooks.print(shown, kComponentColumns);
}

void AddComponentGroup(CLI::App& app, const AssetCommandHooks& hooks, int& rc) {
  auto a = std::make_shared<AssetArgs>();
  auto* group =
      app.add_subcommand("component", "Manage components: the steps pipelines are made of")
          ->require_subcommand(1);
  auto* create = group->add_subcommand("create", "Register a new version of a command component");
  create->add_option("-f,--file", a->file, "a command component YAML file")->required();
  create->add_option("-n,--name", a->name, "its name (wins over the file's)");
  create->add_option("-v,--version", a->version,
                     "its version (wins over the file's; default: the next integer)");
  create->add_option("--set", a->sets, "override a field: --set version=2");
  hooks.add_globals(create);
  create->callback([&rc, hooks, a] { rc = CreateComponent(*a, hooks); });
  auto* show = group->add_subcommand("show", "Show a component (the latest version, or --version)");
  show->add_option("-n,--name", a->name, "the component")->required();
  show->add_option("-v,--version", a->version, "a version");
  show->add_option("-l,--label", a->label, "latest");
  hooks.add_globals(show);
  show->callback([&rc, hooks, a] {
    auto client = Connect();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    std::string path = "/api/v1/assets/component/" + Enc(a->name) +
                       (a->version.empty() ? "" : "/versions/" + Enc(a->version));
    auto got = (*client)->Get(path);
    if (!got.ok()) {
      rc = Fail(got.status());
      return;
    }
    rc = hooks.print(*got, kComponentColumns);
  });
  auto* list = group->add_subcommand(
      "list", "List components (the latest version of each, or every version of --name)");
  list->add_option("-n,--name", a->name, "every version of this component");
  list->add_flag("--include-archived", a->include_archived, "archived ones too");
  list->add_flag("--archived-only", a->archived_only, "only archived ones");
  hooks.add_globals(list);
  list->callback([&rc, hooks, a] {
    auto client = Connect();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    std::string q = "/api/v1/assets/component?name=" + Enc(a->name);
    if (a->include_archived) q += "&include_archived=true";
    if (a->archived_only) q += "&archived_only=true";
    auto got = (*client)->Get(q);
    if (!got.ok()) {
      rc = Fail(got.status());
      return;
    }
    json out = *got;
    for (auto& c : out) c.erase("yaml");
    rc = hooks.print(out, kComponentColumns);
  });
  for (bool archive : {true, false}) {
    auto* c = group->add_subcommand(
        archive ? "archive" : "restore",
        archive ? "Archive a component (a version, or all)" : "Restore an archived component");
    c->add_option("-n,--name", a->name, "the component")->required();
    c->add_option("-v,--version", a->version, "a version (default: every version)");
    hooks.add_globals(c);
    c->callback([&rc, a, archive] { rc = Archive("component", *a, archive); });
  }
}

void AddAssetCommands(CLI::App& app, const AssetCommandHooks& hooks, int& rc,
                      const std::function<bool(const std::string&)>& wanted) {
  for (const char* kind : {"data", "model", "environment"})
    if (!wanted || wanted(kind)) AddAssetGroup(app, kind, hooks, rc, std::make_shared<AssetArgs>());
  if (!wanted || wanted("component")) AddComponentGroup(app, hooks, rc);
  if (wanted && !wanted("datastore")) return;

  auto a = std::make_shared<AssetArgs>();
  auto* ds = app.add_subcommand(
                    "datastore",
                    "Manage datastores: folders that azureml://datastores/<name>/paths/... names")
                 ->require_subcommand(1);
  auto* create = ds->add_subcommand("create", "Create or update a datastore");
  create->add_option("-f,--file", a->file, "a datastore YAML file (name, type: local, path)");
  create->add_option("-n,--name", a->name, "its name");
  create->add_option("-p,--path", a->path, "the folder (on this machine or a shared filesystem)");
  create->add_option("-d,--description", a->description, "a description");
  hooks.add_globals(create);
  create->callback([&rc, hooks, a] {
    auto s = Describe("datastore", *a);
    if (!s) {
      rc = 2;
      return;
    }
    auto client = Connect();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    auto made = (*client)->Post("/api/v1/datastores", spec::ToJson(*s));
    rc = made.ok() ? hooks.print(*made, kStoreColumns) : Fail(made.status());
  });
  auto* list = ds->add_subcommand("list", "List datastores");
  hooks.add_globals(list);
  list->callback([&rc, hooks] {
    auto client = Connect();
    if (!client.ok()) {
      rc = Fail(client.status());
      return;
    }
    auto got = (*client)->Get("/api/v1/datastores");
    rc = got.ok() ? hooks.print(*got, kStoreColumns) : Fail(got.status());
  });
  for (bool del : {false, true}) {
    auto* c = ds->add_subcommand(del ? "delete" : "show",
                                 del ? "Delete a datastore (its files stay)" : "Show a datastore");
    c->add_option("-n,--name", a->name, "the datastore")->required();
    hooks.add_globals(c);
    c->callback([&rc, hooks, a, del] {
      auto client = Connect();
      if (!client.ok()) {
        rc = Fail(client.status());
        return;
      }
      auto r = del ? (*client)->Delete("/api/v1/datastores/" + Enc(a->name))
                   : (*client)->Get("/api/v1/datastores/" + Enc(a->name));
      rc = !r.ok() ? Fail(r.status()) : del ? 0 : hooks.print(*r, kStoreColumns);
    });
  }
}

}  // namespace cairn::cli
