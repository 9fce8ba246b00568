/*
 * WSOL score maps and their contour boxes at many thresholds, exactly as OpenCV gives them.
 *
 * normalized_maps: OpenCV's INTER_CUBIC resize in float64 (weights from resize.py, applied in OpenCV's order:
 * horizontal pass, then vertical, four taps summed left to right, no fused multiply-add) and min-max
 * normalisation, as `wsol.scoremaps` computes them in torch. quantize_maps: `(s * 255)` truncated to uint8.
 * pixel_counts: PxAP's histograms of object and background scores over the threshold bins.
 *
 * contour_boxes: the WSOL evaluator of Choe et al. (CVPR 2020) thresholds a uint8 score map q at level L
 * (foreground: q > L), runs cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE) and keeps the bounding rectangles of
 * the contours (all of them, or the one of largest cv2.contourArea). This file reproduces those boxes without
 * tracing contours:
 *
 *  - RETR_TREE gives one outer contour per 8-connected foreground component and one hole contour per
 *    4-connected background component that does not touch the image border. A component's box is its
 *    bounding box plus one pixel right and below; a hole's box is the hole's bounding box grown by one pixel
 *    on every side (the foreground ring around it); both are then clipped to (W - 1, H - 1).
 *  - cv2.contourArea of an outer contour is the area of the polygon through the boundary pixel centres. With
 *    F the component with its holes filled, it equals (2x2 windows with 4 pixels in F) + (windows with 3)/2,
 *    so twice the area is an integer. The hole-filled components at level L are the 8-connected components of
 *    {r > L}, where r is the grayscale hole fill of q (for each pixel, the lowest possible maximum of q along a
 *    4-connected path to the border). A hole contour never wins: its area is at most its parent's and the
 *    parent comes first. Ties go to the component whose first pixel in raster order comes last (OpenCV lists
 *    siblings in that order and Python's max() keeps the first maximum).
 *
 * One sweep per map and mode: the pixels are added in decreasing order of value (counting sort, which also records
 * which neighbours of each pixel are already active when it is added) to a union-find of 8-connected components
 * that keeps, per component, its first and last column, its first and last pixel in raster order (which give its
 * first and last row), twice the window area and its slot in the list of live components. Every label points
 * straight at its component (a merge re-points the labels of the smaller one), so a pixel costs one lookup, never
 * a search. At each needed level the live components are scored. A 2x2 window's foreground pixels are 8-adjacent,
 * so a window always lies in the component of the pixel just added, and its area changes only then. Most levels of
 * a score map have no hole: the Euler number (8-connected components minus 4-connected holes) is kept from the
 * same windows, and only a level with holes labels the background runs of a foreground bitmask, brought up to date
 * from the pixels added since the last such level. A map costs O(pixels) plus, per needed level, its live
 * components (and the rows of the bitmask at levels with holes), whatever the number of levels. At 224 x 224 the
 * sorted pixels take 32 bits each, half the memory of the general 64.
 *
 * Plain C API and the buffer protocol only; the GIL is released while a batch is processed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__GNUC__) && defined(__x86_64__)
/* Some hot loops (score maps, ring masks) also come in AVX2, chosen at run time: the same operations in the same
 * order, so the same bits (tests compare both). */
#include <immintrin.h>
#define AVX2_DISPATCH 1
#define AVX2_TARGET __attribute__((target("avx2")))
static int has_avx2, use_avx2;
#endif

#define NUM_LEVELS 256
#define QUANTIZE_EPS 1e-12 /* see quantize_normalized */

typedef struct {
    int32_t x0, y0, x1, y1;
} Box;

/* ---- 3x3 neighbourhood tables ---------------------------------------------------------------------------- */

/* The 8 neighbours in ring order (NW, N, NE, E, SE, S, SW, W): neighbours next to each other on the ring are
 * 8-adjacent, so active ones in an unbroken stretch of the ring are already in one component. */
static const int RING_DX[8] = {-1, 0, 1, 1, 1, 0, -1, -1};
static const int RING_DY[8] = {-1, -1, -1, 0, 1, 1, 1, 0};

/* Tables indexed by the ring mask of the active neighbours (bit i: ring neighbour i). */
#define NEIGHBOURHOODS 256
#define SORT_STRIPES 4
static uint8_t ring_stretches[NEIGHBOURHOODS]; /* how many unbroken stretches of active neighbours */
static uint8_t ring_pick[NEIGHBOURHOODS][4];   /* a neighbour (ring index) in each */
static int8_t euler_delta[NEIGHBOURHOODS];     /* change of 4 x the Euler number when the centre is added */
static int8_t area_delta[NEIGHBOURHOODS];      /* change of twice the window area (of the centre's component) */

/* Bit-quad contributions of a 2x2 window a b / c d: Gray's 4 x Euler number for 8-connected foreground
 * (1 pixel: +1, 3 pixels: -1, a diagonal pair: -2), and twice the polygon area (4 pixels: 2, 3 pixels: 1). */
static int quad_euler(int a, int b, int c, int d)
{
    int n = a + b + c + d;
    if (n == 1)
        return 1;
    if (n == 3)
        return -1;
    return n == 2 && a == d ? -2 : 0;
}

static int quad_area(int a, int b, int c, int d)
{
    int n = a + b + c + d;
    return n == 4 ? 2 : (n == 3 ? 1 : 0);
}

static void init_tables(void)
{
    /* Preference among the neighbours of a stretch: those below and to the right come later in raster order, so
     * they were added at an earlier level (not just before, which would chain the lookups). */
    static const int preference[8] = {5, 4, 6, 3, 1, 0, 2, 7};
    for (int m = 0; m < NEIGHBOURHOODS; m++) {
        int g[3][3] = {{0}};
        for (int i = 0; i < 8; i++)
            g[1 + RING_DY[i]][1 + RING_DX[i]] = (m >> i) & 1;
        int euler = 0, area = 0;
        for (int centre = 0; centre < 2; centre++) {
            int sign = centre ? 1 : -1;
            g[1][1] = centre;
            for (int wy = 0; wy < 2; wy++) {
                for (int wx = 0; wx < 2; wx++) {
                    int a = g[wy][wx], b = g[wy][wx + 1], c = g[wy + 1][wx], d = g[wy + 1][wx + 1];
                    euler += sign * quad_euler(a, b, c, d);
                    area += sign * quad_area(a, b, c, d);
                }
            }
        }
        euler_delta[m] = (int8_t)euler;
        area_delta[m] = (int8_t)area;
        /* Stretch of each active neighbour: the ring index where it starts (0 when all 8 are active). */
        int stretch[8], n = 0;
        for (int i = 0; i < 8; i++) {
            int j = i;
            while (m != 255 && ((m >> ((j + 7) & 7)) & 1))
                j = (j + 7) & 7;
            stretch[i] = m == 255 ? 0 : j;
        }
        for (int i = 0; i < 8; i++) {
            if (!((m >> i) & 1) || stretch[i] != i)
                continue;
            int pick = -1;
            for (int k = 0; k < 8 && pick < 0; k++) {
                if (((m >> preference[k]) & 1) && stretch[preference[k]] == i)
                    pick = preference[k];
            }
            ring_pick[m][n++] = (uint8_t)pick;
        }
        ring_stretches[m] = (uint8_t)n;
    }
}

/* ---- work space ------------------------------------------------------------------------------------------ */

typedef struct {
    int32_t start, end; /* first and last column, inclusive (the row's runs are consecutive) */
} Run;

typedef struct {
    int32_t x0, y0, x1, y1; /* bounding box, inclusive */
    int32_t border;         /* touches the image border */
} RunStats;

typedef struct {
    int32_t x0, x1;         /* first and last column, inclusive */
    int32_t r0, r1;         /* raster index of the first and last pixel (rows r0 / width, r1 / width) */
    int32_t first, last;    /* its labels, listed through Work.next_label */
    int32_t num_labels;     /* how many labels it has */
    int32_t area2;          /* twice cv2.contourArea of the outer contour */
    int32_t slot;           /* position in the list of live components */
} Comp;

typedef struct {
    int height, width, words, padded_width;
    /* Pixels sorted by value: the ring mask of the neighbours active when each is added, the column and the raster
       index, in 32 bits (mask << 24 | x << 16 | y * width + x) when `narrow` (at most 65,536 pixels and 256
       columns, as at 224 x 224: half the memory to write and read), else in 64 (mask << 48 | x << 32 | ...). */
    void *entries;
    int narrow;
    int32_t pick_offset[NEIGHBOURHOODS][4]; /* ring_pick as offsets in the raster */
    /* Per ring mask, what the sweep needs of a pixel with one stretch, in one load: the pick's offset (bits 0-31),
       the area delta (bits 40-47, signed), and bit 63 set for the rare masks, whose pixels change the Euler number
       or do not have exactly one stretch (a new component, merges, new holes, the filling of a one-pixel hole):
       one sign test picks the rare path, and only it updates the Euler number. */
    uint64_t ring_info[NEIGHBOURHOODS];
    uint8_t *framed;     /* the map with a zero frame */
    uint8_t *row_codes;  /* one row of ring masks per stripe, in raster order */
    uint32_t *row_entries; /* narrow: one row of entries per stripe, composed a vector at a time */
    uint32_t *column_bits; /* narrow: x << 16 | x for every column */
    int32_t start[NUM_LEVELS + 1];
    /* the sweep, on a grid with an inactive one-pixel frame, so that neighbours need no bounds checks */
    uint64_t *bits;      /* the foreground at bits_level, `words` 64-bit words per row of the frame (bit x + 1:
                            pixel x), for the holes */
    int32_t *label;      /* a component label per active pixel */
    int32_t *uf;         /* the component (root label) of every label, always direct */
    int32_t *next_label; /* the next label of the same component, -1 after the last */
    Comp *comp;
    int32_t *live, num_live, num_labels;
    int64_t euler4;      /* 4 x (components - holes) */
    int bits_level;      /* the level whose foreground `bits` holds, -1 if none yet */
    /* holes, from row runs of the foreground bitmask */
    Run *bg_runs;
    int32_t *parent;
    RunStats *stats;
    /* grayscale hole fill, with a one-pixel frame: the result, q with a frame of 255, a queue and who is in it */
    uint8_t *filled, *fill_mask, *queued;
    int32_t *fill_queue;
} Work;

static void work_free(Work *w)
{
    free(w->entries);
    free(w->framed);
    free(w->row_codes);
    free(w->row_entries);
    free(w->column_bits);
    free(w->label);
    free(w->uf);
    free(w->next_label);
    free(w->comp);
    free(w->live);
    free(w->bits);
    free(w->bg_runs);
    free(w->parent);
    free(w->stats);
    free(w->filled);
    free(w->fill_queue);
    free(w->fill_mask);
    free(w->queued);
}

