/* The kernels of the C export (crates/sparse/src/c_export.rs), not a C file by itself:
 * each section starts with a marker line naming it, and the export copies the sections a
 * model uses into its .c file, the CSR ones once per index width with IDX_T and IDX
 * replaced (uint16_t and u16, or uint32_t and u32). Plain C99, float only. */

/*@ act */
/* ReLU when `relu` is set (a NaN passes through, as in the engine). */
static float act(float v, uint32_t relu)
{
    return (relu && v < 0.0f) ? 0.0f : v;
}

/*@ pad_input */
/* Zero-padded copy of one sample: x [c][h][w] -> xp [c][h + 2*pad][w + 2*pad]. */
static void pad_input(const float *x, float *xp, uint32_t c, uint32_t h, uint32_t w,
                      uint32_t pad)
{
    const uint32_t hp = h + 2u * pad, wp = w + 2u * pad;
    uint32_t ci, iy;
    memset(xp, 0, (size_t)c * hp * wp * sizeof(float));
    for (ci = 0; ci < c; ci++) {
        for (iy = 0; iy < h; iy++) {
            memcpy(xp + (ci * hp + iy + pad) * wp + pad, x + (ci * h + iy) * w,
                   (size_t)w * sizeof(float));
        }
    }
}

/*@ conv_geom */
/* A convolution as the kernels walk it. The input is read already padded (in_h x in_w
 * per channel); out_h x out_w is the output plane after the fused max pool, whose
 * window and stride are pool_k and pool_s (1 and 1 when no pool follows). */
struct conv_geom {
    uint32_t in_c, in_h, in_w;
    uint32_t kh, kw, stride;
    uint32_t out_c, out_h, out_w;
    uint32_t pool_k, pool_s;
    uint32_t relu;
};

/*@ conv_csr_pool2 */
/* CSR convolution (stride 1) with a fused 2x2 max pool. For each pooled output the four
 * convolution sums of its window accumulate together, so one weight and one offset load
 * serve four multiply-adds; off[k] is the input offset of non-zero k,
 * (c * in_h + ki) * in_w + kj. The bias and ReLU come after the max: both are monotonic,
 * so this equals pooling the activated outputs, and the full convolution output is never
 * stored. A channel without non-zeros outputs act(bias). */
static void conv_csr_pool2_IDX(const struct conv_geom *g, const float *val, const IDX_T *off,
                               const uint32_t *row, const float *bias, const float *x, float *y)
{
    uint32_t o, py, px, k;
    for (o = 0; o < g->out_c; o++) {
        const float *w = val + row[o];
        const IDX_T *t = off + row[o];
        const uint32_t n = row[o + 1] - row[o];
        for (py = 0; py < g->out_h; py++) {
            for (px = 0; px < g->out_w; px++) {
                const float *x0 = x + py * g->pool_s * g->in_w + px * g->pool_s;
                const float *x1 = x0 + g->in_w;
                float s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f, m;
                for (k = 0; k < n; k++) {
                    const float wk = w[k];
                    const uint32_t tk = t[k];
                    s00 += wk * x0[tk];
                    s01 += wk * x0[tk + 1u];
                    s10 += wk * x1[tk];
                    s11 += wk * x1[tk + 1u];
                }
                /* The first maximum in row-major order wins, as in the engine. */
                m = s00;
                m = s01 > m ? s01 : m;
                m = s10 > m ? s10 : m;
                m = s11 > m ? s11 : m;
                *y++ = act(m + bias[o], g->relu);
            }
        }
    }
}

/*@ conv_csr */
/* CSR convolution, any stride, with an optional fused max pool (pool_k = 1: none): each
 * output is the max over its pool window of the convolution sums. */
