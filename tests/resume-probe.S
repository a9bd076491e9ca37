/* SPDX-License-Identifier: MIT */
/*
 * resume_probe(target, in, out, level): load every general register, the
 * flags, a red zone below the stack pointer, MXCSR, the x87 control word
 * and the vector registers (level 0: XMM0-15, 1: YMM0-15, 2: ZMM0-31 and
 * K1-K7) from *in; store one byte to target (the fault under test); then
 * save all of it to *out.  R15 carries the target address.  What a signal
 * handler's return loses shows up as a difference between in and out.
 *
 * probe_clobber(level): overwrite the vector registers, for a signal
 * handler that runs in the middle of things.
 *
 * Layout of struct probe_state (tests/test-resume.c):
 *   0 gpr[16]: rax rbx rcx rdx rsi rdi rbp r8..r15 rflags
 *   128 redzone[16], 256 mxcsr, 260 fcw, 272 k[8], 384 vec[32][64]
 */
#if defined(__x86_64__)

#define GPR(i)	(8 * (i))
#define RZ(i)	(128 + 8 * (i))
#define MXCSR	256
#define FCW	260
#define KREG(i)	(272 + 8 * (i))
#define VEC(i)	(384 + 64 * (i))

	.text
	.globl	resume_probe
	.type	resume_probe, @function
resume_probe:
	pushq	%rbp
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	pushq	%rcx			/* 16(%rsp): level */
	pushq	%rdx			/* 8(%rsp): out */
	pushq	%rdi			/* 0(%rsp): target */

	cmpl	$2, %ecx
	jae	.Lload512
	cmpl	$1, %ecx
	jae	.Lload256
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqu	VEC(\n)(%rsi), %xmm\n
	.endr
	jmp	.Lloaded
.Lload256:
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqu	VEC(\n)(%rsi), %ymm\n
	.endr
	jmp	.Lloaded
.Lload512:
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqu64 VEC(\n)(%rsi), %zmm\n
	.endr
	.irp	n, 1,2,3,4,5,6,7
	kmovw	KREG(\n)(%rsi), %k\n
	.endr
.Lloaded:
	ldmxcsr	MXCSR(%rsi)
	fldcw	FCW(%rsi)
	/* the flags first: nothing below changes them */
	pushq	GPR(15)(%rsi)
	popfq
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movq	RZ(\n)(%rsi), %rax
	movq	%rax, -128+8*\n(%rsp)
	.endr
	movq	0(%rsp), %r15
	movq	GPR(0)(%rsi), %rax
	movq	GPR(1)(%rsi), %rbx
	movq	GPR(2)(%rsi), %rcx
	movq	GPR(3)(%rsi), %rdx
	movq	GPR(5)(%rsi), %rdi
	movq	GPR(6)(%rsi), %rbp
	movq	GPR(7)(%rsi), %r8
	movq	GPR(8)(%rsi), %r9
	movq	GPR(9)(%rsi), %r10
	movq	GPR(10)(%rsi), %r11
	movq	GPR(11)(%rsi), %r12
	movq	GPR(12)(%rsi), %r13
	movq	GPR(13)(%rsi), %r14
	movq	GPR(4)(%rsi), %rsi

	movb	$0x5a, (%r15)		/* the fault */

	xchgq	%rdi, 8(%rsp)		/* rdi = out; the slot keeps rdi */
	movq	%rax, GPR(0)(%rdi)
	movq	%rbx, GPR(1)(%rdi)
	movq	%rcx, GPR(2)(%rdi)
	movq	%rdx, GPR(3)(%rdi)
	movq	%rsi, GPR(4)(%rdi)
	movq	%rbp, GPR(6)(%rdi)
	movq	%r8, GPR(7)(%rdi)
	movq	%r9, GPR(8)(%rdi)
	movq	%r10, GPR(9)(%rdi)
	movq	%r11, GPR(10)(%rdi)
	movq	%r12, GPR(11)(%rdi)
	movq	%r13, GPR(12)(%rdi)
	movq	%r14, GPR(13)(%rdi)
	movq	%r15, GPR(14)(%rdi)
	movq	8(%rsp), %rax
	movq	%rax, GPR(5)(%rdi)
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movq	-128+8*\n(%rsp), %rax
	movq	%rax, RZ(\n)(%rdi)
	.endr
	pushfq
	popq	GPR(15)(%rdi)
	cld
	stmxcsr	MXCSR(%rdi)
	fnstcw	FCW(%rdi)

	movl	16(%rsp), %ecx
	cmpl	$2, %ecx
	jae	.Lsave512
	cmpl	$1, %ecx
	jae	.Lsave256
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqu	%xmm\n, VEC(\n)(%rdi)
	.endr
	jmp	.Lsaved
.Lsave256:
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqu	%ymm\n, VEC(\n)(%rdi)
	.endr
	vzeroupper
	jmp	.Lsaved
.Lsave512:
	.irp	n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqu64 %zmm\n, VEC(\n)(%rdi)
	.endr
	.irp	n, 1,2,3,4,5,6,7
	kmovw	%k\n, KREG(\n)(%rdi)
	.endr
	vzeroupper
.Lsaved:
	/* back to the ABI's defaults */
	movl	$0x1f80, -4(%rsp)
	ldmxcsr	-4(%rsp)
	movw	$0x037f, -8(%rsp)
	fldcw	-8(%rsp)
	addq	$24, %rsp
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret
	.size	resume_probe, .-resume_probe

	.globl	probe_clobber
	.type	probe_clobber, @function
probe_clobber:
	pcmpeqd	%xmm0, %xmm0
	cmpl	$2, %edi
	jae	.Lclob512
	cmpl	$1, %edi
	jae	.Lclob256
	.irp	n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	movdqa	%xmm0, %xmm\n
	.endr
	ret
.Lclob256:
	vpcmpeqd %ymm0, %ymm0, %ymm0
	.irp	n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15
	vmovdqa	%ymm0, %ymm\n
	.endr
	vzeroupper
	ret
.Lclob512:
	vpternlogd $0xff, %zmm0, %zmm0, %zmm0
	.irp	n, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	vmovdqa64 %zmm0, %zmm\n
	.endr
	.irp	n, 1,2,3,4,5,6,7
	kxnorw	%k0, %k0, %k\n
	.endr
	vzeroupper
	ret
	.size	probe_clobber, .-probe_clobber

#endif
	.section .note.GNU-stack, "", @progbits
