// Reads llama2.c's tokenizer export (tokenizer.bin, tok512.bin) into a
// TokenizerSpec.
//
// Layout, little-endian: int32 max_token_length, then for each token a
// float32 score, an int32 byte length and that many bytes of piece text. The
// file has no count (it runs to its end) and no token types; the export
// wrote "▁" as a space and BOS/EOS as "\n<s>\n" and "\n</s>\n". The loader
// restores the SentencePiece spelling so the tokenizer core sees the same
// vocabulary as from tokenizer.model: spaces become "▁", ids 0/1/2 are
// <unk>/<s>/</s> (llama2.c's fixed ids), "<0xNN>" pieces are byte tokens.
#pragma once

#include <string>
#include <string_view>

#include "engine/base/status.h"
#include "engine/tokenizer/tokenizer.h"

namespace relayout {

// Parses bytes, the whole file named name (used in messages). DataLoss
// "name: <what> at offset N" when a header or token is truncated, a length is
// negative or passes the end of the file, or there are fewer than 3 tokens.
Result<TokenizerSpec> ParseLlama2cTokenizer(std::string_view bytes, const std::string& name);

}  // namespace relayout
