#include "engine/tokenizer/stop_string_filter.h"

#include <algorithm>

namespace relayout {

StopStringFilter::StopStringFilter(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const std::string& s : stops_) hold_ = std::max(hold_, s.size());
}

std::string StopStringFilter::Append(std::string_view piece, bool* stopped) {
  *stopped = false;
  // A stop string may begin in text already handed out only in its last
  // hold_ bytes.
  const size_t search_from = emitted_ > hold_ ? emitted_ - hold_ : 0;
  text_.append(piece);
  size_t cut = std::string::npos;
  for (const std::string& s : stops_) {
    if (s.empty()) continue;
    const size_t at = text_.find(s, search_from);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  if (cut != std::string::npos) {
    text_.resize(std::max(cut, emitted_));
    *stopped = true;
    return Emit(text_.size());
  }
  // Keep the last hold_ - 1 bytes unless no stop string can start there;
  // never split a UTF-8 character.
  size_t safe = text_.size();
  if (hold_ > 0) {
    safe = text_.size() >= hold_ - 1 ? text_.size() - (hold_ - 1) : 0;
    while (safe > emitted_ && safe < text_.size() &&
           (static_cast<unsigned char>(text_[safe]) & 0xC0) == 0x80) {
      --safe;
    }
  }
  return Emit(safe);
}

std::string StopStringFilter::Finish() { return Emit(text_.size()); }

std::string StopStringFilter::Emit(size_t upto) {
  if (upto <= emitted_) return {};
  std::string out = text_.substr(emitted_, upto - emitted_);
  emitted_ = upto;
  return out;
}

}  // namespace relayout
