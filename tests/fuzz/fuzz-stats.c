/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: uffd_stats_format() and uffd_stats_quantile_us().
 *
 * Input: byte 0 picks the format (bits 0-1: text, JSON, 2, -1), bits 2-3
 * whether a NULL buffer goes with the length; bytes 1-2 the buffer length
 * (little-endian, up to 65535); bytes 3-10 a double q for a direct
 * quantile call; the rest fills struct uffd_stats (missing bytes are 0).
 *
 * Checked: no write past @len bytes (the buffer is malloc'd to exactly
 * @len: ASan sees an overflow), a NUL within @len, the output a prefix of
 * the full output, the return the full output's length (snprintf style),
 * -EINVAL exactly for bad arguments, and each quantile against a
 * reference computed in 128 bits.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libuffd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FULL	65536

typedef unsigned __int128 u128;

/* The bucket holding the @rank-th service (1-based), exactly. */
static unsigned bucket_of(const struct uffd_stats *st, u128 rank)
{
	u128 seen = 0;
	unsigned i;

	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++) {
		seen += st->hist_us[i];
		if (seen >= rank)
			return i;
	}
	return LIBUFFD_HIST_BUCKETS - 1;
}

/*
 * The header's promise: the upper bound of the bucket holding the q-th
 * quantile, 0 only for an empty histogram.  Computed in 128 bits; the
 * library works in doubles and rounds q * total up with some slack, so
 * any bucket between those of ranks R - d and R + d is right, where R is
 * the exact rank and d covers one rank plus a double's rounding of the
 * total (never a bucket past the last one used).
 */
static void check_quantile(const struct uffd_stats *st, double q)
{
	uint64_t got = uffd_stats_quantile_us(st, q);
	u128 total = 0, rank, d, lo = 1, hi = 1;
	long double r;
	unsigned i;

	for (i = 0; i < LIBUFFD_HIST_BUCKETS; i++)
		total += st->hist_us[i];
	if (!total) {
		if (got)
			goto bad;
		return;
	}
	if (!(q >= 0))		/* NaN: as 0 */
		q = 0;
	if (q > 1)
		q = 1;
	r = (long double)q * (long double)total;
	rank = (u128)r;
	if ((long double)rank < r)
		rank++;
	d = 1 + (total >> 40);
	lo = rank > d ? rank - d : 1;
	hi = rank + d < total ? rank + d : total;
	if (got & (got - 1) || !got ||
	    got < (1ull << bucket_of(st, lo)) ||
	    got > (1ull << bucket_of(st, hi)))
		goto bad;
	return;
bad:
	fprintf(stderr, "quantile(%g) = %llu: outside [%llu, %llu] "
		"(total %llu%s)\n", q, (unsigned long long)got,
		total ? 1ull << bucket_of(st, lo) : 0,
		total ? 1ull << bucket_of(st, hi) : 0,
		(unsigned long long)total, total >> 64 ? " + 2^64 * n" : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int fmts[] = { LIBUFFD_FMT_TEXT, LIBUFFD_FMT_JSON, 2, -1 };
	static char full[FULL];
	struct uffd_stats st;
	size_t len = 0, n;
	int fmt, want, got;
	bool null_buf, valid;
	double q = 0.5;
	char *buf;

	if (size < 1)
		return 0;
	fmt = fmts[data[0] & 3];
	null_buf = (data[0] & 0xc) == 0xc;
	if (size >= 3)
		len = (size_t)data[1] | (size_t)data[2] << 8;
	if (size >= 11)
		memcpy(&q, data + 3, sizeof(q));
	memset(&st, 0, sizeof(st));
	if (size > 11)
		memcpy(&st, data + 11, size - 11 < sizeof(st) ?
		       size - 11 : sizeof(st));

	check_quantile(&st, q);
	check_quantile(&st, 0.5);
	check_quantile(&st, 0.99);
	if (uffd_stats_quantile_us(&st, 0.5) > uffd_stats_quantile_us(&st, 0.99))
		abort();

	valid = fmt == LIBUFFD_FMT_TEXT || fmt == LIBUFFD_FMT_JSON;
	want = uffd_stats_format(&st, fmt, full, sizeof(full));
	if (!valid) {
		if (want != -EINVAL || !*uffd_last_error())
			abort();
		return 0;
	}
	if (want < 0 || (size_t)want >= sizeof(full) ||
	    strlen(full) != (size_t)want)
		abort();
	/* the shapes the header promises */
	if (fmt == LIBUFFD_FMT_JSON &&
	    (full[0] != '{' || full[want - 1] != '}' || strchr(full, '\n')))
		abort();
	if (fmt == LIBUFFD_FMT_TEXT && full[want - 1] != '\n')
		abort();
	if (uffd_stats_format(NULL, fmt, full, sizeof(full)) != -EINVAL)
		abort();

	if (null_buf) {
		got = uffd_stats_format(&st, fmt, NULL, len);
		if (len ? got != -EINVAL : got != want)
			abort();
		return 0;
	}
	/* exactly @len bytes, so that ASan sees any write past them */
	buf = len ? malloc(len) : NULL;
	if (len && !buf)
		return 0;
	if (len)
		memset(buf, 'x', len);
	got = uffd_stats_format(&st, fmt, buf, len);
	if (got != want)
		abort();
	if (len) {
		n = strnlen(buf, len);
		if (n == len)
			abort();	/* not terminated */
		if (n != ((size_t)want < len - 1 ? (size_t)want : len - 1) ||
		    memcmp(buf, full, n))
			abort();
	}
	free(buf);
	return 0;
}
