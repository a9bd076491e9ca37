/* SPDX-License-Identifier: MIT */
/*
 * uffd-serve - serve another process's memory: it hands over its
 * userfaultfd and the ranges it registered over a Unix socket, and this
 * daemon serves them with any pager, each client in its own context, so
 * that one client's faults never wait for another's.
 *
 *   uffd-serve --socket PATH --pager SPEC [--protocol P] [--once] [--cpu N]
 *
 * --protocol libuffd (the default): the peer sends the library's own
 * handover (uffd_handover_send), this daemon answers "+" once it serves,
 * and lets go when the peer closes the connection.
 *
 * --protocol firecracker: Firecracker's page-fault handler protocol (see
 * uffd_handover_recv_firecracker): a JSON array of guest regions with the
 * userfaultfd, and nothing else, ever; the peer closes its end at once.
 * Its guest memory is served until the peer exits, from --source (the
 * snapshot's memory file; each region from its offset in the file).  A
 * Firecracker whose handler is gone waits for ever on its next fault, so
 * this daemon never leaves a peer it serves alive behind it: at the
 * handshake it forks a watchdog that holds a pidfd of the peer and the
 * read end of a pipe whose write end only this daemon holds.  When this
 * daemon goes, however it goes (SIGKILL included), the pipe reads EOF and
 * the watchdog kills the peer with pidfd_send_signal (a pidfd cannot
 * name a reused pid); when the peer exits first, the watchdog exits too.
 * A peer this daemon stops serving while it lives (SIGTERM, a page that
 * could not be read) is killed too, with one line saying why.  A
 * handshake refused is one line on stderr; its peer is not served and
 * not killed.
 *
 * The source is a pager spec that takes offset=BYTES (where region
 * byte 0 is in the source), appended for each region: `file:PATH` is
 * short for `file:path=PATH`; with a file source the memory file must be
 * as long as the regions together.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <libuffd.h>

#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal	424
#endif

#define MAX_CLIENTS	64
#define HANDSHAKE_MS	5000	/* a peer that connects and says nothing */
#define TICK_MS		200	/* how often pager errors are looked at */
#define KILL_WAIT_MS	1000

enum protocol { PROTO_LIBUFFD, PROTO_FIRECRACKER };

struct client {
	bool		used;
	enum protocol	proto;
	int		conn;		/* libuffd: the connection */
	int		pidfd;		/* firecracker: the peer */
	pid_t		peer;
	pid_t		wd;		/* firecracker: the watchdog */
	int		wd_fd;		/* its pipe's write end */
	bool		killed;		/* by us: said once */
	struct uffd_ctx	*ctx;
};

struct config {
	const char	*spec;
	enum protocol	proto;
	int		cpu;
	int		verbose;
};

static volatile sig_atomic_t quit;

static void on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

static void usage(FILE *fp)
{
	fprintf(fp,
"Usage: uffd-serve --socket PATH --pager SPEC [--protocol P] [--once]\n"
"Serve the memory of processes that hand over their userfaultfd on the\n"
"Unix socket PATH (an '@name' is an abstract socket), with pager SPEC.\n"
"  -s, --socket PATH   where to listen\n"
"  -p, --pager SPEC    e.g. zero, prealloc:batch=16, file:path=IMG\n"
"  -S, --source SPEC   the same; file:PATH is short for file:path=PATH\n"
"  -P, --protocol P    libuffd (default): uffd_handover_send's message;\n"
"                      firecracker: Firecracker's page-fault handler\n"
"                      protocol (snapshot load with backend_type Uffd),\n"
"                      served from --source, the memory file, until the\n"
"                      peer exits; a peer left without its handler (this\n"
"                      one killed, or stopping) is killed, never frozen\n"
"  -1, --once          exit after the first client is done\n"
"  -c, --cpu N         pin the handler threads to CPU N\n"
"  -v, --verbose       print each client's statistics on stderr\n"
"  -h, --help          this text\n"
"Each range's place in the source is appended to the spec as offset=N:\n"
"always with file:, and for any source with firecracker (it must take\n"
"offset=).  A refused client is one line on stderr.\n");
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

/*
 * The file behind a file: spec ("file:path=P,..."), into @path; false
 * for other sources.  Paths cannot hold ',' (the spec separator).
 */
static bool spec_file(const char *spec, char *path, size_t len)
{
	const char *p = spec + 5;

	if (strncmp(spec, "file:", 5))
		return false;
	while (*p) {
		size_t n = strcspn(p, ",");

		if (!strncmp(p, "path=", 5) && n - 5 < len) {
			memcpy(path, p + 5, n - 5);
			path[n - 5] = '\0';
			return true;
		}
		p += n + (p[n] == ',');
	}
	return false;
}

/* ---- the watchdog ---- */

/* Close every descriptor but @a and @b (async-signal-safe). */
static void keep_only(int a, int b)
{
	unsigned int lo = (unsigned)(a < b ? a : b);
	unsigned int hi = (unsigned)(a < b ? b : a);
	struct rlimit rl;
	int fd;

	if ((lo == 0 || close_range(0, lo - 1, 0) == 0) &&
	    (hi == lo + 1 || close_range(lo + 1, hi - 1, 0) == 0) &&
	    close_range(hi + 1, ~0u, 0) == 0)
		return;
	/* before 5.9 */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur > (1u << 20))
		rl.rlim_cur = 1u << 20;
	for (fd = 0; fd < (int)rl.rlim_cur; fd++)
		if (fd != a && fd != b)
			close(fd);
}

