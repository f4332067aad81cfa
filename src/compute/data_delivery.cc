#include "compute/data_delivery.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include "base/fs.h"
#include "base/util.h"
#include "spec/yaml_tree.h"

namespace cairn::compute {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// Read-only (or writable again) for everyone, keeping what is executable executable.
void ChmodTree(const std::string& root, bool read_only) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    bool exec = it->is_directory() || (stat(it->path().c_str(), &st) == 0 && (st.st_mode & 0100));
    chmod(it->path().c_str(), exec ? (read_only ? 0555 : 0755) : (read_only ? 0444 : 0644));
  }
  chmod(root.c_str(), read_only ? 0555 : 0755);
}

// Hard link, else copy (another filesystem).
Status LinkOrCopy(const std::string& from, const std::string& to, bool link) {
  Status s = MakeDirs(Dirname(to));
  if (!s.ok()) return s;
  if (link && ::link(from.c_str(), to.c_str()) == 0) return Status::Ok();
  return CopyFile(from, to);
}

// What a curl exit code means, in words (curl's own list: man curl, EXIT CODES).
std::string CurlFailure(int rc, const std::string& url) {
  std::string host = url;
  if (size_t p = host.find("://"); p != std::string::npos) host = host.substr(p + 3);
  host = host.substr(0, host.find_first_of("/:?#"));
  if (size_t at = host.rfind('@'); at != std::string::npos) host = host.substr(at + 1);
  switch (rc) {
    case 3:
      return "the URL is malformed";
    case 5:
      return "could not resolve the proxy";
    case 6:
      return "could not resolve host " + host;
    case 7:
      return "could not connect to " + host + " (refused or unreachable)";
    case 18:
      return "the transfer ended early (partial file)";
    case 22:
      return "the server answered with an error";
    case 23:
      return "could not write the downloaded file";
    case 28:
      return "timed out";
    case 35:
      return "the TLS handshake with " + host + " failed";
    case 47:
      return "too many redirects";
    case 52:
      return host + " sent nothing back";
    case 55:
      return "sending to " + host + " failed";
    case 56:
      return "receiving from " + host + " failed (connection reset)";
    case 60:
      return "the certificate of " + host + " is not trusted";
    default:
      return "curl failed with exit code " + std::to_string(rc);
  }
}

