/* imports.c: files, imports and declarations (elab_internal.h).
 *
 * The main file and everything it imports, each file once, are parsed into one
 * list of declarations (a file's imports before its own); the declarations are
 * checked (blocks and networks defined once, a block returns), one network of
 * the main file is picked, and elab.c elaborates it. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "elab_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dir_of(Arena *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? arena_strndup(a, path, (size_t)(slash - path + 1)) : arena_strdup(a, "");
}

/* The text of a .net file: regular files and pipes (`nnc <(sed ... m.net)`
 * reads a pipe, and a FIFO with no writer reads as empty rather than
 * blocking), at most FE_MAX_SOURCE_BYTES, so /dev/zero or a mistyped path to a
 * data set ends in an error, not in an exhausted memory. NULL with *why. */
static char *read_net(const char *path, size_t *len, const char **why)
{
    char *text = nnc_read_file_max(path, FE_MAX_SOURCE_BYTES, NNC_READ_PIPE, len, why);
    if (!text && *why == nnc_err_too_large)
        *why = "the file is larger than 16 MiB; .net sources are limited to 16 MiB each (split a larger one with import)";
    return text;
}

/* Records key as loaded; false when it already was (each file is imported once only). */
static bool first_time(Loader *L, const char *key)
{
    for (int i = 0; i < L->n_seen; i++)
        if (strcmp(L->seen[i], key) == 0) return false;
    L->seen = nnc_xrealloc(L->seen, (size_t)(L->n_seen + 1) * sizeof *L->seen);
    L->seen[L->n_seen++] = arena_strdup(L->a, key);
    return true;
}

static bool load_file(Loader *L, const char *path, Loc from, int depth)
{
    char *real = realpath(path, NULL);
    bool first = first_time(L, real ? real : path);
    free(real);
    if (!first) return true;
    size_t len;
    const char *err;
    char *text = read_net(path, &len, &err);
    if (!text) {
        diag_error(L->d, from, "cannot read '%s': %s%s", path, err,
                   path[0] == '/' ? "" : " (an import is found relative to the file that imports it)");
        return false;
    }
    bool ok = elab_load_text(L, path, text, len, from, depth);
    free(text);
    return ok;
}

/* One import through the options' resolver (FeResolver): importer is the
 * importing file's name, import the name as written, disk_path where the
 * disk would be read. Files are told apart by the resolver's names. */
static bool load_import(Loader *L, const char *importer, const char *import, const char *disk_path, Loc from,
                        int depth)
{
    FeImport imp = {0};
    int rc = L->opt->resolve(L->opt->resolve_ctx, importer, import, &imp);
    if (rc > 0) return load_file(L, disk_path, from, depth);
    if (rc == 0 && !imp.text) imp.why = "the import resolver returned no text";
    if (rc < 0 || !imp.text) {
        diag_error(L->d, from, "cannot import '%s': %s", import, imp.why ? imp.why : "the import resolver did not find it");
        return false;
    }
    const char *name = arena_strdup(L->a, imp.name ? imp.name : disk_path);  /* outlives the next call */
    size_t len = imp.len ? imp.len : strlen(imp.text);
    if (!first_time(L, name)) return true;
    if (len > FE_MAX_SOURCE_BYTES) {
        diag_error(L->d, from, "cannot import '%s': the text is larger than 16 MiB; .net sources are limited to 16 MiB each",
                   import);
        return false;
    }
    return elab_load_text(L, name, imp.text, len, from, depth);  /* the text is copied before any other call */
}

/* Parses one file and, first, everything it imports; from is the import
 * statement that named it (no position for the main file). */
bool elab_load_text(Loader *L, const char *path, const char *text, size_t len, Loc from, int depth)
{
    if (depth > 64) {
        diag_error(L->d, from, "importing '%s': imports nest more than 64 files deep", path);
        return false;
    }
    const SrcFile *file = diag_add_file(L->d, path, text, len);
    if (depth == 0) L->main_file = file;
    Decl *decls;
    if (!fe_parse(L->d, file, &decls)) return false;
    if (depth == 0) L->main_decls = decls;
    for (Decl *d = decls; d; d = d->next) {
        if (d->kind != DECL_IMPORT) continue;
        const char *p = d->name[0] == '/' ? d->name : arena_printf(L->a, "%s%s", dir_of(L->a, path), d->name);
        bool ok = L->opt && L->opt->resolve ? load_import(L, path, d->name, p, d->loc, depth + 1)
                                            : load_file(L, p, d->loc, depth + 1);
        if (!ok) return false;
    }
    /* splice this file's declarations after everything it imported */
    *L->tail = decls;
    while (*L->tail) L->tail = &(*L->tail)->next;
    return true;
}

/* Does any path through these statements return? (A block that never says
 * 'return' is reported where it is defined, called or not.) */
static bool has_return(const Stmt *s)
{
    for (; s; s = s->next)
        if (s->kind == ST_RETURN || has_return(s->body) || has_return(s->orelse)) return true;
    return false;
}