static void conv_csr_IDX(const struct conv_geom *g, const float *val, const IDX_T *off,
                         const uint32_t *row, const float *bias, const float *x, float *y)
{
    uint32_t o, py, px, i, j, k;
    for (o = 0; o < g->out_c; o++) {
        const float *w = val + row[o];
        const IDX_T *t = off + row[o];
        const uint32_t n = row[o + 1] - row[o];
        for (py = 0; py < g->out_h; py++) {
            for (px = 0; px < g->out_w; px++) {
                float m = 0.0f;
                for (i = 0; i < g->pool_k; i++) {
                    for (j = 0; j < g->pool_k; j++) {
                        const uint32_t oy = py * g->pool_s + i, ox = px * g->pool_s + j;
                        const float *xw = x + (oy * g->in_w + ox) * g->stride;
                        float s = 0.0f;
                        for (k = 0; k < n; k++) {
                            s += w[k] * xw[t[k]];
                        }
                        m = ((i == 0 && j == 0) || s > m) ? s : m;
                    }
                }
                *y++ = act(m + bias[o], g->relu);
            }
        }
    }
}

/*@ conv_dense_pool2 */
/* Dense convolution (stride 1) with a fused 2x2 max pool: conv_csr_pool2 with every tap
 * of the kernel, w [out_c][in_c][kh][kw], and the offsets implied by the loops. */
static void conv_dense_pool2(const struct conv_geom *g, const float *w, const float *bias,
                             const float *x, float *y)
{
    uint32_t o, py, px, c, i, j;
    for (o = 0; o < g->out_c; o++) {
        const float *wo = w + o * g->in_c * g->kh * g->kw;
        for (py = 0; py < g->out_h; py++) {
            for (px = 0; px < g->out_w; px++) {
                const float *x0 = x + py * g->pool_s * g->in_w + px * g->pool_s;
                const float *wt = wo;
                float s00 = 0.0f, s01 = 0.0f, s10 = 0.0f, s11 = 0.0f, m;
                for (c = 0; c < g->in_c; c++) {
                    for (i = 0; i < g->kh; i++) {
                        const float *r0 = x0 + (c * g->in_h + i) * g->in_w;
                        const float *r1 = r0 + g->in_w;
                        for (j = 0; j < g->kw; j++) {
                            const float wk = *wt++;
                            s00 += wk * r0[j];
                            s01 += wk * r0[j + 1u];
                            s10 += wk * r1[j];
                            s11 += wk * r1[j + 1u];
                        }
                    }
                }
                m = s00;
                m = s01 > m ? s01 : m;
                m = s10 > m ? s10 : m;
                m = s11 > m ? s11 : m;
                *y++ = act(m + bias[o], g->relu);
            }
        }
    }
}

/*@ conv_dense */
/* Dense convolution, any stride, optional fused max pool: conv_csr with every tap. */
static void conv_dense(const struct conv_geom *g, const float *w, const float *bias,
                       const float *x, float *y)
{
    uint32_t o, py, px, i, j, c, ki, kj;
    for (o = 0; o < g->out_c; o++) {
        const float *wo = w + o * g->in_c * g->kh * g->kw;
        for (py = 0; py < g->out_h; py++) {
            for (px = 0; px < g->out_w; px++) {
                float m = 0.0f;
                for (i = 0; i < g->pool_k; i++) {
                    for (j = 0; j < g->pool_k; j++) {
                        const uint32_t oy = py * g->pool_s + i, ox = px * g->pool_s + j;
                        const float *xw = x + (oy * g->in_w + ox) * g->stride;
                        const float *wt = wo;
                        float s = 0.0f;
                        for (c = 0; c < g->in_c; c++) {
                            for (ki = 0; ki < g->kh; ki++) {
                                const float *r = xw + (c * g->in_h + ki) * g->in_w;
                                for (kj = 0; kj < g->kw; kj++) {
                                    s += *wt++ * r[kj];
                                }
                            }
                        }
                        m = ((i == 0 && j == 0) || s > m) ? s : m;
                    }
                }
                *y++ = act(m + bias[o], g->relu);
            }
        }
    }
}

