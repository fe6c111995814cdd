/* test_luc.c - Edge-LLM layer-wise unified compression (src/quant/luc.c, METHODS.md 9 A, B):
 *   sparsity policy: the mean is the target to 1e-6 for random sensitivities and targets,
 *     with and without the cap binding; every block in [0, cap]; the most sensitive block gets
 *     the least; non-increasing in e; all-equal e -> uniform; bad targets refused;
 *   bits rule: blocks above the mean sensitivity get the high bits, the others the base;
 *   budget search: never above the budget; at least as good as brute force on a slightly
 *     smaller budget and never better than brute force on the budget (3 blocks x 27 options);
 *     an unconstrained budget gives the sum of per-block minimum errors; too small refused;
 *     with the loss objective the same against brute force over the loss costs; refused
 *     without a loss profile;
 *   LUC at a size: within the size, the mean of the policy is the target, a slightly smaller
 *     target does not fit; too small refused; the uniform allocations that fit a size are the
 *     smallest sparsities that do, one per bit-width that can;
 *   profile on a small random F16 model: error exactly 0 at ratio 0 and at 16 bits, rising
 *     with the ratio and with fewer bits; the model is unchanged afterwards; the loss profile:
 *     exactly 0 at 16 bits, and a setting's loss change equals the NLL of a whole-model run
 *     of a copy whose block was rounded by hand, less the dense NLL; luc_calib_loss is the
 *     dense NLL;
 *   compress: uniform S, B equals prune_model (SparseGPT S) then quant_model (RTN intB-gG)
 *     byte for byte on every tensor; 0-sparsity blocks stay as they were and 16-bit blocks
 *     are their F16 values; the nominal sizes follow the formulas. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "model/synth.h"
#include "kernels/kernels.h"
#include "quant/luc.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t g_rng = 0x1cc5eedull;
static double urand(void) {
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

/* ---- sparsity policy -------------------------------------------------------------------- */
static void check_policy(const double *e, int L, double target, double cap) {
    double s[64], mean = 0;
    assert_int_equal(luc_sparsity_policy(e, L, target, cap, s), PARE_OK);
    int most = 0;
    for (int l = 0; l < L; l++) {
        mean += s[l] / L;
        assert_true(s[l] >= 0 && s[l] <= cap + 1e-12);
        if (e[l] > e[most]) most = l;
    }
    assert_true(fabs(mean - target) < 1e-6);
    for (int l = 0; l < L; l++) assert_true(s[most] <= s[l] + 1e-12);
    for (int i = 0; i < L; i++)
        for (int j = 0; j < L; j++)
            if (e[i] > e[j]) assert_true(s[i] <= s[j] + 1e-12);
}

static void test_policy_invariants(void **state) {
    (void)state;
    const double targets[] = {0, 0.1, 0.3, 0.5, 0.6, 0.8, 0.9, 0.95};
    for (int rep = 0; rep < 50; rep++) {
        const int L = 2 + (int)(urand() * 30);
        double e[64];
        for (int l = 0; l < L; l++) e[l] = rep % 2 ? urand() : exp(-8 * urand()); /* skewed: the cap binds */
        for (size_t t = 0; t < sizeof targets / sizeof *targets; t++) check_policy(e, L, targets[t], 0.95);
    }
    /* the cap binds: one very sensitive block, target 0.9 -> c s^ = 0.9 * 8 / 7 > 0.95 */
    double e[8] = {1, 0, 0, 0, 0, 0, 0, 0}, s[8];
    assert_int_equal(luc_sparsity_policy(e, 8, 0.9, 0.95, s), PARE_OK);
    double mean = 0;
    for (int l = 0; l < 8; l++) mean += s[l] / 8;
    assert_true(fabs(mean - 0.9) < 1e-9);
    for (int l = 1; l < 8; l++) assert_true(s[l] == 0.95);
    assert_true(fabs(s[0] - (7.2 - 7 * 0.95)) < 1e-9); /* the rest goes to the block with s^ = 0 */
    /* a partial cap: e = {1, 0.5, 0, 0}, target 0.7: c = 2.8 / 2.5 -> 1.12 > 0.95 for the last two */
    double e3[4] = {1, 0.5, 0, 0}, s3[4];
    assert_int_equal(luc_sparsity_policy(e3, 4, 0.7, 0.95, s3), PARE_OK);
    assert_true(s3[2] == 0.95 && s3[3] == 0.95);
    assert_true(fabs(s3[1] - (2.8 - 1.9)) < 1e-12 && s3[0] == 0);
    check_policy(e3, 4, 0.7, 0.95);
    /* the paper's rule without the cap binding: s = s^ / sum s^ * target L, the most sensitive 0 */
    double e2[4] = {0.0, 0.25, 0.5, 1.0}, s2[4];
    assert_int_equal(luc_sparsity_policy(e2, 4, 0.3, 0.95, s2), PARE_OK);
    const double sh[4] = {1, 0.75, 0.5, 0};
    for (int l = 0; l < 4; l++) assert_true(fabs(s2[l] - sh[l] / 2.25 * 1.2) < 1e-12);
    check_policy(e2, 4, 0.3, 0.95);
}

