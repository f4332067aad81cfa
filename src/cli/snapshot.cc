#include "cli/snapshot.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>

#include "base/settings.h"
#include "base/fs.h"
#include "base/util.h"

namespace cairn::cli {

using nlohmann::json;
namespace fs = std::filesystem;

void IgnoreRules::Add(const std::string& line) {
  std::string p = line;
  while (!p.empty() && (p.back() == '\r' || p.back() == ' ')) p.pop_back();
  if (p.empty() || p[0] == '#') return;
  Rule r;
  if (p[0] == '!') {
    r.negate = true;
    p = p.substr(1);
  }
  if (!p.empty() && p.back() == '/') {
    r.dir_only = true;
    p.pop_back();
  }
  if (!p.empty() && p[0] == '/') {
    r.anchored = true;
    p = p.substr(1);
  }
  if (p.find('/') != std::string::npos) r.anchored = true;
  if (StartsWith(p, "**/")) {
    p = p.substr(3);
    r.anchored = p.find('/') != std::string::npos;
  }
  if (p.empty()) return;
  r.glob = p;
  rules_.push_back(r);
}

std::string IgnoreRules::Load(const std::string& root) {
  for (const char* name : {".amlignore", ".gitignore"}) {
    auto text = ReadFile(root + "/" + name);
    if (!text.ok()) continue;
    for (const auto& line : Split(*text, '\n')) Add(line);
    return name;
  }
  return "";
}

bool IgnoreRules::Ignored(const std::string& rel, bool is_dir) const {
  bool ignored = false;
  std::string base = Basename(rel);
  for (const auto& r : rules_) {
    if (r.dir_only && !is_dir) continue;
    bool match;
    if (r.anchored) {
      std::string g = r.glob;
      // "a/**/b" and "a/**": fnmatch without FNM_PATHNAME lets '*' cross '/', close enough for
      // '**'.
      bool deep = g.find("**") != std::string::npos;
      match = fnmatch(g.c_str(), rel.c_str(), deep ? 0 : FNM_PATHNAME) == 0;
    } else {
      match = fnmatch(r.glob.c_str(), base.c_str(), 0) == 0;
    }
    if (match) ignored = !r.negate;
  }
  return ignored;
}

namespace {
Result<std::string> HashFile(const std::string& path, long long* size) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return InvalidArgument("cannot read " + path + ": " + strerror(errno));
  Sha256 h;
  char buf[1 << 16];
  long long total = 0;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      close(fd);
      return InvalidArgument("cannot read " + path);
    }
    if (n == 0) break;
    h.Update(buf, static_cast<size_t>(n));
    total += n;
  }
  close(fd);
  *size = total;
  return h.HexDigest();
}
// What files hashed to, keyed by what identifies their content without reading it: device, inode,
// size, and the modification and change times (a write changes both; ctime cannot be set back). A
// second snapshot of an unchanged folder then reads no file. Lines of "dev ino size mtime ctime
// sha256".
class HashCache {
 public:
  HashCache() {
    std::string home = settings::Get("CAIRN_HOME").value_or("");
    const char* user_home = getenv("HOME");
    path_ = !home.empty()             ? home + "/hash-cache"
            : user_home && *user_home ? std::string(user_home) + "/.cairn/hash-cache"
                                      : "";
    if (path_.empty()) return;
    auto text = ReadFile(path_, 64 << 20);
    if (!text.ok()) return;
    size_t pos = 0;
    while (pos < text->size()) {
      size_t end = text->find('\n', pos);
      if (end == std::string::npos) break;
      size_t sp = text->rfind(' ', end);
      if (sp != std::string::npos && sp > pos && end - sp == 65)
        entries_[text->substr(pos, sp - pos)] = text->substr(sp + 1, 64);
      pos = end + 1;
    }
  }
  static std::string Key(const struct stat& st) {
    return std::to_string(st.st_dev) + " " + std::to_string(st.st_ino) + " " +
           std::to_string(st.st_size) + " " +
           std::to_string(st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec) + " " +
           std::to_string(st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec);
  }
  const std::string* Find(const std::string& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
  }
  void Add(const std::string& key, const std::string& sha) {
    entries_[key] = sha;
    dirty_ = true;
  }
  // Keeps at most the last million entries; a cache, so a failure to write is not an error.
  void Save() {
    if (!dirty_ || path_.empty()) return;
    std::string text;
    text.reserve(entries_.size() * 120);
    size_t skip = entries_.size() > 1000000 ? entries_.size() - 1000000 : 0;
    for (const auto& [k, v] : entries_) {
      if (skip) {
        --skip;
        continue;
      }
      text += k + " " + v + "\n";
    }
    (void)MakeDirs(Dirname(path_));
    (void)WriteFileAtomic(path_, text, 0600);
  }

