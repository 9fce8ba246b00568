/*
 * Contour boxes of thresholded score maps at many thresholds, as OpenCV's findContours would give them.
 *
 * The WSOL evaluator of Choe et al. (CVPR 2020) thresholds a uint8 score map q at level L (foreground: q > L),
 * runs cv2.findContours(RETR_TREE, CHAIN_APPROX_SIMPLE) and keeps the bounding rectangles of the contours (all
 * of them, or the one of largest cv2.contourArea). This file reproduces those boxes without tracing contours:
 *
 *  - RETR_TREE gives one outer contour per 8-connected foreground component and one hole contour per
 *    4-connected background component that does not touch the image border. A component's box is its
 *    bounding box plus one pixel right and below; a hole's box is the hole's bounding box grown by one pixel
 *    on every side (the foreground ring around it); both are then clipped to (W - 1, H - 1).
 *  - cv2.contourArea of an outer contour is the area of the polygon through the boundary pixel centres. With
 *    F the component with its holes filled, it equals (2x2 windows with 4 pixels in F) + (windows with 3)/2,
 *    so twice the area is an integer computed from bitmasks. The hole-filled components at level L are the
 *    8-connected components of {r > L}, where r is the grayscale hole fill of q (for each pixel, the lowest
 *    possible maximum of q along a 4-connected path to the border). A hole contour never wins: its area is at
 *    most its parent's and the parent comes first. Ties go to the component whose first pixel in raster order
 *    comes last (OpenCV lists siblings in that order and Python's max() keeps the first maximum).
 *
 * Components are found per level from row runs of a bitmask kept up to date as the level decreases (every
 * pixel is set once, from a counting sort), with union-find over runs of adjacent rows. A level costs
 * O(H * (W / 64 + runs)), so all 256 possible levels of a 224 x 224 map take well under a millisecond.
 * Plain C API and the buffer protocol only; the GIL is released while the batch is processed.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NUM_LEVELS 256

typedef struct {
    int32_t x0, y0, x1, y1;
} Box;

typedef struct {
    int32_t y, start, end; /* row and first / last column, inclusive */
} Run;

typedef struct {
    int32_t x0, y0, x1, y1; /* bounding box, inclusive */
    int64_t area2;          /* twice cv2.contourArea of the component's outer contour (single mode) */
    int32_t border;         /* touches the image border (background components) */
} Stats;

typedef struct {
    int height, width, words, padded_width;
    uint64_t *bits;       /* current foreground, `words` 64-bit words per row */
    int32_t *order;       /* bit positions (y * 64 * words + x) sorted by pixel value */
    int32_t start[NUM_LEVELS + 1];
    Run *runs, *bg_runs;  /* runs of the current level in raster order */
    int32_t *row_start, *bg_row_start;
    int32_t *parent;      /* union-find over runs; the root of a component is its first run */
    Stats *stats;
    int64_t *run_area2;
    uint64_t *full, *three; /* 2x2 windows with 4 / exactly 3 foreground pixels, for one pair of rows */
    uint8_t *filled;        /* grayscale hole fill, with a one-pixel frame */
    int32_t *next;          /* bucket lists of the priority flood */
    uint8_t *visited;
} Work;

static void work_free(Work *w)
{
    free(w->bits);
    free(w->order);
    free(w->runs);
    free(w->bg_runs);
    free(w->row_start);
    free(w->bg_row_start);
    free(w->parent);
    free(w->stats);
    free(w->run_area2);
    free(w->full);
    free(w->three);
    free(w->filled);
    free(w->next);
    free(w->visited);
}

