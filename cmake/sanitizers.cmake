# Sanitizer and fuzzing builds (scripts/sanitizers.sh, scripts/fuzz.sh; docs/testing.md).
#   -DFOURCAST_SANITIZE=address,undefined   ASan + UBSan on every target (any -fsanitize= list)
#   -DFOURCAST_SANITIZE=thread              TSan
#   -DFOURCAST_FUZZ=ON                      libFuzzer coverage instrumentation on every target and
#                                           the fuzz targets of tests/fuzz (needs clang)
set(FOURCAST_SANITIZE "" CACHE STRING "Sanitizers for every target, as -fsanitize= takes them")
option(FOURCAST_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only)" OFF)
if(FOURCAST_SANITIZE)
  # Every report is fatal (a test fails instead of printing and going on); frame pointers keep
  # the stack traces whole at -O1.
  add_compile_options(-fsanitize=${FOURCAST_SANITIZE} -fno-sanitize-recover=all
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${FOURCAST_SANITIZE})
endif()
if(FOURCAST_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "FOURCAST_FUZZ needs clang (-fsanitize=fuzzer)")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
