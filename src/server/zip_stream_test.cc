#include "server/zip_stream.h"

#include <unistd.h>

#include <gtest/gtest.h>

namespace cairn::server {
namespace {

TEST(ZipStream, Crc32IsTheIeeeOneAndContinues) {
  EXPECT_EQ(ZipStream::Crc32(0, "123456789", 9), 0xCBF43926u);
  EXPECT_EQ(ZipStream::Crc32(ZipStream::Crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
  EXPECT_EQ(ZipStream::Crc32(0, "", 0), 0u);
}

TEST(ZipStream, WritesEntriesThenTheCentralDirectoryAndAMissingFileAsEmpty) {
  std::string out;
  http::DataSink sink([&](const char* d, size_t n) {
    out.append(d, n);
    return true;
  });
  std::vector<ZipEntry> entries = {{"d/a.txt", "a", 5}, {"d/gone.txt", "gone", 7}};
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  ASSERT_EQ(write(pipefd[1], "hello", 5), 5);
  close(pipefd[1]);
  ZipStream z(entries, [&](const std::string& p) -> Result<int> {
    if (p == "a") return pipefd[0];
    return NotFound("gone");
  });
  int calls = 0;
  while (z.Next(sink) && ++calls < 100) {
  }
  ASSERT_LT(calls, 100);
  EXPECT_EQ(out.substr(0, 4), std::string("PK\x03\x04", 4));
  EXPECT_NE(out.find("d/a.txt"), std::string::npos);
  EXPECT_NE(out.find("hello"), std::string::npos);
  // The end record: 2 entries, and the central directory where it says.
  size_t eocd = out.rfind(std::string("PK\x05\x06", 4));
  ASSERT_NE(eocd, std::string::npos);
  auto u16 = [&](size_t at) {
    return static_cast<unsigned>(static_cast<unsigned char>(out[at]) |
                                 static_cast<unsigned char>(out[at + 1]) << 8);
  };
  auto u32 = [&](size_t at) { return u16(at) | u16(at + 2) << 16; };
  EXPECT_EQ(u16(eocd + 10), 2u);
  size_t cd = u32(eocd + 16);
  EXPECT_EQ(out.substr(cd, 4), std::string("PK\x01\x02", 4));
  EXPECT_EQ(u32(cd + 16), 0x3610A686u);  // CRC-32 of "hello"
  EXPECT_EQ(u32(cd + 20), 5u);
  EXPECT_EQ(out.size(), eocd + 22);
}

}  // namespace
}  // namespace cairn::server
