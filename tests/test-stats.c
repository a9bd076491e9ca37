/* SPDX-License-Identifier: MIT */
/*
 * Statistics: exact counters after a known workload, the service-time
 * histogram and its quantiles, text and JSON formatting with snprintf
 * semantics, prefix copies for older callers, and the uffd_args_*
 * helpers pagers use to read their spec.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "helpers.h"

static size_t ps(void)
{
	return page_size();
}

/* The counters by name, in struct order, as JSON and text must name them. */
static const struct {
	const char	*name;
	size_t		off;
} fields[] = {
#define F(x) { #x, offsetof(struct uffd_stats, x) }
	F(faults_read), F(faults_write), F(faults_wp), F(faults_minor),
	F(pages_copy), F(pages_zero), F(pages_move), F(bytes_copied),
	F(eexist), F(ioctls), F(poisoned), F(pager_errors),
	F(events_remove), F(events_unmap), F(stray_faults),
	F(helper_cpu_ns), F(pager_misses),
#undef F
};

#define NFIELDS	ARRAY_SIZE(fields)

static uint64_t field(const struct uffd_stats *st, size_t i)
{
	uint64_t v;

	memcpy(&v, (const char *)st + fields[i].off, sizeof(v));
	return v;
}

/* ---- counters ------------------------------------------------------ */

/*
 * r1: read pages 0-3, write 4-6, read page 0 again (present: no fault).
 * r2: write pages 0-1, read page 2.
 */
static void workload(struct uffd_region *r1, struct uffd_region *r2)
{
	uint8_t *p1 = uffd_region_addr(r1), *p2 = uffd_region_addr(r2);
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_uint_eq(peek(p1 + i * ps()), 0);
	for (i = 4; i < 7; i++)
		poke(p1 + i * ps(), (uint8_t)i);
	ck_assert_uint_eq(peek(p1), 0);
	poke(p2, 1);
	poke(p2 + ps(), 2);
	ck_assert_uint_eq(peek(p2 + 2 * ps()), 0);
}

static void assert_counts(const struct uffd_stats *st, uint64_t rd,
			  uint64_t wr)
{
	ck_assert_uint_eq(st->faults_read, rd);
	ck_assert_uint_eq(st->faults_write, wr);
	ck_assert_uint_eq(st->faults_wp, 0);
	ck_assert_uint_eq(st->faults_minor, 0);
	ck_assert_uint_eq(st->pages_zero, rd);
	ck_assert_uint_eq(st->pages_copy, wr);
	ck_assert_uint_eq(st->pages_move, 0);
	ck_assert_uint_eq(st->bytes_copied, wr * ps());
	ck_assert_uint_eq(st->eexist, 0);
	/* One fill per fault, woken by the fill itself. */
	ck_assert_uint_eq(st->ioctls, rd + wr);
	ck_assert_uint_eq(st->poisoned, 0);
	ck_assert_uint_eq(st->pager_errors, 0);
	ck_assert_uint_eq(st->events_remove, 0);
	ck_assert_uint_eq(st->events_unmap, 0);
	ck_assert_uint_eq(st->stray_faults, 0);
	ck_assert_uint_eq(st->helper_cpu_ns, 0);
	ck_assert_uint_eq(st->pager_misses, 0);
	/* Every fault served left exactly one histogram entry. */
	ck_assert_uint_eq(hist_total(st), rd + wr);
}

START_TEST(exact_counters)
{
	struct uffd_region *r1 = NULL, *r2 = NULL;
	struct uffd_stats s1, s2, sc, after;
	size_t b;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 16, NULL, &r1), 0);
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r2), 0);
	workload(r1, r2);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);

	ck_assert_int_eq(uffd_region_stats(r1, &s1, sizeof(s1)), 0);
	ck_assert_int_eq(uffd_region_stats(r2, &s2, sizeof(s2)), 0);
	assert_counts(&s1, 4, 3);
	assert_counts(&s2, 1, 2);
	/* Handler time belongs to the context, not to a region. */
	ck_assert_uint_eq(s1.handler_cpu_ns, 0);

	ck_assert_int_eq(uffd_ctx_stats(ctx, &sc, sizeof(sc)), 0);
	assert_counts(&sc, 5, 5);
	ck_assert_uint_gt(sc.handler_cpu_ns, 0);
	ck_assert_uint_eq(sc.handler_cpu_ns, uffd_ctx_handler_cpu_ns(ctx));

	/* Destroyed regions still count in the context. */
	uffd_region_destroy(r2);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &after, sizeof(after)), 0);
	assert_counts(&after, 5, 5);
	uffd_region_destroy(r1);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &after, sizeof(after)), 0);
	assert_counts(&after, 5, 5);
	for (b = 0; b < LIBUFFD_HIST_BUCKETS; b++)
		ck_assert_uint_eq(after.hist_us[b],
				  s1.hist_us[b] + s2.hist_us[b]);
}
END_TEST

