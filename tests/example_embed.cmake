# The installed package, as another project uses it (issue 12, item 3):
#  1. `cmake --install` of this build into BIN/stage: the tool, libnnc.so and
#     libnnc.a, include/nnc/nnc.h, nnc.pc and the CMake package are there, and
#     libnnc.so exports exactly the functions nnc.h declares (nm -D);
#  2. examples/embed, configured against the stage alone (find_package), is
#     built and run: LeNet-5 with its weights linked in (EMBED_WEIGHTS);
#  3. nnc_add_model's optimization rule on lenet5.c's compile command in
#     compile_commands.json: -O3 with no build type and with Debug; a
#     consumer's own -O1 in CMAKE_C_FLAGS kept, without -O3 (configure only);
#  4. tests/install/consumer.c built with nothing but `pkg-config --cflags
#     --libs nnc` against libnnc.so, and with `--static` against libnnc.a,
#     and run;
#  5. tests/install/depproject copied, built and run: consumer.c linked to the
#     imported targets nnc::nnc and nnc::nnc_static, and a model (TRAINING,
#     WEIGHTS) that imports a file from another directory, once more with
#     the weights linked in (EMBED_WEIGHTS: the same outputs); the imported
#     file is edited and the next build must rerun nnc (the depfile) and
#     change the programs' output.
#   cmake -DNNC=path/to/nnc -DSRC=repo -DBUILD=nnc-build-dir -DBIN=scratch-dir
#         [-DGENERATOR=Ninja] [-DCC=cc] [-DSAN_FLAGS=-fsanitize=...] -P example_embed.cmake
file(REMOVE_RECURSE ${BIN})
file(MAKE_DIRECTORY ${BIN})
set(stage ${BIN}/stage)
if(NOT GENERATOR)
  set(GENERATOR "Unix Makefiles")
endif()
if(NOT CC)
  set(CC cc)
endif()

# Runs a command (a list), FATAL_ERROR with its output if it fails; its
# standard output into OUT_VAR when given.
function(run out_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "${cmd} failed (${rc}):\n${out}\n${err}")
  endif()
  if(out_var)
    set(${out_var} "${out}" PARENT_SCOPE)
  endif()
endfunction()

# ---- 1. the staged install ----
run("" ${CMAKE_COMMAND} --install ${BUILD} --prefix ${stage})
foreach(f bin/nnc lib/libnnc.so lib/libnnc.a include/nnc/nnc.h lib/pkgconfig/nnc.pc
          lib/cmake/nnc/nncConfig.cmake lib/cmake/nnc/nncConfigVersion.cmake lib/cmake/nnc/nnc.cmake)
  if(NOT EXISTS ${stage}/${f})
    message(FATAL_ERROR "cmake --install put no ${f} under ${stage}")
  endif()
endforeach()
# libnnc.so's dynamic symbols: the header's functions, nothing more or less
run("" ${CMAKE_COMMAND} -DHEADER=${stage}/include/nnc/nnc.h -DOUT=${BIN}/header.map -DLIST=${BIN}/header.list
    -P ${SRC}/cmake/exports.cmake)
file(STRINGS ${BIN}/header.list want)
run(nm_out nm -D --defined-only ${stage}/lib/libnnc.so)
string(REGEX MATCHALL "[0-9a-fA-F]+ [A-Za-z] [^\n]+" lines "${nm_out}")
set(got)
foreach(l ${lines})
  string(REGEX REPLACE "^[0-9a-fA-F]+ [A-Za-z] " "" name "${l}")
  list(APPEND got ${name})
endforeach()
list(SORT got)
list(SORT want)
if(NOT got STREQUAL want)
  message(FATAL_ERROR "libnnc.so exports\n  ${got}\nbut include/nnc/nnc.h declares\n  ${want}")
endif()
list(LENGTH got n)
message(STATUS "staged install complete; libnnc.so exports the ${n} functions of nnc.h")

# ---- 2. examples/embed against the stage ----
set(ex ${BIN}/embed)
run("" ${CMAKE_COMMAND} -S ${SRC}/examples/embed -B ${ex} -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${stage}
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON)
run("" ${CMAKE_COMMAND} --build ${ex})
run(out ${ex}/classify)
if(NOT out MATCHES "image 3: class [0-9]")
  message(FATAL_ERROR "classify printed:\n${out}")
endif()
if(NOT EXISTS ${ex}/lenet5/lenet5_weights.S)
  message(FATAL_ERROR "EMBED_WEIGHTS wrote no lenet5_weights.S")
endif()
message(STATUS "examples/embed built against the stage and ran, weights linked in:\n${out}")

# ---- 3. the optimization rule ----
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
  set(dir ${ex}-${name})
  if(name STREQUAL "default")
    set(dir ${ex})
  else()
    run("" ${CMAKE_COMMAND} -S ${SRC}/examples/embed -B ${dir} -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${stage}
        -DCMAKE_EXPORT_COMPILE_COMMANDS=ON ${args})
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

