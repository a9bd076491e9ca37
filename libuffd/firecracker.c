/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's handshake with an external page-fault handler.
 *
 * On snapshot load with mem_backend "Uffd", Firecracker maps guest memory
 * anonymously, registers each region with a userfaultfd of its own
 * (EVENT_REMOVE, for the balloon), connects to the handler's Unix socket
 * and sends, in one sendmsg, a JSON array with one object per region,
 *
 *   [{"base_host_virt_addr":N,"size":N,"offset":N,"page_size":N,
 *     "page_size_kib":N},...]
 *
 * with the userfaultfd attached (SCM_RIGHTS).  Offsets into the memory
 * file accumulate from 0; page_size_kib holds bytes in spite of its name
 * (deprecated, and the only page size older Firecrackers send).  Then it
 * closes its end: nothing else is ever said on that socket, and the only
 * sign of the peer's life left to the handler is the process itself.
 *
 * The parser takes what serde_json writes for that array, and refuses
 * the rest rather than guess: standard JSON whitespace between tokens,
 * keys exactly as above (an escape in a key, an unknown key or a key
 * twice is refused), values unsigned decimal integers without sign,
 * fraction, exponent or leading zero that fit in 64 bits, nothing after
 * the array.
 */
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "internal.h"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD	77	/* 6.5 */
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open	434	/* 5.3 */
#endif

/* serde_json writes ~130 bytes per region: room for every region we take */
#define FC_MSG_MAX	(LIBUFFD_HANDOVER_MAX * 256)
#define FC_KEY_MAX	32
#define FC_PAGE_MAX	(1ull << 30)

enum { K_BASE, K_SIZE, K_OFFSET, K_PS, K_PSKIB, K_COUNT };

static const char *const fc_keys[K_COUNT] = {
	"base_host_virt_addr", "size", "offset", "page_size", "page_size_kib",
};

struct fc_lex {
	const unsigned char	*p;
	size_t			len, pos;
};

static int syntax(const struct fc_lex *l, const char *what)
{
	if (l->pos >= l->len)
		return luffd_fail(-EPROTO, "firecracker handshake: %s, but "
				  "the message ends (%zu bytes)", what, l->len);
	return luffd_fail(-EPROTO, "firecracker handshake: %s at byte %zu",
			  what, l->pos);
}

static void skip_ws(struct fc_lex *l)
{
	while (l->pos < l->len &&
	       (l->p[l->pos] == ' ' || l->p[l->pos] == '\t' ||
		l->p[l->pos] == '\n' || l->p[l->pos] == '\r'))
		l->pos++;
}

/* Next token is @c (after whitespace): consume it and return true. */
static bool take(struct fc_lex *l, char c)
{
	skip_ws(l);
	if (l->pos < l->len && l->p[l->pos] == (unsigned char)c) {
		l->pos++;
		return true;
	}
	return false;
}

/* A key: one of fc_keys, returned as its index. */
static int parse_key(struct fc_lex *l)
{
	char key[FC_KEY_MAX + 1];
	size_t n = 0;
	int k;

	if (!take(l, '"'))
		return syntax(l, "expected a key");
	while (l->pos < l->len && l->p[l->pos] != '"') {
		unsigned char c = l->p[l->pos];

		if (c == '\\' || c < 0x20)
			return syntax(l, "escape or control character in a "
				      "key");
		if (n == FC_KEY_MAX)
			return syntax(l, "key too long");
		key[n++] = c >= 0x7f ? '?' : (char)c;
		l->pos++;
	}
	if (l->pos == l->len)
		return syntax(l, "unterminated key");
	l->pos++;
	key[n] = '\0';
	for (k = 0; k < K_COUNT; k++)
		if (!strcmp(key, fc_keys[k]))
			return k;
	return luffd_fail(-EPROTO, "firecracker handshake: unknown field "
			  "\"%s\"", key);
}

static int parse_u64(struct fc_lex *l, uint64_t *out)
{
	uint64_t v = 0;
	size_t start;

	skip_ws(l);
	start = l->pos;
	while (l->pos < l->len && l->p[l->pos] >= '0' && l->p[l->pos] <= '9') {
		unsigned d = l->p[l->pos] - '0';

		if (l->pos > start && v == 0)
			return syntax(l, "number with a leading zero");
		if (v > (UINT64_MAX - d) / 10)
			return syntax(l, "number beyond 64 bits");
		v = v * 10 + d;
		l->pos++;
	}
	if (l->pos == start)
		return syntax(l, "expected an unsigned integer");
	if (l->pos < l->len && (l->p[l->pos] == '.' || l->p[l->pos] == 'e' ||
				l->p[l->pos] == 'E'))
		return syntax(l, "number not an integer");
	*out = v;
	return 0;
}

