/* metrics.c — the metric registry: families with fixed label values, whose
 * series live in one array of atomic cells, and their rendering in the
 * Prometheus text exposition format 0.0.4. */
#include "util/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scrip_metric {
	struct scrip_metric *next;  /* the next family added */
	char *name;
	char *help;
	scrip_metric_type_t type;
	size_t n_labels;
	char *labels[SCRIP_METRIC_LABELS_MAX];   /* label names */
	char **values[SCRIP_METRIC_LABELS_MAX];  /* each label's values */
	size_t n_values[SCRIP_METRIC_LABELS_MAX];
	size_t other[SCRIP_METRIC_LABELS_MAX];   /* index of "other", or SCRIP_METRIC_NO_LABEL */
	size_t n_series;                         /* product of n_values */
	double bounds[SCRIP_METRIC_BUCKETS_MAX]; /* histogram upper bounds */
	size_t n_buckets;
	bool dense;
	_Atomic int64_t *cells;  /* counter/gauge: one per series; histogram: n_buckets + 1 per series,
	                          * each counting the observations of its bucket only (not cumulative) */
	_Atomic double *sums;    /* histogram: the sum of observations, per series */
	_Atomic bool *touched;   /* a series was updated at least once (rendered when not dense) */
};

struct scrip_metrics {
	scrip_metric_t *head, *tail; /* families in the order added */
};

/* ---- text --------------------------------------------------------------------- */

static bool text_reserve(scrip_metrics_text_t *t, size_t more)
{
	if (t->failed)
		return false;
	if (t->len + more + 1 <= t->cap)
		return true;
	size_t cap = t->cap ? t->cap : 4096;
	while (cap < t->len + more + 1)
		cap *= 2;
	char *buf = realloc(t->buf, cap);
	if (!buf) {
		free(t->buf);
		t->buf = NULL;
		t->failed = true;
		return false;
	}
	t->buf = buf;
	t->cap = cap;
	return true;
}

void scrip_metrics_text_printf(scrip_metrics_text_t *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !text_reserve(t, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* s with '\\' and newline escaped, and '"' too when in_quotes (help text
 * escapes only the first two). */
static void text_escaped(scrip_metrics_text_t *t, const char *s, bool in_quotes)
{
	for (; *s; s++) {
		if (!text_reserve(t, 2))
			return;
		if (*s == '\\' || (in_quotes && *s == '"')) {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = *s;
		} else if (*s == '\n') {
			t->buf[t->len++] = '\\';
			t->buf[t->len++] = 'n';
		} else {
			t->buf[t->len++] = *s;
		}
		t->buf[t->len] = '\0';
	}
}

void scrip_metrics_text_label_value(scrip_metrics_text_t *t, const char *s)
{
	text_escaped(t, s, true);
}

static const char *type_name(scrip_metric_type_t type)
{
	switch (type) {
	case SCRIP_METRIC_COUNTER: return "counter";
	case SCRIP_METRIC_GAUGE: return "gauge";
	case SCRIP_METRIC_HISTOGRAM: return "histogram";
	}
	return "untyped";
}

void scrip_metrics_text_header(scrip_metrics_text_t *t, const char *name, const char *help, scrip_metric_type_t type)
{
	scrip_metrics_text_printf(t, "# HELP %s ", name);
	text_escaped(t, help, false);
	scrip_metrics_text_printf(t, "\n# TYPE %s %s\n", name, type_name(type));
}

/* ---- families ------------------------------------------------------------------- */

static bool name_ok(const char *s, bool colon)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++) {
		char c = *s;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      (colon && c == ':')))
			return false;
	}
	return true;
}

static void metric_free(scrip_metric_t *m)
{
	if (!m)
		return;
	free(m->name);
	free(m->help);
	for (size_t d = 0; d < m->n_labels; d++) {
		free(m->labels[d]);
		for (size_t i = 0; m->values[d] && i < m->n_values[d]; i++)
			free(m->values[d][i]);
		free(m->values[d]);
	}
	free(m->cells);
	free(m->sums);
	free(m->touched);
	free(m);
}

scrip_metrics_t *scrip_metrics_new(void)
{
	return calloc(1, sizeof(scrip_metrics_t));
}

void scrip_metrics_free(scrip_metrics_t *reg)
{
	if (!reg)
		return;
	while (reg->head) {
		scrip_metric_t *m = reg->head;
		reg->head = m->next;
		metric_free(m);
	}
	free(reg);
}

scrip_metric_t *scrip_metrics_find(const scrip_metrics_t *reg, const char *name)
{
	for (scrip_metric_t *m = reg ? reg->head : NULL; m; m = m->next)
		if (strcmp(m->name, name) == 0)
			return m;
	return NULL;
}

