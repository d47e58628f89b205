#include "agent/slurm_runtime.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/internal/slurm_text.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "common/validate.h"

namespace computevoucher::agent {
namespace {

using slurm::Job;
using slurm::Step;

constexpr int64_t kMaxEvidenceChars = 512;

std::string Command(const pb::SlurmRuntimeConfig& c, const char* name) {
  return c.bin_dir().empty() ? name : absl::StrCat(c.bin_dir(), "/", name);
}

// Runs a Slurm client command; a non-zero exit is Unavailable with what it
// printed on stderr (Slurm says "Unable to contact slurm controller" there).
absl::StatusOr<std::string> RunSlurm(const pb::SlurmRuntimeConfig& c,
                                     CommandRunner& runner,
                                     std::vector<std::string> argv) {
  argv[0] = Command(c, argv[0].c_str());
  ASSIGN_OR_RETURN(
      CommandResult r,
      runner.Run(argv, {"SLURM_TIME_FORMAT=%s"},
                 absl::Milliseconds(c.command_timeout_ms())));
  if (r.exit_code != 0) {
    return absl::UnavailableError(absl::StrCat(
        argv[0], " exited with code ", r.exit_code, ": ",
        TruncateUtf8(absl::StripAsciiWhitespace(r.err), 200)));
  }
  return r.out;
}

// Gres type → inventory model, from gres_models and then by name.
absl::StatusOr<std::map<std::string, std::string>> ExplicitModels(
    const pb::SlurmRuntimeConfig& c) {
  std::map<std::string, std::string> models;
  for (const std::string& entry : c.gres_models()) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(entry, absl::MaxSplits('=', 1));
    if (kv.first.empty() || kv.second.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slurm.gres_models: must be TYPE=MODEL, e.g. h100=H100, got ",
          Quoted(entry)));
    }
    models[kv.first] = kv.second;
  }
  return models;
}

std::optional<std::string> ModelOf(
    const std::map<std::string, std::string>& explicit_models,
    const std::vector<std::string>& models, const std::string& type) {
  auto it = explicit_models.find(type);
  if (it != explicit_models.end()) return it->second;
  for (const std::string& m : models) {
    if (absl::EqualsIgnoreCase(m, type)) return m;
  }
  return std::nullopt;
}

absl::StatusOr<std::vector<slurm::Node>> ReadNodes(
    const pb::SlurmRuntimeConfig& c, CommandRunner& runner) {
  ASSIGN_OR_RETURN(std::string out,
                   RunSlurm(c, runner,
                            {"sinfo", "--noheader", "--Node", "--partition",
                             c.partition(), "--Format", slurm::kNodeFormat}));
  return slurm::ParseNodes(out);
}

struct UserIds {
  uid_t uid;
  gid_t gid;
  std::string home;
};

