# Declarative helpers: one call per library, test or MPI test.

set(HNAS_WARNINGS -Wall -Wextra -Wno-unused-parameter)
if(HNAS_WERROR)
  list(APPEND HNAS_WARNINGS -Werror)
endif()

# hnas_add_library(NAME <module> SRCS ... DEPS ... [TORCH])
# Builds target hnas_<module>; TORCH marks modules that include LibTorch headers, which
# then share one precompiled header.
function(hnas_add_library)
  cmake_parse_arguments(ARG "TORCH" "NAME" "SRCS;DEPS" ${ARGN})
  set(target hnas_${ARG_NAME})
  add_library(${target} STATIC ${ARG_SRCS})
  add_library(hnas::${ARG_NAME} ALIAS ${target})
  # Public headers for everyone; the module's own folder for its private headers only, so
  # no module can include another's internals.
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include
                                       PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
  target_link_libraries(${target} PUBLIC ${ARG_DEPS})
  target_compile_options(${target} PRIVATE ${HNAS_WARNINGS})
  if(ARG_TORCH)
    hnas_use_torch_pch(${target})
  endif()
endfunction()

# One precompiled <torch/torch.h> for every LibTorch target: the header costs ~15 s per
# translation unit otherwise.
# The header is compiled once, in hnas_torch_pch, and reused by every target (same flags).
function(hnas_use_torch_pch target)
  if(NOT TARGET hnas_torch_pch)
    file(WRITE ${PROJECT_BINARY_DIR}/torch_pch.cpp "// precompiled-header carrier\n")
    add_library(hnas_torch_pch OBJECT ${PROJECT_BINARY_DIR}/torch_pch.cpp)
    target_link_libraries(hnas_torch_pch PUBLIC ${TORCH_LIBRARIES})
    target_compile_options(hnas_torch_pch PRIVATE ${HNAS_WARNINGS})
    target_precompile_headers(hnas_torch_pch PRIVATE <torch/torch.h>)
  endif()
  target_link_libraries(${target} PUBLIC ${TORCH_LIBRARIES})
  target_precompile_headers(${target} REUSE_FROM hnas_torch_pch)
endfunction()

# The executable of a test: its sources, GoogleTest, tests/ on the include path (for
# support/), and the shared LibTorch header when TORCH is set.
function(hnas_test_executable name torch)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE GTest::gtest)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_options(${name} PRIVATE ${HNAS_WARNINGS})
  if(torch)
    hnas_use_torch_pch(${name})
  endif()
endfunction()

# hnas_add_test(NAME <name> SRCS ... DEPS ... [LABELS ...] [TIMEOUT s] [TORCH] [OWN_MAIN])
# OWN_MAIN: the sources define main() instead of linking GoogleTest's.
function(hnas_add_test)
  cmake_parse_arguments(ARG "TORCH;OWN_MAIN" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  hnas_test_executable(${ARG_NAME} "${ARG_TORCH}" ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  if(NOT ARG_OWN_MAIN)
    target_link_libraries(${ARG_NAME} PRIVATE GTest::gtest_main)
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS "${ARG_LABELS}")
endfunction()

# hnas_add_mpi_test(NAME <name> NUM_PROCS n SRCS ... DEPS ... [TIMEOUT s] [TORCH])
# Runs under mpiexec; root and oversubscription are allowed so it runs in containers and CI.
# The sources define main() (MPI must be initialised before GoogleTest runs).
function(hnas_add_mpi_test)
  cmake_parse_arguments(ARG "TORCH" "NAME;NUM_PROCS;TIMEOUT" "SRCS;DEPS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 180)
  endif()
  hnas_test_executable(${ARG_NAME} "${ARG_TORCH}" ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${ARG_DEPS})
  add_test(NAME ${ARG_NAME}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ARG_NUM_PROCS}
                   --oversubscribe --allow-run-as-root ${MPIEXEC_PREFLAGS}
                   $<TARGET_FILE:${ARG_NAME}> ${MPIEXEC_POSTFLAGS})
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT} LABELS mpi PROCESSORS ${ARG_NUM_PROCS})
endfunction()