START_TEST(counters_while_running)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	uint8_t *p;
	int i;

	/* Without stopping, each counter still reaches its exact value. */
	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 32, NULL, &r), 0);
	p = uffd_region_addr(r);
	for (i = 0; i < 32; i++)
		poke(p + i * ps(), 1);
	ck_assert_int_eq(wait_region_stat(r, STAT_OFF(pages_copy), 32,
					  TEST_WAIT_MS), 32);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.faults_write, 32);
	ck_assert_uint_eq(st.bytes_copied, 32 * ps());
}
END_TEST

START_TEST(pager_reported)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 2, NULL, &r), 0);
	uffd_region_add_helper_cpu(r, 1000);
	uffd_region_add_helper_cpu(r, 234);
	uffd_region_add_miss(r, 3);
	uffd_region_add_miss(r, 0);
	uffd_region_add_helper_cpu(NULL, 5);
	uffd_region_add_miss(NULL, 5);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.helper_cpu_ns, 1234);
	ck_assert_uint_eq(st.pager_misses, 3);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.helper_cpu_ns, 1234);
	ck_assert_uint_eq(st.pager_misses, 3);
	uffd_region_destroy(r);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_uint_eq(st.pager_misses, 3);
}
END_TEST

START_TEST(prefix_copy)
{
	struct uffd_region *r = NULL;
	struct uffd_stats full, part;
	size_t cut = offsetof(struct uffd_stats, pages_copy), i;
	unsigned char *b = (unsigned char *)&part;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 4, NULL, &r), 0);
	poke(uffd_region_addr(r), 1);
	ck_assert_uint_eq(peek((uint8_t *)uffd_region_addr(r) + ps()), 0);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &full, sizeof(full)), 0);

	/* An older caller's struct ended before pages_copy. */
	memset(&part, 0xaa, sizeof(part));
	ck_assert_int_eq(uffd_region_stats(r, &part, cut), 0);
	ck_assert_int_eq(memcmp(&part, &full, cut), 0);
	for (i = cut; i < sizeof(part); i++)
		ck_assert_uint_eq(b[i], 0xaa);
	ck_assert_uint_eq(part.faults_read, 1);
	ck_assert_uint_eq(part.faults_write, 1);

	memset(&part, 0xaa, sizeof(part));
	cut = offsetof(struct uffd_stats, hist_us);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &part, cut), 0);
	ck_assert_uint_eq(part.pages_copy, 1);
	for (i = cut; i < sizeof(part); i++)
		ck_assert_uint_eq(b[i], 0xaa);

	memset(&part, 0xaa, sizeof(part));
	ck_assert_int_eq(uffd_region_stats(r, &part, sizeof(uint64_t)), 0);
	ck_assert_uint_eq(part.faults_read, 1);
	ck_assert_uint_eq(part.faults_write, 0xaaaaaaaaaaaaaaaaULL);
}
END_TEST

START_TEST(stats_bad_args)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 1, NULL, &r), 0);
	ck_assert_int_eq(uffd_region_stats(NULL, &st, sizeof(st)), -EINVAL);
	ck_assert_int_eq(uffd_region_stats(r, NULL, sizeof(st)), -EINVAL);
	ck_assert_int_eq(uffd_ctx_stats(NULL, &st, sizeof(st)), -EINVAL);
	clear_last_error();
	ck_assert_int_eq(uffd_ctx_stats(ctx, NULL, sizeof(st)), -EINVAL);
	ck_assert(*uffd_last_error());
}
END_TEST

/* ---- histogram and quantiles -------------------------------------- */

START_TEST(quantile_empty)
{
	struct uffd_stats st;

	memset(&st, 0, sizeof(st));
	st.faults_read = 10;	/* counters do not make a histogram */
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.0), 0);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.5), 0);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.99), 0);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 0);
}
END_TEST