static int work_alloc(Work *w, int height, int width)
{
    memset(w, 0, sizeof(*w));
    w->height = height;
    w->width = width;
    /* One spare word per row: the neighbourhood of a pixel is read from two consecutive words. */
    w->words = (width + 2 + 63) / 64 + 1;
    w->padded_width = width + 2;
    size_t npix = (size_t)height * width;
    size_t npad = (size_t)(height + 2) * w->padded_width;
    /* A row holds at most width / 2 + 1 background runs. */
    size_t max_runs = (size_t)height * (width / 2 + 1);
    w->narrow = width <= 256 && npix <= 65536;
    w->entries = malloc((w->narrow ? sizeof(uint32_t) : sizeof(uint64_t)) * npix);
    for (int m = 0; m < NEIGHBOURHOODS; m++) {
        for (int s = 0; s < ring_stretches[m]; s++)
            w->pick_offset[m][s] = RING_DY[ring_pick[m][s]] * width + RING_DX[ring_pick[m][s]];
        const uint64_t rare = ring_stretches[m] != 1 || euler_delta[m] != 0;
        w->ring_info[m] = (uint64_t)(uint32_t)w->pick_offset[m][0] | (uint64_t)(uint8_t)area_delta[m] << 40 |
                          rare << 63;
    }
    w->framed = calloc(npad + 64, 1); /* threshold_row reads up to 63 bytes past the last row */
    w->row_codes = malloc((size_t)SORT_STRIPES * width);
    w->row_entries = malloc(sizeof(uint32_t) * SORT_STRIPES * width);
    w->column_bits = malloc(sizeof(uint32_t) * width);
    w->label = malloc(sizeof(int32_t) * npix);
    w->uf = malloc(sizeof(int32_t) * npix);
    w->next_label = malloc(sizeof(int32_t) * npix);
    w->comp = malloc(sizeof(Comp) * npix);
    w->live = malloc(sizeof(int32_t) * npix);
    w->bits = malloc(sizeof(uint64_t) * (height + 2) * w->words);
    w->bg_runs = malloc(sizeof(Run) * max_runs);
    w->parent = malloc(sizeof(int32_t) * max_runs);
    w->stats = malloc(sizeof(RunStats) * max_runs);
    w->filled = malloc(npad);
    w->fill_queue = malloc(sizeof(int32_t) * npad);
    w->fill_mask = malloc(npad);
    w->queued = malloc(npad);
    if (!w->entries || !w->framed || !w->row_codes || !w->row_entries || !w->column_bits || !w->label || !w->uf ||
        !w->next_label || !w->comp || !w->live || !w->bits || !w->bg_runs || !w->parent || !w->stats || !w->filled ||
        !w->fill_queue || !w->fill_mask || !w->queued) {
        work_free(w);
        return -1;
    }
    for (int x = 0; x < width; x++)
        w->column_bits[x] = (uint32_t)x << 16 | (uint32_t)x;
    return 0;
}

/* ---- boxes and IoU --------------------------------------------------------------------------------------- */

/* IoU with inclusive pixel ends, exactly as the reference computes it in NumPy (int64, then one division). */
static double box_iou(Box a, const int32_t *g)
{
    int64_t iw = (int64_t)(a.x1 < g[2] ? a.x1 : g[2]) - (a.x0 > g[0] ? a.x0 : g[0]) + 1;
    int64_t ih = (int64_t)(a.y1 < g[3] ? a.y1 : g[3]) - (a.y0 > g[1] ? a.y0 : g[1]) + 1;
    int64_t inter = (iw > 0 ? iw : 0) * (ih > 0 ? ih : 0);
    int64_t area_a = ((int64_t)a.x1 - a.x0 + 1) * ((int64_t)a.y1 - a.y0 + 1);
    int64_t area_g = ((int64_t)g[2] - g[0] + 1) * ((int64_t)g[3] - g[1] + 1);
    int64_t denominator = area_a + area_g - inter;
    return denominator <= 0 ? 0.0 : (double)inter / (double)denominator;
}

static double best_iou(Box a, const int32_t *gt, int64_t num_gt)
{
    double best = 0.0;
    for (int64_t k = 0; k < num_gt; k++) {
        double v = box_iou(a, gt + 4 * k);
        if (v > best)
            best = v;
    }
    return best;
}

static Box clipped_box(int32_t x0, int32_t y0, int32_t x1, int32_t y1, int width, int height)
{
    Box b = {x0, y0, x1 < width - 1 ? x1 : width - 1, y1 < height - 1 ? y1 : height - 1};
    return b;
}

static Box component_box(const Comp *c, int width, int height)
{
    return clipped_box(c->x0, c->r0 / width, c->x1 + 1, c->r1 / width + 1, width, height);
}

static Box hole_box(const RunStats *s, int width, int height)
{
    /* The hole contour runs through the foreground ring around the hole: one pixel out on every side. */
    return clipped_box(s->x0 - 1, s->y0 - 1, s->x1 + 2, s->y1 + 2, width, height);
}

static const Box NO_BOX = {0, 0, 0, 0};

/* ---- sorted entries (see Work.entries) ----------------------------------------------------------------- */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE uint64_t entry_at(const void *entries, int32_t k, const int narrow)
{
    return narrow ? ((const uint32_t *)entries)[k] : ((const uint64_t *)entries)[k];
}

ALWAYS_INLINE int32_t entry_raster(uint64_t e, const int narrow)
{
    return narrow ? (int32_t)(e & 0xFFFF) : (int32_t)(uint32_t)e;
}

ALWAYS_INLINE int entry_column(uint64_t e, const int narrow)
{
    return narrow ? (int)((e >> 16) & 0xFF) : (int)((e >> 32) & 0xFFFF);
}

ALWAYS_INLINE unsigned entry_mask(uint64_t e, const int narrow)
{
    return (unsigned)(e >> (narrow ? 24 : 48));
}

ALWAYS_INLINE void put_entry(void *entries, int32_t k, unsigned mask, int x, int64_t raster, const int narrow)
{
    if (narrow)
        ((uint32_t *)entries)[k] = (uint32_t)mask << 24 | (uint32_t)x << 16 | (uint32_t)raster;
    else
        ((uint64_t *)entries)[k] = (uint64_t)mask << 48 | (uint64_t)x << 32 | (uint64_t)raster;
}

/* ---- the sweep: union-find of 8-connected components as pixels are added --------------------------------- */

/*
 * Merge two distinct components; returns the survivor. The labels of the one with fewer labels are pointed at the
 * survivor, so that uf[label] is always the component: a pixel costs one lookup and no search, and a label moves
 * at most log2(labels) times (each move at least doubles the number of labels of its component).
 */
static int32_t merge(Work *w, int32_t a, int32_t b)
{
    if (w->comp[a].num_labels < w->comp[b].num_labels) {
        int32_t t = a;
        a = b;
        b = t;
    }
    Comp *ca = w->comp + a;
    const Comp *cb = w->comp + b;
    for (int32_t k = cb->first; k >= 0; k = w->next_label[k])
        w->uf[k] = a;
    w->next_label[ca->last] = cb->first;
    ca->last = cb->last;
    ca->num_labels += cb->num_labels;
    ca->x0 = cb->x0 < ca->x0 ? cb->x0 : ca->x0;
    ca->x1 = cb->x1 > ca->x1 ? cb->x1 : ca->x1;
    ca->r0 = cb->r0 < ca->r0 ? cb->r0 : ca->r0;
    ca->r1 = cb->r1 > ca->r1 ? cb->r1 : ca->r1;
    ca->area2 += cb->area2;
    int32_t moved = w->live[--w->num_live];
    w->live[cb->slot] = moved;
    w->comp[moved].slot = cb->slot;
    return a;
}

/*
 * Add the sorted pixels [begin, end) (one value). The component being grown and the Euler count are kept in local
 * variables: consecutive pixels mostly join the same component, and updating its fields in memory would chain
 * every pixel to the previous one through store-to-load forwarding.
 */
ALWAYS_INLINE void add_pixels(Work *w, int32_t begin, int32_t end, const int largest, const int narrow)
{
    const void *entries = w->entries;
    const uint64_t *info = w->ring_info;
    int32_t *label = w->label, *uf = w->uf;
    int64_t euler4 = 0;
    /* The fields of comp[cur_label], scalars so that they stay in registers. */
    int32_t cx0 = 0, cx1 = 0, cr0 = 0, cr1 = 0, carea2 = 0;
    int32_t cur_label = -1;
    const uint32_t *p32 = (const uint32_t *)entries + begin;
    const uint64_t *p64 = (const uint64_t *)entries + begin;
    /* The pixels of a value come in raster order: of those added to the current component since it became current,
     * the first has the smallest raster index (taken then) and the last, the entry before p, the largest. */
#define STORE_CUR()                                                                                                   \
    do {                                                                                                              \
        if (cur_label >= 0) {                                                                                         \
            Comp *c = w->comp + cur_label;                                                                            \
            const int32_t last = entry_raster(narrow ? p32[-1] : p64[-1], narrow);                                   \
            c->x0 = cx0, c->x1 = cx1, c->r0 = cr0, c->r1 = cr1 > last ? cr1 : last;                                   \
            if (largest)                                                                                              \
                c->area2 = carea2;                                                                                    \
        }                                                                                                             \
    } while (0)
    for (int32_t n = end - begin; n > 0; n--, p32 += narrow, p64 += !narrow) {
        const uint64_t e = narrow ? *p32 : *p64;
        const int32_t raster = entry_raster(e, narrow);
        const int x = entry_column(e, narrow);
        const unsigned m = entry_mask(e, narrow);
        const uint64_t ri = info[m];
        int32_t l;
        if (__builtin_expect((int64_t)ri >= 0, 1)) {
            l = uf[label[raster + (int32_t)(uint32_t)ri]];
        } else if (!m) {
            STORE_CUR();
            l = w->num_labels++;
            uf[l] = l;
            w->comp[l].slot = w->num_live;
            w->comp[l].first = w->comp[l].last = l;
            w->comp[l].num_labels = 1;
            w->next_label[l] = -1;
            w->live[w->num_live++] = l;
            cx0 = cx1 = x, cr0 = cr1 = raster, carea2 = 0;
            cur_label = l;
            euler4 += euler_delta[m];
            goto added;
        } else {
            euler4 += euler_delta[m];
            l = uf[label[raster + w->pick_offset[m][0]]];
            for (int s = 1; s < ring_stretches[m]; s++) {
                int32_t other = uf[label[raster + w->pick_offset[m][s]]];
                if (other != l) {
                    STORE_CUR();
                    cur_label = -1;
                    l = merge(w, l, other);
                }
            }
        }
        {
            /* Hidden from the compiler, the test does not let it store `l` (which waits for two loads) as the
             * pixel's label where it may store `cur_label` (known early): a later pixel's lookup may read it. */
            int32_t differ = l ^ cur_label;
            __asm__("" : "+r"(differ));
            if (differ) {
                STORE_CUR();
                const Comp *c = w->comp + l;
                cx0 = c->x0, cx1 = c->x1, cr0 = c->r0 < raster ? c->r0 : raster, cr1 = c->r1;
                carea2 = largest ? c->area2 : 0;
                cur_label = l;
            }
        }
        cx0 = x < cx0 ? x : cx0;
        cx1 = x > cx1 ? x : cx1;
    added:
        label[raster] = cur_label;
        if (largest)
            carea2 += (int8_t)(ri >> 40);
    }
    STORE_CUR();
#undef STORE_CUR
    w->euler4 += euler4;
}