std::optional<UserIds> LookUpUser(const std::string& name) {
  std::vector<char> buffer(16384);
  passwd pw;
  passwd* found = nullptr;
  if (getpwnam_r(name.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 ||
      found == nullptr) {
    return std::nullopt;
  }
  return UserIds{pw.pw_uid, pw.pw_gid, pw.pw_dir != nullptr ? pw.pw_dir : ""};
}

class SlurmRuntime;

class SlurmAllocation final : public RuntimeAllocation {
 public:
  SlurmAllocation(SlurmRuntime& runtime, int64_t job_id, bool batch,
                  std::string access, absl::Time deadline, absl::Time now)
      : runtime_(runtime),
        job_id_(job_id),
        batch_(batch),
        access_(std::move(access)),
        created_at_(now),
        applied_deadline_(deadline) {}
  ~SlurmAllocation() override;

  RuntimeStatus Status(absl::Time now) override;
  std::string Access() const override { return access_; }
  void Extend(absl::Time deadline) override;
  void Stop(absl::Time now, absl::Duration grace) override;
  bool Gone(absl::Time now) override;

 private:
  // Whether the job is no longer on the cluster: ended, or missing from a
  // poll made after this agent took it on.
  bool Finished(const Job* job) const;

  SlurmRuntime& runtime_;
  const int64_t job_id_;
  const bool batch_;
  const std::string access_;
  const absl::Time created_at_;
  absl::Time applied_deadline_;
  std::optional<RuntimeEnd> ended_;
  std::optional<absl::Time> stop_requested_;
  absl::Duration grace_;
  bool term_sent_ = false;
  bool kill_sent_ = false;
};

class SlurmRuntime final : public Runtime {
 public:
  // `explicit_models` is ExplicitModels(config), read once; `models` the
  // inventory's models.
  SlurmRuntime(pb::SlurmRuntimeConfig config, std::string access_template,
               CommandRunner& runner,
               std::map<std::string, std::string> explicit_models,
               std::vector<std::string> models)
      : config_(std::move(config)),
        access_template_(std::move(access_template)),
        runner_(runner),
        explicit_models_(std::move(explicit_models)),
        models_(std::move(models)),
        health_(absl::UnavailableError("slurm: not read yet")) {}

  std::string name() const override { return "slurm"; }
  bool AllocationsOutliveAgent() const override { return true; }

  void Poll(absl::Time now) override {
    if (now < next_poll_) return;
    next_poll_ = now + absl::Milliseconds(config_.poll_interval_ms());
    absl::Status s = Refresh(now);
    if (!s.ok()) {
      health_ = absl::UnavailableError(absl::StrCat("slurm: ", s.message()));
      return;
    }
    health_ = absl::OkStatus();
  }

  absl::Status Health() const override { return health_; }

  std::optional<std::map<std::string, int>> FreeGpus() const override {
    if (!polled_) return std::nullopt;
    return free_;
  }

  absl::StatusOr<std::unique_ptr<RuntimeAllocation>> Start(
      const RuntimeSpec& spec, absl::Time now) override;

  void ForgetOthers(const std::set<std::string>& known,
                    absl::Time now) override {
    if (!health_.ok()) return;
    for (const auto& [job_id, job] : jobs_) {
      const std::string id(
          absl::StripPrefix(job.name, slurm::kJobPrefix));
      if (known.count(id) > 0 || slurm::IsTerminal(job.state) ||
          handled_.count(job_id) > 0 || cancelled_.count(job_id) > 0) {
        continue;
      }
      Log(absl::StrCat("slurm job ", job_id, " (", job.name,
                       ") belongs to no allocation of this agent; cancelling "
                       "it"));
      if (Cancel(job_id, false).ok()) cancelled_.insert(job_id);
    }
  }

  // --- for SlurmAllocation ---
  const Job* FindJob(int64_t job_id) const {
    auto it = jobs_.find(job_id);
    return it == jobs_.end() ? nullptr : &it->second;
  }
  // Whether a poll after `since` succeeded, so that a job missing from it
  // is really gone.
  bool PolledSince(absl::Time since) const {
    return polled_ && last_poll_ok_ > since;
  }
  const std::vector<Step>* StepsOf(int64_t job_id) const {
    auto it = steps_.find(job_id);
    return it == steps_.end() ? nullptr : &it->second;
  }
  std::optional<int> ExitCodeOf(int64_t job_id) {
    absl::StatusOr<std::string> out = RunSlurm(
        config_, runner_,
        {"scontrol", "show", "job", "--oneliner", absl::StrCat(job_id)});
    if (!out.ok()) return std::nullopt;
    return slurm::ParseExitCode(*out);
  }
  absl::Status Cancel(int64_t job_id, bool term_signal) {
    std::vector<std::string> argv = {"scancel"};
    if (term_signal) {
      argv.push_back("--signal=TERM");
      argv.push_back("--full");
    }
    argv.push_back(absl::StrCat(job_id));
    absl::Status s = RunSlurm(config_, runner_, argv).status();
    if (!s.ok()) Log(absl::StrCat("cannot cancel slurm job ", job_id, ": ", s.message()));
    next_poll_ = absl::InfinitePast();
    return s;
  }
  absl::Status SetTimeLimit(int64_t job_id, int64_t minutes) {
    absl::Status s =
        RunSlurm(config_, runner_,
                 {"scontrol", "update", absl::StrCat("JobId=", job_id),
                  absl::StrCat("TimeLimit=", minutes)})
            .status();
    if (!s.ok()) {
      Log(absl::StrCat("cannot extend slurm job ", job_id, ": ", s.message()));
    }
    return s;
  }
  void Release(int64_t job_id) { handled_.erase(job_id); }
  void Log(const std::string& line) const {
    LogLine("voucher-agent", absl::StrCat("slurm: ", line));
    std::fflush(stderr);
  }

 private:
  absl::Status Refresh(absl::Time now) {
    ASSIGN_OR_RETURN(std::string job_text,
                     RunSlurm(config_, runner_,
                              {"squeue", "--noheader", "--states=all",
                               "--partition", config_.partition(), "--format",
                               slurm::kJobFormat}));
    ASSIGN_OR_RETURN(std::vector<Job> jobs, slurm::ParseJobs(job_text));
    ASSIGN_OR_RETURN(std::string step_text,
                     RunSlurm(config_, runner_,
                              {"squeue", "--noheader", "--steps",
                               "--partition", config_.partition(), "--format",
                               slurm::kStepFormat}));
    ASSIGN_OR_RETURN(std::vector<Step> steps, slurm::ParseSteps(step_text));
    ASSIGN_OR_RETURN(std::vector<slurm::Node> nodes,
                     ReadNodes(config_, runner_));
    jobs_.clear();
    for (Job& j : jobs) {
      if (!absl::StartsWith(j.name, slurm::kJobPrefix)) continue;
      jobs_[j.id] = std::move(j);
    }
    steps_.clear();
    for (Step& s : steps) steps_[s.job_id].push_back(std::move(s));
    free_.clear();
    for (const slurm::Node& n : nodes) {
      for (const auto& [type, count] : n.gpus) {
        std::optional<std::string> model =
            ModelOf(explicit_models_, models_, type);
        if (!model) continue;
        types_[*model] = type;
        const int used = n.gpus_used.count(type) ? n.gpus_used.at(type) : 0;
        free_[*model] +=
            slurm::IsUsable(n.state) ? std::max(0, count - used) : 0;
      }
    }
    polled_ = true;
    last_poll_ok_ = now;
    return absl::OkStatus();
  }

  // The Slurm user and account of `d`'s enterprise; FailedPrecondition
  // when it has none on this cluster.
  absl::StatusOr<const pb::SlurmAccountMapping*> AccountOf(
      const pb::DesiredAllocation& d) const;
  // The allocation's job: its live job found again (duplicates cancelled),
  // one that ended while the agent was away (adopted when resumed), or a new
  // submission.
  absl::StatusOr<int64_t> FindOrSubmitJob(
      const RuntimeSpec& spec, const pb::SlurmAccountMapping& account,
      const UserIds& user, const std::string& type, const std::string& log,
      absl::Time now);
  // What the tenant is told to reach the job: the operator's template, or
  // the default for a batch or a holding job.
  std::string AccessOf(const pb::DesiredAllocation& d, int64_t job_id,
                       const pb::SlurmAccountMapping& account,
                       const std::string& log) const;

  // The live jobs named for `id`, oldest first, and the newest ended one.
  absl::Status FindJobsFor(const std::string& id, std::vector<Job>& live,
                           std::optional<Job>& ended) {
    ASSIGN_OR_RETURN(
        std::string text,
        RunSlurm(config_, runner_,
                 {"squeue", "--noheader", "--states=all", "--partition",
                  config_.partition(), "--name",
                  absl::StrCat(slurm::kJobPrefix, id), "--format",
                  slurm::kJobFormat}));
    ASSIGN_OR_RETURN(std::vector<Job> jobs, slurm::ParseJobs(text));
    std::sort(jobs.begin(), jobs.end(),
              [](const Job& a, const Job& b) { return a.id < b.id; });
    for (Job& j : jobs) {
      if (j.name != absl::StrCat(slurm::kJobPrefix, id)) continue;
      if (slurm::IsTerminal(j.state)) {
        ended = j;
      } else {
        live.push_back(j);
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int64_t> Submit(const RuntimeSpec& spec,
                                 const pb::SlurmAccountMapping& account,
                                 const UserIds& user, const std::string& type,
                                 const std::string& log, absl::Time now) {
    const pb::DesiredAllocation& d = spec.desired;
    const bool batch = !d.workload_command().empty();
    const absl::Time deadline =
        FromProto("deadline", d.deadline()).value_or(absl::InfiniteFuture());
    std::vector<std::string> argv = {
        "sbatch",
        "--parsable",
        "--no-requeue",
        absl::StrCat("--job-name=", slurm::kJobPrefix, d.allocation_id()),
        absl::StrCat("--partition=", config_.partition()),
        absl::StrCat("--gpus=", type, ":", d.gpu_count()),
        absl::StrCat("--time=", slurm::TimeLimitMinutes(now, deadline)),
        absl::StrCat("--uid=", user.uid),
        absl::StrCat("--gid=", user.gid),
        absl::StrCat("--chdir=",
                     !user.home.empty() && access(user.home.c_str(), F_OK) == 0
                         ? user.home
                         : "/tmp"),
        absl::StrCat("--output=", batch ? log : "/dev/null"),
        "--open-mode=append",
    };
    if (!account.account().empty()) {
      argv.push_back(absl::StrCat("--account=", account.account()));
    }
    argv.push_back("--wrap");
    argv.push_back(batch ? slurm::ShellQuote({d.workload_command().begin(),
                                              d.workload_command().end()})
                         : "exec sleep infinity");
    ASSIGN_OR_RETURN(std::string out, RunSlurm(config_, runner_, argv));
    int64_t job_id = 0;
    const std::string first(absl::StripAsciiWhitespace(
        out.substr(0, out.find(';'))));
    if (!absl::SimpleAtoi(first, &job_id) || job_id <= 0) {
      return absl::UnavailableError(
          absl::StrCat("sbatch answered ", Quoted(out), " instead of a job id"));
    }
    next_poll_ = absl::InfinitePast();
    return job_id;
  }

  // Creates the batch output file owned by the tenant (the job writes it
  // as that user; the agent's directory need not be the tenant's).
  absl::Status PrepareLog(const std::string& log, const UserIds& user) {
    if (mkdir(config_.batch_log_dir().c_str(), 0755) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("slurm.batch_log_dir: cannot create ",
                       config_.batch_log_dir(), ": ", std::strerror(errno)));
    }
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                        0640);
    if (fd < 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "slurm.batch_log_dir: cannot create ", log, ": ", std::strerror(errno)));
    }
    const bool owned = fchown(fd, user.uid, user.gid) == 0 || getuid() != 0;
    close(fd);
    if (!owned) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot give ", log, " to uid ", user.uid));
    }
    return absl::OkStatus();
  }

  friend class SlurmAllocation;

  const pb::SlurmRuntimeConfig config_;
  const std::string access_template_;
  CommandRunner& runner_;
  // Gres type → model as configured, and the inventory's models, for gres
  // types named like them.
  const std::map<std::string, std::string> explicit_models_;
  const std::vector<std::string> models_;

  absl::Status health_;
  absl::Time next_poll_ = absl::InfinitePast();
  bool polled_ = false;
  absl::Time last_poll_ok_ = absl::InfinitePast();
  std::map<int64_t, Job> jobs_;
  std::map<int64_t, std::vector<Step>> steps_;
  std::map<std::string, int> free_;
  // Gres type of each model, as last read from the nodes.
  std::map<std::string, std::string> types_;
  // Jobs that have a SlurmAllocation, those this agent stopped, and those
  // cancelled as strays.
  std::set<int64_t> handled_;
  std::set<int64_t> stopped_;
  std::set<int64_t> cancelled_;
};

