#include "store/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/util.h"

namespace cairn::store {

bool IsValidSha256(const std::string& s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string BlobStore::PathOf(const std::string& sha) const {
  return root_ + "/" + sha.substr(0, 2) + "/" + sha;
}

bool BlobStore::Has(const std::string& sha) const {
  static const std::string kEmpty =
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  struct stat st;
  return IsValidSha256(sha) && stat(PathOf(sha).c_str(), &st) == 0 &&
         (st.st_size > 0 || sha == kEmpty);
}

Status BlobStore::Sync() const {
  int fd = open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Internal("cannot open " + root_);
  int rc = syncfs(fd);
  close(fd);
  return rc == 0 ? Status::Ok() : Internal("cannot sync the blob store " + root_);
}

Status BlobStore::Put(const std::string& sha, const std::string& data, bool durable) {
  if (!IsValidSha256(sha)) return InvalidArgument("'" + sha + "' is not a SHA-256 digest");
  std::string actual = Sha256Hex(data);
  if (actual != sha)
    return InvalidArgument("blob content hashes to " + actual + ", not " + sha +
                           " (corrupted upload?)");
  if (Has(sha)) return Status::Ok();
  Status s = MakeDirs(root_ + "/" + sha.substr(0, 2));
  if (!s.ok()) return s;
  return WriteFileAtomic(PathOf(sha), data, 0444, durable);
}

Result<std::string> BlobStore::PutFile(const std::string& path) {
  int in = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return InvalidArgument("cannot read " + path + ": " + strerror(errno));
  std::string tmp = root_ + "/incoming." + std::to_string(getpid()) + "." + RandomHex(6);
  int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
  if (out < 0) {
    close(in);
    return Internal("cannot write the blob store: " + tmp + ": " + strerror(errno));
  }
  Sha256 h;
  std::string buf(1 << 20, '\0');
  bool ok = true;
  for (;;) {
    ssize_t n = read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = n == 0;
      break;
    }
    h.Update(buf.data(), static_cast<size_t>(n));
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buf.data() + done, static_cast<size_t>(n - done));
      if (w <= 0) {
        ok = false;
        break;
      }
      done += w;
    }
    if (!ok) break;
  }
  close(in);
  if (close(out) != 0) ok = false;
  std::string sha = h.HexDigest();
  Status s = ok ? MakeDirs(root_ + "/" + sha.substr(0, 2))
                : Internal("cannot copy " + path + " into the blob store");
  if (s.ok() && !Has(sha) && rename(tmp.c_str(), PathOf(sha).c_str()) != 0)
    s = Internal("cannot store " + path);
  unlink(tmp.c_str());
  if (!s.ok()) return s;
  return sha;
}

Status BlobStore::Materialize(const std::vector<ManifestEntry>& manifest,
                              const std::string& dir) const {
  for (const auto& e : manifest) {
    std::string to = dir + "/" + e.path;
    Status s = MakeDirs(Dirname(to));
    if (!s.ok()) return s;
    s = CopyFile(PathOf(e.sha256), to);
    if (!s.ok()) return s;
    chmod(to.c_str(), e.executable ? 0755 : 0644);
  }
  return Status::Ok();
}

nlohmann::json ManifestToJson(const std::vector<ManifestEntry>& m) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& e : m)
    a.push_back(
        {{"path", e.path}, {"sha256", e.sha256}, {"size", e.size}, {"executable", e.executable}});
  return a;
}

Result<std::vector<ManifestEntry>> ManifestFromJson(const nlohmann::json& j) {
  if (!j.is_array()) return InvalidArgument("manifest must be a JSON array");
  std::vector<ManifestEntry> out;
  for (const auto& x : j) {
    if (!x.is_object()) return InvalidArgument("manifest entries must be objects");
    ManifestEntry e;
    e.path = x.value("path", "");
    e.sha256 = x.value("sha256", "");
    e.size = x.value("size", 0LL);
    e.executable = x.value("executable", false);
    if (e.path.empty() || e.path[0] == '/' || e.path.find('\0') != std::string::npos)
      return InvalidArgument("manifest path '" + e.path + "' must be relative");
    for (const auto& part : Split(e.path, '/'))
      if (part == ".." || part == "." || part.empty())
        return InvalidArgument("manifest path '" + e.path + "' leaves its folder");
    if (!IsValidSha256(e.sha256))
      return InvalidArgument("manifest entry '" + e.path + "' has no valid sha256");
    out.push_back(std::move(e));
  }
  return out;
}

std::string ManifestId(const std::vector<ManifestEntry>& m) {
  std::vector<ManifestEntry> sorted = m;
  std::sort(sorted.begin(), sorted.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.path < b.path; });
  return Sha256Hex(ManifestToJson(sorted).dump());
}

}  // namespace cairn::store
