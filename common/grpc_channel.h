// How voucherctl and voucher-agent reach the scheduler: one set of rules
// for TLS credentials and channels, shared by both clients.
#ifndef COMPUTEVOUCHER_COMMON_GRPC_CHANNEL_H_
#define COMPUTEVOUCHER_COMMON_GRPC_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "computevoucher/v1/config.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/security/credentials.h"

namespace computevoucher {

// Credentials from `tls`: plaintext when it names no file; otherwise TLS,
// verifying the scheduler with ca_file (the system's roots when only a
// client certificate is given), and mutual TLS when cert_file and key_file
// are given, which come together. The files are read here, once.
// InvalidArgument names the setting (tls.cert_file, tls.key_file,
// tls.ca_file) and the file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> SchedulerCredentials(
    const computevoucher::v1::TlsConfig& tls);

// A channel toward the scheduler replica at `address` ("host:port"). Each
// has a subchannel pool of its own, so that switching back to a replica
// dials it afresh instead of inheriting the backoff of an earlier failure,
// and reconnects within 2 s of the scheduler coming back.
std::shared_ptr<grpc::Channel> NewSchedulerChannel(
    const std::string& address,
    const std::shared_ptr<grpc::ChannelCredentials>& credentials);

}  // namespace computevoucher

#endif  // COMPUTEVOUCHER_COMMON_GRPC_CHANNEL_H_
