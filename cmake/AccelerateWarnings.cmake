# Our own targets build with -Wall -Wextra; with ACCELERATE_WARNINGS_AS_ERRORS (on in scripts/setup.sh, so in CI)
# a warning in our code fails the build. LibTorch's headers are system headers: their warnings never count.
option(ACCELERATE_WARNINGS_AS_ERRORS "Fail the build on a warning in accelerate-cpp's own code" OFF)

# -Wmissing-field-initializers is off: it fires on every designated initializer that leaves a member at its
# default ({.batch_size = 64}), which is how options structs are meant to be written.
function(accelerate_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
  if(ACCELERATE_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
