/* SPDX-License-Identifier: MIT */
/*
 * The thread's last error text.  A per-thread buffer, like dlerror(): the
 * library never prints, so the reason behind an -EINVAL has to live
 * somewhere the caller can ask for it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

static __thread char last_error[256];

static void snprintf_safe_copy(char *dst, size_t len, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < len && src[i]; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

LUFFD_API const char *uffd_last_error(void)
{
	return last_error;
}

static void vset(const char *fmt, va_list ap)
{
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
}

LUFFD_API void uffd_set_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
}

int luffd_fail(int err, const char *fmt, ...)
{
	va_list ap;

	/* vsnprintf is not async-signal-safe: keep a fixed text */
	if (luffd_in_signal) {
		snprintf_safe_copy(last_error, sizeof(last_error),
				   "failed in the SIGBUS handler");
		return err;
	}
	va_start(ap, fmt);
	vset(fmt, ap);
	va_end(ap);
	return err;
}

void luffd_clear_error(void)
{
	last_error[0] = '\0';
}

uint64_t luffd_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