/*
 * The watchdog's life: the forked child of a multi-threaded process, so
 * only async-signal-safe calls.  It holds nothing of ours but its two
 * descriptors: a copy of the listening socket would keep the address
 * taken after we die, one of another watchdog's pipe would keep that
 * watchdog from seeing our end.
 */
static void __attribute__((noreturn)) watchdog_main(int rfd, int pidfd)
{
	struct pollfd pf[2] = {
		{ .fd = pidfd, .events = POLLIN },
		{ .fd = rfd, .events = POLLIN },
	};
	char c;

	keep_only(rfd, pidfd);
	prctl(PR_SET_NAME, "uffd-serve-wd", 0, 0, 0);
	for (;;) {
		if (poll(pf, 2, -1) < 0) {
			if (errno != EINTR)
				sleep(1);	/* ENOMEM: try again */
			continue;
		}
		if (pf[0].revents)	/* the peer exited: nothing to do */
			_exit(0);
		if (pf[1].revents && read(rfd, &c, 1) == 0) {
			/* the daemon is gone: the peer must not wait for it */
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
			_exit(0);
		}
	}
}

static int watchdog_start(struct client *cl)
{
	int p[2], err;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = errno;
		close(p[0]);
		close(p[1]);
		return -err;
	}
	if (pid == 0)
		watchdog_main(p[0], cl->pidfd);
	close(p[0]);
	cl->wd = pid;
	cl->wd_fd = p[1];
	return 0;
}

/* ---- clients ---- */

/*
 * Kill @cl's peer, and give it a moment to go before its context does:
 * unregistering its ranges first would let a vCPU still in the kernel
 * read zeros.
 */
static void kill_peer(struct client *cl, const char *why)
{
	struct pollfd p = { .fd = cl->pidfd, .events = POLLIN };

	fprintf(stderr, "uffd-serve: peer %d: %s; killed it rather than "
		"leave it frozen\n", (int)cl->peer, why);
	syscall(SYS_pidfd_send_signal, cl->pidfd, SIGKILL, NULL, 0);
	cl->killed = true;
	poll(&p, 1, KILL_WAIT_MS);
}

/* Let go of @cl: its peer exited, hung up, or was killed. */
static void client_end(struct client *cl, int verbose)
{
	if (verbose && cl->ctx) {
		struct uffd_stats st;

		uffd_ctx_stats(cl->ctx, &st, sizeof(st));
		uffd_stats_print(&st, LIBUFFD_FMT_JSON, stderr);
	}
	uffd_ctx_destroy(cl->ctx);
	if (cl->wd > 0) {
		close(cl->wd_fd);	/* the peer is gone: it just exits */
		waitpid(cl->wd, NULL, 0);
	}
	if (cl->conn >= 0)
		close(cl->conn);
	if (cl->pidfd >= 0)
		close(cl->pidfd);
	memset(cl, 0, sizeof(*cl));
}

/*
 * Regions for @ranges, with @spec; @offsets: append each range's offset
 * ("offset=N", its place in the source), as for any file: spec.
 */
