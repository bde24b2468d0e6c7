/*
 * CPU kernels of unihpr, compiled on first use by unihpr/ops/native.py.
 *
 * Plain C11 with pthreads, called through ctypes on raw pointers: no torch
 * headers, so the build takes about a second. Threads are created per call;
 * the work per call (millions of triplets) dwarfs their start-up.
 *
 * Everything is float32 in memory and double in registers. The closed form of
 * λ1 loses about sqrt(eps) near a repeated top eigenvalue (see gram.py); in
 * double that is ~1e-8, below float32 resolution, so these kernels need no
 * deflation step.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#define TWO_PI 6.283185307179586
/* Prefetch distance of the random gathers and scatters, in elements. */
#define PF 24

static inline int64_t load_index(const void *p, int index64, int64_t n) {
    return index64 ? ((const int64_t *)p)[n] : (int64_t)((const int32_t *)p)[n];
}

/* ------------------------------------------------------------------------ */
/* A minimal static-schedule parallel for.                                  */

typedef void (*range_fn)(void *ctx, int64_t begin, int64_t end, int tid);

typedef struct {
    range_fn fn;
    void *ctx;
    int64_t begin, end;
    int tid;
} job_t;

static void *run_job(void *arg) {
    job_t *job = (job_t *)arg;
    job->fn(job->ctx, job->begin, job->end, job->tid);
    return NULL;
}

/* Splits [0, n) into `nthreads` contiguous ranges; range t runs on thread t. */
static void parallel_for(int64_t n, int nthreads, range_fn fn, void *ctx) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > n) nthreads = n > 0 ? (int)n : 1;
    if (nthreads == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    job_t *jobs = malloc(sizeof(job_t) * (size_t)nthreads);
    pthread_t *threads = malloc(sizeof(pthread_t) * (size_t)nthreads);
    int *started = calloc((size_t)nthreads, sizeof(int));
    for (int t = 0; t < nthreads; ++t) {
        jobs[t] = (job_t){fn, ctx, n * t / nthreads, n * (t + 1) / nthreads, t};
    }
    for (int t = 1; t < nthreads; ++t) {
        started[t] = pthread_create(&threads[t], NULL, run_job, &jobs[t]) == 0;
        if (!started[t]) run_job(&jobs[t]); /* out of threads: run it here */
    }
    run_job(&jobs[0]);
    for (int t = 1; t < nthreads; ++t) {
        if (started[t]) pthread_join(threads[t], NULL);
    }
    free(started);
    free(threads);
    free(jobs);
}

/*
 * Memory on transparent huge pages where the OS offers them: the triplet
 * kernel reads and writes at random over (B, B) matrices, and with 4 KiB pages
 * many of those accesses also miss the TLB.
 */
#define HUGE_PAGE ((size_t)2 << 20)

