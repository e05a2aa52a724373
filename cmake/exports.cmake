# exports.cmake: the linker version script of libnnc.so, from the public header.
#   cmake -DHEADER=include/nnc/nnc.h -DOUT=nnc.map -P exports.cmake
# Every function the header declares (an identifier nnc_... followed by "(",
# comments and preprocessor lines removed first) is global; everything else
# in the library (frontend, passes, codegen, runtime, the C++ of the JIT and
# the libstdc++ templates it instantiates) is local. So the list follows the
# header as functions are added to it, with nothing to keep in step by hand.
# The file is rewritten only when its text changes (no needless relink).
file(READ ${HEADER} text)
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" " " text "${text}")  # /* ... */
string(REGEX REPLACE "//[^\n]*" " " text "${text}")                    # // ...
string(REGEX REPLACE "(^|\n)[ \t]*#[^\n]*" "\n" text "${text}")         # #define, #include ...
string(REGEX MATCHALL "nnc_[A-Za-z0-9_]+[ \t\r\n]*\\(" calls "${text}")
set(names)
foreach(c ${calls})
  string(REGEX REPLACE "[ \t\r\n]*\\($" "" c "${c}")
  list(APPEND names ${c})
endforeach()
list(REMOVE_DUPLICATES names)
list(SORT names)
if(NOT names)
  message(FATAL_ERROR "exports.cmake: ${HEADER} declares no nnc_* function")
endif()
set(map "/* libnnc.so exports the functions of include/nnc/nnc.h, nothing else (cmake/exports.cmake) */\n{\n  global:\n")
foreach(n ${names})
  string(APPEND map "    ${n};\n")
endforeach()
string(APPEND map "  local:\n    *;\n};\n")
set(old "")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT old STREQUAL map)
  file(WRITE ${OUT} "${map}")
endif()
if(LIST)  # the names alone, one a line (the install test compares them with nm -D)
  string(REPLACE ";" "\n" lines "${names}")
  file(WRITE ${LIST} "${lines}\n")
endif()