static void test_policy_equal_and_bad(void **state) {
    (void)state;
    double e[5] = {0.3, 0.3, 0.3, 0.3, 0.3}, s[5];
    assert_int_equal(luc_sparsity_policy(e, 5, 0.45, 0.95, s), PARE_OK);
    for (int l = 0; l < 5; l++) assert_true(fabs(s[l] - 0.45) < 1e-12);
    assert_int_equal(luc_sparsity_policy(e, 5, 0.96, 0.95, s), PARE_ERR_ARG);
    assert_int_equal(luc_sparsity_policy(e, 5, -0.1, 0.95, s), PARE_ERR_ARG);
    assert_int_equal(luc_sparsity_policy(e, 5, 0.5, 1.0, s), PARE_ERR_ARG);
    e[2] = NAN;
    assert_int_equal(luc_sparsity_policy(e, 5, 0.5, 0.95, s), PARE_ERR_ARG);
}

static void test_bits_rule(void **state) {
    (void)state;
    const double qs[6] = {0.1, 0.5, 0.2, 0.9, 0.3, 0.35}; /* mean 0.391667 */
    int b[6];
    luc_bits_policy(qs, 6, 4, 8, b);
    const int want[6] = {4, 8, 4, 8, 4, 4};
    for (int l = 0; l < 6; l++) assert_int_equal(b[l], want[l]);
    const double eq[3] = {0.2, 0.2, 0.2};
    luc_bits_policy(eq, 3, 3, 8, b);
    for (int l = 0; l < 3; l++) assert_int_equal(b[l], 3);
}

/* ---- budget search ---------------------------------------------------------------------- */
static void fake_profile(luc_profile *p, luc_sizes *z, int L) {
    memset(p, 0, sizeof *p);
    p->has_loss = 1;
    p->n_ratio = 4;
    const double r[4] = {0.1, 0.3, 0.5, 0.9};
    memcpy(p->ratio, r, sizeof r);
    p->n_bits = 3;
    p->bits[0] = 8; p->bits[1] = 4; p->bits[2] = 3;
    assert_int_equal(luc_profile_alloc(p, L), PARE_OK);
    for (int l = 0; l < L; l++) {
        const double a = 0.1 + urand(), q = 0.1 + urand();
        for (int i = 0; i < 4; i++) p->prune_err[l * 4 + i] = a * r[i] * r[i] * (1 + 0.1 * urand());
        p->quant_err[l * 3 + 0] = q * 0.001; p->quant_err[l * 3 + 1] = q * 0.1; p->quant_err[l * 3 + 2] = q * 0.5;
        /* loss changes: other scales, some slightly negative (as measured ones can be) */
        for (int i = 0; i < 4; i++) p->prune_loss[l * 4 + i] = (urand() - 0.1) * r[i] * r[i];
        for (int i = 0; i < 3; i++) p->quant_loss[l * 3 + i] = (urand() - 0.1) * 0.02 * (i + 1);
    }
    memset(z, 0, sizeof *z);
    z->n_layer = L; z->group = 128;
    z->numel = calloc((size_t)L, sizeof(int64_t));
    z->ngroups = calloc((size_t)L, sizeof(int64_t));
    for (int l = 0; l < L; l++) { z->numel[l] = 10000 + (int64_t)(urand() * 50000); z->ngroups[l] = z->numel[l] / 128; }
    z->fixed_bytes = 20000;
}