 private:
  std::string path_;
  std::unordered_map<std::string, std::string> entries_;
  bool dirty_ = false;
};

// Runs fn(0..n-1) on every core (small batches stay on this thread); stops at the first error and
// returns it.
Status ForEachOnEveryCore(size_t n, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  Status first = Status::Ok();
  auto work = [&] {
    for (size_t k; (k = next.fetch_add(1)) < n;) {
      Status s = fn(k);
      if (!s.ok()) {
        std::lock_guard<std::mutex> l(mu);
        if (first.ok()) first = s;
        next = n;
        return;
      }
    }
  };
  size_t threads_wanted =
      std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), (n + 15) / 16);
  std::vector<std::thread> threads;
  for (size_t t = 1; t < threads_wanted; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  return first;
}

// Hashes the files the cache does not know, on every core.
Status HashAll(std::vector<LocalFile>& files, const std::vector<std::string>& keys,
               const std::string& what) {
  HashCache cache;
  std::vector<size_t> todo;
  for (size_t i = 0; i < files.size(); ++i) {
    files[i].key = keys[i];
    if (const std::string* sha = cache.Find(keys[i]))
      files[i].sha256 = *sha;
    else
      todo.push_back(i);
  }
  if (todo.empty()) return Status::Ok();
  Status first = ForEachOnEveryCore(todo.size(), [&](size_t k) -> Status {
    LocalFile& f = files[todo[k]];
    auto h = HashFile(f.abs, &f.size);
    if (!h.ok()) return Status(Code::kInvalidArgument, what + ": " + h.status().message());
    f.sha256 = *h;
    return Status::Ok();
  });
  if (!first.ok()) return first;
  for (size_t i : todo) cache.Add(keys[i], files[i].sha256);
  cache.Save();
  return Status::Ok();
}
// Copies a file into the blob store under its hash (copy_file_range: in the kernel, a reflink where
// the filesystem has them), refusing a file that changed since it was hashed.
Status StoreLocally(const std::string& blob_root, const LocalFile& f, const std::string& what) {
  std::string dir = blob_root + "/" + f.sha256.substr(0, 2);
  std::string to = dir + "/" + f.sha256;
  std::string tmp = to + ".tmp." + std::to_string(getpid()) + "." + std::to_string(gettid());
  int in = open(f.abs.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return InvalidArgument(what + ": cannot read " + f.abs + ": " + strerror(errno));
  struct stat st;
  if (fstat(in, &st) != 0 || HashCache::Key(st) != f.key) {
    close(in);
    return InvalidArgument(what + ": " + f.rel + " changed while it was being stored; try again");
  }
  (void)MakeDirs(dir);
  int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
  if (out < 0) {
    close(in);
    return Internal("cannot write the blob store: " + tmp + ": " + strerror(errno));
  }
  long long left = st.st_size;
  bool ok = true;
  while (left > 0) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(left), 0);
    if (n <= 0) {
      // Another filesystem, or no copy_file_range: plain reads and writes.
      char buf[1 << 16];
      ssize_t r = read(in, buf, sizeof buf);
      if (r <= 0 || write(out, buf, static_cast<size_t>(r)) != r) {
        ok = false;
        break;
      }
      n = r;
    }
    left -= n;
  }
  struct stat after;
  bool same = fstat(in, &after) == 0 && HashCache::Key(after) == f.key;
  close(in);
  if (close(out) != 0) ok = false;
  if (!ok || !same || rename(tmp.c_str(), to.c_str()) != 0) {
    unlink(tmp.c_str());
    return !same ? InvalidArgument(what + ": " + f.rel +
                                   " changed while it was being stored; try again")
                 : Internal("cannot write the blob store: " + to);
  }
  return Status::Ok();
}
}  // namespace

