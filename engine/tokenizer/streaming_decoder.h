// StreamingDecoder: token ids in, one at a time; text out as soon as it is
// complete.
//
// A token may end inside a UTF-8 character (byte tokens <0xF0><0x9F>... of an
// emoji, or a byte-level BPE piece that splits a character); those bytes are
// held back until the character completes, so every returned string is valid
// UTF-8 and can be sent to a client as is. Bytes that can never form a
// character are replaced by U+FFFD, one per byte.
//
// Conventions follow llama2.c's printed output: control tokens (BOS, EOS,
// chat markers) print nothing, and for SentencePiece tokenizers the space
// that starts the first piece after BOS (the dummy prefix) is dropped.
//
// Thread safety: one decoder per stream; not safe for concurrent use.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace relayout {

class StreamingDecoder {
 public:
  // tokenizer is not owned and must outlive the decoder. previous_token is
  // the token before the first one fed (the prompt's last token, so that the
  // first generated piece after a bare BOS loses its dummy-prefix space);
  // -1 when there is none.
  explicit StreamingDecoder(const Tokenizer* tokenizer, int32_t previous_token = -1);

  // The text that id completes: possibly empty (a control token, or bytes of
  // a character still incomplete), possibly more than id's own piece (held
  // bytes released). Ids outside the vocabulary decode to nothing.
  std::string Next(int32_t id);

  // Ends the stream: the bytes still held back (an unfinished character),
  // as U+FFFD each; empty when nothing is held.
  std::string Flush();

 private:
  const Tokenizer* tokenizer_;
  int32_t previous_token_;
  std::string pending_;  // bytes of an unfinished UTF-8 character
};

}  // namespace relayout
