# Builds examples/embed (an application that compiles LeNet-5 with nnc as a
# build step, through cmake/nnc.cmake) from scratch and runs it.
#   cmake -DNNC=path/to/nnc -DSRC=repo -DBIN=scratch-dir -P example_embed.cmake
file(REMOVE_RECURSE ${BIN})
foreach(step
    "${CMAKE_COMMAND};-S;${SRC}/examples/embed;-B;${BIN};-DNNC_EXECUTABLE=${NNC}"
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
