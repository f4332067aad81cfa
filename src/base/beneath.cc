#include "base/beneath.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/fs.h"
#include "base/util.h"

namespace cairn {

namespace {

std::string Clean(std::string_view rel) {
  std::string s(rel);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

bool HaveOpenat2() {
  static const bool have = [] {
    open_how how{};
    how.flags = O_RDONLY | O_CLOEXEC | O_DIRECTORY;
    long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof how);
    if (fd >= 0) close(static_cast<int>(fd));
    return fd >= 0;
  }();
  return have;
}

Beneath::Type TypeOf(mode_t m) {
  if (S_ISREG(m)) return Beneath::Type::kFile;
  if (S_ISDIR(m)) return Beneath::Type::kDir;
  if (S_ISLNK(m)) return Beneath::Type::kLink;
  return Beneath::Type::kOther;
}

Status Errno(const std::string& what, std::string_view rel) {
  int e = errno;
  std::string r(rel);
  if (e == ENOENT) return NotFound(what + " '" + r + "': no such file or folder");
  if (e == ELOOP || e == EXDEV)
    return InvalidArgument(what + " '" + r + "': a link (links are not followed)");
  if (e == ENOTDIR)
    return InvalidArgument(what + " '" + r + "': a part of the path is not a folder");
  if (e == EISDIR) return InvalidArgument(what + " '" + r + "': a folder");
  if (e == ENOSPC) return Unavailable(what + " '" + r + "': no space left on the device");
  return Internal(what + " '" + r + "': " + strerror(e));
}

// Removes every entry of the open folder `dfd` (closing it), never following a link.
bool RemoveContents(int dfd) {
  DIR* d = fdopendir(dfd);
  if (!d) {
    close(dfd);
    return false;
  }
  bool ok = true;
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  for (const auto& n : names) {
    struct stat st;
    if (fstatat(dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(d), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0 || !RemoveContents(sub)) ok = false;
      if (unlinkat(dirfd(d), n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) ok = false;
    } else if (unlinkat(dirfd(d), n.c_str(), 0) != 0 && errno != ENOENT) {
      ok = false;
    }
  }
  closedir(d);
  return ok;
}

}  // namespace

UniqueFd::~UniqueFd() {
  if (fd_ >= 0) close(fd_);
}

Result<Beneath> Beneath::Open(const std::string& root) {
  int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("folder", root);
  return Beneath(fd, root);
}

Result<Beneath> Beneath::OpenOrCreate(const std::string& root) {
  if (Status s = cairn::MakeDirs(root); !s.ok()) return s;
  return Open(root);
}

Beneath& Beneath::operator=(Beneath&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) close(fd_);
    fd_ = o.fd_;
    root_ = std::move(o.root_);
    o.fd_ = -1;
  }
  return *this;
}

Beneath::~Beneath() {
  if (fd_ >= 0) close(fd_);
}

bool Beneath::IsClean(std::string_view rel) {
  std::string s = Clean(rel);
  if (s.empty()) return true;
  if (s[0] == '/') return false;
  for (const auto& part : Split(s, '/'))
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos ||
        part.find('\\') != std::string::npos)
      return false;
  return true;
}

