/* Eq. 5-6 of the seed in one pass over a CPU attention call's weights and scores.
 *
 * Built by setup.py as the optional extension attndilute.instrument._entropy_kernel and called
 * through ctypes by attndilute/instrument/cpu_kernel.py (which documents the method); ctypes
 * releases the GIL, so the caller's threads run it in parallel on disjoint maps.
 *
 * For query i of one (group, head) map, with m = max_j p_ij (at the largest score s*):
 *     H_i^{->t} = -log(m) * sum_{j in t} p_ij + sum_{j in t} p_ij (s* - s_ij)
 * Both terms are non-negative: float32 sums of them do not cancel. A row's sums move to float64
 * every KEY_BLOCK keys. Keys with zero weight add nothing (0 * inf is never formed into a sum).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#define NUM_SOURCES 3
#define KEY_BLOCK 4096
/* cpu_kernel.KERNEL_VERSION: bump both when the signature or the sums change */
#define KERNEL_VERSION 1

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT
#endif

EXPORT int attndilute_kernel_version(void) { return KERNEL_VERSION; }

/* Floats of either sign order as these int32 keys do (an integer max vectorises everywhere). */
static inline int32_t ordered(int32_t bits) { return bits ^ ((bits >> 31) & 0x7FFFFFFF); }

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__ELF__)
/* AVX2 + FMA where the CPU has them (chosen when the library loads), SSE2 elsewhere */
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
EXPORT void attndilute_group_sums(
    const float *p,              /* (G, heads, Nq, Nk) post-softmax weights, C-contiguous */
    const float *s,              /* (G, heads, Nq, Nk) the scores p is the softmax of */
    int64_t heads, int64_t nq, int64_t nk,
    const int64_t *query_sources,/* (G, Nq) 0, 1 or 2 */
    const float *key_rows,       /* (G, 3, Nk) one-hot key sources, a row per source */
    double *out,                 /* (G, heads, 2, 3, 3): entropy, mass by query x key source; added to */
    int64_t lo, int64_t hi)      /* the maps lo..hi of the flattened (group, head) axis */
{
    for (int64_t block = lo; block < hi; block++) {
        const int64_t g = block / heads;
        const float *k0 = key_rows + g * NUM_SOURCES * nk, *k1 = k0 + nk, *k2 = k1 + nk;
        double *o = out + block * 2 * NUM_SOURCES * NUM_SOURCES;
        for (int64_t i = 0; i < nq; i++) {
            const float *p_row = p + (block * nq + i) * nk, *s_row = s + (block * nq + i) * nk;
            int32_t p_max = INT32_MIN, s_max = INT32_MIN;
            for (int64_t j = 0; j < nk; j++) {
                int32_t a, b;
                memcpy(&a, p_row + j, sizeof a); /* weights are >= 0: their bits order as they do */
                memcpy(&b, s_row + j, sizeof b);
                b = ordered(b);
                p_max = a > p_max ? a : p_max;
                s_max = b > s_max ? b : s_max;
            }
            float m, top;
            s_max = ordered(s_max);
            memcpy(&m, &p_max, sizeof m);
            memcpy(&top, &s_max, sizeof top);
            double e[NUM_SOURCES] = {0, 0, 0}, w[NUM_SOURCES] = {0, 0, 0};
            for (int64_t start = 0; start < nk; start += KEY_BLOCK) {
                const int64_t stop = start + KEY_BLOCK < nk ? start + KEY_BLOCK : nk;
                float e0 = 0, e1 = 0, e2 = 0, w0 = 0, w1 = 0, w2 = 0;
                for (int64_t j = start; j < stop; j++) {
                    const float a = p_row[j];
                    const float t = a > 0.0f ? a * (top - s_row[j]) : 0.0f; /* masked keys: 0 * inf */
                    e0 += t * k0[j];
                    e1 += t * k1[j];
                    e2 += t * k2[j];
                    w0 += a * k0[j];
                    w1 += a * k1[j];
                    w2 += a * k2[j];
                }
                e[0] += e0; e[1] += e1; e[2] += e2;
                w[0] += w0; w[1] += w1; w[2] += w2;
            }
            /* a row of zeros has no entropy; a NaN weight makes w NaN */
            const double neg_log_m = m > 0.0f ? -log((double)m) : 0.0;
            const int64_t c = query_sources[g * nq + i];
            for (int t = 0; t < NUM_SOURCES; t++) {
                o[c * NUM_SOURCES + t] += neg_log_m * w[t] + e[t];
                o[NUM_SOURCES * NUM_SOURCES + c * NUM_SOURCES + t] += w[t];
            }
        }
    }
}

/* A module object, so the library is a regular extension module; its one function is called
 * through ctypes (attndilute/instrument/cpu_kernel.py). */
static struct PyModuleDef entropy_kernel_module = {
    PyModuleDef_HEAD_INIT, "_entropy_kernel",
    "attndilute_group_sums: Eq. 5-6 in one pass over a CPU attention call (see cpu_kernel.py).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__entropy_kernel(void) { return PyModule_Create(&entropy_kernel_module); }