absl::StatusOr<std::unique_ptr<RuntimeAllocation>> SlurmRuntime::Start(
    const RuntimeSpec& spec, absl::Time now) {
  const pb::DesiredAllocation& d = spec.desired;
  const std::string& id = d.allocation_id();
  ASSIGN_OR_RETURN(const pb::SlurmAccountMapping* account, AccountOf(d));
  std::optional<UserIds> user = LookUpUser(account->user());
  if (!user) {
    return absl::FailedPreconditionError(
        absl::StrCat("slurm.accounts: user ", Quoted(account->user()), " of ",
                     d.enterprise_id(), " is unknown on this host"));
  }
  if (!health_.ok()) return health_;
  auto type_it = types_.find(d.gpu_model());
  if (type_it == types_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("slurm: no node of partition ", config_.partition(),
                     " has GPUs of model ", Quoted(d.gpu_model())));
  }
  const std::string type = type_it->second;
  const bool batch = !d.workload_command().empty();
  const std::string log =
      absl::StrCat(config_.batch_log_dir(), "/", id, ".out");
  ASSIGN_OR_RETURN(const int64_t job_id,
                   FindOrSubmitJob(spec, *account, *user, type, log, now));
  handled_.insert(job_id);
  return std::make_unique<SlurmAllocation>(
      *this, job_id, batch, AccessOf(d, job_id, *account, log),
      FromProto("deadline", d.deadline()).value_or(absl::InfiniteFuture()),
      now);
}