static void *huge_alloc(size_t bytes) {
    size_t size = (bytes + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
    void *p = aligned_alloc(HUGE_PAGE, size ? size : HUGE_PAGE);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (p) madvise(p, size, MADV_HUGEPAGE);
#endif
    return p;
}

/* ------------------------------------------------------------------------ */
/* λ1 = 1 + μ1 of [[1, a, b], [a, 1, c], [b, c, 1]] and its gradient.        */

/* Clamp to [-1, 1] that keeps NaN (fmin/fmax would drop it), so that a NaN
 * input gives NaN outputs as on the PyTorch path. */
static inline double clamp1(double x) {
    return x < -1.0 ? -1.0 : (x > 1.0 ? 1.0 : x);
}

/* μ1 and θ of the depressed cubic μ³ − pμ − 2abc (see gram.py). */
static inline double top_root(double a, double b, double c, double *theta_out) {
    double p = a * a + b * b + c * c;
    double r = sqrt(p * (1.0 / 3.0));
    double r3 = fmax(r * r * r, DBL_MIN);
    double x = clamp1(a * b * c / r3);
    double theta = acos(x);
    *theta_out = theta;
    return 2.0 * r * cos(theta * (1.0 / 3.0));
}

/*
 * (∂λ1/∂a, ∂λ1/∂b, ∂λ1/∂c): (2bc + 2aμ1) / (3μ1² − p) and cyclic where the top
 * eigenvalue is simple; the symmetric subgradient P_top / 2 (from the simple
 * smallest root μ3) where it is repeated; zero where all three coincide. The
 * threshold is that of the float32 PyTorch path, so both take the same branch.
 */
static inline void grad_coeffs(double a, double b, double c, double mu1, double theta,
                               double *ga, double *gb, double *gc) {
    double p = a * a + b * b + c * c;
    double den1 = 3.0 * mu1 * mu1 - p;
    double thresh = 64.0 * (double)FLT_EPSILON * fmax(p, (double)FLT_MIN);
    double x, y, z;
    if (den1 > thresh) {
        double inv = 2.0 / den1;
        x = (b * c + a * mu1) * inv;
        y = (a * c + b * mu1) * inv;
        z = (a * b + c * mu1) * inv;
    } else {
        double r = sqrt(p * (1.0 / 3.0));
        double mu3 = 2.0 * r * cos((theta + TWO_PI) * (1.0 / 3.0));
        double den3 = 3.0 * mu3 * mu3 - p;
        double scale = den3 <= thresh ? 0.0 : -1.0 / den3;
        x = (b * c + a * mu3) * scale;
        y = (a * c + b * mu3) * scale;
        z = (a * b + c * mu3) * scale;
    }
    *ga = clamp1(x);
    *gb = clamp1(y);
    *gc = clamp1(z);
}

typedef struct {
    const float *a, *b, *c;
    float *lam;
} lam_ctx;

static void lam_range(void *vctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    lam_ctx *ctx = (lam_ctx *)vctx;
    const float *a = ctx->a, *b = ctx->b, *c = ctx->c;
    float *lam = ctx->lam;
#pragma omp simd
    for (int64_t n = begin; n < end; ++n) {
        double theta;
        lam[n] = (float)(1.0 + top_root(a[n], b[n], c[n], &theta));
    }
}

/* λ1 for n contiguous float32 triplets (a[n], b[n], c[n]). */
void unihpr_lambda1_f32(const float *a, const float *b, const float *c, float *lam, int64_t n,
                        int nthreads) {
    lam_ctx ctx = {a, b, c, lam};
    parallel_for(n, n < (1 << 15) ? 1 : nthreads, lam_range, &ctx);
}

typedef struct {
    const float *a, *b, *c, *grad;
    float *ga, *gb, *gc;
} lam_grad_ctx;

static void lam_grad_range(void *vctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    lam_grad_ctx *ctx = (lam_grad_ctx *)vctx;
    for (int64_t n = begin; n < end; ++n) {
        double a = ctx->a[n], b = ctx->b[n], c = ctx->c[n], theta, x, y, z;
        double mu1 = top_root(a, b, c, &theta);
        grad_coeffs(a, b, c, mu1, theta, &x, &y, &z);
        double g = ctx->grad[n];
        ctx->ga[n] = (float)(g * x);
        ctx->gb[n] = (float)(g * y);
        ctx->gc[n] = (float)(g * z);
    }
}

/* Vector-Jacobian product of λ1: (grad·∂λ1/∂a, grad·∂λ1/∂b, grad·∂λ1/∂c). */
void unihpr_lambda1_grad_f32(const float *a, const float *b, const float *c, const float *grad,
                             float *ga, float *gb, float *gc, int64_t n, int nthreads) {
    lam_grad_ctx ctx = {a, b, c, grad, ga, gb, gc};
    parallel_for(n, n < (1 << 14) ? 1 : nthreads, lam_grad_range, &ctx);
}

/* ------------------------------------------------------------------------ */
/* Decoding of UniformTripletSampler draws (see samplers.py).                */

static inline int64_t floor_div(int64_t x, int64_t d, double inv_d) {
    /* x, d >= 0: a double estimate, corrected by one step either way. */
    int64_t q = (int64_t)((double)x * inv_d);
    if (q * d > x) --q;
    if ((q + 1) * d <= x) ++q;
    return q;
}

/* Triplet of UniformTripletSampler draw u (below 3B² − 3B) for anchor a. */
static inline void uniform_triplet(int64_t u, int64_t a, int64_t B, double inv_b, double inv_b1,
                                   int64_t *i, int64_t *j, int64_t *k) {
    u += u >= a * (B + 1); /* skip the positive (a, a, a) */
    if (u < B * B) {       /* plane 1: (a, q, r) */
        int64_t q = floor_div(u, B, inv_b);
        *i = a;
        *j = q;
        *k = u - q * B;
    } else if (u < 2 * B * B - B) { /* plane 2: (q2, a, r), q2 != a */
        int64_t v = u - B * B;
        int64_t q = floor_div(v, B, inv_b);
        *i = q + (q >= a);
        *j = a;
        *k = v - q * B;
    } else { /* plane 3: (q3, r3, a), q3 != a, r3 != a */
        int64_t v = u - (2 * B * B - B);
        int64_t q = floor_div(v, B - 1, inv_b1);
        int64_t r = v - q * (B - 1);
        *i = q + (q >= a);
        *j = r + (r >= a);
        *k = a;
    }
}

static inline void store_index(void *p, int index64, int64_t n, int64_t v) {
    if (index64)
        ((int64_t *)p)[n] = v;
    else
        ((int32_t *)p)[n] = (int32_t)v;
}

/* ------------------------------------------------------------------------ */
/* Sampled Triplet-InfoNCE: loss and gradient in one pass.                   */

/*
 * The kernel is bound by random accesses to (B, B) matrices, so its layout is
 * chosen for them:
 *
 * - A cell holds a similarity and its gradient side by side: scattering a
 *   row's gradient then finds the cache lines that gathering its logits just
 *   loaded, instead of missing a second time.
 * - Each thread owns the anchors of one block of rows and the same block of
 *   rows of every matrix. A gradient for a row it owns is added in place; one
 *   for another thread's row is posted to that thread's mailbox and added by
 *   its owner after a join. There are no atomics (which would serialise the
 *   misses), no per-thread copies of the matrices, and the result is
 *   deterministic for a given thread count.
 */
typedef struct {
    float s, g;
} cell_t;

typedef struct {
    uint32_t key; /* matrix << MAIL_SHIFT | offset; the caller keeps offsets below 2^30 */
    float value;
} mail_t;

typedef struct {
    mail_t *data;
    int64_t size, cap;
    int failed;
} mailbox_t;

#define MAIL_SHIFT 30

static void mail_push(mailbox_t *box, uint32_t key, float value) {
    if (box->size == box->cap) {
        int64_t cap = box->cap ? 2 * box->cap : 4096;
        mail_t *data = realloc(box->data, sizeof(mail_t) * (size_t)cap);
        if (!data) {
            box->failed = 1;
            return;
        }
        box->data = data;
        box->cap = cap;
    }
    box->data[box->size++] = (mail_t){key, value};
}

typedef struct {
    cell_t *w[3];
    int64_t rows[3], ld[3], size[3];
    const float *src[3];
    float *grad[3];
    const void *i, *j, *k; /* (A, N1) or, with anchors, (A, N1 - 1) indices */
    const void *anchors;   /* (A,) or NULL; same dtype as the indices */
    int64_t uniform_b;     /* > 0: i holds UniformTripletSampler draws for batch size B */
    int index64;
    int64_t A, N1;
    double tau;
    int need_grad, nthreads;
    float *lam;        /* (A, N1) out */
    double *loss_part; /* per thread */
    double *gtau_part; /* per thread */
    int *failed;       /* per thread: out of memory */
    mailbox_t *mail;   /* [source * nthreads + owner] */
} trip_ctx;

/* The thread whose block [floor(n t / T), floor(n (t+1) / T)) holds row r. */
static inline int owner_of(int64_t r, int64_t n, int T) {
    return (int)(((r + 1) * T - 1) / n);
}

static inline void add_grad(trip_ctx *ctx, int tid, int m, int64_t row, int64_t off, float v) {
    int owner = owner_of(row, ctx->rows[m], ctx->nthreads);
    if (owner == tid)
        ctx->w[m][off].g += v;
    else
        mail_push(&ctx->mail[tid * ctx->nthreads + owner], ((uint32_t)m << MAIL_SHIFT) | (uint32_t)off,
                  v);
}

static void triplet_range(void *vctx, int64_t begin, int64_t end, int tid) {
    trip_ctx *ctx = (trip_ctx *)vctx;
    const int64_t N1 = ctx->N1;
    const double inv_tau = 1.0 / ctx->tau, w_scale = 1.0 / (double)ctx->A;
    const double thresh_scale = 64.0 * (double)FLT_EPSILON;
    float *buf = malloc(sizeof(float) * 6 * (size_t)N1);
    double *mu = malloc(sizeof(double) * 2 * (size_t)N1);
    int64_t *idx = malloc(sizeof(int64_t) * 6 * (size_t)N1);
    if (!buf || !mu || !idx) {
        ctx->failed[tid] = 1;
        free(buf);
        free(mu);
        free(idx);
        return;
    }
    float *fa = buf, *fb = buf + N1, *fc = buf + 2 * N1;
    float *ca = buf + 3 * N1, *cb = buf + 4 * N1, *cc = buf + 5 * N1;
    double *theta = mu + N1;
    int64_t *ri = idx, *rj = idx + N1; /* rows of S12/S13 and of S23 */
    int64_t *f12 = idx + 2 * N1, *f13 = idx + 3 * N1, *f23 = idx + 4 * N1;
    const cell_t *w12 = ctx->w[0], *w13 = ctx->w[1], *w23 = ctx->w[2];
    double loss = 0.0, gtau = 0.0;

    for (int64_t row = begin; row < end; ++row) {
        const int64_t base = row * N1;
        /* Column 0 is the positive: given by the caller, or (a, a, a) for
         * anchor a when the index arrays hold only the N1 − 1 negatives. */
        int64_t first = 0;
        if (ctx->anchors) {
            const int64_t a = load_index(ctx->anchors, ctx->index64, row);
            ri[0] = rj[0] = a;
            f12[0] = a * ctx->ld[0] + a;
            f13[0] = a * ctx->ld[1] + a;
            f23[0] = a * ctx->ld[2] + a;
            first = 1;
        }
        const int64_t in_row = N1 - first, src = row * in_row - first;
        if (ctx->uniform_b) {
            /* Draws of UniformTripletSampler, decoded here instead of being
             * materialised as three (A, N) index tensors. */
            const int64_t a = ri[0], B = ctx->uniform_b;
            const double inv_b = 1.0 / (double)B, inv_b1 = 1.0 / (double)(B - 1);
            for (int64_t n = first; n < N1; ++n) {
                int64_t i, j, k;
                uniform_triplet(load_index(ctx->i, ctx->index64, src + n), a, B, inv_b, inv_b1, &i,
                                &j, &k);
                ri[n] = i;
                rj[n] = j;
                f12[n] = i * ctx->ld[0] + j;
                f13[n] = i * ctx->ld[1] + k;
                f23[n] = j * ctx->ld[2] + k;
            }
        } else if (ctx->index64) {
            const int64_t *I = (const int64_t *)ctx->i + src, *J = (const int64_t *)ctx->j + src,
                          *K = (const int64_t *)ctx->k + src;
#pragma omp simd
            for (int64_t n = first; n < N1; ++n) {
                ri[n] = I[n];
                rj[n] = J[n];
                f12[n] = I[n] * ctx->ld[0] + J[n];
                f13[n] = I[n] * ctx->ld[1] + K[n];
                f23[n] = J[n] * ctx->ld[2] + K[n];
            }
        } else {
            const int32_t *I = (const int32_t *)ctx->i + src, *J = (const int32_t *)ctx->j + src,
                          *K = (const int32_t *)ctx->k + src;
#pragma omp simd
            for (int64_t n = first; n < N1; ++n) {
                ri[n] = I[n];
                rj[n] = J[n];
                f12[n] = (int64_t)I[n] * ctx->ld[0] + J[n];
                f13[n] = (int64_t)I[n] * ctx->ld[1] + K[n];
                f23[n] = (int64_t)J[n] * ctx->ld[2] + K[n];
            }
        }
        /* Gather: random reads, prefetched PF elements ahead so that many
         * misses are in flight at once. */
        for (int64_t n = 0; n < N1; ++n) {
            if (n + PF < N1) {
                __builtin_prefetch(w12 + f12[n + PF], 1);
                __builtin_prefetch(w13 + f13[n + PF], 1);
                __builtin_prefetch(w23 + f23[n + PF], 1);
            }
            fa[n] = w12[f12[n]].s;
            fb[n] = w13[f13[n]].s;
            fc[n] = w23[f23[n]].s;
        }
        double mmax = -INFINITY;
#pragma omp simd reduction(max : mmax)
        for (int64_t n = 0; n < N1; ++n) {
            double t;
            mu[n] = top_root(fa[n], fb[n], fc[n], &t);
            theta[n] = t;
            mmax = fmax(mmax, mu[n]);
        }
        /* log-sum-exp of the logits (1 + μ) / τ, shifted by the row maximum. */
        double sum = 0.0;
#pragma omp simd reduction(+ : sum)
        for (int64_t n = 0; n < N1; ++n) {
            sum += exp((mu[n] - mmax) * inv_tau);
        }
        if (ctx->lam) {
            float *lam_row = ctx->lam + base;
#pragma omp simd
            for (int64_t n = 0; n < N1; ++n) lam_row[n] = (float)(1.0 + mu[n]);
        }
        loss += (mmax - mu[0]) * inv_tau + log(sum);
        if (!ctx->need_grad) continue;
        /* d loss / d logit_n = (softmax_n − [n = 0]) / A; d logit / d λ = 1 / τ. */
        const double inv_sum = 1.0 / sum;
        int any_repeated = 0;
#pragma omp simd reduction(+ : gtau) reduction(| : any_repeated)
        for (int64_t n = 0; n < N1; ++n) {
            double w = exp((mu[n] - mmax) * inv_tau) * inv_sum - (n == 0 ? 1.0 : 0.0);
            w *= w_scale;
            gtau -= w * (1.0 + mu[n]);
            /* grad_coeffs' simple-eigenvalue branch, vectorised; the rare
             * repeated eigenvalues are redone below. */
            double a = fa[n], b = fb[n], c = fc[n], m = mu[n];
            double p = a * a + b * b + c * c, den1 = 3.0 * m * m - p;
            int simple = den1 > thresh_scale * fmax(p, (double)FLT_MIN);
            any_repeated |= !simple;
            double inv = simple ? 2.0 / den1 : 0.0, wt = w * inv_tau;
            ca[n] = (float)(wt * clamp1((b * c + a * m) * inv));
            cb[n] = (float)(wt * clamp1((a * c + b * m) * inv));
            cc[n] = (float)(wt * clamp1((a * b + c * m) * inv));
        }
        for (int64_t n = 0; any_repeated && n < N1; ++n) {
            double a = fa[n], b = fb[n], c = fc[n], m = mu[n];
            double p = a * a + b * b + c * c;
            if (3.0 * m * m - p > thresh_scale * fmax(p, (double)FLT_MIN)) continue;
            double w = exp((m - mmax) * inv_tau) * inv_sum - (n == 0 ? 1.0 : 0.0);
            double wt = w * w_scale * inv_tau, x, y, z;
            grad_coeffs(a, b, c, m, theta[n], &x, &y, &z);
            ca[n] = (float)(wt * x);
            cb[n] = (float)(wt * y);
            cc[n] = (float)(wt * z);
        }
        for (int64_t n = 0; n < N1; ++n) {
            add_grad(ctx, tid, 0, ri[n], f12[n], ca[n]);
            add_grad(ctx, tid, 1, ri[n], f13[n], cb[n]);
            add_grad(ctx, tid, 2, rj[n], f23[n], cc[n]);
        }
    }
    ctx->loss_part[tid] = loss;
    ctx->gtau_part[tid] = gtau * inv_tau * inv_tau;
    free(idx);
    free(mu);
    free(buf);
}

/* Owner `tid` adds the gradients that other threads posted to it. */
static void drain_range(void *vctx, int64_t begin, int64_t end, int tid) {
    (void)end;
    (void)tid;
    trip_ctx *ctx = (trip_ctx *)vctx;
    const int T = ctx->nthreads, owner = (int)begin;
    const uint32_t mask = ((uint32_t)1 << MAIL_SHIFT) - 1;
    for (int src = 0; src < T; ++src) {
        const mailbox_t *box = &ctx->mail[src * T + owner];
        for (int64_t n = 0; n < box->size; ++n) {
            if (n + PF < box->size) {
                const uint32_t ahead = box->data[n + PF].key;
                __builtin_prefetch(ctx->w[ahead >> MAIL_SHIFT] + (ahead & mask), 1);
            }
            const mail_t *mail = &box->data[n];
            ctx->w[mail->key >> MAIL_SHIFT][mail->key & mask].g += mail->value;
        }
    }
}

/* Interleave the similarities into the cell layout, gradients zeroed. */
static void fill_range(void *vctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    trip_ctx *ctx = (trip_ctx *)vctx;
    for (int m = 0; m < 3; ++m) {
        const int64_t lo = begin * ctx->size[m] / ctx->nthreads,
                      hi = end * ctx->size[m] / ctx->nthreads;
        const float *src = ctx->src[m];
        cell_t *w = ctx->w[m];
#pragma omp simd
        for (int64_t n = lo; n < hi; ++n) {
            w[n].s = src[n];
            w[n].g = 0.0f;
        }
    }
}

static void extract_range(void *vctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    trip_ctx *ctx = (trip_ctx *)vctx;
    for (int m = 0; m < 3; ++m) {
        const int64_t lo = begin * ctx->size[m] / ctx->nthreads,
                      hi = end * ctx->size[m] / ctx->nthreads;
        const cell_t *w = ctx->w[m];
        float *out = ctx->grad[m];
#pragma omp simd
        for (int64_t n = lo; n < hi; ++n) out[n] = w[n].g;
    }
}

/* A workspace kept between calls: fresh pages for ~100 MB cost more in page
 * faults than the kernel's arithmetic. Calls that find it busy allocate their
 * own. */
static pthread_mutex_t ws_lock = PTHREAD_MUTEX_INITIALIZER;
static cell_t *ws_data = NULL;
static size_t ws_cells = 0;
static mailbox_t *ws_mail = NULL; /* grown mailboxes, reused */
static int ws_nmail = 0;

static cell_t *workspace_acquire(size_t cells, int *owned) {
    *owned = 0;
    if (pthread_mutex_trylock(&ws_lock) == 0) {
        if (ws_cells < cells) {
            free(ws_data);
            ws_data = huge_alloc(sizeof(cell_t) * cells);
            ws_cells = ws_data ? cells : 0;
        }
        if (ws_data) return ws_data;
        pthread_mutex_unlock(&ws_lock);
    }
    *owned = 1;
    return huge_alloc(sizeof(cell_t) * cells);
}

static void workspace_release(cell_t *ws, int owned) {
    if (owned)
        free(ws);
    else
        pthread_mutex_unlock(&ws_lock);
}

/* Frees the cached workspace (for tests and long-lived processes). */
void unihpr_release_workspace(void) {
    pthread_mutex_lock(&ws_lock);
    free(ws_data);
    ws_data = NULL;
    ws_cells = 0;
    for (int n = 0; n < ws_nmail; ++n) free(ws_mail[n].data);
    free(ws_mail);
    ws_mail = NULL;
    ws_nmail = 0;
    pthread_mutex_unlock(&ws_lock);
}

/* nmail empty mailboxes: the cached ones (grown by earlier calls) if this call
 * holds the workspace, else fresh ones. */
static mailbox_t *mailboxes_acquire(int nmail, int owned) {
    if (owned) return calloc((size_t)nmail, sizeof(mailbox_t));
    if (ws_nmail < nmail) {
        mailbox_t *grown = realloc(ws_mail, sizeof(mailbox_t) * (size_t)nmail);
        if (!grown) return NULL;
        memset(grown + ws_nmail, 0, sizeof(mailbox_t) * (size_t)(nmail - ws_nmail));
        ws_mail = grown;
        ws_nmail = nmail;
    }
    for (int n = 0; n < nmail; ++n) {
        ws_mail[n].size = 0;
        ws_mail[n].failed = 0;
    }
    return ws_mail;
}

static void mailboxes_release(mailbox_t *mail, int nmail, int owned) {
    if (!owned || !mail) return;
    for (int n = 0; n < nmail; ++n) free(mail[n].data);
    free(mail);
}

/*
 * Sampled Triplet-InfoNCE over A anchors with N1 candidates each, column 0 the
 * positive: i, j, k are (A, N1), or with anchors != NULL (A, N1 − 1) negatives
 * and the positive of row r is (anchors[r], anchors[r], anchors[r]). S12 is
 * rows12 × ld12, and so on, row-major. With uniform_b = B > 0, i holds
 * (A, N1 − 1) draws of UniformTripletSampler (below 3B² − 3B) instead, j and k
 * are unused, and anchors is required. Writes λ1 of every candidate to lam
 * (A·N1, unless NULL) and returns the mean loss; with need_grad, writes
 * d loss / d S to g12, g13, g23 and d loss / d τ to *gtau. Returns a negative
 * value if memory runs out.
 */
double unihpr_triplet_sampled_f32(const float *s12, const float *s13, const float *s23,
                                  int64_t rows12, int64_t ld12, int64_t rows13, int64_t ld13,
                                  int64_t rows23, int64_t ld23, const void *i, const void *j,
                                  const void *k, const void *anchors, int64_t uniform_b,
                                  int index64, int64_t A, int64_t N1, double tau,
                                  int need_grad, float *lam, float *g12, float *g13, float *g23,
                                  double *gtau, int nthreads) {
    if (nthreads < 1) nthreads = 1;
    if (nthreads > A) nthreads = (int)(A > 0 ? A : 1);
    trip_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    const float *src[3] = {s12, s13, s23};
    float *grad[3] = {g12, g13, g23};
    const int64_t rows[3] = {rows12, rows13, rows23}, ld[3] = {ld12, ld13, ld23};
    size_t cells = 0;
    for (int m = 0; m < 3; ++m) {
        ctx.src[m] = src[m];
        ctx.grad[m] = grad[m];
        ctx.rows[m] = rows[m];
        ctx.ld[m] = ld[m];
        ctx.size[m] = rows[m] * ld[m];
        cells += (size_t)ctx.size[m];
    }
    ctx.i = i;
    ctx.j = j;
    ctx.k = k;
    ctx.anchors = anchors;
    ctx.uniform_b = anchors ? uniform_b : 0;
    ctx.index64 = index64;
    ctx.A = A;
    ctx.N1 = N1;
    ctx.tau = tau;
    ctx.need_grad = need_grad;
    ctx.nthreads = nthreads;
    ctx.lam = lam;
    int owned;
    cell_t *ws = workspace_acquire(cells, &owned);
    double *parts = calloc(2 * (size_t)nthreads, sizeof(double));
    int *failed_threads = calloc((size_t)nthreads, sizeof(int));
    ctx.mail = ws ? mailboxes_acquire(nthreads * nthreads, owned) : NULL;
    double loss = -1.0;
    if (ws && parts && failed_threads && ctx.mail) {
        ctx.failed = failed_threads;
        ctx.w[0] = ws;
        ctx.w[1] = ws + ctx.size[0];
        ctx.w[2] = ws + ctx.size[0] + ctx.size[1];
        ctx.loss_part = parts;
        ctx.gtau_part = parts + nthreads;
        parallel_for(nthreads, nthreads, fill_range, &ctx);
        parallel_for(A, nthreads, triplet_range, &ctx);
        int failed = 0;
        for (int n = 0; n < nthreads * nthreads; ++n) failed |= ctx.mail[n].failed;
        for (int t = 0; t < nthreads; ++t) failed |= ctx.failed[t];
        if (!failed) {
            parallel_for(nthreads, nthreads, drain_range, &ctx);
            if (need_grad) parallel_for(nthreads, nthreads, extract_range, &ctx);
            loss = 0.0;
            double gt = 0.0;
            for (int t = 0; t < nthreads; ++t) {
                loss += ctx.loss_part[t];
                gt += ctx.gtau_part[t];
            }
            loss /= (double)A;
            if (gtau) *gtau = gt;
        }
    }
    mailboxes_release(ctx.mail, nthreads * nthreads, owned);
    free(failed_threads);
    free(parts);
    if (ws) workspace_release(ws, owned);
    return loss;
}

/* ------------------------------------------------------------------------ */
/* Batch decoding, for UniformTripletSampler.                                */

typedef struct {
    const void *u; /* (A, N) draws below 3B² − 3B */
    const void *anchors;
    void *i, *j, *k;
    int index64;
    int64_t B, N;
} decode_ctx;

static void decode_range(void *vctx, int64_t begin, int64_t end, int tid) {
    (void)tid;
    decode_ctx *ctx = (decode_ctx *)vctx;
    const int64_t B = ctx->B, N = ctx->N;
    const double inv_b = 1.0 / (double)B, inv_b1 = 1.0 / (double)(B - 1);
    for (int64_t row = begin; row < end; ++row) {
        const int64_t a = load_index(ctx->anchors, ctx->index64, row);
        for (int64_t n = row * N; n < (row + 1) * N; ++n) {
            int64_t i, j, k;
            uniform_triplet(load_index(ctx->u, ctx->index64, n), a, B, inv_b, inv_b1, &i, &j, &k);
            store_index(ctx->i, ctx->index64, n, i);
            store_index(ctx->j, ctx->index64, n, j);
            store_index(ctx->k, ctx->index64, n, k);
        }
    }
}

void unihpr_uniform_decode(const void *u, const void *anchors, void *i, void *j, void *k,
                           int index64, int64_t A, int64_t N, int64_t B, int nthreads) {
    decode_ctx ctx = {u, anchors, i, j, k, index64, B, N};
    parallel_for(A, A * N < (1 << 15) ? 1 : nthreads, decode_range, &ctx);
}