/* GCC's SLP vectoriser would pack the running box into a vector register for STORE_CUR, at a cost on every pixel. */
#if defined(__GNUC__) && !defined(__clang__)
#define SCALAR_ONLY __attribute__((optimize("no-tree-slp-vectorize")))
#else
#define SCALAR_ONLY
#endif

/* One sweep per mode: all contours need the Euler number, the largest contour the areas. */
SCALAR_ONLY static void add_pixels_all(Work *w, int32_t begin, int32_t end)
{
    if (w->narrow)
        add_pixels(w, begin, end, 0, 1);
    else
        add_pixels(w, begin, end, 0, 0);
}

SCALAR_ONLY static void add_pixels_largest(Work *w, int32_t begin, int32_t end)
{
    if (w->narrow)
        add_pixels(w, begin, end, 1, 1);
    else
        add_pixels(w, begin, end, 1, 0);
}

/* The ring mask of the active neighbours of each pixel of a row when it is added (see sort_pixels). */
ALWAYS_INLINE void ring_masks_as(const uint8_t *c, int stride, int width, uint8_t *restrict codes)
{
    const uint8_t *up = c - stride, *dn = c + stride;
    for (int x = 0; x < width; x++) {
        const uint8_t v = c[x];
        codes[x] = (uint8_t)((up[x - 1] >= v) | (up[x] >= v) << 1 | (up[x + 1] >= v) << 2 | (c[x + 1] > v) << 3 |
                             (dn[x + 1] > v) << 4 | (dn[x] > v) << 5 | (dn[x - 1] > v) << 6 | (c[x - 1] >= v) << 7);
    }
}

static void ring_masks(const uint8_t *c, int stride, int width, uint8_t *restrict codes)
{
    ring_masks_as(c, stride, width, codes);
}

#ifdef AVX2_DISPATCH
AVX2_TARGET static void ring_masks_avx2(const uint8_t *c, int stride, int width, uint8_t *restrict codes)
{
    ring_masks_as(c, stride, width, codes);
}
#endif

/*
 * Counting sort of the pixels by value (raster order within a value, the order in which the sweep adds them), with
 * the ring mask of the neighbours already active when each is added: those before it in raster order at its value
 * or above, those after it above its value. Computing the masks here, a vectorised pass over rows, spares the
 * sweep reading its neighbours' values. `map` has a zero frame (`stride` bytes per row); pixels of
 * value 0 are never added, so the frame never counts as active.
 */
ALWAYS_INLINE void sort_pixels_as(Work *w, const uint8_t *map, int stride, const int narrow)
{
    /*
     * The rows are cut into SORT_STRIPES stripes, each with its own counters, whose pixels go to consecutive parts
     * of every value's bucket; one row of each stripe is handled at a time. Neighbouring pixels often have equal
     * values, and one counter would chain every increment to the previous one; the stripes' chains run in parallel.
     */
    const int width = w->width, height = w->height;
    int first_row[SORT_STRIPES + 1];
    for (int s = 0; s <= SORT_STRIPES; s++)
        first_row[s] = (int)((int64_t)height * s / SORT_STRIPES);
    const int stripe_rows = first_row[1] - first_row[0]; /* the first stripe is the shortest */
    /* Within a row, even and odd columns are counted apart, for the same reason. */
    int32_t count[SORT_STRIPES][NUM_LEVELS], odd[NUM_LEVELS];
    void *restrict entries = w->entries;
    for (int s = 0; s < SORT_STRIPES; s++) {
        memset(count[s], 0, sizeof(count[s]));
        memset(odd, 0, sizeof(odd));
        for (int y = first_row[s]; y < first_row[s + 1]; y++) {
            const uint8_t *row = map + (size_t)(y + 1) * stride + 1;
            int x = 0;
            for (; x + 2 <= width; x += 2) {
                count[s][row[x]]++;
                odd[row[x + 1]]++;
            }
            if (x < width)
                count[s][row[x]]++;
        }
        for (int v = 0; v < NUM_LEVELS; v++)
            count[s][v] += odd[v];
    }
    int32_t total = 0;
    for (int v = 0; v < NUM_LEVELS; v++) {
        w->start[v] = total;
        for (int s = 0; s < SORT_STRIPES; s++) {
            int32_t n = count[s][v];
            count[s][v] = total;
            total += n;
        }
    }
    w->start[NUM_LEVELS] = total;
    for (int r = 0; r < height - first_row[SORT_STRIPES - 1]; r++) {
        const uint8_t *c[SORT_STRIPES];
        uint8_t *codes[SORT_STRIPES];
        int64_t xr[SORT_STRIPES]; /* raster index of the row's first pixel */
        int all = r < stripe_rows;
        for (int s = 0; s < SORT_STRIPES; s++) {
            int y = first_row[s] + r;
            codes[s] = w->row_codes + (size_t)s * width;
            c[s] = map + (size_t)(y + 1) * stride + 1;
            xr[s] = (int64_t)y * width;
            if (y >= first_row[s + 1])
                continue;
#ifdef AVX2_DISPATCH
            if (use_avx2)
                ring_masks_avx2(c[s], stride, width, codes[s]);
            else
#endif
                ring_masks(c[s], stride, width, codes[s]);
            if (narrow) {
                /* The row's entries in a vectorised pass (the raster index y * width + x < 65,536 never carries
                 * into the column), so that the scatter below only moves them. */
                uint32_t *restrict out = w->row_entries + (size_t)s * width;
                const uint32_t *restrict columns = w->column_bits, row_start = (uint32_t)xr[s];
                const uint8_t *restrict code = codes[s];
                for (int x = 0; x < width; x++)
                    out[x] = (uint32_t)code[x] << 24 | (columns[x] + row_start);
            }
        }
        if (all && narrow) {
            const uint32_t *row_entries = w->row_entries;
            for (int x = 0; x < width; x++) {
                for (int s = 0; s < SORT_STRIPES; s++)
                    ((uint32_t *)entries)[count[s][c[s][x]]++] = row_entries[(size_t)s * width + x];
            }
        } else if (all) {
            for (int x = 0; x < width; x++) {
                for (int s = 0; s < SORT_STRIPES; s++)
                    put_entry(entries, count[s][c[s][x]]++, codes[s][x], x, xr[s] + x, narrow);
            }
        } else {
            for (int s = 0; s < SORT_STRIPES; s++) {
                if (first_row[s] + r >= first_row[s + 1])
                    continue;
                for (int x = 0; x < width; x++) {
                    put_entry(entries, count[s][c[s][x]]++, codes[s][x], x, xr[s] + x, narrow);
                }
            }
        }
    }
}

static void sort_pixels(Work *w, const uint8_t *map, int stride)
{
    if (w->narrow)
        sort_pixels_as(w, map, stride, 1);
    else
        sort_pixels_as(w, map, stride, 0);
}

/* Lower the level from 255 to the lowest needed one, adding the pixels of each value once; `visit` is called at
 * every needed level with whether the foreground changed since its last call. */
typedef void (*LevelFn)(Work *w, int level, int changed, void *ctx);

static void sweep_levels(Work *w, const uint8_t *needed, int largest, LevelFn visit, void *ctx)
{
    int lowest = NUM_LEVELS;
    for (int v = 0; v < NUM_LEVELS; v++) {
        if (needed[v]) {
            lowest = v;
            break;
        }
    }
    w->num_live = w->num_labels = 0;
    w->euler4 = 0;
    w->bits_level = -1;
    int changed = 1;
    for (int level = NUM_LEVELS - 1; level >= lowest; level--) {
        if (level + 1 < NUM_LEVELS) {
            (largest ? add_pixels_largest : add_pixels_all)(w, w->start[level + 1], w->start[level + 2]);
            changed |= w->start[level + 2] > w->start[level + 1];
        }
        if (needed[level]) {
            visit(w, level, changed, ctx);
            changed = 0;
        }
    }
}

/* ---- holes, from row runs of the foreground bitmask ------------------------------------------------------ */

/* First column >= x whose bit equals `one` (padding bits are 0), or >= the row's bit count if none. */
static inline int next_bit(const uint64_t *row, int words, int x, int one)
{
    int i = x >> 6;
    if (i >= words)
        return words << 6;
    uint64_t v = (one ? row[i] : ~row[i]) & (~0ULL << (x & 63));
    while (!v) {
        if (++i >= words)
            return words << 6;
        v = one ? row[i] : ~row[i];
    }
    return (i << 6) + __builtin_ctzll(v);
}

static inline int32_t find_root(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* Bit x of `bits` (`words` 64-bit words) set where row[x] > level, for x < n, the rest cleared; reads up to 63 bytes
 * past n. */
static void threshold_row(const uint8_t *row, int n, int level, uint64_t *bits, int words)
{
    const int full = (n + 63) / 64;
#ifdef __SSE2__
    const __m128i flip = _mm_set1_epi8((char)0x80), limit = _mm_set1_epi8((char)(level ^ 0x80));
    for (int i = 0; i < full; i++) {
        const uint8_t *p = row + (size_t)i * 64;
        uint64_t v = 0;
        for (int c = 0; c < 4; c++) {
            __m128i b = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 16 * c)), flip);
            v |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_cmpgt_epi8(b, limit)) << (16 * c);
        }
        bits[i] = v;
    }
#else
    for (int i = 0; i < full; i++) {
        uint64_t v = 0;
        for (int x = 0; x < 64; x++)
            v |= (uint64_t)(row[i * 64 + x] > level) << x;
        bits[i] = v;
    }
#endif
    if (n & 63)
        bits[full - 1] &= (1ULL << (n & 63)) - 1;
    for (int i = full; i < words; i++)
        bits[i] = 0;
}