absl::StatusOr<const pb::SlurmAccountMapping*> SlurmRuntime::AccountOf(
    const pb::DesiredAllocation& d) const {
  const pb::SlurmAccountMapping* account = nullptr;
  for (const pb::SlurmAccountMapping& m : config_.accounts()) {
    if (m.enterprise_id() == d.enterprise_id()) account = &m;
  }
  if (account == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "enterprise ", Quoted(d.enterprise_id()),
        " has no Slurm user on this cluster; map it with --slurm-account ",
        d.enterprise_id().empty() ? "E-…" : d.enterprise_id(),
        "=USER[:ACCOUNT]"));
  }
  return account;
}

absl::StatusOr<int64_t> SlurmRuntime::FindOrSubmitJob(
    const RuntimeSpec& spec, const pb::SlurmAccountMapping& account,
    const UserIds& user, const std::string& type, const std::string& log,
    absl::Time now) {
  const pb::DesiredAllocation& d = spec.desired;
  const std::string& id = d.allocation_id();
  std::vector<Job> live;
  std::optional<Job> ended;
  RETURN_IF_ERROR(FindJobsFor(id, live, ended));
  int64_t job_id = 0;
  if (!live.empty()) {
    job_id = live.front().id;
    Log(absl::StrCat(id, ": found its job ", job_id, " (", live.front().state,
                     ") again"));
    for (size_t i = 1; i < live.size(); ++i) {
      Log(absl::StrCat(id, ": slurm job ", live[i].id,
                       " duplicates job ", job_id, "; cancelling it"));
      if (Cancel(live[i].id, false).ok()) cancelled_.insert(live[i].id);
    }
  } else if (ended && spec.resumed && handled_.count(ended->id) == 0 &&
             stopped_.count(ended->id) == 0) {
    // It ended while the agent was away: adopted, so that its end is
    // reported with Slurm's end time.
    job_id = ended->id;
    jobs_[job_id] = *ended;
  } else {
    if (!d.workload_command().empty()) RETURN_IF_ERROR(PrepareLog(log, user));
    ASSIGN_OR_RETURN(job_id, Submit(spec, account, user, type, log, now));
    Log(absl::StrCat(id, ": submitted slurm job ", job_id, " as ",
                     account.user(),
                     account.account().empty()
                         ? ""
                         : absl::StrCat(", account ", account.account()),
                     ", --gpus=", type, ":", d.gpu_count()));
  }
  return job_id;
}