static double config_err(const luc_profile *p, int L, const float *s, const int *b) {
    double e = 0;
    for (int l = 0; l < L; l++) e += luc_prune_err(p, l, s[l]) + luc_quant_err(p, l, b[l]);
    return e;
}
static double config_bytes(const luc_sizes *z, int L, const float *s, const int *b) {
    double v = z->fixed_bytes * 8;
    for (int l = 0; l < L; l++) v += luc_block_bits(z, l, s[l], b[l], 1);
    return v / 8;
}

static double opt_cost(const luc_profile *p, const luc_budget_opts *o, int l, double s, int b) {
    return o->objective == LUC_OBJ_LOSS ? luc_prune_loss(p, l, s) + luc_quant_loss(p, l, b)
                                        : luc_prune_err(p, l, s) + luc_quant_err(p, l, b);
}

/* the best error of any configuration within budget (3 blocks) */
static double brute(const luc_profile *p, const luc_sizes *z, const luc_budget_opts *o, double budget) {
    double best = INFINITY;
    const int n = o->n_s * o->n_b;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < n; b++)
            for (int c = 0; c < n; c++) {
                const int k[3] = {a, b, c};
                double bytes = z->fixed_bytes * 8, e = 0;
                for (int l = 0; l < 3; l++) {
                    const double s = o->s[k[l] / o->n_b];
                    const int bb = o->b[k[l] % o->n_b];
                    bytes += luc_block_bits(z, l, s, bb, 1);
                    e += opt_cost(p, o, l, s, bb);
                }
                if (bytes / 8 <= budget && e < best) best = e;
            }
    return best;
}

