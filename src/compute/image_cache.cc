#include "compute/image_cache.h"

#include <dirent.h>

#include <algorithm>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "base/settings.h"
#include "base/fs.h"
#include "base/json_limits.h"
#include "base/util.h"
#include "compute/container.h"

namespace cairn::compute {

using nlohmann::json;

namespace {

std::string EntryPath(const std::string& workspace, const std::string& runtime,
                      const std::string& image) {
  // The runtime may be a path (CAIRN_CONTAINER_RUNTIME): only its hash goes into the name.
  return ImageCacheDir(workspace) + "/" + Sha256Hex(runtime + "\n" + image).substr(0, 32) + ".json";
}

std::optional<ImageAbsence> ReadEntry(const std::string& path) {
  auto text = ReadFile(path, 64 << 10);
  if (!text.ok()) return std::nullopt;
  json j = ParseJsonOrDiscarded(*text);
  if (!j.is_object() || !j.contains("image") || !j["image"].is_string()) return std::nullopt;
  ImageAbsence a;
  a.runtime = j.value("runtime", "");
  a.image = j["image"].get<std::string>();
  a.reason = j.value("reason", "");
  a.checked_ms = j.value("checked_ms", int64_t{0});
  return a;
}

}  // namespace

std::string ImageCacheDir(const std::string& workspace) {
  return workspace.empty() ? "" : workspace + "/images";
}

int64_t ImageRecheckMs() {
  return std::max(1LL, settings::Integer("CAIRN_IMAGE_RECHECK_SECONDS")) * 1000;
}

std::optional<ImageAbsence> RememberedAbsence(const std::string& workspace,
                                              const std::string& runtime,
                                              const std::string& image) {
  if (workspace.empty()) return std::nullopt;
  auto a = ReadEntry(EntryPath(workspace, runtime, image));
  if (!a || a->image != image || a->runtime != runtime) return std::nullopt;
  return a;
}

void RememberAbsence(const std::string& workspace, const ImageAbsence& a) {
  if (workspace.empty()) return;
  if (!MakeDirs(ImageCacheDir(workspace)).ok()) return;  // no cache: the next job looks again
  json j = {{"runtime", a.runtime},
            {"image", a.image},
            {"reason", a.reason},
            {"checked_ms", a.checked_ms}};
  (void)WriteFileAtomic(EntryPath(workspace, a.runtime, a.image), j.dump() + "\n");
}

void ForgetAbsence(const std::string& workspace, const std::string& runtime,
                   const std::string& image) {
  if (workspace.empty()) return;
  (void)unlink(EntryPath(workspace, runtime, image).c_str());
}

std::vector<ImageAbsence> RememberedAbsences(const std::string& workspace) {
  std::vector<ImageAbsence> out;
  std::string dir = ImageCacheDir(workspace);
  DIR* d = dir.empty() ? nullptr : opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() < 6 || n.substr(n.size() - 5) != ".json") continue;
    if (auto a = ReadEntry(dir + "/" + n)) out.push_back(*a);
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const ImageAbsence& a, const ImageAbsence& b) {
    return std::tie(a.checked_ms, a.image) < std::tie(b.checked_ms, b.image);
  });
  return out;
}

ImageCheck CheckImageNow(const std::string& workspace, const std::string& runtime,
                         const std::string& image, const std::function<void()>& before_pull) {
  ImageCheck c;
  c.image = image;
  if (!ImageExists(runtime, image)) {
    if (before_pull) before_pull();
    Status pulled = PullImage(runtime, image);
    if (pulled.ok()) {
      c.pulled = true;
    } else {
      c.reason = runtime + " pull: " + Trim(pulled.message());
      RememberAbsence(workspace, {runtime, image, c.reason, NowMillis()});
      return c;
    }
  }
  c.available = true;
  ForgetAbsence(workspace, runtime, image);
  return c;
}

}  // namespace cairn::compute
