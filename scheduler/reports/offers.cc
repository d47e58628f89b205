#include "scheduler/reports/offers.h"

#include <algorithm>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/validate.h"

namespace computevoucher::reports {

absl::StatusOr<pb::ListOffersResponse> Offers(
    const core::StateMachine& state, const std::string& enterprise_id,
    const pb::ListOffersRequest& request) {
  RETURN_IF_ERROR(CheckLength("gpu_model", request.gpu_model(), 0, 64));
  if (!pb::HardwareClass_IsValid(request.hardware_class())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hardware_class: unknown value ", request.hardware_class()));
  }
  auto enterprise = state.enterprises().find(enterprise_id);
  if (enterprise == state.enterprises().end()) {
    return absl::NotFoundError(absl::StrCat("enterprise_id: enterprise ",
                                            enterprise_id, " not found"));
  }
  pb::ListOffersResponse out;
  for (const auto& option : state.placement().Eligible(enterprise->second)) {
    if (!request.gpu_model().empty() &&
        !absl::EqualsIgnoreCase(option.model, request.gpu_model())) {
      continue;
    }
    if (request.hardware_class() != pb::HARDWARE_CLASS_UNSPECIFIED &&
        option.hardware_class != request.hardware_class()) {
      continue;
    }
    pb::Offer* offer = out.add_offers();
    offer->set_gpu_model(std::string(option.model));
    offer->set_hardware_class(option.hardware_class);
    offer->set_price_fen_per_gpu_hour(option.price_fen_per_gpu_hour);
    offer->set_cluster_id(std::string(option.cluster_id));
    offer->set_region(state.clusters().at(option.cluster_id).cluster.region());
    offer->set_provider_id(std::string(option.provider_id));
    auto provider = state.providers().find(option.provider_id);
    if (provider != state.providers().end()) {
      offer->set_provider_name(provider->second.name());
    }
    offer->set_gpu_count(option.gpu_count);
    offer->set_free_gpus(option.free_gpus);
  }
  auto key = [](const pb::Offer& o) {
    return std::make_tuple(absl::AsciiStrToLower(o.gpu_model()),
                           o.price_fen_per_gpu_hour(), o.cluster_id(),
                           o.gpu_model());
  };
  std::sort(
      out.mutable_offers()->begin(), out.mutable_offers()->end(),
      [&](const pb::Offer& a, const pb::Offer& b) { return key(a) < key(b); });
  return out;
}

}  // namespace computevoucher::reports
