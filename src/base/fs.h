// File-system helpers that return Status instead of throwing. Thread-safe.
#pragma once

#include <string>

#include "base/status.h"

namespace cairn {

Result<std::string> ReadFile(const std::string& path, size_t max_bytes = SIZE_MAX);
// Writes to a temporary file beside `path`, fsyncs when `durable`, then renames: readers see the
// old content or the new, never a torn file.
Status WriteFileAtomic(const std::string& path, const std::string& data, int mode = 0644,
                       bool durable = false);
// Writes in place (create or truncate).
Status WriteFile(const std::string& path, const std::string& data, int mode = 0644);
// Appends (creating the file when missing).
Status AppendFile(const std::string& path, const std::string& data);
Status MakeDirs(const std::string& path, int mode = 0755);
// Copies a regular file with its permission bits.
// Everything `fd` gives until its end (a pipe whose writers are gone), retrying interrupted reads.
std::string ReadUntilEof(int fd);
Status CopyFile(const std::string& from, const std::string& to);
// Copies a file or a folder tree (symlinks copied as links).
Status CopyTree(const std::string& from, const std::string& to);
bool PathExists(const std::string& path);
bool IsDir(const std::string& path);
std::string Dirname(const std::string& path);
std::string Basename(const std::string& path);
std::string JoinPath(const std::string& a, const std::string& b);
// Absolute, lexically normalised path; relative ones are taken from `base` (or the cwd when empty).
std::string AbsPath(const std::string& path, const std::string& base = "");
// Whether `path` (normalised) lies inside `root` (normalised).
bool IsWithin(const std::string& path, const std::string& root);

}  // namespace cairn