std::string SlurmRuntime::AccessOf(const pb::DesiredAllocation& d,
                                   int64_t job_id,
                                   const pb::SlurmAccountMapping& account,
                                   const std::string& log) const {
  const bool batch = !d.workload_command().empty();
  std::string text = access_template_;
  if (text.empty()) {
    text = batch ? "batch job {job_id} on partition {partition} as {user}; "
                   "output in {log}"
                 : "ssh {login_host}, then: srun --jobid={job_id} COMMAND "
                   "(as {user}; the job holds {gpus})";
  }
  return ExpandAccess(
      text, {{"allocation_id", d.allocation_id()},
             {"job_id", absl::StrCat(job_id)},
             {"gpus", absl::StrCat(d.gpu_count(), "x", d.gpu_model())},
             {"user", account.user()},
             {"account", account.account()},
             {"partition", config_.partition()},
             {"log", log},
             {"login_host", config_.login_host().empty()
                                ? std::string("the cluster's login node")
                                : config_.login_host()}});
}

SlurmAllocation::~SlurmAllocation() { runtime_.Release(job_id_); }

RuntimeStatus SlurmAllocation::Status(absl::Time now) {
  RuntimeStatus s;
  const Job* job = runtime_.FindJob(job_id_);
  if (job != nullptr) {
    s.started = job->state != "PENDING" && job->start.has_value() &&
                *job->start <= now;
    if (s.started) s.started_at = *job->start;
    std::string steps;
    int tenant_steps = 0;
    if (const std::vector<Step>* list = runtime_.StepsOf(job_id_)) {
      for (const Step& st : *list) {
        if (st.step == "batch" || st.step == "extern") continue;
        ++tenant_steps;
        absl::StrAppend(&steps, tenant_steps > 1 ? ", " : "", "step ", st.step,
                        " ", Quoted(st.name), " ",
                        absl::ToInt64Seconds(st.elapsed), " s");
      }
    }
    if (!batch_) s.busy = tenant_steps > 0;
    // Step names are the tenant's: cleaned, so that the scheduler never
    // refuses a record for them.
    s.evidence = CleanText(
        absl::StrCat("slurm job ", job_id_, " ", job->state, "; ",
                     tenant_steps, " step", tenant_steps == 1 ? "" : "s",
                     " running", steps.empty() ? "" : ": ", steps),
        kMaxEvidenceChars, TextLines::kOne);
    if (!ended_ && !stop_requested_ && slurm::IsTerminal(job->state)) {
      RuntimeEnd end;
      end.at = job->end.value_or(now);
      // A batch script that ran and exited; a job that failed for any
      // other reason (JobLaunchFailure: its output could not be opened)
      // ended on the cluster.
      if (batch_ && (job->state == "COMPLETED" ||
                     (job->state == "FAILED" &&
                      job->reason == "NonZeroExitCode"))) {
        end.exit_code = runtime_.ExitCodeOf(job_id_).value_or(
            job->state == "COMPLETED" ? 0 : 1);
      }
      end.detail = absl::StrCat("slurm job ", job_id_, " ", job->state,
                                job->reason.empty() || job->reason == "None"
                                    ? ""
                                    : absl::StrCat(" (", job->reason, ")"));
      ended_ = end;
    }
  } else if (!ended_ && !stop_requested_ && Finished(job)) {
    // Known to the runtime before, missing now: Slurm forgot it (a
    // controller started without its state). Nothing after the last
    // record is charged.
    ended_ = RuntimeEnd{absl::InfinitePast(), std::nullopt,
                        absl::StrCat("slurm job ", job_id_,
                                     " is no longer known to Slurm")};
  }
  s.ended = ended_;
  return s;
}