static void test_budget_search(void **state) {
    (void)state;
    luc_profile p;
    luc_sizes z;
    fake_profile(&p, &z, 3);
    luc_budget_opts o;
    luc_budget_opts_default(&o);
    float s[3]; int b[3];
    double err, bytes;
    /* the smallest and largest configurations */
    float s0[3] = {0.8f, 0.8f, 0.8f}, s1[3] = {0, 0, 0};
    int b0[3] = {3, 3, 3}, b1[3] = {8, 8, 8};
    const double lo = config_bytes(&z, 3, s0, b0), hi = config_bytes(&z, 3, s1, b1);
    for (int t = 0; t <= 40; t++) {
        const double budget = lo + (hi - lo) * t / 40.0 + (t == 0 ? 1 : 0);
        assert_int_equal(luc_budget_search(&p, &z, budget, &o, s, b, &err, &bytes), PARE_OK);
        /* (s is returned as float: its rounding moves the size by < 1e-7 of it) */
        assert_true(bytes <= budget);
        assert_true(config_bytes(&z, 3, s, b) <= budget * (1 + 1e-7));
        assert_true(fabs(bytes - config_bytes(&z, 3, s, b)) < 1e-7 * bytes);
        assert_true(fabs(err - config_err(&p, 3, s, b)) < 1e-6 * err + 1e-15);
        assert_true(err >= brute(&p, &z, &o, budget) * (1 - 1e-12));
        /* the rounding of sizes to 1/4096 of the budget costs at most 3 steps */
        const double slack = 3.0 * (budget - z.fixed_bytes) / o.units;
        assert_true(err <= brute(&p, &z, &o, budget - slack) * (1 + 1e-12));
    }
    /* unconstrained: every block at its own minimum */
    assert_int_equal(luc_budget_search(&p, &z, hi * 10, &o, s, b, &err, NULL), PARE_OK);
    double want = 0;
    for (int l = 0; l < 3; l++) {
        double mn = INFINITY;
        for (int a = 0; a < o.n_s; a++)
            for (int c = 0; c < o.n_b; c++) {
                const double v = luc_prune_err(&p, l, o.s[a]) + luc_quant_err(&p, l, o.b[c]);
                if (v < mn) mn = v;
            }
        want += mn;
        assert_true(s[l] == 0 && b[l] == 8);
    }
    assert_true(fabs(err - want) < 1e-15);
    /* below the smallest configuration */
    assert_int_equal(luc_budget_search(&p, &z, lo * 0.99, &o, s, b, &err, NULL), PARE_ERR_ARG);
    /* the loss objective: the same optimality against brute force over the loss costs */
    o.objective = LUC_OBJ_LOSS;
    for (int t = 0; t <= 20; t++) {
        const double budget = lo + (hi - lo) * t / 20.0 + (t == 0 ? 1 : 0);
        assert_int_equal(luc_budget_search(&p, &z, budget, &o, s, b, &err, &bytes), PARE_OK);
        assert_true(bytes <= budget);
        double e = 0;
        for (int l = 0; l < 3; l++) e += opt_cost(&p, &o, l, s[l], b[l]);
        assert_true(fabs(err - e) < 1e-6);
        assert_true(err >= brute(&p, &z, &o, budget) - 1e-12);
        const double slack = 3.0 * (budget - z.fixed_bytes) / o.units;
        assert_true(err <= brute(&p, &z, &o, budget - slack) + 1e-12);
    }
    p.has_loss = 0; /* no loss profile: refused */
    assert_int_equal(luc_budget_search(&p, &z, hi, &o, s, b, &err, NULL), PARE_ERR_ARG);
    p.has_loss = 1;
    o.objective = LUC_OBJ_ERR;
    /* a bit-width the profile lacks */
    o.b[0] = 5;
    assert_int_equal(luc_budget_search(&p, &z, hi, &o, s, b, &err, NULL), PARE_ERR_ARG);
    luc_profile_free(&p);
    luc_sizes_free(&z);
}

static double policy_size(const luc_sizes *z, int L, const double *s, const int *b) {
    double v = z->fixed_bytes * 8;
    for (int l = 0; l < L; l++) v += luc_block_bits(z, l, s[l], b[l], 1);
    return v / 8;
}

