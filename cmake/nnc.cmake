# nnc.cmake: use nnc as a build step of another CMake project.
#
#   find_package(nnc REQUIRED)                 # the installed package (docs/cmake.md), or
#   include(path/to/nnc/cmake/nnc.cmake)       # from a source tree (set NNC_EXECUTABLE first)
#   nnc_add_model(lenet5 MODEL models/lenet5.net BATCH 64)
#   target_link_libraries(my_app PRIVATE lenet5)
#
# nnc_add_model(TARGET MODEL file.net [WEIGHTS w.safetensors] [EMBED_WEIGHTS]
#               [TRAINING] [BATCH n] [NETWORK name] [OPT 0|1|2]
#               [SET NAME=VALUE ...] [BLAS ON|OFF])
# runs nnc at build time to write TARGET.c and TARGET.h into
# CMAKE_CURRENT_BINARY_DIR/TARGET/, and adds a static library TARGET whose
# include directory holds TARGET.h. The functions are named after the network
# (lenet5_create, lenet5_forward, ...), whatever TARGET is called.
#
# Rebuilds: nnc writes a dependency file (--depfile) listing the .net file,
# every file it imports, wherever they are, and the weights; the custom
# command reads it (DEPFILE), so editing any of them, or a new nnc, regenerates
# the code at the next build.
#
# WEIGHTS w.safetensors: checked against the network when the code is
# generated (every parameter present, of the network's shape; an error names
# the file) and again whenever w changes. Without EMBED_WEIGHTS the file is
# only recorded: TARGET defines, for itself and whoever links it,
# <TARGET>_WEIGHTS_PATH (TARGET in upper case, other characters than letters,
# digits and _ as _) as the file's absolute path in quotes, for
# lenet5_create(&m, LENET5_WEIGHTS_PATH, NULL).
#
# EMBED_WEIGHTS (needs WEIGHTS): the weights are linked into TARGET as a
# binary blob (nnc --embed-weights: TARGET_weights.S, an .incbin of the file,
# so even ResNet-50's 100 MB cost the assembler no parsing), and the header
# declares NETWORK_create_embedded(&m, workspace), which creates the model from
# those bytes (NETWORK_create_from_memory): the program needs no weights file
# at run time. The ASM language is enabled for the .S (the C compiler
# assembles it), so nnc_add_model(... EMBED_WEIGHTS) is called at file scope,
# not from inside a function.
#
# TRAINING: TARGET also holds the training module (nnc --emit=train:
# TARGET_train.c and TARGET_train.h beside the others, NETWORK_train_create,
# NETWORK_train_step, ...; runtime/train_abi.h), built from the same model and
# options; with EMBED_WEIGHTS, NETWORK_train_create_embedded too (the training
# module links its own copy of the blob). One library, so one
# target_link_libraries; the two modules' symbols do not collide.
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

# The function records the policies in effect here (DEPFILE paths as CMake
# 3.20 reads them, CMP0116), whatever the including project asks for.
cmake_policy(PUSH)
cmake_policy(VERSION 3.20)

# One nnc run: MODEL to OUT_C, its .h and EXTRA_OUTPUTS (the .S), with ARGS;
# nnc's depfile beside OUT_C lists the imports; WEIGHTS (may be empty) is a
# dependency from the first build on.
function(_nnc_generate model out_c extra_outputs args weights)
  get_filename_component(dir ${out_c} DIRECTORY)
  get_filename_component(base ${out_c} NAME_WE)
  set(outs ${out_c} ${dir}/${base}.h ${extra_outputs})
  add_custom_command(OUTPUT ${outs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${NNC_EXECUTABLE} ${model} -o ${out_c} --depfile ${dir}/${base}.d ${args}
    DEPENDS ${model} ${weights} ${NNC_EXECUTABLE}
    DEPFILE ${dir}/${base}.d
    COMMENT "nnc: ${model} -> ${base}.c"
    VERBATIM)
endfunction()

# A macro, so that enable_language(ASM) runs in the caller's scope (it sets
# variables there; in a function they would vanish): nnc_add_model is called
# at file scope, where enable_language must be.
macro(nnc_add_model _nnc_target)
  set(_nnc_args ${ARGN})
  if("EMBED_WEIGHTS" IN_LIST _nnc_args)
    get_property(_nnc_languages GLOBAL PROPERTY ENABLED_LANGUAGES)
    if(NOT "ASM" IN_LIST _nnc_languages)
      enable_language(ASM)
    endif()
  endif()
  _nnc_add_model(${_nnc_target} ${ARGN})
endmacro()

function(_nnc_add_model target)
  cmake_parse_arguments(A "EMBED_WEIGHTS;TRAINING" "MODEL;WEIGHTS;BATCH;NETWORK;OPT;BLAS" "SET" ${ARGN})
  if(NOT A_MODEL)
    message(FATAL_ERROR "nnc_add_model(${target}): MODEL file.net is required")
  endif()
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "nnc_add_model(${target}): unknown arguments: ${A_UNPARSED_ARGUMENTS}")
  endif()
  if(A_EMBED_WEIGHTS AND NOT A_WEIGHTS)
    message(FATAL_ERROR "nnc_add_model(${target}): EMBED_WEIGHTS needs WEIGHTS file.safetensors")
  endif()
  get_filename_component(model ${A_MODEL} ABSOLUTE)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/${target})
  set(args)
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
  set(weights)
  set(weights_arg)
  if(A_WEIGHTS)
    get_filename_component(weights ${A_WEIGHTS} ABSOLUTE)
    if(A_EMBED_WEIGHTS)
      set(weights_arg --embed-weights ${weights})
    else()
      set(weights_arg --check-weights ${weights})
    endif()
  endif()

  set(sources ${dir}/${target}.c ${dir}/${target}.h)
  set(extra)
  if(A_EMBED_WEIGHTS)
    set(extra ${dir}/${target}_weights.S)
  endif()
  _nnc_generate(${model} ${dir}/${target}.c "${extra}" "${args};${weights_arg}" "${weights}")
  list(APPEND sources ${extra})
  if(A_TRAINING)
    set(extra)
    if(A_EMBED_WEIGHTS)
      set(extra ${dir}/${target}_train_weights.S)
    endif()
    _nnc_generate(${model} ${dir}/${target}_train.c "${extra}" "${args};--emit=train;${weights_arg}" "${weights}")
    list(APPEND sources ${dir}/${target}_train.c ${dir}/${target}_train.h ${extra})
  endif()

  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC ${dir})
  set_target_properties(${target} PROPERTIES C_STANDARD 99 C_STANDARD_REQUIRED ON)
  if(A_WEIGHTS AND NOT A_EMBED_WEIGHTS)
    string(TOUPPER "${target}" upper)
    string(MAKE_C_IDENTIFIER "${upper}" upper)
    target_compile_definitions(${target} PUBLIC ${upper}_WEIGHTS_PATH="${weights}")
  endif()
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
  if(A_TRAINING)
    find_package(Threads REQUIRED)  # the training module's threads
    target_link_libraries(${target} PUBLIC Threads::Threads)
  endif()
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

cmake_policy(POP)
