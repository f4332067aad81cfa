// A zip archive written as a stream: entries stored (not compressed), each file read from a
// descriptor in pieces, its CRC-32 computed on the way and given in a data descriptor after it (its
// size, known from the file, in its header already), then the central directory. Limits: under 4
// GiB in all and 65,535 entries (no ZIP64); the caller checks. Not thread-safe: one response owns
// one.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "base/http_server.h"
#include "base/status.h"

namespace cairn::server {

struct ZipEntry {
  std::string name;  // inside the archive
  std::string path;  // what `open` is given
  long long size = 0;
};

class ZipStream {
 public:
  using Opener = std::function<Result<int>(const std::string& path)>;
  ZipStream(std::vector<ZipEntry> entries, Opener open);
  ~ZipStream();
  ZipStream(const ZipStream&) = delete;
  ZipStream& operator=(const ZipStream&) = delete;

  // Writes the next piece; false once the archive is complete or a write failed.
  bool Next(http::DataSink& sink);

  // CRC-32 (IEEE 802.3), continued from `crc` (0 to start).
  static uint32_t Crc32(uint32_t crc, const void* data, size_t n);

 private:
  struct Written {
    uint32_t crc = 0;
    uint32_t size = 0;
    uint32_t offset = 0;
  };
  bool StartEntry(http::DataSink& sink);
  bool FinishEntry(http::DataSink& sink);
  bool Emit(http::DataSink& sink, const std::string& bytes);

  std::vector<ZipEntry> entries_;
  Opener open_;
  std::vector<Written> written_;
  size_t index_ = 0;
  int fd_ = -1;
  uint32_t crc_ = 0;
  uint32_t done_ = 0;    // bytes of the current entry written
  uint32_t offset_ = 0;  // bytes of the archive written
  bool in_entry_ = false;
  bool finished_ = false;
};

}  // namespace cairn::server