START_TEST(quantile_buckets)
{
	struct uffd_stats st;

	memset(&st, 0, sizeof(st));
	st.hist_us[0] = 7;		/* all under 1 us */
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.0), 1);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.5), 1);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 1);

	memset(&st, 0, sizeof(st));
	st.hist_us[1] = 50;		/* [1, 2) us */
	st.hist_us[5] = 50;		/* [16, 32) us */
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.25), 2);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.49), 2);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.51), 32);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.99), 32);

	memset(&st, 0, sizeof(st));
	st.hist_us[3] = 99;		/* [4, 8) us */
	st.hist_us[10] = 1;		/* [512, 1024) us */
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.5), 8);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.99), 8);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 1024);
}
END_TEST

START_TEST(quantile_monotone)
{
	struct uffd_stats st;
	uint64_t prev = 0, v;
	int i, first = -1, last = -1;

	/* An irregular histogram, clear of the open-ended last bucket. */
	memset(&st, 0, sizeof(st));
	for (i = 0; i < LIBUFFD_HIST_BUCKETS - 2; i++) {
		st.hist_us[i] = (uint64_t)((i * 7919) % 13) * (i % 3);
		if (st.hist_us[i]) {
			if (first < 0)
				first = i;
			last = i;
		}
	}
	ck_assert_int_ge(first, 0);
	for (i = 0; i <= 1000; i++) {
		v = uffd_stats_quantile_us(&st, i / 1000.0);
		ck_assert_msg(v >= prev, "q=%g gives %llu < %llu", i / 1000.0,
			      (unsigned long long)v, (unsigned long long)prev);
		prev = v;
	}
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.0),
			  1ULL << first);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 1ULL << last);
}
END_TEST

/*
 * Counts no real run reaches, but the function takes any uffd_stats: the
 * fuzzer (tests/fuzz/fuzz-stats.c) found that a histogram whose buckets
 * add up past 2^64 (there: a run of 0xff bytes) got the wrong bucket, or
 * 0 as if it were empty, because the total wrapped; and q = NaN or a
 * total near 2^64 with q = 1 converted an out-of-range double to an
 * integer, which is undefined.
 */
START_TEST(quantile_huge_counts)
{
	struct uffd_stats st;
	int i;

	memset(&st, 0, sizeof(st));
	st.hist_us[1] = 1ULL << 63;	/* the sum wraps to 0 */
	st.hist_us[4] = 1ULL << 63;
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.0), 2);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.5), 2);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.99), 16);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 16);

	memset(&st, 0, sizeof(st));
	for (i = 2; i < 20; i++)	/* as the fuzzer's input */
		st.hist_us[i] = UINT64_MAX;
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.0), 4);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 0.5), 1ULL << 10);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 1ULL << 19);

	memset(&st, 0, sizeof(st));
	st.hist_us[5] = UINT64_MAX;
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, 1.0), 32);
	st.hist_us[3] = 10;
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, NAN), 8);	/* as 0 */
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, -INFINITY), 8);
	ck_assert_uint_eq(uffd_stats_quantile_us(&st, INFINITY), 32);
}
END_TEST

START_TEST(quantile_of_real_faults)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	uint64_t p50, p99;
	int i;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 64, NULL, &r), 0);
	for (i = 0; i < 64; i++)
		poke((uint8_t *)uffd_region_addr(r) + i * ps(), 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_region_stats(r, &st, sizeof(st)), 0);
	ck_assert_uint_eq(hist_total(&st), 64);
	p50 = uffd_stats_quantile_us(&st, 0.5);
	p99 = uffd_stats_quantile_us(&st, 0.99);
	ck_assert_uint_gt(p50, 0);
	ck_assert_uint_le(p50, p99);
	/* Upper bounds of buckets are powers of two. */
	ck_assert_uint_eq(p50 & (p50 - 1), 0);
	ck_assert_uint_eq(p99 & (p99 - 1), 0);
}
END_TEST

/* ---- formatting --------------------------------------------------- */

/* Distinct, recognisable values, one of them needing all 64 bits. */
static void sample_stats(struct uffd_stats *st)
{
	size_t i;
	uint64_t v;

	memset(st, 0, sizeof(*st));
	for (i = 0; i < NFIELDS; i++) {
		v = 1000 * (i + 1) + 7;
		memcpy((char *)st + fields[i].off, &v, sizeof(v));
	}
	st->bytes_copied = UINT64_MAX;
	st->handler_cpu_ns = 424242;
	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		st->hist_us[i] = i * 3;
}

/*
 * A small strict JSON reader, enough to check the output is well formed
 * and to pull out top-level numbers and the hist_us array.
 */