static bool def_ok(const scrip_metrics_t *reg, const scrip_metric_def_t *def)
{
	if (!name_ok(def->name, true) || !def->help || def->n_labels > SCRIP_METRIC_LABELS_MAX ||
	    scrip_metrics_find(reg, def->name))
		return false;
	for (size_t d = 0; d < def->n_labels; d++) {
		if (!name_ok(def->labels[d], false) || strcmp(def->labels[d], "le") == 0 || !def->values[d] ||
		    !def->values[d][0])
			return false;
		for (size_t e = 0; e < d; e++)
			if (strcmp(def->labels[d], def->labels[e]) == 0)
				return false;
	}
	if (def->type == SCRIP_METRIC_HISTOGRAM) {
		if (def->n_buckets == 0 || def->n_buckets > SCRIP_METRIC_BUCKETS_MAX || !def->buckets)
			return false;
		for (size_t b = 0; b < def->n_buckets; b++)
			if (!isfinite(def->buckets[b]) || (b > 0 && def->buckets[b] <= def->buckets[b - 1]))
				return false;
	}
	return true;
}

scrip_metric_t *scrip_metrics_add(scrip_metrics_t *reg, const scrip_metric_def_t *def)
{
	if (!reg || !def || !def_ok(reg, def))
		return NULL;
	scrip_metric_t *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->type = def->type;
	m->n_labels = def->n_labels;
	m->dense = def->dense;
	m->n_series = 1;
	if (!(m->name = strdup(def->name)) || !(m->help = strdup(def->help)))
		goto fail;
	for (size_t d = 0; d < def->n_labels; d++) {
		size_t n = 0;
		while (def->values[d][n])
			n++;
		if (!(m->labels[d] = strdup(def->labels[d])) || !(m->values[d] = calloc(n, sizeof(char *))))
			goto fail;
		m->other[d] = SCRIP_METRIC_NO_LABEL;
		for (size_t i = 0; i < n; i++) {
			if (!(m->values[d][i] = strdup(def->values[d][i])))
				goto fail;
			m->n_values[d]++;
			if (strcmp(def->values[d][i], "other") == 0)
				m->other[d] = i;
		}
		if (m->n_series > SCRIP_METRIC_SERIES_MAX / n)
			goto fail;
		m->n_series *= n;
	}
	size_t per_series = 1;
	if (def->type == SCRIP_METRIC_HISTOGRAM) {
		m->n_buckets = def->n_buckets;
		memcpy(m->bounds, def->buckets, def->n_buckets * sizeof(double));
		per_series = def->n_buckets + 1;
		if (!(m->sums = calloc(m->n_series, sizeof(*m->sums))))
			goto fail;
	}
	if (!(m->cells = calloc(m->n_series * per_series, sizeof(*m->cells))) ||
	    !(m->touched = calloc(m->n_series, sizeof(*m->touched))))
		goto fail;
	if (reg->tail)
		reg->tail->next = m;
	else
		reg->head = m;
	reg->tail = m;
	return m;
fail:
	metric_free(m);
	return NULL;
}

/* ---- updates --------------------------------------------------------------------- */

size_t scrip_metric_label(const scrip_metric_t *m, size_t dim, const char *value)
{
	if (!m || dim >= m->n_labels)
		return SCRIP_METRIC_NO_LABEL;
	for (size_t i = 0; value && i < m->n_values[dim]; i++)
		if (strcmp(m->values[dim][i], value) == 0)
			return i;
	return m->other[dim];
}

/* The series of label-value indexes idx, or SCRIP_METRIC_NO_LABEL. */
static size_t series(const scrip_metric_t *m, const size_t *idx)
{
	size_t s = 0;
	for (size_t d = 0; d < m->n_labels; d++) {
		if (!idx || idx[d] >= m->n_values[d])
			return SCRIP_METRIC_NO_LABEL;
		s = s * m->n_values[d] + idx[d];
	}
	return s;
}

void scrip_metric_add(scrip_metric_t *m, const size_t *idx, int64_t delta)
{
	if (!m || m->type == SCRIP_METRIC_HISTOGRAM || (m->type == SCRIP_METRIC_COUNTER && delta < 0))
		return;
	size_t s = series(m, idx);
	if (s == SCRIP_METRIC_NO_LABEL)
		return;
	atomic_fetch_add_explicit(&m->cells[s], delta, memory_order_relaxed);
	atomic_store_explicit(&m->touched[s], true, memory_order_relaxed);
}

void scrip_metric_set(scrip_metric_t *m, const size_t *idx, int64_t value)
{
	if (!m || m->type != SCRIP_METRIC_GAUGE)
		return;
	size_t s = series(m, idx);
	if (s == SCRIP_METRIC_NO_LABEL)
		return;
	atomic_store_explicit(&m->cells[s], value, memory_order_relaxed);
	atomic_store_explicit(&m->touched[s], true, memory_order_relaxed);
}

void scrip_metric_observe(scrip_metric_t *m, const size_t *idx, double value)
{
	if (!m || m->type != SCRIP_METRIC_HISTOGRAM || isnan(value))
		return;
	size_t s = series(m, idx);
	if (s == SCRIP_METRIC_NO_LABEL)
		return;
	size_t b = 0;
	while (b < m->n_buckets && value > m->bounds[b])
		b++;
	atomic_fetch_add_explicit(&m->cells[s * (m->n_buckets + 1) + b], 1, memory_order_relaxed);
	double old = atomic_load_explicit(&m->sums[s], memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&m->sums[s], &old, old + value, memory_order_relaxed,
						      memory_order_relaxed))
		;
	atomic_store_explicit(&m->touched[s], true, memory_order_relaxed);
}

