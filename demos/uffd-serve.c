/* SPDX-License-Identifier: MIT */
/*
 * uffd-serve - serve another process's memory: it hands over its
 * userfaultfd and the ranges it registered over a Unix socket
 * (uffd_handover_send), and this daemon serves them with any pager until
 * the peer closes the connection.
 *
 *   uffd-serve --socket PATH --pager SPEC [--once] [--cpu N]
 *
 * With a `file:` pager, each range's file offset is appended to the spec
 * (",offset=N"), so one image can back several ranges.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <libuffd.h>

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void usage(FILE *fp)
{
	fprintf(fp,
"Usage: uffd-serve --socket PATH --pager SPEC [--once] [--cpu N]\n"
"Serve the memory of processes that hand over their userfaultfd on the\n"
"Unix socket PATH (an '@name' is an abstract socket), with pager SPEC.\n"
"  -s, --socket PATH  where to listen\n"
"  -p, --pager SPEC   e.g. zero, prealloc:batch=16, file:path=IMG\n"
"  -1, --once         exit after the first client is done\n"
"  -c, --cpu N        pin the handler thread to CPU N\n"
"  -v, --verbose      print each client's statistics on stderr\n"
"  -h, --help         this text\n");
}

static socklen_t make_addr(const char *path, struct sockaddr_un *sun)
{
	size_t n = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sun->sun_path))
		return 0;
	memcpy(sun->sun_path, path, n);
	if (path[0] == '@')
		sun->sun_path[0] = '\0';	/* abstract */
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* Serve one client until it hangs up.  Returns 0 or -errno. */
static int serve_client(int conn, const char *spec, int cpu, int verbose)
{
	struct uffd_handover_range ranges[LIBUFFD_HANDOVER_MAX];
	unsigned n = LIBUFFD_HANDOVER_MAX, i;
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.flags = cpu >= 0 ? LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu = cpu,
	};
	struct uffd_ctx *ctx = NULL;
	struct pollfd pfd = { .fd = conn, .events = POLLIN };
	int fd, ret;
	char ack = 0;

	ret = uffd_handover_recv(conn, &fd, NULL, ranges, &n);
	if (ret < 0) {
		fprintf(stderr, "uffd-serve: refused: %s\n", uffd_last_error());
		return ret;
	}
	ret = uffd_ctx_adopt(&ctx, fd, &co);
	if (ret < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		char full[1024];
		struct uffd_region_opts o = {
			.size = sizeof(o),
			.type = LIBUFFD_MEM_REMOTE,
			.addr = (void *)(uintptr_t)ranges[i].base,
			.len = ranges[i].len,
			.pager = spec,
			.page_size = ranges[i].page_size,
		};
		struct uffd_region *r;

		if (!strncmp(spec, "file:", 5)) {
			snprintf(full, sizeof(full), "%s,offset=%llu", spec,
				 (unsigned long long)ranges[i].file_offset);
			o.pager = full;
		}
		ret = uffd_region_create(ctx, &o, &r);
		if (ret < 0)
			goto fail;
	}
	ret = uffd_ctx_start(ctx);
	if (ret < 0)
		goto fail;
	/* tell the client we serve: it may touch its memory now */
	if (write(conn, "+", 1) != 1) {
		ret = -errno;
		goto fail;
	}
	/* the client closes the connection when it no longer needs us */
	while (!quit) {
		if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
			break;
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			if (read(conn, &ack, 1) <= 0)
				break;
		}
	}
	if (verbose) {
		struct uffd_stats st;

		uffd_ctx_stats(ctx, &st, sizeof(st));
		uffd_stats_print(&st, LIBUFFD_FMT_JSON, stderr);
	}
	uffd_ctx_destroy(ctx);
	return 0;
fail:
	fprintf(stderr, "uffd-serve: %s\n", uffd_last_error());
	uffd_ctx_destroy(ctx);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pager", required_argument, NULL, 'p' },
		{ "once", no_argument, NULL, '1' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *spec = "zero";
	struct sockaddr_un sun;
	socklen_t alen;
	int once = 0, cpu = -1, verbose = 0, lfd, c, ret = 0;
	char *end;

	while ((c = getopt_long(argc, argv, "s:p:1c:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'p': spec = optarg; break;
		case '1': once = 1; break;
		case 'v': verbose = 1; break;
		case 'c':
			cpu = (int)strtol(optarg, &end, 10);
			if (*end || cpu < 0) {
				fprintf(stderr, "uffd-serve: bad --cpu %s\n",
					optarg);
				return 2;
			}
			break;
		case 'h': usage(stdout); return 0;
		default:
			fprintf(stderr, "uffd-serve: bad usage (see --help)\n");
			return 2;
		}
	}
	if (!path || optind != argc) {
		fprintf(stderr, "uffd-serve: --socket PATH is required\n");
		return 2;
	}
	if (strncmp(spec, "file:", 5) && uffd_pager_spec_check(spec, 0) < 0) {
		fprintf(stderr, "uffd-serve: --pager %s: %s\n", spec,
			uffd_last_error());
		return 2;
	}
	alen = make_addr(path, &sun);
	if (!alen) {
		fprintf(stderr, "uffd-serve: bad socket path\n");
		return 2;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (path[0] != '@')
		unlink(path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, alen) < 0 ||
	    listen(lfd, 8) < 0) {
		perror("uffd-serve: socket");
		return 1;
	}
	/* ready: scripts wait for this line */
	printf("uffd-serve: listening on %s\n", path);
	fflush(stdout);
	while (!quit) {
		int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (conn < 0) {
			if (errno == EINTR)
				continue;
			perror("uffd-serve: accept");
			ret = 1;
			break;
		}
		ret = serve_client(conn, spec, cpu, verbose) < 0;
		close(conn);
		if (once)
			break;
	}
	close(lfd);
	if (path[0] != '@')
		unlink(path);
	return ret;
}