/* Bring the foreground bitmask to `level`: set the bits of the pixels added since it was last brought up to date,
 * or threshold the whole map when that is cheaper (about one word per row and word of a row against one pixel). */
static void update_bits(Work *w, int level)
{
    const int words = w->words;
    const int32_t added = w->start[w->bits_level + 1] - w->start[level + 1];
    if (w->bits_level < 0 || added > (int32_t)w->height * words) {
        for (int y = 0; y < w->height; y++)
            threshold_row(w->framed + (size_t)(y + 1) * w->padded_width, w->padded_width, level,
                          w->bits + (size_t)(y + 1) * words, words);
    } else {
        const void *entries = w->entries;
        uint64_t *bits = w->bits;
        const double inv_width = 1.0 / w->width;
        for (int32_t k = w->start[level + 1]; k < w->start[w->bits_level + 1]; k++) {
            const uint64_t e = entry_at(entries, k, w->narrow);
            const int32_t raster = entry_raster(e, w->narrow);
            const int x = entry_column(e, w->narrow);
            const size_t y = (size_t)((double)(raster - x) * inv_width + 0.5); /* exact: a multiple of width */
            bits[(y + 1) * words + ((x + 1) >> 6)] |= 1ULL << ((x + 1) & 63);
        }
    }
    w->bits_level = level;
}

/* Merge the stats of root b into those of root a. */
static inline void merge_stats(RunStats *a, const RunStats *b)
{
    a->x0 = b->x0 < a->x0 ? b->x0 : a->x0;
    a->y0 = b->y0 < a->y0 ? b->y0 : a->y0;
    a->x1 = b->x1 > a->x1 ? b->x1 : a->x1;
    a->y1 = b->y1 > a->y1 ? b->y1 : a->y1;
    a->border |= b->border;
}

/*
 * The 4-connected components of the background runs of every row (the gaps between the bits of the foreground):
 * each run joins the components of the runs of the row above that share a column as it is found, and each root
 * (the component's first run) keeps the component's stats. `level` is the current level of the sweep. Returns the
 * number of runs.
 */
static int32_t label_background(Work *w, int level)
{
    update_bits(w, level);
    Run *runs = w->bg_runs;
    int32_t *parent = w->parent;
    RunStats *stats = w->stats;
    const int width = w->width, height = w->height, words = w->words;
    int32_t n = 0, above = 0, above_end = 0; /* the runs of the row above: above..above_end - 1 */
    for (int y = 0; y < height; y++) {
        const uint64_t *row = w->bits + (size_t)(y + 1) * words;
        const int32_t row_first = n;
        const int edge_row = (y == 0) | (y == height - 1);
        int32_t i = above;
        /* In bit columns (pixel + 1): the frame column width + 1 is clear, so a run ends there at the latest. */
        int x = 1;
        while (x <= width) {
            int s = next_bit(row, words, x, 0);
            if (s > width)
                break;
            int e = next_bit(row, words, s, 1);
            e = e > width + 1 ? width + 1 : e;
            const int start = s - 1, end = e - 2;
            runs[n].start = start;
            runs[n].end = end;
            const RunStats own = {start, y, end, y, edge_row | (start == 0) | (end == width - 1)};
            while (i < above_end && runs[i].end < start)
                i++;
            /* The component of the first overlapping run above, or a new one; roots stay the lowest index. */
            int32_t root = n;
            for (int32_t j = i; j < above_end && runs[j].start <= end; j++) {
                const int32_t r = find_root(parent, j);
                if (root == n) {
                    root = r;
                } else if (r != root) {
                    const int32_t keep = r < root ? r : root, gone = r < root ? root : r;
                    parent[gone] = keep;
                    merge_stats(stats + keep, stats + gone);
                    root = keep;
                }
            }
            parent[n] = root;
            if (root == n)
                stats[n] = own;
            else
                merge_stats(stats + root, &own);
            n++;
            x = e + 1;
        }
        above = row_first;
        above_end = n;
    }
    return n;
}

/* Best IoU over the boxes of the holes of the current foreground. */
static double holes_best_iou(Work *w, int level, const int32_t *gt, int64_t num_gt)
{
    const int32_t n = label_background(w, level);
    double best = 0.0;
    for (int32_t k = 0; k < n; k++) {
        if (w->parent[k] == k && !w->stats[k].border) {
            double v = best_iou(hole_box(w->stats + k, w->width, w->height), gt, num_gt);
            if (v > best)
                best = v;
        }
    }
    return best;
}

/* ---- one image ------------------------------------------------------------------------------------------- */

/*
 * Grayscale hole fill with 4-connected paths (for each pixel, the lowest possible maximum of q along a 4-connected
 * path to the border): a reconstruction by erosion of q from its border, by Vincent's hybrid algorithm (L. Vincent,
 * "Morphological grayscale reconstruction in image analysis", IEEE TIP 1993): a raster and an anti-raster scan,
 * then a FIFO queue for the pixels the scans could not settle. `filled` gets a zero frame, as sort_pixels needs.
 */
static void hole_fill(Work *w, const uint8_t *q)
{
    const int height = w->height, width = w->width, pw = w->padded_width;
    const size_t npad = (size_t)(height + 2) * pw;
    uint8_t *r = w->filled, *mask = w->fill_mask; /* q with a frame of 255, which no neighbour lookup can lower */
    memset(mask, 255, npad);
    for (int y = 0; y < height; y++) {
        uint8_t *row = r + (size_t)(y + 1) * pw;
        memcpy(mask + (size_t)(y + 1) * pw + 1, q + (size_t)y * width, width);
        /* The border keeps q, the inside starts at 255 and only comes down; the frame stays at 255. */
        memset(row, 255, pw);
        if (y == 0 || y == height - 1) {
            memcpy(row + 1, q + (size_t)y * width, width);
        } else {
            row[1] = q[(size_t)y * width];
            row[width] = q[(size_t)y * width + width - 1];
        }
    }
    memset(r, 255, pw);
    memset(r + (size_t)(height + 1) * pw, 255, pw);
    /* The scans carry the neighbour just written in a register: through memory, every pixel would wait for the
     * store of the one before. */
    for (int y = 1; y <= height; y++) {
        uint8_t *row = r + (size_t)y * pw;
        const uint8_t *up = row - pw, *m = mask + (size_t)y * pw;
        uint8_t left = row[0];
        for (int x = 1; x <= width; x++) {
            uint8_t v = row[x];
            v = up[x] < v ? up[x] : v;
            v = left < v ? left : v;
            v = m[x] > v ? m[x] : v;
            row[x] = left = v;
        }
    }
    int32_t *queue = w->fill_queue, head = 0, tail = 0;
    const int32_t capacity = (int32_t)npad;
    for (int y = height; y >= 1; y--) {
        uint8_t *row = r + (size_t)y * pw;
        const uint8_t *down = row + pw, *m = mask + (size_t)y * pw, *m_down = m + pw;
        uint8_t right = row[width + 1];
        for (int x = width; x >= 1; x--) {
            uint8_t v = row[x];
            v = down[x] < v ? down[x] : v;
            v = right < v ? right : v;
            v = m[x] > v ? m[x] : v;
            row[x] = v;
            /* Queued without a branch (each pixel once: the scan visits it once). */
            queue[tail] = (int32_t)((size_t)y * pw + x);
            tail += ((down[x] > v) & (down[x] > m_down[x])) | ((right > v) & (right > m[x + 1]));
            right = v;
        }
    }
    /* Lower the neighbours the scans left above what their own paths allow; `in_queue` keeps each pixel in the
     * queue at most once, so a ring buffer of npad entries holds it. */
    uint8_t *in_queue = w->queued;
    memset(in_queue, 0, npad);
    for (int32_t k = head; k < tail; k++)
        in_queue[queue[k]] = 1;
    int32_t count = tail; /* below capacity: the scans queue each pixel at most once */
    const int32_t offsets[4] = {-1, 1, -pw, pw};
    while (count > 0) {
        const int32_t p = queue[head];
        head = head + 1 == capacity ? 0 : head + 1;
        count--;
        in_queue[p] = 0;
        for (int k = 0; k < 4; k++) {
            const int32_t n = p + offsets[k];
            if (r[n] > r[p] && mask[n] != r[n]) {
                r[n] = mask[n] > r[p] ? mask[n] : r[p];
                if (!in_queue[n]) {
                    in_queue[n] = 1;
                    queue[tail] = n;
                    tail = tail + 1 == capacity ? 0 : tail + 1;
                    count++;
                }
            }
        }
    }
    /* sort_pixels needs a zero frame. */
    memset(r, 0, pw);
    memset(r + (size_t)(height + 1) * pw, 0, pw);
    for (int y = 1; y <= height; y++) {
        r[(size_t)y * pw] = 0;
        r[(size_t)y * pw + width + 1] = 0;
    }
}

typedef struct {
    const int32_t *gt;
    int64_t num_gt;
    double iou[NUM_LEVELS];
    Box box[NUM_LEVELS];
    double last_iou;
    Box last_box;
} LevelResults;

/* Best IoU over all contour boxes (components and holes) of the current foreground. */
static void visit_all_contours(Work *w, int level, int changed, void *ctx)
{
    LevelResults *r = ctx;
    if (changed) {
        if (w->num_live == 0) {
            r->last_iou = best_iou(NO_BOX, r->gt, r->num_gt);
        } else {
            double best = 0.0;
            for (int32_t k = 0; k < w->num_live; k++) {
                double v = best_iou(component_box(w->comp + w->live[k], w->width, w->height), r->gt, r->num_gt);
                if (v > best)
                    best = v;
            }
            if (w->num_live * 4 > w->euler4) {
                double v = holes_best_iou(w, level, r->gt, r->num_gt);
                if (v > best)
                    best = v;
            }
            r->last_iou = best;
        }
    }
    r->iou[level] = r->last_iou;
}

/* Box of the largest contour; the sweep runs over the hole-filled map. */
static void visit_largest_contour(Work *w, int level, int changed, void *ctx)
{
    LevelResults *r = ctx;
    if (changed) {
        const Comp *winner = NULL;
        for (int32_t k = 0; k < w->num_live; k++) {
            const Comp *c = w->comp + w->live[k];
            if (!winner || c->area2 > winner->area2 || (c->area2 == winner->area2 && c->r0 > winner->r0))
                winner = c;
        }
        r->last_box = winner ? component_box(winner, w->width, w->height) : NO_BOX;
        r->last_iou = r->gt ? best_iou(r->last_box, r->gt, r->num_gt) : 0.0;
    }
    r->box[level] = r->last_box;
    r->iou[level] = r->last_iou;
}

