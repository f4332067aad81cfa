// What the workspace remembers of images its container runtime could not have: a negative cache, so
// that a job whose image is neither local nor pullable (`python` on a machine with no registry,
// every Azure ML curated image) costs a file read instead of a `podman image exists` and a failed
// `podman pull` each. One file per image under <workspace>/images/; written atomically, so
// supervisors and the server share it without locks. An entry is trusted until something looks
// again: the server re-checks entries older than the TTL in the background (off every job's path),
// and `cairn environment check` does it at once. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace cairn::compute {

struct ImageAbsence {
  std::string runtime;
  std::string image;
  std::string reason;      // what the runtime said, e.g. the pull's error
  int64_t checked_ms = 0;  // when it was last looked for
};

// The folder of the cache for `workspace` ("" when workspace is empty).
std::string ImageCacheDir(const std::string& workspace);
// How long an absence is trusted before the server looks again: CAIRN_IMAGE_RECHECK_SECONDS
// (default 600).
int64_t ImageRecheckMs();

std::optional<ImageAbsence> RememberedAbsence(const std::string& workspace,
                                              const std::string& runtime, const std::string& image);
void RememberAbsence(const std::string& workspace, const ImageAbsence& a);
void ForgetAbsence(const std::string& workspace, const std::string& runtime,
                   const std::string& image);
// Every remembered absence, oldest check first.
std::vector<ImageAbsence> RememberedAbsences(const std::string& workspace);

struct ImageCheck {
  std::string image;
  bool available = false;
  bool pulled = false;  // it was not local and a pull brought it
  std::string reason;   // why not, when not available
};
// Looks now (local images, else a pull) and records the answer in the cache.
// `before_pull` runs when the image is not local, before the pull.
ImageCheck CheckImageNow(const std::string& workspace, const std::string& runtime,
                         const std::string& image,
                         const std::function<void()>& before_pull = nullptr);

}  // namespace cairn::compute
