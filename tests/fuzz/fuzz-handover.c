/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the handover message check (luffd_handover_parse in
 * libuffd/handover.c), which uffd_handover_recv runs on what it received.
 *
 * The input is the message.  It is parsed into an array of exactly the
 * capacity given (64, then 1: ASan sees a write past it).  A message
 * accepted must be what the header comment of the wire format describes,
 * and its ranges and features those bytes; a message refused gives
 * -EPROTO and a reason and leaves the outputs untouched.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static uint32_t u32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* The wire format's rules, restated: 0 if @data is a good message. */
static bool well_formed(const uint8_t *data, size_t size, unsigned cap)
{
	uint32_t nr;
	unsigned i;

	if (size < 24 || u32_at(data) != LIBUFFD_HANDOVER_MAGIC ||
	    u32_at(data + 4) != LIBUFFD_HANDOVER_VERSION ||
	    u32_at(data + 12) != 24)
		return false;
	nr = u32_at(data + 8);
	if (nr < 1 || nr > LIBUFFD_HANDOVER_MAX || nr > cap ||
	    size != 24 + (size_t)nr * 32)
		return false;
	for (i = 0; i < nr; i++) {
		struct uffd_handover_range r;
		unsigned __int128 end;

		memcpy(&r, data + 24 + i * 32, sizeof(r));
		end = (unsigned __int128)r.base + r.len;
		if (!r.len || !r.page_size || (r.page_size & (r.page_size - 1)) ||
		    r.base % r.page_size || r.len % r.page_size ||
		    end > UINT64_MAX)
			return false;
	}
	return true;
}

static void one(const uint8_t *data, size_t size, unsigned cap)
{
	struct uffd_handover_range *r = malloc(cap * sizeof(*r));
	uint64_t features = 0x5a5a5a5a5a5a5a5aull;
	unsigned n = cap, i;
	int ret;

	CHECK(r);
	memset(r, 0xa5, cap * sizeof(*r));
	luffd_clear_error();
	ret = luffd_handover_parse(data, size, &features, r, &n);
	if (well_formed(data, size, cap)) {
		CHECK(ret == 0);
		CHECK(n == u32_at(data + 8));
		CHECK(!memcmp(&features, data + 16, 8));
		CHECK(!memcmp(r, data + 24, n * sizeof(*r)));
		for (i = n; i < cap; i++)	/* beyond n: untouched */
			CHECK(r[i].base == 0xa5a5a5a5a5a5a5a5ull);
	} else {
		CHECK(ret == -EPROTO);
		CHECK(*uffd_last_error());
		CHECK(n == cap && features == 0x5a5a5a5a5a5a5a5aull);
		for (i = 0; i < cap; i++)
			CHECK(r[i].base == 0xa5a5a5a5a5a5a5a5ull &&
			      r[i].page_size == 0xa5a5a5a5a5a5a5a5ull);
	}
	/* features is optional */
	n = cap;
	CHECK(luffd_handover_parse(data, size, NULL, r, &n) == ret);
	free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	one(data, size, LIBUFFD_HANDOVER_MAX);
	one(data, size, 1);
	return 0;
}
