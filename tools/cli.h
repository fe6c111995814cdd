/* cli.h - shared pieces of the pare command-line tool. Each subcommand lives in a
 * tools/cmd_*.c file as `int cmd_NAME(int argc, char **argv)` with a help text, and is
 * listed in the table in tools/pare.c. */
#ifndef PARE_CLI_H
#define PARE_CLI_H

#include "eval/eval.h"
#include "model/model.h"
#include "model/sparse.h"
#include "calib/calib.h"

#define PARE_VERSION "0.1.0"

extern const char *g_cmd;          /* the running subcommand, for messages */
int die(const char *fmt, const char *arg);   /* "pare CMD: message" on stderr, returns 1 */
int die_st(void);                            /* the library's last error, returns 1 */

typedef struct flags {
    int argc; char **argv;
    const char *pos[4]; int n_pos;
    int bad;
} flags;
/* valued: NULL-terminated options that take a value (--name VALUE or --name=VALUE) */
void parse(flags *f, int argc, char **argv, const char *const *valued);
int check_unknown(flags *f, const char *const *valued, const char *const *booleans);
const char *opt_str(flags *f, const char *name, const char *def);
int opt_bool(flags *f, const char *name);
long opt_int(flags *f, const char *name, long def);
double opt_num(flags *f, const char *name, double def);
void set_threads(flags *f);                  /* --threads T */
int load(flags *f, const char *path, pare_model **m); /* honours --tokenizer; 1 on error */
int same_file(const char *a, const char *b);
/* The calibration windows of the text file calib for m (calib NULL: none, cd left empty):
 * nsamples windows of *seqlen tokens (capped at m's training context, written back), order
 * "random" or "first". With --max-memory SIZE on the command line, also the memory check
 * (calib_plan_bytes). 1 on error, with the message printed; m is not freed. */
int load_calib(const pare_model *m, const char *calib, long nsamples, long *seqlen, long seed, const char *order,
               calib_data *cd);
/* "512M", "2G", "1.5GB", "300000K", plain bytes; -1 if not a size */
double parse_size(const char *s);
#define MAXMEM_HELP \
    "  --max-memory SIZE  refuse before the run (one line with the estimate) when the estimated\n" \
    "                    peak (process, one block, calibration activations and Grams) exceeds SIZE\n"
/* "N:M" with 0 < N < M <= 16; 1 (after the message) if not */
int parse_nm(const char *s, int *n, int *m);
/* load for running (ppl, generate, bench): then compress N:M-sparse block matrices as
 * --sparse auto (default: values in the tensor's type) | q8 (8-bit values) | off says, and
 * say so on stderr. sum may be NULL. 1 on error. */
int load_engine(flags *f, const char *path, pare_model **m, pare_nm_summary *sum);
#define SPARSE_HELP \
    "  --sparse S        N:M-sparse block matrices (e.g. from pare prune --nm) are compressed\n" \
    "                    and run by the sparse kernels: auto (default; values kept in their\n" \
    "                    type), q8 (8-bit values: smaller, faster, not exact), off (dense)\n" \
    "  --layout L        engine (default): the block matrices and output head are moved into\n" \
    "                    huge-page memory at load, Q8_0/Q4_0 with 8 rows interleaved on AVX2\n" \
    "                    (faster decode, same results); file: computed from the file mapping\n" \
    "                    as stored (pages the system can drop when memory runs short)\n"

#define EXIT_HELP \
    "  --vote            a model with early exits (pare tune): each position's distribution is\n" \
    "                    the most confident exit's, p(v) = max_e p_e(v) renormalised\n" \
    "                    (default: the last exit alone)\n" \
    "  --exit K          a model with early exits: exit K alone (0 = the shallowest)\n"
#define CMD(name) extern const char *name##_HELP; int cmd_##name(int argc, char **argv)
CMD(info); CMD(ppl); CMD(generate); CMD(convert); CMD(synth); CMD(prune); CMD(train); CMD(bench);
CMD(evalmc); CMD(makecloze); /* eval-mc, make-cloze (cmd_evalmc.c) */
CMD(quantize);
CMD(profile); CMD(compress); /* cmd_compress.c */
CMD(tune); CMD(report);
#undef CMD
/* structured pruning (cmd_prune_structured.c): the --method value if it is one of its
 * methods, else NULL; cmd_prune hands those to cmd_prune_structured */
const char *structured_method_arg(int argc, char **argv);
int cmd_prune_structured(int argc, char **argv, const char *method);
/* block removal (cmd_prune_blocks.c): sleb, sleb-oneshot, shortgpt; same pattern */
const char *blocks_method_arg(int argc, char **argv);
int cmd_prune_blocks(int argc, char **argv, const char *method);

#endif