bool SlurmAllocation::Finished(const Job* job) const {
  return job != nullptr ? slurm::IsTerminal(job->state)
                        : runtime_.PolledSince(created_at_);
}

void SlurmAllocation::Extend(absl::Time deadline) {
  if (deadline == applied_deadline_ || stop_requested_ ||
      !runtime_.Health().ok()) {
    return;
  }
  const Job* job = runtime_.FindJob(job_id_);
  const absl::Time from =
      job != nullptr && job->start ? *job->start : absl::Now();
  const int64_t minutes = slurm::TimeLimitMinutes(from, deadline);
  if (runtime_.SetTimeLimit(job_id_, minutes).ok()) {
    applied_deadline_ = deadline;
    runtime_.Log(absl::StrCat("slurm job ", job_id_, ": time limit now ",
                              minutes, " minutes (the allocation was "
                              "extended)"));
  }
}

void SlurmAllocation::Stop(absl::Time now, absl::Duration grace) {
  if (stop_requested_) return;
  stop_requested_ = now;
  grace_ = grace;
  runtime_.stopped_.insert(job_id_);
  Gone(now);
}

bool SlurmAllocation::Gone(absl::Time now) {
  const Job* job = runtime_.FindJob(job_id_);
  if (Finished(job)) return true;
  // Commands wait for a Slurm that answers again (Health), so that a down
  // controller costs one timeout per poll, not one per step.
  if (!stop_requested_ || !runtime_.Health().ok()) return false;
  if (!term_sent_ && !kill_sent_) {
    // A pending job has nothing to signal: it is cancelled at once.
    if (job != nullptr && job->state == "PENDING") {
      kill_sent_ = runtime_.Cancel(job_id_, false).ok();
    } else {
      term_sent_ = runtime_.Cancel(job_id_, true).ok();
    }
  } else if (!kill_sent_ && now >= *stop_requested_ + grace_) {
    kill_sent_ = runtime_.Cancel(job_id_, false).ok();
  }
  return false;
}

}  // namespace