static int work_alloc(Work *w, int height, int width)
{
    memset(w, 0, sizeof(*w));
    w->height = height;
    w->width = width;
    w->words = (width + 63) / 64;
    w->padded_width = width + 2;
    size_t npix = (size_t)height * width;
    size_t npad = (size_t)(height + 2) * (width + 2);
    /* A row holds at most width / 2 + 1 runs of either kind. */
    size_t max_runs = (size_t)height * (width / 2 + 1);
    w->bits = malloc(sizeof(uint64_t) * height * w->words);
    w->order = malloc(sizeof(int32_t) * npix);
    w->runs = malloc(sizeof(Run) * max_runs);
    w->bg_runs = malloc(sizeof(Run) * max_runs);
    w->row_start = malloc(sizeof(int32_t) * (height + 1));
    w->bg_row_start = malloc(sizeof(int32_t) * (height + 1));
    w->parent = malloc(sizeof(int32_t) * max_runs);
    w->stats = malloc(sizeof(Stats) * max_runs);
    w->run_area2 = malloc(sizeof(int64_t) * max_runs);
    w->full = malloc(sizeof(uint64_t) * w->words);
    w->three = malloc(sizeof(uint64_t) * w->words);
    w->filled = malloc(npad);
    w->next = malloc(sizeof(int32_t) * npad);
    w->visited = malloc(npad);
    if (!w->bits || !w->order || !w->runs || !w->bg_runs || !w->row_start || !w->bg_row_start || !w->parent ||
        !w->stats || !w->run_area2 || !w->full || !w->three || !w->filled || !w->next || !w->visited) {
        work_free(w);
        return -1;
    }
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

static Box component_box(const Stats *s, int width, int height)
{
    Box b = {s->x0, s->y0, s->x1 + 1, s->y1 + 1};
    if (b.x1 > width - 1)
        b.x1 = width - 1;
    if (b.y1 > height - 1)
        b.y1 = height - 1;
    return b;
}

static Box hole_box(const Stats *s, int width, int height)
{
    /* The hole contour runs through the foreground ring around the hole: one pixel out on every side. */
    Box b = {s->x0 - 1, s->y0 - 1, s->x1 + 2, s->y1 + 2};
    if (b.x1 > width - 1)
        b.x1 = width - 1;
    if (b.y1 > height - 1)
        b.y1 = height - 1;
    return b;
}

/* ---- runs and union-find --------------------------------------------------------------------------------- */

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

static int32_t foreground_runs(const Work *w, Run *runs, int32_t *row_start)
{
    int32_t n = 0;
    for (int y = 0; y < w->height; y++) {
        const uint64_t *row = w->bits + (size_t)y * w->words;
        row_start[y] = n;
        int x = 0;
        while (x < w->width) {
            int s = next_bit(row, w->words, x, 1);
            if (s >= w->width)
                break;
            int e = next_bit(row, w->words, s, 0);
            if (e > w->width)
                e = w->width;
            runs[n].y = y;
            runs[n].start = s;
            runs[n].end = e - 1;
            n++;
            x = e + 1;
        }
    }
    row_start[w->height] = n;
    return n;
}

/* The gaps between the foreground runs of every row. */
static int32_t background_runs(const Work *w, const Run *fg, const int32_t *fg_start, Run *bg, int32_t *bg_start)
{
    int32_t n = 0;
    for (int y = 0; y < w->height; y++) {
        bg_start[y] = n;
        int x = 0;
        for (int32_t k = fg_start[y]; k < fg_start[y + 1]; k++) {
            if (fg[k].start > x) {
                bg[n].y = y;
                bg[n].start = x;
                bg[n].end = fg[k].start - 1;
                n++;
            }
            x = fg[k].end + 1;
        }
        if (x < w->width) {
            bg[n].y = y;
            bg[n].start = x;
            bg[n].end = w->width - 1;
            n++;
        }
    }
    bg_start[w->height] = n;
    return n;
}

static inline int32_t find_root(int32_t *parent, int32_t i)
{
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

static inline void unite(int32_t *parent, int32_t a, int32_t b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    /* The smaller index stays root, so a root is its component's first run in raster order. */
    if (a < b)
        parent[b] = a;
    else if (b < a)
        parent[a] = b;
}

/* Union runs of adjacent rows that touch: slack 1 for 8-connectivity (diagonal contact), 0 for 4-connectivity. */
static void label_runs(const Run *runs, const int32_t *row_start, int height, int slack, int32_t *parent)
{
    for (int32_t k = 0; k < row_start[height]; k++)
        parent[k] = k;
    for (int y = 1; y < height; y++) {
        int32_t i = row_start[y - 1], i_end = row_start[y], j = row_start[y], j_end = row_start[y + 1];
        while (i < i_end && j < j_end) {
            const Run *a = runs + i, *b = runs + j;
            if (a->end + slack < b->start) {
                i++;
            } else if (b->end + slack < a->start) {
                j++;
            } else {
                unite(parent, i, j);
                /* Runs of a row are at least two columns apart, so the run ending first touches nothing more. */
                if (a->end < b->end)
                    i++;
                else
                    j++;
            }
        }
    }
}

/* Per-component bounding box, border contact and area (when `area2` is given), accumulated at the roots. */
static void component_stats(const Work *w, const Run *runs, int32_t n, int32_t *parent, const int64_t *area2,
                            Stats *stats)
{
    for (int32_t k = 0; k < n; k++) {
        const Run *r = runs + k;
        int32_t root = find_root(parent, k);
        int border = r->y == 0 || r->y == w->height - 1 || r->start == 0 || r->end == w->width - 1;
        int64_t a = area2 ? area2[k] : 0;
        if (root == k) {
            Stats s = {r->start, r->y, r->end, r->y, a, border};
            stats[k] = s;
        } else {
            /* Roots come first in raster order, so stats[root] is already set and its y0 is final. */
            Stats *s = stats + root;
            if (r->start < s->x0)
                s->x0 = r->start;
            if (r->end > s->x1)
                s->x1 = r->end;
            if (r->y > s->y1)
                s->y1 = r->y;
            s->area2 += a;
            s->border |= border;
        }
    }
}

static inline int64_t count_bits(const uint64_t *v, int lo, int hi)
{
    int i = lo >> 6, j = hi >> 6;
    uint64_t lo_mask = ~0ULL << (lo & 63), hi_mask = ~0ULL >> (63 - (hi & 63));
    if (i == j)
        return __builtin_popcountll(v[i] & lo_mask & hi_mask);
    int64_t c = __builtin_popcountll(v[i] & lo_mask);
    for (int k = i + 1; k < j; k++)
        c += __builtin_popcountll(v[k]);
    return c + __builtin_popcountll(v[j] & hi_mask);
}

/*
 * Twice the window area of every run: the 2x2 windows (x, y)-(x + 1, y + 1) with at least 3 foreground pixels,
 * counted 2 when full and 1 with exactly 3. Such a window has a pixel in row y, so it is credited to the run of
 * row y containing x or x + 1: the windows x in [start - 1, end] of that run. All four pixels of a window are
 * 8-adjacent, so the window belongs to that run's component.
 */
static void run_areas(Work *w, const Run *runs, const int32_t *row_start)
{
    int words = w->words;
    for (int y = 0; y < w->height; y++) {
        int32_t k0 = row_start[y], k1 = row_start[y + 1];
        if (k0 == k1)
            continue;
        if (y == w->height - 1) {
            for (int32_t k = k0; k < k1; k++)
                w->run_area2[k] = 0;
            continue;
        }
        const uint64_t *a = w->bits + (size_t)y * words, *b = a + words;
        for (int i = 0; i < words; i++) {
            /* Bit x of the shifted word is pixel x + 1; padding bits are 0, so windows past the edge are empty. */
            uint64_t a1 = (a[i] >> 1) | (i + 1 < words ? a[i + 1] << 63 : 0);
            uint64_t b1 = (b[i] >> 1) | (i + 1 < words ? b[i + 1] << 63 : 0);
            uint64_t pa = a[i] & a1, pb = b[i] & b1, oa = a[i] | a1, ob = b[i] | b1;
            w->full[i] = pa & pb;
            w->three[i] = (pa & ob & ~pb) | (pb & oa & ~pa);
        }
        for (int32_t k = k0; k < k1; k++) {
            int lo = runs[k].start > 0 ? runs[k].start - 1 : 0, hi = runs[k].end;
            w->run_area2[k] = 2 * count_bits(w->full, lo, hi) + count_bits(w->three, lo, hi);
        }
    }
}

/* ---- one level ------------------------------------------------------------------------------------------- */

static const Box NO_BOX = {0, 0, 0, 0};

/* Best IoU over all contour boxes (components and holes) of the current foreground. */
static double level_best_iou_all(Work *w, const int32_t *gt, int64_t num_gt)
{
    int32_t n = foreground_runs(w, w->runs, w->row_start);
    if (n == 0)
        return best_iou(NO_BOX, gt, num_gt);
    double best = 0.0;
    label_runs(w->runs, w->row_start, w->height, 1, w->parent);
    component_stats(w, w->runs, n, w->parent, NULL, w->stats);
    for (int32_t k = 0; k < n; k++) {
        if (w->parent[k] == k) {
            double v = best_iou(component_box(w->stats + k, w->width, w->height), gt, num_gt);
            if (v > best)
                best = v;
        }
    }
    int32_t m = background_runs(w, w->runs, w->row_start, w->bg_runs, w->bg_row_start);
    label_runs(w->bg_runs, w->bg_row_start, w->height, 0, w->parent);
    component_stats(w, w->bg_runs, m, w->parent, NULL, w->stats);
    for (int32_t k = 0; k < m; k++) {
        if (w->parent[k] == k && !w->stats[k].border) {
            double v = best_iou(hole_box(w->stats + k, w->width, w->height), gt, num_gt);
            if (v > best)
                best = v;
        }
    }
    return best;
}

/* Box of the largest contour; the bitmask holds the hole-filled foreground {r > L}. */
static Box level_largest_box(Work *w)
{
    int32_t n = foreground_runs(w, w->runs, w->row_start);
    if (n == 0)
        return NO_BOX;
    label_runs(w->runs, w->row_start, w->height, 1, w->parent);
    run_areas(w, w->runs, w->row_start);
    component_stats(w, w->runs, n, w->parent, w->run_area2, w->stats);
    int32_t winner = -1;
    for (int32_t k = 0; k < n; k++) {
        /* Roots are visited in raster order of their first pixel: >= lets the last of tied components win. */
        if (w->parent[k] == k && (winner < 0 || w->stats[k].area2 >= w->stats[winner].area2))
            winner = k;
    }
    return component_box(w->stats + winner, w->width, w->height);
}

/* ---- one image ------------------------------------------------------------------------------------------- */

/* Counting sort of the pixels by value; `stride` and `offset` address the map (the hole fill has a frame). */
static void sort_pixels(Work *w, const uint8_t *map, int stride, int offset)
{
    int32_t count[NUM_LEVELS + 1] = {0};
    for (int y = 0; y < w->height; y++) {
        const uint8_t *row = map + offset + (size_t)y * stride;
        for (int x = 0; x < w->width; x++)
            count[row[x] + 1]++;
    }
    for (int v = 0; v < NUM_LEVELS; v++)
        count[v + 1] += count[v];
    memcpy(w->start, count, sizeof(count));
    int row_bits = w->words * 64;
    for (int y = 0; y < w->height; y++) {
        const uint8_t *row = map + offset + (size_t)y * stride;
        for (int x = 0; x < w->width; x++)
            w->order[count[row[x]]++] = y * row_bits + x;
    }
}

/*
 * Grayscale hole fill with 4-connected paths: a priority flood from the border with one bucket per level,
 * O(pixels). The map gets a one-pixel frame marked visited so that neighbours need no bounds checks.
 */
static void hole_fill(Work *w, const uint8_t *q)
{
    int height = w->height, width = w->width, pw = w->padded_width;
    size_t npad = (size_t)(height + 2) * pw;
    int32_t head[NUM_LEVELS];
    for (int v = 0; v < NUM_LEVELS; v++)
        head[v] = -1;
    /* `filled` starts as a framed copy of q and is raised in place: a pixel's value is read once, when pushed. */
    memset(w->visited, 1, npad);
    for (int y = 0; y < height; y++) {
        memcpy(w->filled + (size_t)(y + 1) * pw + 1, q + (size_t)y * width, width);
        memset(w->visited + (size_t)(y + 1) * pw + 1, 0, width);
    }
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            if (y == 0 || y == height - 1 || x == 0 || x == width - 1) {
                int32_t p = (y + 1) * pw + x + 1;
                uint8_t v = w->filled[p];
                w->visited[p] = 1;
                w->next[p] = head[v];
                head[v] = p;
            }
        }
    }
    const int32_t offsets[4] = {-1, 1, -pw, pw};
    for (int level = 0; level < NUM_LEVELS; level++) {
        while (head[level] >= 0) {
            int32_t p = head[level];
            head[level] = w->next[p];
            for (int k = 0; k < 4; k++) {
                int32_t n = p + offsets[k];
                if (w->visited[n])
                    continue;
                w->visited[n] = 1;
                uint8_t v = w->filled[n] < level ? (uint8_t)level : w->filled[n];
                w->filled[n] = v;
                w->next[n] = head[v];
                head[v] = n;
            }
        }
    }
}

