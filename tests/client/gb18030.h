// GB18030 decoded to UTF-8 with iconv, independently of voucherctl's
// encoder, for tests that read its CSV back.
#ifndef COMPUTEVOUCHER_TESTS_CLIENT_GB18030_H_
#define COMPUTEVOUCHER_TESTS_CLIENT_GB18030_H_

#include <iconv.h>

#include <string>

#include "gtest/gtest.h"

namespace computevoucher::testing {

inline std::string FromGb18030(const std::string& bytes) {
  iconv_t cd = iconv_open("UTF-8", "GB18030");
  EXPECT_NE(cd, reinterpret_cast<iconv_t>(-1));
  std::string out(bytes.size() * 4 + 16, '\0');
  char* in = const_cast<char*>(bytes.data());
  size_t in_left = bytes.size();
  char* next = out.data();
  size_t room = out.size();
  EXPECT_NE(iconv(cd, &in, &in_left, &next, &room), static_cast<size_t>(-1));
  out.resize(next - out.data());
  iconv_close(cd);
  return out;
}

}  // namespace computevoucher::testing

#endif  // COMPUTEVOUCHER_TESTS_CLIENT_GB18030_H_
