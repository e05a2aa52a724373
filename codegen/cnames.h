/* cnames.h: how user text reaches generated code, in every emitter.
 *
 * Nothing the user wrote (a network, input or output name, a layer name, a
 * file path, a message) reaches generated C except through the functions
 * below: three that form C identifiers, one that makes text safe inside a
 * comment, one that makes a string literal, and one that checks a header's
 * file name. The scheme for identifiers is by construction, not a deny-list:
 *
 *   - code nnc adds for itself (kernels, loader, helpers' types and macros)
 *     uses only the prefixes nnc_ and NNC_, and short locals (m, n, i, ws,
 *     params, t12, ...) inside functions;
 *   - the network's name becomes the prefix P: lowercased, with every
 *     character outside [a-z0-9_] as '_', and "net_" put in front when it
 *     starts with a digit or '_' or would enter nnc's namespace (P = "nnc" or
 *     "nnc_..."); P never stands alone: every file-scope name of the module is
 *     P followed by '_' and one of nnc's fixed words (P_model, P_create,
 *     P_forward, P_train_step ...) and every macro is upper(P) followed by '_'
 *     and a fixed word (P_OK, P_MAX_BATCH, P_IN_IMAGE_FLOATS). So a network
 *     called int, main, memcpy, errno or m still yields int_model, main_create,
 *     memcpy_forward: no keyword, library name or local of the generated code
 *     has that shape (a library function named "<word>_create" etc. declared
 *     by a header the user includes beside P.h is the one way left to collide;
 *     the header says so);
 *   - an input or output becomes in_NAME or out_NAME (the name sanitized as
 *     above, case kept), made unique ignoring case (so that the upper-case
 *     macros P_IN_NAME_FLOATS are unique too) by a "_2", "_3" suffix. No
 *     keyword, macro, library name or local of nnc's begins with in_ or out_.
 */
#ifndef NNC_CODEGEN_CNAMES_H
#define NNC_CODEGEN_CNAMES_H

#include "../common/common.h"

#include <stdbool.h>
#include <stddef.h>

/* The C prefix P of a network, in a (never truncated). */
const char *cg_c_prefix(Arena *a, const char *network_name);
/* upper(s): the macro form of a C name, in a. */
const char *cg_c_upper(Arena *a, const char *s);
/* "in_" or "out_" (kind) + the sanitized DSL name, in a; the caller makes it
 * unique (cg_same_c_name). */
const char *cg_io_base(Arena *a, const char *kind, const char *dsl_name);
/* Whether two C names are the same ignoring case (their macros would be). */
bool cg_same_c_name(const char *a, const char *b);

/* Appends s made safe inside a C block comment, on one line: control bytes,
 * backslashes and bytes outside ASCII as \xNN, a space inside every "* /",
 * "/ *" and "??" so no comment ends, nests or forms a trigraph. */
void cg_append_comment(StrBuf *out, const char *s);
/* Appends s as a C string literal, quotes included: '"', '\\' and '?' escaped,
 * control bytes and bytes outside ASCII as three-digit octal escapes. */
void cg_append_string_literal(StrBuf *out, const char *s);
/* Whether name (a header's file name, no directory) can stand in
 * #include "name" portably: letters, digits, spaces and "_-.+", not starting
 * with '.' or a space.
 * Else false with a sentence in err. */
bool cg_header_name_ok(const char *name, char *err, size_t errlen);

#endif
