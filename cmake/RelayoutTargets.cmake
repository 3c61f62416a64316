# relayout_library(NAME <lib> DIRS <dirs...> LIBS <deps...> SAN_LIBS <deps...>)
#   A static library from <dir>/*.cc of each dir (tests excluded), plus <lib>_san, its
#   sanitized twin linked against the twins of its deps, when the twin build is
#   on. Sources are globbed so adding a file to a layer needs no CMake edit.
function(relayout_library)
  cmake_parse_arguments(ARG "" "NAME" "DIRS;LIBS;SAN_LIBS" ${ARGN})
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
endfunction()

# relayout_test_suite(NAME <exe> DIRS <dirs...> LIBS <deps...> SAN_LIBS <deps...>)
#   A GoogleTest executable from <dir>/*_test.cc of each dir, each test registered with
#   CTest; with the twin build, <exe>_san too, labelled "sanitize".
function(relayout_test_suite)
  cmake_parse_arguments(ARG "" "NAME" "DIRS;LIBS;SAN_LIBS;LABELS" ${ARGN})
  set(sources)
  foreach(dir IN LISTS ARG_DIRS)
    file(GLOB dir_sources CONFIGURE_DEPENDS "${dir}/*_test.cc")
    list(APPEND sources ${dir_sources})
  endforeach()
  if(NOT sources)
    return()
  endif()
  include(GoogleTest)
  add_executable(${ARG_NAME} ${sources})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${ARG_NAME} PRIVATE RELAYOUT_SHARED_DIR="${RELAYOUT_SHARED_DIR}"
                             RELAYOUT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  gtest_discover_tests(${ARG_NAME} DISCOVERY_MODE PRE_TEST PROPERTIES LABELS "unit;${ARG_LABELS}")
  if(RELAYOUT_SANITIZE_TWIN AND ARG_SAN_LIBS)
    add_executable(${ARG_NAME}_san ${sources})
    target_link_libraries(${ARG_NAME}_san PRIVATE ${ARG_SAN_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
    target_compile_definitions(${ARG_NAME}_san PRIVATE RELAYOUT_SHARED_DIR="${RELAYOUT_SHARED_DIR}"
                                 RELAYOUT_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
    relayout_sanitize(${ARG_NAME}_san)
    gtest_discover_tests(${ARG_NAME}_san DISCOVERY_MODE PRE_TEST TEST_PREFIX "san."
                         PROPERTIES LABELS "sanitize;${ARG_LABELS}"
                         ENVIRONMENT "UBSAN_OPTIONS=print_stacktrace=1;ASAN_OPTIONS=detect_leaks=1")
  endif()
endfunction()