static int add_regions(struct uffd_ctx *ctx, const char *spec, bool offsets,
		       const struct uffd_handover_range *ranges, unsigned n)
{
	unsigned i;
	int ret;

	offsets = offsets || !strncmp(spec, "file:", 5);
	for (i = 0; i < n; i++) {
		char full[1200];
		struct uffd_region_opts o = {
			.size = sizeof(o),
			.type = LIBUFFD_MEM_REMOTE,
			.addr = (void *)(uintptr_t)ranges[i].base,
			.len = ranges[i].len,
			.pager = spec,
			.page_size = ranges[i].page_size,
		};
		struct uffd_region *r;

		if (offsets) {
			if ((size_t)snprintf(full, sizeof(full),
					     "%s%soffset=%" PRIu64, spec,
					     strchr(spec, ':') ? "," : ":",
					     ranges[i].file_offset) >=
			    sizeof(full)) {
				uffd_set_error("pager spec too long");
				return -ENAMETOOLONG;
			}
			o.pager = full;
		}
		ret = uffd_region_create(ctx, &o, &r);
		if (ret < 0)
			return ret;
	}
	return 0;
}

static int adopt(struct client *cl, const struct config *cf, int fd,
		 const struct uffd_handover_range *ranges, unsigned n)
{
	struct uffd_ctx_opts co = {
		.size = sizeof(co),
		.flags = cf->cpu >= 0 ? LIBUFFD_CTX_PIN_HANDLER : 0,
		.handler_cpu = cf->cpu,
	};
	int ret = uffd_ctx_adopt(&cl->ctx, fd, &co);

	if (ret == 0)
		ret = add_regions(cl->ctx, cf->spec,
				  cf->proto == PROTO_FIRECRACKER, ranges, n);
	if (ret == 0)
		ret = uffd_ctx_start(cl->ctx);
	return ret;
}

static int accept_libuffd(struct client *cl, const struct config *cf)
{
	struct uffd_handover_range ranges[LIBUFFD_HANDOVER_MAX];
	unsigned n = LIBUFFD_HANDOVER_MAX;
	int fd, ret;

	ret = uffd_handover_recv(cl->conn, &fd, NULL, ranges, &n);
	if (ret < 0) {
		fprintf(stderr, "uffd-serve: refused: %s\n", uffd_last_error());
		return ret;
	}
	ret = adopt(cl, cf, fd, ranges, n);
	/* tell the client we serve: it may touch its memory now */
	if (ret == 0 && write(cl->conn, "+", 1) != 1)
		ret = -errno;
	if (ret < 0)
		fprintf(stderr, "uffd-serve: %s\n", uffd_last_error());
	return ret;
}

/* With a file source, the file must hold the regions, back to back. */
static int check_source(const char *spec,
			const struct uffd_handover_range *ranges, unsigned n)
{
	char path[1024];
	uint64_t total = 0;
	struct stat sb;
	unsigned i;

	for (i = 0; i < n; i++)
		total += ranges[i].len;
	if (!spec_file(spec, path, sizeof(path)))
		return 0;
	if (stat(path, &sb) < 0) {
		fprintf(stderr, "uffd-serve: refused: memory file %s: %s\n",
			path, strerror(errno));
		return -1;
	}
	if (S_ISREG(sb.st_mode) && (uint64_t)sb.st_size != total) {
		fprintf(stderr, "uffd-serve: refused: memory file %s holds "
			"%lld bytes, the regions %" PRIu64 "\n", path,
			(long long)sb.st_size, total);
		return -1;
	}
	return 0;
}

