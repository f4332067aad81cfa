// A directory tree reached only through its root's descriptor. Every path is resolved beneath the
// root by openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) (or, on kernels
// without it, a walk that opens each component with O_NOFOLLOW), so no component of a path may be a
// link and nothing outside the root can be named: there is no check-then-open for a job that swaps
// a file for a link to win. Links inside the tree are listed as links and never followed; removing
// a tree removes links themselves.
//
// Used for every read, write, listing and delete under a run folder or the artifact store.
// Thread-safe (the root descriptor is only read).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace cairn {

// Closes a descriptor when it goes out of scope.
class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd();
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

class Beneath {
 public:
  enum class Type { kFile, kDir, kLink, kOther };
  struct Entry {
    std::string path;  // relative to the directory listed or walked
    Type type;
    long long size;  // regular files only
  };

  // Opens `root`, a path the caller trusts (the workspace's own); fails when it is missing.
  static Result<Beneath> Open(const std::string& root);
  // Opens `root`, creating it (and its parents) first.
  static Result<Beneath> OpenOrCreate(const std::string& root);
  Beneath(Beneath&& o) noexcept : fd_(o.fd_), root_(std::move(o.root_)) { o.fd_ = -1; }
  Beneath& operator=(Beneath&& o) noexcept;
  Beneath(const Beneath&) = delete;
  Beneath& operator=(const Beneath&) = delete;
  ~Beneath();

  // A path relative to a root: '/'-separated parts, none empty, "." or ".." or holding a NUL or a
  // backslash. "" names the root itself. A trailing '/' is allowed.
  static bool IsClean(std::string_view rel);

  // A regular file for reading: its descriptor (the caller closes it). A link, a folder or anything
  // that is not a regular file is refused (NotFound for a missing one, InvalidArgument otherwise).
  Result<int> OpenRead(std::string_view rel) const;
  // A folder's descriptor (O_DIRECTORY).
  Result<int> OpenDir(std::string_view rel) const;
  // Creates the folders of `rel` that are missing (never through a link).
  Status MakeDirs(std::string_view rel, int mode = 0755) const;
  // Creates or opens `rel` for writing (flags as open(2): O_TRUNC, O_APPEND, O_EXCL); its folder
  // must exist.
  Result<int> OpenWrite(std::string_view rel, int flags, int mode = 0644) const;
  Status Rename(std::string_view from, std::string_view to) const;
  // Removes a file, a link or a whole folder; a missing one is not an error.
  Status Remove(std::string_view rel) const;
  // What `rel` is, without following it.
  Result<Entry> Stat(std::string_view rel) const;
  // One folder's entries, sorted by name.
  Result<std::vector<Entry>> List(std::string_view rel) const;
  // Every entry below `rel` (files, links, folders), depth first, sorted; links are not descended.
  Status Walk(std::string_view rel, const std::function<void(const Entry&)>& fn) const;

  const std::string& root() const { return root_; }

 private:
  Beneath(int fd, std::string root) : fd_(fd), root_(std::move(root)) {}
  // openat2 beneath the root (or the O_NOFOLLOW walk).
  int Resolve(std::string_view rel, int flags, int mode = 0) const;
  int fd_ = -1;
  std::string root_;
};

}  // namespace cairn
