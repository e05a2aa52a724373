# Turns the text file IN into a C source OUT that defines
#   const char NAME[] = "...";
# Used to carry runtime/snippets/*.c inside the nnc binary, so generated code
# needs no files beside nnc at run time. Invoked as cmake -DIN= -DOUT= -DNAME= -P.
file(READ ${IN} text HEX)
string(LENGTH "${text}" n)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${text}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed.cmake; do not edit */\n#include <stddef.h>\nextern const char ${NAME}[];\nextern const size_t ${NAME}_len;\nconst char ${NAME}[] = {\n${bytes}0x00};\nconst size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")
