#include "base/fs.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "base/util.h"

namespace cairn {
namespace fs = std::filesystem;

namespace {
Status Errno(const std::string& what, const std::string& path) {
  return Status(errno == ENOENT ? Code::kNotFound : Code::kInternal,
                what + " " + path + ": " + strerror(errno));
}
bool WriteAll(int fd, const std::string& data) {
  const char* p = data.data();
  size_t left = data.size();
  while (left) {
    ssize_t n = write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

Result<std::string> ReadFile(const std::string& path, size_t max_bytes) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open", path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      Status s = Errno("cannot read", path);
      close(fd);
      return s;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_bytes) {
      close(fd);
      return InvalidArgument(path + ": file is larger than " + std::to_string(max_bytes) +
                             " bytes");
    }
  }
  close(fd);
  return out;
}

Status WriteFileAtomic(const std::string& path, const std::string& data, int mode, bool durable) {
  std::string tmp = path + ".tmp." + std::to_string(getpid()) + "." + RandomHex(4);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("cannot create", tmp);
  if (!WriteAll(fd, data)) {
    Status s = Errno("cannot write", tmp);
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  if (durable) fsync(fd);
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    Status s = Errno("cannot rename to", path);
    unlink(tmp.c_str());
    return s;
  }
  return Status::Ok();
}

Status WriteFile(const std::string& path, const std::string& data, int mode) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return Errno("cannot create", path);
  if (!WriteAll(fd, data)) {
    Status s = Errno("cannot write", path);
    close(fd);
    return s;
  }
  close(fd);
  return Status::Ok();
}

Status AppendFile(const std::string& path, const std::string& data) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot open", path);
  bool ok = WriteAll(fd, data);
  Status s = ok ? Status::Ok() : Errno("cannot write", path);
  close(fd);
  return s;
}

Status MakeDirs(const std::string& path, int mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return Internal("cannot create folder " + path + ": " + ec.message());
  (void)mode;
  return Status::Ok();
}

std::string ReadUntilEof(int fd) {
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

Status CopyFile(const std::string& from, const std::string& to) {
  int in = open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Errno("cannot open", from);
  struct stat st;
  fstat(in, &st);
  int out = open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, st.st_mode & 07777);
  if (out < 0) {
    Status s = Errno("cannot create", to);
    close(in);
    return s;
  }
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = copy_file_range(in, nullptr, out, nullptr, static_cast<size_t>(left), 0);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
        n = sendfile(out, in, nullptr, static_cast<size_t>(left));
        if (n > 0) {
          left -= n;
          continue;
        }
      }
      if (n == 0) break;
      Status s = Errno("cannot copy to", to);
      close(in);
      close(out);
      return s;
    }
    left -= n;
  }
  close(in);
  close(out);
  return Status::Ok();
}

Status CopyTree(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy(from, to,
           fs::copy_options::recursive | fs::copy_options::copy_symlinks |
               fs::copy_options::overwrite_existing,
           ec);
  if (ec) return Internal("cannot copy " + from + " to " + to + ": " + ec.message());
  return Status::Ok();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

bool IsDir(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string Dirname(const std::string& path) {
  auto p = fs::path(path).parent_path().string();
  return p.empty() ? "." : p;
}

std::string Basename(const std::string& path) { return fs::path(path).filename().string(); }

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (!b.empty() && b[0] == '/') return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string AbsPath(const std::string& path, const std::string& base) {
  fs::path p(path);
  if (p.is_relative()) p = (base.empty() ? fs::current_path() : fs::path(base)) / p;
  std::string s = p.lexically_normal().string();
  if (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

bool IsWithin(const std::string& path, const std::string& root) {
  std::string p = AbsPath(path), r = AbsPath(root);
  if (p == r) return true;
  if (r == "/") return true;
  return StartsWith(p, r + "/");
}

}  // namespace cairn
