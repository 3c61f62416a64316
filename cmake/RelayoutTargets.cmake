# Linked into every GoogleTest executable: under RELAYOUT_REQUIRE_TEST_DATA=1 a
# skipped test fails (tests/testing/require_test_data.cc).
set(RELAYOUT_TEST_LISTENER ${CMAKE_CURRENT_LIST_DIR}/../tests/testing/require_test_data.cc)

# Per-test CTest timeouts, in seconds: a hang fails fast with the test's name.
set(RELAYOUT_UNIT_TEST_TIMEOUT 120 CACHE STRING "CTest timeout of one unit test")
set(RELAYOUT_INTEGRATION_TEST_TIMEOUT 600 CACHE STRING "CTest timeout of one integration test")

# relayout_library(NAME <lib> DIRS <dirs...> LIBS <deps...> SAN_LIBS <deps...>
#                  [TSAN_LIBS <deps...>])
#   A static library from <dir>/*.cc of each dir (tests excluded), plus <lib>_san, its
#   sanitized twin linked against the twins of its deps, when the twin build is
#   on, and <lib>_tsan (ThreadSanitizer) when TSAN_LIBS is given and the tsan twin
#   is on. Sources are globbed so adding a file to a layer needs no CMake edit.
function(relayout_library)
  cmake_parse_arguments(ARG "TSAN" "NAME" "DIRS;LIBS;SAN_LIBS;TSAN_LIBS" ${ARGN})
  set(sources)
  foreach(dir IN LISTS ARG_DIRS)
    file(GLOB dir_sources CONFIGURE_DEPENDS "${dir}/*.cc")
    list(APPEND sources ${dir_sources})
  endforeach()
  list(FILTER sources EXCLUDE REGEX "_test\\.cc$")
  add_library(${ARG_NAME} STATIC ${sources})
  target_include_directories(${ARG_NAME} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${ARG_NAME} PUBLIC ${ARG_LIBS})
  if(RELAYOUT_SANITIZE_TWIN)
    add_library(${ARG_NAME}_san STATIC ${sources})
    target_include_directories(${ARG_NAME}_san PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(${ARG_NAME}_san PUBLIC ${ARG_SAN_LIBS})
    relayout_sanitize(${ARG_NAME}_san)
  endif()
  if(RELAYOUT_TSAN_TWIN AND ARG_TSAN)
    add_library(${ARG_NAME}_tsan STATIC ${sources})
    target_include_directories(${ARG_NAME}_tsan PUBLIC ${PROJECT_SOURCE_DIR})
    target_link_libraries(${ARG_NAME}_tsan PUBLIC ${ARG_TSAN_LIBS})
    relayout_tsan(${ARG_NAME}_tsan)
  endif()
endfunction()

# relayout_test_suite(NAME <exe> DIRS <dirs...> LIBS <deps...> SAN_LIBS <deps...>
#                     [LABELS <label>] [TIMEOUT <seconds>])
#   A GoogleTest executable from <dir>/*_test.cc of each dir, each test registered with
#   CTest, labelled <label> (default "unit"); with the twin build, <exe>_san too,
#   labelled "sanitize". Every test gets a
#   timeout (default RELAYOUT_UNIT_TEST_TIMEOUT; 3x for the sanitized twin), so a hang
#   is a fast failure with the test's name.
function(relayout_test_suite)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "DIRS;LIBS;SAN_LIBS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT ${RELAYOUT_UNIT_TEST_TIMEOUT})
  endif()
  math(EXPR san_timeout "${ARG_TIMEOUT} * 3")
  # One label per suite: gtest_discover_tests flattens PROPERTIES, so a list
  # value ("unit;integration") would swallow the properties after it.
  set(label unit)
  if(ARG_LABELS)
    set(label ${ARG_LABELS})
  endif()
  set(sources)
  foreach(dir IN LISTS ARG_DIRS)
    file(GLOB dir_sources CONFIGURE_DEPENDS "${dir}/*_test.cc")
    list(APPEND sources ${dir_sources})
  endforeach()
  if(NOT sources)
    return()
  endif()
  include(GoogleTest)
  add_executable(${ARG_NAME} ${sources} ${RELAYOUT_TEST_LISTENER})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${ARG_NAME} PRIVATE RELAYOUT_SHARED_DIR="${RELAYOUT_SHARED_DIR}"
                             RELAYOUT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(${ARG_NAME} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
                       PROPERTIES LABELS ${label} TIMEOUT ${ARG_TIMEOUT})
  if(RELAYOUT_SANITIZE_TWIN AND ARG_SAN_LIBS)
    add_executable(${ARG_NAME}_san ${sources} ${RELAYOUT_TEST_LISTENER})
    target_link_libraries(${ARG_NAME}_san PRIVATE ${ARG_SAN_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
    target_compile_definitions(${ARG_NAME}_san PRIVATE RELAYOUT_SHARED_DIR="${RELAYOUT_SHARED_DIR}"
                                 RELAYOUT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    relayout_sanitize(${ARG_NAME}_san)
    gtest_discover_tests(${ARG_NAME}_san DISCOVERY_MODE PRE_TEST TEST_PREFIX "san."
                         DISCOVERY_TIMEOUT 60
                         PROPERTIES LABELS sanitize TIMEOUT ${san_timeout}
                         ENVIRONMENT UBSAN_OPTIONS=print_stacktrace=1)
  endif()
endfunction()
