# Builds examples/embed (an application that compiles LeNet-5 with nnc as a
# build step, through cmake/nnc.cmake) from scratch and runs it. Then checks
# nnc_add_model's optimization rule (cmake/nnc.cmake) on the compile command of
# lenet5.c in compile_commands.json: with no build type and with Debug it gets
# -O3; a consumer's own -O1 in CMAKE_C_FLAGS is kept, without -O3 (configure
# only, in BIN-debug and BIN-o1).
#   cmake -DNNC=path/to/nnc -DSRC=repo -DBIN=scratch-dir -P example_embed.cmake
file(REMOVE_RECURSE ${BIN})
foreach(step
    "${CMAKE_COMMAND};-S;${SRC}/examples/embed;-B;${BIN};-DNNC_EXECUTABLE=${NNC};-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"
    "${CMAKE_COMMAND};--build;${BIN}"
    "${NNC};init;${SRC}/models/lenet5.net;--seed;3;-o;${BIN}/w.safetensors")
  execute_process(COMMAND ${step} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${step} failed (${rc}):\n${out}\n${err}")
  endif()
endforeach()
execute_process(COMMAND ${BIN}/classify ${BIN}/w.safetensors RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "image 3: class [0-9]")
  message(FATAL_ERROR "classify failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "examples/embed built and ran:\n${out}")

# The command that compiles lenet5.c in DIR's compile_commands.json, into VAR.
function(lenet5_command dir var)
  file(READ ${dir}/compile_commands.json json)
  string(JSON count LENGTH "${json}")
  math(EXPR last "${count} - 1")
  foreach(i RANGE ${last})
    string(JSON file GET "${json}" ${i} file)
    if(file MATCHES "lenet5\\.c$")
      string(JSON command GET "${json}" ${i} command)
      set(${var} "${command}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  message(FATAL_ERROR "${dir}/compile_commands.json has no lenet5.c")
endfunction()

# Configures examples/embed with ARGS (NAME default: the build above) and
# checks lenet5.c's compile command: it has the flag WANT and not REFUSE.
function(check_flags name args want refuse)
  set(dir ${BIN}-${name})
  if(name STREQUAL "default")
    set(dir ${BIN})
  else()
    file(REMOVE_RECURSE ${dir})
    execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC}/examples/embed -B ${dir} -DNNC_EXECUTABLE=${NNC}
                            -DCMAKE_EXPORT_COMPILE_COMMANDS=ON ${args}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "configuring ${name} failed (${rc}):\n${out}\n${err}")
    endif()
  endif()
  lenet5_command(${dir} command)
  if(NOT " ${command} " MATCHES " ${want} " OR (refuse AND " ${command} " MATCHES " ${refuse} "))
    message(FATAL_ERROR "nnc_add_model's optimization, ${name}: want ${want}, not ${refuse}, in:\n${command}")
  endif()
  message(STATUS "nnc_add_model's optimization, ${name}: ${want} (${command})")
endfunction()

# (gcc or clang, as the rest of nnc's build: MSVC would get /O2)
check_flags(default "" "-O3" "")
check_flags(debug "-DCMAKE_BUILD_TYPE=Debug" "-O3" "")
check_flags(o1 "-DCMAKE_C_FLAGS=-O1" "-O1" "-O3")
