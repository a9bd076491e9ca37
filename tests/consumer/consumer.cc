// SPDX-License-Identifier: MIT
//
// consumer - a C++ program built against an installed libuffd, outside the
// tree, with nothing but `pkg-config --cflags --libs libuffd` (.ci/consumer).
// It proves that <libuffd.h> compiles as C++17 and that the installed
// library serves faults: a zero-pager region, a read and a write fault,
// zero content, the faults counted, everything destroyed.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <unistd.h>

#include <libuffd.h>

namespace {

struct ctx_deleter {
	void operator()(uffd_ctx *ctx) const { uffd_ctx_destroy(ctx); }
};
struct region_deleter {
	void operator()(uffd_region *r) const { uffd_region_destroy(r); }
};
using ctx_ptr = std::unique_ptr<uffd_ctx, ctx_deleter>;
using region_ptr = std::unique_ptr<uffd_region, region_deleter>;

int fail(const char *call, int err)
{
	std::fprintf(stderr, "consumer: %s: %s (%s)\n", call,
		     uffd_last_error(), std::strerror(-err));
	return 1;
}

} // namespace

int main()
{
	const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
	uffd_ctx *c = nullptr;
	uffd_region *rp = nullptr;
	uffd_region_opts opts{};
	uffd_stats st{};
	int ret;

	opts.size = sizeof(opts);
	opts.type = LIBUFFD_MEM_ANON;
	opts.len = 4 * page;
	opts.pager = "zero";

	ret = uffd_ctx_create(&c, nullptr);
	if (ret)
		return fail("uffd_ctx_create", ret);
	ctx_ptr ctx(c);
	ret = uffd_region_create(ctx.get(), &opts, &rp);
	if (ret)
		return fail("uffd_region_create", ret);
	region_ptr region(rp);
	ret = uffd_ctx_start(ctx.get());
	if (ret)
		return fail("uffd_ctx_start", ret);

	// A read fault on page 1 (the zero page), a write fault on page 2.
	auto *mem = static_cast<volatile unsigned char *>(
		uffd_region_addr(region.get()));
	size_t nonzero = 0;
	for (size_t i = 0; i < page; i++)
		nonzero += mem[page + i] != 0;
	mem[2 * page] = 0x5a;
	for (size_t i = 1; i < page; i++)
		nonzero += mem[2 * page + i] != 0;

	ret = uffd_region_stats(region.get(), &st, sizeof(st));
	if (ret)
		return fail("uffd_region_stats", ret);
	std::printf("consumer: %s pager, %llu read and %llu write faults, "
		    "%zu nonzero bytes\n",
		    uffd_region_pager_name(region.get()),
		    static_cast<unsigned long long>(st.faults_read),
		    static_cast<unsigned long long>(st.faults_write), nonzero);
	if (nonzero || mem[2 * page] != 0x5a) {
		std::fprintf(stderr, "consumer: pages not zero-filled\n");
		return 1;
	}
	// The pager, not the kernel, must have served both touches.
	if (st.faults_read + st.faults_write < 2) {
		std::fprintf(stderr, "consumer: faults not served by libuffd\n");
		return 1;
	}
	region.reset();
	ctx.reset();
	return 0;
}