/* Label indexes of string values; false when one has no series. */
static bool indexes(const scrip_metric_t *m, const char *const *values, size_t *idx)
{
	for (size_t d = 0; d < m->n_labels; d++)
		if ((idx[d] = scrip_metric_label(m, d, values ? values[d] : NULL)) == SCRIP_METRIC_NO_LABEL)
			return false;
	return true;
}

void scrip_metric_add_by(scrip_metric_t *m, const char *const *values, int64_t delta)
{
	size_t idx[SCRIP_METRIC_LABELS_MAX];
	if (m && indexes(m, values, idx))
		scrip_metric_add(m, idx, delta);
}

void scrip_metric_observe_by(scrip_metric_t *m, const char *const *values, double value)
{
	size_t idx[SCRIP_METRIC_LABELS_MAX];
	if (m && indexes(m, values, idx))
		scrip_metric_observe(m, idx, value);
}

int64_t scrip_metric_get(const scrip_metric_t *m, const size_t *idx)
{
	size_t s = m ? series(m, idx) : SCRIP_METRIC_NO_LABEL;
	if (s == SCRIP_METRIC_NO_LABEL)
		return 0;
	if (m->type != SCRIP_METRIC_HISTOGRAM)
		return atomic_load_explicit(&m->cells[s], memory_order_relaxed);
	int64_t n = 0;
	for (size_t b = 0; b <= m->n_buckets; b++)
		n += atomic_load_explicit(&m->cells[s * (m->n_buckets + 1) + b], memory_order_relaxed);
	return n;
}

/* ---- rendering ------------------------------------------------------------------- */

/* '{a="x",b="y"' for series s, without the closing brace (a histogram adds le). */
static void render_labels(scrip_metrics_text_t *t, const scrip_metric_t *m, size_t s)
{
	size_t idx[SCRIP_METRIC_LABELS_MAX];
	for (size_t d = m->n_labels; d-- > 0;) {
		idx[d] = s % m->n_values[d];
		s /= m->n_values[d];
	}
	for (size_t d = 0; d < m->n_labels; d++) {
		scrip_metrics_text_printf(t, "%s%s=\"", d ? "," : "{", m->labels[d]);
		scrip_metrics_text_label_value(t, m->values[d][idx[d]]);
		scrip_metrics_text_printf(t, "\"");
	}
}

static void render_histogram(scrip_metrics_text_t *t, const scrip_metric_t *m, size_t s)
{
	/* _count is the last cumulative bucket as read here, so that +Inf and
	 * _count agree even while other threads observe. */
	int64_t cumulative = 0;
	for (size_t b = 0; b <= m->n_buckets; b++) {
		cumulative += atomic_load_explicit(&m->cells[s * (m->n_buckets + 1) + b], memory_order_relaxed);
		scrip_metrics_text_printf(t, "%s_bucket", m->name);
		render_labels(t, m, s);
		if (b < m->n_buckets)
			scrip_metrics_text_printf(t, "%sle=\"%g\"} %lld\n", m->n_labels ? "," : "{", m->bounds[b],
						  (long long)cumulative);
		else
			scrip_metrics_text_printf(t, "%sle=\"+Inf\"} %lld\n", m->n_labels ? "," : "{",
						  (long long)cumulative);
	}
	double sum = atomic_load_explicit(&m->sums[s], memory_order_relaxed);
	scrip_metrics_text_printf(t, "%s_sum", m->name);
	render_labels(t, m, s);
	scrip_metrics_text_printf(t, "%s %.9g\n", m->n_labels ? "}" : "", sum);
	scrip_metrics_text_printf(t, "%s_count", m->name);
	render_labels(t, m, s);
	scrip_metrics_text_printf(t, "%s %lld\n", m->n_labels ? "}" : "", (long long)cumulative);
}

void scrip_metrics_render_into(const scrip_metrics_t *reg, scrip_metrics_text_t *t)
{
	for (const scrip_metric_t *m = reg ? reg->head : NULL; m; m = m->next) {
		scrip_metrics_text_header(t, m->name, m->help, m->type);
		for (size_t s = 0; s < m->n_series; s++) {
			if (!m->dense && !atomic_load_explicit(&m->touched[s], memory_order_relaxed))
				continue;
			if (m->type == SCRIP_METRIC_HISTOGRAM) {
				render_histogram(t, m, s);
				continue;
			}
			scrip_metrics_text_printf(t, "%s", m->name);
			render_labels(t, m, s);
			scrip_metrics_text_printf(t, "%s %lld\n", m->n_labels ? "}" : "",
						  (long long)atomic_load_explicit(&m->cells[s], memory_order_relaxed));
		}
	}
}

char *scrip_metrics_render(const scrip_metrics_t *reg)
{
	scrip_metrics_text_t t = { 0 };
	if (!text_reserve(&t, 0))
		return NULL;
	t.buf[0] = '\0';
	scrip_metrics_render_into(reg, &t);
	return t.failed ? NULL : t.buf;
}
