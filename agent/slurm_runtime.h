// The `slurm` runtime: one agent per Slurm cluster (partition), on a host
// that can run Slurm's client commands as an operator (root or SlurmUser).
//
// Inventory: the GPUs of the partition's nodes (`Gres=gpu:TYPE:N`), each
// gres type mapped to an inventory model (SlurmRuntimeConfig.gres_models,
// else the model of the same name); free GPUs are those of usable nodes
// that no job holds.
//
// An allocation is a Slurm job named "cv-<allocation id>", submitted with
// sbatch as the enterprise's mapped user and account, `--gpus=TYPE:N` and a
// time limit just past the allocation's deadline. Without a workload
// command it holds the GPUs (`sleep infinity`) and the tenant runs steps in
// it (`srun --jobid=…`); with one (batch mode) the command is the job's
// script and its end ends the allocation with its exit code. Usage runs
// from the job's StartTime: a PENDING job is never charged. Stop signals
// every step with SIGTERM (`scancel --signal=TERM --full`) and cancels the
// job after the grace; a job that ends otherwise (an operator's scancel, a
// node failure, the time limit) ends the allocation on the cluster at
// Slurm's EndTime.
//
// Slurm is read every poll interval (squeue for jobs and steps, sinfo for
// nodes). Every command has a time limit; while Slurm does not answer,
// Health() says so, allocations keep the state last seen and are metered
// on, and what could not be done (a submission, a cancellation) is tried
// again. A restarted agent finds its jobs again by name: it adopts the
// oldest live job of each allocation, cancels duplicates, and cancels jobs
// of allocations it no longer has (ForgetOthers).
#ifndef COMPUTEVOUCHER_AGENT_SLURM_RUNTIME_H_
#define COMPUTEVOUCHER_AGENT_SLURM_RUNTIME_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/internal/command.h"
#include "agent/runtime.h"
#include "computevoucher/v1/config.pb.h"
#include "computevoucher/v1/types.pb.h"

namespace computevoucher::agent {

// Reads the partition's GPUs from Slurm and sets each model's gpu_count in
// `inventory` (classes and prices come from the operator), dropping models
// with no GPU. FailedPrecondition names a gres type that maps to no model,
// or a partition with no GPUs; Unavailable when Slurm does not answer.
absl::Status DiscoverSlurmInventory(const pb::SlurmRuntimeConfig& config,
                                    CommandRunner& runner,
                                    std::vector<pb::GpuModel>& inventory);

// `config` normalized (NormalizeSlurmConfig); `inventory` as
// DiscoverSlurmInventory left it; `runner` outlives the runtime.
std::unique_ptr<Runtime> NewSlurmRuntime(
    pb::SlurmRuntimeConfig config, std::string access_template,
    CommandRunner& runner, const std::vector<pb::GpuModel>& inventory);

// Checks and fills defaults of the slurm settings; InvalidArgument names
// the field.
absl::Status NormalizeSlurmConfig(pb::SlurmRuntimeConfig& config);

}  // namespace computevoucher::agent

#endif  // COMPUTEVOUCHER_AGENT_SLURM_RUNTIME_H_