/* One {...}: every value into v[], which keys were there into *seen. */
static int parse_object(struct fc_lex *l, uint64_t v[K_COUNT],
			unsigned *seen)
{
	int k, ret;

	*seen = 0;
	if (!take(l, '{'))
		return syntax(l, "expected '{'");
	if (take(l, '}'))
		return 0;
	do {
		k = parse_key(l);
		if (k < 0)
			return k;
		if (*seen & (1u << k))
			return luffd_fail(-EPROTO, "firecracker handshake: "
					  "field \"%s\" twice", fc_keys[k]);
		if (!take(l, ':'))
			return syntax(l, "expected ':'");
		ret = parse_u64(l, &v[k]);
		if (ret < 0)
			return ret;
		*seen |= 1u << k;
	} while (take(l, ','));
	if (!take(l, '}'))
		return syntax(l, "expected ',' or '}'");
	return 0;
}

/* The region rules, for region @i whose offset should be @expect. */
static int check_region(unsigned i, const uint64_t v[K_COUNT], unsigned seen,
			uint64_t expect, struct uffd_handover_range *r)
{
	uint64_t ps, min_ps = (uint64_t)sysconf(_SC_PAGESIZE);
	int k;

	for (k = K_BASE; k <= K_OFFSET; k++)
		if (!(seen & (1u << k)))
			return luffd_fail(-EPROTO, "firecracker handshake: "
					  "region %u has no \"%s\"", i,
					  fc_keys[k]);
	if (!(seen & (1u << K_PS | 1u << K_PSKIB)))
		return luffd_fail(-EPROTO, "firecracker handshake: region %u "
				  "has no page_size", i);
	/* page_size_kib is bytes too: the two must agree */
	if ((seen & 1u << K_PS) && (seen & 1u << K_PSKIB) &&
	    v[K_PS] != v[K_PSKIB])
		return luffd_fail(-EPROTO, "firecracker handshake: region %u: "
				  "page_size %llu, page_size_kib %llu", i,
				  (unsigned long long)v[K_PS],
				  (unsigned long long)v[K_PSKIB]);
	ps = seen & 1u << K_PS ? v[K_PS] : v[K_PSKIB];
	if (ps < min_ps || ps > FC_PAGE_MAX || (ps & (ps - 1)))
		return luffd_fail(-EPROTO, "firecracker handshake: region %u: "
				  "page size %llu", i, (unsigned long long)ps);
	if (!v[K_SIZE] || v[K_SIZE] % ps || v[K_BASE] % ps)
		return luffd_fail(-EPROTO, "firecracker handshake: region %u: "
				  "%#llx+%#llx is not in whole %llu-byte pages",
				  i, (unsigned long long)v[K_BASE],
				  (unsigned long long)v[K_SIZE],
				  (unsigned long long)ps);
	if (v[K_SIZE] > LUFFD_MAX_USER_LEN ||
	    v[K_BASE] > LUFFD_MAX_USER_LEN - v[K_SIZE])
		return luffd_fail(-EPROTO, "firecracker handshake: region %u: "
				  "%#llx+%#llx is no process's memory", i,
				  (unsigned long long)v[K_BASE],
				  (unsigned long long)v[K_SIZE]);
	if (v[K_OFFSET] != expect)
		return luffd_fail(-EPROTO, "firecracker handshake: region %u: "
				  "offset %llu, expected %llu (offsets "
				  "accumulate from 0)", i,
				  (unsigned long long)v[K_OFFSET],
				  (unsigned long long)expect);
	r->base = v[K_BASE];
	r->len = v[K_SIZE];
	r->file_offset = v[K_OFFSET];
	r->page_size = ps;
	return 0;
}

int luffd_fc_parse(const void *buf, size_t len,
		   struct uffd_handover_range *ranges, unsigned *n)
{
	struct uffd_handover_range rg[LIBUFFD_HANDOVER_MAX];
	struct fc_lex l = { .p = buf, .len = len };
	uint64_t v[K_COUNT], expect = 0;
	unsigned cnt = 0, seen, i, j;
	int ret;

	if (!buf || !ranges || !n || !*n)
		return luffd_fail(-EINVAL, "firecracker handshake: bad "
				  "arguments");
	if (!take(&l, '['))
		return syntax(&l, "expected '['");
	if (take(&l, ']'))
		return luffd_fail(-EPROTO, "firecracker handshake: no regions");
	do {
		if (cnt == LIBUFFD_HANDOVER_MAX)
			return luffd_fail(-EPROTO, "firecracker handshake: "
					  "more than %d regions",
					  LIBUFFD_HANDOVER_MAX);
		ret = parse_object(&l, v, &seen);
		if (ret < 0)
			return ret;
		ret = check_region(cnt, v, seen, expect, &rg[cnt]);
		if (ret < 0)
			return ret;
		expect += rg[cnt].len;	/* no wrap: both < 2^57 */
		cnt++;
	} while (take(&l, ','));
	if (!take(&l, ']'))
		return syntax(&l, "expected ',' or ']'");
	skip_ws(&l);
	if (l.pos != l.len)
		return syntax(&l, "bytes after the array");
	for (i = 0; i < cnt; i++)
		for (j = 0; j < i; j++)
			if (rg[i].base < rg[j].base + rg[j].len &&
			    rg[j].base < rg[i].base + rg[i].len)
				return luffd_fail(-EPROTO, "firecracker "
						  "handshake: regions %u and "
						  "%u overlap", j, i);
	if (cnt > *n)
		return luffd_fail(-EPROTO, "firecracker handshake: %u regions, "
				  "room for %u", cnt, *n);
	memcpy(ranges, rg, cnt * sizeof(*ranges));
	*n = cnt;
	return 0;
}