absl::Status NormalizeSlurmConfig(pb::SlurmRuntimeConfig& c) {
  RETURN_IF_ERROR(CheckLength("slurm.partition", c.partition(), 1, 64));
  if (c.command_timeout_ms() == 0) c.set_command_timeout_ms(10'000);
  RETURN_IF_ERROR(CheckRange("slurm.command_timeout_ms",
                             c.command_timeout_ms(), 100, 600'000));
  if (c.poll_interval_ms() == 0) c.set_poll_interval_ms(5'000);
  RETURN_IF_ERROR(CheckRange("slurm.poll_interval_ms", c.poll_interval_ms(),
                             100, 600'000));
  if (c.batch_log_dir().empty()) {
    c.set_batch_log_dir("/var/lib/voucher-agent/batch");
  }
  RETURN_IF_ERROR(ExplicitModels(c).status());
  std::set<std::string> mapped;
  for (const pb::SlurmAccountMapping& m : c.accounts()) {
    RETURN_IF_ERROR(CheckIdRef("slurm.accounts.enterprise_id", m.enterprise_id()));
    RETURN_IF_ERROR(CheckLength("slurm.accounts.user", m.user(), 1, 64));
    RETURN_IF_ERROR(CheckLength("slurm.accounts.account", m.account(), 0, 64));
    if (!mapped.insert(m.enterprise_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "slurm.accounts: enterprise ", m.enterprise_id(), " mapped twice"));
    }
  }
  return absl::OkStatus();
}

absl::Status DiscoverSlurmInventory(const pb::SlurmRuntimeConfig& config,
                                    CommandRunner& runner,
                                    std::vector<pb::GpuModel>& inventory) {
  absl::StatusOr<std::vector<slurm::Node>> nodes = ReadNodes(config, runner);
  if (!nodes.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "slurm: cannot read partition ", config.partition(), ": ",
        nodes.status().message()));
  }
  ASSIGN_OR_RETURN(auto explicit_models, ExplicitModels(config));
  std::vector<std::string> models;
  for (const pb::GpuModel& m : inventory) models.push_back(m.model());
  std::map<std::string, int> counts;
  for (const slurm::Node& n : *nodes) {
    for (const auto& [type, count] : n.gpus) {
      std::optional<std::string> model =
          ModelOf(explicit_models, models, type);
      if (!model || std::find(models.begin(), models.end(), *model) ==
                        models.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "slurm: node ", n.name, " has GPUs of gres type ",
            Quoted(type.empty() ? "(untyped)" : type),
            " that match no model of the inventory; add the model with its "
            "class and price (--inventory, --prices) or map it "
            "(--slurm-gres-models TYPE=MODEL)"));
      }
      counts[*model] += count;
    }
  }
  if (counts.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "slurm: partition ", Quoted(config.partition()), " has no GPUs"));
  }
  std::vector<pb::GpuModel> found;
  for (pb::GpuModel& m : inventory) {
    auto it = counts.find(m.model());
    if (it == counts.end()) continue;
    m.set_gpu_count(it->second);
    found.push_back(std::move(m));
  }
  inventory = std::move(found);
  return absl::OkStatus();
}

std::unique_ptr<Runtime> NewSlurmRuntime(
    pb::SlurmRuntimeConfig config, std::string access_template,
    CommandRunner& runner, const std::vector<pb::GpuModel>& inventory) {
  std::vector<std::string> models;
  for (const pb::GpuModel& m : inventory) models.push_back(m.model());
  // Checked by NormalizeSlurmConfig already.
  std::map<std::string, std::string> explicit_models =
      ExplicitModels(config).value_or(std::map<std::string, std::string>());
  return std::make_unique<SlurmRuntime>(
      std::move(config), std::move(access_template), runner,
      std::move(explicit_models), std::move(models));
}

}  // namespace computevoucher::agent