static void test_policy_at_size(void **state) {
    (void)state;
    enum { L = 6 };
    luc_profile p;
    luc_sizes z;
    fake_profile(&p, &z, L);
    for (int l = 0; l < L; l++) p.e[l] = 0.01 + urand();
    const int bits[L] = {8, 4, 4, 3, 4, 8};
    const double cap = 0.9;
    double s[L], tmp[L], target;
    assert_int_equal(luc_sparsity_policy(p.e, L, 0, cap, tmp), PARE_OK);
    const double big = policy_size(&z, L, tmp, bits);
    assert_int_equal(luc_sparsity_policy(p.e, L, cap, cap, tmp), PARE_OK);
    const double small = policy_size(&z, L, tmp, bits);
    assert_true(small < big);
    for (int t = 0; t <= 10; t++) {
        const double budget = small + (big - small) * t / 10.0;
        assert_int_equal(luc_policy_at_size(&p, &z, bits, cap, budget, s, &target), PARE_OK);
        assert_true(target >= 0 && target <= cap);
        assert_true(policy_size(&z, L, s, bits) <= budget * (1 + 1e-12));
        double mean = 0;
        for (int l = 0; l < L; l++) mean += s[l] / L;
        assert_true(fabs(mean - target) < 1e-9);
        if (target > 1e-7) { /* the smallest target that fits */
            assert_int_equal(luc_sparsity_policy(p.e, L, target - 1e-7, cap, tmp), PARE_OK);
            assert_true(policy_size(&z, L, tmp, bits) > budget);
        }
    }
    /* the uniform allocations that fit: each fits, the next smaller sparsity of the set does not */
    luc_budget_opts bo;
    luc_budget_opts_default(&bo);
    for (int t = 0; t <= 10; t++) {
        const double budget = small + (big - small) * t / 10.0;
        double us[LUC_MAX_BITS];
        int ub[LUC_MAX_BITS];
        const int nu = luc_uniform_fits(&z, budget, &bo, us, ub);
        assert_true(nu >= 0 && nu <= bo.n_b);
        for (int i = 0; i < nu; i++) {
            double su[L];
            int bu[L];
            for (int l = 0; l < L; l++) { su[l] = us[i]; bu[l] = ub[i]; }
            assert_true(policy_size(&z, L, su, bu) <= budget);
            int a = 0;
            while (bo.s[a] != us[i]) a++;
            if (a > 0) {
                for (int l = 0; l < L; l++) su[l] = bo.s[a - 1];
                assert_true(policy_size(&z, L, su, bu) > budget);
            }
        }
        int fits3 = 0; /* every bit-width with a fitting sparsity is listed */
        for (int c = 0; c < bo.n_b; c++) {
            double su[L];
            int bu[L];
            for (int l = 0; l < L; l++) { su[l] = bo.s[bo.n_s - 1]; bu[l] = bo.b[c]; }
            fits3 += policy_size(&z, L, su, bu) <= budget;
        }
        assert_int_equal(nu, fits3);
    }
    assert_int_equal(luc_policy_at_size(&p, &z, bits, cap, big * 2, s, &target), PARE_OK);
    assert_true(target == 0);
    assert_int_equal(luc_policy_at_size(&p, &z, bits, cap, small * 0.999, s, &target), PARE_ERR_ARG);
    luc_profile_free(&p);
    luc_sizes_free(&z);
}

static void test_interpolation(void **state) {
    (void)state;
    luc_profile p;
    luc_sizes z;
    fake_profile(&p, &z, 1);
    assert_true(luc_prune_err(&p, 0, 0) == 0);
    assert_true(fabs(luc_prune_err(&p, 0, 0.05) - p.prune_err[0] / 2) < 1e-15);
    assert_true(luc_prune_err(&p, 0, 0.3) == p.prune_err[1]);
    assert_true(fabs(luc_prune_err(&p, 0, 0.4) - (p.prune_err[1] + p.prune_err[2]) / 2) < 1e-15);
    assert_true(luc_prune_err(&p, 0, 0.95) >= p.prune_err[3]);
    assert_true(luc_quant_err(&p, 0, 16) == 0);
    assert_true(isnan(luc_quant_err(&p, 0, 5)));
    /* sizes: dense b + 16 per group; bitmap (1 - s) b + 1 + scales, the smaller */
    const double n = (double)z.numel[0], g = (double)z.ngroups[0];
    assert_true(luc_block_bits(&z, 0, 0.5, 4, 0) == 4 * n + 16 * g);
    assert_true(luc_block_bits(&z, 0, 0.5, 4, 1) == 0.5 * n * 4 + n + 16 * g);
    assert_true(luc_block_bits(&z, 0, 0.1, 4, 1) == 4 * n + 16 * g); /* 3.6 + 1 > 4: dense */
    assert_true(luc_block_bits(&z, 0, 0, 16, 1) == 16 * n);
    luc_profile_free(&p);
    luc_sizes_free(&z);
}

/* ---- profile and compress on small random models ----------------------------------------- */
static const synth_shape g_shape = {"t-luc", 64, 2, 4, 2, 128, 300, 64};

static calib_data make_calib(int n, int T) {
    calib_data cd = {.n = n, .T = T};
    cd.n_text_tokens = (int64_t)n * T;
    cd.ids = malloc(sizeof(int32_t) * (size_t)(n * T));
    for (int i = 0; i < n * T; i++) cd.ids[i] = 3 + (int32_t)(urand() * 290);
    return cd;
}