static int accept_firecracker(struct client *cl, const struct config *cf)
{
	struct uffd_handover_range ranges[LIBUFFD_HANDOVER_MAX];
	struct pollfd p = { .fd = cl->conn, .events = POLLIN };
	unsigned n = LIBUFFD_HANDOVER_MAX;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd = -1, ret;

	if (poll(&p, 1, HANDSHAKE_MS) <= 0) {
		fprintf(stderr, "uffd-serve: refused: no handshake within "
			"%d ms\n", HANDSHAKE_MS);
		return -ETIMEDOUT;
	}
	ret = uffd_handover_recv_firecracker(cl->conn, &fd, ranges, &n,
					     &cl->pidfd);
	if (ret < 0) {
		cl->pidfd = -1;
		fprintf(stderr, "uffd-serve: refused: %s\n", uffd_last_error());
		return ret;
	}
	if (getsockopt(cl->conn, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0)
		cl->peer = cred.pid;
	/* nothing more comes on it: the peer itself is what we watch */
	close(cl->conn);
	cl->conn = -1;
	ret = check_source(cf->spec, ranges, n);
	if (ret == 0) {
		ret = watchdog_start(cl);
		if (ret < 0)
			fprintf(stderr, "uffd-serve: refused: no watchdog: "
				"%s\n", strerror(-ret));
	}
	if (ret < 0) {
		close(fd);
		return ret;
	}
	ret = adopt(cl, cf, fd, ranges, n);
	if (ret < 0) {
		/*
		 * Destroying the context unregisters, in the peer, the
		 * regions made already: their pages would read as zeros.
		 * The peer goes first.
		 */
		kill_peer(cl, uffd_last_error());
		return ret;
	}
	if (cf->verbose)
		fprintf(stderr, "uffd-serve: serving peer %d: %u regions\n",
			(int)cl->peer, n);
	return 0;
}

/* Take one connection.  Returns 0 when it is being served, else -errno. */
static int client_accept(struct client *cl, int conn, const struct config *cf)
{
	int ret;

	memset(cl, 0, sizeof(*cl));
	cl->used = true;
	cl->proto = cf->proto;
	cl->conn = conn;
	cl->pidfd = -1;
	if (cf->proto == PROTO_FIRECRACKER)
		ret = accept_firecracker(cl, cf);
	else
		ret = accept_libuffd(cl, cf);
	if (ret < 0)
		client_end(cl, 0);
	return ret;
}

/* The descriptor that says @cl is done, and with what poll events. */
static int client_wait_fd(const struct client *cl)
{
	return cl->proto == PROTO_FIRECRACKER ? cl->pidfd : cl->conn;
}

/* @cl's descriptor is ready: true when the client is done. */
static bool client_done(struct client *cl)
{
	char buf[64];

	if (cl->proto == PROTO_FIRECRACKER)
		return true;	/* the pidfd polls readable: it exited */
	/* the libuffd client closes the connection when done */
	return read(cl->conn, buf, sizeof(buf)) <= 0;
}

/* A peer with a page that could not be served would wait for ever. */
static void client_check(struct client *cl)
{
	struct uffd_stats st;
	char why[64];

	if (cl->proto != PROTO_FIRECRACKER || cl->killed ||
	    uffd_ctx_stats(cl->ctx, &st, sizeof(st)) < 0 || !st.pager_errors)
		return;
	snprintf(why, sizeof(why), "%" PRIu64 " page(s) could not be served",
		 st.pager_errors);
	kill_peer(cl, why);
}

static int serve(int lfd, const struct config *cf, int once)
{
	static struct client cl[MAX_CLIENTS];
	struct pollfd pf[MAX_CLIENTS + 1];
	int idx[MAX_CLIENTS + 1], np, i, ret = 0;
	bool accepting = true;

	for (;;) {
		np = 0;
		if (accepting && !quit) {
			pf[np] = (struct pollfd){ .fd = lfd, .events = POLLIN };
			idx[np++] = -1;
		}
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (!cl[i].used)
				continue;
			pf[np] = (struct pollfd){ .fd = client_wait_fd(&cl[i]),
						  .events = POLLIN };
			idx[np++] = i;
		}
		if (quit || (!accepting && np == 0))
			break;
		if (poll(pf, (nfds_t)np, TICK_MS) < 0) {
			if (errno == EINTR)
				continue;
			perror("uffd-serve: poll");
			ret = 1;
			break;
		}
		for (i = 0; i < np; i++) {
			struct client *c;
			int conn, slot;

			if (!pf[i].revents)
				continue;
			if (idx[i] >= 0) {
				c = &cl[idx[i]];
				if (client_done(c))
					client_end(c, cf->verbose);
				continue;
			}
			conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (conn < 0) {
				if (errno == EINTR || errno == ECONNABORTED)
					continue;
				perror("uffd-serve: accept");
				ret = 1;
				accepting = false;
				continue;
			}
			for (slot = 0; slot < MAX_CLIENTS && cl[slot].used;
			     slot++)
				;
			if (once)
				accepting = false;
			if (slot == MAX_CLIENTS) {
				fprintf(stderr, "uffd-serve: refused: %d "
					"clients already\n", MAX_CLIENTS);
				close(conn);
				ret = 1;
				continue;
			}
			if (client_accept(&cl[slot], conn, cf) < 0)
				ret = 1;
		}
		for (i = 0; i < MAX_CLIENTS; i++)
			if (cl[i].used)
				client_check(&cl[i]);
	}
	/* stopping: a Firecracker still running would wait for ever */
	for (i = 0; i < MAX_CLIENTS; i++) {
		if (!cl[i].used)
			continue;
		if (cl[i].proto == PROTO_FIRECRACKER && !cl[i].killed &&
		    poll(&(struct pollfd){ .fd = cl[i].pidfd,
					   .events = POLLIN }, 1, 0) == 0)
			kill_peer(&cl[i], "uffd-serve is stopping");
		client_end(&cl[i], cf->verbose);
	}
	return ret;
}

