# Sanitized twins: the engine and its tests compiled a second time with
# AddressSanitizer and UndefinedBehaviorSanitizer inside the same build
# directory (one configure, one ccache), labelled "sanitize" in CTest. Under
# clang the twin also carries libFuzzer coverage, so the fuzz targets link
# against it.
set(RELAYOUT_FUZZERS OFF)
set(RELAYOUT_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
if(RELAYOUT_SANITIZE_TWIN AND CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  include(CheckCXXSourceCompiles)
  set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer")
  check_cxx_source_compiles(
    "#include <cstdint>\n#include <cstddef>\nextern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }"
    RELAYOUT_HAVE_LIBFUZZER)
  unset(CMAKE_REQUIRED_FLAGS)
  if(RELAYOUT_HAVE_LIBFUZZER)
    set(RELAYOUT_FUZZERS ON)
    list(APPEND RELAYOUT_SAN_FLAGS -fsanitize=fuzzer-no-link)
  endif()
endif()

# relayout_sanitize(target): compile and link target with the sanitizer flags.
function(relayout_sanitize target)
  target_compile_options(${target} PRIVATE ${RELAYOUT_SAN_FLAGS})
  target_link_options(${target} PUBLIC -fsanitize=address,undefined)
endfunction()

# ThreadSanitizer twin: the kernels and the engine a third time, for the
# concurrency tests (label "tsan": the serving engine, the thread pool, the
# executor's waves, the streaming call's state machine). Off by default
# under GCC builds without the server (the GPU machine's configuration).
option(RELAYOUT_TSAN_TWIN "Also build the engine and its concurrency tests with ThreadSanitizer" ON)
set(RELAYOUT_TSAN_FLAGS -fsanitize=thread -fno-omit-frame-pointer)

# relayout_tsan(target): compile and link target with ThreadSanitizer.
function(relayout_tsan target)
  target_compile_options(${target} PRIVATE ${RELAYOUT_TSAN_FLAGS})
  target_link_options(${target} PUBLIC -fsanitize=thread)
endfunction()