typedef struct {
    const uint8_t *maps;
    Py_ssize_t batch, all_levels, largest_levels;
    const int32_t *all_level_index, *largest_level_index;
    const int32_t *gt;
    const int64_t *gt_offsets;
    double *all_iou, *largest_iou;
    int32_t *largest_boxes;
} Batch;

static void process_batch(Work *w, const Batch *b)
{
    size_t npix = (size_t)w->height * w->width;
    uint8_t needed[NUM_LEVELS];
    LevelResults r;
    for (Py_ssize_t i = 0; i < b->batch; i++) {
        const uint8_t *q = b->maps + i * npix;
        r.gt = b->gt ? b->gt + 4 * b->gt_offsets[i] : NULL;
        r.num_gt = b->gt ? b->gt_offsets[i + 1] - b->gt_offsets[i] : 0;
        r.last_iou = 0.0;
        r.last_box = NO_BOX;
        if (b->all_levels) {
            const int32_t *levels = b->all_level_index + i * b->all_levels;
            memset(needed, 0, sizeof(needed));
            for (Py_ssize_t t = 0; t < b->all_levels; t++)
                needed[levels[t]] = 1;
            for (int y = 0; y < w->height; y++)
                memcpy(w->framed + (size_t)(y + 1) * w->padded_width + 1, q + (size_t)y * w->width, w->width);
            sort_pixels(w, w->framed, w->padded_width);
            sweep_levels(w, needed, 0, visit_all_contours, &r);
            for (Py_ssize_t t = 0; t < b->all_levels; t++)
                b->all_iou[i * b->all_levels + t] = r.iou[levels[t]];
        }
        if (b->largest_levels) {
            const int32_t *levels = b->largest_level_index + i * b->largest_levels;
            memset(needed, 0, sizeof(needed));
            for (Py_ssize_t t = 0; t < b->largest_levels; t++)
                needed[levels[t]] = 1;
            hole_fill(w, q);
            sort_pixels(w, w->filled, w->padded_width);
            sweep_levels(w, needed, 1, visit_largest_contour, &r);
            for (Py_ssize_t t = 0; t < b->largest_levels; t++) {
                Py_ssize_t o = i * b->largest_levels + t;
                Box box = r.box[levels[t]];
                if (b->largest_iou)
                    b->largest_iou[o] = r.iou[levels[t]];
                if (b->largest_boxes) {
                    b->largest_boxes[4 * o] = box.x0;
                    b->largest_boxes[4 * o + 1] = box.y0;
                    b->largest_boxes[4 * o + 2] = box.x1;
                    b->largest_boxes[4 * o + 3] = box.y1;
                }
            }
        }
    }
}

/* ---- Python binding -------------------------------------------------------------------------------------- */

