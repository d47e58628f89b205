// The agent's usage: GPU samples (utilisation, idleness, deadlines),
// records cut into the spool, and the spool drained to the scheduler until
// every record is acknowledged.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/agent.h"
#include "agent/internal/agent_state.h"
#include "common/time_util.h"
#include "common/validate.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"

namespace computevoucher::agent {
namespace {

using internal::DeadlineOf;
using internal::kMinBackoff;
using internal::RequestId;

constexpr size_t kMaxRecordsPerReport = 1000;

}  // namespace

void Agent::Sample(absl::Time now) {
  absl::flat_hash_map<int, GpuReading> readings;
  for (const GpuSlot& slot : gpus_->slots()) {
    absl::StatusOr<GpuReading> reading = gpus_->Read(slot.index, now);
    if (!reading.ok()) {
      Refuse(absl::StrCat("gpu-", slot.index),
             absl::StrCat("cannot read GPU ", slot.index, ": ",
                          reading.status().message()));
      continue;
    }
    if (metrics_ != nullptr) {
      const prometheus::Labels labels{{"gpu_index", absl::StrCat(slot.index)},
                                      {"model", slot.model}};
      metrics_->utilization.Add(labels).Set(reading->utilization_bp / 1e4);
      metrics_->memory.Add(labels).Set(
          static_cast<double>(reading->memory_used_bytes));
      if (reading->energy_supported) {
        auto [it, fresh] =
            metrics_->energy_seen.emplace(slot.index, reading->energy_mj);
        if (!fresh && reading->energy_mj >= it->second) {
          metrics_->energy.Add(labels).Increment(
              static_cast<double>(reading->energy_mj - it->second) / 1e3);
        }
        it->second = reading->energy_mj;
      }
    }
    readings.emplace(slot.index, *std::move(reading));
  }
  for (auto& [id, rp] : running_) {
    Running& r = *rp;
    if (r.stop_at) continue;
    Observe(r, now);
    if (r.stop_at || !r.started) continue;
    const absl::Time deadline = DeadlineOf(r.desired);
    if (now >= deadline) {
      r.stopped_at_deadline = true;
      BeginStop(r, deadline, "it reached its deadline");
      continue;
    }
    const std::optional<int32_t> util_bp =
        r.meter.AddReadings(r.gpu_indices, readings);
    if (!util_bp) continue;
    // The runtime, where it can tell (a Slurm job running no step of the
    // tenant's), decides; otherwise the GPUs' utilisation does.
    const bool idle_now =
        r.busy ? !*r.busy : *util_bp < config_.idle_threshold_bp();
    switch (r.idle.Observe(idle_now, now)) {
      case IdleTracker::Change::kBecameIdle:
        Log(absl::StrCat(
            id, ": idle: ",
            r.busy ? "no step of the tenant's has run on its GPUs"
                   : absl::StrCat("its GPUs have been under ",
                                  config_.idle_threshold_bp() / 100.0,
                                  "% utilisation"),
            " for ",
            absl::FormatDuration(absl::Seconds(config_.idle_after_s()))));
        break;
      case IdleTracker::Change::kBusyAgain:
        Log(absl::StrCat(id, ": busy again"));
        break;
      case IdleTracker::Change::kNone:
        break;
    }
  }
}

void Agent::Cut(absl::Time now, bool all) {
  std::vector<pb::UsageRecord> records;
  std::vector<Running*> cut;
  for (auto& [id, rp] : running_) {
    Running& r = *rp;
    if (r.final_spooled || (!all && !r.stop_at)) continue;
    if (!r.stop_at) Observe(r, now);
    // Never past the deadline, even before a sample has seen it pass.
    absl::Time end = std::min(now, DeadlineOf(r.desired));
    if (r.stop_at) end = std::min(end, *r.stop_at);
    // Time before the runtime gave the GPUs is nobody's usage: nothing is
    // cut until then, and metering starts where it gave them (Observe).
    if (!r.started) {
      if (r.stop_at) r.final_spooled = true;
      continue;
    }
    std::optional<Spool::Cursor> cursor = spool_->CursorOf(id);
    std::optional<pb::UsageRecord> record;
    if (cursor) {  // StartAllocation always sets one
      record = r.meter.Record(id, cursor->next_sequence, r.desired.gpu_count(),
                              end, r.evidence);
    }
    if (!record) {
      if (r.stop_at) r.final_spooled = true;
      continue;
    }
    records.push_back(*std::move(record));
    cut.push_back(&r);
  }
  if (records.empty()) return;
  absl::Status appended = spool_->Append(records);
  if (!appended.ok()) {
    // Nothing is lost: the open intervals grow until the spool has room.
    if (!spool_full_logged_) {
      Log(absl::StrCat("cannot spool usage, metering continues in memory: ",
                       appended.message()));
      spool_full_logged_ = true;
    }
    return;
  }
  if (spool_full_logged_) {
    Log("spooling usage again");
    spool_full_logged_ = false;
  }
  for (size_t i = 0; i < cut.size(); ++i) {
    Running& r = *cut[i];
    const absl::Time end = *FromProto("end", records[i].end());
    if (metrics_ != nullptr) {
      metrics_->metered.Add({{"model", r.desired.gpu_model()}})
          .Increment(records[i].gpu_ms() / 1e3);
    }
    r.meter.Advance(end);
    if (r.stop_at && end >= *r.stop_at) r.final_spooled = true;
  }
}

bool Agent::SendUsage(absl::Time now) {
  pb::ReportUsageRequest request;
  request.set_request_id(RequestId(random_));
  for (pb::UsageRecord& u : spool_->Pending(kMaxRecordsPerReport)) {
    *request.add_records() = std::move(u);
  }
  if (request.records().empty()) return false;
  pb::ReportUsageResponse response;
  std::unique_ptr<grpc::ClientContext> context = NewContext();
  const grpc::Status status =
      stub_->ReportUsage(context.get(), request, &response);
  if (!status.ok()) {
    RpcFailed("ReportUsage", status, *context, now);
    return false;
  }
  RpcSucceeded();
  if (response.acks_size() != request.records_size()) {
    Refuse("report-usage", absl::StrCat("ignored a ReportUsage answer with ",
                                        response.acks_size(), " acks for ",
                                        request.records_size(), " records"));
    return false;
  }
  std::vector<std::pair<std::string, int64_t>> done;
  bool retry = false;
  for (int i = 0; i < request.records_size(); ++i) {
    const pb::UsageRecord& u = request.records(i);
    const pb::UsageAck& ack = response.acks(i);
    if (ack.allocation_id() != u.allocation_id() ||
        ack.sequence() != u.sequence()) {
      Refuse("report-usage",
             absl::StrCat("ignored an ack for ", Quoted(ack.allocation_id()),
                          " #", ack.sequence(), " in the place of ",
                          u.allocation_id(), " #", u.sequence()));
      retry = true;
      continue;
    }
    if (metrics_ != nullptr) {
      const std::string result = absl::AsciiStrToLower(absl::StripPrefix(
          pb::UsageResult_Name(ack.result()), "USAGE_RESULT_"));
      metrics_->records.Add({{"result", result}}).Increment();
    }
    switch (ack.result()) {
      case pb::USAGE_RESULT_ACCEPTED:
      case pb::USAGE_RESULT_DUPLICATE:
        done.emplace_back(u.allocation_id(), u.sequence());
        break;
      case pb::USAGE_RESULT_REJECTED:
        Log(absl::StrCat("usage record ", u.allocation_id(), " #", u.sequence(),
                         " refused by the scheduler: ", ack.reason(),
                         "; dropped"));
        done.emplace_back(u.allocation_id(), u.sequence());
        break;
      default:
        Refuse(absl::StrCat("retry-", u.allocation_id()),
               absl::StrCat("usage record ", u.allocation_id(), " #",
                            u.sequence(), " deferred by the scheduler: ",
                            ack.reason(), "; resending later"));
        retry = true;
        break;
    }
    if (ack.stop()) {
      auto it = running_.find(u.allocation_id());
      if (it != running_.end() && !it->second->stop_at) {
        BeginStop(*it->second, absl::InfiniteFuture(),
                  "the scheduler ended it");
      }
    }
  }
  if (absl::Status s = spool_->Acknowledge(done); !s.ok()) {
    Log(absl::StrCat("cannot record acknowledgements in the spool: ",
                     s.message()));
    return false;
  }
  if (retry) {
    // Give the scheduler time before the deferred records go again.
    next_rpc_ = now + std::max(kMinBackoff, heartbeat_interval_ / 2);
    return false;
  }
  return true;
}

}  // namespace computevoucher::agent
