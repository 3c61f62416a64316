// StopStringFilter: generated text through a set of stop strings. It keeps
// the text, holds back the tail that could still begin a stop string, and
// hands out the rest; when a stop string appears the text is cut before it.
// Held-back text never splits a UTF-8 character.
//
// Shared by Generate (one sequence) and the serving engine (one filter per
// sequence).
//
// Thread safety: one filter per sequence; not safe for concurrent use.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace relayout {

class StopStringFilter {
 public:
  // Empty strings in `stops` are ignored; with none, nothing is held back.
  explicit StopStringFilter(std::vector<std::string> stops);

  // Appends piece. Returns the text that is now safe to hand out (possibly
  // empty); *stopped is true when a stop string appears, and the returned
  // text then ends where the stop string began.
  std::string Append(std::string_view piece, bool* stopped);

  // The end of the text: everything still held back.
  std::string Finish();

  // The whole text so far (cut before a stop string once one appeared).
  const std::string& text() const { return text_; }

 private:
  std::string Emit(size_t upto);

  std::vector<std::string> stops_;
  std::string text_;
  size_t hold_ = 0;     // the longest stop string
  size_t emitted_ = 0;  // bytes of text_ handed out
};

}  // namespace relayout
