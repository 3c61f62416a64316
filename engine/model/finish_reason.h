// FinishReason: why a sequence stopped generating, one vocabulary for
// `relayoutd generate`, the serving engine and the API (generation.proto's
// FinishReason maps onto it: kMaxTokens and kContextFull are LENGTH).
#pragma once

#include <string_view>

namespace relayout {

enum class FinishReason {
  kNone,             // more tokens may follow
  kMaxTokens,        // max_new_tokens generated
  kContextFull,      // the next position would be past the context
  kEndOfGeneration,  // an end-of-generation token (not returned)
  kStopString,       // a stop string appeared in the text (which ends before it)
  kStopToken,        // one of the request's stop_token_ids (returned)
  kCancelled,        // the caller cancelled, or the server drained or shut down
};

// "none", "length", "context", "eos", "stop", "stop_token", "cancelled".
std::string_view FinishReasonName(FinishReason reason);

}  // namespace relayout