// Runs curl for `url` into `to`; `extra` are validators. Returns the HTTP code ("304", "200"), or
// an error. Gives up at once, killing curl, when `cancel_fd` becomes readable.
Result<std::string> Curl(const std::string& url, const std::string& to, long long max_bytes,
                         const std::vector<std::string>& extra, const DeliveryContext& ctx) {
  int cancel_fd = ctx.stop_requested ? ctx.cancel_fd : -1;
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return Internal("pipe failed");
  std::string limit = std::to_string(max_bytes);
  std::vector<std::string> args = {
      "curl",         "-sSL", "-R", "--max-filesize", limit, "--connect-timeout", "10", "-w",
      "%{http_code}", "-o",   to};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(url);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    execvp("curl", argv.data());
    _exit(127);
  }
  close(out[1]);
  std::string code;
  char buf[256];
  bool canceled = false;
  for (;;) {
    pollfd fds[2] = {{out[0], POLLIN, 0}, {cancel_fd, POLLIN, 0}};
    int n = poll(fds, cancel_fd >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (cancel_fd >= 0 && (fds[1].revents & POLLIN)) {
      if (ctx.stop_requested()) {
        canceled = true;
        kill(pid, SIGKILL);
        break;
      }
      if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
    }
    ssize_t r = read(out[0], buf, sizeof buf);
    if (r > 0) {
      code.append(buf, static_cast<size_t>(r));
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    break;
  }
  close(out[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (canceled)
    return Status(Code::kUnavailable,
                  "the download of " + url + " was stopped: the job is being canceled");
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 127) return Unavailable("cannot download " + url + ": curl is not installed");
  if (rc == 63)
    return InvalidArgument(url + ": larger than " + std::to_string(max_bytes) + " bytes");
  if (rc != 0) return Unavailable("cannot download " + url + ": " + CurlFailure(rc, url));
  if (code != "200" && code != "304")
    return Unavailable("cannot download " + url + ": HTTP " + code);
  return code;
}

}  // namespace

Result<std::string> ViewOf(const std::string& workspace, const std::string& snapshot,
                           const std::string& manifest) {
  std::string view = workspace + "/views/" + snapshot;
  if (!PathExists(view) && !PathExists(view + ".json")) {
    Status s = MakeDirs(workspace + "/views");
    if (s.ok()) s = WriteFileAtomic(view + ".json", manifest, 0644);
    if (!s.ok()) return s;
  }
  return view;
}

Status EnsureView(const std::string& view, const std::string& manifest_file,
                  const std::string& blob_root) {
  if (IsDir(view)) return Status::Ok();
  auto text = ReadFile(manifest_file);
  if (!text.ok())
    return Status(text.status().code(), "the snapshot's manifest: " + text.status().message());
  json manifest = json::parse(*text, nullptr, false);
  if (!manifest.is_array()) return Internal("malformed manifest " + manifest_file);
  std::string tmp = view + ".tmp-" + std::to_string(getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  Status s = MakeDirs(tmp);
  for (const auto& e : manifest) {
    if (!s.ok()) break;
    std::string sha = e.value("sha256", "");
    if (sha.size() < 2) return Internal("malformed manifest " + manifest_file);
    // A blob's one inode cannot be both plain and executable: an executable file gets a copy of its
    // own.
    bool exec = e.value("executable", false);
    std::string to = tmp + "/" + e.value("path", "");
    s = LinkOrCopy(blob_root + "/" + sha.substr(0, 2) + "/" + sha, to, !exec);
    if (s.ok() && exec) chmod(to.c_str(), 0755);
  }
  if (!s.ok()) {
    fs::remove_all(tmp, ec);
    return s;
  }
  ChmodTree(tmp, true);
  if (rename(tmp.c_str(), view.c_str()) != 0) {
    int err = errno;
    ChmodTree(tmp, false);
    fs::remove_all(tmp, ec);
    if (!IsDir(view))
      return Internal("cannot make " + view + ": " + strerror(err));  // else another job made it
  }
  return Status::Ok();
}

Result<std::string> FetchUrl(const std::string& url, const std::string& fallback,
                             long long max_bytes, const DeliveryContext& ctx) {
  if (ctx.workspace.empty() || !IsDir(ctx.workspace)) {
    if (ctx.log) ctx.log("downloading " + url);
    auto code = Curl(url, fallback, max_bytes, {}, ctx);
    if (!code.ok()) return code.status();
    return fallback;
  }
  std::string dir = ctx.workspace + "/cache/http/" + Sha256Hex(url);
  Status s = MakeDirs(dir);
  if (!s.ok()) return s;
  // One job at a time per URL: the others wait for the copy it fetched.
  int lock = open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock < 0) return Internal("cannot lock the cache of " + url);
  while (flock(lock, LOCK_EX) != 0 && errno == EINTR) {
  }
  std::string data = dir + "/data", etag = dir + "/etag", tmp = dir + "/data.part",
              etag_tmp = dir + "/etag.part";
  std::vector<std::string> extra = {"--etag-save", etag_tmp};
  bool cached = PathExists(data);
  if (cached) {
    struct stat st;
    if (stat(etag.c_str(), &st) == 0 && st.st_size > 0)
      extra.insert(extra.end(), {"--etag-compare", etag});
    extra.insert(extra.end(), {"-z", data});
  }
  if (ctx.log)
    ctx.log(std::string(cached ? "revalidating the cached copy of " : "downloading ") + url);
  unlink(tmp.c_str());
  auto code = Curl(url, tmp, max_bytes, extra, ctx);
  Result<std::string> out = data;
  if (!code.ok()) {
    out = code.status();
  } else if (*code == "304" || (cached && !PathExists(tmp))) {
    if (ctx.log) ctx.log("cache hit: " + url + " has not changed");
  } else if (rename(tmp.c_str(), data.c_str()) != 0) {
    out = Internal("cannot keep the download of " + url + ": " + strerror(errno));
  } else {
    rename(etag_tmp.c_str(), etag.c_str());
    chmod(data.c_str(), 0444);
    if (ctx.log) ctx.log(std::string(cached ? "cache refreshed: " : "cached: ") + url);
  }
  unlink(tmp.c_str());
  unlink(etag_tmp.c_str());
  close(lock);
  return out;
}

Status EvaluateMlTable(const std::string& folder, const std::string& dir, bool link,
                       const DeliveryContext& ctx) {
  std::string file = folder + "/MLTable";
  auto text = ReadFile(file, 1 << 20);
  if (!text.ok()) return NotFound("no MLTable file in " + folder);
  spec::Diagnostics d;
  auto root = spec::ParseYaml(*text, file, d);
  if (!root) return InvalidArgument(d.ToString());
  const spec::YNode* paths = root->IsMap() ? root->Get("paths") : nullptr;
  if (!paths || !paths->IsSeq())
    return InvalidArgument(file + ": expected 'paths', a list of {file|folder|pattern: <path>}");
  std::error_code ec;
  for (const auto& p : paths->seq) {
    if (!p.IsMap() || p.map.size() != 1 || !p.map[0].value.IsScalar())
      return InvalidArgument(file + ":" + std::to_string(p.line) +
                             ": expected {file|folder|pattern: <path>}");
    const std::string& key = p.map[0].key;
    std::string value = p.map[0].value.scalar;
    std::string where = file + ":" + std::to_string(p.map[0].value.line) + ": paths." + key;
    if (StartsWith(value, "http://") || StartsWith(value, "https://")) {
      if (key != "file") return InvalidArgument(where + ": a URL can only name a file");
      std::string name = Basename(value.substr(0, value.find('?')));
      auto got = FetchUrl(value, dir + "/" + name, 1LL << 34, ctx);
      if (!got.ok()) return Status(got.status().code(), where + ": " + got.status().message());
      if (*got != dir + "/" + name) {
        Status s = LinkOrCopy(*got, dir + "/" + name, link);
        if (!s.ok()) return s;
      }
      continue;
    }
    if (StartsWith(value, "file:")) value = value.substr(5);
    while (StartsWith(value, "./")) value = value.substr(2);
    if (value.find("..") != std::string::npos || StartsWith(value, "/"))
      return InvalidArgument(where + ": \"" + value + "\" leaves the MLTable's folder");
    std::string abs = folder + "/" + value;
    std::vector<std::string> rels;
    if (key == "file") {
      if (!fs::is_regular_file(abs, ec)) return NotFound(where + ": no such file " + value);
      rels.push_back(value);
    } else if (key == "folder" || key == "pattern") {
      std::string base = key == "folder" ? abs : folder;
      if (key == "folder" && !fs::is_directory(abs, ec))
        return NotFound(where + ": no such folder " + value);
      for (auto it = fs::recursive_directory_iterator(base, ec);
           !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        std::string rel = it->path().lexically_relative(folder).string();
        if (rel == "MLTable") continue;
        if (key == "pattern" && fnmatch(value.c_str(), rel.c_str(), FNM_PATHNAME) != 0 &&
            fnmatch(value.c_str(), rel.c_str(), 0) != 0)
          continue;
        rels.push_back(rel);
      }
      if (rels.empty() && key == "pattern")
        return NotFound(where + ": \"" + value + "\" matches no file");
    } else {
      return InvalidArgument(where + ": expected file, folder or pattern");
    }
    for (const auto& rel : rels) {
      Status s = LinkOrCopy(folder + "/" + rel, dir + "/" + rel, link);
      if (!s.ok()) return s;
    }
  }
  return Status::Ok();
}

Status DeliverInput(const json& item, const std::string& dir, const DeliveryContext& ctx,
                    std::vector<std::string>& read_only) {
  std::string kind = item.value("kind", "");
  std::string mode = item.value("mode", "ro_mount");
  bool evaluate = item.contains("evaluate");
  std::string src;  // a folder or a file on this machine to deliver from
  if (kind == "view") {
    src = item.value("view", "");
    Status s = EnsureView(src, item.value("manifest_file", ""), ctx.blob_root);
    if (!s.ok()) return s;
  } else if (kind == "folder") {
    src = item.value("local", "");
    if (!PathExists(src))
      return NotFound(
          src + " is not there (a folder of the workspace's machine: this node may not see it)");
  } else if (kind == "http") {
    std::string file = dir + "/" + item.value("file_name", "data");
    Status s = MakeDirs(dir);
    if (!s.ok()) return s;
    auto got = FetchUrl(item.value("url", ""), file, item.value("max_bytes", 1LL << 34), ctx);
    if (!got.ok()) return got.status();
    if (*got != file) {
      s = LinkOrCopy(*got, file, mode != "download");
      if (!s.ok()) return s;
    }
    if (mode == "download")
      chmod(file.c_str(), 0644);
    else
      read_only.push_back(dir);
    return Status::Ok();
  } else {
    return InvalidArgument("unknown input kind '" + kind + "'");
  }
  if (mode == "direct") return Status::Ok();  // the command was given the path itself
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (evaluate) {
    Status s = MakeDirs(dir);
    if (s.ok()) s = EvaluateMlTable(src, dir, mode == "eval_mount", ctx);
    if (!s.ok()) return s;
    if (mode == "eval_mount") read_only.push_back(dir);
    return Status::Ok();
  }
  if (mode == "download") {
    // A private, writable copy.
    if (IsDir(src)) {
      Status s = MakeDirs(dir);
      if (s.ok()) s = CopyTree(src, dir);
      if (!s.ok()) return s;
      ChmodTree(dir, false);
    } else {
      Status s = MakeDirs(dir);
      if (s.ok()) s = CopyFile(src, dir + "/" + Basename(src));
      if (!s.ok()) return s;
      chmod((dir + "/" + Basename(src)).c_str(), 0644);
    }
    return Status::Ok();
  }
  // ro_mount: the input is the data itself, read-only for the job (a read-only bind mount where the
  // supervisor may make one); nothing is copied.
  Status s = MakeDirs(Dirname(dir));
  if (!s.ok()) return s;
  if (IsDir(src)) {
    if (symlink(src.c_str(), dir.c_str()) != 0)
      return Internal("cannot link " + dir + ": " + strerror(errno));
  } else {
    s = MakeDirs(dir);
    if (!s.ok()) return s;
    std::string to = dir + "/" + Basename(src);
    if (symlink(src.c_str(), to.c_str()) != 0)
      return Internal("cannot link " + to + ": " + strerror(errno));
  }
  read_only.push_back(src);
  return Status::Ok();
}

}  // namespace cairn::compute
