/* metrics.h — a registry of counters, gauges and histograms, rendered in
 * the Prometheus text exposition format 0.0.4.
 *
 * Every label takes its values from a list fixed when the family is added
 * (an unknown value becomes "other" when the list holds "other", and is
 * dropped otherwise), so the number of series is bounded and their cells
 * are one array allocated up front. Updates are C11 atomics on those cells,
 * with no lock and no allocation: any thread may update any family while
 * another renders. Families are added at startup, before other threads run;
 * adding is not thread-safe. */
#ifndef SCRIP_METRICS_H
#define SCRIP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCRIP_METRIC_LABELS_MAX 3     /* label names per family */
#define SCRIP_METRIC_SERIES_MAX 8192  /* label-value combinations per family */
#define SCRIP_METRIC_BUCKETS_MAX 24   /* histogram bounds, +Inf not counted */
#define SCRIP_METRIC_NO_LABEL ((size_t)-1)

typedef enum {
	SCRIP_METRIC_COUNTER,   /* only goes up */
	SCRIP_METRIC_GAUGE,     /* goes up and down */
	SCRIP_METRIC_HISTOGRAM, /* cumulative buckets, _sum and _count */
} scrip_metric_type_t;

/* What a family is. Every string is copied by scrip_metrics_add. */
typedef struct {
	const char *name;  /* [a-zA-Z_:][a-zA-Z0-9_:]*, e.g. "scrip_http_requests_total" */
	const char *help;  /* one line; '\\' and newlines are escaped on output */
	scrip_metric_type_t type;
	size_t n_labels;   /* 0..SCRIP_METRIC_LABELS_MAX */
	const char *labels[SCRIP_METRIC_LABELS_MAX];        /* label names ([a-zA-Z_][a-zA-Z0-9_]*, not "le") */
	const char *const *values[SCRIP_METRIC_LABELS_MAX]; /* each label's values, NULL-terminated, non-empty */
	const double *buckets; /* histogram: upper bounds, strictly increasing, finite (+Inf is implied) */
	size_t n_buckets;
	bool dense; /* render every series, zeros included; otherwise only series that were touched */
} scrip_metric_def_t;

typedef struct scrip_metrics scrip_metrics_t;
typedef struct scrip_metric scrip_metric_t;

/* An empty registry; NULL when out of memory. Free with scrip_metrics_free. */
scrip_metrics_t *scrip_metrics_new(void);

/* Frees the registry and every family in it. NULL is a no-op. */
void scrip_metrics_free(scrip_metrics_t *reg);

/* Adds a family. Returns it (owned by reg, valid until scrip_metrics_free),
 * or NULL when def is invalid (bad name, duplicate name, too many series or
 * buckets) or memory ran out. */
scrip_metric_t *scrip_metrics_add(scrip_metrics_t *reg, const scrip_metric_def_t *def);

/* The family named name, or NULL. */
scrip_metric_t *scrip_metrics_find(const scrip_metrics_t *reg, const char *name);

/* The index of value among the values of label number dim; "other"'s index
 * when value is unknown (or NULL) and the label has "other";
 * SCRIP_METRIC_NO_LABEL otherwise. */
size_t scrip_metric_label(const scrip_metric_t *m, size_t dim, const char *value);

/* Adds delta to the series of label-value indexes idx (n_labels of them;
 * NULL for a family without labels). Counters ignore a negative delta.
 * An index out of range (SCRIP_METRIC_NO_LABEL) drops the update. m NULL
 * is a no-op, so callers need not check that metrics were set up. */
void scrip_metric_add(scrip_metric_t *m, const size_t *idx, int64_t delta);

/* Gauges: sets the series to value. */
void scrip_metric_set(scrip_metric_t *m, const size_t *idx, int64_t value);

/* Histograms: counts one observation of value (seconds, bytes, ...). */
void scrip_metric_observe(scrip_metric_t *m, const size_t *idx, double value);

/* The same three, naming label values as strings (values[i] for label i),
 * mapped with scrip_metric_label. */
void scrip_metric_add_by(scrip_metric_t *m, const char *const *values, int64_t delta);
void scrip_metric_observe_by(scrip_metric_t *m, const char *const *values, double value);

/* A counter's or gauge's current value; a histogram's count. 0 when idx is
 * out of range. For tests and for code that reads its own counters. */
int64_t scrip_metric_get(const scrip_metric_t *m, const size_t *idx);

/* The whole registry in text format 0.0.4: for each family, in the order
 * added, "# HELP", "# TYPE" and its samples. Label values and help are
 * escaped as the format requires. Returns a malloc'd string the caller
 * frees, NULL when out of memory. */
char *scrip_metrics_render(const scrip_metrics_t *reg);

/* Appends text format to an open string: what scrip_metrics_render uses,
 * offered to callers that add families computed at render time. */
typedef struct {
	char *buf;  /* NUL-terminated; NULL after a failed allocation */
	size_t len;
	size_t cap;
	bool failed;
} scrip_metrics_text_t;

void scrip_metrics_text_printf(scrip_metrics_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a label value: '\\', '"' and newline escaped. */
void scrip_metrics_text_label_value(scrip_metrics_text_t *t, const char *s);
/* "# HELP name help\n# TYPE name type\n" with help escaped. */
void scrip_metrics_text_header(scrip_metrics_text_t *t, const char *name, const char *help, scrip_metric_type_t type);
void scrip_metrics_render_into(const scrip_metrics_t *reg, scrip_metrics_text_t *t);

#endif