# ---- 4. a program built with pkg-config alone ----
# In a sanitizer build (NNC_SANITIZE) libnnc.so and libnnc.a are instrumented,
# and a program that links them must link the sanitizer runtimes too (first in
# the library list, for ASan): SAN_FLAGS are the build's -fsanitize flags,
# added to both links. Nothing else comes from nnc's build.
find_program(PKG_CONFIG pkg-config REQUIRED)
separate_arguments(san UNIX_COMMAND "${SAN_FLAGS}")
set(pc ${CMAKE_COMMAND} -E env PKG_CONFIG_PATH=${stage}/lib/pkgconfig ${PKG_CONFIG})
run(shared_flags ${pc} --cflags --libs nnc)
run(static_flags ${pc} --cflags --libs --static nnc)
separate_arguments(shared_flags UNIX_COMMAND "${shared_flags}")
separate_arguments(static_flags UNIX_COMMAND "${static_flags}")
# With both libraries in lib/, -lnnc finds libnnc.so; a program that wants the
# archive names it (GNU ld's -l:libnnc.a, or -Wl,-Bstatic -lnnc -Wl,-Bdynamic).
# The private libraries come from --static (Clang/LLVM, zlib, libm, libdl,
# pthreads, libstdc++): a link that lacks one fails here.
list(TRANSFORM static_flags REPLACE "^-lnnc$" "-l:libnnc.a")
set(consumer ${SRC}/tests/install/consumer.c)
run("" ${CC} -std=c11 -Wall -Wextra -Werror ${san} ${consumer} ${shared_flags} -Wl,-rpath,${stage}/lib
    -o ${BIN}/consumer_shared)
run("" ${CC} -std=c11 -Wall -Wextra -Werror ${san} ${consumer} ${static_flags} -o ${BIN}/consumer_static)
run(dyn readelf -d ${BIN}/consumer_shared)
if(NOT dyn MATCHES "libnnc\\.so\\.0")
  message(FATAL_ERROR "consumer_shared does not load libnnc.so.0:\n${dyn}")
endif()
run(dyn readelf -d ${BIN}/consumer_static)
if(dyn MATCHES "libnnc\\.so")
  message(FATAL_ERROR "consumer_static loads libnnc.so (--static should link libnnc.a):\n${dyn}")
endif()
foreach(kind shared static)
  run(out ${BIN}/consumer_${kind})
  if(NOT out MATCHES "network tiny, 1 input \\(x, 4\\), 1 output \\(y, 3\\)" OR NOT out MATCHES "bad.net:[0-9]+:[0-9]+: error")
    message(FATAL_ERROR "consumer_${kind} printed:\n${out}")
  endif()
endforeach()
message(STATUS "pkg-config consumers (libnnc.so, libnnc.a) built and ran:\n${out}")

# ---- 5. editing an imported file rebuilds the model ----
set(dp ${BIN}/depproject)
file(COPY ${SRC}/tests/install/depproject/ DESTINATION ${dp})
run("" ${stage}/bin/nnc init ${dp}/model/tiny.net --seed 5 -o ${dp}/w.safetensors)
run("" ${CMAKE_COMMAND} -S ${dp} -B ${dp}/build -G ${GENERATOR} -DCMAKE_PREFIX_PATH=${stage}
    -DTINY_WEIGHTS=${dp}/w.safetensors -DCONSUMER=${consumer} "-DSAN_FLAGS=${SAN_FLAGS}"
    -DCMAKE_C_FLAGS=-O1)  # (the optimization rule keeps it: four generated modules compile faster)
run("" ${CMAKE_COMMAND} --build ${dp}/build)
foreach(kind nnc nnc_static)  # the imported targets nnc::nnc and nnc::nnc_static
  run(out ${dp}/build/consumer_${kind})
  if(NOT out MATCHES "network tiny, 1 input")
    message(FATAL_ERROR "consumer_${kind} (linked to nnc::${kind}) printed:\n${out}")
  endif()
endforeach()
run(before ${dp}/build/app)
run(embedded ${dp}/build/app_embedded)  # the same weights, linked in (EMBED_WEIGHTS, TRAINING)
if(NOT embedded STREQUAL before)
  message(FATAL_ERROR "with its weights linked in, the model computes\n${embedded}instead of\n${before}")
endif()
run(noop ${CMAKE_COMMAND} --build ${dp}/build)
if(noop MATCHES "nnc: ")
  message(FATAL_ERROR "a build with nothing changed reran nnc:\n${noop}")
endif()
file(READ ${dp}/shared/blocks.net blocks)
string(REPLACE "relu" "sigmoid" blocks "${blocks}")
file(WRITE ${dp}/shared/blocks.net "${blocks}")
run(rebuild ${CMAKE_COMMAND} --build ${dp}/build)
if(NOT rebuild MATCHES "nnc: [^\n]*tiny\\.net -> tiny\\.c")
  message(FATAL_ERROR "editing shared/blocks.net (imported by model/tiny.net) did not rerun nnc:\n${rebuild}")
endif()
run(after ${dp}/build/app)
run(after_embedded ${dp}/build/app_embedded)
if(before STREQUAL after OR NOT after MATCHES "training module: [0-9]+ tensors" OR NOT after_embedded STREQUAL after)
  message(FATAL_ERROR "the output did not change after the imported file was edited, or not alike:\n"
                      "${before}\n${after}\n${after_embedded}")
endif()
message(STATUS "the edited import rebuilt the model:\n${before}${after}")
