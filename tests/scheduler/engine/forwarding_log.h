// A command log that hands every call to another one: tests derive from it
// and override the one call they change.
#ifndef COMPUTEVOUCHER_TESTS_SCHEDULER_ENGINE_FORWARDING_LOG_H_
#define COMPUTEVOUCHER_TESTS_SCHEDULER_ENGINE_FORWARDING_LOG_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "scheduler/store/command_log.h"

namespace computevoucher::engine {

class ForwardingLog : public store::CommandLog {
 public:
  // `log` must outlive this one.
  explicit ForwardingLog(store::CommandLog& log) : log_(log) {}

  absl::Status Append(const store::Batch& batch) override {
    return log_.Append(batch);
  }
  absl::StatusOr<std::vector<v1::Command>> ReadCommands(int64_t after,
                                                        int limit) override {
    return log_.ReadCommands(after, limit);
  }
  absl::StatusOr<std::vector<v1::JournalEntry>> ReadJournal(
      int64_t after, int limit) override {
    return log_.ReadJournal(after, limit);
  }
  void Recycle(std::vector<v1::JournalEntry> entries) override {
    log_.Recycle(std::move(entries));
  }
  void DropReadCache() override { log_.DropReadCache(); }
  absl::StatusOr<store::Head> ReadHead() override { return log_.ReadHead(); }
  int64_t DefaultBatchRecords() const override {
    return log_.DefaultBatchRecords();
  }
  absl::Status WriteSnapshot(const store::Snapshot& snapshot,
                             int keep) override {
    return log_.WriteSnapshot(snapshot, keep);
  }
  absl::StatusOr<std::vector<int64_t>> ListSnapshots() override {
    return log_.ListSnapshots();
  }
  absl::StatusOr<store::Snapshot> ReadSnapshot(int64_t position) override {
    return log_.ReadSnapshot(position);
  }

 private:
  store::CommandLog& log_;
};

}  // namespace computevoucher::engine

#endif  // COMPUTEVOUCHER_TESTS_SCHEDULER_ENGINE_FORWARDING_LOG_H_