static bool check_params(Diag *d, const Decl *x)
{
    NameMap seen = {0};
    int n = 0;
    bool ok = true;
    for (const Param *p = x->params; p && ok; p = p->next, n++) {
        if (x->kind == DECL_BLOCK && n == MAX_BLOCK_PARAMS) {
            diag_error(d, p->loc, "block '%s' has more than %d parameters", x->name, MAX_BLOCK_PARAMS);
            ok = false;
        } else if (elab_map_get(&seen, p->name)) {
            diag_error(d, p->loc, "parameter '%s' appears twice", p->name);
            ok = false;
        }
        elab_map_put(&seen, p->name, (void *)p);
    }
    elab_map_free(&seen);
    return ok;
}

/* Checks the declarations of all files and fills blocks (name -> Decl). */
bool elab_check_decls(Diag *d, const Decl *all, NameMap *blocks)
{
    NameMap networks = {0};
    bool ok = true;
    for (const Decl *x = all; x && ok; x = x->next) {
        if (x->kind != DECL_BLOCK && x->kind != DECL_NETWORK) continue;
        NameMap *m = x->kind == DECL_BLOCK ? blocks : &networks;
        const Decl *y = elab_map_get(m, x->name);
        if (x->kind == DECL_BLOCK && elab_find_builtin(x->name)) {
            diag_error(d, x->loc, "'%s' is a built-in operation; give the block another name", x->name);
            ok = false;
        } else if (y) {
            diag_error(d, x->loc, "%s '%s' is defined twice", x->kind == DECL_BLOCK ? "block" : "network", x->name);
            diag_note(d, y->loc, "first defined here");
            ok = false;
        } else if (!check_params(d, x)) {
            ok = false;
        } else if (x->kind == DECL_BLOCK && !has_return(x->body)) {
            diag_error(d, x->loc, "block '%s' has no 'return'; a block gives its result with 'return VALUE'", x->name);
            ok = false;
        }
        elab_map_put(m, x->name, (void *)x);
    }
    for (const Decl *x = all; x && ok; x = x->next)
        if (x->kind == DECL_TRAIN && !elab_map_get(&networks, x->name)) {
            diag_error(d, x->loc, "train section for unknown network '%s'", x->name);
            ok = false;
        }
    elab_map_free(&networks);
    return ok;
}

/* The network of the main file that opt names, or its only one. Whole-file
 * messages carry a position like every other: the second network of an
 * ambiguous file, the first one of a file without the --network asked for,
 * and 1:1 of a file with none (empty: no source line is shown). */
const Decl *elab_pick_network(Diag *d, const Loader *L, const FeOptions *opt)
{
    const Decl *found = NULL, *first = NULL, *second = NULL;
    int count = 0;
    StrBuf names = {0};
    for (const Decl *x = L->main_decls; x; x = x->next) {
        if (x->kind != DECL_NETWORK) continue;
        count++;
        if (!first) first = x;
        else if (!second) second = x;
        sb_printf(&names, "%s%s", names.len ? ", " : "", x->name);
        if (opt && opt->network ? strcmp(x->name, opt->network) == 0 : !found) found = x;
    }
    Loc top = {L->main_file, 1, 1};
    if (opt && opt->network && !found)
        diag_error(d, first ? first->loc : top, "no network named '%s' (given with --network); this file defines: %s",
                   opt->network, names.len ? names.data : "none");
    else if (count == 0)
        diag_error(d, top, "the file defines no network; write 'network NAME { ... }'");
    else if (count > 1 && !(opt && opt->network))
        diag_error(d, second->loc, "the file defines several networks (%s); pick one with --network NAME", names.data);
    sb_free(&names);
    return d->errors ? NULL : found;
}

static IrGraph *compile(Loader *L, const FeOptions *opt)
{
    NameMap blocks = {0};
    const Decl *net = elab_check_decls(L->d, L->decls, &blocks) ? elab_pick_network(L->d, L, opt) : NULL;
    IrGraph *g = NULL;
    if (net) {
        Elab E;
        memset(&E, 0, sizeof E);
        E.d = L->d;
        E.a = L->a;
        E.blocks = &blocks;
        g = elab_network(&E, net, opt);
        elab_map_free(&E.names);
    }
    elab_map_free(&blocks);
    return g;
}

/* A loader whose main file is path (seen, so importing it again is caught); free L->seen after. */
void elab_loader_init(Loader *L, const char *path, Diag *d)
{
    memset(L, 0, sizeof *L);
    L->d = d;
    L->a = d->arena;
    L->tail = &L->decls;
    char *real = realpath(path, NULL);
    L->seen = nnc_xmalloc(sizeof *L->seen);
    L->seen[L->n_seen++] = arena_strdup(L->a, real ? real : path);
    free(real);
}

char *fe_read_source(const char *path, size_t *len, Diag *d)
{
    const char *err;
    char *text = read_net(path, len, &err);
    if (!text) diag_error(d, (Loc){0}, "cannot read '%s': %s", path, err);
    return text;
}

IrGraph *fe_compile_text(const char *path, const char *text, size_t len, const FeOptions *opt, Diag *d)
{
    Loader L;
    elab_loader_init(&L, path, d);
    L.opt = opt;
    IrGraph *g = elab_load_text(&L, path, text, len, (Loc){0}, 0) ? compile(&L, opt) : NULL;
    free(L.seen);
    return g;
}

IrGraph *fe_compile(const char *path, const FeOptions *opt, Diag *d)
{
    size_t len;
    char *text = fe_read_source(path, &len, d);
    if (!text) return NULL;
    IrGraph *g = fe_compile_text(path, text, len, opt, d);
    free(text);
    return g;
}