struct json {
	const char	*s;
	int		ok;
};

static void j_ws(struct json *j)
{
	while (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' ||
	       *j->s == '\r')
		j->s++;
}

static int j_value(struct json *j);

static int j_string(struct json *j, char *out, size_t len)
{
	size_t n = 0;

	if (*j->s != '"')
		return 0;
	j->s++;
	while (*j->s && *j->s != '"') {
		if (*j->s == '\\' || (unsigned char)*j->s < 0x20)
			return 0;	/* our keys need no escapes */
		if (out && n + 1 < len)
			out[n++] = *j->s;
		j->s++;
	}
	if (*j->s != '"')
		return 0;
	j->s++;
	if (out)
		out[n] = '\0';
	return 1;
}

static int j_number(struct json *j, uint64_t *v)
{
	const char *start = j->s;
	uint64_t x = 0;

	/* Counters are non-negative integers: nothing else is a match. */
	if (*j->s < '0' || *j->s > '9')
		return 0;
	if (*j->s == '0' && j->s[1] >= '0' && j->s[1] <= '9')
		return 0;	/* JSON has no leading zeros */
	while (*j->s >= '0' && *j->s <= '9') {
		if (x > (UINT64_MAX - (uint64_t)(*j->s - '0')) / 10)
			return 0;
		x = x * 10 + (uint64_t)(*j->s - '0');
		j->s++;
	}
	if (v)
		*v = x;
	return j->s > start;
}

static int j_array(struct json *j, uint64_t *vals, size_t max, size_t *n)
{
	*n = 0;
	if (*j->s != '[')
		return 0;
	j->s++;
	j_ws(j);
	if (*j->s == ']') {
		j->s++;
		return 1;
	}
	for (;;) {
		j_ws(j);
		if (!j_number(j, *n < max ? &vals[*n] : NULL))
			return 0;
		(*n)++;
		j_ws(j);
		if (*j->s == ']') {
			j->s++;
			return 1;
		}
		if (*j->s != ',')
			return 0;
		j->s++;
	}
}

static int j_value(struct json *j)
{
	size_t n;
	uint64_t dummy[64];

	j_ws(j);
	if (*j->s == '"')
		return j_string(j, NULL, 0);
	if (*j->s == '[')
		return j_array(j, dummy, 64, &n);
	return j_number(j, NULL);
}

#define MAX_KEYS	64

struct parsed {
	char		key[MAX_KEYS][32];
	uint64_t	num[MAX_KEYS];
	int		is_num[MAX_KEYS];
	int		nkeys;
	uint64_t	hist[LIBUFFD_HIST_BUCKETS + 1];
	size_t		nhist;
	int		has_hist;
};

/* Parse one top-level object; 1 when the whole text is exactly that. */
static int parse_stats_json(const char *text, struct parsed *pr)
{
	struct json j = { .s = text };
	int k;

	memset(pr, 0, sizeof(*pr));
	if (*j.s != '{')
		return 0;
	j.s++;
	for (;;) {
		j_ws(&j);
		if (pr->nkeys == MAX_KEYS)
			return 0;
		k = pr->nkeys++;
		if (!j_string(&j, pr->key[k], sizeof(pr->key[k])))
			return 0;
		j_ws(&j);
		if (*j.s != ':')
			return 0;
		j.s++;
		j_ws(&j);
		if (!strcmp(pr->key[k], "hist_us")) {
			if (!j_array(&j, pr->hist, LIBUFFD_HIST_BUCKETS + 1,
				     &pr->nhist))
				return 0;
			pr->has_hist = 1;
		} else if (*j.s >= '0' && *j.s <= '9') {
			if (!j_number(&j, &pr->num[k]))
				return 0;
			pr->is_num[k] = 1;
		} else if (!j_value(&j)) {
			return 0;
		}
		j_ws(&j);
		if (*j.s == '}')
			break;
		if (*j.s != ',')
			return 0;
		j.s++;
	}
	j.s++;
	return *j.s == '\0';
}

static int find_key(const struct parsed *pr, const char *key)
{
	int k, found = -1;

	for (k = 0; k < pr->nkeys; k++) {
		if (!strcmp(pr->key[k], key)) {
			if (found >= 0)
				return -2;	/* duplicate */
			found = k;
		}
	}
	return found;
}

