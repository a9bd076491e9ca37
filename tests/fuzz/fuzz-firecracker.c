/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the parser of Firecracker's handshake
 * (luffd_fc_parse in libuffd/firecracker.c), which
 * uffd_handover_recv_firecracker runs on the JSON it received.
 *
 * The input is the message.  It is parsed into arrays of exactly the
 * capacity given (64, then 1: ASan sees a write past it).  A message
 * accepted must give regions that keep the rules of the header comment
 * (power-of-two page size from the base page size to 1 GiB, whole pages,
 * offsets accumulating from 0, no overlap, in user address space), must
 * be a JSON array (first and last non-blank bytes), and must give the
 * same regions back when written out again as Firecracker writes them,
 * with either page size key or both.  A message refused gives -EPROTO
 * and a reason and leaves the outputs untouched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)							\
	do {								\
		if (!(x)) {						\
			fprintf(stderr, "%s:%d: check failed: %s\n",	\
				__FILE__, __LINE__, #x);		\
			abort();					\
		}							\
	} while (0)

#define POISON	0xa5a5a5a5a5a5a5a5ull

static bool blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Firecracker's serialisation; @keys: 1 page_size, 2 _kib, 3 both. */
static size_t write_json(char *out, size_t len,
			 const struct uffd_handover_range *r, unsigned n,
			 int keys)
{
	size_t off = 0;
	unsigned i;

	off += (size_t)snprintf(out + off, len - off, "[");
	for (i = 0; i < n; i++) {
		unsigned long long ps = r[i].page_size;

		off += (size_t)snprintf(out + off, len - off,
			"%s{\"base_host_virt_addr\":%llu,\"size\":%llu,"
			"\"offset\":%llu", i ? "," : "",
			(unsigned long long)r[i].base,
			(unsigned long long)r[i].len,
			(unsigned long long)r[i].file_offset);
		if (keys & 1)
			off += (size_t)snprintf(out + off, len - off,
						",\"page_size\":%llu", ps);
		if (keys & 2)
			off += (size_t)snprintf(out + off, len - off,
						",\"page_size_kib\":%llu", ps);
		off += (size_t)snprintf(out + off, len - off, "}");
	}
	off += (size_t)snprintf(out + off, len - off, "]");
	CHECK(off < len);
	return off;
}

static void check_rules(const struct uffd_handover_range *r, unsigned n)
{
	uint64_t min_ps = (uint64_t)sysconf(_SC_PAGESIZE), expect = 0;
	unsigned i, j;

	CHECK(n >= 1 && n <= LIBUFFD_HANDOVER_MAX);
	for (i = 0; i < n; i++) {
		uint64_t ps = r[i].page_size;

		CHECK(ps >= min_ps && ps <= (1ull << 30) && !(ps & (ps - 1)));
		CHECK(r[i].len && !(r[i].len % ps) && !(r[i].base % ps));
		CHECK(r[i].len <= LUFFD_MAX_USER_LEN &&
		      r[i].base <= LUFFD_MAX_USER_LEN - r[i].len);
		CHECK(r[i].file_offset == expect);
		expect += r[i].len;
		for (j = 0; j < i; j++)
			CHECK(r[i].base >= r[j].base + r[j].len ||
			      r[j].base >= r[i].base + r[i].len);
	}
}

static void round_trip(const struct uffd_handover_range *r, unsigned n)
{
	static char json[LIBUFFD_HANDOVER_MAX * 200];
	struct uffd_handover_range back[LIBUFFD_HANDOVER_MAX];
	unsigned m;
	int keys;

	for (keys = 1; keys <= 3; keys++) {
		size_t len = write_json(json, sizeof(json), r, n, keys);

		m = LIBUFFD_HANDOVER_MAX;
		CHECK(luffd_fc_parse(json, len, back, &m) == 0);
		CHECK(m == n && !memcmp(back, r, n * sizeof(*r)));
	}
}

static int one(const uint8_t *data, size_t size, unsigned cap,
	       unsigned *got)
{
	struct uffd_handover_range *r = malloc(cap * sizeof(*r));
	unsigned n = cap, i;
	size_t a = 0, b = size;
	int ret;

	CHECK(r);
	memset(r, 0xa5, cap * sizeof(*r));
	luffd_clear_error();
	ret = luffd_fc_parse(data, size, r, &n);
	if (ret == 0) {
		while (a < size && blank(data[a]))
			a++;
		while (b > a && blank(data[b - 1]))
			b--;
		CHECK(b - a >= 2 && data[a] == '[' && data[b - 1] == ']');
		CHECK(n <= cap);
		check_rules(r, n);
		round_trip(r, n);
		for (i = n; i < cap; i++)	/* beyond n: untouched */
			CHECK(r[i].base == POISON);
		*got = n;
	} else {
		CHECK(ret == -EPROTO);
		CHECK(*uffd_last_error());
		CHECK(n == cap);
		for (i = 0; i < cap; i++)
			CHECK(r[i].base == POISON && r[i].len == POISON &&
			      r[i].file_offset == POISON &&
			      r[i].page_size == POISON);
	}
	free(r);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned n = 0, n1 = 0;
	int ret = one(data, size, LIBUFFD_HANDOVER_MAX, &n);
	int ret1 = one(data, size, 1, &n1);

	/* room for one: the same verdict for one region, refused for more */
	if (ret == 0 && n == 1)
		CHECK(ret1 == 0 && n1 == 1);
	else
		CHECK(ret1 == -EPROTO);
	return 0;
}
