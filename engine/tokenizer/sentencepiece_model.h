// Reads a SentencePiece tokenizer.model (a serialized ModelProto) into a
// TokenizerSpec, with a minimal protobuf wire-format reader so that no
// protobuf library is linked into the engine.
//
// Fields read (numbers as in sentencepiece_model.proto, checked against the
// Llama 2 and stories260K files):
//   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec,
//                   3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default
//                   NORMAL)
//   TrainerSpec     3 model_type (1 UNIGRAM, 2 BPE, 3 WORD, 4 CHAR),
//                   35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id
//   NormalizerSpec  3 add_dummy_prefix (default true)
// Other fields are skipped by wire type.
#pragma once

#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

// Parses bytes, the whole file named name (used in messages).
// DataLoss "name: <what> at offset N" for a malformed message (truncated
// varint or length, a length past its enclosing message, an unsupported wire
// type, a token type outside 1..6); Unimplemented when the model type is not
// BPE; InvalidArgument when an id field is out of range of the pieces.
Result<TokenizerSpec> ParseSentencePieceModel(std::string_view bytes, const std::string& name);

}  // namespace relayout