START_TEST(format_json)
{
	struct uffd_stats st;
	struct parsed pr;
	char buf[8192];
	size_t i;
	int n, k;

	sample_stats(&st);
	n = uffd_stats_format(&st, LIBUFFD_FMT_JSON, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_lt(n, (int)sizeof(buf));
	ck_assert_uint_eq(strlen(buf), (size_t)n);
	ck_assert_ptr_null(strchr(buf, '\n'));
	ck_assert_int_eq(buf[0], '{');
	ck_assert_int_eq(buf[n - 1], '}');
	ck_assert_msg(parse_stats_json(buf, &pr), "not one JSON object: %.200s",
		      buf);

	for (i = 0; i < NFIELDS; i++) {
		k = find_key(&pr, fields[i].name);
		ck_assert_msg(k >= 0, "key %s missing or repeated",
			      fields[i].name);
		ck_assert_msg(pr.is_num[k], "%s is not a number",
			      fields[i].name);
		ck_assert_uint_eq(pr.num[k], field(&st, i));
	}
	ck_assert_int_eq(pr.has_hist, 1);
	ck_assert_int_ge(find_key(&pr, "hist_us"), 0);
	ck_assert_uint_eq(pr.nhist, LIBUFFD_HIST_BUCKETS);
	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		ck_assert_uint_eq(pr.hist[i], st.hist_us[i]);
}
END_TEST

START_TEST(format_json_zero)
{
	struct uffd_stats st;
	struct parsed pr;
	char buf[8192];
	size_t i;
	int k;

	memset(&st, 0, sizeof(st));
	ck_assert_int_gt(uffd_stats_format(&st, LIBUFFD_FMT_JSON, buf,
					   sizeof(buf)), 0);
	ck_assert(parse_stats_json(buf, &pr));
	for (i = 0; i < NFIELDS; i++) {
		k = find_key(&pr, fields[i].name);
		ck_assert_int_ge(k, 0);
		ck_assert_uint_eq(pr.num[k], 0);
	}
	ck_assert_uint_eq(pr.nhist, LIBUFFD_HIST_BUCKETS);
}
END_TEST

START_TEST(format_text)
{
	struct uffd_stats st;
	char buf[8192], num[32];
	size_t i;
	int n;

	sample_stats(&st);
	n = uffd_stats_format(&st, LIBUFFD_FMT_TEXT, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(buf), (size_t)n);
	/* Several lines, each counter named with its value. */
	ck_assert_ptr_nonnull(strchr(buf, '\n'));
	ck_assert_int_ne(buf[0], '{');
	for (i = 0; i < NFIELDS; i++) {
		const char *at = strstr(buf, fields[i].name);
		const char *eol, *val;

		ck_assert_msg(at, "%s missing from text", fields[i].name);
		eol = strchr(at, '\n');
		snprintf(num, sizeof(num), "%llu",
			 (unsigned long long)field(&st, i));
		val = strstr(at, num);
		ck_assert_msg(val && (!eol || val < eol),
			      "%s: value %s not on its line", fields[i].name,
			      num);
	}
}
END_TEST

static void check_snprintf(int fmt)
{
	struct uffd_stats st;
	char full[8192], small[64];
	int n, i;

	sample_stats(&st);
	n = uffd_stats_format(&st, fmt, NULL, 0);
	ck_assert_int_gt(n, 20);
	ck_assert_int_eq(uffd_stats_format(&st, fmt, full, sizeof(full)), n);
	ck_assert_uint_eq(strlen(full), (size_t)n);

	/* Truncated: the full length, a NUL at the end, nothing beyond. */
	memset(small, 'X', sizeof(small));
	ck_assert_int_eq(uffd_stats_format(&st, fmt, small, 10), n);
	ck_assert_int_eq(small[9], '\0');
	ck_assert_int_eq(memcmp(small, full, 9), 0);
	for (i = 10; i < (int)sizeof(small); i++)
		ck_assert_int_eq(small[i], 'X');

	memset(small, 'X', sizeof(small));
	ck_assert_int_eq(uffd_stats_format(&st, fmt, small, 1), n);
	ck_assert_int_eq(small[0], '\0');
	ck_assert_int_eq(small[1], 'X');

	/* Exactly one byte short of room for the NUL. */
	ck_assert_int_eq(uffd_stats_format(&st, fmt, full, (size_t)n), n);
	ck_assert_uint_eq(strlen(full), (size_t)n - 1);
	ck_assert_int_eq(uffd_stats_format(&st, fmt, full, (size_t)n + 1), n);
	ck_assert_uint_eq(strlen(full), (size_t)n);
}

START_TEST(format_snprintf_json)
{
	check_snprintf(LIBUFFD_FMT_JSON);
}
END_TEST

START_TEST(format_snprintf_text)
{
	check_snprintf(LIBUFFD_FMT_TEXT);
}
END_TEST

START_TEST(format_bad_args)
{
	struct uffd_stats st;
	char buf[64];

	memset(&st, 0, sizeof(st));
	ck_assert_int_eq(uffd_stats_format(NULL, LIBUFFD_FMT_TEXT, buf,
					   sizeof(buf)), -EINVAL);
	ck_assert_int_eq(uffd_stats_format(&st, 2, buf, sizeof(buf)),
			 -EINVAL);
	ck_assert_int_eq(uffd_stats_format(&st, -1, buf, sizeof(buf)),
			 -EINVAL);
	ck_assert_int_eq(uffd_stats_format(&st, LIBUFFD_FMT_JSON, NULL, 5),
			 -EINVAL);
	ck_assert_int_eq(uffd_stats_print(&st, LIBUFFD_FMT_JSON, NULL),
			 -EINVAL);
	ck_assert_int_eq(uffd_stats_print(NULL, LIBUFFD_FMT_JSON, stdout),
			 -EINVAL);
	ck_assert_int_eq(uffd_stats_print(&st, 9, stdout), -EINVAL);
}
END_TEST

START_TEST(print_matches_format)
{
	struct uffd_stats st;
	char want[8192], got[8192];
	int fmt, n;
	size_t len;
	FILE *f;

	sample_stats(&st);
	for (fmt = LIBUFFD_FMT_TEXT; fmt <= LIBUFFD_FMT_JSON; fmt++) {
		n = uffd_stats_format(&st, fmt, want, sizeof(want));
		f = tmpfile();
		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(uffd_stats_print(&st, fmt, f), 0);
		rewind(f);
		len = fread(got, 1, sizeof(got) - 1, f);
		got[len] = '\0';
		fclose(f);
		ck_assert_uint_ge(len, (size_t)n);
		ck_assert_int_eq(memcmp(got, want, (size_t)n), 0);
		/* At most a final newline after what format gives. */
		ck_assert(len == (size_t)n ||
			  (len == (size_t)n + 1 && got[n] == '\n'));
	}
	/* A stream that cannot be written to. */
	f = fopen("/dev/null", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(uffd_stats_print(&st, LIBUFFD_FMT_TEXT, f), -EIO);
	fclose(f);
}
END_TEST

START_TEST(format_real_stats)
{
	struct uffd_region *r = NULL;
	struct uffd_stats st;
	struct parsed pr;
	char buf[8192];
	int k;

	ck_assert_int_eq(make_region(ctx, LIBUFFD_MEM_ANON, 8, NULL, &r), 0);
	poke(uffd_region_addr(r), 1);
	ck_assert_int_eq(uffd_ctx_stop(ctx), 0);
	ck_assert_int_eq(uffd_ctx_stats(ctx, &st, sizeof(st)), 0);
	ck_assert_int_gt(uffd_stats_format(&st, LIBUFFD_FMT_JSON, buf,
					   sizeof(buf)), 0);
	ck_assert(parse_stats_json(buf, &pr));
	k = find_key(&pr, "faults_write");
	ck_assert_int_ge(k, 0);
	ck_assert_uint_eq(pr.num[k], 1);
	k = find_key(&pr, "bytes_copied");
	ck_assert_int_ge(k, 0);
	ck_assert_uint_eq(pr.num[k], ps());
}
END_TEST

/* ---- uffd_args_* through a pager's init ----------------------------- */

typedef int (*args_probe_fn)(const struct uffd_args *args);

static args_probe_fn args_probe;
static int init_calls;

/* The probe runs inside uffd_region_create(), in the test's thread. */
static int args_init(struct uffd_region *region, const struct uffd_args *args,
		     void **state)
{
	init_calls++;
	ck_assert_ptr_nonnull(args);
	*state = region;
	return args_probe(args);
}

static const struct uffd_pager_ops args_ops = {
	.version = LIBUFFD_PAGER_OPS_VERSION,
	.name = "args",
	.init = args_init,
	.fault = fault_like_zero,
};

static int create_with_args(const char *args, args_probe_fn fn)
{
	struct uffd_region_opts o = {
		.size = sizeof(o),
		.type = LIBUFFD_MEM_ANON,
		.len = ps(),
		.ops = &args_ops,
		.args = args,
	};
	struct uffd_region *r = NULL;
	int ret;

	args_probe = fn;
	ret = uffd_region_create(ctx, &o, &r);
	uffd_region_destroy(r);
	return ret;
}

static int probe_suffixes(const struct uffd_args *a)
{
	uint64_t v;

	ck_assert_str_eq(uffd_args_get(a, "a"), "4K");
	ck_assert_int_eq(uffd_args_u64(a, "a", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(uffd_args_u64(a, "b", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, 2ULL << 20);
	ck_assert_int_eq(uffd_args_u64(a, "c", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, 1ULL << 30);
	ck_assert_int_eq(uffd_args_u64(a, "d", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, 17);
	ck_assert_int_eq(uffd_args_u64(a, "e", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, 16ULL << 30);
	ck_assert_int_eq(uffd_args_u64(a, "f", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, UINT64_MAX);
	ck_assert_int_eq(uffd_args_u64(a, "g", &v, 0, UINT64_MAX), 0);
	ck_assert_uint_eq(v, 0);
	return 0;
}

START_TEST(args_suffixes)
{
	ck_assert_int_eq(create_with_args("a=4K,b=2M,c=1G,d=17,e=16G,"
					  "f=18446744073709551615,g=0",
					  probe_suffixes), 0);
	ck_assert_int_eq(init_calls, 1);
}
END_TEST

static int probe_absent(const struct uffd_args *a)
{
	uint64_t v = 99;

	ck_assert_ptr_null(uffd_args_get(a, "a"));
	ck_assert_ptr_null(uffd_args_get(a, ""));
	/* Absent: 0, and the default the caller put there is kept. */
	ck_assert_int_eq(uffd_args_u64(a, "a", &v, 0, 10), 0);
	ck_assert_uint_eq(v, 99);
	ck_assert_int_eq(uffd_args_check(a, (const char *const[]){ NULL }),
			 0);
	return 0;
}

START_TEST(args_absent)
{
	ck_assert_int_eq(create_with_args(NULL, probe_absent), 0);
	ck_assert_int_eq(create_with_args("", probe_absent), 0);
	ck_assert_int_eq(init_calls, 2);
}
END_TEST

/* Expect -EINVAL from key @k in [min, max], with *val left alone. */
static void expect_u64_einval(const struct uffd_args *a, const char *k,
			      uint64_t min, uint64_t max)
{
	uint64_t v = 12345;

	clear_last_error();
	ck_assert_msg(uffd_args_u64(a, k, &v, min, max) == -EINVAL,
		      "%s=%s accepted in [%llu, %llu]", k, uffd_args_get(a, k),
		      (unsigned long long)min, (unsigned long long)max);
	ck_assert_uint_eq(v, 12345);
	ck_assert_msg(*uffd_last_error(), "no reason for %s", k);
}

static int probe_ranges(const struct uffd_args *a)
{
	uint64_t v;

	expect_u64_einval(a, "five", 0, 4);
	ck_assert_int_eq(uffd_args_u64(a, "five", &v, 0, 5), 0);
	ck_assert_uint_eq(v, 5);
	ck_assert_int_eq(uffd_args_u64(a, "five", &v, 5, 5), 0);
	expect_u64_einval(a, "zero", 1, 10);
	ck_assert_int_eq(uffd_args_u64(a, "zero", &v, 0, 10), 0);
	/* The bound applies after the suffix. */
	expect_u64_einval(a, "onek", 0, 1000);
	ck_assert_int_eq(uffd_args_u64(a, "onek", &v, 1024, 1024), 0);
	ck_assert_uint_eq(v, 1024);
	return 0;
}

START_TEST(args_ranges)
{
	ck_assert_int_eq(create_with_args("five=5,zero=0,onek=1K",
					  probe_ranges), 0);
}
END_TEST

static int probe_malformed(const struct uffd_args *a)
{
	static const char *const keys[] = {
		"x", "neg", "plus", "sp", "kk", "q", "frac", "big", "bigg",
		"hex", "t",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(keys); i++)
		expect_u64_einval(a, keys[i], 0, UINT64_MAX);
	return 0;
}

START_TEST(args_malformed)
{
	ck_assert_int_eq(create_with_args("x=abc,neg=-1,plus=+1,sp= 1,kk=4KK,"
					  "q=4Q,frac=1.5K,"
					  "big=18446744073709551616,"
					  "bigg=17179869184G,hex=0x,t=1T",
					  probe_malformed), 0);
}
END_TEST

static int probe_decimal(const struct uffd_args *a)
{
	uint64_t v = 0;

	/* "a number": decimal, whatever its leading zeros. */
	ck_assert_int_eq(uffd_args_u64(a, "lead", &v, 0, 100), 0);
	ck_assert_uint_eq(v, 10);
	ck_assert_int_eq(uffd_args_u64(a, "eight", &v, 0, 100), 0);
	ck_assert_uint_eq(v, 8);
	return 0;
}

START_TEST(args_decimal)
{
	ck_assert_int_eq(create_with_args("lead=010,eight=08",
					  probe_decimal), 0);
}
END_TEST

static int probe_check(const struct uffd_args *a)
{
	static const char *const known[] = { "a", "b", NULL };

	return uffd_args_check(a, known);
}

START_TEST(args_check)
{
	ck_assert_int_eq(create_with_args("a=1,b=2", probe_check), 0);
	ck_assert_int_eq(create_with_args("b=2", probe_check), 0);
	ck_assert_int_eq(create_with_args(NULL, probe_check), 0);
	clear_last_error();
	ck_assert_int_eq(create_with_args("a=1,zz=3", probe_check), -EINVAL);
	ck_assert_ptr_nonnull(strstr(uffd_last_error(), "zz"));
	ck_assert_int_eq(create_with_args("A=1", probe_check), -EINVAL);
	ck_assert_int_eq(init_calls, 5);
}
END_TEST

static int probe_never(const struct uffd_args *a)
{
	(void)a;
	ck_abort_msg("init called for a malformed argument string");
	return 0;
}

START_TEST(args_unparsable)
{
	static const char *const bad[] = {
		"a=", "=1", "a", ",", "a=1,", ",a=1", "a=1,,b=2", "a=1,a=2",
	};
	size_t i;
	int fds = count_fds();

	/* Refused before the pager ever sees them. */
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		clear_last_error();
		ck_assert_msg(create_with_args(bad[i], probe_never) == -EINVAL,
			      "args \"%s\" accepted", bad[i]);
		ck_assert_msg(*uffd_last_error(), "no reason for \"%s\"",
			      bad[i]);
	}
	ck_assert_int_eq(init_calls, 0);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

static int probe_own_error(const struct uffd_args *a)
{
	(void)a;
	uffd_set_error("custom reason %d", 42);
	return -EINVAL;
}

START_TEST(args_pager_error_text)
{
	ck_assert_int_eq(create_with_args(NULL, probe_own_error), -EINVAL);
	/* The pager's reason reaches the caller (with context, maybe). */
	ck_assert_msg(strstr(uffd_last_error(), "custom reason 42"),
		      "last error \"%s\"", uffd_last_error());
}
END_TEST

static Suite *stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = add_tcase(s, "counters", ctx_setup, ctx_teardown);

	tcase_add_test(tc, exact_counters);
	tcase_add_test(tc, counters_while_running);
	tcase_add_test(tc, pager_reported);
	tcase_add_test(tc, prefix_copy);
	tcase_add_test(tc, stats_bad_args);

	tc = add_tcase(s, "histogram", ctx_setup, ctx_teardown);
	tcase_add_test(tc, quantile_empty);
	tcase_add_test(tc, quantile_buckets);
	tcase_add_test(tc, quantile_monotone);
	tcase_add_test(tc, quantile_huge_counts);
	tcase_add_test(tc, quantile_of_real_faults);

	tc = add_tcase(s, "format", ctx_setup, ctx_teardown);
	tcase_add_test(tc, format_json);
	tcase_add_test(tc, format_json_zero);
	tcase_add_test(tc, format_text);
	tcase_add_test(tc, format_snprintf_json);
	tcase_add_test(tc, format_snprintf_text);
	tcase_add_test(tc, format_bad_args);
	tcase_add_test(tc, print_matches_format);
	tcase_add_test(tc, format_real_stats);

	tc = add_tcase(s, "args", ctx_setup, ctx_teardown);
	tcase_add_test(tc, args_suffixes);
	tcase_add_test(tc, args_absent);
	tcase_add_test(tc, args_ranges);
	tcase_add_test(tc, args_malformed);
	tcase_add_test(tc, args_decimal);
	tcase_add_test(tc, args_check);
	tcase_add_test(tc, args_unparsable);
	tcase_add_test(tc, args_pager_error_text);
	return s;
}

int main(void)
{
	require_kernel(0, 0);
	return run_suite(stats_suite());
}
