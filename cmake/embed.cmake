# Turns the text file IN into a C source OUT that defines
#   const char NAME[] = "...";
# Used to carry runtime/snippets/*.c inside the nnc binary, so generated code
# needs no files beside nnc at run time. Invoked as cmake -DIN= -DOUT= -DNAME= -P.
#
# A line that is exactly  #include "FILE"  with FILE in IN's directory is
# replaced by FILE's text, expanded the same way (so a snippet split into files
# is still one string, and C code that #includes the snippet sees the same
# text): the whole text for a plain file (activations.h), the text from its
# first "/* @kernel " marker line on for a sectioned one (its preamble is the
# file's documentation, which the code generator leaves out anyway). A FILE
# that does not exist is an error, not an empty string.

# Sets ${out} to the expanded text of path; depth guards against include cycles.
function(nnc_expand path out depth)
  if(depth GREATER 8)
    message(FATAL_ERROR "embed.cmake: #include nesting too deep at ${path}")
  endif()
  if(NOT EXISTS "${path}")
    message(FATAL_ERROR "embed.cmake: ${path} does not exist")
  endif()
  get_filename_component(dir "${path}" DIRECTORY)
  file(READ "${path}" text)
  string(REGEX MATCHALL "(^|\n)#include \"[A-Za-z0-9_.]+\"\n" lines "${text}")
  foreach(line IN LISTS lines)
    string(REGEX REPLACE "^\n?#include \"([A-Za-z0-9_.]+)\"\n$" "\\1" name "${line}")
    math(EXPR next "${depth} + 1")
    nnc_expand("${dir}/${name}" sub ${next})
    string(FIND "${sub}" "\n/* @kernel " mark)
    if(mark GREATER_EQUAL 0)
      math(EXPR mark "${mark} + 1")
      string(SUBSTRING "${sub}" ${mark} -1 sub)
    endif()
    string(REPLACE "#include \"${name}\"\n" "${sub}" text "${text}")
  endforeach()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

nnc_expand("${IN}" text 0)
string(HEX "${text}" text)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${text}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed.cmake; do not edit */\n#include <stddef.h>\nextern const char ${NAME}[];\nextern const size_t ${NAME}_len;\nconst char ${NAME}[] = {\n${bytes}0x00};\nconst size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")
