/* SPDX-License-Identifier: MIT */
/*
 * Statistics: counters, the service-time histogram, text and JSON output.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void luffd_hist_add(struct luffd_counters *c, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned int b = 0;

	/* bucket 0: < 1 us; bucket i: [2^(i-1), 2^i) us */
	if (us)
		b = 64 - (unsigned int)__builtin_clzll(us);
	if (b >= LIBUFFD_HIST_BUCKETS)
		b = LIBUFFD_HIST_BUCKETS - 1;
	luffd_count(c, LUFFD_CTR(hist_us) + b, 1);
}

void luffd_counters_sum(struct luffd_counters *dst,
			const struct luffd_counters *src)
{
	size_t i;

	for (i = 0; i < LUFFD_ARRAY_SIZE(dst->v); i++)
		dst->v[i] += luffd_load(&src->v[i]);
}

void luffd_counters_to_stats(const struct luffd_counters *c,
			     struct uffd_stats *st)
{
	size_t i;
	uint64_t *out = (uint64_t *)st;

	for (i = 0; i < LUFFD_ARRAY_SIZE(c->v); i++)
		out[i] = luffd_load(&c->v[i]);
}

static int copy_out(const struct uffd_stats *src, struct uffd_stats *st,
		    size_t size)
{
	if (!st || size == 0 || size % sizeof(uint64_t))
		return luffd_fail(-EINVAL, "stats: NULL or bad size %zu", size);
	memcpy(st, src, LUFFD_MIN(size, sizeof(*src)));
	return 0;
}

LUFFD_API int uffd_region_stats(const struct uffd_region *r,
				struct uffd_stats *st, size_t size)
{
	struct uffd_stats tmp;

	if (!r)
		return luffd_fail(-EINVAL, "uffd_region_stats: NULL region");
	/* an event whose madvise or mremap returned is counted */
	luffd_reads_settle(r->ctx);
	luffd_counters_to_stats(&r->ctr, &tmp);
	tmp.handler_cpu_ns = 0;
	return copy_out(&tmp, st, size);
}

LUFFD_API int uffd_ctx_stats(const struct uffd_ctx *cctx,
			     struct uffd_stats *st, size_t size)
{
	struct uffd_ctx *ctx = (struct uffd_ctx *)cctx;
	struct luffd_counters sum = { { 0 } };
	struct uffd_region *r;
	struct uffd_stats tmp;

	if (!ctx)
		return luffd_fail(-EINVAL, "uffd_ctx_stats: NULL context");
	luffd_reads_settle(ctx);
	pthread_rwlock_rdlock(&ctx->lock);
	for (r = ctx->all; r; r = r->next)
		luffd_counters_sum(&sum, &r->ctr);
	luffd_counters_sum(&sum, &ctx->retired);
	pthread_rwlock_unlock(&ctx->lock);
	luffd_counters_sum(&sum, &ctx->ctr);
	luffd_counters_to_stats(&sum, &tmp);
	tmp.handler_cpu_ns = uffd_ctx_handler_cpu_ns(ctx);
	return copy_out(&tmp, st, size);
}

LUFFD_API void uffd_region_add_helper_cpu(struct uffd_region *r, uint64_t ns)
{
	if (r)
		luffd_count(&r->ctr, LUFFD_CTR(helper_cpu_ns), ns);
}

LUFFD_API void uffd_region_add_miss(struct uffd_region *r, uint64_t n)
{
	if (r)
		luffd_count(&r->ctr, LUFFD_CTR(pager_misses), n);
}

LUFFD_API uint64_t uffd_stats_quantile_us(const struct uffd_stats *st,
					  double q)
{
	/*
	 * In doubles: 32 buckets of up to 2^64 - 1 each overflow a uint64_t
	 * sum (a wrapped total once made a full histogram look empty, or
	 * put the median in the wrong bucket), and q * total + slack could
	 * pass 2^64, whose conversion back is undefined.  Below 2^53 the
	 * sums are exact, so real counts give the answers they always did.
	 * seen adds the same doubles in the same order as total, so it
	 * reaches total exactly at the last bucket in use.
	 */
	double total = 0, seen = 0, rank;
	unsigned int i;

	if (!st)
		return 0;
	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		total += (double)st->hist_us[i];
	if (total == 0)
		return 0;
	if (!(q > 0))		/* NaN too */
		q = 0;
	if (q > 1)
		q = 1;
	/* the smallest whole rank >= q * total, with slack for q's rounding */
	rank = q * total + 0.999999;
	if (rank < 0x1p63)
		rank = (double)(uint64_t)rank;
	if (rank < 1)
		rank = 1;
	if (rank > total)
		rank = total;
	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++) {
		seen += (double)st->hist_us[i];
		if (seen >= rank)
			break;
	}
	if (i >= LIBUFFD_HIST_BUCKETS)
		i = LIBUFFD_HIST_BUCKETS - 1;
	return 1ull << i;	/* upper bound of bucket i, in us */
}