int Beneath::Resolve(std::string_view rel_in, int flags, int mode) const {
  std::string rel = Clean(rel_in);
  if (!IsClean(rel)) {
    errno = EXDEV;
    return -1;
  }
  if (rel.empty()) rel = ".";
  flags |= O_CLOEXEC;
  if (HaveOpenat2()) {
    open_how how{};
    how.flags = static_cast<unsigned long long>(flags);
    how.mode = (flags & O_CREAT) ? static_cast<unsigned long long>(mode) : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd;
    do fd = syscall(SYS_openat2, fd_, rel.c_str(), &how, sizeof how);
    while (fd < 0 && errno == EAGAIN);
    return static_cast<int>(fd);
  }
  // The walk: each folder opened with O_NOFOLLOW from the one before it.
  auto parts = Split(rel, '/');
  int dir = dup(fd_);
  for (size_t i = 0; i + 1 < parts.size() && dir >= 0; ++i) {
    int next = openat(dir, parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int e = errno;
    close(dir);
    errno = e;
    dir = next;
  }
  if (dir < 0) return -1;
  int fd = openat(dir, parts.back().c_str(), flags | O_NOFOLLOW, mode);
  int e = errno;
  close(dir);
  errno = e;
  return fd;
}

Result<int> Beneath::OpenRead(std::string_view rel) const {
  int fd = Resolve(rel, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return Errno("file", rel);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument("file '" + std::string(rel) + "': not a regular file");
  }
  // O_NONBLOCK kept a FIFO from blocking the open; reads of a regular file ignore it, but clear it
  // anyway.
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

Result<int> Beneath::OpenDir(std::string_view rel) const {
  int fd = Resolve(rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd < 0) return Errno("folder", rel);
  return fd;
}

Status Beneath::MakeDirs(std::string_view rel_in, int mode) const {
  std::string rel = Clean(rel_in);
  if (!IsClean(rel)) return InvalidArgument("path '" + rel + "' leaves its folder");
  if (rel.empty()) return Status::Ok();
  std::string at;
  for (const auto& part : Split(rel, '/')) {
    std::string parent = at;
    at = at.empty() ? part : at + "/" + part;
    int pfd = Resolve(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (pfd < 0) return Errno("folder", parent);
    int r = mkdirat(pfd, part.c_str(), static_cast<mode_t>(mode));
    int e = errno;
    close(pfd);
    if (r != 0 && e != EEXIST) {
      errno = e;
      return Errno("folder", at);
    }
  }
  int fd = Resolve(rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);  // what exists must be a real folder
  if (fd < 0) return Errno("folder", rel);
  close(fd);
  return Status::Ok();
}

Result<int> Beneath::OpenWrite(std::string_view rel, int flags, int mode) const {
  if (Clean(rel).empty()) return InvalidArgument("cannot write the folder itself");
  int fd = Resolve(rel, O_WRONLY | O_CREAT | O_NOFOLLOW | flags, mode);
  if (fd < 0) return Errno("file", rel);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument("file '" + std::string(rel) + "': not a regular file");
  }
  return fd;
}

namespace {
// Splits "a/b/c" into the folder "a/b" and the name "c".
std::pair<std::string, std::string> ParentAndName(const std::string& rel) {
  size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}
}  // namespace

Status Beneath::Rename(std::string_view from_in, std::string_view to_in) const {
  std::string from = Clean(from_in), to = Clean(to_in);
  if (from.empty() || to.empty() || !IsClean(from) || !IsClean(to))
    return InvalidArgument("cannot rename '" + from + "'");
  auto [fp, fn] = ParentAndName(from);
  auto [tp, tn] = ParentAndName(to);
  int fd1 = Resolve(fp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd1 < 0) return Errno("folder", fp);
  int fd2 = Resolve(tp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd2 < 0) {
    Status s = Errno("folder", tp);
    close(fd1);
    return s;
  }
  int r = renameat(fd1, fn.c_str(), fd2, tn.c_str());
  Status s = r == 0 ? Status::Ok() : Errno("rename", from);
  close(fd1);
  close(fd2);
  return s;
}

Status Beneath::Remove(std::string_view rel_in) const {
  std::string rel = Clean(rel_in);
  if (!IsClean(rel)) return InvalidArgument("path '" + rel + "' leaves its folder");
  if (rel.empty()) {
    int fd = Resolve("", O_RDONLY | O_DIRECTORY);
    if (fd < 0) return Errno("folder", rel);
    return RemoveContents(fd) ? Status::Ok() : Internal("cannot remove everything in " + root_);
  }
  auto [parent, name] = ParentAndName(rel);
  int pfd = Resolve(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (pfd < 0) {
    if (errno == ENOENT) return Status::Ok();
    return Errno("folder", parent);
  }
  struct stat st;
  Status s = Status::Ok();
  if (fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(pfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0 || !RemoveContents(sub) ||
          (unlinkat(pfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT))
        s = Internal("cannot remove '" + rel + "'");
    } else if (unlinkat(pfd, name.c_str(), 0) != 0 && errno != ENOENT) {
      s = Errno("remove", rel);
    }
  }
  close(pfd);
  return s;
}

Result<Beneath::Entry> Beneath::Stat(std::string_view rel_in) const {
  std::string rel = Clean(rel_in);
  if (!IsClean(rel)) return InvalidArgument("path '" + rel + "' leaves its folder");
  struct stat st;
  if (rel.empty()) {
    if (fstat(fd_, &st) != 0) return Errno("folder", rel);
  } else {
    auto [parent, name] = ParentAndName(rel);
    int pfd = Resolve(parent, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (pfd < 0) return Errno("folder", parent);
    int r = fstatat(pfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW);
    int e = errno;
    close(pfd);
    errno = e;
    if (r != 0) return Errno("file", rel);
  }
  return Entry{rel, TypeOf(st.st_mode),
               S_ISREG(st.st_mode) ? static_cast<long long>(st.st_size) : 0};
}

Result<std::vector<Beneath::Entry>> Beneath::List(std::string_view rel) const {
  int fd = Resolve(rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd < 0) return Errno("folder", rel);
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return Internal("cannot list '" + std::string(rel) + "'");
  }
  std::vector<Entry> out;
  while (dirent* e = readdir(d)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    out.push_back({e->d_name, TypeOf(st.st_mode),
                   S_ISREG(st.st_mode) ? static_cast<long long>(st.st_size) : 0});
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.path < b.path; });
  return out;
}

Status Beneath::Walk(std::string_view rel_in, const std::function<void(const Entry&)>& fn) const {
  std::string base = Clean(rel_in);
  auto top = List(base);
  if (!top.ok()) return top.status();
  // An explicit stack: a tree a job made may be as deep as it likes.
  std::vector<std::pair<std::string, std::vector<Entry>>> stack;
  stack.emplace_back("", std::move(*top));
  std::vector<size_t> at = {0};
  while (!stack.empty()) {
    auto& [prefix, entries] = stack.back();
    size_t& i = at.back();
    if (i >= entries.size()) {
      stack.pop_back();
      at.pop_back();
      continue;
    }
    Entry e = entries[i++];
    e.path = prefix.empty() ? e.path : prefix + "/" + e.path;
    fn(e);
    if (e.type == Type::kDir && stack.size() < 256) {
      auto sub = List(base.empty() ? e.path : base + "/" + e.path);
      if (sub.ok()) {
        std::string p = e.path;
        stack.emplace_back(p, std::move(*sub));
        at.push_back(0);
      }
    }
  }
  return Status::Ok();
}

}  // namespace cairn
