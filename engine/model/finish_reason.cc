#include "engine/model/finish_reason.h"

namespace relayout {

std::string_view FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kMaxTokens:
      return "length";
    case FinishReason::kContextFull:
      return "context";
    case FinishReason::kEndOfGeneration:
      return "eos";
    case FinishReason::kStopString:
      return "stop";
    case FinishReason::kStopToken:
      return "stop_token";
    case FinishReason::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace relayout