/*
 * What Firecracker makes: a userfaultfd whose UFFDIO_API handshake is
 * done (a second one fails; one that succeeds here did the first, and the
 * peer could have registered nothing), in thread delivery, with
 * EVENT_REMOVE: without it a balloon's discard would come back as
 * snapshot data instead of zeros.
 */
static int check_fc_uffd(int fd)
{
	uint64_t features, ioctls;
	int ret = luffd_fdinfo_api(fd, &features, &ioctls);

	if (ret < 0)
		return luffd_fail(-EBADF, "firecracker handshake: the "
				  "descriptor is not a userfaultfd");
	if (luffd_api(fd, 0, NULL, NULL) == 0)
		return luffd_fail(-EPROTO, "firecracker handshake: the "
				  "userfaultfd had no UFFDIO_API handshake");
	if (features & UFFD_FEATURE_SIGBUS)
		return luffd_fail(-EPROTO, "firecracker handshake: a "
				  "SIGBUS-mode userfaultfd");
	if (!(features & UFFD_FEATURE_EVENT_REMOVE))
		return luffd_fail(-EPROTO, "firecracker handshake: the "
				  "userfaultfd lacks EVENT_REMOVE");
	return 0;
}

/*
 * A pidfd of the peer: SO_PEERPIDFD names the very process that
 * connected; before 6.5, pidfd_open of SO_PEERCRED's pid, which names
 * another process only if the peer died and its pid was reused between
 * its connect and now.  A peer that exited already is -ESRCH.
 */
static int peer_pidfd(int sock, pid_t pid, int *out)
{
	struct pollfd p = { .events = POLLIN };
	socklen_t len = sizeof(p.fd);
	int err;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERPIDFD, &p.fd, &len) < 0) {
		err = errno;
		if (err != ENOPROTOOPT && err != EINVAL)
			return luffd_fail(-err, "firecracker handshake: "
					  "SO_PEERPIDFD: %s", strerror(err));
		p.fd = (int)syscall(SYS_pidfd_open, pid, 0);
		if (p.fd < 0)
			return luffd_fail(-errno, "firecracker handshake: "
					  "pidfd_open(%d): %s", (int)pid,
					  strerror(errno));
	}
	if (poll(&p, 1, 0) != 0) {
		close(p.fd);
		return luffd_fail(-ESRCH, "firecracker handshake: peer %d "
				  "exited", (int)pid);
	}
	*out = p.fd;
	return 0;
}

LUFFD_API int uffd_handover_recv_firecracker(int sock, int *uffd,
					     struct uffd_handover_range *ranges,
					     unsigned *n, int *pidfd)
{
	char buf[FC_MSG_MAX + 1];
	struct ucred cred;
	struct uffd_handover_range rg[LIBUFFD_HANDOVER_MAX];
	unsigned cnt;
	int fds[LUFFD_HANDOVER_FDS], nfds, pfd = -1, ret, i;
	ssize_t got;

	if (sock < 0 || !uffd || !ranges || !n || *n == 0)
		return luffd_fail(-EINVAL, "firecracker handshake: bad "
				  "arguments");
	cnt = LUFFD_MIN(*n, LIBUFFD_HANDOVER_MAX);
	got = luffd_handover_recvmsg(sock, buf, sizeof(buf), fds, &nfds,
				     &cred, "firecracker handshake");
	if (got < 0)
		return (int)got;
	if ((size_t)got > FC_MSG_MAX) {
		ret = luffd_fail(-EPROTO, "firecracker handshake: message "
				 "longer than %d bytes", FC_MSG_MAX);
		goto refuse;
	}
	ret = luffd_fc_parse(buf, (size_t)got, rg, &cnt);
	if (ret < 0)
		goto refuse;
	if (nfds != 1) {
		ret = luffd_fail(-EBADF, "firecracker handshake: need exactly "
				 "one userfaultfd, got %d descriptors", nfds);
		goto refuse;
	}
	ret = check_fc_uffd(fds[0]);
	if (ret < 0)
		goto refuse;
	if (pidfd) {
		ret = peer_pidfd(sock, cred.pid, &pfd);
		if (ret < 0)
			goto refuse;
		*pidfd = pfd;
	}
	memcpy(ranges, rg, cnt * sizeof(*ranges));
	*uffd = fds[0];
	*n = cnt;
	return 0;
refuse:
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return ret;
}