static pare_model *make_f32(uint64_t seed) {
    pare_model *m;
    assert_int_equal(synth_model(&g_shape, PARE_TYPE_F32, seed, &m), PARE_OK);
    for (int i = 0; i < m->n_tensors; i++) { /* std 0.2: pruning moves every block visibly */
        pare_tensor *t = &m->tensors[i];
        if (t->n_dims < 2) continue;
        float *w = t->data;
        for (int64_t k = 0; k < pare_tensor_nelem(t); k++) w[k] *= 10;
    }
    return m;
}

static void test_profile(void **state) {
    (void)state;
    pare_model *m, *ref;
    assert_int_equal(synth_model(&g_shape, PARE_TYPE_F16, 5, &m), PARE_OK);
    assert_int_equal(synth_model(&g_shape, PARE_TYPE_F16, 5, &ref), PARE_OK);
    calib_data cd = make_calib(4, 32);
    luc_profile_opts o;
    luc_profile_opts_default(&o);
    o.n_ratio = 5;
    const double r[5] = {0, 0.1, 0.3, 0.5, 0.8};
    memcpy(o.ratio, r, sizeof r);
    o.n_bits = 4;
    o.bits[0] = 16; o.bits[1] = 8; o.bits[2] = 4; o.bits[3] = 3;
    o.group = 32;
    for (int meth = 0; meth < 2; meth++) {
        o.method = meth ? PRUNE_WANDA : PRUNE_SPARSEGPT;
        luc_profile p;
        assert_int_equal(luc_profile_model(m, &cd, &o, 0, &p), PARE_OK);
        assert_int_equal(p.n_layer, 2);
        for (int l = 0; l < 2; l++) {
            const double *pe = p.prune_err + l * 5, *qe = p.quant_err + l * 4;
            print_message("%s block %d: prune %.3g %.3g %.3g %.3g %.3g  quant16/8/4/3 %.3g %.3g %.3g %.3g\n",
                          meth ? "wanda" : "sparsegpt", l, pe[0], pe[1], pe[2], pe[3], pe[4], qe[0], qe[1], qe[2], qe[3]);
            assert_true(pe[0] == 0.0);
            for (int i = 1; i < 5; i++) assert_true(pe[i] > pe[i - 1]);
            assert_true(qe[0] == 0.0);
            for (int i = 1; i < 4; i++) assert_true(qe[i] > qe[i - 1]);
            assert_true(fabs(p.e[l] - (pe[0] + pe[1] + pe[2] + pe[3] + pe[4]) / 5) < 1e-15);
        }
        luc_profile_free(&p);
    }
    for (int i = 0; i < m->n_tensors; i++) { /* left as it was */
        assert_int_equal(m->tensors[i].type, ref->tensors[i].type);
        assert_int_equal(m->tensors[i].nbytes, ref->tensors[i].nbytes);
        assert_memory_equal(m->tensors[i].data, ref->tensors[i].data, ref->tensors[i].nbytes);
    }
    /* the loss profile: against a whole-model run of a copy with block 1 rounded by hand */
    o.method = PRUNE_SPARSEGPT;
    o.loss = 1;
    luc_profile pl;
    assert_int_equal(luc_profile_model(m, &cd, &o, 0, &pl), PARE_OK);
    assert_true(pl.has_loss && pl.base_loss > 0);
    for (int l = 0; l < 2; l++) {
        assert_true(pl.quant_loss[l * 4 + 0] == 0.0); /* 16 bits on an F16 model: the same weights */
        assert_true(pl.prune_loss[l * 5 + 0] == 0.0);
    }
    const double ntok = (double)cd.n * (cd.T - 1);
    calib_runner *run;
    double nll0, nll1;
    assert_int_equal(runner_new(ref, &cd, &run), PARE_OK);
    assert_int_equal(runner_loss_from(run, 0, NULL, &nll0), PARE_OK);
    runner_free(run);
    assert_true(fabs(nll0 / ntok - pl.base_loss) < 1e-12 * pl.base_loss);
    double cl;
    assert_int_equal(luc_calib_loss(m, &cd, &cl), PARE_OK);
    assert_true(fabs(cl - pl.base_loss) < 1e-12 * pl.base_loss);
    const quant_spec q4 = {.type = -1, .bits = 4, .group = 32, .asym = 0};
    for (int k = 0; k < 7; k++) { /* block 1 at int4-g32, stored F16 as the profile stores it */
        const pare_layer *Lr = &ref->layers[1];
        pare_tensor *t = (pare_tensor *[]){Lr->wq, Lr->wk, Lr->wv, Lr->wo, Lr->w_gate, Lr->w_up, Lr->w_down}[k];
        const int64_t cols = t->ne[0];
        float *row = malloc(sizeof(float) * (size_t)cols);
        for (int64_t rr = 0; rr < t->ne[1]; rr++) {
            pare_tensor_row_f32(t, rr, row);
            quant_rtn_row(&q4, row, cols, NULL);
            k_quant_row(PARE_TYPE_F16, row, (uint8_t *)t->data + rr * pare_row_bytes(PARE_TYPE_F16, cols), cols);
        }
        free(row);
    }
    assert_int_equal(runner_new(ref, &cd, &run), PARE_OK);
    assert_int_equal(runner_loss_from(run, 0, NULL, &nll1), PARE_OK);
    runner_free(run);
    print_message("loss profile: dense %.6f, block 1 at 4 bits %+.3e (whole-model run %+.3e)\n", pl.base_loss,
                  pl.quant_loss[1 * 4 + 2], nll1 / ntok - nll0 / ntok);
    assert_true(fabs(pl.quant_loss[1 * 4 + 2] - (nll1 - nll0) / ntok) < 1e-9);
    assert_true(pl.quant_loss[1 * 4 + 2] != 0.0);
    luc_profile_free(&pl);
    o.loss = 0;
    /* bad options */
    luc_profile p;
    o.bits[0] = 9;
    assert_int_equal(luc_profile_model(m, &cd, &o, 0, &p), PARE_ERR_ARG);
    o.bits[0] = 16; o.ratio[1] = 0.6;
    assert_int_equal(luc_profile_model(m, &cd, &o, 0, &p), PARE_ERR_ARG);
    pare_model_free(m); pare_model_free(ref);
    calib_free(&cd);
}

