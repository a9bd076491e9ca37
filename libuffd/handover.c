/* SPDX-License-Identifier: MIT */
/*
 * Handing a userfaultfd over a Unix socket: what a VM monitor or a
 * restorer does to let a separate handler process serve its memory.
 */
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

#include "internal.h"

struct wire_hdr {
	uint32_t	magic;
	uint32_t	version;
	uint32_t	nranges;
	uint32_t	hdr_size;
	uint64_t	features;
};

#define WIRE_MAX	(sizeof(struct wire_hdr) + \
			 LIBUFFD_HANDOVER_MAX * sizeof(struct uffd_handover_range))

LUFFD_API int uffd_handover_send(int sock, int uffd, uint64_t features,
				 const struct uffd_handover_range *ranges,
				 unsigned n)
{
	unsigned char buf[WIRE_MAX];
	struct wire_hdr h = {
		.magic = LIBUFFD_HANDOVER_MAGIC,
		.version = LIBUFFD_HANDOVER_VERSION,
		.nranges = n,
		.hdr_size = sizeof(struct wire_hdr),
		.features = features,
	};
	union {
		struct cmsghdr	align;
		char		buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct iovec iov;
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	size_t len;
	ssize_t sent;

	if (sock < 0 || uffd < 0 || !ranges || n == 0 ||
	    n > LIBUFFD_HANDOVER_MAX)
		return luffd_fail(-EINVAL, "handover: bad arguments");
	len = sizeof(h) + n * sizeof(*ranges);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), ranges, n * sizeof(*ranges));
	iov.iov_base = buf;
	iov.iov_len = len;
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &uffd, sizeof(int));
	sent = sendmsg(sock, &msg, MSG_NOSIGNAL);
	if (sent < 0)
		return luffd_fail(-errno, "handover: sendmsg: %s",
				  strerror(errno));
	if ((size_t)sent != len)
		return luffd_fail(-EIO, "handover: short send");
	return 0;
}

int luffd_handover_parse(const void *buf, size_t len, uint64_t *features,
			 struct uffd_handover_range *ranges, unsigned *n)
{
	struct uffd_handover_range rg[LIBUFFD_HANDOVER_MAX];
	const unsigned char *p = buf;
	struct wire_hdr h;
	unsigned i;

	if (len < sizeof(h))
		return luffd_fail(-EPROTO, "handover: %zu bytes, no header",
				  len);
	memcpy(&h, p, sizeof(h));
	if (h.magic != LIBUFFD_HANDOVER_MAGIC)
		return luffd_fail(-EPROTO, "handover: bad magic %#x", h.magic);
	if (h.version != LIBUFFD_HANDOVER_VERSION)
		return luffd_fail(-EPROTO, "handover: version %u, expected %u",
				  h.version, LIBUFFD_HANDOVER_VERSION);
	if (h.hdr_size != sizeof(h) || h.nranges == 0 ||
	    h.nranges > LIBUFFD_HANDOVER_MAX ||
	    len != sizeof(h) + h.nranges * sizeof(*ranges))
		return luffd_fail(-EPROTO, "handover: bad sizes (%zu bytes, "
				  "%u ranges)", len, h.nranges);
	if (h.nranges > *n)
		return luffd_fail(-EPROTO, "handover: %u ranges, room for %u",
				  h.nranges, *n);
	/* into rg first: a bad range leaves @ranges as it was */
	for (i = 0; i < h.nranges; i++) {
		memcpy(&rg[i], p + sizeof(h) + i * sizeof(rg[i]),
		       sizeof(rg[i]));
		if (!rg[i].len || !rg[i].page_size ||
		    (rg[i].page_size & (rg[i].page_size - 1)) ||
		    (rg[i].base | rg[i].len) & (rg[i].page_size - 1) ||
		    rg[i].base + rg[i].len < rg[i].base)
			return luffd_fail(-EPROTO, "handover: range %u is bad",
					  i);
	}
	memcpy(ranges, rg, h.nranges * sizeof(*ranges));
	*n = h.nranges;
	if (features)
		*features = h.features;
	return 0;
}

ssize_t luffd_handover_recvmsg(int sock, void *buf, size_t cap, int *fds,
			       int *nfds, struct ucred *cred, const char *who)
{
	union {
		struct cmsghdr	align;
		char	buf[CMSG_SPACE(LUFFD_HANDOVER_FDS * sizeof(int))];
	} ctl;
	struct iovec iov = { .iov_base = buf, .iov_len = cap };
	struct msghdr msg = { 0 };
	struct cmsghdr *cm;
	socklen_t clen = sizeof(*cred);
	ssize_t got;
	int ret, i;

	*nfds = 0;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = sizeof(ctl.buf);
	got = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (got < 0)
		return luffd_fail(-errno, "%s: recvmsg: %s", who,
				  strerror(errno));
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		for (i = 0; (size_t)i < (cm->cmsg_len - CMSG_LEN(0)) /
					sizeof(int) &&
			    *nfds < LUFFD_HANDOVER_FDS; i++)
			memcpy(&fds[(*nfds)++], CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(int));
	}
	if (got == 0) {
		ret = luffd_fail(-ECONNRESET, "%s: peer closed", who);
		goto refuse;
	}
	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cred, &clen) < 0) {
		ret = luffd_fail(-errno, "%s: SO_PEERCRED: %s", who,
				 strerror(errno));
		goto refuse;
	}
	if (cred->uid != getuid()) {
		ret = luffd_fail(-EPERM, "%s: peer uid %u is not ours (%u)",
				 who, (unsigned)cred->uid, (unsigned)getuid());
		goto refuse;
	}
	if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		ret = luffd_fail(-EPROTO, "%s: message truncated", who);
		goto refuse;
	}
	return got;
refuse:
	for (i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
	return ret;
}

LUFFD_API int uffd_handover_recv(int sock, int *uffd, uint64_t *features,
				 struct uffd_handover_range *ranges,
				 unsigned *n)
{
	unsigned char buf[WIRE_MAX + 1];
	struct ucred cred;
	struct uffd_handover_range rg[LIBUFFD_HANDOVER_MAX];
	uint64_t uf, ui, feat;
	unsigned cnt;
	int fds[LUFFD_HANDOVER_FDS], nfds, ret, i;
	ssize_t got;

	if (sock < 0 || !uffd || !ranges || !n || *n == 0)
		return luffd_fail(-EINVAL, "handover: bad arguments");
	cnt = *n;
	got = luffd_handover_recvmsg(sock, buf, sizeof(buf), fds, &nfds,
				     &cred, "handover");
	if (got < 0)
		return (int)got;
	ret = luffd_handover_parse(buf, (size_t)got, &feat, rg, &cnt);
	if (ret < 0)
		goto refuse;
	if (nfds != 1 || luffd_fdinfo_api(fds[0], &uf, &ui) < 0) {
		ret = luffd_fail(-EBADF, "handover: need exactly one "
				 "userfaultfd, got %d descriptors", nfds);
		goto refuse;
	}
	memcpy(ranges, rg, cnt * sizeof(*ranges));
	*uffd = fds[0];
	*n = cnt;
	if (features)
		*features = feat;
	return 0;
refuse:
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	return ret;
}