/*@ linear_csr */
/* CSR linear layer: y[r] = act(sum_k val[k] * x[col[k]] + bias[r]) over row r's
 * non-zeros, with four partial sums (the engine's portable kernel: the loads of one row
 * overlap, and the sums come out in the same order). */
static void linear_csr_IDX(const float *val, const IDX_T *col, const uint32_t *row,
                           const float *bias, uint32_t out, uint32_t relu, const float *x,
                           float *y)
{
    uint32_t r;
    for (r = 0; r < out; r++) {
        uint32_t k = row[r];
        const uint32_t end = row[r + 1], end4 = k + ((end - k) & ~3u);
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (; k < end4; k += 4u) {
            a0 += val[k] * x[col[k]];
            a1 += val[k + 1u] * x[col[k + 1u]];
            a2 += val[k + 2u] * x[col[k + 2u]];
            a3 += val[k + 3u] * x[col[k + 3u]];
        }
        for (; k < end; k++) {
            a0 += val[k] * x[col[k]];
        }
        y[r] = act((a0 + a1) + (a2 + a3) + bias[r], relu);
    }
}

/*@ linear_dense */
/* Dense linear layer, w [out][in]: four partial sums per row, as linear_csr. */
static void linear_dense(const float *w, const float *bias, uint32_t in, uint32_t out,
                         uint32_t relu, const float *x, float *y)
{
    uint32_t r, k;
    const uint32_t in4 = in & ~3u;
    for (r = 0; r < out; r++) {
        const float *wr = w + r * in;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (k = 0; k < in4; k += 4u) {
            a0 += wr[k] * x[k];
            a1 += wr[k + 1u] * x[k + 1u];
            a2 += wr[k + 2u] * x[k + 2u];
            a3 += wr[k + 3u] * x[k + 3u];
        }
        for (; k < in; k++) {
            a0 += wr[k] * x[k];
        }
        y[r] = act((a0 + a1) + (a2 + a3) + bias[r], relu);
    }
}

/*@ max_pool */
/* Max pooling of x [c][h][w], window k, stride s, no padding, floor mode. */
static void max_pool(const float *x, float *y, uint32_t c, uint32_t h, uint32_t w, uint32_t k,
                     uint32_t s)
{
    const uint32_t oh = (h - k) / s + 1u, ow = (w - k) / s + 1u;
    uint32_t ci, oy, ox, i, j;
    for (ci = 0; ci < c; ci++) {
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                const float *xw = x + (ci * h + oy * s) * w + ox * s;
                float m = xw[0];
                for (i = 0; i < k; i++) {
                    for (j = 0; j < k; j++) {
                        m = xw[i * w + j] > m ? xw[i * w + j] : m;
                    }
                }
                *y++ = m;
            }
        }
    }
}

/*@ avg_pool */
/* Average pooling of x [c][h][w], window k, stride s, no padding, floor mode; each
 * window row is summed, then the rows (the engine's order). */
static void avg_pool(const float *x, float *y, uint32_t c, uint32_t h, uint32_t w, uint32_t k,
                     uint32_t s, float inv_area)
{
    const uint32_t oh = (h - k) / s + 1u, ow = (w - k) / s + 1u;
    uint32_t ci, oy, ox, i, j;
    for (ci = 0; ci < c; ci++) {
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                const float *xw = x + (ci * h + oy * s) * w + ox * s;
                float sum = 0.0f;
                for (i = 0; i < k; i++) {
                    float rs = 0.0f;
                    for (j = 0; j < k; j++) {
                        rs += xw[i * w + j];
                    }
                    sum += rs;
                }
                *y++ = sum * inv_area;
            }
        }
    }
}

/*@ relu */
/* ReLU of n values from x into y (x == y: in place). */
static void relu(const float *x, float *y, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        y[i] = x[i] < 0.0f ? 0.0f : x[i];
    }
}