static pare_tensor *mat(const pare_model *m, int l, int k) {
    const pare_layer *L = &m->layers[l];
    pare_tensor *t[7] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
    return t[k];
}

static void test_compress_uniform_is_prune_then_quantize(void **state) {
    (void)state;
    calib_data cd = make_calib(6, 32);
    const int bitsv[3] = {4, 3, 8};
    const float sv[3] = {0.5f, 0.3f, 0.6f};
    for (int c = 0; c < 3; c++) {
        pare_model *a = make_f32(21), *b = make_f32(21);
        luc_compress_opts co;
        luc_compress_opts_default(&co);
        co.group = 32;
        float s[2] = {sv[c], sv[c]};
        int bits[2] = {bitsv[c], bitsv[c]};
        luc_report rep;
        assert_int_equal(luc_compress(a, &cd, s, bits, &co, 0, &rep), PARE_OK);
        /* the separate runs: pare prune --method sparsegpt, then pare quantize --type intB-g32 */
        prune_opts po;
        prune_opts_default(&po);
        po.method = PRUNE_SPARSEGPT;
        po.sparsity = sv[c];
        prune_report pr;
        assert_int_equal(prune_model(b, &cd, &po, 0, &pr), PARE_OK);
        prune_report_free(&pr);
        quant_opts qo;
        memset(&qo, 0, sizeof qo);
        char name[32];
        snprintf(name, sizeof name, "int%d-g32", bitsv[c]);
        assert_int_equal(quant_spec_parse(name, &qo.spec), PARE_OK);
        qo.method = QUANT_RTN;
        quant_report qr;
        assert_int_equal(quant_model(b, NULL, &qo, 0, &qr), PARE_OK);
        for (int i = 0; i < a->n_tensors; i++) {
            assert_string_equal(a->tensors[i].name, b->tensors[i].name);
            assert_int_equal(a->tensors[i].type, b->tensors[i].type);
            assert_int_equal(a->tensors[i].nbytes, b->tensors[i].nbytes);
            assert_memory_equal(a->tensors[i].data, b->tensors[i].data, a->tensors[i].nbytes);
        }
        /* sizes: per block (numel b + 16 ngroups) / 8 */
        luc_sizes z;
        assert_int_equal(luc_sizes_of(a, 32, &z), PARE_OK);
        double dense = 0;
        for (int l = 0; l < 2; l++) {
            dense += ((double)z.numel[l] * bitsv[c] + 16.0 * (double)z.ngroups[l]) / 8;
            assert_true(fabs(rep.sparsity[l] - sv[c]) < 0.01);
        }
        assert_true(fabs(rep.dense_bytes - dense) < 1e-6);
        assert_true(rep.sparse_bytes <= rep.dense_bytes);
        luc_sizes_free(&z);
        luc_report_free(&rep);
        pare_model_free(a); pare_model_free(b);
    }
    calib_free(&cd);
}