/* --source file:PATH is file:path=PATH; anything else as it is. */
static const char *expand_source(const char *arg, char *buf, size_t len)
{
	if (strncmp(arg, "file:", 5) || strchr(arg, '='))
		return arg;
	if (strchr(arg + 5, ',') ||
	    (size_t)snprintf(buf, len, "file:path=%s", arg + 5) >= len)
		return NULL;
	return buf;
}

/*
 * Refuse a source no client could be served from, before listening.  A
 * file: spec is checked when a client comes (its regions say how long
 * the file must be); here only that the file is there.  In Firecracker
 * mode the source must take offset=.
 */
static int check_spec(const struct config *cf)
{
	char path[1024], full[1200];
	const char *spec = cf->spec;
	struct stat sb;

	if (spec_file(spec, path, sizeof(path))) {
		if (stat(path, &sb) == 0)
			return 0;
		fprintf(stderr, "uffd-serve: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (!strncmp(spec, "file:", 5)) {
		fprintf(stderr, "uffd-serve: %s: no path=\n", spec);
		return -1;
	}
	if (cf->proto == PROTO_FIRECRACKER) {
		snprintf(full, sizeof(full), "%s%soffset=0", spec,
			 strchr(spec, ':') ? "," : ":");
		spec = full;
	}
	if (uffd_pager_spec_check(spec, 0) < 0) {
		fprintf(stderr, "uffd-serve: source %s: %s\n", spec,
			uffd_last_error());
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "pager", required_argument, NULL, 'p' },
		{ "source", required_argument, NULL, 'S' },
		{ "protocol", required_argument, NULL, 'P' },
		{ "once", no_argument, NULL, '1' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config cf = { .spec = NULL, .cpu = -1 };
	const char *path = NULL;
	static char srcbuf[1100];
	struct sockaddr_un sun;
	socklen_t alen;
	int once = 0, lfd, c, ret;
	char *end;

	while ((c = getopt_long(argc, argv, "s:p:S:P:1c:vh", longopts,
				NULL)) != -1) {
		switch (c) {
		case 's': path = optarg; break;
		case 'p':
		case 'S':
			cf.spec = expand_source(optarg, srcbuf, sizeof(srcbuf));
			if (!cf.spec) {
				fprintf(stderr, "uffd-serve: bad source %s\n",
					optarg);
				return 2;
			}
			break;
		case 'P':
			if (!strcmp(optarg, "libuffd")) {
				cf.proto = PROTO_LIBUFFD;
			} else if (!strcmp(optarg, "firecracker")) {
				cf.proto = PROTO_FIRECRACKER;
			} else {
				fprintf(stderr, "uffd-serve: unknown protocol "
					"%s (libuffd, firecracker)\n", optarg);
				return 2;
			}
			break;
		case '1': once = 1; break;
		case 'v': cf.verbose = 1; break;
		case 'c':
			cf.cpu = (int)strtol(optarg, &end, 10);
			if (*end || cf.cpu < 0) {
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
	if (!cf.spec) {
		if (cf.proto == PROTO_FIRECRACKER) {
			fprintf(stderr, "uffd-serve: --protocol firecracker "
				"needs --source (the memory file)\n");
			return 2;
		}
		cf.spec = "zero";
	}
	if (check_spec(&cf) < 0)
		return 2;
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
	ret = serve(lfd, &cf, once);
	close(lfd);
	if (path[0] != '@')
		unlink(path);
	return ret;
}