/* Get a C-contiguous buffer with the given item size and kind ('u', 'i' or 'f'); None gives an empty view. */
static int get_buffer(PyObject *obj, Py_buffer *view, const char *name, Py_ssize_t itemsize, char kind,
                      int writable)
{
    /* None leaves an empty view: buf must be NULL, since callers test output buffers for presence. */
    memset(view, 0, sizeof(*view));
    if (obj == Py_None)
        return 0;
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *fmt = view->format ? view->format : "B";
    while (*fmt == '<' || *fmt == '=' || *fmt == '@' || *fmt == '!' || *fmt == '>')
        fmt++;
    int ok = view->itemsize == itemsize && fmt[0] != '\0' && fmt[1] == '\0';
    if (ok) {
        if (kind == 'u')
            ok = strchr("BHILQ", fmt[0]) != NULL;
        else if (kind == 'i')
            ok = strchr("bhilq", fmt[0]) != NULL;
        else
            ok = fmt[0] == 'd';
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "expected `%s` as a contiguous buffer of %s%zd items, got format '%s'", name,
                     kind == 'u' ? "uint" : (kind == 'i' ? "int" : "float"), itemsize * 8, view->format);
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static void release(Py_buffer *views, int n)
{
    for (int k = 0; k < n; k++) {
        if (views[k].obj)
            PyBuffer_Release(views + k);
    }
}

/* get_buffer for the n arguments of a call, those from `first_output` on writable, None refused unless
 * `allow_none`; on failure none is held. */
static int get_buffers(PyObject **objs, Py_buffer *views, int n, const char *const *names, const Py_ssize_t *sizes,
                       const char *kinds, int first_output, int allow_none)
{
    memset(views, 0, sizeof(*views) * n);
    for (int k = 0; k < n; k++) {
        if (!allow_none && objs[k] == Py_None) {
            PyErr_Format(PyExc_ValueError, "expected `%s`, got None", names[k]);
            release(views, n);
            return -1;
        }
        if (get_buffer(objs[k], views + k, names[k], sizes[k], kinds[k], k >= first_output) < 0) {
            release(views, n);
            return -1;
        }
    }
    return 0;
}

/* In a binding whose buffers are the array `v`: the item count of a buffer (0 for None), and a ValueError that
 * releases them all. */
#define COUNT(k) (v[k].obj ? v[k].len / v[k].itemsize : 0)
#define FAIL(...)                                                 \
    do {                                                          \
        PyErr_Format(PyExc_ValueError, __VA_ARGS__);             \
        release(v, (int)(sizeof(v) / sizeof(v[0])));             \
        return NULL;                                              \
    } while (0)

PyDoc_STRVAR(contour_boxes_doc,
             "contour_boxes(maps, height, width, all_levels, largest_levels, gt_boxes, gt_offsets, all_iou, "
             "largest_iou, largest_boxes)\n--\n\n"
             "Contour boxes of uint8 maps (B, height, width) thresholded at per-image levels (foreground: map > "
             "level).\n\n"
             "all_levels: int32 (B, T) or None; fills all_iou (float64 (B, T)) with the best IoU over the boxes of "
             "all contours (RETR_TREE) and the ground-truth boxes.\n"
             "largest_levels: int32 (B, S) or None; fills largest_boxes (int32 (B, S, 4)) with the box of the "
             "largest contour and largest_iou (float64 (B, S), or None) with its best IoU.\n"
             "gt_boxes: int32 (G, 4) x0, y0, x1, y1; gt_offsets: int64 (B + 1,), image i owns rows "
             "gt_offsets[i]:gt_offsets[i + 1]. Both may be None when no IoU is requested.\n"
             "Boxes follow OpenCV: x, y, x + w, y + h clipped to (width - 1, height - 1); [0, 0, 0, 0] when the "
             "foreground is empty.");

static PyObject *contour_boxes(PyObject *self, PyObject *args)
{
    PyObject *objs[8];
    int height, width;
    if (!PyArg_ParseTuple(args, "OiiOOOOOOO", &objs[0], &height, &width, &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &objs[6], &objs[7]))
        return NULL;
    static const char *names[8] = {"maps",       "all_levels", "largest_levels", "gt_boxes",
                                   "gt_offsets", "all_iou",    "largest_iou",    "largest_boxes"};
    static const Py_ssize_t sizes[8] = {1, 4, 4, 4, 8, 8, 8, 4};
    static const char kinds[8] = {'u', 'i', 'i', 'i', 'i', 'f', 'f', 'i'};
    Py_buffer v[8];
    if (get_buffers(objs, v, 8, names, sizes, kinds, 5, 1) < 0)
        return NULL;
    if (!v[0].obj)
        FAIL("expected `maps`, got None");
    if (height < 1 || width < 1 || height > 32767 || width > 32767)
        FAIL("expected a map size in [1, 32767], got %d x %d", height, width);
    Py_ssize_t npix = (Py_ssize_t)height * width;
    if (npix > INT32_MAX / 4 || COUNT(0) % npix != 0)
        FAIL("expected `maps` of B x %d x %d bytes, got %zd", height, width, COUNT(0));
    Batch b;
    memset(&b, 0, sizeof(b));
    b.maps = v[0].buf;
    b.batch = COUNT(0) / npix;
    if (b.batch == 0) {
        release(v, 8);
        Py_RETURN_NONE;
    }
    for (int k = 1; k <= 2; k++) {
        if (COUNT(k) % b.batch != 0)
            FAIL("expected `%s` of %zd rows, got %zd values", names[k], b.batch, COUNT(k));
        const int32_t *levels = v[k].buf;
        for (Py_ssize_t t = 0; t < COUNT(k); t++) {
            if (levels[t] < 0 || levels[t] >= NUM_LEVELS)
                FAIL("expected `%s` in [0, 255], got %d", names[k], levels[t]);
        }
    }
    b.all_levels = COUNT(1) / b.batch;
    b.largest_levels = COUNT(2) / b.batch;
    b.all_level_index = v[1].buf;
    b.largest_level_index = v[2].buf;
    if (b.all_levels && COUNT(5) != b.batch * b.all_levels)
        FAIL("expected `all_iou` of %zd values, got %zd", b.batch * b.all_levels, COUNT(5));
    if (b.largest_levels && COUNT(7) != 4 * b.batch * b.largest_levels)
        FAIL("expected `largest_boxes` of %zd values, got %zd", 4 * b.batch * b.largest_levels, COUNT(7));
    if (v[6].obj && COUNT(6) != b.batch * b.largest_levels)
        FAIL("expected `largest_iou` of %zd values, got %zd", b.batch * b.largest_levels, COUNT(6));
    int need_gt = b.all_levels > 0 || v[6].obj != NULL;
    if (need_gt) {
        if (!v[3].obj || !v[4].obj)
            FAIL("expected `gt_boxes` and `gt_offsets` to compute IoUs, got None");
        if (COUNT(3) % 4 != 0 || COUNT(4) != b.batch + 1)
            FAIL("expected `gt_boxes` (G, 4) and `gt_offsets` (%zd,), got %zd and %zd values", b.batch + 1,
                 COUNT(3), COUNT(4));
        const int64_t *off = v[4].buf;
        if (off[0] != 0 || off[b.batch] != COUNT(3) / 4)
            FAIL("expected `gt_offsets` from 0 to %zd, got %lld to %lld", COUNT(3) / 4, (long long)off[0],
                 (long long)off[b.batch]);
        for (Py_ssize_t i = 0; i < b.batch; i++) {
            if (off[i + 1] < off[i])
                FAIL("expected non-decreasing `gt_offsets`, got %lld after %lld", (long long)off[i + 1],
                     (long long)off[i]);
        }
        b.gt = v[3].buf;
        b.gt_offsets = off;
    }
    b.all_iou = v[5].buf;
    b.largest_iou = v[6].buf;
    b.largest_boxes = v[7].buf;
    Work w;
    int failed;
    Py_BEGIN_ALLOW_THREADS
    failed = work_alloc(&w, height, width);
    if (!failed) {
        process_batch(&w, &b);
        work_free(&w);
    }
    Py_END_ALLOW_THREADS
    release(v, 8);
    if (failed)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* ---- score maps ------------------------------------------------------------------------------------------ */

/* Fold n lanes of running minima l and maxima h into *low and *high. */
static void fold_lanes(const double *l, const double *h, int n, double *low, double *high)
{
    for (int j = 0; j < n; j++) {
        *low = l[j] < *low ? l[j] : *low;
        *high = h[j] > *high ? h[j] : *high;
    }
}

#ifdef __SSE2__
static void fold_min_max(__m128d lo, __m128d hi, double *low, double *high)
{
    double l[2], h[2];
    _mm_storeu_pd(l, lo);
    _mm_storeu_pd(h, hi);
    fold_lanes(l, h, 2, low, high);
}
#endif

/* ((v0 * w0 + v1 * w1) + v2 * w2) + v3 * w3, every product and sum rounded (no FMA): OpenCV's sum of four taps. */
static inline double tap_sum(double v0, double v1, double v2, double v3, const double *w)
{
    double s = v0 * w[0];
    s += v1 * w[1];
    s += v2 * w[2];
    s += v3 * w[3];
    return s;
}

/* Columns x.. of one output row of the vertical pass, one at a time, with their minimum and maximum: the rest that
 * the vector loops leave. */
static inline void vertical_rest(const double *const t[4], const double *c, int x, int width, double *d, double *low,
                                 double *high)
{
    for (; x < width; x++) {
        const double s = tap_sum(t[0][x], t[1][x], t[2][x], t[3][x], c);
        d[x] = s;
        *low = s < *low ? s : *low;
        *high = s > *high ? s : *high;
    }
}

/* The vertical pass of resize_map (see there), with the minimum and maximum of its output. */
static void vertical_pass(const double *tmp, int width, const int64_t *row_index, const double *row_weights, int height,
                          double *dst, double *low, double *high)
{
    double low_s = INFINITY, high_s = -INFINITY;
#ifdef __SSE2__
    __m128d lo = _mm_set1_pd(INFINITY), hi = _mm_set1_pd(-INFINITY);
#endif
    for (int y = 0; y < height; y++) {
        const int64_t *i = row_index + 4 * y;
        const double *c = row_weights + 4 * y;
        const double *const t[4] = {tmp + i[0] * width, tmp + i[1] * width, tmp + i[2] * width, tmp + i[3] * width};
        double *d = dst + (size_t)y * width;
        int x = 0;
#ifdef __SSE2__
        const __m128d c0 = _mm_set1_pd(c[0]), c1 = _mm_set1_pd(c[1]), c2 = _mm_set1_pd(c[2]), c3 = _mm_set1_pd(c[3]);
        for (; x + 2 <= width; x += 2) {
            __m128d s = _mm_add_pd(_mm_mul_pd(_mm_loadu_pd(t[0] + x), c0), _mm_mul_pd(_mm_loadu_pd(t[1] + x), c1));
            s = _mm_add_pd(s, _mm_mul_pd(_mm_loadu_pd(t[2] + x), c2));
            s = _mm_add_pd(s, _mm_mul_pd(_mm_loadu_pd(t[3] + x), c3));
            _mm_storeu_pd(d + x, s);
            lo = _mm_min_pd(s, lo);
            hi = _mm_max_pd(s, hi);
        }
#endif
        vertical_rest(t, c, x, width, d, &low_s, &high_s);
    }
#ifdef __SSE2__
    fold_min_max(lo, hi, &low_s, &high_s);
#endif
    *low = low_s;
    *high = high_s;
}

#ifdef AVX2_DISPATCH
/* vertical_pass, four values per operation. */
AVX2_TARGET static void vertical_pass_avx2(const double *tmp, int width, const int64_t *row_index,
                                           const double *row_weights, int height, double *dst, double *low,
                                           double *high)
{
    double low_s = INFINITY, high_s = -INFINITY;
    __m256d lo = _mm256_set1_pd(INFINITY), hi = _mm256_set1_pd(-INFINITY);
    for (int y = 0; y < height; y++) {
        const int64_t *i = row_index + 4 * y;
        const double *c = row_weights + 4 * y;
        const double *const t[4] = {tmp + i[0] * width, tmp + i[1] * width, tmp + i[2] * width, tmp + i[3] * width};
        double *d = dst + (size_t)y * width;
        const __m256d c0 = _mm256_set1_pd(c[0]), c1 = _mm256_set1_pd(c[1]), c2 = _mm256_set1_pd(c[2]),
                      c3 = _mm256_set1_pd(c[3]);
        int x = 0;
        for (; x + 4 <= width; x += 4) {
            __m256d v = _mm256_add_pd(_mm256_mul_pd(_mm256_loadu_pd(t[0] + x), c0),
                                      _mm256_mul_pd(_mm256_loadu_pd(t[1] + x), c1));
            v = _mm256_add_pd(v, _mm256_mul_pd(_mm256_loadu_pd(t[2] + x), c2));
            v = _mm256_add_pd(v, _mm256_mul_pd(_mm256_loadu_pd(t[3] + x), c3));
            _mm256_storeu_pd(d + x, v);
            lo = _mm256_min_pd(v, lo);
            hi = _mm256_max_pd(v, hi);
        }
        vertical_rest(t, c, x, width, d, &low_s, &high_s);
    }
    double l[4], h[4];
    _mm256_storeu_pd(l, lo);
    _mm256_storeu_pd(h, hi);
    fold_lanes(l, h, 4, &low_s, &high_s);
    *low = low_s;
    *high = high_s;
}
#endif

/* The output columns' taps for the horizontal pass: as given, and by groups of 4 columns that read the same 4
 * source columns (most, when upsampling), with their weights tap by tap so that a group is a few vector operations. */
typedef struct {
    const int64_t *index;  /* (width, 4) source column of each tap */
    const double *weights; /* (width, 4) */
    double *by_tap;        /* by_tap[k * width + x] = weights[4 * x + k] */
    uint8_t *shared;       /* per group of 4 columns (the last partial group excluded): the same source columns */
} ColumnTaps;

static int column_taps(ColumnTaps *c, const int64_t *index, const double *weights, int width)
{
    c->index = index;
    c->weights = weights;
    c->by_tap = malloc(sizeof(double) * 4 * (size_t)width);
    c->shared = malloc((size_t)width / 4 + 1);
    if (!c->by_tap || !c->shared)
        return -1;
    for (int x = 0; x < width; x++) {
        for (int k = 0; k < 4; k++)
            c->by_tap[(size_t)k * width + x] = weights[4 * x + k];
    }
    for (int g = 0; g + 4 <= width; g += 4) {
        int same = 1;
        for (int j = 4; j < 16; j++)
            same &= index[4 * g + j] == index[4 * g + (j & 3)];
        c->shared[g / 4] = (uint8_t)same;
    }
    return 0;
}

/* Output column x of one source row in the horizontal pass. */
static inline double horizontal_value(const double *row, const ColumnTaps *c, int x)
{
    const int64_t *i = c->index + 4 * x;
    return tap_sum(row[i[0]], row[i[1]], row[i[2]], row[i[3]], c->weights + 4 * x);
}

/* One source row through the horizontal pass, a group of 4 columns with shared source columns at a time. */
static void horizontal_row(const double *row, const ColumnTaps *c, int width, double *t)
{
    int x = 0;
    for (; x + 4 <= width; x += 4) {
#ifdef __SSE2__
        if (c->shared[x / 4]) {
            const int64_t *i = c->index + 4 * x;
            const double *w = c->by_tap + x;
            const __m128d v0 = _mm_set1_pd(row[i[0]]), v1 = _mm_set1_pd(row[i[1]]), v2 = _mm_set1_pd(row[i[2]]),
                          v3 = _mm_set1_pd(row[i[3]]);
            for (int h = 0; h < 4; h += 2) {
                __m128d s = _mm_mul_pd(v0, _mm_loadu_pd(w + h));
                s = _mm_add_pd(s, _mm_mul_pd(v1, _mm_loadu_pd(w + width + h)));
                s = _mm_add_pd(s, _mm_mul_pd(v2, _mm_loadu_pd(w + 2 * width + h)));
                s = _mm_add_pd(s, _mm_mul_pd(v3, _mm_loadu_pd(w + 3 * width + h)));
                _mm_storeu_pd(t + x + h, s);
            }
            continue;
        }
#endif
        for (int j = 0; j < 4; j++)
            t[x + j] = horizontal_value(row, c, x + j);
    }
    for (; x < width; x++)
        t[x] = horizontal_value(row, c, x);
}

/* Resize one map: tmp = horizontal pass over the source rows, then the vertical pass; each output is
 * ((v0 * w0 + v1 * w1) + v2 * w2) + v3 * w3 with every product and sum rounded (no FMA). The minimum and maximum of
 * the output come with it (meaningless if it has a NaN). */
static void resize_map(const double *src, int src_w, int src_h, const ColumnTaps *columns, int width,
                       const int64_t *row_index, const double *row_weights, int height, double *tmp, double *dst,
                       double *low, double *high)
{
    for (int r = 0; r < src_h; r++)
        horizontal_row(src + (size_t)r * src_w, columns, width, tmp + (size_t)r * width);
#ifdef AVX2_DISPATCH
    if (use_avx2) {
        vertical_pass_avx2(tmp, width, row_index, row_weights, height, dst, low, high);
        return;
    }
#endif
    vertical_pass(tmp, width, row_index, row_weights, height, dst, low, high);
}

/* The minimum and maximum of n >= 1 values, none of them NaN. */
static void min_max(const double *m, size_t n, double *low, double *high)
{
    size_t k = 0;
    double lo = m[0], hi = m[0];
#ifdef __SSE2__
    /* minpd / maxpd: a < b ? a : b and a > b ? a : b, as the scalar loop below, two pairs at a time. */
    __m128d lo0 = _mm_set1_pd(lo), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    for (; k + 4 <= n; k += 4) {
        __m128d a = _mm_loadu_pd(m + k), b = _mm_loadu_pd(m + k + 2);
        lo0 = _mm_min_pd(a, lo0);
        lo1 = _mm_min_pd(b, lo1);
        hi0 = _mm_max_pd(a, hi0);
        hi1 = _mm_max_pd(b, hi1);
    }
    fold_min_max(_mm_min_pd(lo0, lo1), _mm_max_pd(hi0, hi1), &lo, &hi);
#endif
    for (; k < n; k++) {
        lo = m[k] < lo ? m[k] : lo;
        hi = m[k] > hi ? m[k] : hi;
    }
    *low = lo;
    *high = hi;
}

/* The end of a block [b, end) of quantize_normalized, from k on, where the vector loop stopped: the values left,
 * then the whole block again by the division if a value lies near a bin edge (`near`, or a scale that is not finite).
 * Returns the larger of `top` and the block's peak. */
static inline uint8_t quantize_block_end(const double *m, size_t b, size_t k, size_t end, double base, double range,
                                         double scale, int near, uint8_t *q, uint8_t top)
{
    const int fast = isfinite(scale);
    near |= !fast;
    for (; fast && k < end; k++) {
        const double y = (m[k] - base) * scale;
        const int t = (int)y;
        near |= y - t < QUANTIZE_EPS || y - t > 1.0 - QUANTIZE_EPS;
        q[k] = (uint8_t)t;
    }
    if (near) {
        for (k = b; k < end; k++)
            q[k] = (uint8_t)((m[k] - base) / range * 255);
    }
    for (k = b; k < end; k++)
        top = q[k] > top ? q[k] : top;
    return top;
}

#ifdef AVX2_DISPATCH
/* quantize_normalized, four values per operation (see there). */
AVX2_TARGET static uint8_t quantize_normalized_avx2(const double *m, size_t n, double base, double range, uint8_t *q)
{
    const double scale = 255.0 / range;
    const int fast = isfinite(scale);
    const __m256d vbase = _mm256_set1_pd(base), vscale = _mm256_set1_pd(scale), low = _mm256_set1_pd(QUANTIZE_EPS),
                  high = _mm256_set1_pd(1.0 - QUANTIZE_EPS);
    uint8_t top = 0;
    for (size_t b = 0; b < n; b += 256) {
        const size_t end = b + 256 < n ? b + 256 : n;
        int near = 0;
        size_t k = b;
        __m256d near_v = _mm256_setzero_pd();
        for (; fast && k + 16 <= end; k += 16) {
            __m128i t[4];
            for (int j = 0; j < 4; j++) {
                const __m256d y = _mm256_mul_pd(_mm256_sub_pd(_mm256_loadu_pd(m + k + 4 * j), vbase), vscale);
                t[j] = _mm256_cvttpd_epi32(y);
                const __m256d f = _mm256_sub_pd(y, _mm256_cvtepi32_pd(t[j]));
                near_v = _mm256_or_pd(near_v, _mm256_or_pd(_mm256_cmp_pd(f, low, _CMP_LT_OQ),
                                                           _mm256_cmp_pd(f, high, _CMP_GT_OQ)));
            }
            const __m128i words = _mm_packus_epi16(_mm_packs_epi32(t[0], t[1]), _mm_packs_epi32(t[2], t[3]));
            _mm_storeu_si128((__m128i *)(q + k), words);
        }
        near |= _mm256_movemask_pd(near_v);
        top = quantize_block_end(m, b, k, end, base, range, scale, near, q, top);
    }
    return top;
}
#endif

/*
 * The quantised normalised map, q = (uint8_t)(((m - base) / range) * 255), without a division per value: with
 * y = (m - base) * (255 / range), within 5e-16 relative (1.3e-13 absolute) of the exact y, the integer part is the
 * same unless y lies within 1e-12 of an integer (the minimum and the maximum always do, others hardly ever); blocks
 * with such a value are redone with the division. Returns the peak of q.
 */
static uint8_t quantize_normalized(const double *m, size_t n, double base, double range, uint8_t *q)
{
#ifdef AVX2_DISPATCH
    if (use_avx2)
        return quantize_normalized_avx2(m, n, base, range, q);
#endif
    const double scale = 255.0 / range;
    /* A range below 255 / DBL_MAX overflows the scale: every block is then done with the division. */
    const int fast = isfinite(scale);
    uint8_t top = 0;
    for (size_t b = 0; b < n; b += 256) {
        const size_t end = b + 256 < n ? b + 256 : n;
        int near = 0;
        size_t k = b;
#ifdef __SSE2__
        const __m128d vbase = _mm_set1_pd(base), vscale = _mm_set1_pd(scale), low = _mm_set1_pd(QUANTIZE_EPS),
                      high = _mm_set1_pd(1.0 - QUANTIZE_EPS);
        __m128d near_v = _mm_setzero_pd();
        for (; fast && k + 8 <= end; k += 8) {
            __m128i t[4];
            for (int j = 0; j < 4; j++) {
                const __m128d y = _mm_mul_pd(_mm_sub_pd(_mm_loadu_pd(m + k + 2 * j), vbase), vscale);
                t[j] = _mm_cvttpd_epi32(y);
                const __m128d f = _mm_sub_pd(y, _mm_cvtepi32_pd(t[j]));
                near_v = _mm_or_pd(near_v, _mm_or_pd(_mm_cmplt_pd(f, low), _mm_cmpgt_pd(f, high)));
            }
            const __m128i words = _mm_packs_epi32(_mm_unpacklo_epi64(t[0], t[1]), _mm_unpacklo_epi64(t[2], t[3]));
            _mm_storel_epi64((__m128i *)(q + k), _mm_packus_epi16(words, words));
        }
        near |= _mm_movemask_pd(near_v);
#endif
        top = quantize_block_end(m, b, k, end, base, range, scale, near, q, top);
    }
    return top;
}

/*
 * (m - min) / (max - min) in place, all zeros for a constant map, and, when `q` is given, the map quantised as
 * `quantize_maps` does and its peak; without `keep`, only q and the peak are written. Returns 0, leaving the map
 * untouched, when a value is not finite; `finite` says that the caller already knows every value is. `bounds`,
 * if given, holds the map's minimum and maximum.
 */
static int normalize_map(double *m, size_t n, int finite, const double *bounds, uint8_t *q, int keep, uint8_t *peak)
{
    for (size_t k = 0; k < n && !finite; k++) {
        if (!isfinite(m[k]))
            return 0;
    }
    double low, high;
    if (bounds)
        low = bounds[0], high = bounds[1];
    else
        min_max(m, n, &low, &high);
    *peak = 0;
    if (high == low) {
        memset(m, 0, n * sizeof(double));
        if (q)
            memset(q, 0, n);
        return 1;
    }
    const double base = low, range = high - low;
    if (!q) {
        for (size_t k = 0; k < n; k++)
            m[k] = (m[k] - base) / range;
        return 1;
    }
    /* m - base <= range once rounded (rounding is monotonic), so s is in [0, 1] and the cast is defined. */
    if (!keep) {
        *peak = quantize_normalized(m, n, base, range, q);
        return 1;
    }
    uint8_t top = 0;
    for (size_t k = 0; k < n; k++) {
        double s = (m[k] - base) / range;
        m[k] = s;
        q[k] = (uint8_t)(s * 255);
        top = q[k] > top ? q[k] : top;
    }
    *peak = top;
    return 1;
}

PyDoc_STRVAR(normalized_maps_doc,
             "normalized_maps(cams, src_height, src_width, row_index, row_weights, col_index, col_weights, out, "
             "quantized, peaks)\n--\n\n"
             "Resize float64 maps (B, src_height, src_width) with the cubic taps of resize.py (index int64 (n, 4), "
             "weights float64 (n, 4), for the output rows and columns; all None to keep the size) as OpenCV does, "
             "and min-max normalise them into out (float64 (B, n_rows, n_cols)); constant maps become zeros.\n"
             "quantized (uint8, same shape) and peaks (float64 (B,)), or None: the normalised maps quantised as "
             "quantize_maps does, map by map while each is in cache. out may be None when quantized is given.\n"
             "Returns False when a resized map has a non-finite value (the outputs are then incomplete).");

static PyObject *normalized_maps(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[8];
    int src_h, src_w;
    if (!PyArg_ParseTuple(args, "OiiOOOOOOO", &objs[0], &src_h, &src_w, &objs[1], &objs[2], &objs[3], &objs[4],
                          &objs[5], &objs[6], &objs[7]))
        return NULL;
    static const char *names[8] = {"cams",        "row_index", "row_weights", "col_index",
                                   "col_weights", "out",       "quantized",   "peaks"};
    static const Py_ssize_t sizes[8] = {8, 8, 8, 8, 8, 8, 1, 8};
    static const char kinds[8] = {'f', 'i', 'f', 'i', 'f', 'f', 'u', 'f'};
    Py_buffer v[8];
    if (get_buffers(objs, v, 8, names, sizes, kinds, 5, 1) < 0)
        return NULL;
    if (!v[0].obj || (!v[5].obj && !v[6].obj))
        FAIL("expected `cams` and at least one of `out` and `quantized`, got None");
    if ((v[6].obj != NULL) != (v[7].obj != NULL))
        FAIL("expected `quantized` and `peaks` both or neither, got only `%s`", v[6].obj ? "quantized" : "peaks");
    if (src_h < 1 || src_w < 1 || (Py_ssize_t)src_h * src_w > INT32_MAX)
        FAIL("expected a source size >= 1, got %d x %d", src_h, src_w);
    Py_ssize_t src_npix = (Py_ssize_t)src_h * src_w;
    if (COUNT(0) % src_npix != 0)
        FAIL("expected `cams` of B x %d x %d values, got %zd", src_h, src_w, COUNT(0));
    Py_ssize_t batch = COUNT(0) / src_npix;
    int resize = v[1].obj != NULL;
    for (int k = 2; k <= 4; k++) {
        if ((v[k].obj != NULL) != resize)
            FAIL("expected all four tap arrays or none, got `%s` %s", names[k], v[k].obj ? "given" : "None");
    }
    Py_ssize_t height = src_h, width = src_w;
    if (resize) {
        if (COUNT(1) % 4 || COUNT(2) != COUNT(1) || COUNT(3) % 4 || COUNT(4) != COUNT(3) || !COUNT(1) || !COUNT(3))
            FAIL("expected taps of shape (n, 4), got %zd, %zd, %zd and %zd values", COUNT(1), COUNT(2), COUNT(3),
                 COUNT(4));
        height = COUNT(1) / 4;
        width = COUNT(3) / 4;
        const int64_t *rows = v[1].buf, *cols = v[3].buf;
        for (Py_ssize_t k = 0; k < COUNT(1); k++) {
            if (rows[k] < 0 || rows[k] >= src_h)
                FAIL("expected `row_index` in [0, %d), got %lld", src_h, (long long)rows[k]);
        }
        for (Py_ssize_t k = 0; k < COUNT(3); k++) {
            if (cols[k] < 0 || cols[k] >= src_w)
                FAIL("expected `col_index` in [0, %d), got %lld", src_w, (long long)cols[k]);
        }
    }
    for (int k = 5; k <= 6; k++) {
        if (v[k].obj && COUNT(k) != batch * height * width)
            FAIL("expected `%s` of %zd values, got %zd", names[k], batch * height * width, COUNT(k));
    }
    if (v[7].obj && COUNT(7) != batch)
        FAIL("expected `peaks` of %zd values, got %zd", batch, COUNT(7));
    const double *cams = v[0].buf;
    double *out = v[5].buf, *peaks = v[7].buf, *tmp = NULL, *scratch = NULL;
    ColumnTaps columns = {0};
    uint8_t *quantized = v[6].buf;
    size_t npix = (size_t)height * width;
    int finite = 1, failed = 0;
    /* A bound on |resized| / max |source|: the largest sum of |weights| of a row times that of a column. */
    double gain = 1.0;
    for (int k = 1; resize && k <= 3; k += 2) {
        const double *weights = v[k + 1].buf;
        double largest = 0.0;
        for (Py_ssize_t t = 0; t < COUNT(k + 1); t += 4) {
            double sum = fabs(weights[t]) + fabs(weights[t + 1]) + fabs(weights[t + 2]) + fabs(weights[t + 3]);
            largest = sum > largest ? sum : largest;
        }
        gain *= largest;
    }
    Py_BEGIN_ALLOW_THREADS
    if (resize) {
        tmp = malloc(sizeof(double) * (size_t)src_h * width);
        failed |= tmp == NULL || column_taps(&columns, v[3].buf, v[4].buf, (int)width) < 0;
    }
    if (!out) {
        /* Without `out`, every map goes through one buffer that stays in cache. */
        scratch = malloc(sizeof(double) * npix);
        failed |= scratch == NULL;
    }
    for (Py_ssize_t i = 0; i < batch && !failed; i++) {
        double *dst = out ? out + i * npix : scratch, bounds[2];
        if (resize)
            resize_map(cams + i * src_npix, src_w, src_h, &columns, (int)width, v[1].buf, v[2].buf, (int)height, tmp,
                       dst, bounds, bounds + 1);
        else
            memcpy(dst, cams + i * src_npix, sizeof(double) * npix);
        /* Finite sources far from overflow give finite maps, which then need no check of their own. */
        double largest = 0.0;
        int known_finite = 1;
        for (Py_ssize_t k = 0; k < src_npix; k++) {
            double a = fabs(cams[i * src_npix + k]);
            known_finite &= a <= 1e300; /* false for NaN and inf */
            largest = a > largest ? a : largest;
        }
        known_finite &= largest * gain <= 1e300;
        uint8_t peak = 0;
        uint8_t *q = quantized ? quantized + i * npix : NULL;
        finite &= normalize_map(dst, npix, known_finite, resize ? bounds : NULL, q, out != NULL, &peak);
        if (peaks)
            peaks[i] = peak;
    }
    free(tmp);
    free(scratch);
    free(columns.by_tap);
    free(columns.shared);
    Py_END_ALLOW_THREADS
    release(v, 8);
    if (failed)
        return PyErr_NoMemory();
    return PyBool_FromLong(finite);
}

PyDoc_STRVAR(quantize_maps_doc,
             "quantize_maps(maps, out, peaks)\n--\n\n"
             "out = (maps * 255) truncated to uint8 and peaks[i] = the maximum of out[i], for float64 maps (B, ...) "
             "with B = len(peaks). Returns False, leaving out incomplete, when a value is outside [0, 1] or NaN.");

static PyObject *quantize_maps(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[3];
    if (!PyArg_ParseTuple(args, "OOO", &objs[0], &objs[1], &objs[2]))
        return NULL;
    static const char *names[3] = {"maps", "out", "peaks"};
    static const Py_ssize_t sizes[3] = {8, 1, 8};
    static const char kinds[3] = {'f', 'u', 'f'};
    Py_buffer v[3];
    if (get_buffers(objs, v, 3, names, sizes, kinds, 1, 0) < 0)
        return NULL;
    Py_ssize_t n = v[0].len / 8, batch = v[2].len / 8;
    if (v[1].len != n || batch < 1 || n % batch != 0)
        FAIL("expected `maps` and `out` of B x N values with B = len(peaks) = %zd, got %zd and %zd", batch, n,
             v[1].len);
    const double *maps = v[0].buf;
    uint8_t *out = v[1].buf;
    double *peaks = v[2].buf;
    Py_ssize_t npix = n / batch;
    int in_range = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < batch && in_range; i++) {
        uint8_t peak = 0;
        for (Py_ssize_t k = i * npix; k < (i + 1) * npix; k++) {
            double s = maps[k];
            in_range &= s >= 0.0 && s <= 1.0;
            /* Clamped only so that an out-of-range value (reported, then redone in torch) is a defined cast. */
            uint8_t q = (uint8_t)(s >= 0.0 && s <= 1.0 ? s * 255 : 0.0);
            out[k] = q;
            peak = q > peak ? q : peak;
        }
        peaks[i] = peak;
    }
    Py_END_ALLOW_THREADS
    release(v, 3);
    return PyBool_FromLong(in_range);
}

/* ---- PxAP's pixel histograms ---------------------------------------------------------------------------- */

PyDoc_STRVAR(pixel_counts_doc,
             "pixel_counts(values, labels, edges, foreground, background)\n--\n\n"
             "Add to foreground and background (int64 (E - 1,)) the number of values (float64 (N,)) whose label "
             "(uint8 (N,): 1 object, 2 background, anything else ignored) is that one, per bin of the non-decreasing, "
             "finite edges (float64 (E,), E >= 2, the last above the first), as numpy.histogram bins them: "
             "[edges[i], edges[i + 1]), the last bin closed, values outside [edges[0], edges[E - 1]] and NaN in none.");

static PyObject *pixel_counts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *objs[5];
    if (!PyArg_ParseTuple(args, "OOOOO", &objs[0], &objs[1], &objs[2], &objs[3], &objs[4]))
        return NULL;
    static const char *names[5] = {"values", "labels", "edges", "foreground", "background"};
    static const Py_ssize_t sizes[5] = {8, 1, 8, 8, 8};
    static const char kinds[5] = {'f', 'u', 'f', 'i', 'i'};
    Py_buffer v[5];
    if (get_buffers(objs, v, 5, names, sizes, kinds, 3, 0) < 0)
        return NULL;
    const Py_ssize_t n = COUNT(0), num_edges = COUNT(2);
    if (COUNT(1) != n)
        FAIL("expected as many `labels` as `values` (%zd), got %zd", n, COUNT(1));
    if (num_edges < 2 || COUNT(3) != num_edges - 1 || COUNT(4) != num_edges - 1)
        FAIL("expected at least 2 `edges` and `foreground`, `background` of one bin fewer, got %zd, %zd and %zd",
             num_edges, COUNT(3), COUNT(4));
    const double *values = v[0].buf, *edges = v[2].buf;
    const uint8_t *labels = v[1].buf;
    for (Py_ssize_t k = 0; k < num_edges; k++) {
        if (!isfinite(edges[k]) || (k && edges[k] < edges[k - 1]))
            FAIL("expected finite, non-decreasing `edges`, got %g after %g", edges[k], k ? edges[k - 1] : edges[k]);
    }
    if (!(edges[num_edges - 1] > edges[0]))
        FAIL("expected the last of `edges` above the first, got %g and %g", edges[num_edges - 1], edges[0]);
    /* A uniform grid over the edges guesses each value's bin; comparisons with the edges themselves then settle it,
     * so the counts are those of a binary search, in a step or two per value. */
    const Py_ssize_t cells = 4 * num_edges, bins = num_edges - 1, last = bins - 1;
    const double low = edges[0], high = edges[num_edges - 1], scale = (double)cells / (high - low);
    int64_t *foreground = v[3].buf, *background = v[4].buf;
    int32_t *guess = malloc(sizeof(int32_t) * cells);
    int64_t *counts = calloc(2 * bins, sizeof(int64_t)); /* object bins, then background bins */
    if (!guess || !counts) {
        free(guess);
        free(counts);
        release(v, 5);
        return PyErr_NoMemory();
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t c = 0, i = 0; c < cells; c++) {
        while (i < last && edges[i + 1] <= low + (double)c / scale)
            i++;
        guess[c] = (int32_t)i;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        const uint8_t label = labels[k];
        const double value = values[k];
        /* The comparisons are false for NaN, which is left out with the values out of range. */
        if ((label != 1 && label != 2) || !(value >= low && value <= high))
            continue;
        const double t = (value - low) * scale;
        Py_ssize_t i = guess[t < (double)cells ? (Py_ssize_t)t : cells - 1];
        /* One step either way without a branch (the usual case on near-uniform edges), then any further ones. */
        i += (i < last) & (edges[i + 1] <= value);
        while (i < last && edges[i + 1] <= value)
            i++;
        i -= (i > 0) & (edges[i] > value);
        while (i > 0 && edges[i] > value)
            i--;
        counts[(label == 2) * bins + i]++;
    }
    for (Py_ssize_t i = 0; i < bins; i++) {
        foreground[i] += counts[i];
        background[i] += counts[bins + i];
    }
    Py_END_ALLOW_THREADS
    free(guess);
    free(counts);
    release(v, 5);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(set_avx2_doc,
             "_set_avx2(enable)\n--\n\n"
             "Use the AVX2 loops (score maps, ring masks) when `enable` is true and the CPU has AVX2 (the default), "
             "else the SSE2 ones, which give the same results; returns whether the AVX2 loops were in use. For tests.");

static PyObject *set_avx2(PyObject *self, PyObject *arg)
{
    (void)self;
    const int enable = PyObject_IsTrue(arg);
    if (enable < 0)
        return NULL;
#ifdef AVX2_DISPATCH
    const int previous = use_avx2;
    use_avx2 = enable && has_avx2;
    return PyBool_FromLong(previous);
#else
    return PyBool_FromLong(0);
#endif
}

static PyMethodDef methods[] = {
    {"contour_boxes", contour_boxes, METH_VARARGS, contour_boxes_doc},
    {"normalized_maps", normalized_maps, METH_VARARGS, normalized_maps_doc},
    {"quantize_maps", quantize_maps, METH_VARARGS, quantize_maps_doc},
    {"pixel_counts", pixel_counts, METH_VARARGS, pixel_counts_doc},
    {"_set_avx2", set_avx2, METH_O, set_avx2_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_wsol_kernel",
    "OpenCV-exact WSOL score maps (normalized_maps, quantize_maps), contour boxes at many levels "
    "(contour_boxes) and PxAP's pixel histograms (pixel_counts).",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__wsol_kernel(void)
{
    init_tables();
#ifdef AVX2_DISPATCH
    __builtin_cpu_init();
    has_avx2 = use_avx2 = __builtin_cpu_supports("avx2");
#endif
    return PyModule_Create(&module);
}
