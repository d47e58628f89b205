// The build's version: the project's version (CMakeLists.txt) and the git
// revision it was built from, as --version prints them and the
// *_build_info metrics label them.
#ifndef COMPUTEVOUCHER_COMMON_VERSION_H_
#define COMPUTEVOUCHER_COMMON_VERSION_H_

#include <string>

namespace computevoucher {

// "0.17.0".
const char* Version();
// The short git revision, with "-modified" when the tree had uncommitted
// changes; "unknown" when built outside a git checkout.
const char* Revision();
// "voucher-scheduler 0.17.0 (git 0123456789ab)".
std::string VersionLine(const std::string& program);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_VERSION_H_
