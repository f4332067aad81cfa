#include "server/zip_stream.h"

#include <unistd.h>

#include <array>

namespace cairn::server {

namespace {

void Put16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xff));
  s.push_back(static_cast<char>((v >> 8) & 0xff));
}
void Put32(std::string& s, uint32_t v) {
  Put16(s, v & 0xffff);
  Put16(s, v >> 16);
}

constexpr uint16_t kVersion = 20;  // 2.0: stored entries, folders
constexpr uint16_t kFlags =
    0x0808;  // bit 3: sizes and CRC in a data descriptor too; bit 11: UTF-8 names
constexpr uint16_t kDosTime = 0, kDosDate = (1 << 5) | 1;  // 1980-01-01: files carry no time here

}  // namespace

uint32_t ZipStream::Crc32(uint32_t crc, const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

ZipStream::ZipStream(std::vector<ZipEntry> entries, Opener open)
    : entries_(std::move(entries)), open_(std::move(open)) {}

ZipStream::~ZipStream() {
  if (fd_ >= 0) close(fd_);
}

bool ZipStream::Emit(http::DataSink& sink, const std::string& bytes) {
  offset_ += static_cast<uint32_t>(bytes.size());
  return sink.write(bytes.data(), bytes.size());
}

bool ZipStream::StartEntry(http::DataSink& sink) {
  const ZipEntry& e = entries_[index_];
  auto fd = open_(e.path);
  fd_ =
      fd.ok() ? *fd : -1;  // a file gone since the listing is an empty entry, not a broken archive
  crc_ = 0;
  done_ = 0;
  written_.push_back({0, 0, offset_});
  std::string h;
  Put32(h, 0x04034b50);
  Put16(h, kVersion);
  Put16(h, kFlags);
  Put16(h, 0);  // stored
  Put16(h, kDosTime);
  Put16(h, kDosDate);
  Put32(h, 0);  // CRC: in the data descriptor
  Put32(h, fd_ >= 0 ? static_cast<uint32_t>(e.size) : 0);
  Put32(h, fd_ >= 0 ? static_cast<uint32_t>(e.size) : 0);
  Put16(h, static_cast<uint32_t>(e.name.size()));
  Put16(h, 0);
  h += e.name;
  in_entry_ = true;
  return Emit(sink, h);
}

bool ZipStream::FinishEntry(http::DataSink& sink) {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  Written& w = written_.back();
  w.crc = crc_;
  w.size = done_;
  std::string d;
  Put32(d, 0x08074b50);
  Put32(d, crc_);
  Put32(d, done_);
  Put32(d, done_);
  in_entry_ = false;
  ++index_;
  return Emit(sink, d);
}

bool ZipStream::Next(http::DataSink& sink) {
  if (finished_) return false;
  if (!in_entry_ && index_ < entries_.size()) return StartEntry(sink);
  if (in_entry_) {
    const uint32_t want = fd_ >= 0 ? static_cast<uint32_t>(entries_[index_].size) : 0;
    if (done_ < want) {
      // A file that grew since it was listed is cut at its listed size; one that shrank ends early.
      char buf[1 << 16];
      size_t n = std::min<size_t>(sizeof buf, want - done_);
      ssize_t got = read(fd_, buf, n);
      if (got > 0) {
        crc_ = Crc32(crc_, buf, static_cast<size_t>(got));
        done_ += static_cast<uint32_t>(got);
        offset_ += static_cast<uint32_t>(got);
        return sink.write(buf, static_cast<size_t>(got));
      }
    }
    return FinishEntry(sink);
  }
  // The central directory and its end record.
  std::string c;
  const uint32_t start = offset_;
  for (size_t i = 0; i < entries_.size(); ++i) {
    const ZipEntry& e = entries_[i];
    const Written& w = written_[i];
    Put32(c, 0x02014b50);
    Put16(c, (3 << 8) | kVersion);  // made by Unix
    Put16(c, kVersion);
    Put16(c, kFlags);
    Put16(c, 0);
    Put16(c, kDosTime);
    Put16(c, kDosDate);
    Put32(c, w.crc);
    Put32(c, w.size);
    Put32(c, w.size);
    Put16(c, static_cast<uint32_t>(e.name.size()));
    Put16(c, 0);
    Put16(c, 0);
    Put16(c, 0);
    Put16(c, 0);
    Put32(c, 0100644u << 16);  // a regular file, rw-r--r--
    Put32(c, w.offset);
    c += e.name;
  }
  const uint32_t size = static_cast<uint32_t>(c.size());
  Put32(c, 0x06054b50);
  Put16(c, 0);
  Put16(c, 0);
  Put16(c, static_cast<uint32_t>(entries_.size()));
  Put16(c, static_cast<uint32_t>(entries_.size()));
  Put32(c, size);
  Put32(c, start);
  Put16(c, 0);
  finished_ = true;
  Emit(sink, c);
  return false;
}

}  // namespace cairn::server
