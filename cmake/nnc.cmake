# nnc.cmake: use nnc as a build step of another CMake project.
#
#   include(path/to/nnc/cmake/nnc.cmake)       # or set NNC_EXECUTABLE first
#   nnc_add_model(lenet5 MODEL models/lenet5.net BATCH 64)
#   target_link_libraries(my_app PRIVATE lenet5)
#
# nnc_add_model(TARGET MODEL file.net [BATCH n] [NETWORK name] [OPT 0|1|2]
#               [SET NAME=VALUE ...] [BLAS ON|OFF])
# runs nnc at build time (again whenever the .net file or nnc changes) to write
# TARGET.c and TARGET.h into the build tree, and adds a static library TARGET
# whose include directory holds TARGET.h. With BLAS ON (the default when
# OpenBLAS is found) the kernels call cblas_sgemm and the library links
# OpenBLAS; otherwise they are portable C. Imports of the .net file are
# tracked as dependencies when they sit beside it (lib/*.net).
if(NOT NNC_EXECUTABLE)
  if(TARGET nnc)
    set(NNC_EXECUTABLE $<TARGET_FILE:nnc>)
  else()
    find_program(NNC_EXECUTABLE nnc REQUIRED)
  endif()
endif()

function(nnc_add_model target)
  cmake_parse_arguments(A "" "MODEL;BATCH;NETWORK;OPT;BLAS" "SET" ${ARGN})
  if(NOT A_MODEL)
    message(FATAL_ERROR "nnc_add_model(${target}): MODEL file.net is required")
  endif()
  get_filename_component(model ${A_MODEL} ABSOLUTE)
  get_filename_component(model_dir ${model} DIRECTORY)
  file(GLOB_RECURSE imports CONFIGURE_DEPENDS ${model_dir}/lib/*.net)
  set(args ${model} -o ${CMAKE_CURRENT_BINARY_DIR}/${target}/${target}.c)
  if(A_BATCH)
    list(APPEND args --batch ${A_BATCH})
  endif()
  if(A_NETWORK)
    list(APPEND args --network ${A_NETWORK})
  endif()
  if(DEFINED A_OPT)
    list(APPEND args -O${A_OPT})
  endif()
  foreach(s ${A_SET})
    list(APPEND args --set ${s})
  endforeach()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}/${target}.c ${CMAKE_CURRENT_BINARY_DIR}/${target}/${target}.h)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_CURRENT_BINARY_DIR}/${target}
    COMMAND ${NNC_EXECUTABLE} ${args}
    DEPENDS ${model} ${imports} ${NNC_EXECUTABLE}
    COMMENT "nnc: ${A_MODEL} -> ${target}.c"
    VERBATIM)
  add_library(${target} STATIC ${out})
  target_include_directories(${target} PUBLIC ${CMAKE_CURRENT_BINARY_DIR}/${target})
  set_target_properties(${target} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
  if(NOT DEFINED A_BLAS)
    find_library(NNC_OPENBLAS openblas)
    set(A_BLAS ${NNC_OPENBLAS})
  endif()
  if(A_BLAS)
    find_library(NNC_OPENBLAS openblas REQUIRED)
    target_compile_definitions(${target} PRIVATE NNC_USE_CBLAS)
    target_link_libraries(${target} PUBLIC ${NNC_OPENBLAS})
  endif()
  target_link_libraries(${target} PUBLIC m)
endfunction()
