/* concat_elim.h: producers write straight into their slice of a concat (-O2). */
#ifndef NNC_PASSES_CONCAT_ELIM_H
#define NNC_PASSES_CONCAT_ELIM_H

#include "../ir/ir.h"

/* Marks every channel concat whose inputs can all be written in place as
 * in_place (concat_elim.c). Never fails; err is for the pass interface. */
bool pass_concat_elim(IrGraph *g, char *err, size_t errlen);

#endif
