#include "common/version.h"

#include "absl/strings/str_cat.h"
#include "version_info.h"  // generated into the build directory

namespace computevoucher {

const char* Version() { return CV_VERSION; }

const char* Revision() { return CV_REVISION; }

std::string VersionLine(const std::string& program) {
  return absl::StrCat(program, " ", Version(), " (git ", Revision(), ")");
}

}  // namespace computevoucher
