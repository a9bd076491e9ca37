// SPDX-License-Identifier: MIT
//
// Seed 000's program, as the question gives it: a 64 Mi-int vector walked
// once with `x *= 3`.  vec![0i32; N] compiles to __rust_alloc_zeroed, that
// is calloc, whose untouched pages take a read fault (the zero page) and
// then a copy-on-write fault each.  With the argument "ones" it is the
// seed's second variant, vec![1i32; N]: malloc, then every page written
// once before the walk.  It prints the seed's one line and nothing else,
// so that a run under uffd-run can be compared with a native one.

use std::time::Instant;

fn main() {
    let ones = std::env::args().nth(1).as_deref() == Some("ones");
    let mut array = if ones {
        vec![1i32; 64 * 1024 * 1024]
    } else {
        vec![0i32; 64 * 1024 * 1024]
    };

    let start = Instant::now();
    workload(&mut array);
    let dur = start.elapsed().as_millis();

    println!("duration: {}ms", dur);
}

fn workload(arr: &mut [i32]) {
    for i in 0..arr.len() {
        arr[i] *= 3;
    }
}