static const struct {
	const char	*name;
	size_t		idx;
} scalar_fields[] = {
#define F(x) { #x, LUFFD_CTR(x) }
	F(faults_read), F(faults_write), F(faults_wp), F(faults_minor),
	F(pages_copy), F(pages_zero), F(pages_move), F(bytes_copied),
	F(eexist), F(ioctls), F(poisoned), F(pager_errors),
	F(events_remove), F(events_unmap), F(stray_faults),
	F(helper_cpu_ns), F(pager_misses), F(handler_cpu_ns),
	F(events_remap), F(events_fork), F(remap_dropped),
	F(spin_ns), F(spin_hits), F(sigbus_faults), F(sigbus_direct),
	F(sigbus_queued), F(failed_refaults), F(kernel_unstuck),
	F(pages_protected), F(pages_released), F(pages_continued),
	F(pages_evicted), F(pages_written_back), F(pages_read_in),
	F(writeback_errors), F(store_ios),
#undef F
};

struct sbuf {
	char	*buf;
	size_t	len;
	size_t	used;	/* length the full output needs */
};

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	size_t room = sb->used < sb->len ? sb->len - sb->used : 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? sb->buf + sb->used : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		sb->used += (size_t)n;
}

LUFFD_API int uffd_stats_format(const struct uffd_stats *st, int fmt,
				char *buf, size_t len)
{
	struct sbuf sb = { .buf = buf, .len = len };
	const uint64_t *v = (const uint64_t *)st;
	unsigned int i, last = 0;

	if (!st || (fmt != LIBUFFD_FMT_TEXT && fmt != LIBUFFD_FMT_JSON) ||
	    (!buf && len))
		return luffd_fail(-EINVAL, "uffd_stats_format: bad arguments");
	if (len)
		buf[0] = '\0';
	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		if (st->hist_us[i])
			last = i + 1;
	if (fmt == LIBUFFD_FMT_JSON) {
		sb_printf(&sb, "{");
		for (i = 0; i < LUFFD_ARRAY_SIZE(scalar_fields); i++)
			sb_printf(&sb, "\"%s\":%llu,", scalar_fields[i].name,
				  (unsigned long long)v[scalar_fields[i].idx]);
		sb_printf(&sb, "\"p50_us\":%llu,\"p99_us\":%llu,\"hist_us\":[",
			  (unsigned long long)uffd_stats_quantile_us(st, 0.5),
			  (unsigned long long)uffd_stats_quantile_us(st, 0.99));
		for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
			sb_printf(&sb, "%s%llu", i ? "," : "",
				  (unsigned long long)st->hist_us[i]);
		sb_printf(&sb, "]}");
	} else {
		for (i = 0; i < LUFFD_ARRAY_SIZE(scalar_fields); i++)
			sb_printf(&sb, "%-15s %llu\n", scalar_fields[i].name,
				  (unsigned long long)v[scalar_fields[i].idx]);
		sb_printf(&sb, "service time   p50 <= %llu us, p99 <= %llu us\n",
			  (unsigned long long)uffd_stats_quantile_us(st, 0.5),
			  (unsigned long long)uffd_stats_quantile_us(st, 0.99));
		for (i = 0; i < last; i++) {
			if (i == 0)
				sb_printf(&sb, "  [     0,      1) us %llu\n",
					  (unsigned long long)st->hist_us[0]);
			else
				sb_printf(&sb, "  [%6llu, %6llu) us %llu\n",
					  1ull << (i - 1), 1ull << i,
					  (unsigned long long)st->hist_us[i]);
		}
	}
	if (sb.used > (size_t)INT32_MAX)
		return luffd_fail(-EINVAL, "uffd_stats_format: too long");
	return (int)sb.used;
}

LUFFD_API int uffd_stats_print(const struct uffd_stats *st, int fmt,
			       FILE *fp)
{
	char buf[4096];
	int n;

	if (!fp)
		return luffd_fail(-EINVAL, "uffd_stats_print: NULL stream");
	n = uffd_stats_format(st, fmt, buf, sizeof(buf));
	if (n < 0)
		return n;
	if (fputs(buf, fp) == EOF ||
	    (fmt == LIBUFFD_FMT_JSON && fputc('\n', fp) == EOF))
		return luffd_fail(-EIO, "uffd_stats_print: write failed");
	return 0;
}