static void test_compress_dense_and_f16_blocks(void **state) {
    (void)state;
    calib_data cd = make_calib(6, 32);
    pare_model *a = make_f32(33), *orig = make_f32(33);
    luc_compress_opts co;
    luc_compress_opts_default(&co);
    co.group = 32;
    float s[2] = {0.0f, 0.5f};
    int bits[2] = {16, 3};
    luc_report rep;
    assert_int_equal(luc_compress(a, &cd, s, bits, &co, 0, &rep), PARE_OK);
    assert_true(rep.sparsity[0] == 0.0);
    assert_true(fabs(rep.sparsity[1] - 0.5) < 0.01);
    for (int k = 0; k < 7; k++) { /* block 0: not pruned, stored as its F16 values */
        const pare_tensor *t = mat(a, 0, k), *o = mat(orig, 0, k);
        assert_int_equal(t->type, PARE_TYPE_F16);
        const float *w = o->data;
        const uint16_t *h = t->data;
        for (int64_t i = 0; i < pare_tensor_nelem(o); i++) assert_int_equal(h[i], pare_f32_to_f16(w[i]));
        assert_int_equal(mat(a, 1, k)->type, PARE_TYPE_F32); /* 3-bit fake-quantized values in F32 */
    }
    luc_sizes z;
    assert_int_equal(luc_sizes_of(a, 32, &z), PARE_OK);
    assert_true(fabs(rep.dense_bytes - (16.0 * z.numel[0] + 3.0 * z.numel[1] + 16.0 * z.ngroups[1]) / 8) < 1e-6);
    luc_sizes_free(&z);
    luc_report_free(&rep);
    /* nothing pruned and RTN: no calibration needed */
    float s0[2] = {0, 0};
    int b8[2] = {8, 8};
    assert_int_equal(luc_compress(orig, NULL, s0, b8, &co, 0, &rep), PARE_OK);
    luc_report_free(&rep);
    int bad[2] = {8, 9};
    assert_int_equal(luc_compress(orig, NULL, s0, bad, &co, 0, &rep), PARE_ERR_ARG);
    pare_model_free(a); pare_model_free(orig);
    calib_free(&cd);
}

int main(void) {
    if (!getenv("OMP_NUM_THREADS")) { omp_set_num_threads(1); openblas_set_num_threads(1); }
    const char *filter = getenv("PARE_TEST_FILTER");
    if (filter) cmocka_set_test_filter(filter);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_invariants),
        cmocka_unit_test(test_policy_equal_and_bad),
        cmocka_unit_test(test_bits_rule),
        cmocka_unit_test(test_budget_search),
        cmocka_unit_test(test_policy_at_size),
        cmocka_unit_test(test_interpolation),
        cmocka_unit_test(test_profile),
        cmocka_unit_test(test_compress_uniform_is_prune_then_quantize),
        cmocka_unit_test(test_compress_dense_and_f16_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
