# Finds LibTorch from the PyPI `torch` wheel inside the project's Python venv.
# The venv's python answers `torch.utils.cmake_prefix_path`; ACCELERATE_PYTHON overrides which python is asked.
if(NOT ACCELERATE_PYTHON)
  if(DEFINED ENV{ACCELERATE_CPP_VENV})
    set(_venv "$ENV{ACCELERATE_CPP_VENV}")
  else()
    set(_venv "$ENV{HOME}/.cache/accelerate-cpp/venv")
  endif()
  set(ACCELERATE_PYTHON "${_venv}/bin/python" CACHE FILEPATH "Python interpreter whose torch wheel provides LibTorch")
endif()
if(NOT Torch_DIR)
  execute_process(
    COMMAND "${ACCELERATE_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE _torch_rc ERROR_VARIABLE _torch_err)
  if(NOT _torch_rc EQUAL 0)
    message(FATAL_ERROR "Could not import torch with ${ACCELERATE_PYTHON}:\n${_torch_err}\n"
                        "Run scripts/setup.sh (it installs torch==2.11.0 into the venv), "
                        "or pass -DACCELERATE_PYTHON=/path/to/python of a venv that has it.")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_torch_prefix}")
endif()

# The wheel is a CUDA build: its CMake config needs a CUDA toolkit to configure, even on CPU-only machines.
if(NOT CUDAToolkit_ROOT AND EXISTS /usr/local/cuda)
  set(CUDAToolkit_ROOT /usr/local/cuda)
endif()
if(NOT TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0" CACHE STRING "")   # only affects .cu files; we have none
endif()
find_package(Torch REQUIRED)
# The tested LibTorch: another version's c10d headers and ABI differ (refused here, not at link or run time).
set(ACCELERATE_TORCH_SERIES 2.11)
if(NOT Torch_VERSION VERSION_GREATER_EQUAL ${ACCELERATE_TORCH_SERIES} OR Torch_VERSION VERSION_GREATER_EQUAL 2.12)
  message(FATAL_ERROR "accelerate: found LibTorch ${Torch_VERSION} (${Torch_DIR}); accelerate-cpp needs LibTorch "
                      "${ACCELERATE_TORCH_SERIES}.x (the torch==2.11.0 wheel, or a LibTorch 2.11 distribution via "
                      "Torch_DIR). scripts/setup.sh installs it into a venv.")
endif()
message(STATUS "accelerate: using LibTorch ${Torch_VERSION} from ${Torch_DIR}")

set(ACCELERATE_WITH_CUDA OFF)
if(TARGET torch_cuda)
  set(ACCELERATE_WITH_CUDA ON)
endif()
message(STATUS "accelerate: torch ${Torch_VERSION}, CUDA/NCCL code ${ACCELERATE_WITH_CUDA}")
