#include "scheduler/metrics.h"

#include <algorithm>
#include <exception>
#include <map>
#include <tuple>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/money.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "computevoucher/v1/types.pb.h"
#include "google/protobuf/descriptor.h"
#include "scheduler/core/pricing.h"
#include "scheduler/core/state_machine.h"

namespace computevoucher::scheduler {
namespace {

namespace pb = ::computevoucher::v1;
using ::prometheus::ClientMetric;
using ::prometheus::MetricFamily;
using ::prometheus::MetricType;

// Counts by the number of a state enum's value.
using ByState = absl::btree_map<int, int64_t>;
// Counts by program and the number of a state enum's value.
using ByProgramState = absl::btree_map<std::pair<std::string, int>, int64_t>;
// By (program, enterprise) or (program, provider).
using ByPair = std::map<std::pair<std::string, std::string>, int64_t>;

// The windows of computevoucher_vouchers_expiring*: a voucher whose window
// ends within one counts in it and in every longer one.
struct ExpiryWindow {
  const char* label;
  absl::Duration within;
};
constexpr ExpiryWindow kExpiryWindows[] = {{"7d", absl::Hours(7 * 24)},
                                           {"30d", absl::Hours(30 * 24)}};
constexpr int kExpiryWindowCount =
    sizeof(kExpiryWindows) / sizeof(*kExpiryWindows);

struct Money {
  int64_t cost_fen = 0;
  int64_t subsidy_fen = 0;
  int64_t gpu_ms = 0;
};

// Vouchers whose window ends soon with money on them, and what they have
// available, per window.
struct Expiring {
  int64_t vouchers[kExpiryWindowCount] = {};
  int64_t available_fen[kExpiryWindowCount] = {};
};

// What one scrape reads from the state, summed under the read lock.
struct Snapshot {
  std::vector<pb::Program> programs;  // views, with the derived figures
  ByProgramState vouchers, applications;
  ByState allocations, clusters;
  int64_t queue_length = 0;
  absl::Time oldest_queued = absl::InfiniteFuture();
  int64_t idle_allocations = 0;
  // By (program, provider, hardware class).
  std::map<std::tuple<std::string, std::string, int>, Money> money;
  ByPair enterprise_subsidy_fen;
  // Subsidy per hour of the active allocations flagged idle, by (program,
  // provider); zero for every pair that has placed allocations.
  ByPair idle_subsidy_fen_per_hour;
  // Face value issued in `year` (Asia/Shanghai, at the scrape), by
  // (program, enterprise): what counts against the cap.
  int year = 0;
  ByPair cap_used_fen;
  std::map<std::string, Expiring> expiring;  // by program
  // What the _info series name (programs above); providers as views, with
  // payable and paid.
  std::vector<pb::Enterprise> enterprises;
  std::vector<pb::Provider> providers;
  std::vector<pb::Cluster> cluster_infos;
  // GPUs of approved clusters by model: {free, used}.
  std::map<std::string, std::pair<int64_t, int64_t>> gpus;
};

// The subsidy `a` is charged per hour while it runs: its GPUs for an hour
// at its price and ratio.
int64_t SubsidyFenPerHour(const pb::Allocation& a) {
  absl::StatusOr<int64_t> gpu_ms = core::GpuMs(a.gpu_count(), 3600);
  if (!gpu_ms.ok()) return 0;
  absl::StatusOr<int64_t> cost =
      core::CostFen(*gpu_ms, a.price_fen_per_gpu_hour());
  if (!cost.ok()) return 0;
  return core::SubsidyFen(*cost, a.ratio_bp()).value_or(0);
}

// Vouchers by program and state, the face value counting against this
// year's caps, and those about to end with money on them, counted as
// `voucherctl admin report expiring` lists them (reports::ExpiringVouchers:
// active or suspended, with money available or held, the window ending by
// the horizon). They are found through the expiry index, which holds the
// active and suspended ones by end, so a scrape reads only them.
void SummarizeVouchers(const core::StateMachine& state, absl::Time now,
                       Snapshot& s) {
  s.year = ShanghaiYear(now);
  for (const auto& [id, rec] : state.vouchers()) {
    ++s.vouchers[{rec.voucher.program_id(), rec.voucher.state()}];
  }
  for (const auto& [key, sums] : state.retired_vouchers()) {
    s.vouchers[{std::get<0>(key), std::get<3>(key)}] += sums.vouchers;
  }
  s.cap_used_fen = state.voucher_book().IssuedInYearByEnterprise(s.year);
  const absl::Time last = now + kExpiryWindows[kExpiryWindowCount - 1].within;
  for (const auto& [until, id] : state.voucher_book().state().expiry_index) {
    if (until > last) break;
    const pb::Voucher& v = state.vouchers().at(id).voucher;
    const int64_t available = state.voucher_book().Available(id);
    if ((v.state() != pb::VOUCHER_STATE_ACTIVE &&
         v.state() != pb::VOUCHER_STATE_SUSPENDED) ||
        (available == 0 && v.held_fen() == 0)) {
      continue;
    }
    Expiring& e = s.expiring[v.program_id()];
    for (int i = 0; i < kExpiryWindowCount; ++i) {
      if (until > now + kExpiryWindows[i].within) continue;
      ++e.vouchers[i];
      e.available_fen[i] += available;
    }
  }
}

// Allocations by state, the queue, and the money and GPU time of usage.
void SummarizeAllocations(const core::StateMachine& state, absl::Time now,
                          Snapshot& s) {
  for (const auto& [id, rec] : state.allocations()) {
    const pb::Allocation& a = rec.allocation;
    ++s.allocations[a.state()];
    if (a.state() == pb::ALLOCATION_STATE_PENDING) {
      ++s.queue_length;
      s.oldest_queued =
          std::min(s.oldest_queued,
                   FromProto("created_at", a.created_at()).value_or(now));
    }
    const bool idle = a.idle() && core::IsActive(a);
    if (idle) ++s.idle_allocations;
    if (a.provider_id().empty()) continue;  // never placed: no usage
    s.idle_subsidy_fen_per_hour[{a.program_id(), a.provider_id()}] +=
        idle ? SubsidyFenPerHour(a) : 0;
    Money& money =
        s.money[{a.program_id(), a.provider_id(), a.hardware_class()}];
    money.cost_fen +=
        core::CostFen(a.used_gpu_ms(), a.price_fen_per_gpu_hour()).value_or(0);
    money.subsidy_fen += a.charged_fen();
    money.gpu_ms += a.used_gpu_ms();
    s.enterprise_subsidy_fen[{a.program_id(), a.enterprise_id()}] +=
        a.charged_fen();
  }
  // Retired allocations ended long ago: counted, and their money added.
  for (const auto& [key, sums] : state.retired()) {
    const auto& [program, enterprise, provider, hardware] = key;
    s.allocations[pb::ALLOCATION_STATE_ENDED] += sums.allocations;
    if (provider.empty()) continue;
    s.idle_subsidy_fen_per_hour.try_emplace({program, provider}, 0);
    Money& money = s.money[{program, provider, hardware}];
    money.cost_fen += sums.cost_fen;
    money.subsidy_fen += sums.charged_fen;
    money.gpu_ms += sums.used_gpu_ms;
    s.enterprise_subsidy_fen[{program, enterprise}] += sums.charged_fen;
  }
}

Snapshot Summarize(const core::StateMachine& state, absl::Time now) {
  Snapshot s;
  for (const auto& [id, program] : state.programs()) {
    absl::StatusOr<pb::Program> view = state.ProgramView(id);
    if (view.ok()) s.programs.push_back(*std::move(view));
  }
  SummarizeVouchers(state, now, s);
  for (const auto& [id, application] : state.applications()) {
    ++s.applications[{application.program_id(), application.state()}];
  }
  SummarizeAllocations(state, now, s);
  for (const auto& [id, e] : state.enterprises()) s.enterprises.push_back(e);
  for (const auto& [id, p] : state.providers()) {
    absl::StatusOr<pb::Provider> view = state.ProviderView(id);
    if (view.ok()) s.providers.push_back(*std::move(view));
  }
  for (const auto& [id, rec] : state.clusters()) {
    ++s.clusters[rec.cluster.state()];
    s.cluster_infos.push_back(rec.cluster);
    if (rec.cluster.state() != pb::CLUSTER_STATE_APPROVED) continue;
    for (const pb::GpuModel& model : rec.cluster.inventory()) {
      auto used = rec.used_gpus.find(model.model());
      const int64_t in_use = used == rec.used_gpus.end() ? 0 : used->second;
      auto& [free, busy] = s.gpus[model.model()];
      free += std::max<int64_t>(0, model.gpu_count() - in_use);
      busy += in_use;
    }
  }
  return s;
}

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void Add(MetricFamily& family, std::vector<ClientMetric::Label> labels,
         double value) {
  ClientMetric metric;
  metric.label = std::move(labels);
  if (family.type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
}

MetricFamily Gauge(std::string name, std::string help, double value) {
  MetricFamily family =
      Family(std::move(name), std::move(help), MetricType::Gauge);
  Add(family, {}, value);
  return family;
}

// The label value of an enum value: its name without `prefix`, in lower
// case (VOUCHER_STATE_ACTIVE -> active).
std::string EnumLabel(const google::protobuf::EnumDescriptor& type, int number,
                      absl::string_view prefix) {
  const google::protobuf::EnumValueDescriptor* value =
      type.FindValueByNumber(number);
  if (value == nullptr) return absl::StrCat(number);
  return absl::AsciiStrToLower(absl::StripPrefix(value->name(), prefix));
}

// One series per value of a state enum (every value but UNSPECIFIED) into
// `family`, labelled `labels` and `state`, valued `count(number)`.
void AddStates(MetricFamily& family,
               const std::vector<ClientMetric::Label>& labels,
               const google::protobuf::EnumDescriptor& type,
               absl::string_view prefix,
               absl::FunctionRef<int64_t(int)> count) {
  for (int i = 0; i < type.value_count(); ++i) {
    const int number = type.value(i)->number();
    if (number == 0) continue;
    std::vector<ClientMetric::Label> with_state = labels;
    with_state.push_back({"state", EnumLabel(type, number, prefix)});
    Add(family, std::move(with_state), static_cast<double>(count(number)));
  }
}

// One gauge per value of a state enum, zero when nothing is in it,
// labelled `state`.
MetricFamily ByStateGauge(std::string name, std::string help,
                          const google::protobuf::EnumDescriptor& type,
                          absl::string_view prefix, const ByState& counts) {
  MetricFamily family =
      Family(std::move(name), std::move(help), MetricType::Gauge);
  AddStates(family, {}, type, prefix, [&counts](int number) -> int64_t {
    auto it = counts.find(number);
    return it == counts.end() ? 0 : it->second;
  });
  return family;
}

// The same per program of `programs`, labelled `program_id` and `state`.
MetricFamily ByProgramStateGauge(std::string name, std::string help,
                                 const google::protobuf::EnumDescriptor& type,
                                 absl::string_view prefix,
                                 const std::vector<pb::Program>& programs,
                                 const ByProgramState& counts) {
  MetricFamily family =
      Family(std::move(name), std::move(help), MetricType::Gauge);
  for (const pb::Program& program : programs) {
    const std::string& id = program.program_id();
    AddStates(family, {{"program_id", id}}, type, prefix,
              [&counts, &id](int number) -> int64_t {
                auto it = counts.find({id, number});
                return it == counts.end() ? 0 : it->second;
              });
  }
  return family;
}

std::string HardwareClassLabel(int hardware_class) {
  return EnumLabel(*pb::HardwareClass_descriptor(), hardware_class,
                   "HARDWARE_CLASS_");
}

const prometheus::Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
  return *kBuckets;
}

// From a commit that only reaches the page cache to one stuck on a slow
// disk.
const prometheus::Histogram::BucketBoundaries& CommitBuckets() {
  static const auto* const kBuckets =
      new prometheus::Histogram::BucketBoundaries{
          0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
          0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5};
  return *kBuckets;
}

}  // namespace

WriterMetrics::WriterMetrics(prometheus::Registry& registry)
    : batch_commands_(prometheus::BuildHistogram()
                          .Name("computevoucher_writer_batch_commands")
                          .Help("Commands per batch the writer committed.")
                          .Register(registry)
                          .Add({}, BatchBuckets())),
      commit_seconds_(prometheus::BuildHistogram()
                          .Name("computevoucher_writer_commit_seconds")
                          .Help("Time to commit one batch, including fsync, "
                                "in seconds.")
                          .Register(registry)
                          .Add({}, CommitBuckets())) {}

std::function<void(int64_t, absl::Duration)> WriterMetrics::OnCommit() {
  return [this](int64_t commands, absl::Duration commit) {
    batch_commands_.Observe(static_cast<double>(commands));
    commit_seconds_.Observe(absl::ToDoubleSeconds(commit));
  };
}

namespace {

// The program gauges: budget, unissued, issued, held, charged, returned,
// and the per-enterprise cap.
void AddProgramFamilies(const Snapshot& s, std::vector<MetricFamily>& out) {
  struct ProgramGauge {
    const char* name;
    const char* help;
    int64_t (pb::Program::*field)() const;
  };
  static constexpr ProgramGauge kProgramGauges[] = {
      {"computevoucher_program_budget_fen", "Program budget, in fen.",
       &pb::Program::budget_fen},
      {"computevoucher_program_unissued_fen",
       "Budget not yet issued as vouchers, in fen.",
       &pb::Program::unissued_fen},
      {"computevoucher_program_issued_fen",
       "Face value issued, net of adjustments, in fen.",
       &pb::Program::issued_fen},
      {"computevoucher_program_held_fen",
       "Held by running allocations, in fen.", &pb::Program::held_fen},
      {"computevoucher_program_charged_fen",
       "Charged to vouchers (subsidy paid to providers), in fen.",
       &pb::Program::charged_fen},
      {"computevoucher_program_returned_fen",
       "Returned to the budget by expired or revoked vouchers, in fen.",
       &pb::Program::returned_fen},
      {"computevoucher_program_enterprise_cap_fen",
       "Most face value issued to one enterprise per calendar year "
       "(Asia/Shanghai), in fen; 0 when there is no cap.",
       &pb::Program::enterprise_cap_fen},
  };
  for (const ProgramGauge& gauge : kProgramGauges) {
    MetricFamily family = Family(gauge.name, gauge.help, MetricType::Gauge);
    for (const pb::Program& program : s.programs) {
      Add(family, {{"program_id", program.program_id()}},
          static_cast<double>((program.*gauge.field)()));
    }
    out.push_back(std::move(family));
  }
}

// What the vouchers of `program` have available: the face value issued,
// less what is held, charged or returned. From the program's totals, so
// that a scrape need not look up every voucher's balance.
absl::StatusOr<int64_t> AvailableFen(const pb::Program& program) {
  ASSIGN_OR_RETURN(int64_t left,
                   CheckedSub(program.issued_fen(), program.held_fen()));
  ASSIGN_OR_RETURN(left, CheckedSub(left, program.charged_fen()));
  return CheckedSub(left, program.returned_fen());
}

// What the budget forecast needs beyond the program gauges: the money
// committed on vouchers but not held, when the program ends, and what
// active vouchers about to end leave unspent.
void AddCommitmentFamilies(const Snapshot& s, std::vector<MetricFamily>& out) {
  MetricFamily available = Family(
      "computevoucher_program_available_fen",
      "Available on its vouchers (issued, not held, charged or returned), in "
      "fen; with the held figure, what is committed but not yet spent.",
      MetricType::Gauge);
  MetricFamily end = Family("computevoucher_program_end_timestamp_seconds",
                            "When the program's validity ends (exclusive), "
                            "in seconds since the Unix epoch.",
                            MetricType::Gauge);
  MetricFamily vouchers =
      Family("computevoucher_vouchers_expiring",
             "Active or suspended vouchers with money available or held "
             "whose window ends within the period `within`.",
             MetricType::Gauge);
  MetricFamily expiring =
      Family("computevoucher_vouchers_expiring_available_fen",
             "Available on the vouchers computevoucher_vouchers_expiring "
             "counts, in fen: what returns to the budget unless it is spent.",
             MetricType::Gauge);
  for (const pb::Program& program : s.programs) {
    const std::string& id = program.program_id();
    const absl::StatusOr<int64_t> fen = AvailableFen(program);
    if (fen.ok()) {
      Add(available, {{"program_id", id}}, static_cast<double>(*fen));
    }
    const absl::StatusOr<absl::Time> until =
        FromProto("valid_until", program.valid_until());
    if (until.ok()) {
      Add(end, {{"program_id", id}},
          static_cast<double>(absl::ToUnixSeconds(*until)));
    }
    auto it = s.expiring.find(id);
    const Expiring e = it == s.expiring.end() ? Expiring{} : it->second;
    for (int i = 0; i < kExpiryWindowCount; ++i) {
      const std::vector<ClientMetric::Label> labels = {
          {"program_id", id}, {"within", kExpiryWindows[i].label}};
      Add(vouchers, labels, static_cast<double>(e.vouchers[i]));
      Add(expiring, labels, static_cast<double>(e.available_fen[i]));
    }
  }
  out.push_back(std::move(available));
  out.push_back(std::move(end));
  out.push_back(std::move(vouchers));
  out.push_back(std::move(expiring));
}

// Each enterprise's use of its annual cap, what providers are owed and
// were paid, and the subsidy idle GPUs are costing.
void AddProgramOfficeFamilies(const Snapshot& s,
                              std::vector<MetricFamily>& out) {
  MetricFamily cap = Family(
      "computevoucher_enterprise_cap_used_fen",
      "Face value issued to the enterprise by the program in this calendar "
      "year (Asia/Shanghai), which counts against the program's "
      "per-enterprise cap, in fen.",
      MetricType::Gauge);
  const std::string year = absl::StrCat(s.year);
  for (const auto& [key, fen] : s.cap_used_fen) {
    Add(cap,
        {{"program_id", key.first},
         {"enterprise_id", key.second},
         {"year", year}},
        static_cast<double>(fen));
  }
  out.push_back(std::move(cap));
  struct ProviderGauge {
    const char* name;
    const char* help;
    int64_t (pb::Provider::*field)() const;
  };
  static constexpr ProviderGauge kProviderGauges[] = {
      {"computevoucher_provider_payable_fen",
       "Subsidy charged to the provider's payable and not yet paid "
       "(SettleProvider), over all programs, in fen.",
       &pb::Provider::payable_fen},
      {"computevoucher_provider_paid_fen",
       "Subsidy paid to the provider (SettleProvider), in fen.",
       &pb::Provider::paid_fen},
  };
  for (const ProviderGauge& gauge : kProviderGauges) {
    MetricFamily family = Family(gauge.name, gauge.help, MetricType::Gauge);
    for (const pb::Provider& provider : s.providers) {
      Add(family, {{"provider_id", provider.provider_id()}},
          static_cast<double>((provider.*gauge.field)()));
    }
    out.push_back(std::move(family));
  }
  MetricFamily idle = Family(
      "computevoucher_idle_subsidy_fen_per_hour",
      "Subsidy per hour that active allocations flagged idle by their agent "
      "are charged at (GPUs x price x ratio), in fen.",
      MetricType::Gauge);
  for (const auto& [key, fen] : s.idle_subsidy_fen_per_hour) {
    Add(idle, {{"program_id", key.first}, {"provider_id", key.second}},
        static_cast<double>(fen));
  }
  out.push_back(std::move(idle));
}

// Vouchers, applications and allocations by state, and the queue.
void AddObjectFamilies(const Snapshot& s, absl::Time now,
                       std::vector<MetricFamily>& out) {
  out.push_back(ByProgramStateGauge("computevoucher_vouchers",
                                    "Vouchers by program and state.",
                                    *pb::VoucherState_descriptor(),
                                    "VOUCHER_STATE_", s.programs, s.vouchers));
  out.push_back(ByProgramStateGauge(
      "computevoucher_applications", "Applications by program and state.",
      *pb::ApplicationState_descriptor(), "APPLICATION_STATE_", s.programs,
      s.applications));
  out.push_back(ByStateGauge(
      "computevoucher_allocations", "Allocations by state.",
      *pb::AllocationState_descriptor(), "ALLOCATION_STATE_", s.allocations));
  out.push_back(Gauge("computevoucher_allocation_queue_length",
                      "Allocations waiting for capacity.",
                      static_cast<double>(s.queue_length)));
  out.push_back(
      Gauge("computevoucher_allocation_queue_oldest_seconds",
            "How long the oldest waiting allocation has waited, in seconds; 0 "
            "when none waits.",
            s.queue_length == 0
                ? 0.0
                : std::max(0.0, absl::ToDoubleSeconds(now - s.oldest_queued))));
  out.push_back(Gauge("computevoucher_idle_allocations",
                      "Active allocations flagged idle by their agent.",
                      static_cast<double>(s.idle_allocations)));
}

// The money and GPU time of accepted usage.
void AddUsageFamilies(const Snapshot& s, std::vector<MetricFamily>& out) {
  MetricFamily cost = Family("computevoucher_usage_cost_fen_total",
                             "Cost of accepted usage at list price, in fen.",
                             MetricType::Counter);
  MetricFamily subsidy =
      Family("computevoucher_subsidy_fen_total",
             "Subsidy charged to vouchers for accepted usage, in fen.",
             MetricType::Counter);
  MetricFamily gpu_seconds =
      Family("computevoucher_usage_gpu_seconds_total",
             "GPU-seconds of accepted usage.", MetricType::Counter);
  for (const auto& [key, money] : s.money) {
    const auto& [program_id, provider_id, hardware_class] = key;
    std::vector<ClientMetric::Label> labels = {
        {"program_id", program_id},
        {"provider_id", provider_id},
        {"hardware_class", HardwareClassLabel(hardware_class)}};
    Add(cost, labels, static_cast<double>(money.cost_fen));
    Add(subsidy, labels, static_cast<double>(money.subsidy_fen));
    Add(gpu_seconds, std::move(labels),
        static_cast<double>(money.gpu_ms) / 1000.0);
  }
  out.push_back(std::move(cost));
  out.push_back(std::move(subsidy));
  out.push_back(std::move(gpu_seconds));
  MetricFamily enterprise =
      Family("computevoucher_enterprise_subsidy_fen_total",
             "Subsidy charged, per enterprise, in fen.", MetricType::Counter);
  for (const auto& [key, fen] : s.enterprise_subsidy_fen) {
    Add(enterprise, {{"program_id", key.first}, {"enterprise_id", key.second}},
        static_cast<double>(fen));
  }
  out.push_back(std::move(enterprise));
}

// Clusters by state, those connected, and their GPUs.
void AddClusterFamilies(const Snapshot& s, absl::Time now,
                        const api::Liveness& liveness,
                        absl::Duration cluster_silence,
                        std::vector<MetricFamily>& out) {
  out.push_back(ByStateGauge("computevoucher_clusters", "Clusters by state.",
                             *pb::ClusterState_descriptor(), "CLUSTER_STATE_",
                             s.clusters));
  int64_t connected = 0;
  for (const pb::Cluster& cluster : s.cluster_infos) {
    const std::string& id = cluster.cluster_id();
    if (liveness.LastBeat(id) != absl::InfinitePast() &&
        liveness.Connected(id, now, cluster_silence)) {
      ++connected;
    }
  }
  out.push_back(
      Gauge("computevoucher_clusters_connected",
            "Clusters whose agent was heard from within the silence period.",
            static_cast<double>(connected)));
  MetricFamily gpus = Family("computevoucher_gpus",
                             "GPUs of approved clusters by model and state.",
                             MetricType::Gauge);
  for (const auto& [model, counts] : s.gpus) {
    Add(gpus, {{"model", model}, {"state", "free"}},
        static_cast<double>(counts.first));
    Add(gpus, {{"model", model}, {"state", "used"}},
        static_cast<double>(counts.second));
  }
  out.push_back(std::move(gpus));
}

// One _info series (value 1) per program, enterprise, provider and
// cluster, whose labels name it, so that dashboards show names through a
// join on the id.
void AddInfoFamilies(const Snapshot& s, std::vector<MetricFamily>& out) {
  MetricFamily programs =
      Family("computevoucher_program_info", "Names of each program (value 1).",
             MetricType::Gauge);
  for (const pb::Program& p : s.programs) {
    Add(programs,
        {{"program_id", p.program_id()},
         {"name", p.name()},
         {"issuer", p.issuer()}},
        1.0);
  }
  out.push_back(std::move(programs));
  MetricFamily enterprises =
      Family("computevoucher_enterprise_info",
             "Name, credit code, category, district and SME status of each "
             "enterprise (value 1).",
             MetricType::Gauge);
  for (const pb::Enterprise& e : s.enterprises) {
    Add(enterprises,
        {{"enterprise_id", e.enterprise_id()},
         {"name", e.name()},
         {"credit_code", e.credit_code()},
         {"category", e.category()},
         {"district", e.district()},
         {"sme", e.sme() ? "true" : "false"}},
        1.0);
  }
  out.push_back(std::move(enterprises));
  MetricFamily providers = Family("computevoucher_provider_info",
                                  "Name and credit code of each provider "
                                  "(value 1).",
                                  MetricType::Gauge);
  for (const pb::Provider& p : s.providers) {
    Add(providers,
        {{"provider_id", p.provider_id()},
         {"name", p.name()},
         {"credit_code", p.credit_code()}},
        1.0);
  }
  out.push_back(std::move(providers));
  MetricFamily clusters = Family("computevoucher_cluster_info",
                                 "Provider, region and state of each cluster "
                                 "(value 1).",
                                 MetricType::Gauge);
  for (const pb::Cluster& c : s.cluster_infos) {
    Add(clusters,
        {{"cluster_id", c.cluster_id()},
         {"provider_id", c.provider_id()},
         {"region", c.region()},
         {"state", EnumLabel(*pb::ClusterState_descriptor(), c.state(),
                             "CLUSTER_STATE_")}},
        1.0);
  }
  out.push_back(std::move(clusters));
}

// The snapshots this writer stored: how many, how often the store refused
// one, where the last one is, and what it cost.
void AddSnapshotFamilies(const engine::SnapshotStats& stats,
                         std::vector<MetricFamily>& out) {
  MetricFamily written =
      Family("computevoucher_snapshots_total",
             "Snapshots of the state this writer stored.", MetricType::Counter);
  Add(written, {}, static_cast<double>(stats.snapshots));
  out.push_back(std::move(written));
  MetricFamily failed = Family(
      "computevoucher_snapshot_failures_total",
      "Snapshots the store refused (start-up replays a longer tail until the "
      "next one is stored).",
      MetricType::Counter);
  Add(failed, {}, static_cast<double>(stats.failures));
  out.push_back(std::move(failed));
  out.push_back(Gauge("computevoucher_snapshot_last_command",
                      "Command sequence of the last snapshot stored (0: none "
                      "since this writer started).",
                      static_cast<double>(stats.last)));
  out.push_back(Gauge("computevoucher_snapshot_last_bytes",
                      "Size of the last snapshot stored.",
                      static_cast<double>(stats.last_bytes)));
  out.push_back(Gauge(
      "computevoucher_snapshot_last_save_seconds",
      "How long saving and storing the last one took (off the writer's path).",
      absl::ToDoubleSeconds(stats.last_save + stats.last_store)));
  out.push_back(Gauge("computevoucher_snapshot_behind_commands",
                      "Committed commands the snapshotter's copy of the state "
                      "has not applied yet.",
                      static_cast<double>(stats.behind)));
}

// Whether the writer's store fails, and how often it did.
void AddWriterFamilies(const engine::Writer& writer,
                       std::vector<MetricFamily>& out) {
  out.push_back(Gauge("computevoucher_writer_failed",
                      "1 once the store has failed for good (restart the "
                      "scheduler), 0 otherwise.",
                      writer.failed() ? 1.0 : 0.0));
  const engine::WriterStats stats = writer.stats();
  out.push_back(Gauge("computevoucher_writer_failing",
                      "1 while the store's commits fail (every mutation is "
                      "answered UNAVAILABLE; e.g. a full disk), 0 otherwise.",
                      writer.degraded() ? 1.0 : 0.0));
  MetricFamily failures =
      Family("computevoucher_writer_store_failures_total",
             "Batches the store failed to commit since this writer started.",
             MetricType::Counter);
  Add(failures, {}, static_cast<double>(stats.store_failures));
  out.push_back(std::move(failures));
  AddSnapshotFamilies(stats.snapshots, out);
}

}  // namespace

std::vector<MetricFamily> StateCollector::Collect() const {
  const absl::Time now = clock_.Now();
  const absl::StatusOr<std::shared_ptr<engine::Writer>> writer =
      replica_.writer();
  std::vector<MetricFamily> out;
  out.push_back(Gauge("computevoucher_scheduler_leader",
                      "1 while this scheduler replica leads (holds the "
                      "store's lease and serves), 0 while it follows.",
                      writer.ok() ? 1.0 : 0.0));
  if (!writer.ok()) return out;
  const Snapshot s = (*writer)->Read(
      [now](const core::StateMachine& state) { return Summarize(state, now); });
  AddProgramFamilies(s, out);
  AddCommitmentFamilies(s, out);
  AddProgramOfficeFamilies(s, out);
  AddObjectFamilies(s, now, out);
  AddUsageFamilies(s, out);
  AddClusterFamilies(s, now, liveness_, cluster_silence_, out);
  AddInfoFamilies(s, out);
  AddWriterFamilies(**writer, out);
  return out;
}

absl::StatusOr<std::unique_ptr<prometheus::Exposer>> ServeMetrics(
    const std::string& address,
    const std::vector<std::shared_ptr<prometheus::Collectable>>& collectables) {
  std::unique_ptr<prometheus::Exposer> exposer;
  // civetweb reports a failure to listen by throwing; keep it inside.
  try {
    exposer = std::make_unique<prometheus::Exposer>(address);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "metrics_address: cannot listen on ", address, ": ", e.what()));
  }
  for (const auto& collectable : collectables) {
    exposer->RegisterCollectable(collectable);
  }
  return exposer;
}

int MetricsPort(const prometheus::Exposer& exposer) {
  const std::vector<int> ports = exposer.GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

}  // namespace computevoucher::scheduler