Result<std::vector<LocalFile>> CollectFiles(const std::string& root_in, bool use_ignore_files,
                                            const std::string& what) {
  std::string root = AbsPath(root_in);
  std::vector<LocalFile> out;
  struct stat st;
  if (stat(root.c_str(), &st) != 0) return InvalidArgument(what + ": " + root + " does not exist");
  std::vector<std::string> keys;
  if (S_ISREG(st.st_mode)) {
    out.push_back(LocalFile{Basename(root), root, "", static_cast<long long>(st.st_size),
                            (st.st_mode & 0111) != 0, ""});
    keys.push_back(HashCache::Key(st));
    Status s = HashAll(out, keys, what);
    if (!s.ok()) return s;
    return out;
  }
  if (access(root.c_str(), R_OK | X_OK) != 0)
    return InvalidArgument(what + ": folder " + root + " is not readable");
  IgnoreRules rules;
  if (use_ignore_files) rules.Load(root);
  rules.Add(".git/");
  std::string real_root = fs::canonical(root).string();
  std::error_code ec;
  auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
  if (ec) return InvalidArgument(what + ": cannot list " + root + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return InvalidArgument(what + ": cannot list " + root + ": " + ec.message());
    std::string abs = it->path().string();
    std::string rel = it->path().lexically_relative(root).string();
    bool is_link = it->is_symlink(ec);
    if (is_link) {
      std::error_code ec2;
      std::string target = fs::canonical(it->path(), ec2).string();
      if (ec2) return InvalidArgument(what + ": " + rel + " is a broken link");
      if (!IsWithin(target, real_root))
        return InvalidArgument(what + ": " + rel + " links to " + target + ", outside " + root +
                               "; a snapshot does not follow links out of its folder");
    }
    bool is_dir = it->is_directory(ec);
    if (rules.Ignored(rel, is_dir)) {
      if (is_dir) it.disable_recursion_pending();
      continue;
    }
    if (is_dir) {
      if (is_link) it.disable_recursion_pending();  // its files are already inside the folder
      continue;
    }
    if (!it->is_regular_file(ec)) continue;  // sockets, fifos
    LocalFile f;
    f.rel = rel;
    f.abs = abs;
    struct stat fst;
    if (stat(abs.c_str(), &fst) != 0)
      return InvalidArgument(what + ": cannot read " + abs + ": " + strerror(errno));
    f.executable = (fst.st_mode & 0111) != 0;
    f.size = static_cast<long long>(fst.st_size);
    keys.push_back(HashCache::Key(fst));
    out.push_back(std::move(f));
  }
  Status hashed = HashAll(out, keys, what);
  if (!hashed.ok()) return hashed;
  std::sort(out.begin(), out.end(),
            [](const LocalFile& a, const LocalFile& b) { return a.rel < b.rel; });
  return out;
}

Result<std::string> UploadSnapshot(Client& client, const std::string& root, bool use_ignore_files,
                                   const std::string& what, UploadStats* stats) {
  auto files = CollectFiles(root, use_ignore_files, what);
  if (!files.ok()) return files.status();
  json hashes = json::array(), manifest = json::array();
  for (const auto& f : *files) {
    hashes.push_back(f.sha256);
    manifest.push_back(
        {{"path", f.rel}, {"sha256", f.sha256}, {"size", f.size}, {"executable", f.executable}});
  }
  auto missing = client.Post("/api/v1/blobs/missing", {{"sha256", hashes}});
  if (!missing.ok()) return missing.status();
  std::set<std::string> need;
  for (const auto& h : (*missing)["missing"]) need.insert(h.get<std::string>());
  UploadStats local;
  local.files = files->size();
  if (!client.local_blob_root().empty()) {
    // The server is this machine's: the files are copied into its blob store, on every core.
    std::vector<const LocalFile*> todo;
    for (const auto& f : *files)
      if (need.erase(f.sha256)) todo.push_back(&f);
    Status first = ForEachOnEveryCore(todo.size(), [&](size_t k) {
      return StoreLocally(client.local_blob_root(), *todo[k], what);
    });
    if (!first.ok()) return first;
    local.uploaded = todo.size();
    for (const auto* f : todo) local.uploaded_bytes += f->size;
  }
  for (const auto& f : *files) {
    if (!need.count(f.sha256)) continue;
    need.erase(f.sha256);
    auto data = ReadFile(f.abs);
    if (!data.ok()) return data.status();
    if (Sha256Hex(*data) != f.sha256)
      return InvalidArgument(what + ": " + f.rel + " changed while it was being uploaded");
    auto put = client.PutBytes("/api/v1/blobs/" + f.sha256, *data);
    if (!put.ok()) return put.status();
    ++local.uploaded;
    local.uploaded_bytes += f.size;
  }
  auto snap = client.Post("/api/v1/snapshots", {{"manifest", manifest}});
  if (!snap.ok()) return snap.status();
  if (stats) *stats = local;
  return (*snap)["id"].get<std::string>();
}

}  // namespace cairn::cli
