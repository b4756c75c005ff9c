# Finds every external dependency once, as imported targets. A dependency that is
# required and missing stops the configuration with a message naming the package.

find_package(Torch REQUIRED)   # LibTorch: Debian libtorch-dev, or any LibTorch via CMAKE_PREFIX_PATH
set(MPI_CXX_SKIP_MPICXX TRUE)
find_package(MPI REQUIRED COMPONENTS CXX)
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(Boost REQUIRED COMPONENTS program_options)
find_package(Threads REQUIRED)

# HDF5's FindModule gives variables; wrap them in one target so modules link a name.
if(NOT TARGET hnas_hdf5)
  add_library(hnas_hdf5 INTERFACE)
  target_include_directories(hnas_hdf5 SYSTEM INTERFACE ${HDF5_C_INCLUDE_DIRS} ${HDF5_INCLUDE_DIRS})
  target_link_libraries(hnas_hdf5 INTERFACE ${HDF5_C_LIBRARIES})
  target_compile_definitions(hnas_hdf5 INTERFACE ${HDF5_C_DEFINITIONS} ${HDF5_DEFINITIONS})
endif()

# NCCL: AUTO builds it when a CUDA LibTorch, the CUDA toolkit and NCCL are all found; ON
# needs only the toolkit and NCCL (the code then compiles and links against a CPU LibTorch
# too) and fails loudly without them.
set(HNAS_NCCL_ENABLED OFF)
if(NOT HNAS_WITH_NCCL STREQUAL "OFF")
  find_path(NCCL_INCLUDE_DIR nccl.h HINTS ENV NCCL_HOME ENV CUDA_HOME /usr/local/cuda PATH_SUFFIXES include)
  find_library(NCCL_LIBRARY nccl HINTS ENV NCCL_HOME ENV CUDA_HOME /usr/local/cuda PATH_SUFFIXES lib lib64)
  find_package(CUDAToolkit QUIET)
  set(_nccl_missing "")
  if(NOT NCCL_INCLUDE_DIR OR NOT NCCL_LIBRARY)
    list(APPEND _nccl_missing "NCCL (nccl.h / libnccl; set NCCL_HOME)")
  endif()
  if(NOT CUDAToolkit_FOUND)
    list(APPEND _nccl_missing "the CUDA toolkit (set CUDA_HOME or CUDAToolkit_ROOT)")
  endif()
  if(HNAS_WITH_NCCL STREQUAL "AUTO" AND NOT TORCH_CUDA_LIBRARIES)
    list(APPEND _nccl_missing "a CUDA build of LibTorch")
  endif()
  if(_nccl_missing)
    string(JOIN ", " _nccl_missing ${_nccl_missing})
    if(HNAS_WITH_NCCL STREQUAL "ON")
      message(FATAL_ERROR "HNAS_WITH_NCCL=ON but these were not found: ${_nccl_missing}")
    endif()
    message(STATUS "hnas: NCCL support off (missing: ${_nccl_missing})")
  else()
    set(HNAS_NCCL_ENABLED ON)
    add_library(hnas_nccl INTERFACE)
    target_include_directories(hnas_nccl SYSTEM INTERFACE ${NCCL_INCLUDE_DIR})
    target_link_libraries(hnas_nccl INTERFACE ${NCCL_LIBRARY} CUDA::cudart)
    message(STATUS "hnas: NCCL support on (${NCCL_LIBRARY})")
  endif()
endif()

if(HNAS_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()

# SentencePiece (Debian libsentencepiece-dev) for hnas_make_shards' subword tokenizer;
# without it the byte-level tokenizer still works and --tokenizer sentencepiece says
# what to install.
find_path(SENTENCEPIECE_INCLUDE_DIR sentencepiece_processor.h)
find_library(SENTENCEPIECE_LIBRARY sentencepiece)
find_library(SENTENCEPIECE_TRAIN_LIBRARY sentencepiece_train)
add_library(hnas_sentencepiece INTERFACE)
if(SENTENCEPIECE_INCLUDE_DIR AND SENTENCEPIECE_LIBRARY AND SENTENCEPIECE_TRAIN_LIBRARY)
  target_include_directories(hnas_sentencepiece SYSTEM INTERFACE ${SENTENCEPIECE_INCLUDE_DIR})
  target_link_libraries(hnas_sentencepiece INTERFACE ${SENTENCEPIECE_TRAIN_LIBRARY} ${SENTENCEPIECE_LIBRARY})
  target_compile_definitions(hnas_sentencepiece INTERFACE HNAS_HAVE_SENTENCEPIECE=1)
  message(STATUS "hnas: SentencePiece tokenizer on (${SENTENCEPIECE_LIBRARY})")
else()
  target_compile_definitions(hnas_sentencepiece INTERFACE HNAS_HAVE_SENTENCEPIECE=0)
  message(STATUS "hnas: SentencePiece tokenizer off (libsentencepiece-dev not found)")
endif()
