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
#
# Optimization: TARGET is compiled optimized whatever the consumer's build
# type, because the generated code is unusable without: ResNet-18 at batch 1
# (one loaded 2-core machine) took 7.3 s with CMake's flags for no build type
# and BLAS OFF, 0.65 s at -O2, 0.39 s at -O3 (the portable GEMM needs -O3);
# with OpenBLAS 250, 130 and 120 ms. The rule, for each configuration
# (CMAKE_BUILD_TYPE, or each of CMAKE_CONFIGURATION_TYPES): unless the
# consumer already names an optimization level, TARGET gets -O3 (gcc, clang,
# AppleClang, Intel) or /O2 (MSVC, clang-cl) as its first compile option.
# "Names one": an -O... token (MSVC: /O... or /RTC..., which /O2 cannot join)
# in CMAKE_C_FLAGS or CMAKE_C_FLAGS_<CONFIG> as they stand when nnc_add_model
# runs, or in the directory's compile options (add_compile_options). So a
# build with no type, or gcc/clang's Debug (-g alone), gets -O3; Release keeps
# its -O3, RelWithDebInfo its -O2, MinSizeRel its -Os, MSVC's Debug its /Od;
# -DCMAKE_C_FLAGS=-O0 keeps -O0; and target_compile_options(TARGET PRIVATE
# -O1) after the call comes later on the command line and wins. Other
# compilers get no flag.
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
  _nnc_optimize(${target})
endfunction()

# The optimization rule of nnc_add_model (above): adds -O3 or /O2 to TARGET for
# each configuration whose flags name no optimization level.
function(_nnc_optimize target)
  if(CMAKE_C_COMPILER_ID STREQUAL "MSVC" OR CMAKE_C_COMPILER_FRONTEND_VARIANT STREQUAL "MSVC")
    set(flag /O2)
    set(named "(^|[ \t;])[-/](O|RTC)")
  elseif(CMAKE_C_COMPILER_ID MATCHES "^(GNU|Clang|AppleClang|IntelLLVM|Intel)$")
    set(flag -O3)
    set(named "(^|[ \t;])-O")
  else()
    return()
  endif()
  get_directory_property(dir_options COMPILE_OPTIONS)
  if("${CMAKE_C_FLAGS} ${dir_options}" MATCHES "${named}")
    return()
  endif()
  get_property(multi GLOBAL PROPERTY GENERATOR_IS_MULTI_CONFIG)
  if(NOT multi)
    string(TOUPPER "${CMAKE_BUILD_TYPE}" config)
    if(NOT config OR NOT " ${CMAKE_C_FLAGS_${config}}" MATCHES "${named}")
      target_compile_options(${target} BEFORE PRIVATE ${flag})
    endif()
    return()
  endif()
  foreach(config ${CMAKE_CONFIGURATION_TYPES})
    string(TOUPPER "${config}" upper)
    if(NOT " ${CMAKE_C_FLAGS_${upper}}" MATCHES "${named}")
      target_compile_options(${target} BEFORE PRIVATE $<$<CONFIG:${config}>:${flag}>)
    endif()
  endforeach()
endfunction()