/* Lower the level from 255 to the lowest needed one, setting the pixels of each value once; `visit` is called
 * at every needed level with whether the foreground changed since its last call. */
typedef void (*LevelFn)(Work *w, int level, int changed, void *ctx);

static void sweep_levels(Work *w, const uint8_t *needed, LevelFn visit, void *ctx)
{
    int lowest = NUM_LEVELS;
    for (int v = 0; v < NUM_LEVELS; v++) {
        if (needed[v]) {
            lowest = v;
            break;
        }
    }
    memset(w->bits, 0, sizeof(uint64_t) * w->height * w->words);
    int changed = 1;
    for (int level = NUM_LEVELS - 1; level >= lowest; level--) {
        if (level + 1 < NUM_LEVELS) {
            for (int32_t k = w->start[level + 1]; k < w->start[level + 2]; k++) {
                int32_t pos = w->order[k];
                w->bits[pos >> 6] |= 1ULL << (pos & 63);
            }
            changed |= w->start[level + 2] > w->start[level + 1];
        }
        if (needed[level]) {
            visit(w, level, changed, ctx);
            changed = 0;
        }
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

static void visit_all_contours(Work *w, int level, int changed, void *ctx)
{
    LevelResults *r = ctx;
    if (changed)
        r->last_iou = level_best_iou_all(w, r->gt, r->num_gt);
    r->iou[level] = r->last_iou;
}

static void visit_largest_contour(Work *w, int level, int changed, void *ctx)
{
    LevelResults *r = ctx;
    if (changed) {
        r->last_box = level_largest_box(w);
        r->last_iou = best_iou(r->last_box, r->gt, r->num_gt);
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
            sort_pixels(w, q, w->width, 0);
            sweep_levels(w, needed, visit_all_contours, &r);
            for (Py_ssize_t t = 0; t < b->all_levels; t++)
                b->all_iou[i * b->all_levels + t] = r.iou[levels[t]];
        }
        if (b->largest_levels) {
            const int32_t *levels = b->largest_level_index + i * b->largest_levels;
            memset(needed, 0, sizeof(needed));
            for (Py_ssize_t t = 0; t < b->largest_levels; t++)
                needed[levels[t]] = 1;
            hole_fill(w, q);
            sort_pixels(w, w->filled, w->padded_width, w->padded_width + 1);
            sweep_levels(w, needed, visit_largest_contour, &r);
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
    static const int writable[8] = {0, 0, 0, 0, 0, 1, 1, 1};
    Py_buffer v[8];
    memset(v, 0, sizeof(v));
    for (int k = 0; k < 8; k++) {
        if (get_buffer(objs[k], v + k, names[k], sizes[k], kinds[k], writable[k]) < 0) {
            release(v, 8);
            return NULL;
        }
    }
#define COUNT(k) (v[k].obj ? v[k].len / v[k].itemsize : 0)
#define FAIL(...)                                     \
    do {                                              \
        PyErr_Format(PyExc_ValueError, __VA_ARGS__); \
        release(v, 8);                                \
        return NULL;                                  \
    } while (0)
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
#undef COUNT
#undef FAIL
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

static PyMethodDef methods[] = {
    {"contour_boxes", contour_boxes, METH_VARARGS, contour_boxes_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_wsol_kernel",
    "OpenCV-exact contour boxes of thresholded score maps at many levels in one pass (see contour_boxes).",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__wsol_kernel(void)
{
    return PyModule_Create(&module);
}
